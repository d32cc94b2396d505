"""Whether a process runs (reconciler.processes), asked of Linux; Windows' way is shown by
the end-to-end runs of tests/integration/test_windows.py."""

from __future__ import annotations

import os
import subprocess
import sys

from reconciler.processes import running


def test_this_process_runs_and_one_that_ended_does_not():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert running(os.getpid())
    assert not running(child.pid)


def test_a_pid_no_process_can_have_is_not_running():
    # A damaged lock or journal can name any number.
    assert not running(2**80)
