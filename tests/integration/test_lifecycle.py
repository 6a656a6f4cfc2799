"""Failure paths: kill -9 in the middle of `lab up`, a bad scenario, a failure half-way,
and two labs at once. After each, the host is exactly as before."""

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
from .conftest import REPO, lab

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
    lab("cleanup", check=False)
    hoststate.assert_unchanged(host_before)


def test_kill_9_during_up_then_cleanup_leaves_nothing(tmp_path, clean_host):
    scenario = renamed(tmp_path, "killed")
    proc = subprocess.Popen([sys.executable, "-m", "lab.cli", "up", str(scenario)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # wait until it has made real objects: an OVS daemon of some node is running
    deadline = time.monotonic() + budget(20)
    while time.monotonic() < deadline:
        if list((STATE_ROOT / "killed" / "nodes").glob("*/ovs-vswitchd.pid")):
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert any(ns.startswith("nlab.killed.") for ns in netns.list_ours()), "nothing was made before the kill"
    out = lab("cleanup")
    assert "killed" in out.stdout
    assert not [ns for ns in netns.list_ours() if ns.startswith("nlab.killed.")]
    assert not (STATE_ROOT / "killed").exists()
    assert not [p for p in hoststate.live_lab_processes() if "killed" in p]


def test_bad_scenario_creates_nothing(tmp_path, clean_host):
    bad = renamed(tmp_path, "bad", CLASSIC.replace('vlan_ranges: ["101:199"]', 'vlan_ranges: ["101:99"]')
                  .replace("nodes: [network1, compute1, compute2]", "nodes: [network1, compute1, compute9]"))
    out = lab("up", str(bad), check=False)
    assert out.returncode == 2
    assert f"{bad}:" in out.stderr and "range 101:99 must satisfy" in out.stderr
    assert "unknown node 'compute9'" in out.stderr   # every problem, not only the first
    assert not [ns for ns in netns.list_ours() if ns.startswith("nlab.bad.")]
    assert not (STATE_ROOT / "bad").exists()


def test_failure_half_way_removes_everything(tmp_path, clean_host, monkeypatch):
    """A node fails after the namespaces, wires and other nodes exist: all of it goes."""
    from lab import errors
    from lab.runtime import ovs
    scenario = renamed(tmp_path, "halfway")
    real_start = ovs.start

    def failing_start(ns, rundir, datapath):
        if rundir.endswith("/compute2"):
            raise errors.CommandError(["ovs-vswitchd", "(simulated)"], 1, "", "simulated failure")
        return real_start(ns, rundir, datapath)

    monkeypatch.setattr(ovs, "start", failing_start)
    with pytest.raises(errors.ApplyError, match="simulated failure"):
        lifecycle.up(str(scenario))
    assert not [ns for ns in netns.list_ours() if ns.startswith("nlab.halfway.")]
    assert not (STATE_ROOT / "halfway").exists()
    assert not [p for p in hoststate.live_lab_processes() if "halfway" in p]


def test_two_labs_at_once(tmp_path, clean_host):
    one, two = renamed(tmp_path, "lab-one"), renamed(tmp_path, "lab-two")
    lab("up", str(one))
    lab("up", str(two))
    for name in ("lab-one", "lab-two"):
        out = lab("exec", name, "vm1", "--", "ping", "-c1", "-W2", "192.168.1.12")
        assert "1 received" in out.stdout
    lab("down", "lab-one")
    assert "lab-two" in lifecycle.list_labs()
    out = lab("exec", "lab-two", "vm1", "--", "ping", "-c1", "-W2", "192.168.1.12")
    assert "1 received" in out.stdout
    lab("down", "lab-two")


def test_cleanup_touches_nothing_foreign(clean_host):
    """A namespace that is not ours survives `lab cleanup`."""
    subprocess.run(["ip", "netns", "add", "not-a-lab-ns"], check=True)
    try:
        lab("cleanup")
        assert "not-a-lab-ns" in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                                text=True).stdout
    finally:
        subprocess.run(["ip", "netns", "del", "not-a-lab-ns"], check=False)
