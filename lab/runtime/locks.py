"""One lock per lab, so that two commands on the same lab never interleave.

`up`, `down` and `cleanup LAB` (and `cleanup` of every lab, one lab at a time) hold the lab's
lock for their whole run: a second `lab up X` waits for the first and then finds X up; an
`up` started during a `down` waits for the `down` to finish. The wait is bounded
(LAB_LOCK_TIMEOUT seconds, 60 by default); then the command fails with LabBusy naming the
pid and command that hold the lock (exit status 3).

The lock is an flock(2) on STATE_ROOT/.locks/<lab>.lock. It lives beside the lab's state
directory, not in it, because `down` deletes that directory. The kernel drops the lock when
its holder dies, even by kill -9, so a lock is never stale. The holder deletes the file
before it lets go; a waiter that had opened the old file then finds, once it holds it, that
the path no longer names its file, and starts again on the new one (so two holders can never
hold two different files of one lab). Holding is re-entrant within one thread (`up` that
repairs, `cleanup`).
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator

from lab import paths
from lab.errors import LabBusy

DEFAULT_TIMEOUT = 60.0
POLL = 0.05
_held: dict[tuple[str, int], int] = {}     # (lab, thread id) -> depth
_guard = threading.Lock()


def timeout_from_env() -> float:
    """LAB_LOCK_TIMEOUT in seconds (0: do not wait), else DEFAULT_TIMEOUT."""
    raw = os.environ.get("LAB_LOCK_TIMEOUT")
    if raw is None or raw == "":
        return DEFAULT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value < 0:
        from lab.errors import UsageError
        raise UsageError(f"LAB_LOCK_TIMEOUT={raw!r} is not a number of seconds (>= 0)")
    return value


def holder(lab: str) -> tuple[int | None, str]:
    """(pid, what it is doing) written by the lock's holder, or (None, '') if unknown."""
    try:
        text = paths.lock_path(lab).read_text()
    except OSError:
        return None, ""
    pid, _, what = text.strip().partition(" ")
    return (int(pid) if pid.isdigit() else None), what


@contextmanager
def lab_lock(lab: str, what: str, timeout: float | None = None,
             progress: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold LAB's lock for the body. WHAT (e.g. "lab up classic-vlan") is shown to whoever
    waits for it. Waits at most TIMEOUT seconds (default: timeout_from_env())."""
    key = (lab, threading.get_ident())
    with _guard:
        depth = _held.get(key, 0)
        if depth:
            _held[key] = depth + 1
    if depth:
        try:
            yield
        finally:
            with _guard:
                _held[key] -= 1
        return
    fd = _acquire(lab, what, timeout_from_env() if timeout is None else timeout, progress)
    with _guard:
        _held[key] = 1
    try:
        yield
    finally:
        with _guard:
            del _held[key]
        _release(lab, fd)


def _same_file(fd: int, path) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


def _release(lab: str, fd: int) -> None:
    """Delete the lock file while still holding it, then let go (closing releases the flock)."""
    try:
        path = paths.lock_path(lab)
        if _same_file(fd, path):
            path.unlink()
    finally:
        os.close(fd)


def _acquire(lab: str, what: str, timeout: float, progress: Callable[[str], None] | None) -> int:
    path = paths.lock_path(lab)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        from lab.errors import StateDirError
        raise StateDirError(f"cannot take lab {lab}'s lock {path}: {exc.strerror or exc}; make "
                            f"{paths.STATE_ROOT} a writable directory, or point LAB_STATE_DIR at one") from None
    deadline = time.monotonic() + timeout
    told = False
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                if _same_file(fd, path):
                    break
                # its holder deleted it on the way out: start again on the file there now
                os.close(fd)
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except BlockingIOError:
                pid, doing = holder(lab)
                who = f"pid {pid} ({doing})" if pid else "another command"
                if time.monotonic() >= deadline:
                    raise LabBusy(f"lab {lab} is busy: {who} holds its lock; gave up after "
                                  f"{timeout:g} s (LAB_LOCK_TIMEOUT sets the wait)", pid) from None
                if progress and not told:
                    progress(f"waiting for lab {lab}: {who} holds its lock")
                    told = True
                time.sleep(POLL)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {what}\n".encode(), 0)
        return fd
    except BaseException:
        os.close(fd)
        raise


def is_locked(lab: str) -> bool:
    """True when some command holds LAB's lock right now (for tests and status)."""
    path = paths.lock_path(lab)
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
