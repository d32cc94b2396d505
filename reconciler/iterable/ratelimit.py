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


class Slot:
    """One request's place in a window: in flight until `answered`, then timed from then."""

    def __init__(self, window: SlidingWindow | None):
        self._window = window

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
    paces nothing, but still honours `push_back`; one below 1 is one request in `window` /
    `limit` seconds, and a fractional one above 1 counts whole requests (2.5 is 2).
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

    def took(self) -> None:
        """A request of this window was answered other than 429."""
        with self._changed:
            self.taken += 1

    def acquire(self, user: WindowUser | None = None) -> Slot:
        """Wait until a request may be sent without going over the limit; its slot.
        `user`: another client of the same project sharing this window (WindowUser),
        whose notices and waited figure these are; else this window's own."""
        on_wait = self.on_wait if user is None else user.on_wait
        on_full = self.on_full if user is None else user.on_full
        figure = self if user is None else user
        told = False
        while True:
            with self._changed:
                now = self._clock()
                wait = self._wait(now)
                if wait == 0.0:
                    if self.limit <= 0:
                        return Slot(None)
                    self._in_flight += 1
                    return Slot(self)
                if wait is None:
                    # Every slot is held by a request still in flight: the next answer
                    # says when one frees.
                    if on_full is not None and not told:
                        told = True
                        on_full(self._in_flight)
                    self._changed.wait()
                    figure.waited += max(0.0, self._clock() - now)
                    continue
            wait = max(wait, _MIN_SLEEP)
            figure.waited += wait
            if on_wait is not None and wait >= NOTICE_AFTER:
                on_wait(wait)
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
        if self.limit <= 0:
            return 0.0
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

    def acquire(self) -> Slot:
        return self.shared.acquire(self)

    @property
    def taken(self) -> int:
        return self.shared.taken

    def took(self) -> None:
        self.shared.took()

    def push_back(self, seconds: float) -> None:
        self.shared.push_back(seconds)
