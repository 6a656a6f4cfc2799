"""A lab whose compute2 uses firewall_driver = noop (lab/core/plugs/noop.py): its instances'
taps sit straight on br-int, no qbr and no iptables there. It comes up next to hybrid
compute1, pings across, and status, graph and trace read it through the plug seam.

The scenario is classic-vlan with compute2's firewall_driver set in Python (the YAML key is
validated by the scenario loader; this test does not depend on it)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from lab.core.scenario import load_scenario
from lab.runtime import lifecycle

from . import hoststate
from .conftest import PREFIX, lab, test_name

LAB = test_name("noop-vlan")


@pytest.fixture(scope="module")
def live(host_before):
    scenario = load_scenario("classic-vlan", lab_name=LAB)
    scenario = dataclasses.replace(scenario, nodes=tuple(
        dataclasses.replace(n, firewall_driver="noop") if n.name == "compute2" else n for n in scenario.nodes))
    try:
        result = lifecycle.up(scenario)
        assert not result.missing_leases, result.missing_leases
        yield lifecycle.load_state(LAB)
    finally:
        if LAB in lifecycle.list_labs():
            lab("down", LAB, check=False)
        lab("cleanup", LAB, check=False)
        hoststate.assert_unchanged(host_before, PREFIX)


def ping(src: str, dst: str) -> bool:
    out = lab("exec", LAB, src, "--", "ping", "-c", "2", "-i", "0.2", "-W", "1", dst, check=False)
    return out.returncode == 0


def test_pings_across_hybrid_and_noop_nodes(live):
    assert ping("vm1", live.plan.port("vm2").ip) and ping("vm2", live.plan.port("vm1").ip)
    assert ping("vm5", live.plan.port("vm1").ip)        # routed: noop compute2 -> router1 -> hybrid compute1


def test_noop_enforces_no_security_group(live):
    """vm4 has no security group: blocked on a hybrid node (the classic check), reachable on
    a noop node, because nothing filters there."""
    assert ping("vm1", live.plan.port("vm4").ip)


def test_noop_node_has_no_bridge_and_no_rules(live):
    links = lab("exec", LAB, "compute2", "--", "ip", "-o", "link").stdout
    vm2 = live.plan.port("vm2")
    assert f"{vm2.ovs_port}@" in links and "qbr" not in links and "qvo" not in links
    rules = lab("exec", LAB, "compute2", "--", "iptables-save").stdout
    assert "neutron-openvswi" not in rules
    assert "neutron-openvswi-sg-chain" in lab("exec", LAB, "compute1", "--", "iptables-save").stdout
    ports = lab("exec", LAB, "compute2", "--", "ovs-vsctl", "list-ports", "br-int").stdout.split()
    assert vm2.ovs_port in ports and not [p for p in ports if p.startswith("qvo")]


def test_status_reads_the_plug(live):
    status = json.loads(lab("status", LAB, "--json").stdout)
    assert status["problems"] == []
    inst = {i["name"]: i for i in status["instances"]}
    assert inst["vm2"]["firewall_driver"] == "noop" and set(inst["vm2"]["devices"]) == {"tap"}
    assert inst["vm1"]["firewall_driver"] == "iptables_hybrid"
    assert set(inst["vm1"]["devices"]) == {"tap", "qbr", "qvb", "qvo"}


def test_graph_text(live):
    out = lab("graph", LAB, "--format", "text").stdout
    vm2 = live.plan.port("vm2")
    assert f"eth0 = {vm2.ovs_port} tag {vm2.local_vlan} (net1) --> br-int" in out
    assert "MISSING" not in out


def test_trace_across_the_seam(live):
    t = json.loads(lab("trace", LAB, "vm1", "vm2", "--json").stdout)
    assert t["reached"] and t["verdict"].startswith("delivered"), t["verdict"]
    vm2 = live.plan.port("vm2")
    hops = {h["where"]: h for h in t["hops"]}
    assert hops[f"compute2 {vm2.ovs_port}"]["ok"]
    assert [h["kind"] for h in t["hops"]].count("iptables") == 1     # compute1's egress only
    t = json.loads(lab("trace", LAB, "vm2", "vm1", "--json").stdout)
    assert t["reached"]
    brint = next(h for h in t["hops"] if h["where"] == "compute2 br-int")
    assert any(e.startswith("br-int: table 0") for e in brint["explain"])


def test_status_sees_a_missing_tap(live):
    """Last: damages the lab. A plug device gone is a problem status names."""
    vm4 = live.plan.port("vm4")
    lab("exec", LAB, "compute2", "--", "ip", "link", "del", vm4.ovs_port)
    out = lab("status", LAB, "--json", check=False)
    assert out.returncode == 1
    doc = json.loads(out.stdout)
    [fault] = [f for f in doc["faults"] if f["kind"] == "plug-device-missing"]
    assert (fault["who"], fault["what"]) == ("compute2", f"vm4's {vm4.ovs_port}")
    assert fault["text"].startswith(f"compute2: vm4's {vm4.ovs_port} is missing; ")
    assert doc["problems"] == [f["text"] for f in doc["faults"]]
