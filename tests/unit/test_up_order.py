"""`lab up`'s bring-up order, timing phases and rollback (lab/runtime/lifecycle.py `_up`),
with every step that touches the kernel replaced by a recorder: the order of the steps, the
progress lines, the phases `lab up` prints, plan.json written last, and for a failure or an
interrupt at each step, the step it names and the rollback of what the ledger holds. The
kernel side of the same is tests/integration/test_lifecycle.py and test_signals.py."""

from __future__ import annotations

import os
import subprocess

import pytest

from lab import paths
from lab.core.scenario import load_scenario
from lab.errors import ApplyError, CommandError
from lab.runtime import agents, gateway, lifecycle, ovs, statedir
from lab.runtime import metadata as metadata_service

STEPS = ("namespaces", "wire", "node", "external host", "metadata", "dhcp")


@pytest.fixture
def recorded(tmp_path, monkeypatch):
    """_up on classic-vlan with its steps recorded in `calls` (a step in `fail` raises)."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"a unit test tried to touch the system: {args!r}")
    monkeypatch.setattr(subprocess, "Popen", refuse)
    for name in ("setns", "unshare", "kill"):
        monkeypatch.setattr(os, name, refuse, raising=False)
    monkeypatch.setattr(paths, "STATE_ROOT", tmp_path)
    monkeypatch.setattr(lifecycle, "STATE_ROOT", tmp_path)
    state = {"calls": [], "fail": None, "progress": []}

    def step(kind, result=None):
        def record(*args, **kwargs):
            state["calls"].append(kind)
            if state["fail"] == kind:
                raise state["error"]
            return result
        return record
    monkeypatch.setattr(gateway, "require", lambda *programs: None)
    monkeypatch.setattr(ovs, "detect_datapath", lambda: "netdev")
    monkeypatch.setattr(lifecycle, "check_kernel", lambda plan: None)
    monkeypatch.setattr(lifecycle, "_sweep_interrupted", step("sweep"))
    monkeypatch.setattr(lifecycle, "_create_namespaces",
                        lambda plan, ledger: (ledger.record("netns", name="x"), step("namespaces")()))
    monkeypatch.setattr(lifecycle, "_wire_up", step("wire"))
    monkeypatch.setattr(lifecycle, "_node_up", step("node"))
    monkeypatch.setattr(lifecycle, "_external_host_up", step("external host"))
    monkeypatch.setattr(metadata_service, "ensure", step("metadata", ["metadata server"]))
    monkeypatch.setattr(agents, "dhcp_leases", step("dhcp", ["vm9: no DHCPACK"]))
    monkeypatch.setattr(lifecycle, "_teardown",
                        lambda lab, entries, progress: state["calls"].append(("teardown", [e["kind"] for e in entries])))
    state["run"] = lambda: lifecycle._up(load_scenario("classic-vlan", lab_name="unit-up-order"), None,
                                         state["progress"].append)
    return state


def test_steps_in_order_phases_timed_and_plan_json_last(recorded, tmp_path):
    result = recorded["run"]()
    assert recorded["calls"] == ["sweep", "namespaces", "wire", "wire", "node", "node", "node",
                                 "external host", "metadata", "dhcp"]
    assert list(result.phases) == ["namespaces", "wires", "nodes", "metadata", "dhcp"]
    assert all(v >= 0 for v in result.phases.values())
    assert result.missing_leases == ["vm9: no DHCPACK"] and result.lab == "unit-up-order"
    assert [line.split(" (")[0] for line in recorded["progress"]] == [
        "creating namespaces", "wiring physical networks", "bringing up nodes", "waiting for DHCP leases"]
    assert recorded["progress"][2] == "bringing up nodes (network1, compute1, compute2) in parallel"
    assert statedir.read_plan("unit-up-order") is not None
    assert (tmp_path / "unit-up-order" / "scenario.json").is_file()


@pytest.mark.parametrize("kind, step", [
    ("namespaces", "creating namespaces"), ("wire", "wiring physical networks"), ("node", "bringing up nodes"),
    ("external host", "configuring external hosts"), ("metadata", "starting the metadata service"),
    ("dhcp", "waiting for DHCP leases")])
def test_a_failure_names_its_step_and_rolls_back_the_ledger(recorded, kind, step):
    recorded["fail"], recorded["error"] = kind, CommandError(["ip", "x"], 1, "", "boom", None)
    with pytest.raises(ApplyError) as exc:
        recorded["run"]()
    assert str(exc.value).startswith(f"lab up unit-up-order failed while {step}: ")
    assert str(exc.value).endswith("everything it had made has been removed")
    assert recorded["calls"][-1] == ("teardown", ["statedir", "netns"])
    assert recorded["progress"][-1] == f"failed while {step}: removing what was made"
    assert statedir.read_plan("unit-up-order") is None


def test_an_interrupt_rolls_back_and_is_raised_again(recorded):
    recorded["fail"], recorded["error"] = "metadata", KeyboardInterrupt()
    with pytest.raises(KeyboardInterrupt):
        recorded["run"]()
    assert recorded["calls"][-1] == ("teardown", ["statedir", "netns"])
    assert recorded["progress"][-1] == "interrupted while starting the metadata service: removing what was made"


def test_a_failing_rollback_says_the_sweep_is_owed(recorded, monkeypatch):
    recorded["fail"], recorded["error"] = "wire", RuntimeError("no wire")

    def broken(lab, entries, progress):
        raise OSError("busy")
    monkeypatch.setattr(lifecycle, "_teardown", broken)
    with pytest.raises(RuntimeError, match="no wire"):
        recorded["run"]()
    assert recorded["progress"][-2:] == ["failed while wiring physical networks: removing what was made",
                                         "removing failed too (busy); run `lab cleanup unit-up-order`"]
