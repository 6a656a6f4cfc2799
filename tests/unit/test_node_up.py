"""One node's bring-up (lab/runtime/lifecycle.py `_node_up`) with every step that touches the
kernel replaced by a recorder: the firewall before any port, ovs-vswitchd only once the node
namespace's links exist, each daemon in the ledger, and a failure on either side of the OVS
thread raised without hiding the other's daemons (the rollback stops what the ledger holds).
The agents set up while OVS takes its rows: tests/unit/test_node_agents.py. The kernel side of
the same is every integration test that brings a lab up."""

from __future__ import annotations

import threading

import pytest

from lab.core.plan import build_plan
from lab.core.render import render_plan
from lab.core.scenario import load_scenario
from lab.errors import ApplyError
from lab.runtime import lifecycle, ovs


@pytest.fixture
def node_up(tmp_path, monkeypatch):
    """_node_up of classic-vlan's compute1, its steps recorded in state["calls"]; a step named
    in state["fail"] raises ApplyError."""
    plan = build_plan(load_scenario("classic-vlan", lab_name="unit-node-up"), datapath="netdev",
                      state_root=str(tmp_path))
    node = plan.node("compute1")
    render = render_plan(plan)[node.name]
    state = {"calls": [], "fail": None, "progress": [], "released": threading.Event()}

    def step(kind, result=None):
        def record(*args, **kwargs):
            state["calls"].append(kind)
            if state["fail"] == kind:
                raise ApplyError(f"{kind} failed")
            return result
        return record

    def start(netns, rundir, datapath, before_vswitchd=None):
        state["calls"].append("ovsdb-server")
        before_vswitchd()
        state["released"].set()
        state["calls"].append("ovs-vswitchd")
        if state["fail"] == "ovs-vswitchd":
            raise ApplyError("ovs-vswitchd failed")
        return [101, 102]
    monkeypatch.setattr(ovs, "start", start)
    monkeypatch.setattr(lifecycle, "_node_firewall", step("firewall", {}))

    def node_links(*args):
        # give a vswitchd started too early the time to show it (the thread waits on an event)
        state["released"].wait(0.2)
        step("node links")()
    monkeypatch.setattr(lifecycle, "_node_namespace_links", node_links)
    monkeypatch.setattr(lifecycle, "_owner_links", step("owner links"))
    monkeypatch.setattr(lifecycle, "_node_configure", step("configure", {}))
    monkeypatch.setattr(lifecycle, "_tunnel_endpoint", step("tunnel endpoint"))
    monkeypatch.setattr(lifecycle, "_node_agents", step("agents", {}))
    ledger = lifecycle.Ledger(tmp_path)
    state["ledger"] = ledger
    state["run"] = lambda: lifecycle._node_up(plan, node, render, ledger, state["progress"].append)
    return state


def test_vswitchd_starts_after_the_node_links_and_both_daemons_are_recorded(node_up):
    node_up["run"]()
    calls = node_up["calls"]
    assert calls.index("firewall") < calls.index("node links") < calls.index("ovs-vswitchd")
    assert calls.index("ovs-vswitchd") < calls.index("configure")
    assert calls.index("owner links") < min(calls.index("configure"), calls.index("agents"))
    assert [(e["daemon"], e["pid"]) for e in node_up["ledger"].entries()] == [("ovsdb-server", 101),
                                                                             ("ovs-vswitchd", 102)]
    [line] = node_up["progress"]
    assert line.startswith("  compute1: ") and "node links" in line and "ovs daemons" in line


def test_a_failing_link_step_is_raised_after_the_ovs_thread_ended(node_up):
    node_up["fail"] = "node links"
    with pytest.raises(ApplyError, match="node links failed"):
        node_up["run"]()
    # the OVS thread was released and joined: both daemons ran and are in the ledger
    assert "ovs-vswitchd" in node_up["calls"]
    assert [e["daemon"] for e in node_up["ledger"].entries()] == ["ovsdb-server", "ovs-vswitchd"]
    assert "configure" not in node_up["calls"]


def test_a_failing_ovs_start_is_raised_once_the_links_are_made(node_up):
    node_up["fail"] = "ovs-vswitchd"
    with pytest.raises(ApplyError, match="ovs-vswitchd failed"):
        node_up["run"]()
    assert "owner links" in node_up["calls"] and "configure" not in node_up["calls"]
    assert node_up["ledger"].entries() == []
