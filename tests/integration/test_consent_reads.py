"""How the consent guard reads the profiles' channel unsubscribes (issues 17/18), through
the CLI against the emulator over HTTP:

- with the members read by getUsers and a list large enough that its adds could be too
  many to read one by one, the profiles' export starts before the sources are read,
  beside the member reads, instead of after the diff;
- when the adds turn out few, they are read one by one (GET /api/users/...), racing that
  export: whichever ends first answers, and the other is stopped; nothing is left running;
- the plan says which way consent was read, and holds back the same people either way.
"""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from reconciler.emulator import Faults
from reconciler.plan.ownership import mark
from tests.integration.conftest import profile_faults
from tests.integration.test_iterable_answers import csv_audience, field_workspace  # noqa: F401

EXPORT = "/api/export/data.json"
GET_USERS = "/api/lists/getUsers"
THREAD = "reconciler-consent-export"
BOUND_SECONDS = 30.0


def _channel_export_index(server) -> int:
    log = server.emulator.request_log
    return next(
        i
        for i, r in enumerate(log)
        if r.path == EXPORT and "unsubscribedChannelIds" in r.query and "ListIds" not in r.query
    )


def _slow_reads(monkeypatch) -> None:
    """Iterable's speeds scaled down to a list of 400: an export of 10 rows a second
    (42 s for the list: more than a slot of the export budget) and 5 per-user reads a
    second (80 s for 400 adds, 0.6 s for 3), so that the export is started early and the
    few adds are still read one by one."""
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


def _get_users_waits_for_the_export(server) -> list[bool]:
    """The emulator answers getUsers only once the profiles' export has arrived (a bounded
    wait: were the export made after the diff, as the member reads' follower, it would
    never arrive first); whether it had, per getUsers."""
    emulator = server.emulator
    handle = emulator.handle
    arrived = threading.Event()
    seen: list[bool] = []

    def ordered(request: httpx.Request):
        if request.url.path == EXPORT and "unsubscribedChannelIds" in str(request.url):
            arrived.set()
        elif request.url.path == GET_USERS:
            seen.append(arrived.wait(BOUND_SECONDS))
        return handle(request)

    emulator.handle = ordered  # type: ignore[method-assign]
    return seen


def _held(body: dict) -> tuple[int, int, int]:
    summary = body["summary"]
    return (
        summary["members_to_add"],
        summary["members_left_themselves"],
        summary["members_channel_unsubscribed"],
    )


def _no_thread_left() -> bool:
    deadline = time.monotonic() + BOUND_SECONDS
    while time.monotonic() < deadline:
        if not any(t.name == THREAD for t in threading.enumerate()):
            return True
        time.sleep(0.05)
    return False


def test_the_profiles_export_starts_beside_the_member_reads(
    field_workspace,  # noqa: F811
    cli,
    monkeypatch,
):
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "getUsers")
    _slow_reads(monkeypatch)
    ws, server, proj = field_workspace("hybrid", "python")
    _seed(ws, server, proj, 400)
    server.emulator.clear_log()
    seen = _get_users_waits_for_the_export(server)
    plan = cli("plan", ws.manifests, "--format", "json")
    assert plan.exit_code == 0, plan.output
    body = plan.json()
    assert _held(body) == (1, 1, 1)
    # The export was asked for while the list's members were being read, not after.
    assert seen == [True]
    reads = " ".join(body["destinations"][0]["other_reads"])
    # Three adds: read one by one, or taken from the export if it had ended by then.
    assert (
        "read in the background beside the member reads" in reads
        or "3 per-user reads of profiles' unsubscribedChannelIds" in reads
    ), reads
    assert _no_thread_left()


def test_few_adds_are_read_one_by_one_while_a_slow_export_is_stopped(
    field_workspace,  # noqa: F811
    cli,
    monkeypatch,
    emulator_profile,
):
    """The export takes seconds to start answering: the three per-user reads end first,
    answer, and the export is abandoned; its thread ends at its first chunk."""
    monkeypatch.setenv("RECONCILER_MEMBER_READS", "getUsers")
    _slow_reads(monkeypatch)
    faults = profile_faults(emulator_profile) or Faults()
    faults.export_first_byte_seconds = 3.0
    ws, server, proj = field_workspace("hybrid", "python", faults)
    _seed(ws, server, proj, 400)
    server.emulator.clear_log()
    plan = cli("plan", ws.manifests, "--format", "json")
    assert plan.exit_code == 0, plan.output
    body = plan.json()
    assert _held(body) == (1, 1, 1)
    reads = " ".join(body["destinations"][0]["other_reads"])
    assert "3 per-user reads of profiles' unsubscribedChannelIds" in reads, reads
    users = [r for r in server.emulator.request_log if r.path.startswith("/api/users/")]
    assert len([r for r in users if r.path.endswith("%40example.com")]) == 3
    assert _channel_export_index(server) >= 0  # started early, then stopped
    assert _no_thread_left()


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


def test_unsubscribe_events_too_many_for_one_export_are_read_in_date_windows(
    field_workspace,  # noqa: F811
    cli,
    monkeypatch,
    emulator_profile,
):
    """A project with very many unsubscribes: Iterable cuts the events' one export off
    every time (the emulator's events_stream_lines). The events are read in date windows
    over createdAt instead, and who left the list themselves is exactly what one export
    would have said: each person's latest unsubscribe, across windows."""
    monkeypatch.setenv("RECONCILER_EXPORTS_PER_MINUTE", "100000")  # the emulator has none
    monkeypatch.setenv("RECONCILER_MAX_RETRIES", "1")
    faults = profile_faults(emulator_profile) or Faults()
    faults.events_stream_lines = 8
    ws, server, proj = field_workspace("hybrid", "python", faults)
    list_id = proj.add_list("vip", mark(None))
    people = [f"p{i}@example.com" for i in range(40)]
    for email in people:
        proj.add_user(email=email)
    day = 86_400_000
    now = int(time.time() * 1000)
    # Oldest first, a week apart: the even ones left by a link, the odd ones were removed
    # by an API call; then p0 was removed by an API call after its link (it may be re-added)
    # and p1 left by a link after its API removal (it may not).
    events = [
        (now - (300 - 7 * i) * day, email, "EmailLink" if i % 2 == 0 else "ListAPI")
        for i, email in enumerate(people)
    ]
    events += [(now - 2 * day, "p0@example.com", "ListAPI")]
    events += [(now - 1 * day, "p1@example.com", "EmailLink")]
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
    held = {f"p{i}@example.com" for i in range(2, 40, 2)} | {"p1@example.com"}
    assert body["summary"]["members_left_themselves"] == len(held) == 20
    assert body["summary"]["members_to_add"] == 40 - 20
    exports = [r for r in server.emulator.request_log if r.path == EXPORT]
    events_reads = [r for r in exports if "dataTypeName=emailUnSubscribe" in r.query]
    whole = [r for r in events_reads if "range=All" in r.query]
    assert whole and all(r.fault == "stream_cut" for r in whole)
    windows = [r for r in events_reads if "startDateTime" in r.query]
    assert len(windows) > 5  # the four planned, the open one, and halves of the full ones
    reads = " ".join(body["destinations"][0]["other_reads"])
    assert f"the emailUnSubscribe events in {len(windows)} date windows" in reads, reads
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
    odd = "two..dots@example.com"  # reconciler's light check lets it through
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
