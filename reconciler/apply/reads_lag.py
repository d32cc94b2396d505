"""The wait at the end of an apply for Iterable's reads to show what it wrote.

Iterable's reads lag its writes by up to about a minute. A plan from this checkout waits
that out by the run journal (cli/session.py), but a run elsewhere has no journal: a CI
runner is fresh each time, and the merge's apply, the scheduled sync queued behind it and
the drift check each plan on another. Started within the lag, such a plan reads Iterable
without this apply's changes and plans them again: a sync resends them and reports them
twice, one whose removals the apply made by override (--allow-removals) is blocked by the
same guard, and the drift check opens an issue for changes already made. The apply knows
when it last wrote, so it waits (while it still holds its CI job, which the drift check
sees as a run in progress) until the lag has passed. That is timed by the monotonic clock:
by the wall clock, one stepped back during the run (an NTP step, a VM's clock corrected) made
the wait as long as the step, an hour for an hour, and one stepped forward skipped it.

`apply --no-read-lag-wait` skips that wait (a pipeline where no other run follows within
the lag pays it on every merge for nothing), saying what it leaves: a plan from this
checkout still waits by the journal, one elsewhere may plan the changes again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from reconciler.apply.interrupt import signal_name, stop_on_interrupt


@dataclass(frozen=True)
class Lagging:
    """What an apply wrote that Iterable's reads may not show yet."""

    until: float  # time.monotonic(): when the reads show every write of the run
    destinations: tuple[str, ...]  # those it wrote to whose reads lag
    lag: float  # the longest of their lags (settings.read_lag)


def lagging(last_write_at: Mapping[str, float], lags: Mapping[str, float]) -> Lagging | None:
    """By when Iterable's reads show every write of the run (`last_write_at`: when its last
    request to each destination ended), by the lag of each destination (`lags`: those whose
    reads lag); None when it wrote to none of them."""
    written = tuple(sorted(name for name in last_write_at if name in lags))
    if not written:
        return None
    until = max(last_write_at[name] + lags[name] for name in written)
    return Lagging(until, written, max(lags[name] for name in written))


def wait_for_reads(
    lagging: Lagging, say: Callable[[str], None], clock: Callable[[], float] = time.monotonic
) -> None:
    """Wait until Iterable's reads show the run's writes, saying why; a signal (Ctrl-C,
    SIGTERM) ends the wait, saying what that leaves, and never the apply's outcome: it is
    over."""
    until = lagging.until
    left = until - clock()
    if left < 0.05:
        return  # what is left rounds to nothing: 'Waiting 0.0 s' would say nothing
    names = ", ".join(repr(name) for name in lagging.destinations)
    say(
        f"Waiting {left:.1f} s before ending, for Iterable's reads to show this apply's "
        f"changes to {names} (they lag writes by up to {lagging.lag:g} s, "
        "RECONCILER_READ_LAG): a plan started before then on another machine or runner (a "
        "scheduled sync, the drift check) would plan them again. The apply is over; Ctrl-C "
        "ends the wait."
    )

    def stopped(signum: int) -> None:
        remaining = max(0.0, until - clock())
        say(
            f"{signal_name(signum)}: stopped waiting; the apply is over. A plan started "
            f"elsewhere in the next {remaining:.0f} s may plan its changes again."
        )

    with stop_on_interrupt(stopped, lambda _signum: None) as stop:
        _sleep_until(until, stop, clock)


def skip_wait(
    lagging: Lagging, say: Callable[[str], None], clock: Callable[[], float] = time.monotonic
) -> None:
    """Say what not waiting for Iterable's reads (--no-read-lag-wait) leaves: nothing when
    the lag has passed already."""
    left = lagging.until - clock()
    if left < 0.05:
        return
    names = ", ".join(repr(name) for name in lagging.destinations)
    say(
        f"Not waiting for Iterable's reads to show this apply's changes to {names} "
        f"(--no-read-lag-wait): a plan started elsewhere in the next {left:.0f} s (a "
        "scheduled sync, the drift check) may plan them again; one from this checkout "
        "waits for them by the run journal."
    )


def _sleep_until(until: float, stop: threading.Event, clock: Callable[[], float]) -> None:
    while not stop.is_set():
        left = until - clock()
        if left <= 0:
            return
        stop.wait(min(left, 1.0))  # in steps: a signal handler runs between them
