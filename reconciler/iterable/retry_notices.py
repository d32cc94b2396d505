"""How a destination's retries are said on stderr without flooding a CI log.

Every retry used to print its own line: a 10M-member apply (10,000 requests) against an
Iterable failing 30% of them printed about 3,000 lines, burying the plan, the report and
the one line that mattered. A person reading a GitHub Actions log wants to see that
requests are failing and how (the first few, whole), then that it goes on and how much,
without scrolling: so the first LISTED retries of a destination are said as before, then
one line says further retries are counted, then a line at most every SUMMARY_PERIOD
seconds counts them by reason, and the last count is said when the client closes.
RECONCILER_LOG=requests (`every`) says every retry, as it asks for every request.

Long waits for a rate limit are said the same way (WaitNotices): at a slow pace learnt
from 429s every request waits 5 s or more, and a line each was a line per request.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import ClassVar

from reconciler.progress import duration
from reconciler.words import quantity

LISTED = 20  # retry lines said whole, per destination
WAITS_LISTED = 10  # rate-limit wait lines said whole, per destination
SUMMARY_PERIOD = 60.0  # seconds between the lines that count the others ("a minute")
_REASONS_SHOWN = 3  # the commonest reasons a count names; the rest are "other"


class RetryNotices:
    """The retry lines of one client (one destination), thread-safe: writers retry from a
    thread pool. `say` prints a line; `clock` is the client's (seconds); `listed`, the
    lines said whole (None: the kind's own, `LISTED_FIRST`)."""

    LISTED_FIRST: ClassVar[int] = LISTED

    def __init__(
        self,
        say: Callable[[str], None],
        clock: Callable[[], float],
        *,
        every: bool = False,
        listed: int | None = None,
    ) -> None:
        # What the lines count: the reason a retry happened, or what a wait waits for.
        self._say = say
        self._clock = clock
        self._every = every
        self._listed = self.LISTED_FIRST if listed is None else listed
        self._lock = threading.Lock()
        self._said = 0
        self._held: Counter[str] = Counter()  # reasons of retries not said since the last count
        self._since = 0.0  # when the first of those happened
        self.unlisted = 0  # retries counted and not said, in all

    def retry(self, line: str, reason: str) -> None:
        """Say `line` (a retry and its `reason`), or count it once LISTED have been said."""
        with self._lock:
            lines = self._take(line, reason)
        for text in lines:
            self._say(text)

    def close(self) -> None:
        """Say the retries counted since the last count line, if any."""
        with self._lock:
            lines = [self._count_line()] if self._held else []
        for text in lines:
            self._say(text)

    def _take(self, line: str, reason: str) -> list[str]:
        if self._every or self._said < self._listed:
            self._said += 1
            if self._every or self._said < self._listed:
                return [line]
            return [line, self._further()]
        now = self._clock()
        if not self._held:
            self._since = now
        self._held[reason] += 1
        self.unlisted += 1
        if now - self._since >= SUMMARY_PERIOD:
            return [self._count_line()]
        return []

    def _further(self) -> str:
        return (
            "further retries are counted, not listed: a line at most once a minute, "
            "and one at the end, says how many and why (RECONCILER_LOG=requests lists each)"
        )

    def _count_line(self) -> str:
        """`212 more retries in 1 min 00 s, not listed: HTTP 503 (200), timed out (12)`;
        the counts start again."""
        total = sum(self._held.values())
        common = self._held.most_common(_REASONS_SHOWN)
        parts = [f"{reason} ({n:,})" for reason, n in common]
        other = total - sum(n for _reason, n in common)
        if other:
            parts.append(f"other ({other:,})")
        span = duration(max(0.0, self._clock() - self._since))
        self._held.clear()
        return f"{self._counted(total)} in {span}, not listed: " + ", ".join(parts)

    def _counted(self, total: int) -> str:
        return quantity(total, "more retry", "more retries")


class WaitNotices(RetryNotices):
    """The lines of one client's long waits for a rate limit (5 s or more), as retries':
    the first WAITS_LISTED said, the rest counted by what they waited for
    (`retry(line, what)`)."""

    LISTED_FIRST = WAITS_LISTED

    def _further(self) -> str:
        return (
            "further waits for Iterable's rate limit are counted, not listed: a line at "
            "most once a minute, and one at the end, says how many and on what "
            "(RECONCILER_LOG=requests lists each)"
        )

    def _counted(self, total: int) -> str:
        return quantity(
            total,
            "more wait for Iterable's rate limit",
            "more waits for Iterable's rate limit",
        )
