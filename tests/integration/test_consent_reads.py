"""How the consent guard reads the profiles' channel unsubscribes (issues 17/18), through
the CLI against the emulator over HTTP:

- the profiles are read once the adds are known, never on speculation: few adds one by one
  (GET /api/users/...), many by one export of every profile; a plan that adds nobody reads
  no consent at all;
- the plan says which way consent was read, and holds back the same people either way.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

import httpx
import pytest

from reconciler.emulator import Faults
from reconciler.plan.ownership import mark
from tests.integration.conftest import profile_faults
from tests.integration.test_iterable_answers import csv_audience, field_workspace  # noqa: F401

EXPORT = "/api/export/data.json"
GET_USERS = "/api/lists/getUsers"


def _slow_reads(monkeypatch) -> None:
    """Iterable's speeds scaled down to a list of 400: an export of 10 rows a second
    (42 s for the list: more than a slot of the export budget) and 5 per-user reads a
    second (80 s for 400 adds, 0.6 s for 3): the adds could be too many to read one by
    one (which made the plan start the export on speculation before issue 17's fix), and
    three are still read one by one."""
    monkeypatch.setenv("RECONCILER_EXPORT_RATE", "10")
    monkeypatch.setenv("RECONCILER_USER_READS_PER_SECOND", "5")


def _seed(ws, server, proj, size: int):
    """A list of `size` members; then a (new), b (who left the list by a link) and d (who
    unsubscribed from the email channel) are added to its audience."""
    people = [f"m{i}@example.com" for i in range(size)]
    list_id = proj.add_list("vip", mark(None))  # as if reconciler had made it
    for email in people:
        proj.subscribe_direct(list_id, email=email)
    control = f"{server.base_url}/_emulator/self-unsubscribe"
    proj.subscribe_direct(list_id, email="b@example.com")
    httpx.post(control, json={"email": "b@example.com", "listId": list_id}).raise_for_status()
    proj.add_user(email="d@example.com")
    httpx.post(control, json={"email": "d@example.com", "channel": True}).raise_for_status()
    csv_audience(ws, "vip", "email", [*people, "a@example.com", "b@example.com", "d@example.com"])
    return list_id


def _held(body: dict) -> tuple[int, int, int]:
    summary = body["summary"]
    return (
        summary["members_to_add"],
        summary["members_left_themselves"],
        summary["members_channel_unsubscribed"],
    )


def _profiles_exports(server) -> list[int]:
    """Where in the request log the profiles' export was asked for (not a members' one)."""
    return [
        i
        for i, r in enumerate(server.emulator.request_log)
        if r.path == EXPORT and "unsubscribedChannelIds" in r.query and "ListIds" not in r.query
    ]


def _per_user_read(path: str) -> bool:
    return path.startswith("/api/users/") and ("%40" in path or "/byUserId/" in path)


def _planned(cli, ws) -> tuple[dict, str]:
    """`plan --format json`, which must succeed: its body, and its destination's reads."""
    plan = cli("plan", ws.manifests, "--format", "json")
    assert plan.exit_code == 0, plan.output
    body = plan.json()
    return body, " ".join(body["destinations"][0]["other_reads"])


def test_few_adds_are_read_one_by_one_and_no_export_is_started(
    field_workspace,  # noqa: F811
    cli,
    monkeypatch,
):
    """A list whose adds could have been too many to read one by one (400 members: 80 s of
    per-user reads against 42 s of export at these speeds) but are three: three per-user
    reads, and no export of every profile started on speculation beside the member reads
    (issue 17: it cost a whole-project export for nothing)."""
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "getUsers")
    _slow_reads(monkeypatch)
    ws, server, proj = field_workspace("hybrid", "python")
    _seed(ws, server, proj, 400)
    server.emulator.clear_log()
    body, reads = _planned(cli, ws)
    assert _held(body) == (1, 1, 1)
    assert "3 per-user reads of profiles' unsubscribedChannelIds" in reads, reads
    users = [r for r in server.emulator.request_log if r.path.startswith("/api/users/")]
    assert len([r for r in users if r.path.endswith("%40example.com")]) == 3
    assert _profiles_exports(server) == []


def test_a_plan_that_adds_nobody_reads_no_consent(
    field_workspace,  # noqa: F811
    cli,
    monkeypatch,
):
    """Members only leave: no export of the profiles, no per-user read, no events export,
    however large the list (the speculative export made every such plan read the project)."""
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "getUsers")
    _slow_reads(monkeypatch)
    ws, server, proj = field_workspace("hybrid", "python")
    _seed(ws, server, proj, 400)
    csv_audience(ws, "vip", "email", [f"m{i}@example.com" for i in range(390)])
    server.emulator.clear_log()
    summary = _planned(cli, ws)[0]["summary"]
    assert (summary["members_to_add"], summary["members_to_remove"]) == (0, 10)
    log = server.emulator.request_log
    assert [r.path for r in log if r.path == GET_USERS] == [GET_USERS]
    assert not [r for r in log if r.path == EXPORT or _per_user_read(r.path)]


@pytest.mark.parametrize("engine", ["python", "duckdb"])
def test_adds_left_out_as_unknown_or_forgotten_read_no_consent(
    field_workspace,  # noqa: F811
    cli,
    monkeypatch,
    engine,
):
    """An updateExistingUsersOnly audience whose adds Iterable does not know (or has
    forgotten) adds nobody: its plan reads no consent either (events export, profiles'
    export or per-user reads) for people it will not send. In a userID-based project
    whose sources carry emails the profiles' read is an export of every profile: on every
    scheduled run of such an audience, for nothing."""
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "getUsers")
    ws, server, proj = field_workspace("userId", engine)
    list_id = proj.add_list("vip", mark(None))
    proj.subscribe_direct(list_id, user_id="U-1", email="u1@example.com")
    proj.add_user(user_id="U-9", email="u9@example.com")
    proj.forget(user_id="U-9")
    ws.csv("data/vip.csv", "userId,email", ["U-1,u1@example.com", "U-2,u2@example.com", "U-9,"])
    ws.audience("vip", {"csv": "data/vip.csv"}, updateExistingUsersOnly=True)
    server.emulator.clear_log()
    body, reads = _planned(cli, ws)
    summary = body["summary"]
    assert (summary["members_to_add"], summary["members_not_created"]) == (0, 1)
    assert summary["members_forgotten"] == 1
    assert "consent" not in reads, reads
    assert not [r for r in server.emulator.request_log if r.path == EXPORT]


@pytest.mark.parametrize("engine", ["python", "duckdb"])
def test_an_unknown_add_whose_creating_list_holds_it_back_is_not_created(
    field_workspace,  # noqa: F811
    cli,
    monkeypatch,
    engine,
):
    """An updateExistingUsersOnly audience keeps an unknown user in its adds when another
    audience's subscribe creates them in the same apply; when consent holds them back from
    that other list, nothing creates them, and they are left out as not created (else the
    plan shows an add that apply reports not created, on every run)."""
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "getUsers")
    ws, _server, proj = field_workspace("userId", engine)
    open_list = proj.add_list("open", mark(None))
    proj.add_list("known", mark(None))
    proj.subscribe_direct(open_list, user_id="U-1")
    proj.subscribe_direct(open_list, user_id="U-9")
    proj.self_unsubscribe(proj.find_user(user_id="U-9"), list_id=open_list)
    proj.delete_user(proj.find_user(user_id="U-9"))  # gone since; the departure is kept
    ws.csv("data/open.csv", "userId", ["U-1", "U-9"])
    ws.audience("open", {"csv": "data/open.csv"})
    ws.csv("data/known.csv", "userId", ["U-1", "U-9"])
    ws.audience("known", {"csv": "data/known.csv"}, updateExistingUsersOnly=True)
    body, _reads = _planned(cli, ws)
    lists = {lp["list_name"]: lp for lp in body["destinations"][0]["lists"]}
    assert lists["open"]["not_sent"]["left_themselves"]["count"] == 1
    assert lists["known"]["not_sent"]["not_created"]["count"] == 1
    assert body["summary"]["members_to_add"] == 1  # U-1 to known


def test_many_adds_are_read_by_one_export_after_the_diff(
    field_workspace,  # noqa: F811
    cli,
    monkeypatch,
):
    """Per-user reads modelled slower than the export (3 reads at one a minute): the
    profiles are read by one export, asked for once the members are read and the adds
    known, and the same people are held back."""
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "getUsers")
    monkeypatch.setenv("RECONCILER_USER_READS_PER_SECOND", "0.0167")
    ws, server, proj = field_workspace("hybrid", "python")
    _seed(ws, server, proj, 20)
    server.emulator.clear_log()
    body, reads = _planned(cli, ws)
    assert _held(body) == (1, 1, 1)
    assert "2 exports (emailUnSubscribe events, profiles' unsubscribedChannelIds)" in reads, reads
    log = server.emulator.request_log
    members_read = max(i for i, r in enumerate(log) if r.path == GET_USERS)
    assert [i > members_read for i in _profiles_exports(server)] == [True]
    assert not [r for r in log if _per_user_read(r.path)]


def test_a_small_list_reads_no_export_of_the_profiles(
    field_workspace,  # noqa: F811
    cli,
    monkeypatch,
):
    """Where every add could be read one by one faster than one export, none is made."""
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "getUsers")
    ws, server, proj = field_workspace("hybrid", "python")
    _seed(ws, server, proj, 20)
    server.emulator.clear_log()
    plan = cli("plan", ws.manifests, "--format", "json")
    assert plan.exit_code == 0, plan.output
    assert _held(plan.json()) == (1, 1, 1)
    assert not any(
        r.path == EXPORT and "unsubscribedChannelIds" in r.query and "ListIds" not in r.query
        for r in server.emulator.request_log
    )


@pytest.mark.parametrize("failing", [503, 401])
def test_a_per_user_read_that_fails_fails_the_plan(
    field_workspace,  # noqa: F811
    cli,
    monkeypatch,
    failing,
):
    """No guessing: a profile that cannot be read fails the plan (the side that keeps
    consent), and names no member."""
    ws, server, proj = field_workspace("hybrid", "python")
    _seed(ws, server, proj, 20)
    monkeypatch.setenv("RECONCILER_MAX_RETRIES", "1")
    server.emulator.faults.paths = ["/api/users/b%40example.com", "/api/users/d%40example.com"]
    server.emulator.faults.fail_every = 1
    server.emulator.faults.fail_status = failing
    plan = cli("plan", ws.manifests, "--format", "json")
    assert plan.exit_code not in (0, 2), plan.output
    assert "/api/users/{email}" in plan.output
    for who in ("b@example.com", "d@example.com"):
        assert who not in plan.output


@pytest.mark.parametrize("iterable_behind", [0, 3600, -2 * 86_400])
def test_unsubscribe_events_too_many_for_one_export_are_read_in_date_windows(
    field_workspace,  # noqa: F811
    cli,
    monkeypatch,
    emulator_profile,
    iterable_behind,
):
    """A project with very many unsubscribes: Iterable cuts the events' one export off
    every time (the emulator's events_stream_lines). The events are read in date windows
    over createdAt instead, and who left the list themselves is exactly what one export
    would have said: each person's latest unsubscribe, across windows. With Iterable's
    clock an hour behind the machine's, the open window still starts 10 minutes before
    Iterable's now (its Date header says where that is), so an unsubscribe Iterable shows
    late (its read lag) is still in the window read last, not in one read before it. With
    Iterable's clock two days ahead, the open window reaches past Iterable's now, so p3's
    unsubscribe of a minute ago is read, not left after the window's end."""
    monkeypatch.setenv("RECONCILER_EXPORTS_PER_MINUTE", "100000")  # the emulator has none
    monkeypatch.setenv("RECONCILER_MAX_RETRIES", "1")
    faults = profile_faults(emulator_profile) or Faults()
    faults.events_stream_lines = 8
    faults.clock_offset_seconds = -iterable_behind
    ws, server, proj = field_workspace("hybrid", "python", faults)
    list_id = proj.add_list("vip", mark(None))
    people = [f"p{i}@example.com" for i in range(40)]
    for email in people:
        proj.add_user(email=email)
    day = 86_400_000
    now = int(time.time() * 1000)
    # Oldest first, a week apart: the even ones left by a link, the odd ones were removed
    # by an API call; then p0 was removed by an API call after its link (it may be re-added)
    # and p1 left by a link after its API removal (it may not), as p3 did a minute ago.
    now -= iterable_behind * 1000  # Iterable's clock
    events = [
        (now - (300 - 7 * i) * day, email, "EmailLink" if i % 2 == 0 else "ListAPI")
        for i, email in enumerate(people)
    ]
    events += [(now - 2 * day, "p0@example.com", "ListAPI")]
    events += [(now - 1 * day, "p1@example.com", "EmailLink")]
    events += [(now - 60_000, "p3@example.com", "EmailLink")]
    for at, email, source in events:
        proj.unsubscribe_events.append(
            {
                "createdAt": at,
                "email": email,
                "unsubSource": source,
                "emailListIds": [list_id],
                "channelIds": [],
            }
        )
    csv_audience(ws, "vip", "email", people)
    server.emulator.clear_log()

    plan = cli("plan", ws.manifests, "--format", "json")

    assert plan.exit_code == 0, plan.output
    body = plan.json()
    held = {f"p{i}@example.com" for i in range(2, 40, 2)} | {"p1@example.com", "p3@example.com"}
    assert body["summary"]["members_left_themselves"] == len(held) == 21
    assert body["summary"]["members_to_add"] == 40 - 21
    exports = [r for r in server.emulator.request_log if r.path == EXPORT]
    events_reads = [r for r in exports if "dataTypeName=emailUnSubscribe" in r.query]
    whole = [r for r in events_reads if "range=All" in r.query]
    assert whole and all(r.fault == "stream_cut" for r in whole)
    windows = [r for r in events_reads if "startDateTime" in r.query]
    assert len(windows) > 5  # the four planned, the open one, and halves of the full ones
    reads = " ".join(body["destinations"][0]["other_reads"])
    assert f"the emailUnSubscribe events in {len(windows)} date windows" in reads, reads
    open_start = datetime.strptime(
        parse_qs(windows[-1].query)["startDateTime"][0], "%Y-%m-%d %H:%M:%S"
    ).replace(tzinfo=UTC)
    assert open_start <= datetime.now(UTC) - timedelta(seconds=iterable_behind + 600)
    assert ("planned by Iterable's clock, which its answers' Date header" in reads) == (
        iterable_behind > 0
    )
    applied = cli("apply", ws.manifests, "--yes")
    assert applied.exit_code == 0, applied.output
    assert set(proj.members(list_id)) == set(people) - held


def test_an_identifier_iterable_refuses_is_no_profile(
    field_workspace,  # noqa: F811
    cli,
):
    """An add whose email Iterable does not take (it answers the per-user read 400
    InvalidEmailAddressError) can have no profile and no unsubscribe, as no export row
    would: the plan goes on, holding back only who opted out."""
    ws, server, proj = field_workspace("hybrid", "python")
    _seed(ws, server, proj, 5)
    people = [f"m{i}@example.com" for i in range(5)]
    odd = "two.dots@ex_ample.com"  # reconciler's light check lets it through
    csv_audience(ws, "vip", "email", [*people, "a@example.com", "b@example.com", odd])
    server.emulator.clear_log()
    plan = cli("plan", ws.manifests, "--format", "json")
    assert plan.exit_code == 0, plan.output
    body = plan.json()
    assert body["summary"]["members_left_themselves"] == 1  # b
    assert body["summary"]["members_to_add"] == 2  # a, and the odd one (Iterable decides)
    refused = [r for r in server.emulator.request_log if r.path.startswith("/api/users/two")]
    assert [r.status for r in refused] == [400]
    assert odd not in plan.output


@pytest.mark.parametrize("answer", ["empty", "blank", "error"])
def test_a_user_id_iterable_does_not_know_is_no_profile_however_it_answers(
    field_workspace,  # noqa: F811
    cli,
    monkeypatch,
    answer,
):
    """Iterable answers GET users/byUserId of a userId nobody has with 200 {}, with a user
    of empty identifiers, or with 500 error.users.noUserWithIdExists (block/iterable-go
    takes both for "not found"): each is no profile, not a failed read, and the plan holds
    back the same person it holds back by email."""
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "getUsers")
    ws, server, proj = field_workspace("hybrid", "python", Faults(unknown_user_id_answer=answer))
    list_id = proj.add_list("vip", mark(None))
    people = [f"m{i}" for i in range(5)]
    for person in people:
        proj.subscribe_direct(list_id, email=f"{person}@example.com", user_id=person)
    proj.add_user(email="d@example.com")  # known by email alone, and opted out
    control = f"{server.base_url}/_emulator/self-unsubscribe"
    httpx.post(control, json={"email": "d@example.com", "channel": True}).raise_for_status()
    rows = [f"{p}@example.com,{p}" for p in people] + ["a@example.com,a", "d@example.com,d"]
    ws.csv("data/vip.csv", "email,userId", rows)
    ws.audience("vip", {"csv": "data/vip.csv"})
    server.emulator.clear_log()
    body, reads = _planned(cli, ws)
    assert "per-user reads" in reads, reads
    summary = body["summary"]
    assert (summary["members_to_add"], summary["members_channel_unsubscribed"]) == (1, 1)
    by_user_id = [r for r in server.emulator.request_log if "/byUserId/" in r.path]
    assert len(by_user_id) == 2  # a and d, once each: "not found" is not retried


def test_the_consent_line_counts_the_per_user_reads_it_made_and_might_have(
    field_workspace,  # noqa: F811
    cli,
):
    """A hybrid add named by email and userId may take two reads (one per identifier), but
    the email's profile carrying the userId answers for both: one is made. The line said
    "1 per-user read of profiles' unsubscribedChannelIds; about 0.0 s by 2 per-user reads",
    two numbers for one thing; the modelled figure is now said as the most it could be."""
    ws, server, proj = field_workspace("hybrid", "python")
    list_id = proj.add_list("vip", mark(None))
    proj.subscribe_direct(list_id, email="m0@example.com", user_id="U0")
    proj.add_user(email="a@example.com", user_id="UA")
    members = [
        {"email": "m0@example.com", "userId": "U0"},
        {"email": "a@example.com", "userId": "UA"},
    ]
    ws.audience("vip", {"inline": members})
    server.emulator.clear_log()

    _body, reads = _planned(cli, ws)

    assert sum(_per_user_read(r.path) for r in server.emulator.request_log) == 1
    assert "and 1 per-user read of profiles' unsubscribedChannelIds; about" in reads, reads
    assert "by at most 2 per-user reads against" in reads, reads
    # One GET /api/channels, said as one read, not "1 channels read".
    assert "and 1 read of the channels (1 email channel)" in reads, reads


def test_few_adds_to_a_small_list_of_a_project_of_unknown_size_are_read_one_by_one(
    field_workspace,  # noqa: F811
    cli,
    monkeypatch,
):
    """3 adds to a list of 20 read by getUsers, in a project of 2,000 more profiles on no
    list: 1 s of per-user reads at these speeds against an export modelled at 0.5 s from
    the list alone, which streams every profile of the project (50 s). The plan exported
    them all, where the apply's reads of removals, priced by the same model, would not:
    the project's size unknown to this run, the export must win by five times."""
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "getUsers")
    monkeypatch.setenv("RECONCILER_EXPORT_RATE", "40")
    monkeypatch.setenv("RECONCILER_BULK_READ_FIRST_BYTE", "0")
    monkeypatch.setenv("RECONCILER_USER_READS_PER_SECOND", "3")
    ws, server, proj = field_workspace("hybrid", "python")
    _seed(ws, server, proj, 20)
    for i in range(2000):
        proj.add_user(email=f"other{i}@example.com")
    server.emulator.clear_log()
    body, reads = _planned(cli, ws)
    assert _held(body) == (1, 1, 1)
    assert "3 per-user reads of profiles' unsubscribedChannelIds" in reads, reads
    assert "one export of every profile (at least 20)" in reads, reads
    assert _profiles_exports(server) == []
