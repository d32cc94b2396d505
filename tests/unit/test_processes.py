"""Whether a process runs (reconciler.processes), asked of Linux; Windows' way is shown by
the end-to-end runs of tests/integration/test_windows.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from reconciler.processes import running
from tests.windows import WindowsPython


def test_this_process_runs_and_one_that_ended_does_not():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert running(os.getpid())
    assert not running(child.pid)


def test_a_pid_no_process_can_have_is_not_running():
    # A damaged lock or journal can name any number.
    assert not running(2**80)


def _asked_as_another_user(python: list[str], env: dict[str, str] | None = None) -> str:
    """What `running` says of pid 1 (init, root's) asked by a process of another user: as
    root, the child drops to nobody after importing reconciler (which reads no file after)."""
    drop = (
        "import ctypes; libc = ctypes.CDLL(None); assert libc.setgid(65534) == 0; "
        "assert libc.setuid(65534) == 0; "
        if os.geteuid() == 0
        else ""
    )
    code = f"from reconciler.processes import running; {drop}print(running(1))"
    return subprocess.run(
        [*python, "-c", code], capture_output=True, text=True, check=True, env=env
    ).stdout.strip()


def test_another_users_process_counts_as_running():
    # Signal 0 to it is refused (EPERM), which says it exists: a lock or a temporary
    # directory it holds must not be taken from it.
    assert _asked_as_another_user([sys.executable]) == "True"


def _on_windows(tmp_path: Path, code: str) -> str:
    windows = WindowsPython(tmp_path / "windows-python")
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=windows.env()
    ).stdout.strip()


def test_windows_is_asked_through_its_api(tmp_path):
    """On Windows (tests/windows.py), OpenProcess and a wait of no time answer: this
    process and a live one run, an ended one and a pid no process can have do not."""
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        said = _on_windows(
            tmp_path,
            "import os; from reconciler.processes import running; "
            f"print([running(p) for p in (os.getpid(), {live.pid}, {ended.pid}, 0, 2**80)])",
        )
    finally:
        live.kill()
        live.wait()
    assert said == "[True, True, False, False, False]"


def test_another_users_process_counts_as_running_on_windows(tmp_path):
    # OpenProcess answers 'access denied' for an elevated process's, a service's: it exists.
    windows = WindowsPython(tmp_path / "windows-python")
    assert _asked_as_another_user([sys.executable], env=windows.env()) == "True"
