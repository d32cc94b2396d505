"""Thread pools for reads that a stopped run does not wait for."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager


@contextmanager
def reading_pool(workers: int, prefix: str = "") -> Iterator[ThreadPoolExecutor]:
    """A ThreadPoolExecutor that, on Ctrl-C, drops the reads not started and leaves those
    in flight to end with the process instead of waiting for them: one getUsers of a big
    list can stream for over an hour, and `with ThreadPoolExecutor()` would hold Ctrl-C
    until it had. The CLI then ends the process at once (cli.main), so the abandoned
    threads cannot hold it either. Any other way out waits for the reads, as `with` does
    (reads told to stop by their own flag end at their next chunk)."""
    pool = ThreadPoolExecutor(workers, prefix)
    abandon = False
    try:
        yield pool
    except KeyboardInterrupt:
        abandon = True
        raise
    finally:
        pool.shutdown(wait=not abandon, cancel_futures=abandon)
