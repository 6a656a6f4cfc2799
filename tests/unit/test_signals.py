"""SIGTERM and SIGHUP stop a command like Ctrl-C (lab.runtime.signals): `as_interrupt` raises
Terminated where the main thread is; `deferred` lets a teardown finish first."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from lab.runtime import signals


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_as_interrupt_raises_terminated_once(signum):
    before = signal.getsignal(signum)
    with pytest.raises(signals.Terminated) as info:
        with signals.as_interrupt():
            os.kill(os.getpid(), signum)
            for _ in range(1000):        # the handler runs between bytecodes
                pass
            pytest.fail("the signal did not stop the body")
    assert info.value.signum == signum
    assert isinstance(info.value, KeyboardInterrupt)     # rolled back exactly like Ctrl-C
    assert signals.describe(info.value) == f"stopped by {signal.Signals(signum).name}"
    assert signal.getsignal(signum) == before            # handlers put back


def test_deferred_lets_the_body_finish_then_raises():
    done = []
    with pytest.raises(signals.Terminated):
        with signals.deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGINT)
            for step in range(3):
                done.append(step)
    assert done == [0, 1, 2]


def test_deferred_inside_as_interrupt_holds_a_second_signal():
    """`up`'s rollback: the first SIGTERM starts it, a second one must not cut it short."""
    finished = []
    with pytest.raises(signals.Terminated):
        with signals.as_interrupt():
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                for _ in range(1000):
                    pass
            except signals.Terminated:
                with signals.deferred(raise_after=False):
                    os.kill(os.getpid(), signal.SIGTERM)
                    finished.append("rollback")
                raise
    assert finished == ["rollback"]


def test_off_the_main_thread_nothing_is_installed():
    seen = []

    def body():
        with signals.as_interrupt(), signals.deferred():
            seen.append(signal.getsignal(signal.SIGTERM))

    before = signal.getsignal(signal.SIGTERM)
    t = threading.Thread(target=body)
    t.start()
    t.join()
    assert seen == [before]


def test_ctrl_c_and_other_errors_are_described():
    assert signals.describe(KeyboardInterrupt()) == "interrupted"
    assert signals.describe(ValueError("x")) == ""


def test_after_settle_a_signal_no_longer_stops_the_work():
    with signals.as_interrupt():
        signals.settle()
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):
            pass
    with pytest.raises(signals.Terminated):      # the next command is armed again
        with signals.as_interrupt():
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):
                pass


def _spin():
    for _ in range(1000):        # the handler runs between bytecodes
        pass


def test_held_finishes_the_start_then_stops_like_the_signal_would():
    """A daemon's start and its ledger entry are not cut in half: the signal that arrives
    meanwhile is delivered to as_interrupt's handler once the body is done."""
    done = []
    before = signal.getsignal(signal.SIGHUP)
    with pytest.raises(signals.Terminated) as info:
        with signals.as_interrupt():
            with signals.held():
                os.kill(os.getpid(), signal.SIGHUP)
                _spin()
                done.append("started")
                os.kill(os.getpid(), signal.SIGTERM)     # a second one changes nothing
                _spin()
                done.append("recorded")
            done.append("after")
    assert done == ["started", "recorded"]
    assert info.value.signum == signal.SIGHUP
    assert signal.getsignal(signal.SIGHUP) == before


def test_held_without_a_signal_changes_nothing():
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    with signals.held():
        _spin()
    assert {s: signal.getsignal(s) for s in before} == before


def test_held_delivers_ctrl_c_to_the_default_handler():
    done = []
    with pytest.raises(KeyboardInterrupt):
        with signals.held():
            os.kill(os.getpid(), signal.SIGINT)
            _spin()
            done.append("recorded")
    assert done == ["recorded"]


def test_held_inside_a_teardown_leaves_the_signal_deferred():
    done = []
    with pytest.raises(signals.Terminated):
        with signals.deferred():
            with signals.held():
                os.kill(os.getpid(), signal.SIGTERM)
                _spin()
            done.append("teardown goes on")
    assert done == ["teardown goes on"]


def test_held_off_the_main_thread_installs_nothing():
    seen = []

    def body():
        with signals.held():
            seen.append(signal.getsignal(signal.SIGTERM))

    before = signal.getsignal(signal.SIGTERM)
    t = threading.Thread(target=body)
    t.start()
    t.join()
    assert seen == [before]
