"""Thread pools for reads that a stopped run does not wait for, and groups of reads that
stop together."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from typing import Any, TypeVar

from reconciler.errors import LiveStateError

K = TypeVar("K")
T = TypeVar("T")

# What a stopped run is asked with: Ctrl-C, a cancelled CI job's SIGTERM, a closed
# terminal's SIGHUP (Windows has neither the last nor per-thread masks).
_STOP_SIGNALS = frozenset(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


def block_stop_signals() -> None:
    """Keep Ctrl-C, SIGTERM and SIGHUP off the calling thread (one of ours, never the main
    one). The kernel hands a signal sent to the process to any thread not blocking it, and
    Python runs the handler only once the main thread runs Python again, which a main
    thread waiting for a pool's results does not do until the wait ends: a Ctrl-C handed to
    a reading thread waited for that read's retries (minutes of 503s) before the plan
    stopped. Blocked here, it goes to the main thread, whose wait it interrupts."""
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)


@contextmanager
def stop_signals_blocked() -> Iterator[None]:
    """The stop signals blocked in the calling thread for the block, then as before: for
    starting threads that are not ours (DuckDB starts its workers when a connection opens,
    with the mask of the thread opening it). A signal sent meanwhile waits, and is acted
    on as the block ends."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def without_stop_signals(target: Callable[..., Any]) -> Callable[..., Any]:
    """`target`, run with the stop signals blocked (block_stop_signals): for a thread's."""

    def run(*args: Any, **kwargs: Any) -> Any:
        block_stop_signals()
        return target(*args, **kwargs)

    return run


@contextmanager
def reading_pool(workers: int, prefix: str = "") -> Iterator[ThreadPoolExecutor]:
    """A ThreadPoolExecutor that, on Ctrl-C, drops the reads not started and leaves those
    in flight to end with the process instead of waiting for them: one getUsers of a big
    list can stream for over an hour, and `with ThreadPoolExecutor()` would hold Ctrl-C
    until it had. The CLI then ends the process at once (cli.main), so the abandoned
    threads cannot hold it either. Any other way out waits for the reads, as `with` does
    (reads told to stop by their own flag end at their next chunk)."""
    pool = ThreadPoolExecutor(workers, prefix, initializer=block_stop_signals)
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
