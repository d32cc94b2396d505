"""The pace an unpaced window learns from 429s (ratelimit.Pace), against an injected
clock and a model of Iterable's limit: nothing here waits for real time."""

from __future__ import annotations

import re

import pytest

from reconciler.iterable import IterableClient
from reconciler.iterable.ratelimit import LONGEST_GAP, Pace, SlidingWindow, WindowUser
from reconciler.iterable.retry_notices import WAITS_LISTED
from tests.unit.test_ratelimit import FakeClock


def unpaced(clock: FakeClock) -> SlidingWindow:
    return SlidingWindow(0, 1.0, clock, clock.sleep)


def test_nothing_is_paced_until_a_429():
    clock = FakeClock()
    limiter = unpaced(clock)
    for _ in range(100):
        with limiter.acquire():
            pass
        limiter.took()
    assert clock.sleeps == [] and limiter.learnt is None


def test_the_first_429_starts_the_pace_at_what_the_server_took_in_the_last_window():
    clock = FakeClock()
    limiter = unpaced(clock)
    for _ in range(3):
        with limiter.acquire():
            clock.now += 0.1
        limiter.took()
    clock.now += 0.5  # the first of the three left the window at 1.0 s; still in it
    refused = limiter.acquire()
    refused.answered()
    limiter.refused(refused)
    assert limiter.learnt == 3.0
    start = clock.now
    sent = []
    for _ in range(3):
        with limiter.acquire():
            sent.append(clock.now - start)
    assert sent == pytest.approx([1 / 3, 2 / 3, 1.0])


def test_429s_of_requests_sent_before_the_pace_changed_lower_it_once():
    # 4 writers refused at once: one change, not a pace quartered twice over.
    clock = FakeClock()
    limiter = unpaced(clock)
    slots = [limiter.acquire() for _ in range(4)]
    for slot in slots:
        slot.answered()
        limiter.refused(slot)
    assert limiter.learnt == 1.0  # nothing taken in the last window: one a window
    late = slots[0]
    clock.now += 5.0
    limiter.refused(late)  # sent before the change, answered long after: still old news
    assert limiter.learnt == 1.0
    fresh = limiter.acquire()
    limiter.refused(fresh)
    assert limiter.learnt == 0.5


def test_halved_on_a_429_regained_fast_then_crept_past_slowly():
    pace = Pace(1.0)
    pace.refused(sent_at=0.0, now=0.0)  # nothing taken: 1 a second
    pace.refused(sent_at=1.0, now=1.0)
    assert pace.rate == 0.5
    rates = []
    for i in range(20):
        pace.took(2.0 + i)
        rates.append(pace.rate)
    assert rates[0] == pytest.approx(0.5 * 17 / 16)
    # Below 90% of the pace that met the 429 it grows by a sixteenth a request taken,
    # from there by a 256th: 10 requests to get back, and past it only slowly.
    back = next(i for i, rate in enumerate(rates) if rate >= 0.9)
    assert back == 9
    assert rates[-1] == pytest.approx(rates[back] * (1 + 1 / 256) ** (19 - back))
    assert rates[-1] < 1.0


def test_a_429_after_requests_taken_near_the_pace_lowers_it_to_their_rate_not_half():
    # Halving from just past the limit spent half the time regaining it.
    pace = Pace(1.0)
    pace.refused(sent_at=0.0, now=0.0)  # nothing taken: 1 a second
    for second in (1.0, 2.0, 3.0, 4.0):
        pace.took(second)
    pace.refused(sent_at=4.5, now=5.0)
    assert pace.rate == pytest.approx(0.8)  # 4 taken in the 5 s since the change
    # Taken as fast as the pace or faster (a burst the server allowed): still lowered.
    for moment in (5.1, 5.2, 5.3, 5.4):
        pace.took(moment)
    before = pace.rate
    pace.refused(sent_at=5.5, now=5.5)
    assert pace.rate == pytest.approx(0.8 * before)


def test_a_429_right_after_a_change_halves_the_pace_the_requests_sent_before_it_aside():
    # 4 writers' requests in flight when a 429 lowered the pace, taken just after it:
    # counted as taken at the new pace, the next 429 measured 4 in a short while and
    # lowered the pace by a fifth (_SETTLE), not half.
    clock = FakeClock()
    limiter = unpaced(clock)
    first = limiter.acquire()
    limiter.refused(first)  # nothing taken in the last window: 1 a second
    in_flight = [limiter.acquire() for _ in range(4)]  # one a second, at that pace
    change = limiter.acquire()
    limiter.refused(change)  # none sent since the change were taken: halved
    assert limiter.learnt == 0.5
    for slot in in_flight:  # their answers, each in a window of its own
        clock.now += 1.5
        limiter.took(slot)
    before = limiter.learnt
    assert before is not None and before > 0.5  # crept up on each request taken
    fresh = limiter.acquire()
    limiter.refused(fresh)
    assert limiter.learnt == pytest.approx(before / 2)


def test_never_paced_slower_than_the_longest_backoff():
    # A server refusing everything (a quota, not a rate): halving on each 429 would reach
    # a request a day; a retry never waits longer than LONGEST_GAP, nor does the pace.
    clock = FakeClock()
    limiter = unpaced(clock)
    for _ in range(40):
        slot = limiter.acquire()
        slot.answered()
        limiter.refused(slot)
    assert limiter.learnt == 1 / LONGEST_GAP
    assert max(clock.sleeps) <= LONGEST_GAP


def test_a_configured_limit_learns_nothing_from_429s():
    # Its 429s are another client's use of a limit we pace to (push_back handles them).
    clock = FakeClock()
    limiter = SlidingWindow(5, 60.0, clock, clock.sleep)
    slot = limiter.acquire()
    slot.answered()
    limiter.refused(slot)
    assert limiter.learnt is None


def test_clients_sharing_a_project_share_what_it_learnt():
    clock = FakeClock()
    limiter = unpaced(clock)
    other = WindowUser(limiter)
    slot = other.acquire()
    slot.answered()
    other.refused(slot)
    assert limiter.learnt == other.learnt == 1.0


class TokenBucket:
    """Iterable's limit as the emulator models it: `rate` a second, a second's burst."""

    def __init__(self, rate: float, now: float):
        self.rate, self.tokens, self.last = rate, max(1.0, rate), now

    def take(self, now: float) -> bool:
        self.tokens = min(max(1.0, self.rate), self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


@pytest.mark.parametrize("limit", [0.3, 1.0, 3.0])
def test_a_limit_tighter_than_the_sends_costs_few_429s(limit):
    # Requests answered at once, resent after a 429 at once (the pace is the only wait):
    # unpaced, each request taken would cost a 429 for every try in between.
    clock = FakeClock()
    limiter = unpaced(clock)
    server = TokenBucket(limit, clock.now)
    taken = refused = 0
    start = clock.now
    while taken < 200:
        slot = limiter.acquire()
        slot.answered()
        if server.take(clock.now):
            limiter.took()
            taken += 1
        else:
            limiter.refused(slot)
            refused += 1
    # About one 429 for each 20 taken (a lowering, then regained); unpaced, this loop
    # never ends. Taken at three quarters of the limit or more (ideally 200 / limit s).
    assert refused <= taken / 15
    assert (taken - 1) / (clock.now - start) >= 0.75 * limit


def test_never_paced_slower_than_an_eighth_of_the_most_the_server_took_in_a_window():
    # 429s that come at any pace (every other request refused) halve it again and again.
    clock = FakeClock()
    limiter = unpaced(clock)
    for _ in range(8):
        with limiter.acquire():
            pass
        limiter.took()
    learnt = []
    for _ in range(10):
        slot = limiter.acquire()
        slot.answered()
        limiter.refused(slot)
        learnt.append(limiter.learnt)
        with limiter.acquire():
            pass
        limiter.took()
    assert learnt[0] == 8.0  # 8 taken at once
    # Halved three times, then held: 10 were taken in one window by then (10 / 8).
    assert learnt[3:] == [1.25] * 7


def test_a_long_wait_at_a_learnt_pace_names_the_rate_learnt():
    # It said "(0 per second)": the configured figure, which is none.
    clock = FakeClock()
    said: list[str] = []
    with IterableClient(
        "http://127.0.0.1:9", "0123456789abcdef0123456789abcdef", clock=clock, sleep=clock.sleep
    ) as client:
        client.on_notice(said.append)
        writes = client._buckets["writes"]
        slot = writes.acquire()
        slot.answered()
        writes.refused(slot)  # 1 a second: nothing taken in the last second
        for _ in range(3):
            slot = writes.acquire()
            slot.answered()
            writes.refused(slot)
        writes.acquire().answered()
    assert said == [
        "waiting 8 s for Iterable's rate limit on writes requests "
        "(about 0.12 per second, learnt from its 429s)"
    ]


def test_waits_at_a_slow_learnt_pace_are_counted_not_said_one_a_request():
    # A long apply at a pace learnt from 429s printed a "waiting 8 s ..." line for every
    # request: 200 requests, 200 lines. The first are said, then a line at most once a
    # minute (of the client's clock) counts the others, and one more when it closes.
    clock = FakeClock()
    said: list[str] = []
    with IterableClient(
        "http://127.0.0.1:9", "0123456789abcdef0123456789abcdef", clock=clock, sleep=clock.sleep
    ) as client:
        client.on_notice(said.append)
        writes = client._buckets["writes"]
        for _ in range(4):
            slot = writes.acquire()
            slot.answered()
            writes.refused(slot)
        start = clock.now
        for _ in range(200):
            writes.acquire().answered()
        minutes = (clock.now - start) / 60
    waits = [line for line in said if line.startswith("waiting ")]
    counts = [line for line in said if " for Iterable's rate limit in " in line]
    assert len(waits) == WAITS_LISTED
    assert len(said) <= WAITS_LISTED + 1 + minutes + 1
    assert all(
        re.fullmatch(
            r"\d+ more waits? for Iterable's rate limit in .+, not listed: writes "
            r"requests \(\d+\)",
            line,
        )
        for line in counts
    ), counts
    notices = client._wait_notices
    assert notices is not None
    # Every wait past the first said is in a count; nearly every request waited.
    assert sum(int(line.split()[0]) for line in counts) == notices.unlisted > 180
