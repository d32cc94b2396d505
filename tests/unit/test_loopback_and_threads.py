"""loopback.py (where a secret may go unlisted) and threads.py (a reading pool that Ctrl-C
does not wait for, while any other exit does, and threads that leave the stop signals to
the main thread)."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterable

import pytest

from reconciler.loopback import is_loopback
from reconciler.progress import heartbeat
from reconciler.threads import reading_pool, start_thread, stop_signals_blocked, thread_pool

needs_thread_masks = pytest.mark.skipif(
    not hasattr(signal, "pthread_sigmask"), reason="no per-thread signal masks (Windows)"
)
STOPS = {signal.SIGINT, signal.SIGTERM} | ({signal.SIGHUP} if hasattr(signal, "SIGHUP") else set())


def blocked_here() -> set[int]:
    return set(signal.pthread_sigmask(signal.SIG_BLOCK, []))


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


@needs_thread_masks
def test_reading_threads_leave_ctrl_c_to_the_main_thread() -> None:
    # The kernel hands a signal sent to the process to any thread that does not block it;
    # Python runs its handler only when the main thread runs again, and a main thread
    # waiting for a pool's results did not until a read handed the Ctrl-C had ended its
    # retries (a plan still retrying 503s 20 s after Ctrl-C, once in a CI run).
    main_before = blocked_here()
    with reading_pool(2, "test-read") as pool:
        in_workers = [pool.submit(blocked_here).result(timeout=30) for _ in range(2)]
    for mask in in_workers:
        assert mask >= STOPS
    # The main thread still takes them (the pool's set-up did not block them there).
    assert blocked_here() == main_before and not STOPS & main_before


@needs_thread_masks
def test_threads_start_with_ctrl_c_blocked_not_after_their_first_step() -> None:
    # Blocked by the thread itself as its first step (a pool's initializer), a Ctrl-C that
    # came while it started was taken by it: the kernel hands it to a thread not blocking
    # it when the main thread does (glibc blocks all signals in a thread starting
    # another), and the main thread, waiting for the pool's results, never ran its
    # handler. A plan went on retrying 503s 20 s after Ctrl-C (once in a CI run; 1 run in
    # 30 of that test under load). Each thread's mask is taken as it runs its first call.
    at_start: list[set[int]] = []

    def first_call(_frame: object, _event: str, _arg: object) -> None:
        at_start.append(blocked_here())
        sys.setprofile(None)

    threading.setprofile(first_call)
    try:
        with reading_pool(2, "test-read") as pool:
            pool.submit(blocked_here).result(timeout=30)
        with thread_pool(1) as pool:
            pool.submit(blocked_here).result(timeout=30)
        thread = threading.Thread(target=blocked_here)
        start_thread(thread)
        thread.join(30)
        with heartbeat():
            pass
    finally:
        threading.setprofile(None)  # type: ignore[arg-type]
    assert len(at_start) == 4
    for mask in at_start:
        assert mask >= STOPS
    assert not STOPS & blocked_here()


@needs_thread_masks
def test_a_ctrl_c_come_as_they_are_blocked_leaves_them_unblocked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # pthread_sigmask runs the handlers of signals that have come (CPython checks for them
    # once the mask is set): a Ctrl-C's KeyboardInterrupt, raised by the call blocking the
    # stop signals, left them blocked in the main thread for good.
    real = signal.pthread_sigmask

    def ctrl_c_as_they_are_blocked(how: int, mask: Iterable[int]) -> set[int]:
        previous = real(how, mask)
        if how == signal.SIG_BLOCK and set(mask) >= STOPS:
            raise KeyboardInterrupt
        return previous

    before = blocked_here()
    monkeypatch.setattr(signal, "pthread_sigmask", ctrl_c_as_they_are_blocked)
    with pytest.raises(KeyboardInterrupt), stop_signals_blocked():
        pass
    monkeypatch.undo()
    assert blocked_here() == before


def blocked_by_task(tid: object) -> set[int]:
    """The signals another running thread blocks, as Linux shows them (SigBlk)."""
    with open(f"/proc/self/task/{tid}/status") as status:
        line = next(x for x in status if x.startswith("SigBlk:"))
    bits = int(line.split()[1], 16)
    return {n for n in range(1, 65) if bits >> (n - 1) & 1}


@needs_thread_masks
def test_the_tools_other_threads_leave_ctrl_c_to_the_main_thread_too() -> None:
    seen: list[set[int]] = []
    thread = threading.Thread(target=lambda: seen.append(blocked_here()))
    start_thread(thread)
    thread.join(30)
    assert seen and seen[0] >= STOPS
    if not os.path.exists("/proc/self/task"):
        return
    # The progress heartbeat's thread, one of those started so, seen from outside.
    with heartbeat():
        ticker = next(t for t in threading.enumerate() if t.name == "reconciler-heartbeat")
        assert blocked_by_task(ticker.native_id) >= STOPS
    assert not STOPS & blocked_here()


@needs_thread_masks
@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="Linux's /proc shows threads")
def test_duckdbs_worker_threads_leave_ctrl_c_to_the_main_thread() -> None:
    # DuckDB starts its workers as a connection opens (and on SET threads), with the mask
    # of the thread opening it: a Ctrl-C handed to one of them waited as a reading
    # thread's did, for whatever the main thread was waiting on.
    from reconciler.duckdb_connect import connect, set_threads

    before = set(os.listdir("/proc/self/task"))
    connection = connect(config={"threads": 3})
    try:
        set_threads(connection, 8)  # as the members' workspace does
        started = set(os.listdir("/proc/self/task")) - before
        assert started  # DuckDB's workers
        for tid in started:
            assert blocked_by_task(tid) >= STOPS, tid
    finally:
        connection.close()
    assert not STOPS & blocked_here()


@needs_thread_masks
@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="Linux's /proc shows threads")
def test_the_progress_bars_refresh_thread_leaves_ctrl_c_to_the_main_thread() -> None:
    # rich redraws the bars from a thread of its own, started with them: on a terminal,
    # where Ctrl-C is pressed, for the whole of a plan's reads.
    from rich.console import Console

    from reconciler.progress import console_progress

    before = set(os.listdir("/proc/self/task"))
    console = Console(file=io.StringIO(), force_terminal=True, width=120)
    with console_progress(console, bars=True) as progress:
        progress.task("reading list 'vip'", total=10).advance(1)
        started = set(os.listdir("/proc/self/task")) - before
        assert started  # rich's refresh thread
        for tid in started:
            assert blocked_by_task(tid) >= STOPS, tid
    assert not STOPS & blocked_here()


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="Linux's /proc shows threads")
def test_a_ctrl_c_tests_failure_says_where_the_process_stood_with_it() -> None:
    # What the Ctrl-C tests say of a process that did not act on SIGINT: here one that
    # blocks it everywhere, so it waits, pending for the process.
    from tests.integration.reliability import signal_masks

    code = (
        "import os, signal, threading, time\n"
        "signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})\n"
        "threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n"
        "os.kill(os.getpid(), signal.SIGINT)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        said = signal_masks(proc.pid).splitlines()
    finally:
        proc.kill()
        proc.wait()
    assert said[0].startswith(f"thread {proc.pid} (main) ")  # then its state: S, R...
    assert said[0].endswith(": SIGINT blocked, pending for the process")
    assert len(said) == 2 and said[1].endswith(": SIGINT blocked")


# A second Ctrl-C that comes as the first one's message is being written, once rich's
# refresh thread has taken the bars' lock and waits for the console's, which the main
# thread holds mid-write (the order the child below waits for).
SECOND_CTRL_C_MID_WRITE = """
import faulthandler, io, os, signal, sys, threading, time
from reconciler.apply.interrupt import stop_on_interrupt
from reconciler.cli import exits
from reconciler.progress import _SHOWN, console_progress

class Terminal(io.TextIOBase):
    armed = False
    def isatty(self):
        return True
    def write(self, text):
        if self.armed and threading.current_thread() is threading.main_thread():
            self.armed = False
            bars = _SHOWN[-1].live._lock
            while bars.acquire(blocking=False):  # until the refresh thread holds it
                bars.release()
                time.sleep(0.001)
            os.kill(os.getpid(), signal.SIGINT)
        return len(text)

faulthandler.dump_traceback_later(30, exit=True)  # where it hangs, if it does
terminal = exits.err.file = Terminal()

def first(_signum):
    terminal.armed = True
    exits.err.print("Interrupted (Ctrl-C again to stop at once)...")

def second(_signum):
    exits.err.print("Stopped at once.")
    print("ending", flush=True)
    exits.exit_now(130)

with console_progress(exits.err, bars=True) as progress:
    progress.task("adding members", 100).advance(1)
    with stop_on_interrupt(first, second):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(120)
"""


@needs_thread_masks
def test_a_second_ctrl_c_mid_message_ends_the_process_instead_of_hanging() -> None:
    # Python runs a handler in the main thread between any two instructions, whatever it
    # holds: the second Ctrl-C's handler, run as the first one's message was written
    # (the console's lock held), waited to end the bars for their lock, which rich's
    # refresh thread held as it waited for the console's. apply hung on a terminal, its
    # cursor hidden, until killed (test_interrupt's cursor test, 1 run in 3 under load).
    env = {**os.environ, "COLUMNS": "120", "TERM": "xterm-256color"}
    proc = subprocess.run(
        [sys.executable, "-c", SECOND_CTRL_C_MID_WRITE],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 130, proc.stderr
    assert proc.stdout == "ending\n"
