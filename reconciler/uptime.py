"""A monotonic clock that keeps counting while the machine sleeps, for how old a read is.

time.monotonic stops while the machine is suspended (Linux's CLOCK_MONOTONIC, macOS's
mach_absolute_time), so a read made before a laptop's lid was closed for an hour was a
moment old after it opened: the plan's user export answered an apply's channel removals
as fresh (apply/channel_profiles.py) after the confirmation waited out a night's sleep.
The wall clock counts the sleep but moves with every step of it (NTP, a VM's clock
corrected). Linux's CLOCK_BOOTTIME is CLOCK_MONOTONIC plus the time suspended; macOS's
CLOCK_MONOTONIC (clock_gettime(3)) counts sleep. Elsewhere (Windows: GetTickCount64 to
Python 3.12, which counts it) time.monotonic is used."""

from __future__ import annotations

import sys
import time


def _clock_id() -> int | None:
    """The clock to read, when this machine's kernel answers it: Python names
    CLOCK_BOOTTIME wherever its build's headers did, but a kernel before Linux 2.6.39
    refuses it (EINVAL), which made every plan's first read of it an internal error."""
    if sys.platform.startswith("linux"):
        clock = getattr(time, "CLOCK_BOOTTIME", None)
    elif sys.platform == "darwin":
        clock = getattr(time, "CLOCK_MONOTONIC", None)
    else:
        return None
    if clock is None:
        return None
    try:
        time.clock_gettime(clock)
    except OSError:
        return None
    return clock


_CLOCK_ID = _clock_id()


def uptime() -> float:
    """Seconds on a clock that never steps and counts the machine's sleep; only the
    difference between two readings means anything."""
    if _CLOCK_ID is None:
        return time.monotonic()
    return time.clock_gettime(_CLOCK_ID)
