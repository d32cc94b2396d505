"""Client-side pacing, so we stay inside Iterable's per-project limits instead of
discovering them through 429s (a 429 on a 5-per-minute endpoint costs up to a minute).

Iterable counts a request in a sliding window at the moment it handles it, which we cannot
see: it lies somewhere between our sending the request and our reading the answer's
headers (a server decides on a request before it answers it). So a request holds its slot
from when it is sent, and the slot is timed from when its answer arrived: one window after
that, Iterable has certainly stopped counting it. Timing it from the send instead (as a
naive limiter does) lets a request that waited behind others at the server, or in the
network, land less than a window after the one it replaced, and be refused. The cost of
this bound is the time from Iterable's count to its answer, per window, not a fixed
margin.

A window with no limit configured (subscribe and unsubscribe: Iterable documents none)
learns a pace from the 429s it meets instead (`Pace`).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

# A clock that rounds (fake ones in tests, floats far from 0) can leave a computed wait a
# hair short of the stamp's expiry; this floor makes every sleep move the clock.
_MIN_SLEEP = 1e-6
# Waits from this many seconds on are announced (`SlidingWindow.on_wait`).
NOTICE_AFTER = 5.0
# How often a wait that may be given up (`SlidingWindow.acquire`'s `stopped`) looks.
STOP_LOOK_SECONDS = 0.1
# A learnt pace never spaces requests further apart than this: the longest single backoff
# a retry waits (ClientSettings.backoff_cap), so pacing never holds a request longer than
# retrying it would. Halving on every 429 of a server that refuses everything would
# otherwise reach a request a day.
LONGEST_GAP = 30.0
# Nor is it slower than this share of the most requests the server took in one window:
# 429s that come at any pace (a server refusing every other request) halve it again and
# again, and pacing would then cost more than their retries.
_DEEPEST = 1 / 8
# A 429 lowers a learnt pace to at most this share of itself, however fast Iterable took
# the requests before it.
_SETTLE = 0.8
# A learnt pace creeps up by this share of itself on each request taken while below 90%
# of the pace that last met a 429 (it was halved from there: get back soon) ...
_REGAIN = 1 / 16
# ... and by this share from there on: past it slowly, where the limit was met before
# (a limit that rose is found again in about 180 requests a doubling).
_PROBE = 1 / 256


class Pace:
    """The pace of requests an Iterable limit we were not told of lets through, learnt
    from its 429s (AIMD, as TCP finds a link's rate): none until the first 429, which
    starts it at what the server took in the last `window`; halved on each later 429,
    crept up on each request taken (lowered less when Iterable took requests faster than
    half the pace since it last changed: `refused`). 4 writers sent unpaced into a limit
    tighter than theirs had two to four requests refused for each one taken, and were
    taken at half the limit, the rest of their time spent backing off
    (bench/write_limits.py). The client tells it only of 429s that came while others were
    taken (lost races, IterableClient._request): one with none taken says nothing of a
    pace.

    Only a 429 of a request sent after the last change lowers the pace: the requests in
    flight when it changed were sent at the old pace, and their 429s say nothing of the
    new one (4 refused at once would otherwise quarter it twice over)."""

    def __init__(self, window: float):
        self.window = window
        self.rate: float | None = None  # requests a second; None: unpaced
        self._ceiling = 0.0  # the pace that last met a 429
        self._changed = float("-inf")  # when the pace was last lowered
        self._next = float("-inf")  # the earliest the next request may be sent
        self._taken: deque[float] = deque()  # when requests were taken, the last window
        self._most = 0  # the most taken in one window
        self._since = 0  # taken since the pace last changed, of those sent after it

    def wait(self, now: float) -> float:
        """Seconds until a request may be sent at this pace (0: now)."""
        return max(0.0, self._next - now) if self.rate is not None else 0.0

    def sent(self, now: float) -> None:
        if self.rate is not None:
            self._next = now + 1 / self.rate

    def took(self, now: float, sent_at: float | None = None) -> None:
        """A request sent at `sent_at` (None: not known) was taken (answered other than
        429) at `now`."""
        self._taken.append(now)
        while self._taken and self._taken[0] <= now - self.window:
            self._taken.popleft()
        self._most = max(self._most, len(self._taken))
        # The rate taken since a change counts only requests sent after it: those in
        # flight then were sent at the old pace, and counted they made a 429 right after
        # a change lower the pace by a fifth (_SETTLE) where it should halve it.
        if sent_at is None or sent_at > self._changed:
            self._since += 1
        if self.rate is not None:
            self.rate *= 1 + (_REGAIN if self.rate < 0.9 * self._ceiling else _PROBE)

    def refused(self, sent_at: float, now: float) -> None:
        """A request sent at `sent_at` was answered 429 at `now`."""
        if sent_at <= self._changed:
            return
        if self.rate is None:
            while self._taken and self._taken[0] <= now - self.window:
                self._taken.popleft()
            self.rate = self._ceiling = max(len(self._taken), 1) / self.window
        else:
            # Halved, or down to the rate Iterable took requests at since the last change
            # when that is more (it is what its limit let through): halving from just
            # past the limit spent half the time regaining it (0.21 taken a second of 0.3).
            since = now - self._changed
            taken = self._since / since if self._since >= 2 and since > 0 else 0.0
            self._ceiling = self.rate
            self.rate = max(self.rate / 2, min(taken, _SETTLE * self.rate))
        self.rate = max(self.rate, _DEEPEST * self._most / self.window, 1 / LONGEST_GAP)
        self._changed, self._since = now, 0
        self._next = now + 1 / self.rate


class WaitGivenUp(Exception):
    """A wait for a window's slot ended by its `stopped` test (SlidingWindow.acquire): the
    request was not sent."""


class Slot:
    """One request's place in a window: in flight until `answered`, then timed from then.
    `sent_at`: when it was let go, by the window's clock (`SlidingWindow.refused`)."""

    def __init__(self, window: SlidingWindow | None, sent_at: float):
        self._window = window
        self.sent_at = sent_at

    def answered(self) -> None:
        """The answer's headers arrived (or the attempt failed): start the slot's window.
        Only the first call counts, so callers can also call it on every way out."""
        window, self._window = self._window, None
        if window is not None:
            window._answered()

    def __enter__(self) -> Slot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.answered()


class SlidingWindow:
    """At most `limit` requests in any `window` seconds, as Iterable counts them.

    `acquire` before sending, then `Slot.answered` when the answer arrives. A `limit` of 0
    paces nothing until the server refuses a request (`refused`: then at the pace learnt,
    `Pace`), and honours `push_back`; one below 1 is one request in `window` / `limit`
    seconds, and a fractional one above 1 counts whole requests (2.5 is 2).
    """

    def __init__(
        self,
        limit: float,
        window: float,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
    ):
        self.rate = limit  # as configured, for messages ("0.1 per second")
        if 0 < limit < 1:
            # Less than one request a window (RECONCILER_USER_READS_PER_SECOND=0.1): one
            # request per window / limit. int() made it 0, which paces nothing at all.
            limit, window = 1, window / limit
        self.limit = int(limit)
        self.window = window
        self._clock = clock
        self._sleep = sleep
        # When each answered request's slot started, oldest first (answers are stamped
        # under the lock from a monotonic clock, so appending keeps the order).
        self._stamps: deque[float] = deque()
        self._in_flight = 0  # sent, not yet answered: their slots' start is not known yet
        self._paused_until = float("-inf")
        self._changed = threading.Condition(threading.Lock())
        self.waited = 0.0  # total seconds spent waiting, reported as a figure
        # Told of every wait of NOTICE_AFTER seconds or more before it starts, so a long
        # pause (a minute for the fifth list read) is never silence.
        self.on_wait: Callable[[float], None] | None = None
        # Told when a request waits for an answer to one of those in flight (every slot
        # held, for as long as a slow read takes to answer), once per request.
        self.on_full: Callable[[int], None] | None = None
        # Requests of this window the server took (answered other than 429), by every
        # client sharing it: a 429 after some got through is a lost race for the window's
        # slots, not a sign that the server takes nothing (IterableClient._request).
        self.taken = 0
        # `taken` when a request last gave up, every try answered 429 while the window
        # took none (IterableClient._request); None: none has. A later request meeting
        # the same, begun after it with still none taken, finds the limit refusing them
        # all, not one batch's unlucky half minute.
        self.refused_at: int | None = None
        # With a limit configured, a 429 is another client's use of it (push_back); with
        # none, it is the limit we were not told of.
        self.pace = Pace(window) if self.limit <= 0 else None

    def took(self, slot: Slot | None = None) -> None:
        """A request of this window (`slot`'s, when known) was answered other than 429."""
        with self._changed:
            self.taken += 1
            if self.pace is not None:
                self.pace.took(self._clock(), None if slot is None else slot.sent_at)

    def refused(self, slot: Slot) -> None:
        """`slot`'s request was answered 429: with no limit configured, learn a pace."""
        with self._changed:
            if self.pace is not None:
                self.pace.refused(slot.sent_at, self._clock())

    @property
    def learnt(self) -> float | None:
        """The pace learnt from 429s, requests a second (None: none yet, or a limit is
        configured), for messages."""
        return None if self.pace is None else self.pace.rate

    def acquire(
        self, user: WindowUser | None = None, stopped: Callable[[], bool] | None = None
    ) -> Slot:
        """Wait until a request may be sent without going over the limit; its slot.
        `user`: another client of the same project sharing this window (WindowUser),
        whose notices and waited figure these are; else this window's own. `stopped`:
        looked at every STOP_LOOK_SECONDS of the wait, which it ends (WaitGivenUp) once
        true: a write paced 30 s apart (or held by a Retry-After) was sent after Ctrl-C,
        when it had not started."""
        on_wait = self.on_wait if user is None else user.on_wait
        on_full = self.on_full if user is None else user.on_full
        figure = self if user is None else user
        told = False
        said_until = float("-inf")  # the end of the wait last announced
        while True:
            if stopped is not None and stopped():
                raise WaitGivenUp
            with self._changed:
                now = self._clock()
                wait = self._wait(now)
                if wait == 0.0:
                    if self.pace is not None:
                        self.pace.sent(now)
                        return Slot(None, now)
                    self._in_flight += 1
                    return Slot(self, now)
                if wait is None:
                    # Every slot is held by a request still in flight: the next answer
                    # says when one frees.
                    if on_full is not None and not told:
                        told = True
                        on_full(self._in_flight)
                    self._changed.wait(None if stopped is None else STOP_LOOK_SECONDS)
                    figure.waited += max(0.0, self._clock() - now)
                    continue
            wait = max(wait, _MIN_SLEEP)
            # Said once for a wait slept in turns, not again at each turn.
            if on_wait is not None and wait >= NOTICE_AFTER and now + wait > said_until:
                on_wait(wait)
                said_until = now + wait + STOP_LOOK_SECONDS
            if stopped is not None:
                wait = min(wait, STOP_LOOK_SECONDS)
            figure.waited += wait
            self._sleep(wait)

    def push_back(self, seconds: float) -> None:
        """After a 429 (or a Retry-After), send nothing for `seconds`: the server says its
        window is full, so every request of this kind would be refused, not just the one
        that was. The slots already counted still apply afterwards."""
        with self._changed:
            self._paused_until = max(self._paused_until, self._clock() + seconds)

    def _wait(self, now: float) -> float | None:
        """Seconds until a slot is free: 0 now, None when only an answer can free one."""
        if now < self._paused_until:
            return self._paused_until - now
        if self.pace is not None:
            return self.pace.wait(now)
        # Same test as the server's: a request counted exactly one window ago has left it.
        while self._stamps and self._stamps[0] <= now - self.window:
            self._stamps.popleft()
        if len(self._stamps) + self._in_flight < self.limit:
            return 0.0
        if not self._stamps:
            return None
        return self._stamps[0] + self.window - now

    def _answered(self) -> None:
        with self._changed:
            self._in_flight -= 1
            self._stamps.append(self._clock())
            self._changed.notify_all()


class WindowUser:
    """A second client's use of a SlidingWindow it shares with another client of the same
    Iterable project (two destinations naming one project, each with its client):
    Iterable counts the project's requests together, so each client pacing alone to the
    full limit made twice the requests it allows, and half of them met 429s. The count is
    the window's; the notices (which name the client's destination) and the waited figure
    are this client's own."""

    def __init__(self, window: SlidingWindow):
        self.shared = window
        self.on_wait: Callable[[float], None] | None = None
        self.on_full: Callable[[int], None] | None = None
        self.waited = 0.0

    @property
    def rate(self) -> float:
        return self.shared.rate

    @property
    def window(self) -> float:
        return self.shared.window

    def acquire(self, stopped: Callable[[], bool] | None = None) -> Slot:
        return self.shared.acquire(self, stopped)

    @property
    def taken(self) -> int:
        return self.shared.taken

    @property
    def refused_at(self) -> int | None:
        return self.shared.refused_at

    @refused_at.setter
    def refused_at(self, taken: int | None) -> None:
        self.shared.refused_at = taken

    def took(self, slot: Slot | None = None) -> None:
        self.shared.took(slot)

    def refused(self, slot: Slot) -> None:
        self.shared.refused(slot)

    @property
    def learnt(self) -> float | None:
        return self.shared.learnt

    def push_back(self, seconds: float) -> None:
        self.shared.push_back(seconds)


# A client's window of one kind of request: its own, or one it shares.
Window = SlidingWindow | WindowUser
