"""The field_clears guard: a plan that clears a mapped field holding a value on more than
maxFieldClearPercent of the members compared is blocked, in both engines."""

from __future__ import annotations

import pytest

from tests.integration.test_safety import project, writes

MAPPING = (
    "apiVersion: reconciler/v1\nkind: TraitMapping\nmetadata: {name: crm}\n"
    "spec: {fields: {planTier: plan, score: {from: score, type: number}}}\n"
)


def seed(server, n: int = 10) -> None:
    proj = project(server)
    list_id = proj.add_list("vip", None)
    for i in range(n):
        proj.subscribe_direct(
            list_id, email=f"m{i}@example.com", data_fields={"planTier": "gold", "score": i}
        )


def rows(empty: int, n: int = 10) -> list[str]:
    """Every member of the list, the first `empty` with an empty plan cell."""
    return [f"m{i}@example.com,{'' if i < empty else 'gold'},{i}" for i in range(n)]


@pytest.fixture(params=["100000", "1"], ids=["python", "duckdb"])
def engine(request, monkeypatch):
    monkeypatch.setenv("RECONCILER_ENGINE_THRESHOLD", request.param)


def test_a_source_whose_column_arrived_empty_does_not_clear_the_field_on_every_member(
    workspace, cli, emulator_server, engine, tmp_path
):
    # Iterable keeps no earlier value of a field: an export that emptied the plan column
    # cleared planTier on every member in one apply, with no guard, as removals have.
    seed(emulator_server)
    workspace.write("traits.yaml", MAPPING)
    workspace.csv("data/vip.csv", "email,plan,score", rows(empty=10))
    workspace.audience("vip", {"csv": "data/vip.csv"}, traits="crm")

    plan = cli("plan", workspace.manifests, "--format", "json")
    assert plan.exit_code == 3, plan.output
    (violation,) = plan.json()["violations"]
    assert (violation["list_name"], violation["rule"]) == ("vip", "field_clears")
    assert (
        "clears field 'planTier', which holds a value, for 10 of the 10 members"
        in (violation["message"])
    )
    assert "more than maxFieldClearPercent 10%" in violation["message"]
    text = cli("plan", workspace.manifests)
    assert text.exit_code == 3
    assert "guard field_clears" in text.stdout + text.stderr
    assert "--allow-field-clears" in text.stdout + text.stderr

    applied = cli("apply", workspace.manifests, "--yes")
    assert applied.exit_code == 3, applied.output
    assert writes(emulator_server) == []
    assert project(emulator_server).user_by_email("m0@example.com").data_fields["planTier"] == (
        "gold"
    )

    # The flag says the clears are meant, for this run.
    applied = cli("apply", workspace.manifests, "--yes", "--allow-field-clears")
    assert applied.exit_code == 0, applied.output
    assert project(emulator_server).user_by_email("m0@example.com").data_fields.get("planTier") in (
        None,
        "",
    )


def test_clears_within_the_limit_pass_and_the_manifest_records_a_lasting_decision(
    workspace, cli, emulator_server, engine
):
    seed(emulator_server)
    workspace.write("traits.yaml", MAPPING)
    # One member of ten loses a plan: 10%, not more than the default 10%.
    workspace.csv("data/vip.csv", "email,plan,score", rows(empty=1))
    workspace.audience("vip", {"csv": "data/vip.csv"}, traits="crm")
    plan = cli("plan", workspace.manifests, "--format", "json")
    assert plan.exit_code == 2 or plan.exit_code == 0, plan.output
    assert plan.json()["violations"] == []

    # Three of ten: blocked, unless the audience's policy says such clears are normal.
    workspace.csv("data/vip.csv", "email,plan,score", rows(empty=3))
    assert cli("plan", workspace.manifests).exit_code == 3
    workspace.audience(
        "vip", {"csv": "data/vip.csv"}, traits="crm", policy={"maxFieldClearPercent": 50}
    )
    plan = cli("plan", workspace.manifests, "--format", "json")
    assert plan.json()["violations"] == [], plan.output
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0


def test_a_mass_change_of_values_is_no_clear(workspace, cli, emulator_server, engine):
    # Daily-changing fields (a score, lastSeen) change on every member: not blocked.
    seed(emulator_server)
    workspace.write("traits.yaml", MAPPING)
    workspace.csv(
        "data/vip.csv",
        "email,plan,score",
        [f"m{i}@example.com,silver,{i + 100}" for i in range(10)],
    )
    workspace.audience("vip", {"csv": "data/vip.csv"}, traits="crm")
    plan = cli("plan", workspace.manifests, "--format", "json")
    assert plan.json()["violations"] == [], plan.output
    assert plan.json()["summary"]["users_to_update"] == 10


def test_a_saved_plan_that_clears_is_judged_again_by_apply(
    workspace, cli, emulator_server, engine, tmp_path
):
    seed(emulator_server)
    workspace.write("traits.yaml", MAPPING)
    workspace.csv("data/vip.csv", "email,plan,score", rows(empty=10))
    workspace.audience("vip", {"csv": "data/vip.csv"}, traits="crm")
    planfile = tmp_path / "vip.plan"
    assert cli("plan", workspace.manifests, "--out", planfile).exit_code == 3
    applied = cli("apply", "--plan", planfile, "--yes")
    assert applied.exit_code == 3, applied.output
    assert "guard field_clears" in applied.stderr
    assert writes(emulator_server) == []
    applied = cli("apply", "--plan", planfile, "--yes", "--allow-field-clears")
    assert applied.exit_code == 0, applied.output
