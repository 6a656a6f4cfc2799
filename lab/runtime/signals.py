"""SIGTERM and SIGHUP stop a command the way Ctrl-C does, so every way it can stop leaves the
host clean.

`as_interrupt()` (around `up`): the first SIGTERM/SIGHUP raises `Terminated`, a
KeyboardInterrupt, wherever the main thread is, so `up` rolls back exactly as for Ctrl-C;
later signals are only remembered. `deferred()` (around a teardown: `down`, `cleanup`, the
rollback of `up`): SIGINT, SIGTERM and SIGHUP are remembered and raised when the teardown is
done, so a teardown is never cut in half. `held()` (around starting a daemon and writing it
to the ledger): the same signals wait until the daemon is recorded, then reach the handler in
place (as_interrupt's raises Terminated there), so no daemon runs that no ledger names. kill -9 cannot be caught: the lab's lock, the ledger
and the sweep by marks make the next `up`, `down` or `cleanup LAB` finish the job.

Handlers can only be set from the main thread; elsewhere (a library caller's thread) both are
no-ops and the caller's own handling applies.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator

STOPPING = (signal.SIGTERM, signal.SIGHUP)
_state = threading.local()


class Terminated(KeyboardInterrupt):
    """The command was asked to stop by SIGTERM or SIGHUP."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


def describe(exc: BaseException) -> str:
    """'stopped by SIGTERM', 'interrupted' (Ctrl-C), or '' for any other failure."""
    if isinstance(exc, Terminated):
        return f"stopped by {signal.Signals(exc.signum).name}"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return ""


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextmanager
def _handlers(handler, signums) -> Iterator[None]:
    old = {s: signal.signal(s, handler) for s in signums}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


@contextmanager
def as_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP raise Terminated once in the body; repeats are ignored."""
    if not _main_thread() or getattr(_state, "active", False):
        yield
        return
    raised: list[int] = []
    _state.settled = False

    def handler(signum, _frame):
        if raised or _state.settled:
            return
        raised.append(signum)
        raise Terminated(signum)

    _state.active = True
    try:
        with _handlers(handler, STOPPING):
            yield
    finally:
        _state.active = False
        _state.settled = False


def settle() -> None:
    """The work is complete (`up` wrote plan.json): a signal from now on no longer stops it,
    so a finished lab is never reported as interrupted."""
    _state.settled = True


@contextmanager
def deferred(raise_after: bool = True) -> Iterator[None]:
    """Hold SIGINT, SIGTERM and SIGHUP until the body is done, then raise the first one (when
    RAISE_AFTER and the body did not fail; a rollback passes False: its error goes on anyway)."""
    if not _main_thread() or getattr(_state, "deferring", None) is not None:
        yield
        return
    pending: list[int] = []
    try:
        with _remembered() as pending:
            _state.deferring = pending
            yield
    finally:
        _state.deferring = None
    if pending and raise_after:
        if pending[0] == signal.SIGINT:
            raise KeyboardInterrupt
        raise Terminated(pending[0])


@contextmanager
def held() -> Iterator[None]:
    """Hold SIGINT, SIGTERM and SIGHUP while the body starts a daemon and records its pid, then
    deliver the first one to the handler that was in place, as if it arrived just after.

    A start cut in half is worse than a late stop: interrupted inside `subprocess.Popen`
    (after the fork, before it returns) the starting command is never killed nor waited
    for, and interrupted in `subprocess.run` it is killed after 0.25 s while the daemon it
    forked may live on; either way the daemon comes up after the rollback swept, in a
    namespace already deleted, named by no ledger. The body is bounded by its commands'
    timeouts."""
    if not _main_thread():
        yield
        return
    pending: list[int] = []
    try:
        with _remembered() as pending:
            yield
    finally:
        if pending:
            signal.raise_signal(pending[0])     # handled before raise_signal returns


@contextmanager
def _remembered() -> Iterator[list[int]]:
    """SIGINT, SIGTERM and SIGHUP appended to the yielded list, not handled, during the body."""
    pending: list[int] = []

    def handler(signum, _frame):
        pending.append(signum)

    with _handlers(handler, (signal.SIGINT,) + STOPPING):
        yield pending
