"""Client-side pacing, so we stay inside Iterable's per-project limits instead of
discovering them through 429s (a 429 on a 5-per-minute endpoint costs up to a minute)."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable


class SlidingWindow:
    """At most `limit` acquisitions in any `window` seconds (the shape Iterable enforces)."""

    def __init__(
        self,
        limit: float,
        window: float,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
    ):
        self.limit = int(limit)
        # Paced on our clock, judged on Iterable's: a request's travel time varies, so two
        # sent exactly one window apart can arrive a little less than that apart and the
        # second is refused. A margin of up to 50 ms costs at most 5% of the rate and
        # saves the retries (measured with bench/plan_apply.py: 9 429s per 100 requests
        # at 20/s without it).
        self.window = window + min(0.05, window * 0.05)
        self._clock = clock
        self._sleep = sleep
        self._stamps: deque[float] = deque()
        self._lock = threading.Lock()
        self.waited = 0.0  # total seconds spent waiting, reported as a figure

    def acquire(self) -> None:
        if self.limit <= 0:
            return
        while True:
            with self._lock:
                now = self._clock()
                # The tolerance keeps float rounding (1000.0 + 1.05 - 1000.0 < 1.05) from
                # leaving a wait too small to move the clock, which would spin forever.
                while self._stamps and now - self._stamps[0] >= self.window - 1e-9:
                    self._stamps.popleft()
                if len(self._stamps) < self.limit:
                    self._stamps.append(now)
                    return
                wait = self.window - (now - self._stamps[0])
            self.waited += wait
            self._sleep(wait)

    def push_back(self, seconds: float) -> None:
        """After a 429, treat the window as full for `seconds` (the server knows better)."""
        with self._lock:
            now = self._clock()
            until = now + seconds - self.window
            self._stamps = deque([until] * max(self.limit, 1))
