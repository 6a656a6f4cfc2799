"""Scenario -> Plan for the built-in classic-vlan scenario."""

from __future__ import annotations

import json

import pytest

from lab import naming
from lab.plan import Plan, build_plan
from lab.scenario import load_scenario


@pytest.fixture(scope="module")
def scenario():
    return load_scenario("classic-vlan")


@pytest.fixture(scope="module")
def plan(scenario):
    return build_plan(scenario)


def test_local_vlans_follow_port_order(plan):
    # compute2's ports in file order: alt-vm1 (alt-net), vm2 (net1), vm4 (net1)
    assert plan.node("compute2").local_vlans == (("alt-net", 1), ("net1", 2))
    assert plan.node("compute1").local_vlans == (("net1", 1),)
    assert plan.node("network1").local_vlans == ()
    assert {p.instance: p.local_vlan for p in plan.node("compute2").ports} == {
        "alt-vm1": 1, "vm2": 2, "vm4": 2}
    assert {p.instance: p.local_vlan for p in plan.node("compute1").ports} == {"vm1": 1, "vm3": 1}


def test_br_vlan_translations(plan):
    (c1,) = plan.node("compute1").physical_bridges
    (c2,) = plan.node("compute2").physical_bridges
    (n1,) = plan.node("network1").physical_bridges
    assert c1.vlan_translations == (("net1", 1, 101),)
    assert c2.vlan_translations == (("alt-net", 1, 102), ("net1", 2, 101))
    assert n1.vlan_translations == ()
    for b in (c1, c2, n1):
        assert (b.bridge, b.physical_network, b.nic) == ("br-vlan", "physnet1", "eth1")
        assert (b.int_patch, b.phy_patch) == ("int-br-vlan", "phy-br-vlan")


def test_remote_group_ips(plan, scenario):
    demo_default = {i.ip for i in scenario.instances
                    if scenario.network(i.network).project == "demo" and "default" in i.security_groups}
    vm1 = plan.port("vm1")
    assert set(vm1.remote_group_ips) == demo_default == {"192.168.1.11", "192.168.1.12", "192.168.1.13"}
    assert vm1.remote_group_ips == ("192.168.1.11", "192.168.1.12", "192.168.1.13")
    # vm4 has security_groups: [] and alt-vm1 is in another project (same subnet, though)
    assert plan.port("vm4").ip not in vm1.remote_group_ips
    assert plan.port("alt-vm1").ip not in vm1.remote_group_ips
    assert plan.port("vm4").remote_group_ips == ()
    assert plan.port("vm4").security_groups == ()
    assert plan.port("alt-vm1").remote_group_ips == ("192.168.1.21",)


def test_port_devices_follow_port_id(plan):
    for p in plan.ports:
        assert p.port_id == naming.object_uuid("classic-vlan", "port", p.instance)
        assert (p.tap, p.qbr, p.qvb, p.qvo) == tuple(naming.port_device(x, p.port_id)
                                                     for x in ("tap", "qbr", "qvb", "qvo"))
        assert p.netns == f"nlab.classic-vlan.{p.instance}"


def test_ports_are_on_their_nodes(plan):
    assert [p.instance for p in plan.node("compute1").ports] == ["vm1", "vm3"]
    assert [p.instance for p in plan.node("compute2").ports] == ["alt-vm1", "vm2", "vm4"]
    assert plan.node("network1").ports == ()


def test_wires(plan):
    (wire,) = plan.wires
    assert (wire.name, wire.netns, wire.bridge) == ("physnet1", "nlab.classic-vlan.physnet1", "physnet1")
    assert [(m.node, m.wire_ifname, m.node_ifname) for m in wire.members] == [
        ("network1", "network1", "eth1"), ("compute1", "compute1", "eth1"), ("compute2", "compute2", "eth1")]


def test_json_round_trip(plan):
    data = json.loads(json.dumps(plan.to_json()))
    assert Plan.from_json(data) == plan


def test_namespaces(plan):
    names = plan.namespaces()
    assert all(n.startswith("nlab.classic-vlan.") for n in names)
    assert len(names) == len(set(names)) == 1 + 3 + 5
    assert names[0] == "nlab.classic-vlan.physnet1"
    assert all(naming.split_netns(n)[0] == "classic-vlan" for n in names)


def test_targets(plan):
    targets = plan.targets()
    assert targets["compute1"] == ("node", "nlab.classic-vlan.compute1")
    assert targets["physnet1"] == ("wire", "nlab.classic-vlan.physnet1")
    assert targets["vm4"] == ("instance", "nlab.classic-vlan.vm4")


def test_datapath_and_state_root(scenario):
    plan = build_plan(scenario, datapath="system", state_root="/tmp/state")
    assert plan.datapath == "system"
    assert plan.node("compute1").rundir == "/tmp/state/classic-vlan/nodes/compute1"
    with pytest.raises(ValueError, match="datapath must be one of"):
        build_plan(scenario, datapath="dpdk")


def test_cookie(plan):
    assert plan.cookie == naming.flow_cookie("classic-vlan")
