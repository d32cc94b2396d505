"""Thread pools for reads that a stopped run does not wait for."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager


@contextmanager
def reading_pool(workers: int, prefix: str = "") -> Iterator[ThreadPoolExecutor]:
    """A ThreadPoolExecutor that, when its block raises (Ctrl-C above all), drops the reads
    not started and leaves those in flight to end with the process instead of waiting for
    them: one getUsers of a big list can stream for over an hour, and `with
    ThreadPoolExecutor()` would hold Ctrl-C until it had. The CLI then ends the process
    at once (cli.main), so the abandoned threads cannot hold it either."""
    pool = ThreadPoolExecutor(workers, prefix)
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
