"""What `status` expects of each namespace (lab/core/expect.py) and how a difference is named
(lab/runtime/inventory.py: compare, flow counts per table), without a kernel: the kernel
side is tests/integration/test_repair.py."""

from __future__ import annotations

import pytest

from lab.core import expect, naming, routers
from lab.core.expect import Address, Expected, Neighbour, Route
from lab.core.plan import build_plan
from lab.core.scenario import load_scenario
from lab.runtime import inventory
from lab.runtime.inventory import Seen


@pytest.fixture(scope="module")
def plan():
    return build_plan(load_scenario("classic-vlan"))


@pytest.fixture(scope="module")
def dvr():
    return build_plan(load_scenario("dvr-vlan"))


def by_who(plan):
    return {e.who: e for e in expect.expected(plan)}


def test_every_namespace_has_one_entry_in_plan_order(plan, dvr):
    for p in (plan, dvr):
        assert [e.netns for e in expect.expected(p)] == p.namespaces()


def test_router_expects_its_ports_addresses_floating_ips_route_and_sysctls(plan):
    r = plan.router_instances[0]
    e = by_who(plan)[f"router {r.name}"]
    assert set(e.links) == {p.ns_dev for p in r.ports}
    assert Address(r.gateway.ns_dev, r.floating_ips[0].address, 32) in e.addresses
    assert all(Address(p.ns_dev, p.ip, p.prefixlen) in e.addresses for p in r.ports)
    assert e.routes == (Route("0.0.0.0/0", r.external_gateway_ip, r.gateway.ns_dev),)
    assert set(routers.QROUTER_SYSCTLS) <= set(e.sysctls)


def test_dvr_router_expects_its_permanent_neighbours(dvr):
    r = next(i for i in dvr.router_instances if i.neighbours)
    e = by_who(dvr)[f"router {r.name}"]
    assert e.neighbours == tuple(Neighbour(n.dev, n.ip, n.mac) for n in r.neighbours)


def test_dhcp_instance_expects_option_121_routes_and_a_static_one_its_default(plan):
    vm1 = by_who(plan)["instance vm1"]
    assert vm1.dhcp_client and vm1.links == ("eth0",)
    assert Route("169.254.169.254/32", "192.168.1.1", "eth0") in vm1.routes
    assert Route("0.0.0.0/0", "192.168.1.1", "eth0") in vm1.routes
    # alt-net has no router but isolated metadata: option 121 routes 169.254.169.254 via the
    # DHCP port and the default via the gateway
    assert set(by_who(plan)["instance alt-vm1"].routes) == {
        Route("169.254.169.254/32", "192.168.1.2", "eth0"), Route("0.0.0.0/0", "192.168.1.1", "eth0")}


def test_nodes_expect_their_nics_and_agent_taps_and_hybrid_nodes_bridged_iptables(plan):
    n = by_who(plan)["network1"]
    taps = {p.ovs_dev for r in plan.routers_on("network1") for p in r.ports}
    assert taps <= set(n.links) and set(plan.node("network1").nics) <= set(n.links)
    assert expect.BRIDGED_IPTABLES[0] in by_who(plan)["compute1"].sysctls


def seen(**kw) -> Seen:
    base = dict(links={}, addresses=set(), routes=set(), neighbours={}, sysctls={})
    return Seen(**(base | kw))


E = Expected("nlab.x.r", "router r1", links=("qr-1", "qg-1"),
             addresses=(Address("qr-1", "10.0.0.1", 24), Address("qg-1", "203.0.113.5", 24)),
             routes=(Route("0.0.0.0/0", "203.0.113.1", "qg-1"),),
             neighbours=(Neighbour("qr-1", "10.0.0.5", "fa:16:3e:00:00:05"),),
             sysctls=(("net.ipv4.ip_forward", "1"),))

HEALTHY = dict(links={"qr-1": True, "qg-1": True},
               addresses={("qr-1", "10.0.0.1", 24), ("qg-1", "203.0.113.5", 24)},
               routes={("0.0.0.0/0", "203.0.113.1", "qg-1")},
               neighbours={("qr-1", "10.0.0.5"): ("fa:16:3e:00:00:05", 0x80)},
               sysctls={"net.ipv4.ip_forward": "1"})


def test_a_healthy_namespace_has_no_fault():
    assert inventory.compare(E, seen(**HEALTHY), "lab1") == []


@pytest.mark.parametrize("change, kind, words", [
    ({"links": {"qr-1": True, "qg-1": False}}, "link-down", "router r1: qg-1 is down"),
    ({"links": {"qr-1": True}}, "link-missing", "qg-1 is missing; `lab up lab1` cannot make it alone"),
    ({"addresses": {("qg-1", "203.0.113.5", 24)}}, "address", "router r1: qr-1 lacks its address 10.0.0.1/24"),
    ({"routes": set()}, "route", "no default route via 203.0.113.1 on qg-1; `lab up lab1` puts it back"),
    ({"neighbours": {("qr-1", "10.0.0.5"): ("fa:16:3e:00:00:05", 0x2)}}, "neighbour",
     "no permanent neighbour entry 10.0.0.5 fa:16:3e:00:00:05 on qr-1"),
    ({"sysctls": {"net.ipv4.ip_forward": "0"}}, "sysctl",
     "sysctl net.ipv4.ip_forward is 0, expected 1; `lab up lab1` sets it again"),
])
def test_each_difference_is_one_fault_in_words(change, kind, words):
    faults = inventory.compare(E, seen(**(HEALTHY | change)), "lab1")
    assert [f.kind for f in faults] == [kind]
    assert words in faults[0].text()
    assert faults[0].to_json()["text"] == faults[0].text()


def test_a_down_link_hides_what_it_explains():
    """A link set down loses its routes: one fault, not three."""
    s = seen(**(HEALTHY | {"links": {"qr-1": True, "qg-1": False}, "routes": set()}))
    assert [f.kind for f in inventory.compare(E, s, "lab1")] == ["link-down"]


def test_a_sysctl_the_kernel_lacks_is_not_a_fault():
    s = seen(**(HEALTHY | {"sysctls": {"net.ipv4.ip_forward": None}}))
    assert inventory.compare(E, s, "lab1") == []


def test_a_dhcp_instance_without_its_address_asks_for_a_lease():
    e = Expected("nlab.x.vm1", "instance vm1", links=("eth0",), addresses=(Address("eth0", "10.0.0.5", 24),),
                 dhcp_client=True)
    [f] = inventory.compare(e, seen(links={"eth0": True}), "lab1")
    assert "a DHCP client asks for it again" in f.text()


def test_flows_are_counted_per_table():
    rendered = ["cookie=0x1,table=0,priority=2,in_port=1,actions=drop",
                "cookie=0x1,priority=1,actions=resubmit(,60)",
                "cookie=0x1,table=60,priority=3,actions=learn(table=20,priority=1),NORMAL"]
    assert inventory._tables(rendered) == {0: 2, 60: 1}
    dumped = [" cookie=0x1, duration=3.1s, table=0, n_packets=0, n_bytes=0, priority=2,in_port=1 actions=drop"]
    assert inventory._tables(dumped) == {0: 1}


def test_a_flow_is_the_labs_by_its_cookie_as_ovs_prints_it():
    assert inventory._cookie(" cookie=0x4f198a62ea93a82, duration=1s, table=0, priority=1 actions=drop") \
        == 0x04f198a62ea93a82
    assert inventory._cookie("cookie=0x0,table=0,priority=100,actions=drop") == 0


def test_every_missing_address_of_a_device_is_named():
    """A floating IP beside the gateway address: both gone, both named (and put back)."""
    e = Expected("nlab.x.r", "router r1", links=("qg-1",),
                 addresses=(Address("qg-1", "203.0.113.5", 24), Address("qg-1", "203.0.113.6", 32)),
                 routes=(Route("0.0.0.0/0", "203.0.113.1", "qg-1"),))
    faults = inventory.compare(e, seen(links={"qg-1": True}), "lab1")
    assert [f.what for f in faults] == ["203.0.113.5/24 on qg-1", "203.0.113.6/32 on qg-1"]


def test_status_compares_the_iptables_of_every_dvr_namespace(dvr, monkeypatch):
    """Every namespace `up` applies rules in is compared with what it recorded: each fip- (its
    raw notrack rule), each router instance (a compute's qrouter-: DNAT and float-snat; snat-)."""
    from lab.paths import lab_dir
    from lab.runtime import health
    asked = {}
    monkeypatch.setattr(health, "iptables_fault",
                        lambda who, rules_file, ns, lab: asked.setdefault(ns, (who, rules_file)) and None)
    assert health.iptables_faults(dvr) == []
    for f in dvr.fip_namespaces:
        assert asked[f.netns] == (f.name, lab_dir(dvr.lab) / naming.router_rules_file(f.name))
    for r in dvr.router_instances:
        assert asked[r.netns] == (f"router {r.name}", lab_dir(dvr.lab) / naming.router_rules_file(r.name))
    assert len(asked) == len(dvr.nodes) + len(dvr.router_instances) + len(dvr.fip_namespaces)


def test_a_rule_gone_from_a_fip_namespace_is_named(tmp_path, monkeypatch):
    from lab.runtime import health
    rules = tmp_path / "fip-ext-net@compute1.rules"
    applied = ["*raw", ":PREROUTING ACCEPT [0:0]", "-A PREROUTING -j neutron-l3-agent-PREROUTING",
               "-A neutron-l3-agent-PREROUTING -j CT --notrack", "COMMIT"]
    monkeypatch.setattr(health, "iptables_now", lambda ns: applied)
    monkeypatch.setattr(health.netns, "exists", lambda ns: True)
    health.record_iptables(rules, "nlab.x.compute1.fip-1")
    assert health.iptables_fault("fip-ext-net@compute1", rules, "nlab.x.compute1.fip-1", "x") is None
    monkeypatch.setattr(health, "iptables_now", lambda ns: applied[:3] + applied[4:])
    p = health.iptables_fault("fip-ext-net@compute1", rules, "nlab.x.compute1.fip-1", "x").text()
    assert p == ("fip-ext-net@compute1: its iptables rules differ from what `up` applied (1 rule(s) missing, "
                 "0 unexpected; first missing: `-A neutron-l3-agent-PREROUTING -j CT --notrack`); "
                 "`lab up x` re-applies them")
