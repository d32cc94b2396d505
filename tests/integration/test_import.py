"""`reconciler import`: adopt existing Iterable lists, then a plan shows no changes.

Every test talks to the emulator over loopback HTTP through the real CLI.
"""

from __future__ import annotations

import csv
import os
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from ruamel.yaml import YAML

from reconciler.adopt import slug
from reconciler.manifest import load_manifests
from tests.apply.limits import file_size_limit
from tests.conftest import EMULATOR_API_KEY
from tests.integration.conftest import API_KEY_VAR, Workspace

WRITES = ("POST", "DELETE", "PUT")


@pytest.fixture
def typed_workspace(tmp_path, monkeypatch, fast_client, make_emulator_server):
    def make(project_type: str):
        server = make_emulator_server(project_type=project_type)
        monkeypatch.setenv(API_KEY_VAR, "test-key")
        monkeypatch.chdir(tmp_path)
        ws = Workspace(tmp_path, server.base_url, project_type)
        ws.destination()
        return ws, server.emulator

    return make


def read_yaml(path: Path) -> dict:
    return YAML(typ="safe").load(path.read_text())


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def writes(emulator) -> list:
    return [r for r in emulator.request_log if r.method in WRITES]


# duckdb: what a list of millions takes (streamed to a file, sorted and written by DuckDB)
ENGINES = pytest.mark.parametrize("engine", ["python", "duckdb"])


@ENGINES
def test_hybrid_import_round_trips_to_an_empty_plan(typed_workspace, cli, monkeypatch, engine):
    monkeypatch.setenv("RECONCILER_ENGINE", engine)
    ws, emulator = typed_workspace("hybrid")
    proj = emulator.project("default")
    vip = proj.add_list("vip")
    proj.subscribe_direct(vip, email="only-email@example.com")
    proj.subscribe_direct(vip, user_id="only-id")
    proj.subscribe_direct(vip, email="both@example.com", user_id="U-Both")
    beta = proj.add_list("Beta testers!", description="Early access [managed-by: reconciler]")
    proj.subscribe_direct(beta, email="both@example.com")
    proj.subscribe_direct(beta, email="Grace@Example.com")
    proj.add_list("Empty one")
    proj.add_list("Engaged", list_type="Dynamic")
    ids_of_dup = [proj.add_list("dup"), proj.add_list("dup")]
    out = ws.manifests / "imported"
    emulator.clear_log()

    result = cli("import", ws.manifests, "--destination", "prod", "--out", out)

    assert result.exit_code == 0, result.output
    # Counts said as every count is: a plural only for other than one.
    assert "'vip' (3 members in " in result.stdout
    assert "'Empty one' (0 members in " in result.stdout
    assert "member in" not in result.stdout
    assert writes(emulator) == []  # import only reads
    assert sorted(p.name for p in out.iterdir()) == [
        "beta-testers.csv",
        "beta-testers.yaml",
        "empty-one.csv",
        "empty-one.yaml",
        "vip.csv",
        "vip.yaml",
    ]
    assert "a Dynamic list" in result.stderr
    for dup in ids_of_dup:
        assert f"skipped list {dup} 'dup': 2 Standard lists share this name" in result.stderr

    vip_doc = read_yaml(out / "vip.yaml")
    assert vip_doc == {
        "apiVersion": "reconciler/v1",
        "kind": "Audience",
        "metadata": {"name": "vip"},
        "spec": {"destination": "prod", "listId": vip, "members": {"csv": "vip.csv"}},
    }
    # hybrid lists are read with preferUserId: the userId where the profile has one
    assert read_csv(out / "vip.csv") == [
        {"email": "", "userId": "U-Both"},
        {"email": "only-email@example.com", "userId": ""},
        {"email": "", "userId": "only-id"},
    ]
    beta_doc = read_yaml(out / "beta-testers.yaml")
    assert beta_doc["metadata"]["name"] == "beta-testers"
    assert beta_doc["spec"]["listName"] == "Beta testers!"
    assert beta_doc["spec"]["listId"] == beta
    assert beta_doc["spec"]["description"] == "Early access"  # ownership marker not copied
    assert read_csv(out / "empty-one.csv") == []

    plan = cli("plan", ws.manifests, "--detailed-exitcode")
    assert plan.exit_code == 0, plan.output
    assert "No changes" in plan.stdout
    assert writes(emulator) == []


@ENGINES
@pytest.mark.parametrize("project_type", ["userId", "email"])
def test_user_id_and_email_projects_round_trip(
    typed_workspace, cli, monkeypatch, project_type, engine
):
    monkeypatch.setenv("RECONCILER_ENGINE", engine)
    ws, emulator = typed_workspace(project_type)
    proj = emulator.project("default")
    members = proj.add_list("members")
    if project_type == "userId":
        proj.subscribe_direct(members, user_id="Case-Sensitive-1")
        proj.subscribe_direct(members, user_id="case-sensitive-1")
        proj.subscribe_direct(members, user_id="u-2", email="u2@example.com")
        expected_rows = [
            {"userId": "Case-Sensitive-1"},
            {"userId": "case-sensitive-1"},
            {"userId": "u-2"},
        ]
    else:
        proj.subscribe_direct(members, email="Zed@Example.com")
        proj.subscribe_direct(members, email="amy@example.com")
        expected_rows = [{"email": "amy@example.com"}, {"email": "zed@example.com"}]
    out = ws.manifests / "imported"

    result = cli("import", ws.manifests, "-d", "prod", "--out", out)

    assert result.exit_code == 0, result.output
    assert read_csv(out / "members.csv") == expected_rows
    # The header says which identifier the rows hold: the project's own, not a hybrid
    # project's "userId where the profile has one".
    header = " ".join(
        line[2:] for line in (out / "members.yaml").read_text().splitlines()[1:] if line[:2] == "# "
    )
    said = {"userId": "by userId, as userID-based", "email": "by email, as email-based"}
    assert f"one per row as Iterable reported them ({said[project_type]} projects" in header
    assert "where the profile has one" not in header
    plan = cli("plan", ws.manifests, "--detailed-exitcode")
    assert plan.exit_code == 0, plan.output


@ENGINES
def test_manifest_comments_say_where_the_list_came_from(typed_workspace, cli, monkeypatch, engine):
    monkeypatch.setenv("RECONCILER_ENGINE", engine)
    ws, emulator = typed_workspace("hybrid")
    proj = emulator.project("default")
    list_id = proj.add_list("Promo: 50% off #1")
    created = proj.lists[list_id].created_at
    for i in range(3):
        proj.subscribe_direct(list_id, email=f"p{i}@example.com")
    out = ws.root / "adopted"

    result = cli("import", ws.manifests, "-d", "prod", "--out", out)

    assert result.exit_code == 0, result.output
    (manifest,) = out.glob("*.yaml")
    text = manifest.read_text()
    first, *rest = text.splitlines()
    # The schema comment editors read comes first; none exists yet, so it points where the
    # README says to save it, beside the manifest directory.
    assert first == "# yaml-language-server: $schema=../schema/reconciler.schema.json"
    header = " ".join(line[2:] for line in rest if line.startswith("# "))
    created_day = datetime.fromtimestamp(created / 1000, UTC).date().isoformat()
    assert header.startswith("Imported by `reconciler import` on ")
    assert f'Iterable list {list_id} "Promo: 50% off #1"' in header
    assert f"(created {created_day}): 3 members." in header
    assert "# the list's name in Iterable" in text
    # YAML-special characters in the name survive as data, not as a comment
    assert read_yaml(manifest)["spec"]["listName"] == "Promo: 50% off #1"
    assert manifest.name == "promo-50-off-1.yaml"
    # The output directory was outside the manifests; together they plan to no changes.
    combined = ws.root / "combined"
    combined.mkdir()
    for src in [*ws.manifests.iterdir(), *out.iterdir()]:
        (combined / src.name).write_bytes(src.read_bytes())
    assert cli("plan", combined, "--detailed-exitcode").exit_code == 0


def test_an_imported_lists_member_count_has_thousands_separators(typed_workspace, cli):
    """The manifest's header said "1200 members" where every other count reads "1,200"."""
    ws, emulator = typed_workspace("hybrid")
    proj = emulator.project("default")
    big, one = proj.add_list("big"), proj.add_list("one")
    for i in range(1_200):
        proj.subscribe_direct(big, email=f"m{i}@example.com")
    proj.subscribe_direct(one, email="solo@example.com")
    out = ws.root / "adopted"

    result = cli("import", ws.manifests, "-d", "prod", "--out", out)

    assert result.exit_code == 0, result.output
    assert "Imported 2 lists from destination 'prod', skipped 0." in result.stdout

    def header(name: str) -> str:
        lines = (out / f"{name}.yaml").read_text().splitlines()
        return " ".join(line[2:] for line in lines if line.startswith("# "))

    assert ": 1,200 members. " in header("big")
    assert ": 1 member. " in header("one")


def test_import_refuses_to_overwrite_unless_forced(typed_workspace, cli):
    ws, emulator = typed_workspace("hybrid")
    proj = emulator.project("default")
    vip = proj.add_list("vip")
    proj.subscribe_direct(vip, email="a@example.com")
    out = ws.root / "adopted"
    assert cli("import", ws.manifests, "-d", "prod", "--out", out).exit_code == 0
    (out / "vip.csv").write_text("email\nedited@example.com\n")

    again = cli("import", ws.manifests, "-d", "prod", "--out", out)

    assert again.exit_code == 1
    assert "would overwrite 2 existing files:" in again.stderr
    assert "--force" in again.stderr
    assert (out / "vip.csv").read_text() == "email\nedited@example.com\n"
    (out / "vip.yaml").unlink()
    one = cli("import", ws.manifests, "-d", "prod", "--out", out)
    assert one.exit_code == 1
    assert "would overwrite 1 existing file:" in one.stderr

    forced = cli("import", ws.manifests, "-d", "prod", "--out", out, "--force")
    assert forced.exit_code == 0, forced.output
    assert read_csv(out / "vip.csv") == [{"email": "a@example.com", "userId": ""}]


@pytest.mark.parametrize("reads", ["getUsers", "export"])
def test_a_full_temp_dir_is_named_with_its_variable_not_a_bug(
    typed_workspace, cli, monkeypatch, tmp_path, reads
):
    """A temporary directory without room for the lists' reads was "internal error:
    OSError ... This is a bug in reconciler"."""
    monkeypatch.setenv("RECONCILER_MEMBER_READS", reads)
    temp = tmp_path / "temp"
    monkeypatch.setenv("RECONCILER_DUCKDB_TEMP_DIR", str(temp))
    ws, emulator = typed_workspace("hybrid")
    proj = emulator.project("default")
    vip = proj.add_list("vip")
    for i in range(3000):
        proj.subscribe_direct(vip, email=f"someone-with-a-long-name-{i}@example.com")
    out = ws.root / "adopted"
    with file_size_limit(64_000):  # as a full disk refuses a write
        result = cli("import", ws.manifests, "-d", "prod", "--out", out)
    assert result.exit_code == 1, result.output
    assert f"cannot write in the temporary directory {temp} (File too large)" in result.stderr
    assert "set RECONCILER_DUCKDB_TEMP_DIR to a directory with more room" in result.stderr
    assert "internal error" not in result.stderr
    assert not (out / "vip.csv").exists()


def test_lists_another_destination_of_the_project_manages_are_skipped(typed_workspace, cli):
    """Two destinations naming one project (the same host and key): importing one of them
    must not adopt the lists the other manages, or both would sync the same list from two
    sources. Another project's audience of the same name does not count."""
    ws, emulator = typed_workspace("hybrid")
    proj = emulator.project("default")
    ws.destination("lifecycle")
    ws.audience("vip", {"inline": ["a@example.com"]}, destination="lifecycle")
    managed = proj.add_list("vip")
    proj.subscribe_direct(managed, email="a@example.com")
    ws.write(
        "dest-sandbox.yaml",
        "apiVersion: reconciler/v1\nkind: Destination\nmetadata: {name: sandbox}\n"
        "spec: {region: sandbox, projectType: hybrid}\n",
    )
    ws.audience("churn", {"inline": ["c@example.com"]}, destination="sandbox")
    churn = proj.add_list("churn")
    proj.subscribe_direct(churn, email="c@example.com")
    out = ws.manifests / "imported"

    result = cli("import", ws.manifests, "-d", "prod", "--out", out)

    assert result.exit_code == 0, result.output
    assert (
        f"skipped list {managed} 'vip': already managed by audience 'vip' of destination "
        "'lifecycle'"
    ) in result.stderr
    # The sandbox's audience "churn" is another project's: list churn here is imported
    # (under another audience name, "churn" being taken).
    assert [p.name for p in out.glob("*.yaml")] == [f"churn-{churn}.yaml"]


def test_a_former_list_an_audiences_plans_hold_back_from_is_not_adopted(typed_workspace, cli):
    """A renamed key (vip -> vip-customers) leaves list 'vip' undeclared, and the plans of
    'vip-customers' hold back from it who left 'vip' themselves. import adopted 'vip' as
    an audience, which ended that hold: the plan right after added that member to
    'vip-customers'. It is skipped now, named, and the plan after shows no changes."""
    ws, emulator = typed_workspace("hybrid")
    proj = emulator.project("default")
    people = ["a@example.com", "b@example.com"]
    ws.csv("data/people.csv", "email", people)
    ws.audience("vip", {"csv": "data/people.csv"})
    assert cli("apply", ws.manifests, "--yes").exit_code == 0
    (old_id,) = [i for i, r in proj.lists.items() if r.name == "vip"]
    proj.self_unsubscribe(proj.user_by_email("b@example.com"), list_id=old_id)
    (ws.manifests / "aud-vip.yaml").unlink()
    ws.audience("vip-customers", {"csv": "data/people.csv"})
    assert cli("apply", ws.manifests, "--yes").exit_code == 0
    out = ws.manifests / "imported"

    result = cli("import", ws.manifests, "-d", "prod", "--out", out)

    assert result.exit_code == 0, result.output
    assert (
        f"skipped list {old_id} 'vip': a former list of audience 'vip-customers': plans "
        "hold back from list 'vip-customers' whoever left this one themselves, which "
        "adopting it would end; leave it as it is"
    ) in result.stderr
    assert not out.exists() or list(out.iterdir()) == []
    plan = cli("plan", ws.manifests, "--detailed-exitcode")
    assert plan.exit_code == 0, plan.output
    assert "held back: left the list themselves: 1" in plan.stdout


@pytest.mark.field_profile
def test_a_list_an_apply_just_deleted_is_not_adopted_from_the_lagging_index(typed_workspace, cli):
    """Iterable's list index and getUsers lag its writes (the field profile): an import
    right after an apply that pruned list 'old' still saw it, with its members, and wrote
    it as an audience, so the plan after created the list again and added them all. import
    now waits out the lag after an apply to its destination, or to another naming the
    same project, as plan does."""
    ws, emulator = typed_workspace("hybrid")
    proj = emulator.project("default")
    ws.csv("data/people.csv", "email", ["a@example.com", "b@example.com"])
    # Written through another destination naming the same project (the same host and
    # key): its apply's writes lag as much.
    ws.destination("lifecycle", prune=True, policy={"allowListDeletion": True})
    ws.audience("vip", {"csv": "data/people.csv"}, destination="lifecycle")
    ws.audience("old", {"csv": "data/people.csv"}, destination="lifecycle")
    assert cli("apply", ws.manifests, "--yes").exit_code == 0
    (ws.manifests / "aud-old.yaml").unlink()
    pruned = cli("apply", ws.manifests, "--yes")
    assert pruned.exit_code == 0, pruned.output
    assert [x.name for x in proj.lists.values()] == ["vip"]
    out = ws.manifests / "imported"

    result = cli("import", ws.manifests, "-d", "prod", "--out", out)

    assert result.exit_code == 0, result.output
    assert "Nothing imported" in result.stdout
    assert not out.exists() or list(out.iterdir()) == []
    plan = cli("plan", ws.manifests, "--detailed-exitcode")
    assert plan.exit_code == 0, plan.output


def test_a_list_made_for_an_audience_declared_no_more_is_not_adopted(typed_workspace, cli):
    """Audience 'vip' renamed 'vip-customers' in the manifests, not yet applied: the plan
    that creates 'vip-customers' holds back from it who left list 'vip' themselves, 'vip'
    being made for an audience no manifest declares (planning.orphan_lists). import
    adopted 'vip' as audience 'vip' again, which ended that: the plan after put that
    member on the new list. A list reconciler made for an audience declared no more is
    now skipped, named, and the plan holds them back."""
    ws, emulator = typed_workspace("hybrid")
    proj = emulator.project("default")
    ws.csv("data/people.csv", "email", ["a@example.com", "b@example.com"])
    ws.audience("vip", {"csv": "data/people.csv"})
    assert cli("apply", ws.manifests, "--yes").exit_code == 0
    (old_id,) = [i for i, r in proj.lists.items() if r.name == "vip"]
    proj.self_unsubscribe(proj.user_by_email("b@example.com"), list_id=old_id)
    (ws.manifests / "aud-vip.yaml").unlink()
    ws.audience("vip-customers", {"csv": "data/people.csv"})
    out = ws.manifests / "imported"

    result = cli("import", ws.manifests, "-d", "prod", "--out", out)

    assert result.exit_code == 0, result.output
    assert (
        f"skipped list {old_id} 'vip': made by reconciler for audience 'vip', which no "
        "manifest declares any more"
    ) in result.stderr
    assert not out.exists() or list(out.iterdir()) == []
    plan = cli("plan", ws.manifests, "--format", "json")
    assert plan.exit_code == 0, plan.output
    summary = plan.json()["summary"]
    assert (summary["members_left_themselves"], summary["members_to_add"]) == (1, 1)


def test_lists_reconciler_made_are_adopted_into_a_repository_declaring_none(typed_workspace, cli):
    """A new repository for a project whose lists reconciler made from another (the old
    repository lost, or the manifests moved): import skipped every one of them as 'made
    by reconciler for audience 'vip', which no manifest declares any more', and imported
    nothing. No plan holds another list to their departures (none is created, no list's
    marker names them), so adopting them ends no hold: they are imported, and the plan
    after shows no changes."""
    ws, emulator = typed_workspace("hybrid")
    proj = emulator.project("default")
    ws.csv("data/people.csv", "email", ["a@example.com", "b@example.com"])
    ws.audience("vip", {"csv": "data/people.csv"})
    ws.audience("beta", {"inline": ["c@example.com"]})
    assert cli("apply", ws.manifests, "--yes").exit_code == 0
    (vip_id,) = [i for i, r in proj.lists.items() if r.name == "vip"]
    proj.self_unsubscribe(proj.user_by_email("b@example.com"), list_id=vip_id)
    # The new repository: the destination alone.
    for name in ("aud-vip.yaml", "aud-beta.yaml", "data/people.csv"):
        (ws.manifests / name).unlink()
    out = ws.manifests / "imported"

    result = cli("import", ws.manifests, "-d", "prod", "--out", out)

    assert result.exit_code == 0, result.output
    assert "skipped list" not in result.stderr, result.stderr
    assert sorted(read_yaml(p)["metadata"]["name"] for p in out.glob("*.yaml")) == [
        "beta",
        "vip",
    ]
    plan = cli("plan", ws.manifests, "--detailed-exitcode")
    assert plan.exit_code == 0, plan.output


def test_a_list_a_later_list_was_created_after_is_not_adopted_with_it(typed_workspace, cli):
    """Key 'vip' renamed 'vip-customers' and applied: the new list's marker names 'vip' as
    the list it was created after, and its plans hold back who left 'vip' themselves.
    Imported into a repository declaring neither, 'vip' is skipped (adopted, it would end
    that hold), 'vip-customers' is imported, and its plan still holds them back once its
    source lists them again."""
    ws, emulator = typed_workspace("hybrid")
    proj = emulator.project("default")
    ws.csv("data/people.csv", "email", ["a@example.com", "b@example.com"])
    ws.audience("vip", {"csv": "data/people.csv"})
    assert cli("apply", ws.manifests, "--yes").exit_code == 0
    (old_id,) = [i for i, r in proj.lists.items() if r.name == "vip"]
    proj.self_unsubscribe(proj.user_by_email("b@example.com"), list_id=old_id)
    (ws.manifests / "aud-vip.yaml").unlink()
    ws.audience("vip-customers", {"csv": "data/people.csv"})
    assert cli("apply", ws.manifests, "--yes").exit_code == 0
    for name in ("aud-vip-customers.yaml", "data/people.csv"):
        (ws.manifests / name).unlink()
    out = ws.manifests / "imported"

    result = cli("import", ws.manifests, "-d", "prod", "--out", out)

    assert result.exit_code == 0, result.output
    assert (
        f"skipped list {old_id} 'vip': made by reconciler for audience 'vip', which no "
        "manifest declares any more"
    ) in result.stderr
    assert [read_yaml(p)["metadata"]["name"] for p in out.glob("*.yaml")] == ["vip-customers"]
    # The audience pointed at the CRM again, which still holds b.
    (imported_csv,) = out.glob("*.csv")
    rows = read_csv(imported_csv)
    assert [r["email"] for r in rows] == ["a@example.com"]
    with imported_csv.open("a", newline="") as handle:
        csv.DictWriter(handle, fieldnames=list(rows[0])).writerow({"email": "b@example.com"})
    plan = cli("plan", ws.manifests, "--format", "json")
    assert plan.exit_code == 0, plan.output
    summary = plan.json()["summary"]
    assert (summary["members_left_themselves"], summary["members_to_add"]) == (1, 0)


def test_lists_already_managed_are_skipped_and_names_never_collide(typed_workspace, cli):
    ws, emulator = typed_workspace("hybrid")
    proj = emulator.project("default")
    ws.audience("vip", {"inline": ["a@example.com"]})
    managed = proj.add_list("vip")
    proj.subscribe_direct(managed, email="a@example.com")
    upper = proj.add_list("VIP")  # a valid name, but vip.yaml already means audience "vip"
    proj.subscribe_direct(upper, email="b@example.com")
    other = proj.add_list("VIP!")  # slugs to "vip" as well
    out = ws.manifests / "imported"

    result = cli("import", ws.manifests, "-d", "prod", "--out", out)

    assert result.exit_code == 0, result.output
    assert f"skipped list {managed} 'vip': already managed by audience 'vip'" in result.stderr
    names = {
        doc["spec"].get("listName"): doc["metadata"]["name"]
        for doc in (read_yaml(p) for p in out.glob("*.yaml"))
    }
    assert names == {"VIP": f"vip-{upper}", "VIP!": f"vip-{other}"}
    loaded = load_manifests(ws.manifests)
    assert {a.list_name for a in loaded.audiences.values()} == {"vip", "VIP", "VIP!"}
    assert cli("plan", ws.manifests, "--detailed-exitcode").exit_code == 0


def test_list_option_limits_the_import_and_unknown_names_are_errors(typed_workspace, cli):
    ws, emulator = typed_workspace("hybrid")
    proj = emulator.project("default")
    proj.add_list("one")
    proj.add_list("two")
    out = ws.root / "adopted"

    unknown = cli("import", ws.manifests, "-d", "prod", "--out", out, "--list", "three")
    assert unknown.exit_code == 1
    assert "--list names no list in destination 'prod': \"three\"" in unknown.stderr
    assert not out.exists()
    # A near miss is named, and the lists there are listed: the user had to look them up in
    # Iterable's web app.
    slip = cli("import", ws.manifests, "-d", "prod", "--out", out, "--list", "Two", "--list", "x")
    assert slip.exit_code == 1
    assert (
        '--list names no list in destination \'prod\': "Two" (did you mean "two"?), "x"; '
        'its lists are: "one", "two" (give a list\'s name exactly, as Iterable has it)'
    ) in " ".join(slip.stderr.split()), slip.stderr

    # A case slip and a typo at once (an Iterable list named "VIP customers"): as near.
    proj.add_list("VIP customers")
    both = cli("import", ws.manifests, "-d", "prod", "--out", out, "--list", "vip customer")
    assert both.exit_code == 1
    assert '"vip customer" (did you mean "VIP customers"?)' in both.stderr, both.stderr

    only = cli("import", ws.manifests, "-d", "prod", "--out", out, "--list", "two")
    assert only.exit_code == 0, only.output
    # Counted as the rest of the tool counts: "1 list", "2 lists", never "list(s)".
    assert "Imported 1 list from destination 'prod', skipped 0." in only.stdout
    assert sorted(p.name for p in out.iterdir()) == ["two.csv", "two.yaml"]


def test_unknown_destination_is_an_error_naming_the_known_ones(typed_workspace, cli):
    ws, _ = typed_workspace("hybrid")
    result = cli("import", ws.manifests, "-d", "staging", "--out", ws.root / "x")
    assert result.exit_code == 1
    assert "unknown destination 'staging'; destinations are: prod" in result.stderr


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Beta testers!", "beta-testers"),
        ("  Ünïcode — list  ", "unicode-list"),
        (".hidden", "hidden"),
        ("日本語", ""),
        ("a" * 300, "a" * 200),
    ],
)
def test_slug_makes_valid_audience_names(name, expected):
    assert slug(name) == expected


@ENGINES
def test_member_csvs_are_owner_only_and_an_empty_import_says_so(
    typed_workspace, cli, monkeypatch, engine
):
    monkeypatch.setenv("RECONCILER_ENGINE", engine)
    ws, emulator = typed_workspace("hybrid")
    proj = emulator.project("default")
    vip = proj.add_list("vip")
    proj.subscribe_direct(vip, email="a@example.com")
    out = ws.root / "adopted"
    (ws.root / "schema").mkdir()
    (ws.root / "schema" / "reconciler.schema.json").write_text("{}")
    out.mkdir()
    (out / "vip.csv").write_text("email\n")
    (out / "vip.csv").chmod(0o644)  # an older import's file, overwritten with --force

    result = cli("import", ws.manifests, "-d", "prod", "--out", out, "--force")

    assert result.exit_code == 0, result.output
    assert (out / "vip.csv").stat().st_mode & 0o777 == 0o600
    assert read_csv(out / "vip.csv") == [{"email": "a@example.com", "userId": ""}]
    assert (out / "vip.yaml").read_text().splitlines()[0] == (
        "# yaml-language-server: $schema=../schema/reconciler.schema.json"
    )
    assert "owner-only" in result.stdout

    # Everything is managed now: nothing to import, and the command says so.
    again = cli("import", ws.root, "-d", "prod", "--out", ws.root / "more")
    assert again.exit_code == 0, again.output
    assert "Nothing imported: destination 'prod'" in again.stdout
    assert "Imported 0" not in again.stdout


def test_import_says_its_retries_as_they_start(typed_workspace, cli, monkeypatch, refused_port):
    ws, _emulator = typed_workspace("hybrid")
    port = refused_port
    monkeypatch.setenv("RECONCILER_MAX_RETRIES", "1")
    ws.destination(baseUrl=f"http://127.0.0.1:{port}")
    result = cli("import", ws.manifests, "-d", "prod", "--out", ws.root / "adopted")
    assert result.exit_code == 1
    assert f"destination 'prod': GET /api/lists: could not connect to 127.0.0.1:{port} (" in (
        result.stderr
    )
    assert "retry 1 of 1" in result.stderr


def test_lists_no_manifest_can_name_are_skipped_and_the_plan_still_loads(typed_workspace, cli):
    ws, emulator = typed_workspace("hybrid")
    proj = emulator.project("default")
    unnamable = {
        proj.add_list(name): name
        for name in ("line\nbreak", "", "   ", "x" * 256, "rtl\u202eoverride", "tab\there")
    }
    for list_id in unnamable:
        proj.subscribe_direct(list_id, email="a@example.com")
    kept = proj.add_list("kept")
    proj.subscribe_direct(kept, email="a@example.com")
    proj.add_list("Hidden", list_type="Internal")
    out = ws.manifests / "imported"

    result = cli("import", ws.manifests, "-d", "prod", "--out", out)

    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["kept.csv", "kept.yaml"]
    for list_id, name in unnamable.items():
        assert f"skipped list {list_id} {name!r}: no manifest can name it (" in result.stderr
    assert "'Hidden': an Internal list" in result.stderr
    assert "no manifest can name it (a list name cannot be blank): rename it" in result.stderr
    # The manifests written all load: the plan right after shows no changes.
    plan = cli("plan", ws.manifests, "--detailed-exitcode")
    assert plan.exit_code == 0, plan.output


def test_names_made_for_lists_never_collide_and_are_safe_file_names(typed_workspace, cli):
    ws, emulator = typed_workspace("hybrid")
    proj = emulator.project("default")
    ws.audience("taken", {"inline": []}, listName="elsewhere")
    proj.add_list("elsewhere")  # managed by audience "taken"
    names = ["vip", "Vip!", "Taken", "-", "-opt", "CON", "nul.txt", "com1"]
    ids = {name: proj.add_list(name) for name in names}
    # A list named as the slug with an id suffix another list gets: that name is taken.
    ids["vip-suffix"] = proj.add_list(f"vip-{ids['Vip!']}")
    ids["taken-suffix"] = proj.add_list(f"taken-{ids['Taken']}")
    for list_id in ids.values():
        proj.subscribe_direct(list_id, email="a@example.com")
    out = ws.manifests / "imported"

    result = cli("import", ws.manifests, "-d", "prod", "--out", out)

    assert result.exit_code == 0, result.output
    audiences = {
        doc["spec"].get("listName", doc["metadata"]["name"]): doc["metadata"]["name"]
        for doc in (read_yaml(p) for p in out.glob("*.yaml"))
    }
    assert len(audiences) == len(ids)  # one manifest per list: none overwrote another
    assert len({a.casefold() for a in audiences.values()}) == len(ids)
    assert audiences["vip"] == "vip"
    assert audiences[f"vip-{ids['Vip!']}"] == f"vip-{ids['Vip!']}"  # its own name
    assert audiences["Vip!"] == f"vip-{ids['Vip!']}-2"
    assert audiences["Taken"] == f"taken-{ids['Taken']}-2"
    for name in ("-", "-opt", "CON", "nul.txt", "com1"):
        audience = audiences[name]
        assert not audience.startswith(("-", ".")), audience
        assert audience.split(".")[0].casefold() not in {"con", "nul", "com1"}, audience
    assert audiences["CON"] == "list-con"
    plan = cli("plan", ws.manifests, "--detailed-exitcode")
    assert plan.exit_code == 0, plan.output


def test_a_description_is_written_as_the_plan_compares_it(typed_workspace, cli):
    ws, emulator = typed_workspace("hybrid")
    proj = emulator.project("default")
    # A copy of a list an older reconciler made: its marker mid-text, by hand. (One whose
    # marker names an audience no manifest declares is not adopted: see
    # test_a_list_made_for_an_audience_declared_no_more_is_not_adopted.)
    proj.add_list("copy", description="Promo [managed-by: reconciler; run 1a2b3c4d]  (copy)")
    assert cli("import", ws.manifests, "-d", "prod", "--out", ws.manifests / "in").exit_code == 0
    plan = cli("plan", ws.manifests, "--format", "json")
    assert plan.exit_code == 0, plan.output
    (dest,) = plan.json()["destinations"]
    assert dest["notes"] == []  # no "description ... in Iterable, ... in the manifest"


def test_a_description_with_line_breaks_of_any_kind_is_written_as_it_is(typed_workspace, cli):
    """A description is any text, set by hand or by another tool: NEL (U+0085, what a
    Windows "…" becomes when its byte is read as Latin-1) was written bare into a quoted
    YAML scalar, which reads it back as a space, so every plan after the import noted a
    description that differs from the list's."""
    ws, emulator = typed_workspace("hybrid")
    proj = emulator.project("default")
    descriptions = [
        "Pro\x85mo",
        "two\nlines\r\nthree",
        "p\u2028q\u2029r",
        "tab\tand\x1b[1mb\x07",
    ]
    for n, description in enumerate(descriptions):
        proj.add_list(f"list-{n}", description=description)
    out = ws.manifests / "in"
    assert cli("import", ws.manifests, "-d", "prod", "--out", out).exit_code == 0

    written = [read_yaml(out / f"list-{n}.yaml")["spec"]["description"] for n in range(4)]
    assert written == descriptions
    plan = cli("plan", ws.manifests, "--format", "json")
    assert plan.exit_code == 0, plan.output
    assert plan.json()["destinations"][0]["notes"] == []


def test_an_invisible_character_in_a_list_name_is_written_so_that_it_shows(typed_workspace, cli):
    """A zero-width space (or a soft hyphen, a direction mark) went into listName bare, so
    the imported manifest read as another list's name ("Gone" for the list "Gone\\u200b"),
    which validate passed in silence; import now writes it as an escape, and validate warns
    of one written bare, naming the file, line and list."""
    ws, emulator = typed_workspace("hybrid")
    proj = emulator.project("default")
    proj.subscribe_direct(proj.add_list("Gone\u200b"), email="a@example.com")
    proj.add_list("shy", description="soft\u00adhyphen\u200e")
    out = ws.manifests / "in"
    imported = cli("import", ws.manifests, "-d", "prod", "--out", out)
    assert imported.exit_code == 0, imported.output

    (manifest,) = [p for p in out.glob("*.yaml") if p.name != "shy.yaml"]
    text = manifest.read_text(encoding="utf-8")
    assert "\u200b" not in text
    assert 'listName: "Gone\\u200b"' in text, text
    assert read_yaml(manifest)["spec"]["listName"] == "Gone\u200b"
    shy = (out / "shy.yaml").read_text(encoding="utf-8")
    assert read_yaml(out / "shy.yaml")["spec"]["description"] == "soft\u00adhyphen\u200e"
    assert not [ch for ch in "\u00ad\u200e" if ch in shy], shy
    validated = cli("validate", ws.manifests)
    assert validated.exit_code == 0, validated.output
    assert "warning" not in validated.stderr, validated.stderr
    plan = cli("plan", ws.manifests, "--detailed-exitcode")
    assert plan.exit_code == 0, plan.output

    # The same name written bare by hand: said where, and how to write it.
    manifest.write_text(text.replace('"Gone\\u200b"', '"Gone\u200b"'), encoding="utf-8")
    assert read_yaml(manifest)["spec"]["listName"] == "Gone\u200b"
    warned = cli("validate", ws.manifests)
    assert warned.exit_code == 0, warned.output
    line = next(n for n, x in enumerate(text.splitlines(), 1) if x.startswith("  listName:"))
    assert warned.stderr.startswith("warning: "), warned.stderr
    assert (
        f"in/{manifest.name}:{line}:13: listName 'Gone\\u200b' holds an invisible "
        "character (U+200B ZERO WIDTH SPACE) written as it is, so the file shows another "
        'list\'s name; write it as an escape inside double quotes: listName: "Gone\\u200b"'
    ) in warned.stderr


def test_text_yaml_1_1_tools_read_as_something_else_is_quoted(typed_workspace, cli):
    """reconciler reads YAML 1.2, where `no`, `On` and `12:30:00` are text, and wrote them
    bare; the YAML 1.1 tools a reviewer's checks run (PyYAML, yamllint's truthy rule, many
    editors' plugins) read a list named `no` as false and a description `12:30:00` as the
    number 45000. Such text is now quoted, so every reader sees the list's own name."""
    ws, emulator = typed_workspace("hybrid")
    proj = emulator.project("default")
    names = ["no", "On", "y", "12:30:00", "0777", "2024-01-01"]
    for name in names:
        proj.add_list(name, description=name)
    out = ws.manifests / "in"
    imported = cli("import", ws.manifests, "-d", "prod", "--out", out)
    assert imported.exit_code == 0, imported.output

    yaml_1_1 = YAML(typ="safe", pure=True)
    yaml_1_1.version = (1, 1)
    read = {}
    for manifest in out.glob("*.yaml"):
        document = yaml_1_1.load(manifest.read_text(encoding="utf-8"))
        spec = document["spec"]
        assert spec["description"] == spec.get("listName", document["metadata"]["name"])
        read[spec["description"]] = document
        assert document == read_yaml(manifest), manifest.read_text(encoding="utf-8")
    assert sorted(read) == sorted(names)
    plan = cli("plan", ws.manifests, "--detailed-exitcode")
    assert plan.exit_code == 0, plan.output


@ENGINES
def test_a_run_again_removes_what_a_killed_import_left_half_written(
    typed_workspace, cli, monkeypatch, engine
):
    monkeypatch.setenv("RECONCILER_ENGINE", engine)
    ws, emulator = typed_workspace("hybrid")
    proj = emulator.project("default")
    vip = proj.add_list("vip")
    proj.subscribe_direct(vip, email="a@example.com")
    out = ws.manifests / "imported"
    out.mkdir()
    # What an import killed (SIGKILL) while writing list vip leaves: hidden files holding
    # members' identities, which `git add -A` would commit.
    left = [out / ".vip.csv.partial", out / ".vip.yaml.partial", out / ".vip.csv.partial.d"]
    left[0].write_text("email,userId\nleaver@example.com,\n")
    left[1].write_text("apiVersion: reconciler/v1\nkind: Aud")
    left[2].mkdir()
    (left[2] / "vip.csv").write_text("email,userId\nleaver@example.com,\n")

    result = cli("import", ws.manifests, "-d", "prod", "--out", out)

    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["vip.csv", "vip.yaml"]
    assert (out / "vip.csv").stat().st_mode & 0o777 == 0o600
    assert read_csv(out / "vip.csv") == [{"email": "a@example.com", "userId": ""}]


def test_a_run_again_removes_the_directory_an_earlier_version_left_in_a_killed_import(
    typed_workspace, cli
):
    # From 60924c8 to 3792ebe, the DuckDB engine wrote a list's CSV in
    # tempfile.mkdtemp(prefix=".reconciler-import-", dir=OUT) and moved it into place: an
    # import killed there left that directory, holding members' identities, in the
    # repository; after an upgrade nothing knew its name. Made here as that version made it.
    ws, emulator = typed_workspace("hybrid")
    proj = emulator.project("default")
    proj.subscribe_direct(proj.add_list("vip"), email="a@example.com")
    out = ws.manifests / "imported"
    out.mkdir()
    left = Path(tempfile.mkdtemp(prefix=".reconciler-import-", dir=out))
    (left / "churn.csv").write_text("email,userId\nleaver@example.com,\n")
    # A directory of the person's own that happens to look alike, and one left by a
    # killed import of that version that may still be running (changed in the last hour).
    own = out / ".reconciler-import-notes123"
    own.mkdir()
    (own / "notes.txt").write_text("mine")
    recent = Path(tempfile.mkdtemp(prefix=".reconciler-import-", dir=out))
    (recent / "vip.csv").write_text("email,userId\n")
    hour_ago = time.time() - 3700
    for path in (left, left / "churn.csv", own, own / "notes.txt"):
        os.utime(path, (hour_ago, hour_ago))

    result = cli("import", ws.manifests, "-d", "prod", "--out", out)

    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [own.name, recent.name, "vip.csv", "vip.yaml"]
    )
    assert (own / "notes.txt").read_text() == "mine"


def test_both_engines_write_the_same_bytes(typed_workspace, cli, monkeypatch):
    # A list crossing RECONCILER_ENGINE_THRESHOLD is written by the other engine; its CSV
    # must not change line by line (a diff of every row on the next import --force).
    ws, emulator = typed_workspace("hybrid")
    proj = emulator.project("default")
    tricky = proj.add_list("tricky")
    for email, user_id in [
        ("q@example.com", 'has"quote'),
        (None, "comma,id"),
        (None, " lead"),
        (None, "=cmd|' /C calc'!A0"),
        ("me@example.com", None),
        (None, "#comment"),
        (None, "a#b"),
        (None, 'x"'),
    ]:
        proj.subscribe_direct(tricky, email=email, user_id=user_id)
    written = {}
    for engine in ("python", "duckdb"):
        monkeypatch.setenv("RECONCILER_ENGINE", engine)
        out = ws.root / engine
        assert cli("import", ws.manifests, "-d", "prod", "--out", out).exit_code == 0
        written[engine] = (out / "tricky.csv").read_bytes()
    assert written["python"] == written["duckdb"]
    assert written["python"].startswith(b"email,userId\n")
    assert b',"#comment"\n' in written["python"]
    # ... and reads back as Iterable has them: the plan over them shows no changes.
    for name in ("tricky.yaml", "tricky.csv"):
        (ws.manifests / name).write_bytes((ws.root / "python" / name).read_bytes())
    assert cli("plan", ws.manifests, "--detailed-exitcode").exit_code == 0


def test_force_never_overwrites_the_files_the_manifests_are_read_from(typed_workspace, cli):
    # `import` refused to overwrite manifests/dest-prod.yaml for a list named "dest-prod"
    # and said to pass --force, which replaced the Destination with an Audience.
    ws, emulator = typed_workspace("hybrid")
    proj = emulator.project("default")
    members_csv = ws.csv("data/members.csv", "email", ["a@example.com"])
    ws.audience("beta", {"csv": "data/members.csv"})
    beta = proj.add_list("beta")
    proj.subscribe_direct(beta, email="a@example.com")
    named_as_files = {name: proj.add_list(name) for name in ("dest-prod", "members")}
    for list_id in named_as_files.values():
        proj.subscribe_direct(list_id, email="b@example.com")
    before = {p: p.read_bytes() for p in (ws.manifests / "dest-prod.yaml", members_csv)}

    first = cli("import", ws.manifests, "-d", "prod", "--out", ws.manifests, "--list", "dest-prod")
    second = cli(
        "import",
        ws.manifests,
        "-d",
        "prod",
        "--out",
        members_csv.parent,
        "--list",
        "members",
        "--force",
    )

    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    assert {p: p.read_bytes() for p in before} == before
    assert f"audience 'dest-prod-{named_as_files['dest-prod']}'" in first.stdout
    assert f"audience 'members-{named_as_files['members']}'" in second.stdout
    plan = cli("plan", ws.manifests, "--detailed-exitcode")
    assert plan.exit_code == 0, plan.output


@ENGINES
def test_an_email_shaped_user_id_with_capitals_is_written_as_a_user_id(
    typed_workspace, cli, monkeypatch, engine
):
    # An app that once used the address as the userId, unchanged in case: getUsers names
    # the profile by it. Iterable stores emails lowercase, so it can only be a userId; in
    # the email column the plan right after removed the member and added the address.
    monkeypatch.setenv("RECONCILER_ENGINE", engine)
    ws, emulator = typed_workspace("hybrid")
    proj = emulator.project("default")
    people = proj.add_list("people")
    proj.subscribe_direct(people, email="ann@example.com", user_id="Ann@Example.com")
    proj.subscribe_direct(people, user_id="Bob@Example.com")
    proj.subscribe_direct(people, email="carol@example.com")
    out = ws.manifests / "imported"

    result = cli("import", ws.manifests, "-d", "prod", "--out", out)

    assert result.exit_code == 0, result.output
    assert read_csv(out / "people.csv") == [
        {"email": "", "userId": "Ann@Example.com"},
        {"email": "", "userId": "Bob@Example.com"},
        {"email": "carol@example.com", "userId": ""},
    ]
    plan = cli("plan", ws.manifests, "--detailed-exitcode")
    assert plan.exit_code == 0, plan.output


def test_the_schema_comment_points_beside_the_manifest_directory_given_one_file(
    typed_workspace, cli
):
    ws, emulator = typed_workspace("hybrid")
    emulator.project("default").add_list("vip")
    out = ws.manifests / "imported"
    result = cli("import", ws.manifests / "dest-prod.yaml", "-d", "prod", "--out", out)
    assert result.exit_code == 0, result.output
    # As with the directory given: where `reconciler schema > schema/...` puts it.
    assert (out / "vip.yaml").read_text().splitlines()[0] == (
        "# yaml-language-server: $schema=../../schema/reconciler.schema.json"
    )


def test_a_refused_key_is_said_with_the_destination_it_belongs_to(
    typed_workspace, cli, monkeypatch, tmp_path
):
    # As plan and status say it: with several destinations (and keys), the error says
    # which destination's key to check.
    ws, _emulator = typed_workspace("hybrid")
    monkeypatch.setenv(API_KEY_VAR, "not-the-key")
    result = cli("import", "--destination", "prod", ws.manifests, "--out", tmp_path / "out")
    assert result.exit_code == 1
    assert "error: destination 'prod': GET /api/lists: Iterable rejected the API key" in (
        result.stderr
    )


@ENGINES
def test_a_full_output_directory_is_said_as_such_naming_it(
    typed_workspace, cli, monkeypatch, tmp_path, engine
):
    """An --out directory without room for a list's CSV was, when DuckDB wrote it,
    "getUsers for list N answered lines reconciler cannot read: IO Error ... No space
    left": Iterable blamed for the disk. Both engines now say which directory is full."""
    monkeypatch.setenv("RECONCILER_ENGINE", engine)
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "getUsers")
    monkeypatch.setenv("RECONCILER_DUCKDB_TEMP_DIR", str(tmp_path / "temp"))
    ws, emulator = typed_workspace("hybrid")
    proj = emulator.project("default")
    vip = proj.add_list("vip")
    for i in range(3000):
        proj.subscribe_direct(vip, email=f"someone-with-a-long-name-{i:04d}@example.com")
    out = ws.root / "adopted"
    # The read (a line per member in the temporary directory) fits; the CSV, a comma and a
    # header longer, does not: as a disk that fills up while the CSV is written.
    read_size = 3000 * len("someone-with-a-long-name-0000@example.com\n")
    with file_size_limit(read_size + 1500):
        result = cli("import", ws.manifests, "-d", "prod", "--out", out)
    assert result.exit_code == 1, result.output
    said = " ".join(result.stderr.split())
    assert f"no room to write the files of list {vip} 'vip' in {out}" in said, said
    assert "(File too large)" in said
    assert "free some space there, or choose another --out directory" in said
    assert "cannot read" not in said and "internal error" not in said
    assert list(out.iterdir()) == []


def _three_lists(proj) -> dict[str, int]:
    """Lists big (30 members), mid (20) and small (10), by name: read in that order."""
    ids = {}
    for name, size in (("big", 30), ("mid", 20), ("small", 10)):
        ids[name] = proj.add_list(name)
        for i in range(size):
            proj.subscribe_direct(ids[name], email=f"{name}-{i}@example.com")
    return ids


def test_a_read_failing_in_a_way_that_ends_the_import_stops_the_other_reads(
    typed_workspace, cli, monkeypatch, tmp_path
):
    # As plan's (test_large_reads): the error came only once every other list had been
    # read to its end, queued reads started after it and all.
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "getUsers")
    monkeypatch.setenv("RECONCILER_LIST_READ_CONCURRENCY", "1")
    ws, emulator = typed_workspace("email")
    proj = emulator.project("default")
    ids = _three_lists(proj)
    # Each answer's first byte takes a moment: the read started as the first one failed
    # is still waiting for it when it is told to stop.
    emulator.faults.update(
        {
            "failing_list_ids": [ids["big"]],
            "failing_list_status": 400,
            "get_users_first_byte_seconds": 0.5,
        }
    )
    out = tmp_path / "out"

    result = cli("import", ws.manifests, "--destination", "prod", "--out", out)

    assert result.exit_code == 1, result.output
    assert "GET /api/lists/getUsers: HTTP 400" in result.stderr
    read = [r.query for r in emulator.request_log if r.path == "/api/lists/getUsers"]
    # The largest is read first; the next had started when it failed; the last never.
    assert f"listId={ids['big']}&" in read[0]
    assert not any(f"listId={ids['small']}&" in query for query in read), read
    assert not out.exists() or not list(out.iterdir())


def test_a_list_deleted_since_the_index_was_read_is_named_and_the_others_are_imported(
    typed_workspace, cli, monkeypatch, tmp_path
):
    """A list deleted while an import runs (a long one, someone at Iterable's web app)
    answers getUsers with 400 invalidListId. That ended the whole import, as any 400
    does, with 'HTTP 400 ... invalidListId' and no file for any list; it is now that list
    left out, named, and the others imported (exit 1: run import again)."""
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "getUsers")
    monkeypatch.setenv("RECONCILER_LIST_READ_CONCURRENCY", "1")
    ws, emulator = typed_workspace("email")
    proj = emulator.project("default")
    ids = _three_lists(proj)
    emulator.faults.update(
        {
            "failing_list_ids": [ids["big"]],
            "failing_list_status": 400,
            "fail_message": f"error.lists.invalidListId({ids['big']})",
        }
    )
    out = tmp_path / "out"

    result = cli("import", ws.manifests, "--destination", "prod", "--out", out)

    assert result.exit_code == 1, result.output
    assert (
        f"skipped list {ids['big']} 'big': Iterable answered that it has no such list "
        "(invalidListId): deleted since import read the list index; nothing was written "
        "for it: run import again"
    ) in result.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "mid.csv",
        "mid.yaml",
        "small.csv",
        "small.yaml",
    ]
    assert len(read_csv(out / "mid.csv")) == 20


def test_an_out_directory_on_another_drive_than_the_manifests_gets_a_schema_uri(
    typed_workspace, cli, monkeypatch, tmp_path
):
    """On Windows, os.path.relpath raises ValueError for two paths on different drives
    (manifests on C:, --out on D:): import ended in an internal error once every list had
    been read, writing nothing. Simulated here with a relpath that takes the first
    directory under / for the drive, as ntpath's refuses another drive; the schema comment
    then names the schema by its file URI."""
    real = os.path.relpath

    def ntpath_like(path, start=os.curdir):
        if Path(path).absolute().parts[1] != Path(start).absolute().parts[1]:
            raise ValueError("path is on mount 'C:', start on mount 'D:'")
        return real(path, start)

    ws, emulator = typed_workspace("hybrid")
    emulator.project("default").add_list("vip")
    # Another directory under /, as D: is another drive: /var/tmp beside pytest's /tmp.
    other_drive = Path(tempfile.mkdtemp(dir="/var/tmp"))
    assert other_drive.parts[1] != tmp_path.parts[1]
    monkeypatch.setattr(os.path, "relpath", ntpath_like)
    try:
        result = cli("import", ws.manifests, "-d", "prod", "--out", other_drive / "imported")
        assert result.exit_code == 0, result.output
        first = (other_drive / "imported" / "vip.yaml").read_text().splitlines()[0]
    finally:
        shutil.rmtree(other_drive, ignore_errors=True)
    schema = (ws.root / "schema" / "reconciler.schema.json").as_uri()
    assert first == f"# yaml-language-server: $schema={schema}"


@ENGINES
@pytest.mark.parametrize("project_type", ["hybrid", "userId"])
def test_members_whose_user_id_a_plan_refuses_are_said_at_import(
    typed_workspace, cli, monkeypatch, engine, project_type
):
    """Iterable holds userIds an app sent as text ('null', 'None', '#N/A', '1.2E+15'),
    which a plan refuses from a source as an export's or a spreadsheet's mistakes: the
    plan right after the import skipped those rows and exited 1, while import had said it
    would show no changes. import now says so for each such list, with the count (and
    no member), in both engines."""
    monkeypatch.setenv("RECONCILER_ENGINE", engine)
    ws, emulator = typed_workspace(project_type)
    proj = emulator.project("default")
    odd = proj.add_list("odd")
    for user_id in ("null", "None", "#N/A", "1.2E+15", "U-1", "U-2"):
        proj.subscribe_direct(odd, user_id=user_id)
    if project_type == "hybrid":
        proj.subscribe_direct(odd, email="null@example.com")
    fine = proj.add_list("fine")
    proj.subscribe_direct(fine, user_id="U-3")

    result = cli("import", ws.manifests, "-d", "prod", "--out", ws.manifests / "in")

    assert result.exit_code == 0, result.output
    assert (
        f"list {odd} 'odd': 4 members written with a userId a plan takes for an export's "
        "mistake (a missing value such as null, a spreadsheet error, a number in exponent "
        "form), though Iterable holds it (an app sent that text): every plan skips those "
        "rows of odd.csv, keeping the members on the list, and exits 1; fix those profiles "
        "in Iterable"
    ) in result.stderr
    assert f"list {fine} 'fine'" not in result.stderr
    assert "should now show no changes but the rows named above. " in result.stdout
    plan = cli("plan", ws.manifests)
    assert plan.exit_code == 1, plan.output
    assert "4 members skipped" in plan.stdout
    assert "members_to_remove" not in plan.stdout


@pytest.mark.parametrize("reads", ["getUsers", "export"])
@ENGINES
def test_a_placeholder_member_is_written_with_its_user_id_and_kept_once_it_has_an_email(
    typed_workspace, cli, monkeypatch, engine, reads
):
    """An email-based project names a profile made from a userId alone (Segment's Iterable
    Lists destination subscribes such members with preferUserId: true) by the placeholder
    email Iterable gave it. import wrote that placeholder alone, so once the app gave the
    person a real address (updateEmail), the plan removed her by it and subscribed the
    placeholder, a second profile. import now writes the userId beside it, by which the
    plan keeps her; a list without such members keeps its one column."""
    monkeypatch.setenv("RECONCILER_ENGINE", engine)
    monkeypatch.setenv("RECONCILER_MEMBER_READS", reads)
    ws, emulator = typed_workspace("email")
    proj = emulator.project("default")
    vip = proj.add_list("vip")
    anonymous = proj.add_user(user_id="U-1", list_ids=[vip])
    proj.add_user(email="b@x.io", user_id="U-2", list_ids=[vip])
    plain = proj.add_list("plain")
    proj.add_user(email="c@x.io", list_ids=[plain])
    out = ws.manifests / "imported"

    result = cli("import", ws.manifests, "-d", "prod", "--out", out)

    assert result.exit_code == 0, result.output
    assert read_csv(out / "vip.csv") == [
        {"email": anonymous.email, "userId": "U-1"},
        {"email": "b@x.io", "userId": ""},
    ]
    assert read_csv(out / "plain.csv") == [{"email": "c@x.io"}]
    # Said as a plan says what it read besides the members (its "also read" line).
    [also] = [line for line in result.stdout.splitlines() if "also read" in line]
    assert also.startswith("  (also read: the userIds of 1 placeholder email's profile read ("), (
        result.stdout
    )
    assert also.endswith("), to write them beside the placeholders)"), also
    assert cli("plan", ws.manifests, "--detailed-exitcode").exit_code == 0
    moved = httpx.post(
        f"{ws.base_url}/api/users/updateEmail",
        headers={"Api-Key": EMULATOR_API_KEY},
        json={"currentUserId": "U-1", "newEmail": "real@x.io"},
    )
    assert moved.status_code == 200, moved.text
    applied = cli("apply", ws.manifests, "--yes", "--allow-removals")
    assert applied.exit_code == 0, applied.output
    assert "kept 1 member whose email Iterable has changed" in applied.stdout
    assert sorted(proj.members(vip)) == ["b@x.io", "real@x.io"]
    assert len(proj.users) == 3  # no profile made at the placeholder


@pytest.mark.parametrize("project_type", ["email", "hybrid", "userId"])
def test_many_lists_imported_from_one_export_are_cut_from_it_sorted_by_list(
    typed_workspace, cli, monkeypatch, project_type
):
    """import cut each list's file from the export by a scan of the whole export (lists
    times users, as a plan did before export_by_list); from EXPORT_BY_LIST_FROM lists it
    reads the export sorted by list once, and writes the same CSVs as getUsers reads give."""
    from reconciler.members.engine import export_table

    sorted_by_list: list[int] = []
    original = export_table.export_by_list

    def counted(engine, export, list_ids):
        sorted_by_list.append(len(list_ids))
        return original(engine, export, list_ids)

    monkeypatch.setattr(export_table, "export_by_list", counted)
    ws, emulator = typed_workspace(project_type)
    proj = emulator.project("default")
    lists = export_table.EXPORT_BY_LIST_FROM + 1
    for n in range(lists):
        list_id = proj.add_list(f"many-{n}")
        for i in range(6):
            person = (n * 3 + i) % 20  # members on several lists
            if project_type == "userId":
                proj.subscribe_direct(list_id, user_id=f"U-{person}")
            elif project_type == "hybrid" and person % 3 == 0:
                proj.subscribe_direct(list_id, user_id=f"U-{person}")  # by userId alone
            else:
                user_id = f"U-{person}" if person % 2 else None
                proj.subscribe_direct(list_id, email=f"p{person}@example.com", user_id=user_id)

    written = {}
    for reads in ("getUsers", "export"):
        monkeypatch.setenv("RECONCILER_MEMBER_READS", reads)
        out = ws.root / reads
        result = cli("import", ws.manifests, "-d", "prod", "--out", out)
        assert result.exit_code == 0, result.output
        written[reads] = {p.name: p.read_bytes() for p in sorted(out.glob("*.csv"))}
    assert len(written["export"]) == lists
    assert written["export"] == written["getUsers"]
    assert sorted_by_list == [lists]
