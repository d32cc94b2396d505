"""Native Windows (not WSL), shown on Linux: the real `python -m reconciler` in a Python
whose POSIX-only modules and functions are removed as Windows' lacks them, and whose
os.kill is Windows' (the `windows` fixture, tests/windows.py)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.windows import WindowsPython

EXAMPLE = Path(__file__).resolve().parents[2] / "manifests"


def _last_pid() -> int:
    """The pid of a process that has ended (and been waited for)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_the_simulation_lacks_what_windows_lacks(windows: WindowsPython, tmp_path):
    # Without these, every test here would pass on Linux's own functions.
    probe = (
        "import os, signal\n"
        "try:\n    import fcntl\nexcept ImportError:\n    print('no fcntl')\n"
        "print(hasattr(os, 'getuid'), hasattr(os, 'fchmod'), hasattr(signal, 'SIGHUP'))\n"
        f"try:\n    os.kill({_last_pid()}, 0)\nexcept OSError as e:\n    print(e.winerror)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], env=windows.env(), capture_output=True, text=True
    )
    assert done.stdout.split("\n")[:3] == ["no fcntl", "False False False", "87"], done.stderr


def test_the_quickstart_validates_plans_and_applies_on_windows(windows: WindowsPython, tmp_path):
    # Every command ended in 'internal error: AttributeError: module os has no attribute
    # geteuid' (the check of the temporary directory's owner), validate included.
    shutil.copytree(EXAMPLE, tmp_path / "manifests")
    state = tmp_path / "state"
    done = windows.run("validate", "manifests", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    done = windows.run("plan", "manifests", "--state-dir", state, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    done = windows.run("apply", "manifests", "--yes", "--state-dir", state, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Apply complete: 2 lists created" in done.stdout
    done = windows.run(
        "plan", "manifests", "--detailed-exitcode", "--state-dir", state, cwd=tmp_path
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No changes" in done.stdout
