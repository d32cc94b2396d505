"""userID-based and email-based projects, each against an emulator of that type."""

from __future__ import annotations

import json

import httpx
import pytest

from reconciler.emulator import Faults
from tests.conftest import EMULATOR_API_KEY
from tests.integration.conftest import API_KEY_VAR, Workspace
from tests.integration.test_iterable_answers import ROUTES, profile_route


@pytest.fixture
def typed_workspace(tmp_path, monkeypatch, fast_client, make_emulator_server):
    def make(project_type: str):
        server = make_emulator_server(project_type=project_type)
        monkeypatch.setenv(API_KEY_VAR, "test-key")
        monkeypatch.chdir(tmp_path)
        ws = Workspace(tmp_path, server.base_url, project_type)
        ws.destination()
        return ws, server.emulator.project("default")

    return make


def test_user_id_project_keys_and_reads_by_user_id(typed_workspace, cli):
    ws, proj = typed_workspace("userId")
    ws.audience("vip", {"inline": [{"userId": "U-1"}, {"userId": "u-1", "email": "x@y.io"}]})
    assert cli("apply", ws.manifests, "--yes").exit_code == 0
    (lid,) = proj.lists
    assert sorted(proj.members(lid)) == ["U-1", "u-1"]
    # Identified by its userId alone: the source's email is no identifier here (profiles
    # may share one), and no field a trait mapping does not name is written.
    created = proj.find_user(user_id="u-1")
    assert created is not None and created.email is None
    again = cli("plan", ws.manifests, "--detailed-exitcode")
    assert again.exit_code == 0, again.output


def test_email_project_members_need_an_email(typed_workspace, cli):
    ws, proj = typed_workspace("email")
    ws.audience("vip", {"inline": ["A@Example.com", {"userId": "only-id"}]})
    result = cli("apply", ws.manifests, "--yes")
    assert result.exit_code == 1  # the userId-only member is skipped and named
    assert "email-based projects identify users by email" in result.stdout
    (lid,) = proj.lists
    assert proj.members(lid) == ["a@example.com"]
    assert cli("plan", ws.manifests, "--detailed-exitcode").exit_code == 1  # still skipped


@pytest.mark.parametrize("reads", ["getUsers", "export", "asyncExport"])
@pytest.mark.parametrize("engine", ["python", "duckdb"])
def test_a_row_with_an_email_alone_keeps_its_member_in_a_user_id_project(
    typed_workspace, cli, monkeypatch, engine, reads
):
    """Such a row is skipped (userID-based projects identify users by userId), and rows
    skipped as invalid never cause removals: the profile on the list that has this email
    stays, though Iterable reports it by its userId."""
    monkeypatch.setenv("RECONCILER_ENGINE", engine)
    monkeypatch.setenv("RECONCILER_MEMBER_READS", reads)
    ws, proj = typed_workspace("userId")
    ws.audience("vip", {"inline": [{"userId": "U-1"}]})
    assert cli("apply", ws.manifests, "--yes").exit_code == 0
    (lid,) = proj.lists
    proj.add_user(email="b@x.io", user_id="U-2", list_ids=[lid])  # the app set its email
    proj.add_user(email="c@x.io", user_id="U-3", list_ids=[lid])  # a real leaver
    ws.audience("vip", {"inline": [{"userId": "U-1"}, {"email": "B@x.io"}]})
    result = cli("apply", ws.manifests, "--yes", "--allow-removals")
    assert result.exit_code == 1  # the row is still a problem until it is fixed
    assert "no userId" in result.stdout
    assert "kept 1 member that rows skipped as invalid stand for" in result.stdout
    assert sorted(proj.members(lid)) == ["U-1", "U-2"]
    again = cli("plan", ws.manifests, "--format", "json")
    summary = json.loads(again.stdout)["summary"]
    (lp,) = json.loads(again.stdout)["destinations"][0]["lists"]
    assert (summary["members_to_remove"], lp["kept_for_skipped_rows"]) == (0, 1)


@pytest.mark.parametrize("engine", ["python", "duckdb"])
def test_an_email_that_is_no_address_does_not_keep_a_member_off_a_user_id_projects_list(
    typed_workspace, cli, monkeypatch, engine
):
    """userID-based projects identify users by userId and reconciler sends them nothing
    else: a CRM's placeholder in the email column (`n/a`) is no reason to skip the member,
    under either engine."""
    monkeypatch.setenv("RECONCILER_ENGINE", engine)
    ws, proj = typed_workspace("userId")
    ws.csv("m.csv", "userId,email", ["U-1,n/a", "U-2,b@x.io", "U-3,", "U-4, N/A "])
    ws.audience("vip", {"csv": "m.csv"})
    result = cli("apply", ws.manifests, "--yes")
    assert result.exit_code == 0, result.output
    assert "invalid email" not in result.output
    (lid,) = proj.lists
    assert sorted(proj.members(lid)) == ["U-1", "U-2", "U-3", "U-4"]
    assert cli("plan", ws.manifests, "--detailed-exitcode").exit_code == 0


@pytest.mark.parametrize("reads", ["getUsers", "export", "asyncExport"])
@pytest.mark.parametrize("engine", ["python", "duckdb"])
def test_a_row_with_a_user_id_alone_keeps_its_member_in_an_email_project(
    typed_workspace, cli, monkeypatch, engine, reads
):
    """Segment's Iterable Lists destination subscribes a member it knows by userId alone
    with preferUserId: true, and an email-based project creates that profile with a
    placeholder email, which getUsers reports. The member's row (a userId, no email) is
    skipped there, and rows skipped as invalid never cause removals: the profile whose
    userId the row names stays on the list, though Iterable reports it by that email."""
    monkeypatch.setenv("RECONCILER_ENGINE", engine)
    monkeypatch.setenv("RECONCILER_MEMBER_READS", reads)
    ws, proj = typed_workspace("email")
    ws.audience("vip", {"inline": ["a@x.io"]})
    assert cli("apply", ws.manifests, "--yes").exit_code == 0
    (lid,) = proj.lists
    anonymous = proj.add_user(user_id="U-2", list_ids=[lid])  # Segment's, by userId
    proj.add_user(email="c@x.io", user_id="U-3", list_ids=[lid])  # a real leaver
    # A CSV: under RECONCILER_ENGINE=duckdb the list is then planned in DuckDB.
    ws.csv("m.csv", "email,userId", ["a@x.io,", ",U-2"])
    ws.audience("vip", {"csv": "m.csv"})
    result = cli("apply", ws.manifests, "--yes", "--allow-removals")
    assert result.exit_code == 1  # the row is still a problem until it is fixed
    assert "no email" in result.stdout
    assert "kept 1 member that rows skipped as invalid stand for" in result.stdout
    assert sorted(proj.members(lid)) == sorted(["a@x.io", anonymous.email])
    again = cli("plan", ws.manifests, "--format", "json")
    summary = json.loads(again.stdout)["summary"]
    (lp,) = json.loads(again.stdout)["destinations"][0]["lists"]
    assert (summary["members_to_remove"], lp["kept_for_skipped_rows"]) == (0, 1)


@pytest.mark.parametrize("reads", ["getUsers", "export", "asyncExport"])
@pytest.mark.parametrize("engine", ["python", "duckdb"])
def test_an_email_changed_in_iterable_keeps_its_member_and_makes_no_second_profile(
    typed_workspace, cli, monkeypatch, engine, reads
):
    """An email-based project whose app changed a member's email (POST
    /api/users/updateEmail) while the source still gives the old one beside the profile's
    userId: the plan removed the member, by her new email, and subscribed the old one,
    a second profile of her outside her unsubscribes. Her profile now stays, the old
    email is not added nor its mapped fields written, and the plan says so; a real
    leaver is still removed."""
    monkeypatch.setenv("RECONCILER_ENGINE", engine)
    monkeypatch.setenv("RECONCILER_MEMBER_READS", reads)
    ws, proj = typed_workspace("email")
    lid = proj.add_list("vip")
    proj.add_user(email="old@x.io", user_id="U-1", list_ids=[lid], data_fields={"tier": "gold"})
    proj.add_user(email="b@x.io", user_id="U-2", list_ids=[lid], data_fields={"tier": "gold"})
    proj.add_user(email="c@x.io", user_id="U-3", list_ids=[lid])  # a real leaver
    moved = httpx.post(
        f"{ws.base_url}/api/users/updateEmail",
        headers={"Api-Key": EMULATOR_API_KEY},
        json={"currentEmail": "old@x.io", "newEmail": "new@x.io"},
    )
    assert moved.status_code == 200, moved.text
    ws.csv("m.csv", "email,userId,tier", ["old@x.io,U-1,silver", "b@x.io,U-2,gold"])
    ws.write(
        "traits.yaml",
        json.dumps(
            {
                "apiVersion": "reconciler/v1",
                "kind": "TraitMapping",
                "metadata": {"name": "crm"},
                "spec": {"fields": {"tier": "tier"}},
            }
        ),
    )
    ws.audience("vip", {"csv": "m.csv"}, traits="crm")
    result = cli("apply", ws.manifests, "--yes", "--allow-removals")
    assert result.exit_code == 0, result.output
    assert "kept 1 member whose email Iterable has changed" in result.stdout
    assert "old@x.io" not in result.output and "new@x.io" not in result.output
    assert sorted(proj.members(lid)) == ["b@x.io", "new@x.io"]
    assert proj.find_user(email="old@x.io") is None
    kept = proj.find_user(email="new@x.io")
    assert kept is not None and kept.data_fields["tier"] == "gold"
    again = cli("plan", ws.manifests, "--format", "json")
    summary = json.loads(again.stdout)["summary"]
    (lp,) = json.loads(again.stdout)["destinations"][0]["lists"]
    assert (summary["members_to_add"], summary["members_to_remove"]) == (0, 0)
    assert lp["kept_for_changed_email"] == 1


@pytest.mark.parametrize("reads", ["getUsers", "export"])
@pytest.mark.parametrize("engine", ["python", "duckdb"])
def test_a_user_id_several_added_rows_share_is_no_changed_email(
    typed_workspace, cli, monkeypatch, engine, reads
):
    """An email-based project does not hold a userId to one person, and sources fill
    it with a stand-in ('0', 'guest') on many rows: a userId on two of a list's adds
    names no one, and the profile under another email that has it is no changed email
    of theirs. The plan took both adds for the leaver's old address, adding neither
    and keeping her on the list; they are now added and she is removed."""
    monkeypatch.setenv("RECONCILER_ENGINE", engine)
    monkeypatch.setenv("RECONCILER_MEMBER_READS", reads)
    ws, proj = typed_workspace("email")
    lid = proj.add_list("vip")
    proj.add_user(email="leaver@x.io", user_id="0", list_ids=[lid])
    proj.add_user(email="stays@x.io", user_id="U-2", list_ids=[lid])
    ws.csv("m.csv", "email,userId", ["a@x.io,0", "b@x.io,0", "stays@x.io,U-2"])
    ws.audience("vip", {"csv": "m.csv"})
    result = cli("apply", ws.manifests, "--yes", "--allow-removals")
    assert result.exit_code == 0, result.output
    assert "whose email Iterable has changed" not in result.stdout
    assert sorted(proj.members(lid)) == ["a@x.io", "b@x.io", "stays@x.io"]


@pytest.mark.parametrize("reads", ["getUsers", "export"])
@pytest.mark.parametrize("engine", ["python", "duckdb"])
def test_a_user_id_another_row_gives_is_no_changed_email(
    typed_workspace, cli, monkeypatch, engine, reads
):
    """As above, the stand-in on one add and on a row already on the list: the source
    gives the userId to two people, so the leaver whose profile Iterable finds by it (an
    email-based project may give several profiles one userId) is no changed email of
    the add's. She was kept on the list and the add not sent; the add is now sent and
    she is removed."""
    monkeypatch.setenv("RECONCILER_ENGINE", engine)
    monkeypatch.setenv("RECONCILER_MEMBER_READS", reads)
    ws, proj = typed_workspace("email")
    lid = proj.add_list("vip")
    proj.add_user(email="leaver@x.io", user_id="0", list_ids=[lid])
    proj.add_user(email="stays@x.io", list_ids=[lid])
    ws.csv("m.csv", "email,userId", ["a@x.io,0", "stays@x.io,0"])
    ws.audience("vip", {"csv": "m.csv"})
    result = cli("apply", ws.manifests, "--yes", "--allow-removals")
    assert result.exit_code == 0, result.output
    assert "whose email Iterable has changed" not in result.stdout
    assert sorted(proj.members(lid)) == ["a@x.io", "stays@x.io"]


@pytest.mark.parametrize("engine", ["python", "duckdb"])
def test_changed_emails_are_looked_for_from_the_removals_when_they_are_fewer(
    tmp_path, monkeypatch, fast_client, make_emulator_server, cli, engine
):
    """A first plan of many rows with userIds against a list with a few members to
    remove read the userId of every add (ten million, at ten times usual size) to find
    an email changed in Iterable; the removed profiles' userIds are read instead, and
    only the add whose userId one of them has is followed: the changed email is still
    kept, the leaver still removed."""
    monkeypatch.setenv("RECONCILER_ENGINE", engine)
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "getUsers")
    server = make_emulator_server(project_type="email")
    monkeypatch.setenv(API_KEY_VAR, "test-key")
    monkeypatch.chdir(tmp_path)
    ws = Workspace(tmp_path, server.base_url, "email")
    ws.destination()
    proj = server.emulator.project("default")
    lid = proj.add_list("vip")
    proj.add_user(email="new@x.io", user_id="U-moved", list_ids=[lid])  # was old@x.io
    proj.add_user(email="gone@x.io", user_id="U-gone", list_ids=[lid])  # a real leaver
    rows = [f"a{i}@x.io,U-{i}" for i in range(40)]
    ws.csv("m.csv", "email,userId", [*rows, "old@x.io,U-moved"])
    ws.audience("vip", {"csv": "m.csv"})
    server.emulator.request_log.clear()
    result = cli("plan", ws.manifests, "--format", "json")
    assert result.exit_code == 3, result.output  # 1 of 2 members removed: over the guard
    plan = json.loads(result.stdout)
    (lp,) = plan["destinations"][0]["lists"]
    assert (plan["summary"]["members_to_add"], plan["summary"]["members_to_remove"]) == (40, 1)
    assert lp["kept_for_changed_email"] == 1
    # Two profiles read by email (the removals), one by userId (the add that has one of
    # theirs); not the 41 adds' userIds.
    assert plan["destinations"][0]["other_reads"][:2] == [
        "the userIds of 2 removed members read, to find emails changed in Iterable",
        "the email of 1 added member's userId read, to find an email changed in Iterable",
    ]
    first = [r.path for r in server.emulator.request_log if r.path.startswith("/api/users/")][:3]
    assert sorted(first) == [
        "/api/users/byUserId/U-moved",
        "/api/users/gone%40x.io",
        "/api/users/new%40x.io",
    ]


@pytest.mark.parametrize("others", [0, 3])  # more adds than removals: read from the removals
@pytest.mark.parametrize("reads", ["getUsers", "export"])
@pytest.mark.parametrize("engine", ["python", "duckdb"])
def test_a_user_id_the_rows_own_profile_has_too_is_no_changed_email(
    typed_workspace, cli, monkeypatch, engine, reads, others
):
    """An email-based project lets several profiles have one userId, and Iterable finds
    the first of them by it. Where that is a leaver's while the row's own email has a
    profile with the userId too, the row is that profile, not an email the leaver's
    changed from: the leaver was kept on the list as a changed email and the row not
    added ('No changes'); the row is now added and the leaver removed."""
    monkeypatch.setenv("RECONCILER_ENGINE", engine)
    monkeypatch.setenv("RECONCILER_MEMBER_READS", reads)
    ws, proj = typed_workspace("email")
    lid = proj.add_list("vip")
    proj.add_user(email="leaver@x.io", user_id="U-1", list_ids=[lid])  # the first with U-1
    proj.add_user(email="row@x.io", user_id="U-1")
    proj.add_user(email="stays@x.io", list_ids=[lid])
    new = [f"new{i}@x.io,N-{i}" for i in range(others)]
    ws.csv("m.csv", "email,userId", ["row@x.io,U-1", "stays@x.io,", *new])
    ws.audience("vip", {"csv": "m.csv"})
    result = cli("apply", ws.manifests, "--yes", "--allow-removals")
    assert result.exit_code == 0, result.output
    assert "whose email Iterable has changed" not in result.stdout
    assert sorted(proj.members(lid)) == sorted(
        ["row@x.io", "stays@x.io", *(f"new{i}@x.io" for i in range(others))]
    )


@pytest.mark.parametrize("user_reads", ["1000", "0.01"])  # per-user reads, or one export
@pytest.mark.parametrize("engine", ["python", "duckdb"])
def test_a_mapped_field_is_read_from_the_members_own_profile_where_its_user_id_is_shared(
    typed_workspace, cli, monkeypatch, engine, user_reads
):
    """An email-based project lets several profiles have one userId. Read by an export,
    a member's mapped fields were matched by the row's userId first, so another
    profile's values (the last with it) stood for hers: her 'gold' was taken for the
    other's 'silver', the source's 'silver' planned as no change, and she kept 'gold'.
    The email identifies her there, as the per-user reads already read her."""
    monkeypatch.setenv("RECONCILER_ENGINE", engine)
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "getUsers")
    monkeypatch.setenv("RECONCILER_USER_READS_PER_SECOND", user_reads)
    ws, proj = typed_workspace("email")
    lid = proj.add_list("vip")
    proj.add_user(email="her@x.io", user_id="U-1", list_ids=[lid], data_fields={"tier": "gold"})
    proj.add_user(email="other@x.io", user_id="U-1", data_fields={"tier": "silver"})
    ws.csv("m.csv", "email,userId,tier", ["her@x.io,U-1,silver"])
    ws.write(
        "traits.yaml",
        json.dumps(
            {
                "apiVersion": "reconciler/v1",
                "kind": "TraitMapping",
                "metadata": {"name": "crm"},
                "spec": {"fields": {"tier": "tier"}},
            }
        ),
    )
    ws.audience("vip", {"csv": "m.csv"}, traits="crm")
    result = cli("apply", ws.manifests, "--yes")
    assert result.exit_code == 0, result.output
    her, other = proj.find_user(email="her@x.io"), proj.find_user(email="other@x.io")
    assert her is not None and her.data_fields["tier"] == "silver"
    assert other is not None and other.data_fields["tier"] == "silver"


@pytest.mark.parametrize(
    "declared,actual,looks_like",
    [
        ("email", "hybrid", "a hybrid or userID-based project"),
        ("email", "userId", "a hybrid or userID-based project"),
        ("hybrid", "email", "an email-based project"),
        ("userId", "email", "an email-based project"),
    ],
)
def test_a_project_type_the_project_is_not_is_named_where_the_export_reads_no_member(
    tmp_path, monkeypatch, make_emulator_server, cli, declared, actual, looks_like
):
    """The export names memberships in the field of the declared type (emailListIds or
    userListIds); declared wrong, every list reads empty while Iterable counts members.
    The audience is left out (nothing written), and the message names the likely cause and
    where projectType is written, rather than only "run plan again"."""
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "export")
    server = make_emulator_server(project_type=actual)
    monkeypatch.setenv(API_KEY_VAR, "test-key")
    monkeypatch.chdir(tmp_path)
    proj = server.emulator.project("default")
    lid = proj.add_list("vip")
    for i in range(3):
        email = f"m{i}@x.io" if actual != "userId" else None
        proj.add_user(email=email, user_id=None if actual == "email" else f"U-{i}", list_ids=[lid])
    ws = Workspace(tmp_path, server.base_url, declared)
    ws.destination()
    ws.audience("vip", {"inline": [{"email": "new@x.io", "userId": "U-9"}]})
    result = cli("apply", ws.manifests, "--yes", "--allow-unsafe")
    assert result.exit_code == 1
    text = " ".join(result.stdout.split())
    assert (
        f"destination 'prod' declares projectType {declared}, whose memberships the export "
        f"reads from {'emailListIds' if declared == 'email' else 'userListIds'}"
    ) in text
    assert f"Iterable's answers look like {looks_like}" in text
    assert "check projectType in manifests/dest-prod.yaml:9" in text
    assert len(proj.members(lid)) == 3 and len(proj.users) == 3  # nothing written


@pytest.mark.parametrize("engine", ["python", "duckdb"])
@pytest.mark.parametrize("actual", ["hybrid", "userId"])
def test_a_list_read_naming_a_member_by_user_id_is_no_email_project(
    tmp_path, monkeypatch, make_emulator_server, cli, engine, actual
):
    """An email-based project's getUsers answers emails only. Declared email against a
    project that answers a userId, the member was planned for removal by that userId sent
    as an email (rejected: 'invalid email'), and the added rows were written as email-only
    profiles; now the audience is left out, naming the likely mismatch, and nothing is
    written."""
    monkeypatch.setenv("RECONCILER_ENGINE", engine)
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "getUsers")
    server = make_emulator_server(project_type=actual)
    monkeypatch.setenv(API_KEY_VAR, "test-key")
    monkeypatch.chdir(tmp_path)
    proj = server.emulator.project("default")
    lid = proj.add_list("vip")
    proj.add_user(email="m0@x.io", user_id="U-0", list_ids=[lid])
    proj.add_user(user_id="U-1", list_ids=[lid])  # a profile with no email
    ws = Workspace(tmp_path, server.base_url, "email")
    ws.destination()
    ws.audience("vip", {"inline": ["m0@x.io", "new@x.io"]})
    result = cli("apply", ws.manifests, "--yes", "--allow-unsafe")
    assert result.exit_code == 1, result.output
    text = " ".join(result.stdout.split())
    assert "an identifier that is no email, which an email-based project never does" in text
    assert (
        "destination 'prod' declares projectType email, and Iterable's answers look like a "
        "hybrid or userID-based project: check projectType in manifests/dest-prod.yaml:9"
    ) in text
    assert "U-1" not in result.output  # identities stay masked
    assert sorted(proj.members(lid, prefer_user_id=True)) == ["U-0", "U-1"]
    assert len(proj.users) == 2  # nothing written


@pytest.mark.parametrize("engine", ["python", "duckdb"])
@pytest.mark.parametrize("actual", ["email", "hybrid"])
def test_a_removal_by_user_id_of_a_member_on_the_list_by_email_is_no_removal(
    tmp_path, monkeypatch, make_emulator_server, fast_client, cli, engine, actual
):
    """Declared userId against an email-based or hybrid project, getUsers names a member
    with no userId (every member, in an email-based project) by its email; its removal,
    sent as that text for a userId, finds no user, and was counted as already gone
    ('Apply complete ... removed') while the member stayed on the list. Now a removal
    Iterable finds no user for whose text is an email on the list is a failure naming the
    likely mismatch; a member it does remove is removed."""
    monkeypatch.setenv("RECONCILER_ENGINE", engine)
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "getUsers")
    server = make_emulator_server(project_type=actual)
    monkeypatch.setenv(API_KEY_VAR, "test-key")
    monkeypatch.chdir(tmp_path)
    proj = server.emulator.project("default")
    lid = proj.add_list("vip")
    proj.add_user(email="m0@x.io", user_id="U-0", list_ids=[lid])
    proj.add_user(email="m1@x.io", list_ids=[lid])  # no userId
    proj.add_user(email="gone@x.io", user_id="U-2")  # on no list
    ws = Workspace(tmp_path, server.base_url, "userId")
    ws.destination()
    ws.csv("m.csv", "userId", ["U-0"] if actual == "hybrid" else ["U-9"])
    ws.audience("vip", {"csv": "m.csv"})
    result = cli("apply", ws.manifests, "--yes", "--allow-unsafe")
    assert result.exit_code == 1, result.output
    text = " ".join(result.stdout.split())
    assert "counted as removed" not in text
    assert "still on the list under this email" in text
    assert (
        "destination 'prod' declares projectType userId, yet Iterable knows these members "
        "by email: the project looks hybrid or email-based; check projectType in "
        "manifests/dest-prod.yaml:9:20 (the members named were not removed"
    ) in text
    assert "m1@x.io" not in result.output  # identities stay masked
    assert "m1@x.io" in proj.members(lid, prefer_user_id=False)


def test_a_user_id_an_email_based_project_will_not_create_names_the_mismatch(
    tmp_path, monkeypatch, make_emulator_server, cli
):
    """A userID-based project creates the user of a userId it does not know; declared
    userId against an email-based project, every new member was rejected with only
    'user not found'. Now the report names the likely mismatch (where the answer names
    the members: Faults() without counts_only_answers)."""
    server = make_emulator_server(project_type="email", faults=Faults())
    monkeypatch.setenv(API_KEY_VAR, "test-key")
    monkeypatch.chdir(tmp_path)
    proj = server.emulator.project("default")
    ws = Workspace(tmp_path, server.base_url, "userId")
    ws.destination()
    ws.audience("vip", {"inline": [{"userId": "U-1"}]})
    result = cli("apply", ws.manifests, "--yes")
    assert result.exit_code == 1, result.output
    text = " ".join(result.stdout.split())
    assert "***#1: user not found" in text
    assert (
        "destination 'prod' declares projectType userId, yet Iterable created no user for a "
        "userId it does not know, as a userID-based project does: the project looks "
        "email-based; check projectType in manifests/dest-prod.yaml:9:20 (the members named "
        "were not added)"
    ) in text
    assert proj.users == {}


@pytest.mark.parametrize("output", ["text", "markdown"])
def test_status_says_why_an_audience_of_a_mismatched_project_type_is_left_out(
    tmp_path, monkeypatch, make_emulator_server, cli, output
):
    """`reconciler status` showed such an audience as LEFT OUT, and its reason (the
    likely projectType mismatch) only in `plan` or the JSON; the text and markdown now
    say it below the table."""
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "export")
    server = make_emulator_server(project_type="email")
    monkeypatch.setenv(API_KEY_VAR, "test-key")
    monkeypatch.chdir(tmp_path)
    proj = server.emulator.project("default")
    lid = proj.add_list("vip")
    proj.add_user(email="m0@x.io", list_ids=[lid])
    ws = Workspace(tmp_path, server.base_url, "userId")
    ws.destination()
    ws.audience("vip", {"inline": [{"userId": "U-9"}]})
    result = cli("status", ws.manifests, "--format", output)
    assert result.exit_code == 1, result.output
    (line,) = [x for x in result.stdout.splitlines() if "left out:" in x]
    assert "prod/vip left out: list 'vip' (id 1000001)" in line
    assert "declares projectType userId" in line and "manifests/dest-prod.yaml:9" in line
    assert "m0@x.io" not in result.output


@pytest.mark.parametrize(
    ("declared", "actual", "looks_like"),
    [("userId", "email", "an email-based project"), ("email", "hybrid", "a hybrid or")],
)
def test_import_names_the_project_type_where_the_export_reads_no_member(
    tmp_path, monkeypatch, make_emulator_server, cli, declared, actual, looks_like
):
    """`reconciler import` reading by export memberships from the declared type's field
    said only 'Iterable counts 2 on the list; nothing was written for it: run import
    again', which never helps; now the likely mismatch and where projectType is written."""
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "export")
    server = make_emulator_server(project_type=actual)
    monkeypatch.setenv(API_KEY_VAR, "test-key")
    monkeypatch.chdir(tmp_path)
    proj = server.emulator.project("default")
    lid = proj.add_list("vip")
    proj.add_user(email="m0@x.io", user_id=None if actual == "email" else "U-0", list_ids=[lid])
    proj.add_user(email="m1@x.io", list_ids=[lid])
    ws = Workspace(tmp_path, server.base_url, declared)
    ws.destination()
    out = ws.manifests / "imported"
    result = cli("import", ws.manifests, "--destination", "prod", "--out", out)
    assert result.exit_code == 1, result.output
    text = " ".join(result.stderr.split())
    assert "Iterable counts 2 on the list; destination 'prod' declares projectType" in text
    assert f"Iterable's answers look like {looks_like}" in text
    assert "check projectType in manifests/dest-prod.yaml:9:20; nothing was written" in text
    assert not out.exists() or not list(out.glob("*.csv"))


@pytest.mark.parametrize("engine", ["python", "duckdb"])
@pytest.mark.parametrize("actual", ["hybrid", "userId"])
def test_import_of_a_list_read_naming_a_member_by_user_id_is_no_email_project(
    tmp_path, monkeypatch, make_emulator_server, cli, engine, actual
):
    """Declared email against a hybrid or userID-based project, getUsers names a member
    with no email by its userId, and import wrote it in the email column ('email\\nU-1'),
    where a plan then refuses it; now the list is skipped, naming the likely mismatch, and
    nothing is written for it."""
    monkeypatch.setenv("RECONCILER_ENGINE", engine)
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "getUsers")
    server = make_emulator_server(project_type=actual)
    monkeypatch.setenv(API_KEY_VAR, "test-key")
    monkeypatch.chdir(tmp_path)
    proj = server.emulator.project("default")
    lid = proj.add_list("vip")
    proj.add_user(email="m0@x.io", user_id="U-0", list_ids=[lid])
    proj.add_user(user_id="U-1", list_ids=[lid])  # a profile with no email
    ws = Workspace(tmp_path, server.base_url, "email")
    ws.destination()
    out = ws.manifests / "imported"
    result = cli("import", ws.manifests, "--destination", "prod", "--out", out)
    assert result.exit_code == 1, result.output
    text = " ".join(result.stderr.split())
    assert (
        "skipped list 1000001 'vip': Iterable's member read named members by an identifier "
        "that is no email, which an email-based project never does; destination 'prod' "
        "declares projectType email, and Iterable's answers look like a hybrid or "
        "userID-based project: check projectType in manifests/dest-prod.yaml:9:20; nothing "
        "was written for it"
    ) in text
    assert "U-1" not in result.output
    assert not out.exists() or not list(out.glob("*.csv"))


@pytest.mark.parametrize("engine", ["python", "duckdb"])
@pytest.mark.parametrize("actual", ["email", "hybrid"])
def test_import_of_a_list_read_naming_a_member_by_email_is_no_user_id_project(
    tmp_path, monkeypatch, make_emulator_server, cli, engine, actual
):
    """Declared userId against an email-based or hybrid project, getUsers names a member
    with no userId (every member, in an email-based project) by its email, and import
    wrote the emails in the userId column ('userId' then 'm1@x.io'): each a userId no
    profile has. One read of such a text by userId (only when a list holds one) finding no
    profile now skips the lists holding them, naming the likely mismatch; a list whose
    members are all named by userId is imported."""
    monkeypatch.setenv("RECONCILER_ENGINE", engine)
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "getUsers")
    server = make_emulator_server(project_type=actual)
    monkeypatch.setenv(API_KEY_VAR, "test-key")
    monkeypatch.chdir(tmp_path)
    proj = server.emulator.project("default")
    lid = proj.add_list("vip")
    proj.add_user(email="m0@x.io", user_id="U-0", list_ids=[lid])
    proj.add_user(email="m1@x.io", list_ids=[lid])  # no userId
    if actual == "hybrid":
        other = proj.add_list("apps")
        proj.add_user(user_id="U-2", list_ids=[other])
    ws = Workspace(tmp_path, server.base_url, "userId")
    ws.destination()
    out = ws.manifests / "imported"
    result = cli("import", ws.manifests, "--destination", "prod", "--out", out)
    assert result.exit_code == 1, result.output
    text = " ".join(result.stderr.split())
    assert (
        "skipped list 1000001 'vip': Iterable's member read named a member by an email that "
        "no profile has as its userId, which a userID-based project never does; destination "
        "'prod' declares projectType userId, and Iterable's answers look like a hybrid or "
        "email-based project: check projectType in manifests/dest-prod.yaml:9:20; nothing "
        "was written for it"
    ) in text
    assert "m1@x.io" not in result.output
    assert not (out / "vip.csv").exists()
    if actual == "hybrid":
        assert (out / "apps.csv").read_text() == "userId\nU-2\n"


def test_import_of_a_user_id_project_whose_user_ids_are_emails_reads_one_and_imports(
    typed_workspace, cli, monkeypatch
):
    """Some apps use the email as the userId: the one read of such a text by userId finds
    its profile, and the list is imported as it is."""
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "getUsers")
    ws, proj = typed_workspace("userId")
    lid = proj.add_list("vip")
    proj.add_user(user_id="a@x.io", list_ids=[lid])
    proj.add_user(user_id="b@x.io", list_ids=[lid])
    out = ws.manifests / "imported"
    result = cli("import", ws.manifests, "--destination", "prod", "--out", out)
    assert result.exit_code == 0, result.output
    assert (out / "vip.csv").read_text() == "userId\na@x.io\nb@x.io\n"


def test_a_saved_plans_project_type_hint_names_where_project_type_is_written(
    tmp_path, monkeypatch, make_emulator_server, fast_client, cli
):
    """The hints of apply's answers that find the project of another type said only
    'check the destination's projectType' (a plan carried no manifest location); a plan,
    saved too, now carries the line that writes it."""
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "getUsers")
    server = make_emulator_server(project_type="hybrid")
    monkeypatch.setenv(API_KEY_VAR, "test-key")
    monkeypatch.chdir(tmp_path)
    proj = server.emulator.project("default")
    lid = proj.add_list("vip")
    proj.add_user(email="m0@x.io", user_id="U-0", list_ids=[lid])
    proj.add_user(email="m1@x.io", list_ids=[lid])  # no userId
    ws = Workspace(tmp_path, server.base_url, "userId")
    ws.destination()
    ws.csv("m.csv", "userId", ["U-0"])
    ws.audience("vip", {"csv": "m.csv"})
    saved = tmp_path / "p.plan"
    assert cli("plan", ws.manifests, "--out", saved).exit_code in (2, 3)
    result = cli("apply", "--plan", saved, "--yes", "--allow-unsafe")
    assert result.exit_code == 1, result.output
    text = " ".join(result.stdout.split())
    assert (
        "the project looks hybrid or email-based; check projectType in "
        "manifests/dest-prod.yaml:9:20 (the members named were not removed"
    ) in text
    assert "m1@x.io" in proj.members(lid, prefer_user_id=False)


@pytest.mark.parametrize("engine", ["python", "duckdb"])
def test_a_user_id_plan_that_swaps_every_emailed_member_names_the_likely_project_type(
    tmp_path, monkeypatch, make_emulator_server, fast_client, cli, engine
):
    """Declared userId against an email-based project, getUsers names every member by
    email, so a source of userIds matched none of them: the plan removed the whole list and
    re-added the same people by userId, and the removal guard blocked it with no word of
    why ('removes 3 of 3 members (100.0%), more than maxRemovalPercent 10%'). The plan and
    the guard now name the likely cause and the line that writes projectType; nothing is
    corrected, and nothing more is read."""
    monkeypatch.setenv("RECONCILER_ENGINE", engine)
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "getUsers")
    server = make_emulator_server(project_type="email")
    monkeypatch.setenv(API_KEY_VAR, "test-key")
    monkeypatch.chdir(tmp_path)
    proj = server.emulator.project("default")
    lid = proj.add_list("vip")
    for i in range(3):
        proj.add_user(email=f"m{i}@x.io", user_id=f"U-{i}", list_ids=[lid])
    ws = Workspace(tmp_path, server.base_url, "userId")
    ws.destination()
    ws.csv("m.csv", "userId", [f"U-{i}" for i in range(3)])
    ws.audience("vip", {"csv": "m.csv"})
    cause = (
        "likely cause: Iterable names every member by an email and the manifests give "
        "userIds that are none: the project looks email-based though projectType userId is "
        "declared (check projectType in manifests/dest-prod.yaml:9:20)"
    )
    plan = cli("plan", ws.manifests)
    text = " ".join(plan.stdout.split())
    assert (
        "list 'vip': Iterable names every member of it by an email, and this plan removes "
        "them all and adds userIds that are none: the project looks email-based though "
        "destination 'prod' declares projectType userId; check projectType in "
        "manifests/dest-prod.yaml:9:20"
    ) in text
    assert f"removes 3 of 3 members (100.0%), more than maxRemovalPercent 10%; {cause}" in text
    assert "m0@x.io" not in plan.output
    applied = cli("apply", ws.manifests, "--yes")
    assert applied.exit_code != 0
    assert cause in " ".join(applied.output.split())
    assert sorted(proj.members(lid)) == ["m0@x.io", "m1@x.io", "m2@x.io"]


@pytest.mark.parametrize("engine", ["python", "duckdb"])
def test_a_user_id_project_whose_user_ids_are_emails_is_no_mismatch(
    typed_workspace, cli, monkeypatch, engine
):
    """A userID-based project whose app uses emails as userIds, whose source now gives
    other userIds: every member is removed, but the adds are emails too, so no mismatch
    is named."""
    monkeypatch.setenv("RECONCILER_ENGINE", engine)
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "getUsers")
    ws, proj = typed_workspace("userId")
    lid = proj.add_list("vip")
    proj.add_user(user_id="a@x.io", list_ids=[lid])
    ws.csv("m.csv", "userId", ["b@x.io"])
    ws.audience("vip", {"csv": "m.csv"})
    result = cli("plan", ws.manifests)
    assert "removes 1 of 1 members (100.0%)" in result.stdout
    assert "likely cause" not in result.stdout and "looks email-based" not in result.stdout


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("engine", ["python", "duckdb"])
def test_a_channel_removal_by_user_id_never_takes_another_persons_channel(
    tmp_path, monkeypatch, make_emulator_server, fast_client, cli, engine, route
):
    """Declared userId against a hybrid project, getUsers names a member without a userId
    by her email, and another person may have that text as his userId (an app that took
    emails for userIds). Her removal with channelUnsubscribe, sent as a userId, took his
    channel (he is on no list of it) and left her on the list, 'Apply complete ... 1
    removed'. Now such a text is read by userId first and not sent, a failure naming the
    likely mismatch; his channel and her place stay. So too where one user export reads
    the userIds' profiles (profile_route): his is found off the list."""
    monkeypatch.setenv("RECONCILER_ENGINE", engine)
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "getUsers")
    profile_route(monkeypatch, route)
    server = make_emulator_server(project_type="hybrid")
    monkeypatch.setenv(API_KEY_VAR, "test-key")
    monkeypatch.chdir(tmp_path)
    proj = server.emulator.project("default")
    lid = proj.add_list("vip")
    proj.add_user(email="m0@x.io", user_id="U-0", list_ids=[lid])
    proj.add_user(email="a@x.io", list_ids=[lid])  # no userId: named by her email
    him = proj.add_user(email="b@x.io", user_id="a@x.io")  # his userId is her email
    ws = Workspace(tmp_path, server.base_url, "userId")
    ws.destination()
    ws.csv("m.csv", "userId", ["U-0"])
    ws.audience(
        "vip",
        {"csv": "m.csv"},
        policy={"maxRemovalPercent": 100},
        unsubscribe={"channelUnsubscribe": True},
    )
    result = cli("apply", ws.manifests, "--yes")
    assert result.exit_code == 1, result.output
    text = " ".join(result.stdout.split())
    assert "still on the list under this email, not as a userId: not sent" in text
    assert "the project looks hybrid or email-based; check projectType in" in text
    assert "a@x.io" not in result.output
    assert not him.unsubscribed_channel_ids
    assert sorted(proj.members(lid, prefer_user_id=False)) == ["a@x.io", "m0@x.io"]
    assert not [r for r in server.emulator.request_log if r.path == "/api/lists/unsubscribe"]
    exports = [r for r in server.emulator.request_log if r.path == "/api/export/data.json"]
    assert len(exports) == (route == "export")


def test_a_user_id_projects_channel_removals_read_only_email_shaped_user_ids(
    tmp_path, monkeypatch, make_emulator_server, fast_client, cli
):
    """In a userID-based project the check above reads the profile of an email-shaped
    userId (found on the list: removed, channel and all), and no other."""
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "getUsers")
    server = make_emulator_server(project_type="userId")
    monkeypatch.setenv(API_KEY_VAR, "test-key")
    monkeypatch.chdir(tmp_path)
    proj = server.emulator.project("default")
    lid = proj.add_list("vip")
    proj.add_user(user_id="U-0", list_ids=[lid])
    mail = proj.add_user(user_id="c@x.io", list_ids=[lid])
    plain = proj.add_user(user_id="U-1", list_ids=[lid])
    ws = Workspace(tmp_path, server.base_url, "userId")
    ws.destination()
    ws.csv("m.csv", "userId", ["U-0"])
    ws.audience(
        "vip",
        {"csv": "m.csv"},
        policy={"maxRemovalPercent": 100},
        unsubscribe={"channelUnsubscribe": True},
    )
    server.emulator.request_log.clear()
    result = cli("apply", ws.manifests, "--yes")
    assert result.exit_code == 0, result.output
    assert proj.members(lid) == ["U-0"]
    assert mail.unsubscribed_channel_ids and plain.unsubscribed_channel_ids
    reads = [r.path for r in server.emulator.request_log if r.path.startswith("/api/users/")]
    assert [p for p in reads if "byUserId" in p] == ["/api/users/byUserId/c%40x.io"]


def test_a_user_id_projects_member_leaving_several_channel_lists_is_read_once(
    tmp_path, monkeypatch, make_emulator_server, fast_client, cli
):
    """As above, the member with an email-shaped userId on three lists whose audiences
    each drop her: her profile was read by userId once for each list (three reads, the
    churn of a run three times the reads the model counted), where a hybrid destination's
    channel removals read each text once a run (c208b67). Now once too."""
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "getUsers")
    server = make_emulator_server(project_type="userId")
    monkeypatch.setenv(API_KEY_VAR, "test-key")
    monkeypatch.chdir(tmp_path)
    proj = server.emulator.project("default")
    ws = Workspace(tmp_path, server.base_url, "userId")
    ws.destination()
    ws.csv("m.csv", "userId", ["U-0"])
    lists = []
    for name in ("vip", "trial", "news"):
        lists.append(proj.add_list(name))
        ws.audience(
            name,
            {"csv": "m.csv"},
            policy={"maxRemovalPercent": 100},
            unsubscribe={"channelUnsubscribe": True},
        )
    proj.add_user(user_id="U-0", list_ids=lists)
    mail = proj.add_user(user_id="c@x.io", list_ids=lists)
    server.emulator.request_log.clear()
    result = cli("apply", ws.manifests, "--yes")
    assert result.exit_code == 0, result.output
    assert [proj.members(lid) for lid in lists] == [["U-0"]] * 3
    assert mail.unsubscribed_channel_ids
    reads = [r.path for r in server.emulator.request_log if r.path.startswith("/api/users/")]
    assert reads == ["/api/users/byUserId/c%40x.io"]
