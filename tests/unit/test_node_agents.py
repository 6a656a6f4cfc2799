"""One node's bring-up (lab/runtime/lifecycle.py `_node_up`) with everything that touches the
kernel replaced (its order up to OVS: tests/unit/test_node_up.py): the agents' namespaces (l3 agent rules, dnsmasq) are set up while OVS takes
its rows and flows; a failure on either side is raised, and what the other started is in the
ledger first. The kernel side is
tests/integration/test_lifecycle.py and test_classic_vlan.py."""

from __future__ import annotations

import contextlib
import threading

import pytest

from lab.core.plan import build_plan
from lab.core.render import render_plan
from lab.core.scenario import load_scenario
from lab.errors import CommandError
from lab.runtime import agents, lifecycle, netns, ovs, plugs
from lab.runtime import fip as fips_rt

WAIT = 10.0     # seconds a fake waits for the other side before it says it never came


class _Links:
    """Links that make nothing."""

    def __init__(self, where):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def batched(self):
        return contextlib.nullcontext()

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


class _Ledger:
    def __init__(self):
        self.entries = []

    def record(self, kind, **entry):
        self.entries.append((kind, entry.get("daemon")))


@pytest.fixture
def network1(tmp_path, monkeypatch):
    """classic-vlan's network1 (a router, two DHCP servers) ready for _node_up; `calls` holds
    what was done, in order; `hooks` may replace vsctl / dnsmasq / flows."""
    plan = build_plan(load_scenario("classic-vlan"), datapath="netdev", state_root=str(tmp_path))
    node = plan.node("network1")
    state = {"calls": [], "hooks": {}, "plan": plan, "node": node, "render": render_plan(plan)[node.name]}

    def hook(name, default=None):
        def call(*args, **kwargs):
            state["calls"].append(name)
            return state["hooks"].get(name, lambda *a, **k: default)(*args, **kwargs)
        return call

    def start_ovs(ns, rundir, datapath, before_vswitchd=None):
        before_vswitchd()
        return [11, 12]
    monkeypatch.setattr(ovs, "start", start_ovs)
    monkeypatch.setattr(lifecycle, "Links", _Links)
    monkeypatch.setattr(netns, "entered", lambda name: contextlib.nullcontext())
    monkeypatch.setattr(lifecycle, "_node_firewall", lambda node, render: {})
    monkeypatch.setattr(plugs, "driver", lambda name: type("Plug", (), {"make": lambda self, links, p: None})())
    for module, name in ((agents, "router_links"), (agents, "dhcp_links"), (fips_rt, "link_up"),
                         (fips_rt, "namespace_up")):
        monkeypatch.setattr(module, name, lambda *args: None)
    monkeypatch.setattr(ovs, "vsctl", hook("vsctl", ""))
    monkeypatch.setattr(ovs, "replace_flows", hook("flows"))
    monkeypatch.setattr(agents, "router_rules", hook("router rules"))
    monkeypatch.setattr(agents, "dnsmasq_start", hook("dnsmasq", 21))
    state["run"] = lambda ledger: lifecycle._node_up(plan, node, state["render"], ledger, lambda line: None)
    return state


def test_the_agents_are_set_up_while_ovs_takes_its_rows(network1):
    """vsctl waits for dnsmasq to have started: one after the other, it would wait in vain."""
    started = threading.Event()

    def dnsmasq(*args):
        started.set()
        return 21

    def vsctl(*args):
        assert started.wait(WAIT), "dnsmasq was not started while OVS took its rows"
        return ""
    network1["hooks"].update(dnsmasq=dnsmasq, vsctl=vsctl)
    ledger = _Ledger()
    network1["run"](ledger)
    assert ("process", "dnsmasq") in ledger.entries
    assert {"vsctl", "flows", "router rules", "dnsmasq"} <= set(network1["calls"])


def test_a_failure_in_ovs_waits_for_the_agents_to_be_recorded(network1):
    release = threading.Event()

    def flows(*args):
        release.set()
        raise CommandError(["ovs-ofctl"], 1, "", "no such bridge")

    def dnsmasq(*args):
        assert release.wait(WAIT)
        return 21
    network1["hooks"].update(flows=flows, dnsmasq=dnsmasq)
    ledger = _Ledger()
    with pytest.raises(CommandError, match="no such bridge"):
        network1["run"](ledger)
    dnsmasqs = len(network1["node"].dhcp_servers)
    assert dnsmasqs >= 1 and ledger.entries.count(("process", "dnsmasq")) == dnsmasqs   # for the rollback


def test_a_failure_in_the_agents_is_raised_after_ovs_is_done(network1):
    def dnsmasq(*args):
        raise CommandError(["dnsmasq"], 2, "", "address in use")
    network1["hooks"]["dnsmasq"] = dnsmasq
    with pytest.raises(CommandError, match="address in use"):
        network1["run"](_Ledger())
    assert "flows" in network1["calls"]
