"""Whether a process is still running, asked without touching it, on POSIX and on Windows.

The apply lock judged by its text, the note of an apply that never finished and the sweep
of a killed run's temporary directories each ask whether the process that wrote them has
ended. POSIX's answer is signal 0, which is delivered to nothing. Windows has no such
signal: its CTRL_C_EVENT is 0, so there `os.kill(pid, 0)` sends Ctrl-C to every process of
the console (this one too: an apply interrupted itself on meeting another's lock) or,
for a pid that leads no console group, fails with WinError 87, which a lock took for a
state directory it could not write. Windows is asked through `_winapi`, the module
subprocess uses there: the process is opened for waiting only and waited on for no time.
"""

from __future__ import annotations

import importlib
import os
from typing import Any


def _windows_api() -> Any:
    try:
        return importlib.import_module("_winapi")  # Windows only
    except ImportError:
        return None


_winapi: Any = _windows_api()

# From the Windows SDK (winnt.h, winbase.h, winerror.h); `_winapi` does not name them all.
SYNCHRONIZE = 0x00100000  # the right to wait on the process: all that is asked
WAIT_TIMEOUT = 0x102  # the wait ran out: the process has not ended
ERROR_INVALID_PARAMETER = 87  # OpenProcess of a pid no process has


def running(pid: int) -> bool:
    """Whether a process with id `pid` runs on this machine. One that cannot be asked about
    (another user's, a protected one) counts as running: callers keep what it may own."""
    if _winapi is not None:
        return _running_on_windows(pid)
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # no such process, or no such pid at all
        return False
    except OSError:  # PermissionError: another user's process, alive all the same
        return True
    return True


def _running_on_windows(pid: int) -> bool:
    try:
        handle = _winapi.OpenProcess(SYNCHRONIZE, False, pid)
    except OverflowError:
        return False  # a number no pid can be
    except OSError as exc:
        # Access denied (a service's, an elevated process's) means it exists.
        return getattr(exc, "winerror", None) != ERROR_INVALID_PARAMETER
    try:
        # A process that has ended but whose handle someone still holds answers at once.
        return bool(_winapi.WaitForSingleObject(handle, 0) == WAIT_TIMEOUT)
    finally:
        _winapi.CloseHandle(handle)
