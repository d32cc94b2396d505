"""loopback.py (where a secret may go unlisted) and threads.py (a reading pool that Ctrl-C
does not wait for, while any other exit does)."""

from __future__ import annotations

import threading

import pytest

from reconciler.loopback import is_loopback
from reconciler.threads import reading_pool


def test_only_this_computers_addresses_are_loopback() -> None:
    for host in ("localhost", "127.0.0.1", "127.8.9.10", "::1"):
        assert is_loopback(host), host
    # A name is not resolved: it could say anything.
    for host in ("localhost.example.com", "LOCALHOST.", "10.0.0.1", "::", "", "[::1]"):
        assert not is_loopback(host), host


def test_ctrl_c_drops_reads_not_started_and_does_not_wait_for_one_in_flight() -> None:
    release = threading.Event()
    started = threading.Event()

    def long_read() -> str:
        started.set()
        release.wait(30)
        return "done"

    with pytest.raises(KeyboardInterrupt), reading_pool(1, "test-read") as pool:
        running = pool.submit(long_read)
        queued = pool.submit(lambda: "never")
        started.wait(30)
        raise KeyboardInterrupt
    # Out of the pool while the read still runs: it was not waited for.
    assert not running.done()
    assert queued.cancelled()
    release.set()
    assert running.result(timeout=30) == "done"


def test_any_other_exit_waits_for_the_reads() -> None:
    finished: list[str] = []

    def read() -> None:
        finished.append("read")

    with pytest.raises(ValueError), reading_pool(2) as pool:
        for _ in range(3):
            pool.submit(read)
        raise ValueError("a failure of the caller")
    assert finished == ["read"] * 3
