"""How long a manifest's query may run, and the guard that stops it then or on a signal.

A manifest's query is untrusted and `validate` runs it in CI: without a bound, a query over
range(10^13) in DuckDB, a recursive CTE in SQLite or `pg_sleep` in PostgreSQL hangs a
pre-commit hook or a CI job for hours. Each run of one is watched by a `QueryGuard`, which
calls the driver's own interrupt (DuckDB's and SQLite's `interrupt`, PostgreSQL's cancel).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import threading
import time
from collections.abc import Callable, Mapping

from reconciler.env_numbers import SECONDS_ABOVE_0, env_float
from reconciler.errors import SourceError
from reconciler.threads import start_thread

# A manifest's query may run at most this long (RECONCILER_QUERY_TIMEOUT): a query over
# range(10^13) must not hang `validate` in a pre-commit hook or a CI job for hours.
QUERY_TIMEOUT_VARIABLE = "RECONCILER_QUERY_TIMEOUT"
DEFAULT_QUERY_TIMEOUT = 300.0


class QueryTimedOut(SourceError):
    """A manifest's query ran past RECONCILER_QUERY_TIMEOUT (running it again would too)."""


def query_timeout(environ: Mapping[str, str] | None = None) -> float:
    """Seconds a manifest's query may run, from RECONCILER_QUERY_TIMEOUT."""
    env = os.environ if environ is None else environ
    return env_float(env, QUERY_TIMEOUT_VARIABLE, DEFAULT_QUERY_TIMEOUT, SECONDS_ABOVE_0)


def timed_out(declared_at: object, subject: str) -> QueryTimedOut:
    """The error for a query stopped at the time limit."""
    return QueryTimedOut(
        f"{declared_at}: cannot read {subject}: it ran longer than {query_timeout():g} s, the "
        f"limit for a manifest's query (set {QUERY_TIMEOUT_VARIABLE} to allow longer)"
    )


class QueryGuard:
    """Calls `interrupt` once `seconds` have passed, or once Ctrl-C, SIGTERM, SIGHUP or
    (Windows) SIGBREAK arrives, and again every tenth of a second until stopped: an interrupt
    that arrives between two statements (DESCRIBE, then the SELECT) is lost, and the next would
    run unbounded. Stopping waits for an interrupt being sent, so none lands on a statement
    after `stop` (threading.Timer's cancel() cannot stop a callback that has started).

    Signals: Python runs its handlers only between bytecodes, so while the main thread waits
    in a query (`SELECT count(*)` over a large source) Ctrl-C did nothing until the time
    limit, five minutes by default. The signal's number also goes to a wakeup descriptor
    (signal.set_wakeup_fd, main thread only), which this guard's thread watches."""

    REPEAT = 0.1  # seconds between interrupts past the limit
    # The longest single wait for the deadline or a signal; a longer one is waited in
    # turns. select() refuses a wait beyond about 9.2e9 s with OverflowError, which killed
    # this thread under RECONCILER_QUERY_TIMEOUT=1e10: neither limit nor signals then
    # stopped the query.
    LONGEST_WAIT = 3600.0
    # Seconds between two looks at `over` (a directory's size): a query writing 130 MB/s
    # passes its bound by at most a few tens of megabytes.
    CHECK = 0.25
    # What stops a run as Ctrl-C does (apply/interrupt.py SIGNALS; cli.main).
    WATCHED = frozenset(
        int(getattr(signal, name))
        for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGBREAK")
        if hasattr(signal, name)
    )

    def __init__(
        self,
        seconds: float,
        interrupt: Callable[[], None],
        over: Callable[[], bool] | None = None,
    ) -> None:
        """`over`: looked at every CHECK seconds; once true, the query is interrupted too
        (`overflowed`)."""
        self._interrupt = interrupt
        self._over = over
        self.overflowed = False
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self.signalled = False
        self.expired = False  # the interrupts are the time limit's, not a signal's
        self._wake, self._waker = socket.socketpair()
        self._waker.setblocking(False)
        self._previous: int | None = None
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.set_wakeup_fd(self._waker.fileno(), warn_on_full_buffer=False)
        self._thread = threading.Thread(
            target=self._run, args=(time.monotonic() + seconds,), daemon=True
        )
        start_thread(self._thread)

    def _run(self, deadline: float) -> None:
        interrupting = False
        while True:
            left = max(0.0, deadline - time.monotonic())
            wait = self.REPEAT if interrupting else min(left, self.LONGEST_WAIT)
            if self._over is not None and not interrupting:
                wait = min(wait, self.CHECK)
            ready, _, _ = select.select([self._wake], [], [], wait)
            if self._stopped.is_set():
                return
            if ready:
                received = self._wake.recv(64)
                if not self.WATCHED.intersection(received):
                    continue  # another signal (or none): the deadline still holds
                self.signalled = True
            elif not interrupting and self._over is not None and self._over():
                self.overflowed = True
            elif not interrupting and left > wait:
                continue  # one turn of a long wait, the deadline not reached yet
            elif not self.signalled and not self.overflowed:
                self.expired = True
            interrupting = True
            with self._lock:
                if self._stopped.is_set():
                    return
                self._interrupt()

    def stop(self) -> None:
        with self._lock:
            if self._stopped.is_set():
                return
            self._stopped.set()
        if self._previous is not None:
            signal.set_wakeup_fd(self._previous)
        with contextlib.suppress(OSError):
            self._waker.send(b"\0")  # wakes the thread to see it is stopped
        self._thread.join()
        # A signal's number is written before any handler runs: one the driver acted on
        # first (DuckDB raising "Query interrupted") may still be unread.
        self._wake.setblocking(False)
        with contextlib.suppress(OSError):
            while received := self._wake.recv(64):
                self.signalled = self.signalled or bool(self.WATCHED.intersection(received))
        self._wake.close()
        self._waker.close()
