"""Failure paths: kill -9 in the middle of `lab up`, a bad scenario, a failure half-way,
two labs at once, and commands on one lab at the same time (the lab's lock). After each,
the host is exactly as before. Every lab here carries this run's prefix."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lab.runtime import netns, lifecycle
from lab.budget import budget
from lab.paths import STATE_ROOT

from . import hoststate
from .conftest import PREFIX, REPO, lab, remove_ours

CLASSIC = (REPO / "scenarios" / "classic-vlan.yaml").read_text()


def renamed(tmp_path: Path, name: str, text: str = CLASSIC) -> Path:
    """classic-vlan under another lab name, beside a copy of the fragment it includes."""
    if not (tmp_path / "include").exists():
        shutil.copytree(REPO / "scenarios" / "include", tmp_path / "include")
    path = tmp_path / f"{name}.yaml"
    path.write_text(re.sub(r"^name: .*$", f"name: {name}", text, count=1, flags=re.M))
    return path


@pytest.fixture
def clean_host(host_before):
    yield host_before
    labs, _ = lifecycle.leftovers()
    remove_ours(*(item.lab for item in labs if item.lab.startswith(PREFIX)))
    hoststate.assert_unchanged(host_before, PREFIX)


def test_kill_9_during_up_then_cleanup_leaves_nothing(clean_host):
    name = PREFIX + "killed"
    proc = subprocess.Popen([sys.executable, "-m", "lab.cli", "up", "classic-vlan", "--name", name], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # wait until it has made real objects: an OVS daemon of some node is running
    deadline = time.monotonic() + budget(20)
    while time.monotonic() < deadline:
        if list((STATE_ROOT / name / "nodes").glob("*/ovs-vswitchd.pid")):
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert any(ns.startswith(f"nlab.{name}.") for ns in netns.list_ours()), "nothing was made before the kill"
    out = lab("cleanup", name)     # the kernel dropped the dead process's lock
    assert f"removed lab {name}" in out.stdout
    assert not [ns for ns in netns.list_ours() if ns.startswith(f"nlab.{name}.")]
    assert not (STATE_ROOT / name).exists()
    assert not [p for p in hoststate.live_lab_processes(PREFIX) if name in p]


def test_bad_scenario_creates_nothing(tmp_path, clean_host):
    bad = renamed(tmp_path, PREFIX + "bad", CLASSIC.replace('vlan_ranges: ["101:199"]', 'vlan_ranges: ["101:99"]')
                  .replace("nodes: [network1, compute1, compute2]", "nodes: [network1, compute1, compute9]"))
    out = lab("up", str(bad), check=False)
    assert out.returncode == 2
    assert f"{bad}:" in out.stderr and "range 101:99 must satisfy" in out.stderr
    assert "unknown node 'compute9'" in out.stderr   # every problem, not only the first
    assert not [ns for ns in netns.list_ours() if ns.startswith(f"nlab.{PREFIX}bad.")]
    assert not (STATE_ROOT / f"{PREFIX}bad").exists()


def test_failure_half_way_removes_everything(clean_host, monkeypatch):
    """A node fails after the namespaces, wires and other nodes exist: all of it goes."""
    from lab import errors
    from lab.runtime import ovs
    name = PREFIX + "halfway"
    real_start = ovs.start

    def failing_start(ns, rundir, datapath, **kwargs):
        if rundir.endswith("/compute2"):
            raise errors.CommandError(["ovs-vswitchd", "(simulated)"], 1, "", "simulated failure")
        return real_start(ns, rundir, datapath, **kwargs)

    monkeypatch.setattr(ovs, "start", failing_start)
    with pytest.raises(errors.ApplyError, match="simulated failure"):
        lifecycle.up("classic-vlan", name=name)
    assert not [ns for ns in netns.list_ours() if ns.startswith(f"nlab.{name}.")]
    assert not (STATE_ROOT / name).exists()
    assert not [p for p in hoststate.live_lab_processes(PREFIX) if name in p]


def test_two_labs_at_once(clean_host):
    """Two labs of one scenario (`--name`): separate namespaces, OVS, cookies; removing one
    (down, then `cleanup` of it by name) leaves the other working."""
    one, two = PREFIX + "lab-one", PREFIX + "lab-two"
    lab("up", "classic-vlan", "--name", one)
    lab("up", "classic-vlan", "--name", two)
    for name in (one, two):
        out = lab("exec", name, "vm1", "--", "ping", "-c1", "-W2", "192.168.1.12")
        assert "1 received" in out.stdout
    assert lifecycle.load_state(one).plan.cookie != lifecycle.load_state(two).plan.cookie
    lab("down", one)
    assert "nothing to clean up" in lab("cleanup", one).stdout
    assert two in lifecycle.list_labs()
    out = lab("exec", two, "vm1", "--", "ping", "-c1", "-W2", "192.168.1.12")
    assert "1 received" in out.stdout
    assert lab("status", two).returncode == 0
    lab("down", two)


def test_cleanup_of_every_lab_asks_first(clean_host):
    """`lab cleanup` without a lab lists what it would remove and, not on a terminal and
    without --yes, removes nothing (exit 2); a foreign namespace is never listed."""
    name = PREFIX + "listed"
    lab("up", "classic-vlan", "--name", name)
    subprocess.run(["ip", "netns", "add", "not-a-lab-ns"], check=True)
    try:
        out = lab("cleanup", check=False)
        assert out.returncode == 2, out
        assert f"lab {name} (up: " in out.stdout and "--yes" in out.stderr
        assert "not-a-lab-ns" not in out.stdout
        assert name in lifecycle.list_labs() and lab("status", name).returncode == 0
        assert "not-a-lab-ns" in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                                text=True).stdout
    finally:
        subprocess.run(["ip", "netns", "del", "not-a-lab-ns"], check=False)
        lab("down", name)
