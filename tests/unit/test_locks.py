"""The per-lab lock: a second holder waits a bounded time and is told who holds it; the
kernel drops the lock when its holder dies, even by kill -9; a thread may re-enter its own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from lab import paths
from lab.errors import LabBusy, UsageError
from lab.runtime import locks

REPO = Path(__file__).resolve().parents[2]
HOLD = """
import sys, time
from lab.runtime import locks
with locks.lab_lock(sys.argv[1], "lab up something"):
    print("held", flush=True)
    time.sleep(60)
"""


@pytest.fixture
def state_root(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "STATE_ROOT", tmp_path)
    return tmp_path


def _holder(state_root: Path, lab: str) -> subprocess.Popen:
    env = {**os.environ, "LAB_STATE_DIR": str(state_root),
           "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-c", HOLD, lab], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_second_holder_gives_up_naming_the_first(state_root):
    proc = _holder(state_root, "lab1")
    try:
        assert locks.is_locked("lab1")
        waited: list[str] = []
        started = time.monotonic()
        with pytest.raises(LabBusy) as exc:
            with locks.lab_lock("lab1", "lab down lab1", timeout=0.3, progress=waited.append):
                pass
        assert 0.3 <= time.monotonic() - started < 3
        assert exc.value.holder_pid == proc.pid
        assert f"lab lab1 is busy: pid {proc.pid} (lab up something) holds its lock" in str(exc.value)
        assert waited == [f"waiting for lab lab1: pid {proc.pid} (lab up something) holds its lock"]
        # another lab is not held up by it
        with locks.lab_lock("lab2", "lab up lab2", timeout=0):
            pass
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


def test_a_killed_holder_releases_at_once(state_root):
    proc = _holder(state_root, "lab1")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    with locks.lab_lock("lab1", "lab cleanup lab1", timeout=0):
        assert locks.holder("lab1") == (os.getpid(), "lab cleanup lab1")
    assert not locks.is_locked("lab1")


def test_waiter_gets_the_lock_when_the_holder_lets_go(state_root):
    released = threading.Event()
    order: list[str] = []

    def hold():
        with locks.lab_lock("lab1", "first"):
            order.append("first in")
            released.wait(5)
            time.sleep(0.2)
            order.append("first out")

    t = threading.Thread(target=hold)
    t.start()
    while not order:
        time.sleep(0.01)
    released.set()
    with locks.lab_lock("lab1", "second", timeout=5):
        order.append("second in")
    t.join()
    assert order == ["first in", "first out", "second in"]     # never interleaved


def test_same_thread_may_reenter(state_root):
    with locks.lab_lock("lab1", "outer", timeout=0):
        with locks.lab_lock("lab1", "inner (repair)", timeout=0):
            assert locks.holder("lab1") == (os.getpid(), "outer")
        assert locks.is_locked("lab1")
    assert not locks.is_locked("lab1")


def test_lock_files_live_beside_the_state_dirs_and_go_with_the_lock(state_root):
    with locks.lab_lock("lab1", "x", timeout=0):
        assert (state_root / ".locks" / "lab1.lock").is_file()
        assert not (state_root / "lab1").exists()
    assert not (state_root / ".locks" / "lab1.lock").exists()


def test_many_contenders_never_hold_at_once(state_root):
    """Threads (each its own open file, as separate processes would have) hammer one lab:
    the file is deleted and re-made under them, and still only one holds it at a time."""
    inside, most, errors = [0], [0], []
    guard = threading.Lock()

    def worker():
        try:
            for _ in range(30):
                with locks.lab_lock("lab1", "w", timeout=10):
                    with guard:
                        inside[0] += 1
                        most[0] = max(most[0], inside[0])
                    time.sleep(0.0005)
                    with guard:
                        inside[0] -= 1
        except Exception as exc:   # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and most[0] == 1
    assert not (state_root / ".locks" / "lab1.lock").exists()


@pytest.mark.parametrize("value,expected", [(None, 60.0), ("", 60.0), ("0", 0.0), ("2.5", 2.5)])
def test_timeout_from_env(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv("LAB_LOCK_TIMEOUT", raising=False)
    else:
        monkeypatch.setenv("LAB_LOCK_TIMEOUT", value)
    assert locks.timeout_from_env() == expected


@pytest.mark.parametrize("value", ["soon", "-1"])
def test_bad_timeout_is_a_usage_error(monkeypatch, value):
    monkeypatch.setenv("LAB_LOCK_TIMEOUT", value)
    with pytest.raises(UsageError, match="LAB_LOCK_TIMEOUT"):
        locks.timeout_from_env()


def test_bad_lab_name_never_becomes_a_lock_path(state_root):
    with pytest.raises(UsageError):
        with locks.lab_lock("../etc", "x", timeout=0):
            pass
    assert not (state_root / ".locks").exists() or not list((state_root / ".locks").iterdir())
