"""The tool against Iterable as clients in production see it (issue 16, points 4-8 and 10):
answers that count failures without naming them, notFound that is no failure, forgotten
users, userID-based list reads, empty member reads, identifiers with a leading space.

Through the CLI against the emulator over HTTP; audiences read from CSV so that both
engines (Python sets and DuckDB) are exercised where it matters.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qs

import httpx
import pytest

from reconciler.emulator import Faults
from reconciler.emulator.replies import EmulatorResponse
from tests.integration.conftest import API_KEY_VAR, Workspace

ENGINES = ["python", "duckdb"]


@pytest.fixture
def field_workspace(tmp_path, monkeypatch, fast_client, make_emulator_server):
    """A workspace on a fresh emulator of the given project type, with the given engine."""

    def make(project_type: str = "hybrid", engine: str = "python", faults: Faults | None = None):
        server = make_emulator_server(project_type=project_type, faults=faults)
        monkeypatch.setenv(API_KEY_VAR, "test-key")
        monkeypatch.setenv("RECONCILER_ENGINE", engine)
        monkeypatch.chdir(tmp_path)
        ws = Workspace(tmp_path, server.base_url, project_type)
        ws.destination()
        return ws, server, server.emulator.project("default")

    return make


def csv_audience(ws: Workspace, name: str, column: str, values: list[str], **spec) -> None:
    ws.csv(f"data/{name}.csv", column, values)
    ws.audience(name, {"csv": f"data/{name}.csv"}, **spec)


def the_list(report: dict) -> dict:
    (lr,) = [lr for d in report["destinations"] for lr in d["lists"]]
    return lr


def requests_to(server, path: str) -> list:
    return [r for r in server.emulator.request_log if r.path == path]


def accepted(server, path: str) -> list[dict]:
    """Subscribers of the requests to `path` that Iterable took (a new list refuses writes
    for a while under the field profile: those attempts are sent again)."""
    return [s for r in requests_to(server, path) if r.status == 200 for s in r.body["subscribers"]]


# -- 4. answers that count failures without naming them ------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_unnamed_failures_are_reported_as_not_confirmed_never_as_done(field_workspace, cli, engine):
    ws, _server, proj = field_workspace("hybrid", engine, Faults(counts_only_answers=True))
    # 412 of 1,000 members conflict: their email belongs to a profile with another userId.
    for i in range(412):
        proj.add_user(email=f"c{i}@example.com", user_id=f"other-{i}")
    ws.csv(
        "data/big.csv",
        "email,userId",
        [f"c{i}@example.com,u{i}" for i in range(412)]
        + [f"n{i}@example.com,u{i}" for i in range(412, 1000)],
    )
    ws.audience("big", {"csv": "data/big.csv"})

    result = cli("apply", ws.manifests, "--yes", "--format", "json")
    assert result.exit_code == 1, result.output
    lr = the_list(result.json())
    assert (lr["added"], lr["unconfirmed_add"], lr["rejected"]) == (588, 412, [])
    assert "412 of 1,000 additions not confirmed by Iterable" in lr["errors"][0]
    assert result.json()["ok"] is False

    text = cli("apply", ws.manifests, "--yes")
    assert text.exit_code == 1
    assert "412 of 412 additions not confirmed by Iterable" in text.stdout
    assert "Apply complete" not in text.output


def test_an_unnamed_failure_of_a_removal_is_not_confirmed_either(field_workspace, cli):
    ws, server, proj = field_workspace("hybrid", "python", Faults(counts_only_answers=True))
    list_id = proj.add_list("vip")
    for email in ("stay@example.com", "leave@example.com", "gone@example.com"):
        proj.subscribe_direct(list_id, email=email)
    ws.audience("vip", {"inline": ["stay@example.com"]}, policy={"maxRemovalPercent": 100})
    emulator = server.emulator
    original = emulator.handle

    def deleted_meanwhile(request: httpx.Request):
        # Iterable answers notFound for a user deleted since the read, here without a name.
        if request.url.path == "/api/lists/unsubscribe":
            user = proj.user_by_email("gone@example.com")
            if user is not None:
                proj.delete_user(user)
        return original(request)

    emulator.handle = deleted_meanwhile  # type: ignore[method-assign]
    result = cli("apply", ws.manifests, "--yes", "--format", "json")
    assert result.exit_code == 1, result.output
    lr = the_list(result.json())
    assert (lr["removed"], lr["unconfirmed_remove"], lr["already_gone"]) == (1, 1, 0)
    assert "1 of 2 removals not confirmed by Iterable" in lr["errors"][0]


def test_invalid_identifiers_named_at_the_top_level_are_still_rejected_by_name(
    field_workspace, cli
):
    ws, _server, _proj = field_workspace("hybrid", "python", Faults(counts_only_answers=True))
    # An underscore in the domain passes reconciler's light check; Iterable refuses it.
    ws.audience("mixed", {"inline": ["ok@example.com", "two.dots@ex_ample.com"]})
    result = cli("apply", ws.manifests, "--yes", "--format", "json", "--show-members")
    assert result.exit_code == 1
    lr = the_list(result.json())
    assert lr["added"] == 1 and lr["unconfirmed_add"] == 0
    assert lr["rejected"] == [{"member": "two.dots@ex_ample.com", "reason": "invalid email"}]


# -- 5. notFound that is no failure -----------------------------------------------------


def test_not_found_on_unsubscribe_means_already_gone(field_workspace, cli):
    ws, server, proj = field_workspace("hybrid")
    # Names each failed member: answers that itemise failures (the field profile's may not).
    server.emulator.faults.counts_only_answers = False
    list_id = proj.add_list("vip")
    for email in ("stay@example.com", "leave@example.com"):
        proj.subscribe_direct(list_id, email=email)
    ws.audience("vip", {"inline": ["stay@example.com"]}, policy={"maxRemovalPercent": 100})
    emulator = server.emulator
    original = emulator.handle

    def deleted_meanwhile(request: httpx.Request):
        # Someone deletes the user in Iterable between the plan's read and the removal.
        if request.url.path == "/api/lists/unsubscribe":
            user = proj.user_by_email("leave@example.com")
            if user is not None:
                proj.delete_user(user)
        return original(request)

    emulator.handle = deleted_meanwhile  # type: ignore[method-assign]
    result = cli("apply", ws.manifests, "--yes", "--format", "json")
    assert result.exit_code == 0, result.output
    lr = the_list(result.json())
    assert (lr["removed"], lr["already_gone"], lr["rejected"]) == (1, 1, [])
    answers = [r for r in emulator.request_log if r.path == "/api/lists/unsubscribe"]
    # Not found by email, then (an email-shaped userId reads alike) not by userId either.
    assert [(r.status, r.body["subscribers"]) for r in answers] == [
        (200, [{"email": "leave@example.com"}]),
        (200, [{"userId": "leave@example.com"}]),
    ]
    text = cli("plan", ws.manifests, "--detailed-exitcode")
    assert text.exit_code == 0, text.output


@pytest.mark.parametrize("engine", ENGINES)
def test_a_member_whose_user_id_reads_like_an_email_is_removed_and_nobody_else(
    field_workspace, cli, engine
):
    """Hybrid lists are read by userId (the audience keys members by it), and some apps
    use an email as the userId. Sent as an email, such a member was never removed (no
    such email: "already gone") or another person, whose email it is, was unsubscribed
    in its place (an unsubscribe event recorded against them)."""
    ws, server, proj = field_workspace("hybrid", engine)
    server.emulator.faults.counts_only_answers = False  # answers that name notFound
    list_id = proj.add_list("vip")
    proj.subscribe_direct(list_id, email="keep@example.com", user_id="keep")
    # Userids keep their case; Iterable keeps emails in lower case.
    proj.subscribe_direct(list_id, email="bob.new@example.com", user_id="Bob@Example.com")
    proj.add_user(email="bob@example.com", user_id="another-person")
    proj.subscribe_direct(list_id, email="carol.new@example.com", user_id="carol@example.com")
    csv_audience(ws, "vip", "userId", ["keep"], policy={"maxRemovalPercent": 100})
    result = cli("apply", ws.manifests, "--yes", "--format", "json")
    assert result.exit_code == 0, result.output
    lr = the_list(result.json())
    assert (lr["removed"], lr["already_gone"], lr["rejected"]) == (2, 0, [])
    assert proj.members(list_id, True) == ["keep"]
    events = [e for e in proj.unsubscribe_events if e.get("email") == "bob@example.com"]
    assert events == []
    assert cli("plan", ws.manifests, "--detailed-exitcode").exit_code == 0


def profile_route(monkeypatch, route: str) -> None:
    """How a hybrid list's channel removals read their profiles: per-user reads (what the
    model chooses for a few), or one user export (chosen here by making the per-user
    reads slow in the model: 1 a second, and the export's first byte free; the lists are
    read by getUsers still, so that the only user export is the apply's)."""
    if route == "export":
        monkeypatch.setenv("RECONCILER_USER_READS_PER_SECOND", "1")
        monkeypatch.setenv("RECONCILER_BULK_READ_FIRST_BYTE", "0")
        monkeypatch.setenv("RECONCILER_MEMBER_READS", "getUsers")


ROUTES = ["lookups", "export"]


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("engine", ENGINES)
def test_a_channel_unsubscribe_of_an_email_shaped_user_id_takes_nobody_elses_channel(
    field_workspace, cli, engine, route, monkeypatch
):
    """A hybrid member whose userId is an email in lower case, on a profile without that
    email, while another person's profile has it as its email: the list read names the
    member by that text alone, and a removal sent as an email unsubscribed the other
    person from the channel (channelUnsubscribe) and left the member on the list, as
    "removed", on every apply. Such a removal now reads which profile is on the list."""
    profile_route(monkeypatch, route)
    ws, server, proj = field_workspace("hybrid", engine)
    server.emulator.faults.counts_only_answers = False
    list_id = proj.add_list("vip")
    proj.subscribe_direct(list_id, email="keep@example.com", user_id="keep")
    carol = proj.subscribe_direct(list_id, user_id="carol@example.com")
    other = proj.add_user(email="carol@example.com", user_id="another-person")
    dan = proj.subscribe_direct(list_id, email="dan@example.com")
    proj.add_user(user_id="dan@example.com")  # Dan's email is this profile's userId
    csv_audience(
        ws,
        "vip",
        "userId",
        ["keep"],
        policy={"maxRemovalPercent": 100},
        unsubscribe={"channelUnsubscribe": True},
    )
    result = cli("apply", ws.manifests, "--yes", "--format", "json")
    assert result.exit_code == 0, result.output
    lr = the_list(result.json())
    assert (lr["removed"], lr["already_gone"], lr["rejected"]) == (2, 0, [])
    assert proj.members(list_id, True) == ["keep"]
    assert set(other.unsubscribed_channel_ids) == set()  # not on the list: untouched
    assert carol.unsubscribed_channel_ids and dan.unsubscribed_channel_ids
    assert not [e for e in proj.unsubscribe_events if e.get("userId") == "another-person"]
    assert (profile_reads(server) == []) == (route == "export")
    assert cli("plan", ws.manifests, "--detailed-exitcode").exit_code == 0


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("bob_email", ["bob@example.com", None])
def test_a_channel_unsubscribe_by_user_id_takes_the_member_the_list_read_named(
    field_workspace, cli, engine, bob_email, route, monkeypatch
):
    """An audience keyed by userId reads its list with preferUserId=true: Ann (email
    x@example.com, userId "ann") is named "ann" there, and Bob, whose userId is
    x@example.com, is "x@example.com". Bob left the audience, Ann stayed; both profiles
    are on the list. The removal of "x@example.com" was sent as an email, since Ann's
    profile is on the list: Ann lost the list and her channel consent, and Bob stayed."""
    profile_route(monkeypatch, route)
    ws, server, proj = field_workspace("hybrid", engine)
    server.emulator.faults.counts_only_answers = False
    list_id = proj.add_list("vip")
    proj.subscribe_direct(list_id, email="keep@example.com", user_id="keep")
    ann = proj.subscribe_direct(list_id, email="x@example.com", user_id="ann")
    bob = proj.subscribe_direct(list_id, user_id="x@example.com", email=bob_email)
    csv_audience(
        ws,
        "vip",
        "userId",
        ["keep", "ann"],
        policy={"maxRemovalPercent": 100},
        unsubscribe={"channelUnsubscribe": True},
    )
    server.emulator.clear_log()
    result = cli("apply", ws.manifests, "--yes", "--format", "json")
    assert result.exit_code == 0, result.output
    lr = the_list(result.json())
    assert (lr["removed"], lr["already_gone"], lr["rejected"]) == (1, 0, [])
    assert sorted(proj.members(list_id, True)) == ["ann", "keep"]
    assert set(ann.unsubscribed_channel_ids) == set()
    assert bob.unsubscribed_channel_ids
    assert accepted(server, "/api/lists/unsubscribe") == [{"userId": "x@example.com"}]
    # Two reads: Ann's profile (on the list, but named "ann"), then Bob's; or the export.
    reads = ["/api/users/x%40example.com", "/api/users/byUserId/x%40example.com"]
    assert profile_reads(server) == ([] if route == "export" else reads)
    assert len(user_exports(server)) == (route == "export")
    assert cli("plan", ws.manifests, "--detailed-exitcode").exit_code == 0


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("bob_email", ["bob@example.com", None])
def test_a_removal_by_user_id_takes_the_member_the_list_read_named(
    field_workspace, cli, engine, bob_email
):
    """The same two people without channelUnsubscribe: the removal of "x@example.com"
    was sent as an email first, which took Ann (named "ann" by the read) off the list
    and left Bob on it, so every apply re-added Ann (a subscription, which may start a
    journey) and removed her again. Read with preferUserId, it is sent as a userId first;
    and a member whose email is all it has, named by it, is still removed by the retry
    as an email."""
    ws, server, proj = field_workspace("hybrid", engine)
    server.emulator.faults.counts_only_answers = False
    list_id = proj.add_list("vip")
    proj.subscribe_direct(list_id, email="keep@example.com", user_id="keep")
    proj.subscribe_direct(list_id, email="x@example.com", user_id="ann")
    proj.subscribe_direct(list_id, user_id="x@example.com", email=bob_email)
    proj.subscribe_direct(list_id, email="carol@example.com")  # no userId: named by email
    csv_audience(ws, "vip", "userId", ["keep", "ann"], policy={"maxRemovalPercent": 100})
    server.emulator.clear_log()

    result = cli("apply", ws.manifests, "--yes", "--format", "json")

    assert result.exit_code == 0, result.output
    lr = the_list(result.json())
    assert (lr["removed"], lr["already_gone"], lr["rejected"]) == (2, 0, [])
    assert sorted(proj.members(list_id, True)) == ["ann", "keep"]
    sent = [s for r in requests_to(server, "/api/lists/unsubscribe") for s in r.body["subscribers"]]
    assert {"email": "x@example.com"} not in sent
    assert {"userId": "x@example.com"} in sent and {"email": "carol@example.com"} in sent
    assert cli("plan", ws.manifests, "--detailed-exitcode").exit_code == 0


@pytest.mark.parametrize("engine", ENGINES)
def test_a_removal_sent_as_a_user_id_no_profile_has_is_sent_again_under_counts_only_answers(
    field_workspace, cli, engine
):
    """As above, with answers of counts only (the field profile's, as Iterable sometimes
    answers): Carol, whose email is all she has, is named "carol@example.com" by a read
    with preferUserId, and her removal sent as a userId fails unnamed. It was never sent
    again as an email: every apply exited 1 with the removal unconfirmed and Carol stayed
    on the list. A text no profile has as a userId is now sent again as an email; Bob's,
    a userId, is removed by the first request, and Ann (email x@example.com) is kept."""
    ws, server, proj = field_workspace("hybrid", engine)
    server.emulator.faults.counts_only_answers = True
    list_id = proj.add_list("vip")
    proj.subscribe_direct(list_id, email="keep@example.com", user_id="keep")
    proj.subscribe_direct(list_id, email="x@example.com", user_id="ann")
    proj.subscribe_direct(list_id, user_id="x@example.com", email="bob@example.com")
    proj.subscribe_direct(list_id, email="carol@example.com")  # no userId: named by email
    csv_audience(ws, "vip", "userId", ["keep", "ann"], policy={"maxRemovalPercent": 100})
    server.emulator.clear_log()

    result = cli("apply", ws.manifests, "--yes", "--format", "json")

    assert result.exit_code == 0, result.output
    lr = the_list(result.json())
    assert (lr["removed"], lr["rejected"]) == (2, [])
    assert sorted(proj.members(list_id, True)) == ["ann", "keep"]
    sent = [s for r in requests_to(server, "/api/lists/unsubscribe") for s in r.body["subscribers"]]
    assert {"email": "x@example.com"} not in sent
    assert {"email": "carol@example.com"} in sent
    assert cli("plan", ws.manifests, "--detailed-exitcode").exit_code == 0


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("engine", ENGINES)
def test_many_unnamed_removals_are_judged_by_one_export_when_that_is_faster(
    field_workspace, cli, engine, route, monkeypatch
):
    """As above with 300 Carols: a batch answered by counts read each text it left unnamed
    by userId (GET byUserId, one each: up to 1,000 a batch where userIds are emails). Where
    one user export is modelled faster than those reads, it answers them all at once; the
    outcome is the same either way: every Carol sent again as an email, Bob removed by the
    first request, Ann kept."""
    # 301 reads at Iterable's 100 a second: 3 s modelled, against an export of 303
    # profiles at 2,000 a second after its first byte.
    first_byte = "60" if route == "lookups" else "0"
    monkeypatch.setenv("RECONCILER_BULK_READ_FIRST_BYTE", first_byte)
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "getUsers")  # the apply's is the only export
    ws, server, proj = field_workspace("hybrid", engine)
    server.emulator.faults.counts_only_answers = True
    list_id = proj.add_list("vip")
    proj.subscribe_direct(list_id, email="keep@example.com", user_id="keep")
    proj.subscribe_direct(list_id, email="x@example.com", user_id="ann")
    proj.subscribe_direct(list_id, user_id="x@example.com", email="bob@example.com")
    carols = [f"carol{i:03d}@example.com" for i in range(300)]
    for carol in carols:
        proj.subscribe_direct(list_id, email=carol)  # no userId: named by email
    csv_audience(ws, "vip", "userId", ["keep", "ann"], policy={"maxRemovalPercent": 100})
    server.emulator.clear_log()

    result = cli("apply", ws.manifests, "--yes", "--format", "json")

    assert result.exit_code == 0, result.output
    lr = the_list(result.json())
    assert (lr["removed"], lr["already_gone"], lr["rejected"]) == (301, 0, [])
    assert sorted(proj.members(list_id, True)) == ["ann", "keep"]
    sent = [s for r in requests_to(server, "/api/lists/unsubscribe") for s in r.body["subscribers"]]
    assert {"email": "x@example.com"} not in sent
    assert [s["email"] for s in sent if "email" in s] == carols
    if route == "lookups":
        assert len(profile_reads(server)) == 301
        assert user_exports(server) == []
    else:
        assert profile_reads(server) == []
        assert len(user_exports(server)) == 1
        assert "answered by counts that name none: reading" in result.stderr
        assert "@example.com" not in result.stderr
    assert cli("plan", ws.manifests, "--detailed-exitcode").exit_code == 0


def test_unnamed_removals_are_read_one_by_one_until_the_export_is_the_faster(
    field_workspace, cli, monkeypatch
):
    """Which batches an answer of counts leaves short is known only batch by batch: the
    first short batch of 100 reads its 100 texts (1 s modelled, against 0.25 s for the
    export, which in a project of a size no export counted must win five times over); with
    the second the reads made and to make (2 s) pass that margin, and the export is read
    once and answers that batch and every one after it."""
    monkeypatch.setenv("RECONCILER_BULK_READ_FIRST_BYTE", "0.1")  # + 303 at 2,000 a second
    monkeypatch.setenv("RECONCILER_BATCH_SIZE", "100")
    monkeypatch.setenv("RECONCILER_CONCURRENCY", "1")  # the batches in order
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "getUsers")
    ws, server, proj = field_workspace("hybrid")
    server.emulator.faults.counts_only_answers = True
    list_id = proj.add_list("vip")
    proj.subscribe_direct(list_id, email="keep@example.com", user_id="keep")
    proj.subscribe_direct(list_id, email="x@example.com", user_id="ann")
    proj.subscribe_direct(list_id, user_id="x@example.com", email="bob@example.com")
    for i in range(300):
        proj.subscribe_direct(list_id, email=f"carol{i:03d}@example.com")
    csv_audience(ws, "vip", "userId", ["keep", "ann"], policy={"maxRemovalPercent": 100})
    server.emulator.clear_log()

    result = cli("apply", ws.manifests, "--yes", "--format", "json")

    assert result.exit_code == 0, result.output
    lr = the_list(result.json())
    assert (lr["removed"], lr["already_gone"], lr["rejected"]) == (301, 0, [])
    assert sorted(proj.members(list_id, True)) == ["ann", "keep"]
    assert len(profile_reads(server)) == 100
    assert len(user_exports(server)) == 1


def test_a_failed_export_leaves_the_unnamed_removals_to_per_user_reads(
    field_workspace, cli, monkeypatch
):
    """The export refused: the texts are read one by one as before, with the same outcome,
    and stderr says why (by the status alone)."""
    monkeypatch.setenv("RECONCILER_BULK_READ_FIRST_BYTE", "0")
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "getUsers")
    ws, server, proj = field_workspace("hybrid")
    server.emulator.faults.counts_only_answers = True
    list_id = proj.add_list("vip")
    proj.subscribe_direct(list_id, email="keep@example.com", user_id="keep")
    for i in range(50):
        proj.subscribe_direct(list_id, email=f"carol{i:03d}@example.com")
    csv_audience(ws, "vip", "userId", ["keep"], policy={"maxRemovalPercent": 100})
    emulator = server.emulator
    original = emulator.handle

    def refused(request: httpx.Request):
        if request.url.path == "/api/export/data.json":
            return EmulatorResponse(400, body=b'{"code":"BadParams","msg":"refused"}')
        return original(request)

    emulator.handle = refused  # type: ignore[method-assign]
    server.emulator.clear_log()

    result = cli("apply", ws.manifests, "--yes", "--format", "json")

    assert result.exit_code == 0, result.output
    assert the_list(result.json())["removed"] == 50
    assert proj.members(list_id, True) == ["keep"]
    assert "the user export failed (HTTP 400); reading each profile instead" in result.stderr
    assert len(profile_reads(server)) == 50


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("engine", ENGINES)
def test_a_channel_unsubscribe_by_email_never_takes_a_member_the_list_read_named_otherwise(
    field_workspace, cli, engine, route, monkeypatch
):
    """The mirror: an audience keyed by email reads its list with preferUserId=false, so
    Bob (userId x@example.com, email bob@example.com) is named "bob@example.com" there,
    and "x@example.com" is Ann's email. Ann left the list a moment ago, which the list
    read (lagging writes) does not show yet; the per-user reads do. The removal of
    "x@example.com" was sent as a userId, Bob's being the profile on the list: Bob, whom
    the audience keeps, lost the list and his channel consent."""
    profile_route(monkeypatch, route)
    ws, server, proj = field_workspace("hybrid", engine)
    server.emulator.faults.counts_only_answers = False
    list_id = proj.add_list("vip")
    proj.subscribe_direct(list_id, email="keep@example.com", user_id="keep")
    proj.subscribe_direct(list_id, email="x@example.com", user_id="ann")
    bob = proj.subscribe_direct(list_id, user_id="x@example.com", email="bob@example.com")
    csv_audience(
        ws,
        "vip",
        "email",
        ["keep@example.com", "bob@example.com"],
        policy={"maxRemovalPercent": 100},
        unsubscribe={"channelUnsubscribe": True},
    )
    server.emulator.faults.read_lag_seconds = 3600
    left = httpx.post(
        f"{server.base_url}/api/lists/unsubscribe",
        headers={"Api-Key": "test-key"},
        json={"listId": list_id, "subscribers": [{"email": "x@example.com"}]},
    )
    assert left.status_code == 200 and left.json()["successCount"] == 1
    result = cli("apply", ws.manifests, "--yes", "--format", "json")
    assert result.exit_code == 0, result.output
    lr = the_list(result.json())
    assert set(bob.unsubscribed_channel_ids) == set()
    if route == "lookups":
        # Ann is already gone (counted as removed): nothing is sent but her own leaving.
        assert (lr["removed"], lr["already_gone"], lr["rejected"]) == (1, 1, [])
        assert accepted(server, "/api/lists/unsubscribe") == [{"email": "x@example.com"}]
    else:
        # The export lags as the list read does: Ann is still on the list there, so her
        # removal goes to her, the member the plan removes, and never to Bob.
        assert (lr["removed"], lr["already_gone"], lr["rejected"]) == (1, 0, [])
        assert accepted(server, "/api/lists/unsubscribe") == [{"email": "x@example.com"}] * 2
    server.emulator.faults.read_lag_seconds = 0
    assert sorted(proj.members(list_id, False)) == ["bob@example.com", "keep@example.com"]
    assert cli("plan", ws.manifests, "--detailed-exitcode").exit_code == 0


def test_a_channel_unsubscribe_of_ordinary_emails_reads_each_profile_once(field_workspace, cli):
    """Each email-shaped removal of a hybrid list with channelUnsubscribe is read before
    it is sent (above); when the profile with that email is on the list, it is the
    member, whatever a byUserId read would find. That second read was made for every
    removal all the same: 5,000 reads to remove 2,500 members, half of them spent."""
    ws, server, proj = field_workspace("hybrid")
    list_id = proj.add_list("vip")
    proj.subscribe_direct(list_id, email="keep@example.com")
    for name in ("ann", "ben", "cy"):
        proj.subscribe_direct(list_id, email=f"{name}@example.com")
    ws.csv("data/vip.csv", "email", ["keep@example.com"])
    ws.audience(
        "vip",
        {"csv": "data/vip.csv"},
        policy={"maxRemovalPercent": 100},
        unsubscribe={"channelUnsubscribe": True},
    )
    server.emulator.clear_log()
    result = cli("apply", ws.manifests, "--yes", "--format", "json")
    assert result.exit_code == 0, result.output
    assert the_list(result.json())["removed"] == 3
    assert proj.members(list_id, True) == ["keep@example.com"]
    reads = sorted(r.path for r in server.emulator.request_log if r.path.startswith("/api/users/"))
    assert reads == [f"/api/users/{name}%40example.com" for name in ("ann", "ben", "cy")]


def profile_reads(server) -> list[str]:
    return [r.path for r in server.emulator.request_log if r.path.startswith("/api/users/")]


def user_exports(server) -> list:
    return [
        r
        for r in requests_to(server, "/api/export/data.json")
        if parse_qs(r.query).get("dataTypeName") == ["user"]
    ]


@pytest.mark.parametrize("engine", ENGINES)
def test_many_channel_removals_read_their_profiles_by_one_export(
    field_workspace, cli, engine, monkeypatch
):
    """A hybrid audience with channelUnsubscribe read each email-shaped removal's profile
    before sending it, one GET at Iterable's 100 a second: 300 removals were 300 reads (a
    churn of a million, hours). Where one user export is modelled faster (chosen here by
    making the reads slow: profile_route), it reads every profile those removals need
    at once, and each is still sent as the kind of the profile the list read named by
    it: Bob, whose email is another person's userId, is sent as an email, and that other
    person (not on the list) keeps the channel."""
    profile_route(monkeypatch, "export")
    ws, server, proj = field_workspace("hybrid", engine)
    server.emulator.faults.counts_only_answers = False
    list_id = proj.add_list("vip")
    proj.subscribe_direct(list_id, email="keep@example.com", user_id="keep")
    leaving = [
        proj.subscribe_direct(list_id, email=f"m{i:03d}@example.com", user_id=f"u{i}")
        for i in range(300)
    ]
    stranger = proj.add_user(user_id="m007@example.com")  # a userId that is m007's email
    ws.csv("data/vip.csv", "email", ["keep@example.com"])
    ws.audience(
        "vip",
        {"csv": "data/vip.csv"},
        policy={"maxRemovalPercent": 100},
        unsubscribe={"channelUnsubscribe": True},
    )
    server.emulator.clear_log()
    result = cli("apply", ws.manifests, "--yes", "--format", "json")
    assert result.exit_code == 0, result.output
    lr = the_list(result.json())
    assert (lr["removed"], lr["already_gone"], lr["rejected"]) == (300, 0, [])
    assert proj.members(list_id, False) == ["keep@example.com"]
    assert profile_reads(server) == []
    assert len(user_exports(server)) == 1
    sent = accepted(server, "/api/lists/unsubscribe")
    assert sorted(s["email"] for s in sent) == [f"m{i:03d}@example.com" for i in range(300)]
    assert all(p.unsubscribed_channel_ids for p in leaving)
    assert set(stranger.unsubscribed_channel_ids) == set()
    assert "removals with channelUnsubscribe" in result.stderr
    assert "m007@example.com" not in result.stderr


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("project_type", ["hybrid", "userId"])
@pytest.mark.parametrize("unknown", ["empty", "error"])
def test_update_existing_users_only_converges_without_creating_anyone(
    field_workspace, cli, tmp_path, engine, project_type, unknown
):
    # The existence check reads users/byUserId, which may answer a stranger 500
    # error.users.noUserWithIdExists (block/iterable-go): "not found", not a failed read.
    faults = Faults(unknown_user_id_answer=unknown)
    ws, server, proj = field_workspace(project_type, engine, faults)
    proj.add_user(email="known@example.com", user_id="known")
    csv_audience(
        ws,
        "existing",
        "userId",
        ["known", "stranger-1", "stranger-2"],
        updateExistingUsersOnly=True,
    )

    plan = cli("plan", ws.manifests, "--format", "json")
    assert plan.exit_code == 0, plan.output
    body = plan.json()
    assert body["summary"]["members_to_add"] == 1
    assert body["summary"]["members_not_created"] == 2
    (lp,) = body["destinations"][0]["lists"]
    assert lp["not_sent"]["not_created"]["count"] == 2
    text = cli("plan", ws.manifests)
    assert "2 not created (updateExistingUsersOnly: Iterable does not know them)" in text.stdout
    assert "stranger-1" not in text.stdout  # named, masked

    record_file = tmp_path / "run.json"
    applied = cli("apply", ws.manifests, "--yes", "--summary-json", record_file)
    assert applied.exit_code == 0, applied.output
    assert json.loads(record_file.read_text())["outcome"] == "success"
    assert len(proj.users) == 1
    (list_id,) = proj.lists
    assert proj.members(list_id, True) == ["known"]
    subscribed = accepted(server, "/api/lists/subscribe")
    assert subscribed == [{"userId": "known"}]

    again = cli("apply", ws.manifests, "--yes")
    assert again.exit_code == 0, again.output
    final = cli("plan", ws.manifests, "--detailed-exitcode")
    assert final.exit_code == 0, final.output


@pytest.mark.parametrize("engine", ENGINES)
def test_whether_adds_exist_is_read_from_the_export_that_read_the_members(
    field_workspace, cli, engine, monkeypatch
):
    # The lists' members were read with one user export of every profile: whether the
    # adds of an updateExistingUsersOnly audience exist is in it. The plan asked Iterable
    # again, one per-user read each (or a second export of the project beyond 1,500).
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "export")
    ws, server, proj = field_workspace("userId", engine)
    list_id = proj.add_list("existing")
    proj.subscribe_direct(list_id, user_id="on-the-list")
    proj.add_user(user_id="known")
    ids = ["on-the-list", "known", "stranger-1"]
    csv_audience(ws, "existing", "userId", ids, updateExistingUsersOnly=True)

    server.emulator.clear_log()
    body = cli("plan", ws.manifests, "--format", "json").json()
    assert (body["summary"]["members_to_add"], body["summary"]["members_not_created"]) == (1, 1)
    assert (
        "2 users checked for existence with the user export that read the members"
        in body["destinations"][0]["other_reads"]
    )
    calls: dict[str, int] = {}
    for r in server.emulator.request_log:
        calls[f"{r.method} {r.path}"] = calls.get(f"{r.method} {r.path}", 0) + 1
    # Beside the consent guard's reads (the unsubscribe events' export, the channels)
    # and the campaigns the adds reach: no per-user read.
    assert calls == {
        "GET /api/lists": 1,
        "GET /api/export/data.json": 2,
        "GET /api/users/forgottenUserIds": 1,
        "GET /api/channels": 1,
        "GET /api/campaigns": 1,
    }
    exports = [parse_qs(r.query) for r in requests_to(server, "/api/export/data.json")]
    assert sorted(e["dataTypeName"][0] for e in exports) == ["emailUnSubscribe", "user"]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("project_type", ["hybrid", "userId"])
def test_update_existing_users_only_adds_who_another_list_creates_in_the_same_apply(
    field_workspace, cli, engine, project_type, monkeypatch
):
    # "newcomer" is new to Iterable and joins two lists in one apply: "signups", which
    # creates users, and "existing" (updateExistingUsersOnly). The plan left them out of
    # "existing" as not created, so the apply's own subscribe to "signups" made a user the
    # next plan added again: no apply converged in one. Lists that create users are now
    # subscribed first, and their new users stay in the other list's adds.
    monkeypatch.setenv("RECONCILER_ENGINE_THRESHOLD", "1" if engine == "duckdb" else "100000")
    ws, _server, proj = field_workspace(project_type, engine)
    proj.add_user(email="known@example.com", user_id="known")
    rows = ["known@example.com,known", "newcomer@example.com,newcomer", "stranger@example.com,s"]
    signups = ["newcomer@example.com,newcomer"]
    if project_type == "hybrid":  # by email, when one side has no userId
        rows += ["new@example.com,", "both@example.com,both"]
        signups += ["new@example.com,", "both@example.com,"]
    ws.csv("data/existing.csv", "email,userId", rows)
    ws.csv("data/signups.csv", "email,userId", signups)
    ws.audience("existing", {"csv": "data/existing.csv"}, updateExistingUsersOnly=True)
    ws.audience("signups", {"csv": "data/signups.csv"})

    body = cli("plan", ws.manifests, "--format", "json").json()
    assert body["summary"]["members_not_created"] == 1  # the stranger only
    applied = cli("apply", ws.manifests, "--yes", "--format", "json")
    assert applied.exit_code == 0, applied.output
    lists = {r.name: i for i, r in proj.lists.items()}
    want = {"known", "newcomer"}
    if project_type == "hybrid":
        want |= {"new@example.com", "both"}
    assert set(proj.members(lists["existing"], True)) == want
    assert proj.find_user(user_id="s") is None
    final = cli("plan", ws.manifests, "--detailed-exitcode")
    assert final.exit_code == 0, final.output


@pytest.mark.parametrize("reads", ["export", "getUsers"])
def test_adds_too_many_to_hold_are_checked_for_existence_in_duckdb(
    field_workspace, cli, monkeypatch, reads
):
    # Beyond MAX_TABLE_CHECK adds (held in DuckDB, not as members) nobody was checked: the
    # plan kept the people Iterable does not know in its adds, apply sent them and Iterable
    # skipped them, and the next plan proposed them again, on every run (102,000 strangers
    # of a 105,000-row audience: +102,000 each time, and with answers that count failures
    # without naming them, exit 1 each time). They are now matched in DuckDB with the
    # export that read the members, or one export where getUsers read them. "newcomer" is
    # unknown too, but another list's subscribe creates them in the same apply: kept.
    monkeypatch.setattr("reconciler.state.unsendable.MAX_TABLE_CHECK", 1)
    monkeypatch.setenv("RECONCILER_MEMBER_READS", reads)
    ws, server, proj = field_workspace("userId", "duckdb")
    proj.add_user(user_id="known")
    ids = ["known", "newcomer", "stranger-1", "stranger-2"]
    csv_audience(ws, "existing", "userId", ids, updateExistingUsersOnly=True)
    csv_audience(ws, "signups", "userId", ["newcomer"])
    body = cli("plan", ws.manifests, "--format", "json").json()
    assert (body["summary"]["members_to_add"], body["summary"]["members_not_created"]) == (3, 2)
    # No list to read members from yet: one export of the project, once, for both checks.
    assert body["destinations"][0]["other_reads"][1:] == [
        "4 users checked for existence with 1 user export"
    ]
    server.emulator.faults.counts_only_answers = True
    applied = cli("apply", ws.manifests, "--yes", "--format", "json")
    assert applied.exit_code == 0, applied.output
    lists = {r.name: i for i, r in proj.lists.items()}
    assert set(proj.members(lists["existing"], True)) == {"known", "newcomer"}
    assert proj.find_user(user_id="stranger-1") is None
    again = cli("plan", ws.manifests, "--format", "json").json()
    assert (again["summary"]["members_to_add"], again["summary"]["members_not_created"]) == (0, 2)
    how = "the user export that read the members" if reads == "export" else "1 user export"
    assert f"2 users checked for existence with {how}" in again["destinations"][0]["other_reads"]
    final = cli("plan", ws.manifests, "--detailed-exitcode")
    assert final.exit_code == 0, final.output


def test_adds_in_duckdb_and_adds_held_as_members_checked_by_one_export_say_it_once(
    field_workspace, cli, monkeypatch
):
    # Adds over MAX_TABLE_CHECK (matched in DuckDB) and another list's few (held as
    # members, an export chosen: per-user reads made slow) took the one user export of the
    # project the plan's reads share, yet each line said "with 1 user export": two.
    monkeypatch.setattr("reconciler.state.unsendable.MAX_TABLE_CHECK", 2)
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "getUsers")
    monkeypatch.setenv("RECONCILER_USER_READS_PER_SECOND", "0.1")
    ws, server, proj = field_workspace("userId", "duckdb")
    proj.add_user(user_id="known")
    ids = ["known", "newcomer", "stranger-1", "stranger-2"]
    csv_audience(ws, "existing", "userId", ids, updateExistingUsersOnly=True)
    csv_audience(ws, "few", "userId", ["known", "stranger-3"], updateExistingUsersOnly=True)
    csv_audience(ws, "signups", "userId", ["newcomer"])
    body = cli("plan", ws.manifests, "--format", "json").json()
    assert (body["summary"]["members_to_add"], body["summary"]["members_not_created"]) == (4, 3)
    assert len(user_exports(server)) == 1
    said = [t for t in body["destinations"][0]["other_reads"] if "for existence" in t]
    assert said == ["6 users checked for existence with 1 user export"]


def test_update_existing_users_only_not_found_at_apply_is_not_created_not_an_error(
    field_workspace, cli
):
    # The plan saw the user; Iterable lost it before the subscribe (apply's own check).
    ws, server, proj = field_workspace("hybrid")
    # Names each failed member: answers that itemise failures (the field profile's may not).
    server.emulator.faults.counts_only_answers = False
    proj.add_user(user_id="known")
    proj.add_user(user_id="vanishing")
    csv_audience(ws, "existing", "userId", ["known", "vanishing"], updateExistingUsersOnly=True)
    emulator = server.emulator
    original = emulator.handle

    def deleted_meanwhile(request: httpx.Request):
        if request.url.path == "/api/lists/subscribe":
            user = proj.user_by_user_id("vanishing")
            if user is not None:
                proj.delete_user(user)
        return original(request)

    emulator.handle = deleted_meanwhile  # type: ignore[method-assign]
    result = cli("apply", ws.manifests, "--yes", "--format", "json")
    assert result.exit_code == 0, result.output
    lr = the_list(result.json())
    assert (lr["added"], lr["not_created"], lr["rejected"]) == (1, 1, [])


# -- 6. forgotten users -----------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(
    ("project_type", "column", "forget"),
    [
        ("hybrid", "email", {"email": "Gone@Example.com"}),
        ("email", "email", {"email": "gone@example.com"}),
        ("userId", "userId", {"userId": "gone"}),
        ("hybrid", "userId", {"userId": "gone"}),
    ],
)
def test_forgotten_users_are_left_out_counted_and_named_masked(
    field_workspace, cli, engine, project_type, column, forget
):
    ws, server, proj = field_workspace(project_type, engine)
    gone = "gone@example.com" if column == "email" else "gone"
    values = [gone] + (["a@example.com", "b@example.com"] if column == "email" else ["a-1", "b-2"])
    proj.add_user(
        email="gone@example.com" if project_type != "userId" or column == "email" else None,
        user_id="gone" if project_type != "email" else None,
    )
    httpx.post(f"{server.base_url}/_emulator/forget", json=forget).raise_for_status()
    csv_audience(ws, "vip", column, values)

    plan = cli("plan", ws.manifests, "--format", "json")
    assert plan.exit_code == 0, plan.output
    body = plan.json()
    assert body["summary"]["members_to_add"] == 2
    assert body["summary"]["members_forgotten"] == 1
    (lp,) = body["destinations"][0]["lists"]
    assert lp["not_sent"]["forgotten"]["count"] == 1
    assert gone not in plan.stdout  # named, masked
    text = cli("plan", ws.manifests)
    assert "1 forgotten in Iterable, not sent" in text.stdout
    # At most one read of each kind per plan.
    reads = requests_to(server, "/api/users/forgotten") + requests_to(
        server, "/api/users/forgottenUserIds"
    )
    assert len(reads) == 2 * (2 if project_type == "hybrid" else 1)
    assert all(r.status == 200 for r in reads)

    server.emulator.clear_log()
    applied = cli("apply", ws.manifests, "--yes")
    assert applied.exit_code == 0, applied.output
    sent = accepted(server, "/api/lists/subscribe")
    assert len(sent) == 2 and all(gone not in s.values() for s in sent)
    final = cli("plan", ws.manifests, "--detailed-exitcode")
    assert final.exit_code == 0, final.output


def test_a_user_forgotten_between_plan_and_apply_is_expected_not_an_error(
    field_workspace, cli, tmp_path
):
    ws, server, proj = field_workspace("hybrid")
    # Names each failed member: answers that itemise failures (the field profile's may not).
    server.emulator.faults.counts_only_answers = False
    ws.audience("vip", {"inline": ["a@example.com", "late@example.com"]})
    saved = tmp_path / "plan.gz"
    assert cli("plan", ws.manifests, "--out", saved).exit_code == 0
    proj.forget(email="late@example.com")
    result = cli("apply", "--plan", saved, "--yes", "--format", "json")
    assert result.exit_code == 0, result.output
    lr = the_list(result.json())
    assert (lr["added"], lr["forgotten"], lr["rejected"]) == (1, 1, [])


# -- 7. userID-based projects read lists by userId ---------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_an_emptied_audience_in_a_user_id_project_removes_its_members(field_workspace, cli, engine):
    ws, server, proj = field_workspace("userId", engine)
    list_id = proj.add_list("vip")
    for i in range(3):
        proj.subscribe_direct(list_id, email=f"m{i}@example.com", user_id=f"user-{i}")
    # A userId shaped like an email is still a userId here: sent as one, not as an email.
    proj.subscribe_direct(list_id, user_id="shaped@example.com")
    # Emptying a list on purpose is said in the manifest (the empty-source guard).
    csv_audience(ws, "vip", "userId", [], policy={"maxRemovalPercent": 100}, allowEmpty=True)

    result = cli("apply", ws.manifests, "--yes", "--format", "json")
    assert result.exit_code == 0, result.output
    assert proj.members(list_id) == []
    (read,) = requests_to(server, "/api/lists/getUsers")
    assert parse_qs(read.query)["preferUserId"] == ["true"]
    removed = accepted(server, "/api/lists/unsubscribe")
    assert sorted(s["userId"] for s in removed) == [
        "shaped@example.com",
        "user-0",
        "user-1",
        "user-2",
    ]


# -- 8. an empty answer is not an empty list ---------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_an_empty_member_read_of_a_list_iterable_counts_as_full_is_not_trusted(
    field_workspace, cli, tmp_path, engine
):
    ws, server, proj = field_workspace("hybrid", engine)
    list_id = proj.add_list("vip")
    for i in range(2001):
        proj.subscribe_direct(list_id, email=f"m{i}@example.com")
    # 2,000 members are due for removal.
    csv_audience(ws, "vip", "email", ["m0@example.com"], policy={"maxRemovalPercent": 100})
    faults = server.emulator.faults
    faults.paths = ["/api/lists/getUsers"]
    faults.bad_body_every, faults.bad_body = 1, "empty"

    plan = cli("plan", ws.manifests, "--format", "json")
    assert plan.exit_code == 1, plan.output
    body = plan.json()
    assert body["has_changes"] is False and body["summary"]["lists_unread"] == 1
    (unread,) = body["destinations"][0]["unread"]
    assert unread["audience"] == "vip" and "counts 2,001 on the list" in unread["reason"]
    assert len(requests_to(server, f"/api/lists/{list_id}/size")) == 1

    record_file = tmp_path / "run.json"
    applied = cli("apply", ws.manifests, "--yes", "--summary-json", record_file)
    assert applied.exit_code == 1, applied.output
    assert "vip: left out of this plan" in applied.stdout
    assert "Apply complete" not in applied.output
    assert json.loads(record_file.read_text())["outcome"] == "failed"
    assert requests_to(server, "/api/lists/subscribe") == []
    assert requests_to(server, "/api/lists/unsubscribe") == []
    assert len(proj.members(list_id)) == 2001

    faults.bad_body_every = 0  # the reads are whole again: the removals go ahead
    fixed = cli("apply", ws.manifests, "--yes")
    assert fixed.exit_code == 0, fixed.output
    assert proj.members(list_id) == ["m0@example.com"]


def test_an_empty_read_of_an_empty_list_is_the_empty_list(field_workspace, cli):
    ws, server, proj = field_workspace("hybrid")
    list_id = proj.add_list("vip")
    csv_audience(ws, "vip", "email", ["a@example.com"])
    result = cli("apply", ws.manifests, "--yes")
    assert result.exit_code == 0, result.output
    assert proj.members(list_id) == ["a@example.com"]
    assert len(requests_to(server, f"/api/lists/{list_id}/size")) == 1


# -- 10. identifiers read back are compared exactly --------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_a_user_id_with_a_leading_space_matches_itself(field_workspace, cli, engine):
    ws, _server, proj = field_workspace("userId", engine)
    csv_audience(ws, "vip", "userId", [" spaced", "plain"])
    assert cli("apply", ws.manifests, "--yes").exit_code == 0
    (list_id,) = proj.lists
    assert sorted(proj.members(list_id)) == [" spaced", "plain"]
    again = cli("plan", ws.manifests, "--detailed-exitcode", "--show-members")
    assert again.exit_code == 0, again.output


def test_a_forgotten_read_iterable_refuses_is_noted_and_the_members_sent(
    tmp_path, monkeypatch, fast_client, make_emulator_server, cli
):
    # A userID-based project refuses GET /api/users/forgotten (emails) with a 400.
    server = make_emulator_server(project_type="userId")
    # Names each failed member: answers that itemise failures (the field profile's may not).
    server.emulator.faults.counts_only_answers = False
    server.emulator.project("default").forget(user_id="gone")
    monkeypatch.setenv(API_KEY_VAR, "test-key")
    monkeypatch.chdir(tmp_path)
    ws = Workspace(tmp_path, server.base_url, "hybrid")  # the manifest says hybrid
    ws.destination()
    ws.audience("vip", {"inline": [{"userId": "a-1"}, {"userId": "gone"}]})

    plan = cli("plan", ws.manifests, "--format", "json")
    assert plan.exit_code == 0, plan.output
    (dest,) = plan.json()["destinations"]
    (note,) = [x for x in dest["other_reads"] if x.startswith("forgotten users could not")]
    assert "/api/users/forgotten: HTTP 400" in note
    applied = cli("apply", ws.manifests, "--yes", "--format", "json")
    assert applied.exit_code == 0, applied.output
    lr = the_list(applied.json())
    assert (lr["added"], lr["forgotten"], lr["rejected"]) == (1, 1, [])


@pytest.mark.parametrize("engine", ENGINES)
def test_import_never_adopts_an_empty_read_of_a_full_list(field_workspace, cli, engine):
    ws, server, proj = field_workspace("hybrid", engine)
    full, empty = proj.add_list("full"), proj.add_list("empty")
    for i in range(3):
        proj.subscribe_direct(full, email=f"m{i}@example.com")
    faults = server.emulator.faults
    faults.paths = ["/api/lists/getUsers"]
    faults.bad_body_every, faults.bad_body = 1, "empty"
    out = ws.manifests / "imported"

    result = cli("import", ws.manifests, "--destination", "prod", "--out", out)
    assert result.exit_code == 1, result.output
    assert "Iterable counts 3 on the list; nothing was written" in result.stderr
    assert not (out / "full.csv").exists() and not (out / "full.yaml").exists()
    assert (out / "empty.yaml").exists()  # an empty read of an empty list is the list
    assert len(requests_to(server, f"/api/lists/{empty}/size")) == 1


def test_import_never_adopts_a_list_a_whole_looking_export_left_out(
    field_workspace, cli, monkeypatch
):
    """An export that Iterable answers 200 with nothing (or ends cleanly early) reads
    whole: nothing tells it from a project without those members. So a list the export
    finds empty is still checked against its size, as after getUsers, though it costs a
    start of getUsers' budget for each (about 12 s a list beyond 5 at Iterable's pace)."""
    ws, server, proj = field_workspace("hybrid")
    full, empty = proj.add_list("full"), proj.add_list("empty")
    for i in range(3):
        proj.subscribe_direct(full, email=f"m{i}@example.com")
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "export")
    faults = server.emulator.faults
    faults.paths = ["/api/export/data.json"]
    faults.bad_body_every, faults.bad_body = 1, "empty"
    out = ws.manifests / "imported"

    result = cli("import", ws.manifests, "--destination", "prod", "--out", out)

    assert result.exit_code == 1, result.output
    # An export that read no member on any list also names a projectType mismatch as the
    # likely cause (as plan does): nothing tells the two apart.
    text = " ".join(result.stderr.split())
    assert "Iterable counts 3 on the list; destination 'prod' declares projectType" in text
    assert "check projectType in" in text and "; nothing was written for it" in text
    assert not (out / "full.csv").exists() and not (out / "full.yaml").exists()
    assert (out / "empty.yaml").exists()
    assert len(requests_to(server, "/api/lists/getUsers")) == 0  # read by the export
    assert len(requests_to(server, f"/api/lists/{empty}/size")) == 1
    assert len(requests_to(server, f"/api/lists/{full}/size")) == 1


def test_the_markdown_plan_names_members_not_sent_masked(field_workspace, cli):
    ws, _server, proj = field_workspace("hybrid")
    proj.add_user(user_id="known")
    proj.forget(email="gone@example.com")
    ws.audience("vip", {"inline": ["a@example.com", "gone@example.com"]})
    ws.audience(
        "existing",
        {"inline": [{"userId": "known"}, {"userId": "stranger"}]},
        updateExistingUsersOnly=True,
    )
    result = cli("plan", ws.manifests, "--format", "markdown")
    assert result.exit_code == 0, result.output
    assert "vip: 1 forgotten in Iterable, not sent: `" in result.stdout
    assert "existing: 1 not created (updateExistingUsersOnly): `" in result.stdout
    assert "gone@example.com" not in result.stdout and "stranger" not in result.stdout


UPPER_UUIDS = ["3F2504E0-4F89-11D3-9A0C-0305E82C3301", "6BA7B810-9DAD-11D1-80B4-00C04FD430C8"]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("project_type", ["userId", "hybrid"])
def test_user_ids_that_differ_only_in_case_from_removed_ones_are_named_in_a_note(
    field_workspace, cli, engine, project_type
):
    """An app that writes upper-case UUIDs as userIds (iOS's uuidString does), and a query
    whose uuid column DuckDB or PostgreSQL gives as lower-case text: Iterable matches
    userIds exactly, so the plan removes every member and adds other profiles (which a
    hybrid project then refuses, their email being on the first one) with no word of why."""
    ws, _server, proj = field_workspace(project_type, engine)
    list_id = proj.add_list("vip")
    for n, uid in enumerate(UPPER_UUIDS):
        proj.subscribe_direct(list_id, user_id=uid, email=f"p{n}@example.com")
    ws.csv("data/ids.csv", "id,email", [f"{u},p{n}@example.com" for n, u in enumerate(UPPER_UUIDS)])
    query = "SELECT CAST(id AS UUID) AS userId, email FROM read_csv('data/ids.csv')"
    ws.audience("vip", {"sql": query, "database": ":memory:"}, policy={"maxRemovalPercent": 100})

    plan = cli("plan", ws.manifests, "--format", "json")

    assert plan.exit_code == 0, plan.output
    body = plan.json()
    assert body["summary"]["members_to_add"] == 2
    assert body["summary"]["members_to_remove"] == 2
    (note,) = [n for n in body["destinations"][0]["notes"] if "letter case" in n]
    assert note.startswith(
        "list 'vip': 2 of the members this plan adds have a userId that differs only in "
        "letter case from one of the 2 members it removes"
    )
    text = cli("plan", ws.manifests)
    assert "differs only in letter case" in text.stdout
    for uid in UPPER_UUIDS:
        assert uid.lower() not in plan.output + text.output
        assert uid not in plan.output + text.output
