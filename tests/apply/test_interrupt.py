"""apply/interrupt.py with real signals sent to this process: the first stops cleanly
(a flag, no exception), the second raises; handlers are put back; a signal the process was
started to ignore (nohup) stays ignored."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from reconciler.apply.interrupt import (
    report_after_work,
    signal_name,
    stop_on_interrupt,
    terminate_as_interrupt,
)


def test_the_first_signal_sets_the_flag_and_the_second_raises() -> None:
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    firsts: list[int] = []
    seconds: list[int] = []
    with stop_on_interrupt(firsts.append, seconds.append) as stop:
        assert not stop.is_set()
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.is_set() and firsts == [signal.SIGTERM] and seconds == []
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
        assert seconds == [signal.SIGINT]
    assert {sig: signal.getsignal(sig) for sig in before} == before


def test_a_signal_ignored_at_start_stays_ignored() -> None:
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with stop_on_interrupt(lambda _s: None, lambda _s: None) as stop:
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGHUP)
            assert not stop.is_set()
        with terminate_as_interrupt():
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
        with report_after_work(lambda _t: None):
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_a_sigint_ignored_at_start_stays_ignored_until_the_requests_start() -> None:
    # `reconciler apply --yes &` in a script: Ctrl-C at the terminal is not for it.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with report_after_work(lambda _t: None):
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_terminate_means_what_ctrl_c_means() -> None:
    with pytest.raises(KeyboardInterrupt), terminate_as_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) is not None


def test_off_the_main_thread_nothing_is_installed() -> None:
    seen: list[object] = []

    def run() -> None:
        with stop_on_interrupt(lambda _s: None, lambda _s: None) as stop:
            seen.append(signal.getsignal(signal.SIGTERM))
            seen.append(stop.is_set())

    before = signal.getsignal(signal.SIGTERM)
    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert seen == [before, False]


def test_signals_are_named_as_people_know_them() -> None:
    assert signal_name(signal.SIGINT) == "Ctrl-C"
    assert signal_name(signal.SIGTERM) == "SIGTERM"


def test_after_the_work_one_signal_is_said_and_the_next_raises() -> None:
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    said: list[str] = []
    with report_after_work(said.append) as after:
        with pytest.raises(KeyboardInterrupt):  # before the work ends: as Ctrl-C means
            os.kill(os.getpid(), signal.SIGTERM)
        with stop_on_interrupt(lambda _s: None, lambda _s: None):
            after.work_done()
        os.kill(os.getpid(), signal.SIGTERM)  # the handler stop_on_interrupt gave back
        assert said == [
            "SIGTERM: the apply is over, writing down what it did (SIGTERM again to stop "
            "without its report)..."
        ]
        # The next is held while the journal and the run record are written...
        os.kill(os.getpid(), signal.SIGINT)
        # ... and raised once they are.
        with pytest.raises(KeyboardInterrupt):
            after.recorded()
        assert after.stopped_by == "a second Ctrl-C"
        with pytest.raises(KeyboardInterrupt):  # from then on, at once
            os.kill(os.getpid(), signal.SIGTERM)
    assert {sig: signal.getsignal(sig) for sig in before} == before


def test_after_the_record_the_next_signal_raises_at_once() -> None:
    with report_after_work(lambda _t: None) as after:
        after.work_done()
        os.kill(os.getpid(), signal.SIGTERM)  # said
        after.recorded()  # nothing held: nothing raised
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
        assert after.stopped_by == "SIGTERM"
