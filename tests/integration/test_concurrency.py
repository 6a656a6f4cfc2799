"""Commands on one lab at the same time take turns (the lab's lock): two `lab up` of one lab
both succeed, the second finding it up; an `up` started during a `down` waits for it and then
builds the lab afresh. Neither ever sees the other's half-made state."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from lab.runtime import lifecycle, locks

from . import hoststate
from .conftest import PREFIX, REPO, lab, remove_ours


def _start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "lab.cli", *args], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _until(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.fixture
def clean_host(host_before):
    made: list[str] = []
    yield made
    remove_ours(*made)
    hoststate.assert_unchanged(host_before, PREFIX)


def test_two_ups_of_one_lab_both_succeed(clean_host):
    name = PREFIX + "twice"
    clean_host.append(name)
    first = _start("up", "classic-vlan", "--name", name)
    _until(lambda: locks.is_locked(name))
    second = _start("up", "classic-vlan", "--name", name)
    out1, err1 = first.communicate(timeout=120)
    out2, err2 = second.communicate(timeout=120)
    assert first.returncode == 0, err1
    assert second.returncode == 0, err2
    assert f"lab {name} is up in" in out1
    assert f"lab {name} is already up and healthy" in out2
    assert f"waiting for lab {name}: pid {first.pid} (lab up classic-vlan) holds its lock" in err2
    assert lab("status", name).returncode == 0


def test_up_during_down_waits_then_builds_afresh(clean_host):
    name = PREFIX + "updown"
    clean_host.append(name)
    lab("up", "classic-vlan", "--name", name)
    # a process in vm1 that ignores SIGTERM: `down` waits 5 s for it before SIGKILL, long
    # enough for the `up` below to arrive while `down` is still at work
    stubborn = subprocess.Popen(["ip", "netns", "exec", f"nlab.{name}.vm1", "sh", "-c",
                                 "trap '' TERM; exec sleep 120"])
    try:
        time.sleep(0.2)
        down = _start("down", name)
        _until(lambda: locks.is_locked(name) and locks.holder(name) == (down.pid, f"lab down {name}"))
        up = _start("up", "classic-vlan", "--name", name)
        out_down, err_down = down.communicate(timeout=120)
        out_up, err_up = up.communicate(timeout=120)
    finally:
        if stubborn.poll() is None:
            stubborn.kill()
        stubborn.wait()
    assert down.returncode == 0 and f"lab {name} is down" in out_down, err_down
    assert up.returncode == 0, err_up
    assert f"waiting for lab {name}: pid {down.pid} (lab down {name}) holds its lock" in err_up
    assert f"lab {name} is up in" in out_up      # built afresh, after the down: no repair
    assert lab("status", name).returncode == 0
    assert name in lifecycle.list_labs()


def test_a_held_lock_times_out_naming_its_holder(clean_host):
    """Exit status 3 after LAB_LOCK_TIMEOUT, with the holder's pid and command; the lab
    (none here) is untouched."""
    name = PREFIX + "held"
    with locks.lab_lock(name, "held by the test"):
        import os
        proc = subprocess.run([sys.executable, "-m", "lab.cli", "down", name], cwd=REPO, capture_output=True,
                              text=True, timeout=30, env={**os.environ, "LAB_LOCK_TIMEOUT": "0.5"})
    assert proc.returncode == 3, proc
    assert (f"lab {name} is busy: pid {os.getpid()} (held by the test) holds its lock; gave up after 0.5 s"
            in proc.stderr)
