"""Ctrl-C during apply: finish the requests in flight, start no more.

A KeyboardInterrupt raised in the middle of a request leaves it unknown whether Iterable
took it; a flag checked between requests stops cleanly instead. A second Ctrl-C is for
when even that is too long to wait (a request deep in its retries): `on_second` decides.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType


@contextmanager
def stop_on_interrupt(
    on_first: Callable[[], None], on_second: Callable[[], None]
) -> Iterator[threading.Event]:
    """Yield an event that the first SIGINT sets (then calls `on_first`) instead of raising.
    The second calls `on_second`, then raises KeyboardInterrupt if that returns.

    Signal handlers can only be installed from the main thread; elsewhere the event is
    returned and never set, and Ctrl-C keeps its usual meaning."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous is None:  # installed outside Python; the usual one is the safe fallback
        previous = signal.default_int_handler

    def handler(signum: int, frame: FrameType | None) -> None:
        if not stop.is_set():
            stop.set()
            on_first()
            return
        on_second()
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, handler)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)
