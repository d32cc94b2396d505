"""Thread pools for reads that a stopped run does not wait for, and groups of reads that
stop together."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

from reconciler.errors import LiveStateError

K = TypeVar("K")
T = TypeVar("T")
P = ParamSpec("P")

# What a stopped run is asked with: Ctrl-C, a cancelled CI job's SIGTERM, a closed
# terminal's SIGHUP (Windows has neither the last nor per-thread masks).
_STOP_SIGNALS = frozenset(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


@contextmanager
def stop_signals_blocked() -> Iterator[None]:
    """The stop signals blocked in the calling thread for the block, then as before. A
    thread started meanwhile starts with them blocked (it inherits the mask of the thread
    starting it): so are ours (start_thread, thread_pool) and DuckDB's workers, started
    when a connection opens. A signal sent meanwhile waits, and is acted on as the block
    ends."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = _block_stop_signals()
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _block_stop_signals() -> set[int | signal.Signals]:
    """Block the stop signals in the calling thread; the mask before, to restore."""
    # Read before blocking: pthread_sigmask runs the handler of a signal that has just
    # come, and a KeyboardInterrupt raised by the call that blocked them left them blocked
    # in this thread for good.
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, ())
    try:
        signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    except BaseException:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        raise
    return previous


class StopSignalsHeldLock:
    """A reentrant lock (as threading.RLock: acquire, release, `with`) that, held by the
    main thread, holds the stop signals back until its last release, when their handler
    runs. Python runs a handler in the main thread between any two of its instructions,
    whatever that thread holds: a second Ctrl-C during apply came as the first one's
    message was being written (rich's console lock held), and its last words waited for
    the progress bars' lock, held by rich's refresh thread as it waited for the console's:
    the process hung, its terminal's cursor hidden, until killed. Rich's locks are these
    (progress.hold_stop_signals), so no handler runs while the main thread holds one.

    Other threads are left as they are: they never run a handler, and ours block the stop
    signals from their start (start_thread), which is also what keeps a signal pending,
    not taken by another thread, while the main thread blocks it."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._holds = 0  # the main thread's, nested (only the main thread changes it)
        self._mask: set[int | signal.Signals] = set()  # the main thread's mask before its first

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if not _holds_signals():
            return self._lock.acquire(blocking, timeout)
        previous = _block_stop_signals() if self._holds == 0 else None
        if not self._lock.acquire(blocking, timeout):
            if previous is not None:
                signal.pthread_sigmask(signal.SIG_SETMASK, previous)
            return False
        if previous is not None:
            self._mask = previous
        self._holds += 1
        return True

    def release(self) -> None:
        if not _holds_signals():
            self._lock.release()
            return
        self._lock.release()
        self._holds -= 1
        if self._holds == 0:
            # Released first: a handler held back (which may print) runs here.
            signal.pthread_sigmask(signal.SIG_SETMASK, self._mask)

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _holds_signals() -> bool:
    return hasattr(signal, "pthread_sigmask") and threading.current_thread() is (
        threading.main_thread()
    )


def start_thread(thread: threading.Thread) -> None:
    """Start `thread` with Ctrl-C, SIGTERM and SIGHUP blocked from its first instruction.
    The kernel hands a signal sent to the process to any thread not blocking it (to the
    main thread first, unless that blocks it: glibc blocks every signal in a thread while
    it starts another), and Python runs the handler only once the main thread runs Python
    again, which a main thread waiting for a pool's results does not do until the wait
    ends. Blocked by the new thread itself as its first step, a Ctrl-C that came as it
    started was still taken by it: a plan went on retrying 503s 20 s after Ctrl-C. Started
    blocked, it leaves every stop signal to the main thread."""
    with stop_signals_blocked():
        thread.start()


class _Pool(ThreadPoolExecutor):
    """A ThreadPoolExecutor whose threads start as start_thread starts one (a pool starts
    them as work is submitted)."""

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        with stop_signals_blocked():
            return super().submit(fn, *args, **kwargs)


def thread_pool(workers: int, prefix: str = "") -> ThreadPoolExecutor:
    """A ThreadPoolExecutor of `workers` threads that leave the stop signals to the main
    thread (start_thread)."""
    return _Pool(workers, prefix)


@contextmanager
def reading_pool(workers: int, prefix: str = "") -> Iterator[ThreadPoolExecutor]:
    """A ThreadPoolExecutor that, on Ctrl-C, drops the reads not started and leaves those
    in flight to end with the process instead of waiting for them: one getUsers of a big
    list can stream for over an hour, and `with ThreadPoolExecutor()` would hold Ctrl-C
    until it had. The CLI then ends the process at once (cli.main), so the abandoned
    threads cannot hold it either. Any other way out waits for the reads, as `with` does
    (reads told to stop by their own flag end at their next chunk)."""
    pool = thread_pool(workers, prefix)
    abandon = False
    try:
        yield pool
    except KeyboardInterrupt:
        abandon = True
        raise
    finally:
        pool.shutdown(wait=not abandon, cancel_futures=abandon)


class ReadGroup:
    """Reads made together (a destination's lists, one after the other on a pool) that
    stop together once one of them fails in a way that ends them all (`gather`): the
    others were read to their end first, at 5 getUsers a minute, each streaming for
    minutes, for a command that then failed. A read looks at `check` before it starts,
    and its progress (`watching`) raises at its next chunk once the group has stopped."""

    def __init__(self) -> None:
        self.stopped = threading.Event()

    def check(self) -> None:
        if self.stopped.is_set():
            raise LiveStateError("the read was abandoned: another read failed")

    def watching(self, advance: Callable[[int], None]) -> Callable[[int], None]:
        def on_lines(n: int) -> None:
            self.check()
            advance(n)

        return on_lines

    def gather(
        self,
        futures: Mapping[K, Future[T]],
        ends_all: Callable[[Exception], bool],
        on_stop: Callable[[], None] | None = None,
    ) -> dict[K, T | Exception]:
        """Each read's result, or its error, in the order of `futures`, once all have
        ended; but the first error `ends_all` is true of stops the group (the reads not
        started are dropped, `on_stop` is called) and is raised as soon as it comes."""
        keys = {future: key for key, future in futures.items()}
        outcomes: dict[K, T | Exception] = {}
        for future in as_completed(keys):
            try:
                outcomes[keys[future]] = future.result()
            except Exception as exc:
                outcomes[keys[future]] = exc
                if ends_all(exc):
                    self.stopped.set()
                    for other in futures.values():
                        other.cancel()
                    if on_stop is not None:
                        on_stop()
                    raise
        return {key: outcomes[key] for key in futures}  # in the order they were given
