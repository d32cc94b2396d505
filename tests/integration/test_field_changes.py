"""The field_changes guard (opt-in maxFieldChangePercent): a plan that replaces a mapped
field's value with another on more than that share of the members compared is blocked, in
both engines; without the setting, values change freely."""

from __future__ import annotations

import pytest

from tests.integration.test_field_clears import MAPPING, seed
from tests.integration.test_safety import project, writes

# The export's plan and region columns swapped places under an unchanged header: every
# member's planTier gets a region name.
SHIFTED = [f"m{i}@example.com,emea,{i}" for i in range(10)]


@pytest.fixture(params=["100000", "1"], ids=["python", "duckdb"])
def engine(request, monkeypatch):
    monkeypatch.setenv("RECONCILER_ENGINE_THRESHOLD", request.param)


def test_a_source_whose_column_shifted_does_not_rewrite_the_field_on_every_member(
    workspace, cli, emulator_server, engine
):
    # Iterable keeps no earlier value: a shifted column rewrote planTier on all ten
    # members in one apply, with no guard even where the audience asked for one.
    seed(emulator_server)
    workspace.write("traits.yaml", MAPPING)
    workspace.csv("data/vip.csv", "email,plan,score", SHIFTED)
    workspace.audience(
        "vip", {"csv": "data/vip.csv"}, traits="crm", policy={"maxFieldChangePercent": 20}
    )

    plan = cli("plan", workspace.manifests, "--format", "json")
    assert plan.exit_code == 3, plan.output
    (violation,) = plan.json()["violations"]
    assert (violation["list_name"], violation["rule"]) == ("vip", "field_changes")
    assert violation["message"].startswith(
        "guard field_changes: changes field 'planTier' from one value to another for 10 of "
        "the 10 members on or joining list 'vip' (100.0%), more than maxFieldChangePercent 20%"
    )
    text = cli("plan", workspace.manifests)
    assert text.exit_code == 3
    assert "--allow-field-changes" in text.stdout + text.stderr
    assert "emea" not in text.stdout + text.stderr  # values stay masked

    applied = cli("apply", workspace.manifests, "--yes")
    assert applied.exit_code == 3, applied.output
    assert writes(emulator_server) == []
    assert project(emulator_server).user_by_email("m0@example.com").data_fields["planTier"] == (
        "gold"
    )
    # --allow-field-clears is for clears: it does not cover changes.
    assert cli("apply", workspace.manifests, "--yes", "--allow-field-clears").exit_code == 3
    assert writes(emulator_server) == []

    applied = cli("apply", workspace.manifests, "--yes", "--allow-field-changes")
    assert applied.exit_code == 0, applied.output
    assert project(emulator_server).user_by_email("m0@example.com").data_fields["planTier"] == (
        "emea"
    )
    assert cli("plan", workspace.manifests, "--detailed-exitcode").exit_code == 0


def test_the_destinations_limit_holds_for_its_audiences_and_allow_unsafe_covers_it(
    workspace, cli, emulator_server, engine
):
    seed(emulator_server)
    workspace.write("traits.yaml", MAPPING)
    workspace.csv("data/vip.csv", "email,plan,score", SHIFTED)
    workspace.destination(policy={"maxFieldChangePercent": 50})
    workspace.audience("vip", {"csv": "data/vip.csv"}, traits="crm")
    plan = cli("plan", workspace.manifests, "--format", "json")
    assert plan.exit_code == 3, plan.output
    assert [v["rule"] for v in plan.json()["violations"]] == ["field_changes"]
    assert "more than maxFieldChangePercent 50%" in plan.json()["violations"][0]["message"]
    applied = cli("apply", workspace.manifests, "--yes", "--allow-unsafe")
    assert applied.exit_code == 0, applied.output
    assert project(emulator_server).user_by_email("m9@example.com").data_fields["planTier"] == (
        "emea"
    )


def test_changes_within_the_limit_new_values_and_clears_pass(
    workspace, cli, emulator_server, engine
):
    proj = project(emulator_server)
    list_id = proj.add_list("vip", None)
    for i in range(10):
        proj.subscribe_direct(
            list_id, email=f"m{i}@example.com", data_fields={"planTier": "gold", "score": i}
        )
    # n1 is on the list with no planTier yet: a value set where there was none is no
    # change (counted as one, 3 of 11 would be over the limit).
    proj.subscribe_direct(list_id, email="n1@example.com", data_fields={"score": 1})
    workspace.write("traits.yaml", MAPPING)
    rows = [f"m{i}@example.com,{'silver' if i < 2 else 'gold'},{i}" for i in range(10)]
    workspace.csv("data/vip.csv", "email,plan,score", [*rows, "n1@example.com,gold,1"])
    workspace.audience(
        "vip", {"csv": "data/vip.csv"}, traits="crm", policy={"maxFieldChangePercent": 20}
    )
    plan = cli("plan", workspace.manifests, "--format", "json")
    assert plan.json()["violations"] == [], plan.output  # planTier: 2 of 11 (18.2%)
    assert plan.json()["summary"]["users_to_update"] == 3

    # The limit is per field: every score changing is blocked on its own.
    rows = [f"m{i}@example.com,gold,{i + 100}" for i in range(10)]
    workspace.csv("data/vip.csv", "email,plan,score", [*rows, "n1@example.com,,101"])
    plan = cli("plan", workspace.manifests, "--format", "json")
    (violation,) = plan.json()["violations"]
    assert (
        "changes field 'score' from one value to another for 11 of the 11 members"
        in (violation["message"])
    )

    # Clears are field_clears' alone: an emptied column is not also a change.
    rows = [f"m{i}@example.com,,{i}" for i in range(10)]
    workspace.csv("data/vip.csv", "email,plan,score", [*rows, "n1@example.com,,1"])
    workspace.audience(
        "vip",
        {"csv": "data/vip.csv"},
        traits="crm",
        policy={"maxFieldChangePercent": 0, "maxFieldClearPercent": 100},
    )
    plan = cli("plan", workspace.manifests, "--format", "json")
    assert plan.json()["violations"] == [], plan.output
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0


def test_a_saved_plan_that_changes_is_judged_again_by_apply(
    workspace, cli, emulator_server, engine, tmp_path
):
    seed(emulator_server)
    workspace.write("traits.yaml", MAPPING)
    workspace.csv("data/vip.csv", "email,plan,score", SHIFTED)
    workspace.audience(
        "vip", {"csv": "data/vip.csv"}, traits="crm", policy={"maxFieldChangePercent": 20}
    )
    planfile = tmp_path / "vip.plan"
    assert cli("plan", workspace.manifests, "--out", planfile).exit_code == 3
    applied = cli("apply", "--plan", planfile, "--yes")
    assert applied.exit_code == 3, applied.output
    assert "guard field_changes" in applied.stderr
    assert writes(emulator_server) == []
    applied = cli("apply", "--plan", planfile, "--yes", "--allow-field-changes")
    assert applied.exit_code == 0, applied.output


def test_a_field_in_the_mapping_sets_its_own_limit_over_the_audiences(
    workspace, cli, emulator_server, engine, tmp_path
):
    # A daily score beside a stable planTier in one mapping: the audience's limit held the
    # score too, so the guard could not be used where it was needed.
    seed(emulator_server)
    workspace.write(
        "traits.yaml",
        "apiVersion: reconciler/v1\nkind: TraitMapping\nmetadata: {name: crm}\n"
        "spec: {fields: {planTier: plan, "
        "score: {from: score, type: number, maxChangePercent: 100}}}\n",
    )
    rows = [f"m{i}@example.com,{'silver' if i < 2 else 'gold'},{i + 100}" for i in range(10)]
    workspace.csv("data/vip.csv", "email,plan,score", rows)
    workspace.audience(
        "vip", {"csv": "data/vip.csv"}, traits="crm", policy={"maxFieldChangePercent": 20}
    )
    plan = cli("plan", workspace.manifests, "--format", "json")
    assert plan.json()["violations"] == [], plan.output
    assert plan.json()["summary"]["users_to_update"] == 10

    # And a field may have a limit where the audience has none.
    workspace.write(
        "traits.yaml",
        "apiVersion: reconciler/v1\nkind: TraitMapping\nmetadata: {name: crm}\n"
        "spec: {fields: {planTier: {from: plan, maxChangePercent: 10}, "
        "score: {from: score, type: number}}}\n",
    )
    workspace.audience("vip", {"csv": "data/vip.csv"}, traits="crm")
    plan = cli("plan", workspace.manifests, "--format", "json")
    assert plan.exit_code == 3, plan.output
    (violation,) = plan.json()["violations"]
    assert (
        "changes field 'planTier' from one value to another for 2 of the 10"
        in (violation["message"])
    )
    # The limit is the field's own, which counts instead of the audience's policy: the
    # violation named maxFieldChangePercent, which no manifest set, and said to raise it
    # in the audience's policy, which would not have unblocked the plan.
    message = violation["message"]
    assert (
        "(20.0%), more than maxChangePercent 10%, the limit field 'planTier' sets at "
        "manifests/traits.yaml:4:17; Iterable keeps no earlier value: check the mapping and "
        "the source's columns (a mapping pointed at the wrong column, a reordered header, a "
        "join that duplicates rows), or raise that maxChangePercent where such changes are "
        "normal"
    ) in message
    assert "maxFieldChangePercent" not in message
    assert cli("apply", workspace.manifests, "--yes").exit_code == 3
    assert writes(emulator_server) == []
    # A saved plan says so too.
    planfile = tmp_path / "vip.plan"
    assert cli("plan", workspace.manifests, "--out", planfile).exit_code == 3
    applied = cli("apply", "--plan", planfile, "--yes")
    assert applied.exit_code == 3
    assert "the limit field 'planTier' sets at manifests/traits.yaml:4:17" in " ".join(
        applied.stderr.split()
    )


def test_an_object_merged_in_is_a_change_only_where_it_replaces_a_value(
    workspace, cli, emulator_server, engine
):
    # With mergeNestedObjects, prefs {"email": true} is merged into each profile's
    # {"sms": true}: a key added beside the others, nothing replaced. It was counted as a
    # change on every member, so rolling out a new nested key blocked the plan.
    proj = project(emulator_server)
    list_id = proj.add_list("vip", None)
    for i in range(10):
        proj.subscribe_direct(
            list_id, email=f"m{i}@example.com", data_fields={"prefs": {"sms": True, "n": i}}
        )
    workspace.write(
        "traits.yaml",
        "apiVersion: reconciler/v1\nkind: TraitMapping\nmetadata: {name: crm}\n"
        "spec: {mergeNestedObjects: true, fields: {prefs: {from: prefs, type: object}}}\n",
    )
    rows = [f'm{i}@example.com,"{{""email"": true, ""n"": {i}}}"' for i in range(10)]
    workspace.csv("data/vip.csv", "email,prefs", rows)
    workspace.audience(
        "vip", {"csv": "data/vip.csv"}, traits="crm", policy={"maxFieldChangePercent": 20}
    )
    plan = cli("plan", workspace.manifests, "--format", "json")
    assert plan.exit_code == 0, plan.output
    assert plan.json()["violations"] == []
    assert plan.json()["summary"]["users_to_update"] == 10

    # A value the profile holds, replaced by another, is still a change.
    rows = [f'm{i}@example.com,"{{""sms"": false, ""n"": {i}}}"' for i in range(10)]
    workspace.csv("data/vip.csv", "email,prefs", rows)
    plan = cli("plan", workspace.manifests, "--format", "json")
    assert plan.exit_code == 3, plan.output
    (violation,) = plan.json()["violations"]
    assert (
        "changes field 'prefs' from one value to another for 10 of the 10" in (violation["message"])
    )

    workspace.csv(
        "data/vip.csv",
        "email,prefs",
        rows[:1] + [f'm{i}@example.com,"{{""email"": true, ""n"": {i}}}"' for i in range(1, 10)],
    )
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0
    assert proj.user_by_email("m3@example.com").data_fields["prefs"] == {
        "sms": True,
        "n": 3,
        "email": True,
    }
    assert cli("plan", workspace.manifests, "--detailed-exitcode").exit_code == 0
