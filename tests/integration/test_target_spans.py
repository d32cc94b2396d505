"""--target limits what is written, never weakens a check: rules that span the audiences of
a destination (two mappings setting one member's field differently; the field guards'
limits, the smallest of every audience mapping the field) hold for a targeted plan as for
a full one, in both engines."""

from __future__ import annotations

import pytest

from tests.integration.test_safety import project, writes

MAPPING = (
    "apiVersion: reconciler/v1\nkind: TraitMapping\nmetadata: {name: crm}\n"
    "spec: {fields: {planTier: plan}}\n"
)


@pytest.fixture(params=["100000", "1"], ids=["python", "duckdb"])
def engine(request, monkeypatch):
    monkeypatch.setenv("RECONCILER_ENGINE_THRESHOLD", request.param)


def seed(server, n: int = 10) -> None:
    proj = project(server)
    vip = proj.add_list("vip", None)
    everyone = proj.add_list("all", None)
    for i in range(n):
        email = f"m{i}@example.com"
        proj.subscribe_direct(vip, email=email, data_fields={"planTier": "gold"})
        proj.subscribe_direct(everyone, email=email, data_fields={"planTier": "gold"})


def two_mappings(workspace, vip_rows: list[str], all_rows: list[str]) -> None:
    """'vip' and 'all' (one destination) both map planTier, each from its own export."""
    workspace.write("traits.yaml", MAPPING)
    workspace.csv("data/vip.csv", "email,plan", vip_rows)
    workspace.csv("data/all.csv", "email,plan", all_rows)
    workspace.audience("vip", {"csv": "data/vip.csv"}, traits="crm")
    workspace.audience("all", {"csv": "data/all.csv"}, traits="crm")


def test_a_targeted_plan_does_not_write_a_field_another_audience_sets_differently(
    workspace, cli, emulator_server, engine
):
    # The CRM says m0 is platinum, the billing export behind 'all' says gold: a full plan
    # writes neither and says so. --target vip read only vip's source, planned platinum,
    # and apply wrote it; the next full plan reported the conflict, too late.
    seed(emulator_server)
    two_mappings(
        workspace,
        [f"m{i}@example.com,{'platinum' if i == 0 else 'gold'}" for i in range(10)],
        [f"m{i}@example.com,gold" for i in range(10)],
    )
    full = cli("plan", workspace.manifests, "--format", "json")
    assert full.json()["summary"]["users_to_update"] == 0, full.output
    (issue,) = full.json()["destinations"][0]["field_issues"]

    targeted = cli("plan", workspace.manifests, "--target", "vip", "--format", "json")
    assert targeted.exit_code == full.exit_code, targeted.output
    assert targeted.json()["summary"]["users_to_update"] == 0, targeted.output
    assert targeted.json()["destinations"][0]["field_issues"] == [issue]
    assert "field 'planTier' gets" in issue["reason"]
    # Said on stderr: which audiences were read beyond the targets, and why.
    (line,) = [x for x in targeted.stderr.splitlines() if "not targeted" in x]
    assert "'all'" in line and "planTier" in line, targeted.stderr

    applied = cli("apply", workspace.manifests, "--target", "vip", "--yes")
    assert "Nothing to send" in applied.output, applied.output
    assert writes(emulator_server) == []
    assert project(emulator_server).user_by_email("m0@example.com").data_fields["planTier"] == (
        "gold"
    )


def test_only_the_targeted_members_fields_are_planned_from_an_audience_read_beside_them(
    workspace, cli, emulator_server, engine
):
    # 'all' is read for conflicts only: its own member (m10, gold in its source, silver in
    # Iterable) and its field 'score', which vip does not map, are not written.
    seed(emulator_server)
    proj = project(emulator_server)
    (everyone,) = [x.id for x in proj.lists.values() if x.name == "all"]
    proj.subscribe_direct(everyone, email="m10@example.com", data_fields={"planTier": "silver"})
    workspace.write(
        "traits-all.yaml",
        "apiVersion: reconciler/v1\nkind: TraitMapping\nmetadata: {name: crm-all}\n"
        "spec: {fields: {planTier: plan, score: {from: score, type: number}}}\n",
    )
    workspace.write("traits.yaml", MAPPING)
    workspace.csv("data/vip.csv", "email,plan", [f"m{i}@example.com,gold" for i in range(10)])
    workspace.csv(
        "data/all.csv", "email,plan,score", [f"m{i}@example.com,gold,{i}" for i in range(11)]
    )
    workspace.audience("vip", {"csv": "data/vip.csv"}, traits="crm")
    workspace.audience("all", {"csv": "data/all.csv"}, traits="crm-all")
    full = cli("plan", workspace.manifests, "--format", "json")
    assert full.json()["summary"]["users_to_update"] == 11, full.output

    targeted = cli("plan", workspace.manifests, "--target", "vip", "--format", "json")
    assert targeted.exit_code == 0, targeted.output
    assert targeted.json()["summary"]["users_to_update"] == 0, targeted.output
    assert targeted.json()["destinations"][0]["field_issues"] == []


def test_an_audience_beside_the_targets_whose_source_cannot_be_read_leaves_the_field_unwritten(
    workspace, cli, emulator_server, engine, monkeypatch
):
    # 'all' reads a warehouse whose password only its nightly job holds: whether it sets
    # m0 another plan cannot be known, so vip's planTier is not written (said, with what to
    # do); vip's membership is still planned, and m10 joins without the field.
    monkeypatch.delenv("TARGET_SPANS_PASSWORD", raising=False)
    seed(emulator_server)
    workspace.write("traits.yaml", MAPPING)
    workspace.csv(
        "data/vip.csv",
        "email,plan",
        [f"m{i}@example.com,{'platinum' if i == 0 else 'gold'}" for i in range(11)],
    )
    workspace.audience("vip", {"csv": "data/vip.csv"}, traits="crm")
    workspace.audience(
        "all",
        {
            "sql": "SELECT email, plan FROM members",
            "url": "postgresql://app:${TARGET_SPANS_PASSWORD}@127.0.0.1:54329/crm",
        },
        traits="crm",
    )
    # An audience mapping none of vip's fields is not read (its source is broken too).
    workspace.audience("other", {"csv": "data/missing.csv"})

    targeted = cli("plan", workspace.manifests, "--target", "vip", "--format", "json")
    body = targeted.json()
    assert body["summary"]["users_to_update"] == 0, targeted.output
    assert body["summary"]["members_to_add"] == 1
    (issue,) = body["destinations"][0]["field_issues"]
    assert issue["audience"] == "vip"
    assert "field 'planTier' is not written by this --target plan" in issue["reason"]
    assert "TARGET_SPANS_PASSWORD" in issue["reason"]
    assert "missing.csv" not in targeted.output

    applied = cli("apply", workspace.manifests, "--target", "vip", "--yes")
    assert applied.exit_code in (0, 1), applied.output
    proj = project(emulator_server)
    assert proj.user_by_email("m0@example.com").data_fields["planTier"] == "gold"
    assert "planTier" not in proj.user_by_email("m10@example.com").data_fields


def test_a_targeted_plan_is_held_to_the_smallest_clear_limit_of_every_audience_mapping_the_field(
    workspace, cli, emulator_server, engine
):
    # 'vip' allows clearing half its members' planTier; 'all', mapping the same field,
    # keeps the default 10%. A full plan holds the field to 10% (one field per user,
    # whichever list's mapping writes it); --target vip held it to vip's 50% alone, and
    # apply cleared 3 of 10 members' planTier, which the full plan blocks.
    seed(emulator_server)
    workspace.write("traits.yaml", MAPPING)
    workspace.csv(
        "data/vip.csv",
        "email,plan",
        [f"m{i}@example.com,{'' if i < 3 else 'gold'}" for i in range(10)],
    )
    workspace.audience(
        "vip", {"csv": "data/vip.csv"}, traits="crm", policy={"maxFieldClearPercent": 50}
    )
    # 'all' maps planTier too, from the same export, under the default limit (10%).
    workspace.audience("all", {"csv": "data/vip.csv"}, traits="crm")

    full = cli("plan", workspace.manifests, "--format", "json")
    assert full.exit_code == 3, full.output
    (violation,) = full.json()["violations"]
    assert violation["rule"] == "field_clears"
    assert "more than maxFieldClearPercent 10%" in violation["message"]

    targeted = cli("plan", workspace.manifests, "--target", "vip", "--format", "json")
    assert targeted.exit_code == 3, targeted.output
    (violation,) = targeted.json()["violations"]
    assert (violation["list_name"], violation["rule"]) == ("vip", "field_clears")
    assert "for 3 of the 10 members" in violation["message"]
    assert "more than maxFieldClearPercent 10%" in violation["message"]
    applied = cli("apply", workspace.manifests, "--target", "vip", "--yes")
    assert applied.exit_code == 3, applied.output
    assert writes(emulator_server) == []


def test_a_targeted_plan_is_held_to_a_change_limit_another_audience_mapping_the_field_sets(
    workspace, cli, emulator_server, engine
):
    # 'all' sets maxFieldChangePercent 20 (opt-in); 'vip' sets none. A full plan changing
    # planTier on 5 of 10 members is blocked; --target vip had no limit at all.
    seed(emulator_server)
    workspace.write("traits.yaml", MAPPING)
    workspace.csv(
        "data/vip.csv",
        "email,plan",
        [f"m{i}@example.com,{'silver' if i < 5 else 'gold'}" for i in range(10)],
    )
    workspace.audience("vip", {"csv": "data/vip.csv"}, traits="crm")
    workspace.audience(
        "all", {"csv": "data/vip.csv"}, traits="crm", policy={"maxFieldChangePercent": 20}
    )
    assert cli("plan", workspace.manifests).exit_code == 3

    targeted = cli("plan", workspace.manifests, "--target", "vip", "--format", "json")
    assert targeted.exit_code == 3, targeted.output
    (violation,) = targeted.json()["violations"]
    assert (violation["list_name"], violation["rule"]) == ("vip", "field_changes")
    assert "for 5 of the 10 members" in violation["message"]
    assert "more than maxFieldChangePercent 20%" in violation["message"]


def test_a_saved_targeted_plan_is_stale_once_an_audience_read_beside_it_changes(
    workspace, cli, emulator_server, engine, tmp_path
):
    # The plan of vip read all.csv for conflicts: all.csv rewritten before the merge to
    # set m0 another plan made the saved plan wrong (it would write vip's value), yet
    # apply --plan took it, its digest holding vip's sources alone (m0 still read for its
    # score, the values read were the same).
    seed(emulator_server)
    workspace.write(
        "traits.yaml",
        "apiVersion: reconciler/v1\nkind: TraitMapping\nmetadata: {name: crm}\n"
        "spec: {fields: {planTier: plan, score: {from: score, type: number}}}\n",
    )
    rows = [f"m{i}@example.com,{'platinum' if i == 0 else 'gold'},{i}" for i in range(10)]
    workspace.csv("data/vip.csv", "email,plan,score", rows)
    workspace.csv("data/all.csv", "email,plan,score", rows)
    workspace.audience("vip", {"csv": "data/vip.csv"}, traits="crm")
    workspace.audience("all", {"csv": "data/all.csv"}, traits="crm")
    planfile = tmp_path / "vip.plan"
    saved = cli("plan", workspace.manifests, "--target", "vip", "--out", planfile)
    assert saved.exit_code == 0, saved.output
    rows[0] = "m0@example.com,gold,0"
    workspace.csv("data/all.csv", "email,plan,score", rows)

    refused = cli("apply", "--plan", planfile, "--yes")
    assert refused.exit_code == 4, refused.output
    assert "(manifests/data/all.csv changed)" in refused.stderr
    assert writes(emulator_server) == []
    assert project(emulator_server).user_by_email("m0@example.com").data_fields["planTier"] == (
        "gold"
    )


@pytest.mark.parametrize(
    "vip_size, all_size", [(10, 20), (20, 10)], ids=["all-duckdb", "vip-duckdb"]
)
def test_a_conflict_is_found_when_one_audience_is_planned_in_duckdb_and_the_other_in_python(
    workspace, cli, emulator_server, monkeypatch, vip_size, all_size
):
    # From 15 rows an audience is planned in DuckDB: the one beside the target and the
    # target meet in the workspace whichever is the large one.
    monkeypatch.setenv("RECONCILER_ENGINE_THRESHOLD", "15")
    seed(emulator_server)
    two_mappings(
        workspace,
        [f"m{i}@example.com,{'platinum' if i == 0 else 'gold'}" for i in range(vip_size)],
        [f"m{i}@example.com,gold" for i in range(all_size)],
    )
    targeted = cli("plan", workspace.manifests, "--target", "vip", "--format", "json")
    (issue,) = targeted.json()["destinations"][0]["field_issues"]
    assert "field 'planTier' gets" in issue["reason"], targeted.output
    assert targeted.json()["summary"]["users_to_update"] == 0, targeted.output
    big = "all" if all_size > vip_size else "vip"
    assert f"reading audience {big!r} into DuckDB" in targeted.stderr
