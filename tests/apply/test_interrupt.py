"""apply/interrupt.py with real signals sent to this process: the first stops cleanly
(a flag, no exception), the second raises; handlers are put back; a signal the process was
started to ignore (nohup) stays ignored."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from reconciler.apply.interrupt import signal_name, stop_on_interrupt, terminate_as_interrupt


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
    finally:
        signal.signal(signal.SIGHUP, previous)


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
