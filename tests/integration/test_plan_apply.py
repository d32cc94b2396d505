"""plan and apply through the real CLI against the emulator over loopback HTTP."""

from __future__ import annotations

import gzip
import math
import re
from pathlib import Path

import httpx
import pytest

from tests.conftest import EMULATOR_API_KEY
from tests.integration.conftest import API_KEY_VAR

WRITES = ("POST", "DELETE", "PUT")


def project(emulator_server):
    return emulator_server.emulator.project("default")


def list_id(emulator_server, name: str) -> int:
    ids = [lid for lid, rec in project(emulator_server).lists.items() if rec.name == name]
    assert len(ids) == 1, ids
    return ids[0]


def writes(emulator_server) -> list:
    return [r for r in emulator_server.emulator.request_log if r.method in WRITES]


def requests_to(emulator_server, path: str) -> list:
    """The requests to `path` Iterable took (under the field profile a new list first
    answers some with 400 invalidListId; those changed nothing)."""
    return [r for r in emulator_server.emulator.request_log if r.path == path and r.status < 400]


def test_first_apply_creates_lists_and_members_then_second_is_a_no_op(
    workspace, cli, emulator_server
):
    workspace.audience(
        "vip", {"inline": ["Ada@Example.com", {"email": "b@example.com", "userId": "u-2"}]}
    )
    workspace.csv(
        "data/churn.csv", "email,userId,plan", ["c@example.com,,gold", "d@example.com,u-4,free"]
    )
    workspace.audience("churn", {"csv": "data/churn.csv"}, listName="Churn risk")

    first = cli("apply", workspace.manifests, "--yes")
    assert first.exit_code == 0, first.output
    assert "Apply complete" in first.stdout
    proj = project(emulator_server)
    assert sorted(proj.members(list_id(emulator_server, "vip"))) == [
        "ada@example.com",
        "b@example.com",
    ]
    assert sorted(proj.members(list_id(emulator_server, "Churn risk"))) == [
        "c@example.com",
        "d@example.com",
    ]
    # hybrid: both identifiers were sent, so the new profile carries both
    assert proj.find_user(email="b@example.com").user_id == "u-2"

    emulator_server.emulator.clear_log()
    second = cli("plan", workspace.manifests, "--detailed-exitcode")
    assert second.exit_code == 0, second.output
    assert "No changes" in second.stdout
    again = cli("apply", workspace.manifests, "--yes")
    assert again.exit_code == 0, again.output
    assert writes(emulator_server) == []


def test_plan_json_summary_and_detailed_exit_code(workspace, cli):
    workspace.audience("vip", {"inline": ["a@example.com", "b@example.com"]})
    result = cli("plan", workspace.manifests, "--format", "json", "--detailed-exitcode")
    assert result.exit_code == 2, result.output
    summary = result.json()["summary"]
    assert summary["lists_to_create"] == 1
    assert summary["members_to_add"] == 2
    assert summary["members_to_remove"] == 0
    assert summary["users_to_update"] == 0
    assert summary["lists_to_delete"] == 0


def test_removing_members_unsubscribes_exactly_them(workspace, cli, emulator_server):
    workspace.audience(
        "vip",
        {"inline": ["a@example.com", "b@example.com", "c@example.com"]},
        unsubscribe={"campaignId": 42},
        policy={"maxRemovalPercent": 100},
    )
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0
    workspace.audience(
        "vip",
        {"inline": ["a@example.com"]},
        unsubscribe={"campaignId": 42},
        policy={"maxRemovalPercent": 100},
    )
    emulator_server.emulator.clear_log()

    result = cli("apply", workspace.manifests, "--yes")
    assert result.exit_code == 0, result.output
    unsubscribes = requests_to(emulator_server, "/api/lists/unsubscribe")
    assert len(unsubscribes) == 1
    body = unsubscribes[0].body
    assert sorted(s["email"] for s in body["subscribers"]) == ["b@example.com", "c@example.com"]
    assert body["campaignId"] == 42
    assert body["channelUnsubscribe"] is False  # consent is never touched by default
    assert requests_to(emulator_server, "/api/lists/subscribe") == []
    assert project(emulator_server).members(list_id(emulator_server, "vip")) == ["a@example.com"]


@pytest.mark.parametrize("existing_only", [False, True])
def test_subscribes_say_whether_they_create_users_explicitly(
    workspace, cli, emulator_server, existing_only
):
    """Iterable's defaults are not always its spec's: updateExistingUsersOnly is sent as
    false, not left to a default, which, were it true, would create none of the joiners."""
    project(emulator_server).add_user(email="a@example.com")
    workspace.audience("vip", {"inline": ["a@example.com"]}, updateExistingUsersOnly=existing_only)
    result = cli("apply", workspace.manifests, "--yes")
    assert result.exit_code == 0, result.output
    (subscribe,) = requests_to(emulator_server, "/api/lists/subscribe")
    assert subscribe.body["updateExistingUsersOnly"] is existing_only


def test_subscribe_requests_are_batched_by_a_thousand(workspace, cli, emulator_server):
    n = 2500
    workspace.csv("data/big.csv", "email", [f"user{i}@example.com" for i in range(n)])
    workspace.audience("big", {"csv": "data/big.csv"})
    result = cli("apply", workspace.manifests, "--yes")
    assert result.exit_code == 0, result.output
    subscribes = requests_to(emulator_server, "/api/lists/subscribe")
    assert len(subscribes) == math.ceil(n / 1000)
    assert sorted(len(r.body["subscribers"]) for r in subscribes) == [500, 1000, 1000]
    assert len(project(emulator_server).members(list_id(emulator_server, "big"))) == n


def test_partial_failures_are_reported_per_member_and_exit_non_zero(
    workspace, cli, emulator_server
):
    proj = project(emulator_server)
    # An underscore in the domain passes reconciler's light check; Iterable refuses it.
    workspace.audience("mixed", {"inline": ["known@example.com", "two.dots@ex_ample.com"]})
    result = cli("apply", workspace.manifests, "--yes", "--show-members")
    assert result.exit_code == 1, result.output
    assert "two.dots@ex_ample.com: invalid email" in result.stdout
    assert "added 1/2" in result.stdout
    # every rejected member, in full, in a local file the output points to
    rejected_file = result.stdout.split("Every rejected member, in full: ")[1].split()[0]
    assert "two.dots@ex_ample.com,invalid email" in Path(rejected_file).read_text()
    assert proj.members(list_id(emulator_server, "mixed")) == ["known@example.com"]


def test_hybrid_conflict_is_shown_for_the_member(workspace, cli, emulator_server):
    # Names each failed member: answers that itemise failures (the field profile's may not).
    emulator_server.emulator.faults.counts_only_answers = False
    proj = project(emulator_server)
    proj.add_user(email="one@example.com")
    proj.add_user(user_id="u-other")
    workspace.audience(
        "conflicted", {"inline": [{"email": "one@example.com", "userId": "u-other"}]}
    )
    result = cli("apply", workspace.manifests, "--yes", "--show-members")
    assert result.exit_code == 1
    assert "u-other: Iterable has the email and the userId on two profiles" in result.stdout
    # Two people here: emptying the email would subscribe the userId's profile, another
    # person than the row's email, so the fix is not offered without that condition.
    assert "correct the row's email or userId" in result.stdout
    assert "leave the email empty only if the userId's profile is this member's" in (result.stdout)


def test_a_hybrid_member_whose_email_changed_in_iterable_is_told_how_to_fix_its_row(
    workspace, cli, emulator_server
):
    """An app changed a member's email in a hybrid project; the source still gives the old
    one beside her userId. Iterable refuses her subscribe to another list as a conflict,
    which said "email and userId belong to different users": there was one user, and
    nothing said what to do. It now says which it may be and the fix, which works."""
    emulator_server.emulator.faults.counts_only_answers = False
    proj = project(emulator_server)
    vip = proj.add_list("vip")
    proj.add_user(email="old@example.com", user_id="U-1", list_ids=[vip])
    moved = httpx.post(  # how an app changes an email in a hybrid project
        f"{workspace.base_url}/api/users/update",
        headers={"Api-Key": EMULATOR_API_KEY},
        json={"userId": "U-1", "dataFields": {"email": "new@example.com"}},
    )
    assert moved.status_code == 200, moved.text
    workspace.csv("m.csv", "email,userId", ["old@example.com,U-1"])
    workspace.audience("vip", {"csv": "m.csv"})
    workspace.audience("more", {"csv": "m.csv"})
    result = cli("apply", workspace.manifests, "--yes")
    assert result.exit_code == 1, result.output
    assert (
        "Iterable has the email and the userId on two profiles, or the userId's profile "
        "under another email (changed there?): correct the row's email or userId; leave "
        "the email empty only if the userId's profile is this member's"
    ) in result.stdout
    assert "old@example.com" not in result.output and "new@example.com" not in result.output
    assert proj.members(vip) == ["new@example.com"] and len(proj.users) == 1
    workspace.csv("m.csv", "email,userId", [",U-1"])
    fixed = cli("apply", workspace.manifests, "--yes")
    assert fixed.exit_code == 0, fixed.output
    more = next(i for i, x in proj.lists.items() if x.name == "more")
    assert proj.members(more) == ["new@example.com"] and len(proj.users) == 1


def test_retries_survive_429_and_503_with_nothing_lost_or_duplicated(
    workspace, cli, emulator_server
):
    emails = [f"r{i}@example.com" for i in range(2100)]
    workspace.csv("data/r.csv", "email", emails)
    workspace.audience("retry", {"csv": "data/r.csv"})
    faults = emulator_server.emulator.faults
    faults.script = [429, 503, 500, 429, 503]
    faults.fail_every = 4
    faults.fail_status = 503

    result = cli("apply", workspace.manifests, "--yes")
    faults.fail_every = 0
    assert result.exit_code == 0, result.output
    members = project(emulator_server).members(list_id(emulator_server, "retry"))
    assert sorted(members) == sorted(emails)
    assert len(members) == len(set(members))
    assert cli("plan", workspace.manifests, "--detailed-exitcode").exit_code == 0


def test_dropped_connection_after_create_does_not_create_the_list_twice(
    workspace, cli, emulator_server
):
    workspace.audience("once", {"inline": ["a@example.com"]})
    faults = emulator_server.emulator.faults
    faults.paths = ["/api/lists"]
    faults.drop_every = 1
    emulator_server.emulator.limits  # noqa: B018  (exists)
    # Drop only the first request that counts: the create.
    calls = {"n": 0}
    original = emulator_server.emulator.handle

    def drop_first_create(request):
        if request.method == "POST" and request.url.path == "/api/lists" and calls["n"] == 0:
            calls["n"] += 1
            faults.drop_every = 1
        else:
            faults.drop_every = 0
        return original(request)

    emulator_server.emulator.handle = drop_first_create
    try:
        result = cli("apply", workspace.manifests, "--yes")
    finally:
        emulator_server.emulator.handle = original
        faults.drop_every = 0
        faults.paths = None
    assert result.exit_code == 0, result.output
    assert [r.name for r in project(emulator_server).lists.values()] == ["once"]


def test_wrong_api_key_is_a_clear_error_without_the_key(workspace, cli, monkeypatch):
    secret = "sk-live-DO-NOT-PRINT-123456"
    monkeypatch.setenv(API_KEY_VAR, secret)
    workspace.audience("vip", {"inline": ["a@example.com"]})
    for command in (("plan",), ("apply", "--yes")):
        result = cli(*command, workspace.manifests)
        assert result.exit_code == 1
        assert "rejected the API key" in result.stderr
        assert "destination 'prod'" in result.stderr  # which of the keys is wrong
        assert secret not in result.output


def test_missing_key_variable_names_the_variable(workspace, cli, monkeypatch):
    monkeypatch.delenv(API_KEY_VAR)
    workspace.audience("vip", {"inline": ["a@example.com"]})
    result = cli("plan", workspace.manifests)
    assert result.exit_code == 1
    assert API_KEY_VAR in result.stderr


def test_every_destination_missing_its_key_is_named_at_once(workspace, cli, monkeypatch):
    """Two CI secrets missing took two runs to find: plan stopped at the first destination."""
    monkeypatch.delenv(API_KEY_VAR)
    workspace.destination("eu", apiKey={"env": "ITERABLE_EU_KEY"})  # type: ignore[arg-type]
    monkeypatch.delenv("ITERABLE_EU_KEY", raising=False)
    workspace.audience("vip", {"inline": ["a@example.com"]})
    workspace.audience("vip-eu", {"inline": ["a@example.com"]}, destination="eu")
    for command in (("plan",), ("apply", "--yes")):
        result = cli(*command, workspace.manifests)
        assert result.exit_code == 1
        lines = result.stderr.splitlines()
        assert lines[0] == "error: 2 destinations cannot be used:"
        assert lines[1].startswith("manifests/dest-eu.yaml:12:")
        assert "destination 'eu': environment variable ITERABLE_EU_KEY is not set" in lines[1]
        assert lines[2].startswith("manifests/dest-prod.yaml:12:")
        assert f"destination 'prod': environment variable {API_KEY_VAR} is not set" in lines[2]


def test_every_source_that_cannot_be_read_is_named_at_once(workspace, cli, emulator_server):
    """Plan stopped at the first broken source: two broken exports took two runs to find,
    where validate names them all in one."""
    workspace.csv("data/headless.csv", "nope,other", ["1,2"])
    workspace.audience("headless", {"csv": "data/headless.csv"})
    workspace.audience("missing", {"csv": "data/missing.csv"})
    workspace.audience("fine", {"inline": ["a@example.com"]})
    for command in (("plan",), ("apply", "--yes")):
        result = cli(*command, workspace.manifests)
        assert result.exit_code == 1, result.output
        lines = result.stderr.splitlines()
        where = lines.index("error: 2 sources cannot be read:")
        assert lines[where + 1].startswith("manifests/aud-headless.yaml:")
        assert "has neither an 'email' nor a 'userId' column" in lines[where + 1]
        assert lines[where + 2].startswith("manifests/aud-missing.yaml:")
        assert "CSV file not found: manifests/data/missing.csv" in lines[where + 2]
    failed = cli("plan", workspace.manifests, "--format", "json")
    assert failed.exit_code == 1
    assert failed.json()["error"].startswith("2 sources cannot be read:\n")
    assert writes(emulator_server) == []


def test_two_lists_with_the_same_name_are_refused_naming_both(workspace, cli, emulator_server):
    proj = project(emulator_server)
    first, second = proj.add_list("dup"), proj.add_list("dup")
    workspace.audience("dup", {"inline": ["a@example.com"]})
    result = cli("plan", workspace.manifests)
    assert result.exit_code == 1
    # The audience is left out, named in the plan; nothing is created beside them.
    assert f"Iterable has 2 lists named 'dup' (ids {first}, {second})" in result.stdout
    assert "dup: left out of this plan" in result.stdout
    assert 'create list "dup"' not in result.stdout


def test_invalid_members_are_skipped_named_and_exit_non_zero(workspace, cli, emulator_server):
    workspace.csv("data/m.csv", "email,userId", ["good@example.com,", "not-an-email,", ",bad id "])
    workspace.audience("mixed", {"csv": "data/m.csv"})
    result = cli("apply", workspace.manifests, "--yes", "--show-members")
    assert result.exit_code == 1
    assert "m.csv:3: invalid email 'not-an-email'" in result.stdout
    assert "m.csv:4:" in result.stdout
    assert project(emulator_server).members(list_id(emulator_server, "mixed")) == [
        "good@example.com"
    ]
    # The last line agrees with the exit code: not "complete", not "matches".
    last = result.stdout.strip().splitlines()[-1]
    assert "Apply complete" not in result.stdout
    assert last.startswith("Applied everything planned") and "Not complete: 2 members" in last
    for command in ("plan", "apply"):
        again = cli(
            command, workspace.manifests, "--yes" if command == "apply" else "--show-members"
        )
        assert again.exit_code == 1, again.output
        assert "Iterable matches the manifests" not in again.stdout
        assert "Iterable does not match the manifests" in again.stdout
        assert again.stdout.strip().splitlines()[-1] == (
            "Warning: 2 members could not be used (see above)."
        )
    report = cli("apply", workspace.manifests, "--yes", "--format", "json")
    assert report.exit_code == 1
    assert report.json()["source_problems"] == "2 members could not be used"


def test_apply_without_terminal_or_yes_refuses_and_changes_nothing(workspace, cli, emulator_server):
    workspace.audience("vip", {"inline": ["a@example.com"]})
    result = cli("apply", workspace.manifests)
    assert result.exit_code == 1
    assert "--yes" in result.stderr
    assert writes(emulator_server) == []


def test_target_limits_plan_to_named_audiences(workspace, cli):
    workspace.audience("one", {"inline": ["a@example.com"]})
    workspace.audience("two", {"inline": ["b@example.com"]})
    result = cli("plan", workspace.manifests, "--format", "json", "--target", "two")
    assert result.exit_code == 0, result.output
    names = [lp["audience"] for d in result.json()["destinations"] for lp in d["lists"]]
    assert names == ["two"]
    bad = cli("plan", workspace.manifests, "--target", "three")
    assert bad.exit_code == 1 and "three" in bad.stderr


def test_a_fresh_list_that_briefly_rejects_subscribes_is_retried(workspace, cli, emulator_server):
    emulator_server.emulator.faults.fresh_list_rejects = 2
    workspace.audience("fresh", {"inline": ["a@example.com", "b@example.com"]})
    result = cli("apply", workspace.manifests, "--yes")
    assert result.exit_code == 0, result.output
    assert sorted(project(emulator_server).members(list_id(emulator_server, "fresh"))) == [
        "a@example.com",
        "b@example.com",
    ]


def test_a_fresh_list_refusal_answered_slowly_does_not_end_the_wait_early(
    workspace, cli, emulator_server, monkeypatch
):
    # Every answer takes 0.5 s (a loaded Iterable, or a loaded CI runner: CI met this), and
    # the new list takes writes 0.8 s after its create. The first subscribe, sent at once,
    # was refused and answered after the 0.3 s wait, so apply gave up on a list that took
    # writes a moment later; a refusal ends the wait only for a request sent after it.
    monkeypatch.setenv("RECONCILER_FRESH_LIST_WAIT", "0.3")
    faults = emulator_server.emulator.faults
    faults.fresh_list_seconds, faults.latency_seconds = 0.8, 0.5
    workspace.audience("fresh", {"inline": ["a@example.com"]})
    result = cli("apply", workspace.manifests, "--yes")
    assert result.exit_code == 0, result.output
    assert project(emulator_server).members(list_id(emulator_server, "fresh")) == ["a@example.com"]


@pytest.mark.parametrize("user_id", ["..", "."])
def test_a_user_id_that_is_a_dot_segment_is_read_as_itself(
    workspace, cli, emulator_server, user_id
):
    # Found by fuzzing: a userId of '..' or '.' went into GET /api/users/byUserId/{userId}
    # as a dot segment, which the HTTP client removes (RFC 3986), so the read of an added
    # member's consent went to /api/users (a 404 page) or to byUserId without a userId,
    # and the whole plan failed, saying to check the baseUrl. Such a userId is read by
    # Iterable's query form (byUserId?userId=), documented for special characters.
    workspace.csv("data/m.csv", "email,userId", ["a@example.com,u-1"])
    workspace.audience("dots", {"csv": "data/m.csv"})
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0
    workspace.csv("data/m.csv", "email,userId", ["a@example.com,u-1", f"b@example.com,{user_id}"])
    emulator_server.emulator.clear_log()

    result = cli("apply", workspace.manifests, "--yes")
    assert result.exit_code == 0, result.output
    assert user_id in project(emulator_server).members(
        list_id(emulator_server, "dots"), prefer_user_id=True
    )
    reads = [r for r in emulator_server.emulator.request_log if r.path == "/api/users/byUserId"]
    assert [r.query for r in reads] == [f"userId={user_id}"]  # one read, of that userId


def test_a_member_known_by_email_whose_profile_gains_a_user_id_stays(
    workspace, cli, emulator_server
):
    # Mixed audience in a hybrid project: read with preferUserId, so Iterable reports a
    # profile by its userId once it has one, even if the source only knows the email.
    workspace.csv("data/mixed.csv", "email,userId", ["a@example.com,u-1", "carol@example.com,"])
    workspace.audience("mixed", {"csv": "data/mixed.csv"})
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0
    proj = project(emulator_server)
    proj.set_user_id(proj.find_user(email="carol@example.com"), "u-carol")
    lid = list_id(emulator_server, "mixed")
    assert "u-carol" in project(emulator_server).members(lid, prefer_user_id=True)

    emulator_server.emulator.clear_log()
    result = cli("plan", workspace.manifests, "--detailed-exitcode")
    assert result.exit_code == 0, result.output  # neither re-added nor removed
    assert len(requests_to(emulator_server, "/api/users/byUserId/u-carol")) == 1

    workspace.csv("data/mixed.csv", "email,userId", ["a@example.com,u-1"])
    workspace.audience("mixed", {"csv": "data/mixed.csv"}, policy={"maxRemovalPercent": 100})
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0
    assert project(emulator_server).members(lid) == ["a@example.com"]


@pytest.mark.parametrize("engine", ["python", "duckdb"])
@pytest.mark.parametrize("reads", ["getUsers", "export"])
def test_a_member_whose_row_is_skipped_is_kept_when_reported_by_its_user_id(
    workspace, cli, emulator_server, monkeypatch, engine, reads
):
    # A hybrid audience read with preferUserId: Iterable reports carol by her userId. Her
    # row still names her by a valid email, beside a userId Iterable would refuse (over
    # 52 characters): skipped, so it is no evidence that she left (issue 19).
    monkeypatch.setenv("RECONCILER_ENGINE", engine)
    monkeypatch.setenv("RECONCILER_MEMBER_READS", reads)
    workspace.csv("data/m.csv", "email,userId", ["a@example.com,u-1", "carol@example.com,u-c"])
    workspace.audience("mixed", {"csv": "data/m.csv"}, policy={"maxRemovalPercent": 100})
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0
    too_long = "c" * 60
    workspace.csv(
        "data/m.csv", "email,userId", ["a@example.com,u-1", f"carol@example.com,{too_long}"]
    )

    result = cli("plan", workspace.manifests, "--format", "json")
    assert result.exit_code == 1, result.output  # the skipped row
    (planned,) = result.json()["destinations"][0]["lists"]
    assert planned["changes"] == [], planned
    assert planned["kept_for_skipped_rows"] == 1
    assert cli("apply", workspace.manifests, "--yes").exit_code == 1
    lid = list_id(emulator_server, "mixed")
    assert sorted(project(emulator_server).members(lid, prefer_user_id=True)) == ["u-1", "u-c"]


def _carol_known_by_email_and_leavers(workspace, cli, emulator_server, leaving: int) -> list[str]:
    """An applied audience where carol, listed by email alone, has since been given a
    userId in Iterable, and `leaving` members no row names are on the list by userId:
    each of those userIds must be looked up. Returns the leavers' userIds."""
    workspace.csv("data/m.csv", "email,userId", ["a@example.com,u-1", "carol@example.com,"])
    workspace.audience("mixed", {"csv": "data/m.csv"}, policy={"maxRemovalPercent": 100})
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0
    proj = project(emulator_server)
    lid = list_id(emulator_server, "mixed")
    proj.set_user_id(proj.find_user(email="carol@example.com"), "u-carol")
    leavers = [f"gone-{i}" for i in range(leaving)]
    for user_id in leavers:
        proj.subscribe_direct(lid, email=f"{user_id}@example.com", user_id=user_id)
    return leavers


@pytest.mark.parametrize("engine", ["python", "duckdb"])
def test_many_user_ids_to_resolve_are_read_with_one_export_not_one_by_one(
    workspace, cli, emulator_server, monkeypatch, engine
):
    # Every userId on the list that no desired member has is looked up (is it an email-only
    # member's profile?). With per-user reads at 1/s, one export is cheaper beyond 15 of
    # them: 40 leavers must not cost 40 reads one after another.
    monkeypatch.setenv("RECONCILER_ENGINE", engine)
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "getUsers")
    monkeypatch.setenv("RECONCILER_USER_READS_PER_SECOND", "1")
    leavers = _carol_known_by_email_and_leavers(workspace, cli, emulator_server, 40)
    emulator_server.emulator.clear_log()

    result = cli("plan", workspace.manifests, "--format", "json", "--show-members")
    assert result.exit_code == 0, result.output
    (planned,) = result.json()["destinations"][0]["lists"]
    (removal,) = [c for c in planned["changes"] if c["type"] == "remove_members"]
    assert removal["count"] == len(leavers)
    assert all(c["type"] == "remove_members" for c in planned["changes"])  # carol stays
    log = emulator_server.emulator.request_log
    assert [r for r in log if r.path.startswith("/api/users/byUserId")] == []
    assert len([r for r in log if r.path == "/api/export/data.json"]) >= 1


@pytest.mark.parametrize("engine", ["python", "duckdb"])
def test_user_ids_on_several_lists_are_resolved_with_one_read(
    workspace, cli, emulator_server, monkeypatch, engine
):
    # Three lists of one hybrid audience's people, read by getUsers: carol (listed by
    # email, with a userId in Iterable since) and 20 leavers on every list, and 20 more
    # leavers on each. Each list looked its userIds up alone: one export each (three
    # exports of the whole project, where Iterable allows four a minute), or the same
    # profiles read once per list. All the lists' userIds are now looked up at once.
    monkeypatch.setenv("RECONCILER_ENGINE", engine)
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "getUsers")
    monkeypatch.setenv("RECONCILER_USER_READS_PER_SECOND", "1")  # one export is cheaper
    names = ("one", "two", "three")
    workspace.csv("data/m.csv", "email,userId", ["a@example.com,u-1", "carol@example.com,"])
    for name in names:
        workspace.audience(name, {"csv": "data/m.csv"}, policy={"maxRemovalPercent": 100})
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0
    proj = project(emulator_server)
    proj.set_user_id(proj.find_user(email="carol@example.com"), "u-carol")
    for name in names:
        lid = list_id(emulator_server, name)
        for user_id in [f"gone-{i}" for i in range(20)] + [f"{name}-{i}" for i in range(20)]:
            proj.subscribe_direct(lid, email=f"{user_id}@example.com", user_id=user_id)
    emulator_server.emulator.clear_log()

    result = cli("plan", workspace.manifests, "--format", "json")
    assert result.exit_code == 0, result.output
    for planned in result.json()["destinations"][0]["lists"]:
        assert [(c["type"], c["count"]) for c in planned["changes"]] == [("remove_members", 40)]
    log = emulator_server.emulator.request_log
    assert [r for r in log if r.path.startswith("/api/users/byUserId")] == []
    (export,) = [r for r in log if r.path == "/api/export/data.json"]
    assert "onlyFields=email" in export.query


def test_user_ids_to_resolve_are_read_one_by_one_when_the_export_fails(
    workspace, cli, emulator_server, monkeypatch
):
    # One export would be cheaper, but Iterable keeps answering it with 500s: per-user
    # reads answer the same question, so the plan is made all the same.
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "getUsers")
    monkeypatch.setenv("RECONCILER_USER_READS_PER_SECOND", "1000")
    monkeypatch.setenv("RECONCILER_EXPORTS_PER_MINUTE", "100000")
    monkeypatch.setenv("RECONCILER_BULK_READ_RETRIES", "1")
    _carol_known_by_email_and_leavers(workspace, cli, emulator_server, 5)
    emulator_server.emulator.faults.update(
        {"fail_every": 1, "fail_status": 500, "paths": ["/api/export/data.json"]}
    )
    emulator_server.emulator.clear_log()

    result = cli("plan", workspace.manifests, "--format", "json")
    assert result.exit_code == 0, result.output
    (planned,) = result.json()["destinations"][0]["lists"]
    assert [(c["type"], c["count"]) for c in planned["changes"]] == [("remove_members", 5)]
    log = emulator_server.emulator.request_log
    assert any(r.path == "/api/export/data.json" and r.status == 500 for r in log)
    assert len([r for r in log if r.path.startswith("/api/users/byUserId")]) == 6


def test_a_column_named_in_the_manifest_must_be_in_the_header(workspace, cli, emulator_server):
    workspace.csv("data/m.csv", "email,user_id", ["a@example.com,u-1"])
    workspace.audience("typo", {"csv": "data/m.csv", "email": "e_mail", "userId": "user_id"})
    for command in ("validate", "plan"):
        result = cli(command, workspace.manifests)
        assert result.exit_code == 1, result.output
        assert "column 'e_mail' is not in the header of" in result.stderr
        assert "m.csv (did you mean 'email'?); columns are: email, user_id" in result.stderr
        assert "aud-typo.yaml:" in result.stderr
    assert emulator_server.emulator.request_log == [] or all(
        r.method == "GET" for r in emulator_server.emulator.request_log
    )


def test_a_saved_plan_applies_from_any_directory(workspace, cli, emulator_server, monkeypatch):
    workspace.audience("vip", {"inline": ["a@example.com"]})
    planfile = workspace.root / "p.plan"
    assert cli("plan", "manifests", "--out", planfile).exit_code == 0  # relative path
    elsewhere = workspace.root / "somewhere" / "else"
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(elsewhere)
    result = cli("apply", "--plan", planfile, "--yes")
    assert result.exit_code == 0, result.output


def test_status_warns_and_exits_1_when_members_are_invalid(workspace, cli):
    workspace.audience("vip", {"inline": ["a@example.com", "foo@bar..com"]})
    result = cli("status", workspace.manifests, "--format", "json")
    assert result.exit_code == 1
    assert "1 member could not be used" in result.stderr


DUPLICATES = [
    "a@example.com,u-1,gold",
    "b@example.com,u-1,gold",  # row 3: same userId, another email
    "c@example.com,u-2,x",
    "c@example.com,u-2,x",  # row 5: the same row again: counted, no warning
    "d@example.com,u-3,x",
    "d@example.com,u-3,y",  # row 7: another value
]


@pytest.mark.parametrize("threshold", ["100000", "1"], ids=["python", "duckdb"])
def test_duplicate_rows_are_counted_and_disagreeing_ones_named(
    workspace, cli, emulator_server, monkeypatch, threshold
):
    monkeypatch.setenv("RECONCILER_ENGINE_THRESHOLD", threshold)
    workspace.csv("data/m.csv", "email,userId,plan", DUPLICATES)
    workspace.write(
        "traits.yaml",
        "apiVersion: reconciler/v1\nkind: TraitMapping\nmetadata: {name: crm}\n"
        "spec: {fields: {planTier: plan}}\n",
    )
    workspace.audience("dup", {"csv": "data/m.csv"}, traits="crm")
    validated = cli("validate", workspace.manifests)
    assert validated.exit_code == 0, validated.output
    assert "3 members (3 duplicate rows collapsed)" in validated.stdout
    assert "m.csv:3: same userId as " in validated.stderr
    assert "m.csv:2 (used) but a different email: this row is ignored" in validated.stderr
    assert "m.csv:7: same userId as " in validated.stderr
    assert "(used) but different values in plan" in validated.stderr
    assert "m.csv:5" not in validated.stderr

    plan = cli("plan", workspace.manifests, "--format", "json")
    assert plan.exit_code == 0, plan.output
    (dest,) = plan.json()["destinations"]
    assert dest["duplicate_rows"] == 3
    assert [c["where"].rsplit(":", 1)[1] for c in dest["duplicate_conflicts"]] == ["3", "7"]
    text = cli("plan", workspace.manifests)
    assert "3 duplicate rows collapsed" in text.stdout
    assert "2 of them with other values (the first row is used)" in text.stdout


@pytest.mark.parametrize("threshold", ["100000", "1"], ids=["python", "duckdb"])
def test_duplicates_differing_in_a_column_nothing_reads_are_no_conflict(
    workspace, cli, emulator_server, monkeypatch, threshold, tmp_path
):
    # Without a trait mapping nothing reads a source's other columns: the DuckDB engine
    # does not keep them, while the Python engine kept them, warned that two rows differed
    # in one (so an audience growing past the engine threshold stopped warning), and wrote
    # every added member's columns into a saved plan.
    monkeypatch.setenv("RECONCILER_ENGINE_THRESHOLD", threshold)
    workspace.csv("data/m.csv", "email,userId,plan", DUPLICATES)
    workspace.audience("dup", {"csv": "data/m.csv"})
    validated = cli("validate", workspace.manifests)
    assert validated.exit_code == 0, validated.output
    assert "3 members (3 duplicate rows collapsed)" in validated.stdout
    assert "m.csv:3: same userId as " in validated.stderr
    assert "m.csv:7" not in validated.stderr
    saved = tmp_path / "dup.plan"
    plan = cli("plan", workspace.manifests, "--format", "json", "--out", saved)
    assert plan.exit_code == 0, plan.output
    (dest,) = plan.json()["destinations"]
    assert dest["duplicate_rows"] == 3
    assert [c["where"].rsplit(":", 1)[1] for c in dest["duplicate_conflicts"]] == ["3"]
    assert b"gold" not in gzip.decompress(saved.read_bytes())  # a saved plan is gzipped


@pytest.mark.parametrize("engine", ["python", "duckdb"])
def test_disagreeing_duplicates_beyond_those_listed_are_counted_in_both_engines(
    workspace, cli, monkeypatch, engine
):
    # DuckDB lists the first MAX_ISSUES disagreeing rows (here 4 of 12): the count said
    # "4 of them" and "... and 0 more" where the Python engine said 12.
    monkeypatch.setattr("reconciler.members.engine.desired_table.MAX_ISSUES", 4)
    monkeypatch.setenv("RECONCILER_ENGINE", engine)
    firsts = [f"a{i}@example.com,u-{i}" for i in range(12)]
    others = [f"b{i}@example.com,u-{i}" for i in range(12)]  # same userId, another email
    workspace.csv("data/m.csv", "email,userId", [*firsts, *others, firsts[0]])
    workspace.audience("dup", {"csv": "data/m.csv"})

    plan = cli("plan", workspace.manifests, "--format", "json")
    assert plan.exit_code == 0, plan.output
    (dest,) = plan.json()["destinations"]
    assert dest["duplicate_rows"] == 13
    listed = len(dest["duplicate_conflicts"])
    assert listed + dest["duplicate_conflicts_unlisted"] == 12
    text = cli("plan", workspace.manifests)
    assert "13 duplicate rows collapsed into an earlier row with the same identity key, 12 of " in (
        text.stdout
    )
    assert "... and 2 more" in text.stdout  # 10 named of 12
    markdown = cli("plan", workspace.manifests, "--format", "markdown")
    assert "13 duplicate rows collapsed, 12 with other values" in markdown.stdout
    named = markdown.stdout.count("(used) but a different email")
    more = re.search(r"- \.\.\. and (\d+) more", markdown.stdout)
    assert named + (int(more.group(1)) if more else 0) == 12
    validated = cli("validate", workspace.manifests)
    warned = validated.stderr.count("(used) but a different email")
    assert warned == listed
    if engine == "duckdb":
        assert f"... and {12 - listed} more duplicate rows with other values" in validated.stderr


# A query's rows: u-1 twice with other values (a plan tier), u-2 twice alike.
QUERY_DUPLICATES = (
    "SELECT * FROM (VALUES ('a@example.com', 'u-1', 'gold'), ('a@example.com', 'u-1', 'free'), "
    "('b@example.com', 'u-2', 'x'), ('b@example.com', 'u-2', 'x')) t(email, userId, plan)"
)


@pytest.mark.parametrize("engine", ["python", "duckdb"])
def test_a_query_without_order_by_whose_duplicates_disagree_is_refused(
    workspace, cli, monkeypatch, engine
):
    # A query's first row is whichever the database returns first: without ORDER BY that
    # may change from run to run (DuckDB's parallel GROUP BY or join does), so which tier
    # was sent flipped between two plans of the same data, a warning each time.
    monkeypatch.setenv("RECONCILER_ENGINE", engine)
    workspace.write(
        "traits.yaml",
        "apiVersion: reconciler/v1\nkind: TraitMapping\nmetadata: {name: crm}\n"
        "spec: {fields: {planTier: plan}}\n",
    )
    workspace.audience("dup", {"sql": QUERY_DUPLICATES, "database": ":memory:"}, traits="crm")
    line = next(
        n
        for n, text in enumerate((workspace.manifests / "aud-dup.yaml").read_text().splitlines(), 1)
        if '"sql"' in text
    )
    said = (
        f"aud-dup.yaml:{line}:14: audience 'dup': the query returns 1 identifier on rows "
        "with different values and has no ORDER BY"
    )
    for command in ("validate", "plan"):
        result = cli(command, workspace.manifests)
        assert result.exit_code == 1, result.output
        assert said in result.stderr, result.stderr
        assert "u-1" not in result.output and "a@example.com" not in result.output

    # Ordered, the first row is the query's to choose: used, and the others named.
    workspace.audience(
        "dup",
        {"sql": QUERY_DUPLICATES + " ORDER BY plan DESC", "database": ":memory:"},
        traits="crm",
    )
    plan = cli("plan", workspace.manifests, "--format", "json")
    assert plan.exit_code == 0, plan.output
    (dest,) = plan.json()["destinations"]
    assert dest["duplicate_rows"] == 2
    assert len(dest["duplicate_conflicts"]) == 1
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0


def test_duplicates_that_agree_need_no_unfolding_in_markdown(workspace, cli):
    workspace.csv("data/m.csv", "email", ["a@example.com", "a@example.com"])
    workspace.audience("dup", {"csv": "data/m.csv"})
    markdown = cli("plan", workspace.manifests, "--format", "markdown")
    assert "_1 duplicate row collapsed into an earlier row with the same identity key_" in (
        markdown.stdout
    )
    assert "duplicate row collapsed</summary>" not in markdown.stdout


def test_a_list_of_one_member_without_changes_says_one_member(workspace, cli, emulator_server):
    vip = project(emulator_server).add_list("vip")
    project(emulator_server).subscribe_direct(vip, email="a@example.com")
    workspace.audience("vip", {"inline": ["a@example.com"]})
    text = cli("plan", workspace.manifests)
    assert text.exit_code == 0, text.output
    assert f"= vip (list {vip}): no changes (1 member)\n" in text.stdout


def test_paths_in_messages_are_relative_to_the_working_directory(workspace, cli):
    workspace.csv("data/m.csv", "email", ["not-an-email"])
    workspace.audience("rows", {"csv": "data/m.csv"})
    workspace.audience("gone", {"csv": "data/missing.csv"})
    # The manifest path is given absolute, as CI runners often do.
    for command in ("validate", "plan"):
        result = cli(command, workspace.manifests.absolute())
        assert result.exit_code == 1, result.output
        assert str(workspace.root) not in result.output
        assert "manifests/data/missing.csv" in result.output
    workspace.audience("gone", {"csv": "data/m.csv"})
    result = cli("plan", workspace.manifests.absolute())
    assert "manifests/data/m.csv:2: invalid email" in result.stdout
    assert str(workspace.root) not in result.output


def test_paths_in_messages_are_normalised(workspace, cli):
    """`csv: ../manifests/data/m.csv` was shown as `manifests/../manifests/data/m.csv`."""
    workspace.csv("data/m.csv", "email", ["not-an-email"])
    workspace.audience("rows", {"csv": "./../manifests/data/m.csv"})
    workspace.audience("gone", {"csv": "data/../data/missing.csv"})
    result = cli("validate", workspace.manifests)
    assert result.exit_code == 1, result.output
    assert "CSV file not found: manifests/data/missing.csv\n" in result.stderr
    assert "manifests/data/m.csv:2: invalid email" in result.stderr
    assert ".." not in result.stderr
    # Through a symbolic link `..` is the parent of the link's target, not of the link:
    # such a path is shown as written, and reads the file the system finds.
    (workspace.manifests / "deep" / "inner").mkdir(parents=True)
    (workspace.manifests / "alias").symlink_to("deep/inner")
    (workspace.manifests / "deep" / "m.csv").write_text("email\nstill-not-an-email\n")
    workspace.audience("rows", {"csv": "alias/../m.csv"})
    (workspace.manifests / "aud-gone.yaml").unlink()
    result = cli("validate", workspace.manifests)
    assert "manifests/alias/../m.csv:2: invalid email" in result.stderr, result.output


def test_status_markdown_is_a_markdown_table_and_counts_have_separators(workspace, cli):
    workspace.csv("data/m.csv", "email", [f"u{i}@example.com" for i in range(1200)])
    workspace.audience("big", {"csv": "data/m.csv"})
    status = cli("status", workspace.manifests, "--format", "markdown")
    assert status.exit_code == 0, status.output
    lines = status.stdout.splitlines()
    assert lines[0] == "### reconciler status"
    assert lines[2].startswith("| destination | audience | list id |")
    assert lines[4] == "| prod | big | (not created) | - | 1,200 | 1,200 | 0 | 0 | 0 |  |"
    plan = cli("plan", workspace.manifests)
    assert "1,200 members to add" in plan.stdout
    assert "+1,200 / -0" in plan.stdout
    markdown = cli("plan", workspace.manifests, "--format", "markdown")
    assert "**+1,200** members to add" in markdown.stdout
    applied = cli("apply", workspace.manifests, "--yes")
    assert "1,200 members added" in applied.stdout


@pytest.mark.parametrize("engine", ["python", "duckdb"])
@pytest.mark.parametrize(
    "source, live",
    [
        ("anna@bücher.de", "anna@xn--bcher-kva.de"),  # the domain in Unicode, live punycode
        ("anna@xn--bcher-kva.de", "anna@bücher.de"),  # and the reverse
        ("ren\u0065\u0301e@example.com", "ren\u00e9e@example.com"),  # NFD source, NFC live
    ],
    ids=["unicode-domain", "punycode-domain", "nfd"],
)
def test_a_member_iterable_has_in_another_spelling_stays_on_the_list(
    workspace, cli, emulator_server, monkeypatch, engine, source, live
):
    # Anna's address is on the list in one spelling and in the source in another. Before,
    # every plan removed her and added the other spelling; the emulator refuses a
    # non-ASCII address as Iterable may, so the add failed and she left the list each run.
    monkeypatch.setenv("RECONCILER_ENGINE", engine)
    workspace.csv("data/m.csv", "email", ["b@example.com"])
    workspace.audience("news", {"csv": "data/m.csv"}, policy={"maxRemovalPercent": 100})
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0
    proj = project(emulator_server)
    lid = list_id(emulator_server, "news")
    # Seeded as Iterable would hold it, even a spelling the emulator's API refuses.
    proj.subscribe(proj.create_user(live, None), lid)
    workspace.csv("data/m.csv", "email", ["b@example.com", source])

    result = cli("plan", workspace.manifests, "--format", "json", "--detailed-exitcode")
    assert result.exit_code == 0, result.output  # no changes
    (planned,) = result.json()["destinations"][0]["lists"]
    assert planned["changes"] == [], planned
    assert planned["kept_for_other_spelling"] == 1
    text = cli("plan", workspace.manifests)
    assert "kept 1 member whose address Iterable has in another spelling" in text.stdout

    applied = cli("apply", workspace.manifests, "--yes")
    assert applied.exit_code == 0, applied.output
    assert sorted(proj.members(lid)) == sorted(["b@example.com", live])
    again = cli("plan", workspace.manifests, "--detailed-exitcode")
    assert again.exit_code == 0, again.output


@pytest.mark.parametrize("engine", ["python", "duckdb"])
@pytest.mark.parametrize("reads", ["getUsers", "export"])
def test_a_member_reported_by_user_id_and_spelled_otherwise_stays(
    workspace, cli, emulator_server, monkeypatch, engine, reads
):
    # A hybrid audience read with preferUserId: Iterable reports Anna by the userId her
    # profile gained, whose email is the punycode spelling of the source's one.
    monkeypatch.setenv("RECONCILER_ENGINE", engine)
    monkeypatch.setenv("RECONCILER_MEMBER_READS", reads)
    workspace.csv("data/m.csv", "email,userId", ["a@example.com,u-1", "anna@xn--bcher-kva.de,"])
    workspace.audience("mixed", {"csv": "data/m.csv"}, policy={"maxRemovalPercent": 100})
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0
    proj = project(emulator_server)
    proj.set_user_id(proj.find_user(email="anna@xn--bcher-kva.de"), "u-anna")
    workspace.csv("data/m.csv", "email,userId", ["a@example.com,u-1", "anna@bücher.de,"])

    result = cli("plan", workspace.manifests, "--format", "json", "--detailed-exitcode")
    assert result.exit_code == 0, result.output
    (planned,) = result.json()["destinations"][0]["lists"]
    assert (planned["changes"], planned["kept_for_other_spelling"]) == ([], 1)
    assert cli("apply", workspace.manifests, "--yes").exit_code == 0
    lid = list_id(emulator_server, "mixed")
    assert sorted(proj.members(lid, prefer_user_id=True)) == ["u-1", "u-anna"]
