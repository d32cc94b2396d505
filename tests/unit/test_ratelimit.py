"""SlidingWindow pacing against an injected clock: nothing here waits for real time."""

from __future__ import annotations

import threading

import pytest

from reconciler.iterable.ratelimit import SlidingWindow, WindowUser


class FakeClock:
    """Moves only when something sleeps on it (or the test says so)."""

    def __init__(self, start: float = 1000.0):
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def window(limit: float, seconds: float = 1.0, clock: FakeClock | None = None) -> SlidingWindow:
    clock = clock or FakeClock()
    return SlidingWindow(limit, seconds, clock, clock.sleep)


def most_in_any_window(stamps: list[float], seconds: float) -> int:
    """The server's count: a stamp exactly `seconds` before another has left its window."""
    return max(sum(1 for t in stamps if start - seconds < t <= start) for start in stamps)


def test_a_full_window_goes_at_once_then_one_more_per_slot_that_frees():
    clock = FakeClock()
    limiter = window(5, clock=clock)
    sent = []
    for _ in range(12):
        with limiter.acquire():
            sent.append(clock.now)
    start = sent[0]
    assert sent == [start] * 5 + [start + 1.0] * 5 + [start + 2.0] * 2
    assert most_in_any_window(sent, 1.0) == 5
    assert limiter.waited == clock.now - start == 2.0


def test_a_slot_is_timed_from_the_answer_not_from_the_send():
    # The server counts a request somewhere between our send and its answer. Timed from
    # the send, the sixth request would go at 1.0 s and could be counted less than a
    # second after the first one was (at up to 0.3 s).
    clock = FakeClock()
    limiter = window(5, clock=clock)
    start = clock.now
    slot = limiter.acquire()
    clock.now += 0.3  # in flight: the server counts it at some moment in here
    slot.answered()
    for _ in range(4):
        limiter.acquire().answered()
    limiter.acquire().answered()
    assert clock.now == pytest.approx(start + 1.3, abs=1e-5)


def test_answered_counts_once():
    clock = FakeClock()
    limiter = window(2, clock=clock)
    first = limiter.acquire()
    first.answered()
    first.answered()  # a second call (the context manager's exit) frees nothing more
    limiter.acquire().answered()
    start = clock.now
    limiter.acquire().answered()
    assert clock.now == start + 1.0


def test_requests_in_flight_hold_their_slots_until_answered():
    clock = FakeClock()
    lock = threading.Lock()
    asked = threading.Event()

    def guarded_clock() -> float:
        with lock:
            if threading.current_thread() is not threading.main_thread():
                asked.set()
            return clock.now

    limiter = SlidingWindow(2, 1.0, guarded_clock, clock.sleep)
    first, second = limiter.acquire(), limiter.acquire()
    order: list[str] = []

    def third() -> None:
        with limiter.acquire():
            order.append("third sent")

    worker = threading.Thread(target=third)
    worker.start()
    # The worker found both slots taken (it read the clock under the window's lock); the
    # answer below can only be recorded once it is waiting for one.
    assert asked.wait(timeout=30)
    order.append("first answered")
    first.answered()
    worker.join(timeout=30)
    assert not worker.is_alive()
    # It went once the first answer came and its slot's second had passed.
    assert order == ["first answered", "third sent"]
    assert clock.sleeps == [1.0]
    second.answered()


def test_push_back_holds_every_request_then_the_counted_slots_still_apply():
    clock = FakeClock()
    limiter = window(3, clock=clock)
    start = clock.now
    for _ in range(2):
        limiter.acquire().answered()
    limiter.push_back(0.4)  # e.g. a 429 that said Retry-After
    limiter.acquire().answered()
    assert clock.now == start + 0.4
    # The window's three slots are in use (two since `start`, one since 0.4 s later).
    limiter.acquire().answered()
    assert clock.now == start + 1.0


def test_push_back_never_shortens_a_pause():
    clock = FakeClock()
    limiter = window(10, clock=clock)
    start = clock.now
    limiter.push_back(2.0)
    limiter.push_back(0.5)
    limiter.acquire().answered()
    assert clock.now == start + 2.0


def test_an_unpaced_window_sends_at_once_but_honours_push_back():
    clock = FakeClock()
    limiter = window(0, clock=clock)
    start = clock.now
    for _ in range(100):
        limiter.acquire().answered()
    assert clock.now == start
    limiter.push_back(3.0)
    limiter.acquire().answered()
    assert clock.now == start + 3.0


def test_float_rounding_never_leaves_a_wait_that_cannot_move_the_clock():
    # 1000.1 + 1.0 - 1000.0 is not exactly 1.1: a wait computed from it can land a hair
    # short of the slot's expiry, and a clock this far from 0 ignores a tinier sleep.
    clock = FakeClock(start=1000.1)
    limiter = window(3, seconds=1.0, clock=clock)
    for _ in range(300):
        limiter.acquire().answered()
        clock.now += 0.1
    assert len(clock.sleeps) <= 2 * 300
    assert all(s > 0 for s in clock.sleeps)


def test_a_long_wait_is_announced_before_it_starts() -> None:
    from reconciler.iterable.ratelimit import NOTICE_AFTER, SlidingWindow

    now = [0.0]
    heard: list[tuple[float, float]] = []

    def sleep(seconds: float) -> None:
        now[0] += seconds

    window = SlidingWindow(1, 60.0, lambda: now[0], sleep)
    window.on_wait = lambda wait: heard.append((now[0], wait))
    with window.acquire() as slot:
        slot.answered()
    assert heard == []  # the first request does not wait
    window.acquire().answered()
    assert heard == [(0.0, 60.0)]  # said at the start of the wait, with its length
    assert now[0] == 60.0
    unpaced = SlidingWindow(0, 1.0, lambda: now[0], sleep)
    unpaced.on_wait = lambda wait: heard.append((now[0], wait))
    unpaced.push_back(NOTICE_AFTER / 2)
    unpaced.acquire().answered()
    assert len(heard) == 1  # short pauses are not said
    unpaced.push_back(NOTICE_AFTER)
    unpaced.acquire().answered()
    assert heard[-1] == (60.0 + NOTICE_AFTER / 2, NOTICE_AFTER)


def test_a_request_waiting_for_an_answer_in_flight_is_said_once():
    # Every slot held by a slow read (getUsers can take minutes to answer): the waiting
    # request is announced, not left silent, and only once however long it waits.
    limiter = window(1, seconds=60.0)
    told: list[int] = []
    limiter.on_full = told.append
    first = limiter.acquire()
    got = threading.Event()

    def second() -> None:
        with limiter.acquire():
            got.set()

    waiter = threading.Thread(target=second)
    waiter.start()
    for _ in range(60_000):  # up to a minute on a busy machine
        if told:
            break
        threading.Event().wait(0.001)
    assert told and not got.is_set()
    first.answered()  # the slot is timed from here: a minute on the fake clock
    waiter.join(timeout=60)
    assert got.is_set()
    assert told == [1]


def test_two_clients_of_one_project_share_its_window_each_with_its_own_notices():
    """Two destinations naming one project: Iterable counts their requests together."""
    clock = FakeClock()
    shared = SlidingWindow(2, 60.0, clock, clock.sleep)
    first, second = WindowUser(shared), WindowUser(shared)
    told: list[tuple[str, float]] = []
    first.on_wait = lambda wait: told.append(("first", wait))
    second.on_wait = lambda wait: told.append(("second", wait))

    for user in (first, second, second):
        with user.acquire():
            pass

    # The third request of the minute waited for the first's slot, whoever sent it.
    assert clock.sleeps == [60.0]
    assert told == [("second", 60.0)]
    assert (first.waited, second.waited, shared.waited) == (0.0, 60.0, 0.0)
