"""Ctrl-C (or SIGTERM) during apply: finish the requests in flight, start no more.

A KeyboardInterrupt raised in the middle of a request leaves it unknown whether Iterable
took it; a flag checked between requests stops cleanly instead. A second signal is for
when even that is too long to wait (a request deep in its retries): `on_second` decides.

SIGTERM is what stops a process that has no terminal: a cancelled GitHub Actions job
(SIGINT first, SIGTERM 7.5 s later, then SIGKILL), `docker stop`, Kubernetes, `timeout`.
Its default ends the process on the spot, with no run record, no journal end, the lock
left and members' files in the temporary directory; so it means what Ctrl-C means. So does
SIGHUP (a closed terminal or SSH session; some runners cancel with it), unless the process
was started to ignore it (`nohup`): a signal ignored when apply starts stays ignored.
On Windows, SIGBREAK: Ctrl-Break, a console window closed, and a cancelled job on a
Windows runner (Ctrl-C first, Ctrl-Break 7.5 s later), whose default too ends the process
on the spot.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

SIGNALS: tuple[int, ...] = (
    signal.SIGINT,
    signal.SIGTERM,
    # SIGHUP is POSIX's, SIGBREAK Windows'.
    *(getattr(signal, name) for name in ("SIGHUP", "SIGBREAK") if hasattr(signal, name)),
)


def signal_name(signum: int) -> str:
    if signum == signal.SIGINT:
        return "Ctrl-C"
    if signum == getattr(signal, "SIGBREAK", None):
        return "Ctrl-Break"
    return signal.Signals(signum).name


@contextmanager
def stop_on_interrupt(
    on_first: Callable[[int], None], on_second: Callable[[int], None]
) -> Iterator[threading.Event]:
    """Yield an event that the first SIGINT or SIGTERM sets (then calls `on_first` with the
    signal) instead of raising. The second calls `on_second`, then raises
    KeyboardInterrupt if that returns.

    Signal handlers can only be installed from the main thread; elsewhere the event is
    returned and never set, and Ctrl-C keeps its usual meaning."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if not stop.is_set():
            stop.set()
            on_first(signum)
            return
        on_second(signum)
        raise KeyboardInterrupt

    with _handling(handler):
        yield stop


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (and SIGHUP) raise KeyboardInterrupt, as Ctrl-C does, so that what runs on
    Ctrl-C (the run record, the lock's release, removing members' files) runs on them too."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    with _handling(handler, SIGNALS[1:]):
        yield


class AfterWork:
    """Signals around one apply, from its start to its report's end: as Ctrl-C means until
    `work_done()`; from then on, what remains is writing down what was done (the journal,
    the rejected members' file, the run record, the report), so the first signal says so
    and lets it be written, and only the next raises KeyboardInterrupt. A second Ctrl-C
    meant to stop the requests in flight that came just after the last one ended lost the
    report of a finished apply.

    The next is held until `recorded()` (the journal, the rejected members and the run
    record written), which raises it then: raised at once, it left the rejected members
    saved nowhere and a run record of a finished apply saying "interrupted", with no lists.
    Only the report, which they already hold, is lost to it."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self._say = say
        self._done = False
        self._told = False
        self._recorded = False
        self.stopped_by: str | None = None  # the signal that stops the report, for people

    def work_done(self) -> None:
        self._done = True

    @property
    def signalled(self) -> bool:
        """A signal came since the work ended: whoever sent it wants the run to end."""
        return self._told

    def recorded(self) -> None:
        """What the run did is written down: a signal held meanwhile raises now."""
        self._recorded = True
        if self.stopped_by is not None:
            raise KeyboardInterrupt

    def handler(self, signum: int, frame: FrameType | None) -> None:
        if not self._done:
            raise KeyboardInterrupt
        name = signal_name(signum)
        if not self._told:
            self._told = True
            self._say(
                f"{name}: the apply is over, writing down what it did ({name} again to stop "
                "without its report)..."
            )
            return
        if self.stopped_by is None:
            self.stopped_by = "a second Ctrl-C" if signum == signal.SIGINT else name
        if self._recorded:
            raise KeyboardInterrupt


@contextmanager
def report_after_work(say: Callable[[str], None]) -> Iterator[AfterWork]:
    """Handle every signal of SIGNALS with an AfterWork (which stop_on_interrupt, nested
    inside, gives back when it ends): Ctrl-C, SIGTERM and SIGHUP raise KeyboardInterrupt, as
    under terminate_as_interrupt, until its `work_done()`. A signal ignored at start stays
    ignored."""
    after = AfterWork(say)
    if threading.current_thread() is not threading.main_thread():
        yield after
        return
    # SIGINT ignored at start (`apply &` in a script) stays so outside stop_on_interrupt,
    # as it was under terminate_as_interrupt, which left SIGINT alone.
    with _handling(after.handler, keep_ignored=SIGNALS):
        yield after


@contextmanager
def _handling(
    handler: Any, signals: tuple[int, ...] = SIGNALS, keep_ignored: tuple[int, ...] = SIGNALS[1:]
) -> Iterator[None]:
    previous = {}
    for sig in signals:
        before = signal.getsignal(sig)
        if before is signal.SIG_IGN and sig in keep_ignored:
            continue  # started to ignore it (`nohup`): that choice stands
        if before is None:  # installed outside Python; the usual one is the safe fallback
            before = signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL
        previous[sig] = before
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, before in previous.items():
            signal.signal(sig, before)
