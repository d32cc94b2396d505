"""The wait at the end of an apply for Iterable's reads to show its writes (apply/reads_lag.py):
which destinations it waits for, and a signal that ends it."""

from __future__ import annotations

import os
import signal
import time

import pytest

from reconciler.apply.journal import Journal
from reconciler.apply.reads_lag import Lagging, lagging, skip_wait, wait_for_reads


def test_the_wait_is_for_the_destinations_written_to_whose_reads_lag():
    written = {"prod": 100.0, "eu": 130.0, "sandbox": 140.0}
    lags = {"prod": 60.0, "eu": 20.0, "idle": 600.0}  # the sandbox lags nothing
    assert lagging(written, lags) == Lagging(160.0, ("eu", "prod"), 60.0)
    assert lagging({"sandbox": 1.0}, lags) is None
    assert lagging({}, lags) is None


def test_a_wait_with_nothing_left_says_nothing():
    said: list[str] = []
    wait_for_reads(Lagging(10.02, ("prod",), 60.0), said.append, clock=lambda: 10.0)
    assert said == []


def test_ctrl_c_ends_the_wait_and_says_what_it_leaves():
    """A real SIGINT to this process, sent when the wait first looks at the clock; the
    clock moves past the end a few looks later, so a signal not handled cannot hang it."""
    looks = {"n": 0}

    def clock() -> float:
        looks["n"] += 1
        if looks["n"] == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return 0.0 if looks["n"] < 6 else 1_000.0

    said: list[str] = []
    before = signal.getsignal(signal.SIGINT)
    wait_for_reads(Lagging(45.0, ("prod",), 60.0), said.append, clock=clock)
    assert signal.getsignal(signal.SIGINT) is before
    assert said[0].startswith("Waiting 45.0 s before ending, for Iterable's reads")
    assert said[1] == (
        "Ctrl-C: stopped waiting; the apply is over. A plan started elsewhere in the next "
        "45 s may plan its changes again."
    )
    assert looks["n"] < 6  # ended by the signal, not by the clock


def test_not_waiting_says_for_how_long_a_run_elsewhere_may_plan_the_changes_again():
    said: list[str] = []
    skip_wait(Lagging(70.0, ("eu", "prod"), 60.0), said.append, clock=lambda: 12.0)
    assert said == [
        "Not waiting for Iterable's reads to show this apply's changes to 'eu', 'prod' "
        "(--no-read-lag-wait): a plan started elsewhere in the next 58 s (a scheduled sync, "
        "the drift check) may plan them again; one from this checkout waits for them by the "
        "run journal."
    ]
    said.clear()
    skip_wait(Lagging(10.02, ("prod",), 60.0), said.append, clock=lambda: 10.0)
    assert said == []  # the lag has passed: nothing is left to say


class _Said(Exception):
    """Raised by `say` once the wait says how long it is: the test need not wait it out."""


@pytest.mark.parametrize("off", [3600.0, -3600.0])
def test_the_wait_is_timed_from_the_last_write_whatever_the_wall_clock_does(
    monkeypatch: pytest.MonkeyPatch, off: float
):
    """The wall clock an hour ahead at the run's last write and stepped back before the
    wait (an NTP step, a VM's clock corrected) made the wait 3660 s; an hour behind and
    stepped forward, it skipped the wait, so a plan elsewhere read Iterable before its
    reads showed the run's writes."""
    journal = Journal.disabled()
    wall = time.time
    with monkeypatch.context() as during_the_run:
        during_the_run.setattr(time, "time", lambda: wall() + off)
        with journal.step("add_members", "prod", "Newsletter"):
            pass
    found = lagging(journal.last_write_at, {"prod": 60.0})
    assert found is not None
    said: list[str] = []

    def say(text: str) -> None:
        said.append(text)
        raise _Said

    with pytest.raises(_Said):
        wait_for_reads(found, say)
    seconds = float(said[0].removeprefix("Waiting ").split(" s ", 1)[0])
    assert 0 < seconds <= 60.0
