"""Port plugs per firewall driver (lab/core/plugs/): iptables_hybrid is today's plug (the
golden files of the classic scenarios pin it), noop proves the seam: classic-vlan with
compute2 on `firewall_driver = noop` plugs its taps straight into br-int, keeps no iptables
rules, and the plan, render, trace and graph handle it without knowing the driver.

Golden files of the noop variant: tests/golden/classic-vlan-noop/ (UPDATE_GOLDEN=1 rewrites)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from lab.core import naming, plugs
from lab.core.plan import Plan, build_plan
from lab.core.render import describe, render_plan
from lab.tools import graph, trace
from test_golden import GOLDEN, check_golden, ovsdb_text, scenario_for_golden

NOOP_NODE = "compute2"


def with_driver(scenario, node: str, driver: str):
    return dataclasses.replace(scenario, nodes=tuple(
        dataclasses.replace(n, firewall_driver=driver) if n.name == node else n for n in scenario.nodes))


@pytest.fixture(scope="module")
def hybrid():
    return build_plan(scenario_for_golden("classic-vlan"))


@pytest.fixture(scope="module")
def noop():
    return build_plan(with_driver(scenario_for_golden("classic-vlan"), NOOP_NODE, "noop"))


def test_registry_names_every_driver():
    assert tuple(plugs._registry()) == plugs.DRIVERS == ("iptables_hybrid", "noop", "openvswitch")
    for name in plugs.DRIVERS:
        d = plugs.driver(name)
        assert d.name == name and d.hybrid_plug == (name == "iptables_hybrid") == d.iptables
        assert d.provides_arp_spoofing_protection == (name == "openvswitch")
    with pytest.raises(ValueError, match="firewall_driver 'ovn' is not one of: iptables_hybrid, noop, openvswitch"):
        plugs.driver("ovn")


def test_noop_port_is_a_tap_on_br_int(noop):
    node = noop.node(NOOP_NODE)
    assert node.firewall_driver == "noop" and noop.node("compute1").firewall_driver == "iptables_hybrid"
    for p in node.ports:
        tap = naming.port_device("tap", p.port_id)
        assert p.plug == plugs.Plug("noop", (plugs.PlugDevice("tap", tap, "veth", node.netns),), tap)
        assert p.ovs_port == p.plug.host_device == tap
        with pytest.raises(KeyError, match="a noop plug has no qbr device"):
            p.plug.device("qbr")


def test_noop_changes_nothing_but_its_node(hybrid, noop):
    """Same names, VLANs and ports everywhere; only compute2's plugs differ."""
    assert [n.name for n in noop.nodes] == [n.name for n in hybrid.nodes]
    for a, b in zip(hybrid.nodes, noop.nodes):
        if a.name != NOOP_NODE:
            assert a == b
        else:
            assert a.local_vlans == b.local_vlans
            assert [dataclasses.replace(p, plug=None) for p in a.ports] == \
                   [dataclasses.replace(p, plug=None) for p in b.ports]
    hybrid_r, noop_r = render_plan(hybrid), render_plan(noop)
    for name in ("network1", "compute1"):
        assert hybrid_r[name] == noop_r[name]


def test_noop_render_has_no_iptables_and_no_hybrid_devices(noop):
    r = render_plan(noop)[NOOP_NODE]
    assert r.iptables == ""
    text = "".join(r.ovsdb) + "".join(r.flows.values())
    for prefix in ("qbr", "qvb", "qvo"):
        assert prefix not in text
    for p in noop.node(NOOP_NODE).ports:
        assert f"in_port={p.ovs_port}," in r.flows["br-int"]
        assert ("add-port", "br-int", p.ovs_port) == r.ovsdb[r.ovsdb.index(p.ovs_port) - 2:r.ovsdb.index(p.ovs_port) + 1]


def noop_files(plan: Plan) -> dict[str, str]:
    r = render_plan(plan)[NOOP_NODE]
    files = {"classic-vlan-noop/show.txt": describe(plan),
             f"classic-vlan-noop/{NOOP_NODE}/ovsdb.txt": ovsdb_text(r.ovsdb)}
    files |= {f"classic-vlan-noop/{NOOP_NODE}/{b}.flows": text for b, text in r.flows.items()}
    return files


def test_noop_render_is_pinned(noop):
    files = noop_files(noop)
    for path, text in files.items():
        check_golden(GOLDEN / path, text)
    present = {str(p.relative_to(GOLDEN)) for p in (GOLDEN / "classic-vlan-noop").rglob("*") if p.is_file()}
    assert present == set(files)


def test_plug_survives_json(noop):
    back = Plan.from_json(json.loads(json.dumps(noop.to_json())))
    assert back == noop
    assert isinstance(back.port("vm2").plug, plugs.Plug)
    assert isinstance(back.port("vm1").plug.devices[1], plugs.PlugDevice)


def test_trace_follows_the_plug(hybrid, noop):
    """vm1 (hybrid, compute1) -> vm2 (noop, compute2): iptables on the way out, none on the
    way in; the OVS entry on compute2 is the tap."""
    def where(plan):
        b, _, _ = trace.build_path(plan, "vm1", "vm2")
        return [h.where for h in b.hops], b
    hops, b = where(noop)
    vm2 = noop.port("vm2")
    assert hops[-2:] == [f"compute2 {vm2.ovs_port}", "vm2 eth0"]
    assert [h.kind for h in b.hops].count("iptables") == 1
    (fw,) = [h for h in b.hops if h.kind == "iptables"]
    assert b.chains[id(fw)][0] == naming.sg_chain("o", noop.port("vm1").port_id)
    hybrid_hops, hb = where(hybrid)
    assert [h.kind for h in hb.hops].count("iptables") == 2
    assert hops == hybrid_hops[:-4] + [f"compute2 {vm2.ovs_port}", "vm2 eth0"]
    back, _, _ = trace.build_path(noop, "vm2", "vm1")
    assert [h.where for h in back.hops][:3] == ["vm2 eth0", f"compute2 {vm2.ovs_port}", "compute2 br-int"]
    assert back.ovs_entries[0][2]["in_port"] == vm2.ovs_port


def test_graph_follows_the_plug(noop):
    g = graph.build(noop)
    text = graph.to_text(g)
    vm2, vm1 = noop.port("vm2"), noop.port("vm1")
    assert f"-- eth0 = {vm2.ovs_port} tag {vm2.local_vlan} (net1) --> br-int" in text
    assert f"-- eth0 = {vm1.plug.host_device} (net1) --> {vm1.plug.devices[1].name} (iptables)" in text
    bridges = [b for b in g.boxes if b.kind == "linux-bridge"]
    assert [b.cluster for b in bridges] == ["node__compute1"] * len(noop.node("compute1").ports)
