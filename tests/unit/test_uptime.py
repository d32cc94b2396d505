"""reconciler.uptime: the clock an export's age is read by."""

from __future__ import annotations

import errno
import sys
import time

import pytest

from reconciler import uptime as uptime_module


def test_a_kernel_refusing_the_clock_falls_back_to_the_monotonic_one(monkeypatch):
    # Python names CLOCK_BOOTTIME wherever its build's headers did; a kernel before Linux
    # 2.6.39 answers EINVAL, and every plan's first uptime() was an internal error.
    if not (sys.platform.startswith("linux") or sys.platform == "darwin"):
        pytest.skip("no clock_gettime clock is chosen here")
    readings = iter([5.0, 7.5])

    def refused(clock: int) -> float:
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(time, "clock_gettime", refused)
    monkeypatch.setattr(time, "monotonic", lambda: next(readings))
    monkeypatch.setattr(uptime_module, "_CLOCK_ID", uptime_module._clock_id())
    assert uptime_module.uptime() == 5.0
    assert uptime_module.uptime() == 7.5


def test_a_clock_the_kernel_answers_is_read():
    if not sys.platform.startswith("linux"):
        pytest.skip("CLOCK_BOOTTIME is Linux's")
    assert uptime_module._clock_id() == time.CLOCK_BOOTTIME
    first = uptime_module.uptime()
    assert uptime_module.uptime() >= first
