"""The client's pacing against the emulator's sliding window, over HTTP, on one fake clock,
and the pace it learns from 429s where it was given no limit (in real time)."""

from __future__ import annotations

import itertools
import threading

import pytest

from reconciler.emulator import Limits
from reconciler.iterable import ClientSettings, IterableClient
from tests.conftest import EMULATOR_API_KEY
from tests.integration.reliability import assert_exactly_desired, build_scenario

LIMIT = 5  # subscribes per second, on the emulator and in the client


class SharedClock:
    """The client's and the emulator's time: it moves when the client sleeps, and when the
    emulator is slow to count a request."""

    def __init__(self) -> None:
        self.now = 1000.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def advance(self, seconds: float) -> float:
        with self._lock:
            self.now += max(0.0, seconds)
            return self.now


def test_requests_the_server_counts_late_are_paced_without_a_429(make_emulator_server):
    clock = SharedClock()
    # Every sixth request reaches the server's count 0.3 s after it was sent (queued
    # behind others, or slow on the wire); the rest at once. Timed from its send, the
    # first one's slot would free 0.3 s before the server's does.
    delays = itertools.cycle([0.3, 0.0, 0.0, 0.0, 0.0, 0.0])
    limits = Limits.unlimited()
    limits.writes = (LIMIT, 1.0)
    server = make_emulator_server(
        project_type="email", limits=limits, clock=lambda: clock.advance(next(delays))
    )
    list_id = server.emulator.project("default").add_list("paced")
    settings = ClientSettings(writes_per_second=LIMIT, concurrency=1)
    with IterableClient(
        server.base_url, EMULATOR_API_KEY, settings=settings, clock=clock, sleep=clock.sleep
    ) as client:
        for i in range(12):
            client.subscribe(list_id, [{"email": f"u{i}@example.com"}])

    sent = [r for r in server.emulator.request_log if r.path == "/api/lists/subscribe"]
    assert [r.status for r in sent] == [200] * 12  # as few requests as the work needs
    assert client.stats.rate_limited == 0
    counted = [r.at for r in sent]
    assert all(counted[k] - counted[k - LIMIT] >= 1.0 for k in range(LIMIT, len(counted)))
    # And no later than the answers allow: the sixth went as soon as the first one's
    # answer was a second old.
    assert counted[LIMIT] == pytest.approx(counted[0] + 1.0, abs=1e-5)


def test_a_429_holds_the_other_requests_of_its_kind_for_the_backoff(emulator_server):
    faults = emulator_server.emulator.faults
    faults.paths = ["/api/lists/subscribe"]
    faults.script = [429]  # no Retry-After, as Iterable answers
    list_id = emulator_server.emulator.project("default").add_list("paced")
    clock = SharedClock()
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 1:
            # While the refused request backs off, another thread sends one of its kind.
            client.subscribe(list_id, [{"email": "other@example.com"}])
        clock.advance(seconds)

    settings = ClientSettings(writes_per_second=LIMIT, backoff_base=0.25, backoff_cap=0.25)
    with IterableClient(
        emulator_server.base_url, EMULATOR_API_KEY, settings=settings, clock=clock, sleep=sleep
    ) as client:
        client.subscribe(list_id, [{"email": "first@example.com"}])

    backoff, held = sleeps
    assert 0.125 <= backoff <= 0.25
    assert held == pytest.approx(backoff, abs=1e-6)  # the other one waited it out too
    statuses = [r.status for r in emulator_server.emulator.request_log]
    assert statuses == [429, 200, 200] and client.stats.rate_limited == 1


def test_a_429_on_a_list_read_waits_out_the_window_another_process_filled(make_emulator_server):
    # A plan run just before (another process, its own budget) used Iterable's 5 getUsers
    # of the minute; this run's first read is refused, without Retry-After, as Iterable
    # answers. A slot frees only as the oldest of those reads leaves the window.
    clock = SharedClock()
    limits = Limits.unlimited()
    limits.list_reads = (5, 60.0)
    server = make_emulator_server(project_type="email", limits=limits, clock=clock)
    project = server.emulator.project("default")
    list_id = project.add_list("big")
    project.subscribe_direct(list_id, email="member@example.com")
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.advance(seconds)

    with IterableClient(server.base_url, EMULATOR_API_KEY, clock=clock) as before:
        for _ in range(5):
            assert list(before.iter_list_members(list_id, False)) == ["member@example.com"]
    with IterableClient(server.base_url, EMULATOR_API_KEY, clock=clock, sleep=sleep) as client:
        assert list(client.iter_list_members(list_id, False)) == ["member@example.com"]

    statuses = [r.status for r in server.emulator.request_log if "getUsers" in r.path]
    assert statuses[:5] == [200] * 5 and statuses[-1] == 200 and 429 in statuses[5:]
    # Waited the window out, and not much longer (the retries add up to just over it).
    assert 60.0 <= sum(sleeps) <= 60.0 * 1.1 + 1e-6
    assert client.stats.rate_limited == len(statuses) - 6


def test_writers_under_a_tight_limit_learn_a_pace_and_meet_few_429s(
    workspace, cli, emulator_server, monkeypatch
):
    # 4 writers, unpaced, into 5 subscribe requests a second met 12 to 18 429s for the 27
    # writes taken, each 429 a backoff; paced from the first 429s on, 2 to 5.
    # 40 members a request: the scenario's 1,000 adds and 50 removes take 27 writes.
    monkeypatch.setenv("RECONCILER_BATCH_SIZE", "40")
    # The default backoffs, not this suite's hundredths of a second: each 429 costs what
    # it costs a user.
    for name in ("RECONCILER_BACKOFF_BASE", "RECONCILER_BACKOFF_CAP", "RECONCILER_RETRY_AFTER_CAP"):
        monkeypatch.delenv(name)
    scenario = build_scenario(workspace, emulator_server)
    emulator_server.emulator.faults.write_rate_per_second = 5

    result = cli("apply", workspace.manifests, "--yes", "--format", "json")
    log = emulator_server.emulator.request_log
    writes = [r for r in log if r.path in ("/api/lists/subscribe", "/api/lists/unsubscribe")]
    taken = sum(1 for r in writes if r.status == 200)
    refused = sum(1 for r in writes if r.status == 429)
    assert refused <= taken / 3, f"{refused} 429s for {taken} writes taken"
    assert result.exit_code == 0, result.output
    assert taken == 27
    assert_exactly_desired(emulator_server, scenario)
