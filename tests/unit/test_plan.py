"""Scenario -> Plan for the built-in classic scenarios (classic-vlan; classic-vxlan and
classic-gre for the tunnel parts)."""

from __future__ import annotations

import dataclasses
import ipaddress
import json

import pytest

from lab.core import naming
from lab.core.plan import (DhcpHost, FloatingIP, Plan, PortRule, TunnelEndpoint, TunnelNetwork, TunnelPort,
                      build_plan)
from lab.core.scenario import load_scenario

LAB = "classic-vlan"
DEMO_DEFAULT = ("192.168.1.11/32", "192.168.1.12/32", "192.168.1.13/32", "192.168.2.11/32")
PREFIX_OF_OWNER = {"network:router_interface": "qr-", "network:router_gateway": "qg-", "network:dhcp": "ns-"}


@pytest.fixture(scope="module")
def scenario():
    return load_scenario(LAB)


@pytest.fixture(scope="module")
def plan(scenario):
    return build_plan(scenario)


def namespace_ports(plan):
    return [d.port for d in plan.dhcp_servers] + [p for r in plan.router_instances for p in r.ports]


# --------------------------------------------------------------------------- local VLANs

def test_local_vlans_follow_port_order(plan):
    # compute2's ports in file order: alt-vm1 (alt-net), vm2 (net1), vm4 (net1), vm5 (net2)
    assert plan.node("compute2").local_vlans == (("alt-net", 1), ("net1", 2), ("net2", 3))
    assert plan.node("compute1").local_vlans == (("net1", 1),)
    assert {p.instance: p.local_vlan for p in plan.node("compute2").ports} == {
        "alt-vm1": 1, "vm2": 2, "vm4": 2, "vm5": 3}
    assert {p.instance: p.local_vlan for p in plan.node("compute1").ports} == {"vm1": 1, "vm3": 1}


def test_network_node_local_vlans_dhcp_ports_then_router_ports(plan):
    # DHCP ports first, in network order (ext-net has no DHCP: net1, net2, alt-net), then the
    # router's ports (net1 and net2 already have theirs, ext-net is new)
    n1 = plan.node("network1")
    assert n1.local_vlans == (("net1", 1), ("net2", 2), ("alt-net", 3), ("ext-net", 4))
    assert [(d.network, d.port.local_vlan) for d in n1.dhcp_servers] == [
        ("net1", 1), ("net2", 2), ("alt-net", 3)]
    (r,) = plan.routers_on("network1")
    assert [(p.network, p.local_vlan) for p in r.ports] == [("net1", 1), ("net2", 2), ("ext-net", 4)]
    assert n1.ports == ()


def test_physical_bridge_translations(plan):
    (c1,) = plan.node("compute1").physical_bridges
    (c2,) = plan.node("compute2").physical_bridges
    n1_vlan, n1_ex = plan.node("network1").physical_bridges
    assert c1.vlan_translations == (("net1", 1, 101),)
    # ML2 allocated the VLANs in network order: net1 101, net2 102, alt-net 103
    assert c2.vlan_translations == (("alt-net", 1, 103), ("net1", 2, 101), ("net2", 3, 102))
    assert n1_vlan.vlan_translations == (("net1", 1, 101), ("net2", 2, 102), ("alt-net", 3, 103))
    for b in (c1, c2, n1_vlan):
        assert (b.bridge, b.physical_network, b.nic) == ("br-vlan", "physnet1", "eth1")
        assert (b.int_patch, b.phy_patch) == ("int-br-vlan", "phy-br-vlan")
    # br-ex: the flat external network, untagged on the wire
    assert (n1_ex.bridge, n1_ex.physical_network, n1_ex.nic) == ("br-ex", "external", "eth2")
    assert (n1_ex.int_patch, n1_ex.phy_patch) == ("int-br-ex", "phy-br-ex")
    assert n1_ex.vlan_translations == (("ext-net", 4, None),)


# --------------------------------------------------------------------------- security group rules

def test_port_rules(plan):
    vm1 = plan.port("vm1")
    assert vm1.security_groups == ("default", "web")
    assert vm1.rules == (
        # the default group: egress anywhere, ingress from the project's members (net1 and net2)
        PortRule("egress", "any", None, None, ("0.0.0.0/0",)),
        PortRule("ingress", "any", None, None, DEMO_DEFAULT, "default",
                 naming.security_group_uuid("classic-vlan", "demo", "default")),
        # web: icmp and tcp 5001 from anywhere
        PortRule("ingress", "icmp", None, None, ("0.0.0.0/0",)),
        PortRule("ingress", "tcp", 5001, 5001, ("0.0.0.0/0",)),
    )
    # vm4 has security_groups: [] and alt-vm1 is in another project (same subnet, though)
    assert plan.port("vm4").ip + "/32" not in DEMO_DEFAULT
    assert plan.port("alt-vm1").ip + "/32" not in vm1.rules[1].remotes
    assert plan.port("vm4").security_groups == ()
    assert plan.port("vm4").rules == ()
    assert plan.port("alt-vm1").rules == (
        PortRule("egress", "any", None, None, ("0.0.0.0/0",)),
        PortRule("ingress", "any", None, None, ("192.168.1.21/32",), "default",
                 naming.security_group_uuid("classic-vlan", "alt", "default")))
    # a group's id is its project's: alt's default is another group (another ipset)
    assert plan.port("alt-vm1").rules[1].remote_group_id != vm1.rules[1].remote_group_id
    for name in ("vm2", "vm3", "vm5"):
        assert plan.port(name).rules == vm1.rules[:2], name


# --------------------------------------------------------------------------- instance ports

def test_port_devices_follow_port_id(plan):
    for p in plan.ports:
        assert p.port_id == naming.object_uuid(LAB, "port", p.instance)
        # iptables_hybrid (the default): tap -> qbr -> qvb = qvo -> br-int
        assert p.plug.driver == "iptables_hybrid"
        assert [(d.role, d.name, d.kind) for d in p.plug.devices] == [
            (x, naming.port_device(x, p.port_id), "bridge" if x == "qbr" else "veth")
            for x in ("tap", "qbr", "qvb", "qvo")]
        assert p.ovs_port == naming.port_device("qvo", p.port_id)
        assert {d.netns for d in p.plug.devices} == {plan.node(p.node).netns}
        assert p.netns == f"nlab.classic-vlan.{p.instance}"


def test_ports_are_on_their_nodes(plan):
    assert [p.instance for p in plan.node("compute1").ports] == ["vm1", "vm3"]
    assert [p.instance for p in plan.node("compute2").ports] == ["alt-vm1", "vm2", "vm4", "vm5"]
    assert plan.node("network1").ports == ()


def test_instance_addresses(plan):
    assert {p.instance: (p.ip, p.gateway, p.address, p.floating_ip) for p in plan.ports} == {
        "vm1": ("192.168.1.11", "192.168.1.1", "dhcp", "203.0.113.102"),
        "vm3": ("192.168.1.13", "192.168.1.1", "dhcp", None),
        "alt-vm1": ("192.168.1.21", "192.168.1.1", "dhcp", None),
        "vm2": ("192.168.1.12", "192.168.1.1", "dhcp", None),
        "vm4": ("192.168.1.14", "192.168.1.1", "dhcp", None),
        "vm5": ("192.168.2.11", "192.168.2.1", "dhcp", None),
    }


# --------------------------------------------------------------------------- routers

def test_router(plan, scenario):
    (router,) = plan.routers
    router_id = naming.object_uuid(LAB, "router", "router1")
    assert (router.name, router.router_id, router.project, router.external_network) == (
        "router1", router_id, "demo", "ext-net")
    # legacy: one instance, on the router's network node, named like the router
    (r,) = router.instances
    assert (r.name, r.router, r.node, r.role) == ("router1", "router1", "network1", "legacy")
    assert router.serving("compute1") is router.serving("network1") is r
    assert r.netns == f"nlab.classic-vlan.network1.qrouter-{router_id}"
    assert [(i.network, i.ns_dev[:3], i.ip, i.prefixlen, i.device_owner) for i in r.interfaces] == [
        ("net1", "qr-", "192.168.1.1", 24, "network:router_interface"),
        ("net2", "qr-", "192.168.2.1", 24, "network:router_interface")]
    g = r.gateway
    assert (g.network, g.ns_dev[:3], g.ip, g.prefixlen, g.mtu, g.device_owner) == (
        "ext-net", "qg-", "203.0.113.101", 24, 1500, "network:router_gateway")
    assert g.port_id == naming.object_uuid(LAB, "router-gateway", "router1")
    assert r.external_gateway_ip == "203.0.113.1"
    assert r.floating_ips == (FloatingIP("203.0.113.102", "192.168.1.11", "vm1"),)
    assert r.ports == r.interfaces + (g,)
    assert plan.router("router1") is router
    assert plan.router_instances_of("router1") == plan.router_instances_of(r.name) == (r,)
    assert plan.routers_on("network1") == (r,)
    assert plan.fip_namespaces == ()
    assert plan.routers_on("compute1") == plan.routers_on("compute2") == ()


# --------------------------------------------------------------------------- DHCP

def test_dhcp_servers(plan, scenario):
    assert [d.name for d in plan.dhcp_servers] == ["net1-dhcp", "net2-dhcp", "alt-net-dhcp"]
    assert all(d.node == "network1" for d in plan.dhcp_servers)
    assert plan.node("compute1").dhcp_servers == plan.node("compute2").dhcp_servers == ()
    net1, net2, alt = plan.dhcp_servers
    net1_id = naming.object_uuid(LAB, "network", "net1")
    assert (net1.network, net1.network_id, net1.cidr, net1.mtu) == ("net1", net1_id, "192.168.1.0/24", 1500)
    assert net1.subnet_id == naming.object_uuid(LAB, "subnet", "net1")
    assert net1.netns == f"nlab.classic-vlan.network1.qdhcp-{net1_id}"
    assert net1.dir == f"/run/neutron-lab/classic-vlan/dhcp/{net1_id}"
    p = net1.port
    assert (p.network, p.ip, p.prefixlen, p.device_owner) == ("net1", "192.168.1.2", 24, "network:dhcp")
    assert p.port_id == scenario.network("net1").dhcp_port_id == naming.object_uuid(LAB, "dhcp-port", "net1")
    qr1 = next(p for p in plan.routers[0].instances[0].ports if p.network == "net1")
    # every port the dhcp agent lists: instances, then the router interface (not DHCP ports)
    assert net1.hosts == tuple(DhcpHost(plan.port(vm).mac, f"host-{plan.port(vm).ip.replace('.', '-')}",
                                        plan.port(vm).ip) for vm in ("vm1", "vm3", "vm2", "vm4")) \
        + (DhcpHost(qr1.mac, "host-192-168-1-1", "192.168.1.1"),)
    assert net1.hosts[0] == DhcpHost(plan.port("vm1").mac, "host-192-168-1-11", "192.168.1.11")
    assert [h.ip for h in net2.hosts] == ["192.168.2.11", "192.168.2.1"]
    # options 121/249 only where a router is attached: metadata and default via the gateway
    assert net1.classless_routes == ("169.254.169.254/32,192.168.1.1", "0.0.0.0/0,192.168.1.1")
    assert net2.classless_routes == ("169.254.169.254/32,192.168.2.1", "0.0.0.0/0,192.168.2.1")
    assert net2.port.ip == "192.168.2.2"
    # alt-net overlaps net1 (other project): same addresses, its own namespace and port
    assert (alt.port.ip, [h.ip for h in alt.hosts]) == ("192.168.1.2", ["192.168.1.21"])
    assert alt.classless_routes == ()       # no router on alt-net: an isolated subnet
    assert alt.port.port_id != net1.port.port_id and alt.netns != net1.netns
    # the router option is the subnet's gateway, router or not (as the dhcp agent sends it)
    assert (net1.gateway, net2.gateway, alt.gateway) == ("192.168.1.1", "192.168.2.1", "192.168.1.1")


# --------------------------------------------------------------------------- names of namespace ports

def test_namespace_port_device_names(plan):
    ports = namespace_ports(plan)
    assert len(ports) == 3 + 3
    for p in ports:
        prefix = PREFIX_OF_OWNER[p.device_owner]
        assert p.ovs_dev == naming.port_device("tap", p.port_id) == "tap" + p.port_id[:11]
        assert p.ns_dev == naming.port_device(prefix, p.port_id) == prefix + p.port_id[:11]
        assert len(p.ovs_dev) == len(p.ns_dev) == naming.DEVICE_NAME_LEN
        assert p.mac == naming.port_mac(p.port_id)
    all_devs = [p.ovs_dev for p in ports] + [p.plug.host_device for p in plan.ports]
    assert len(all_devs) == len(set(all_devs))


# --------------------------------------------------------------------------- wires, hosts, namespaces

def test_wires(plan):
    physnet1, external = plan.wires
    assert (physnet1.name, physnet1.netns, physnet1.bridge) == ("physnet1", "nlab.classic-vlan.physnet1", "physnet1")
    assert [dataclasses.astuple(m) for m in physnet1.members] == [
        ("network1", "network1", "nlab.classic-vlan.network1", "eth1", "node"),
        ("compute1", "compute1", "nlab.classic-vlan.compute1", "eth1", "node"),
        ("compute2", "compute2", "nlab.classic-vlan.compute2", "eth1", "node")]
    assert (external.name, external.netns, external.bridge) == ("external", "nlab.classic-vlan.external", "external")
    assert [dataclasses.astuple(m) for m in external.members] == [
        ("network1", "network1", "nlab.classic-vlan.network1", "eth2", "node"),
        ("ext1", "ext1", "nlab.classic-vlan.ext1", "eth0", "external-host")]


def test_external_hosts(plan, scenario):
    (h,) = plan.external_hosts
    assert (h.name, h.netns, h.wire, h.network, h.ip, h.prefixlen, h.mtu) == (
        "ext1", "nlab.classic-vlan.ext1", "external", "ext-net", "203.0.113.50", 24, 1500)
    assert h.mac == scenario.external_hosts[0].mac
    assert plan.external_host("ext1") is h


def test_json_round_trip(plan):
    data = json.loads(json.dumps(plan.to_json()))
    back = Plan.from_json(data)
    assert back == plan
    assert isinstance(back.router("router1").instances[0].floating_ips[0], FloatingIP)


def test_json_round_trip_of_optional_parts(plan):
    """None where a dataclass may be: a router without gateway (None values are in the plan
    already: alt-net-dhcp has no router option, most ports no floating IP)."""
    (router,) = plan.routers
    bare = dataclasses.replace(router.instances[0], gateway=None, external_gateway_ip=None, floating_ips=())
    changed = dataclasses.replace(plan, routers=(dataclasses.replace(router, external_network=None,
                                                                     instances=(bare,)),))
    assert Plan.from_json(json.loads(json.dumps(changed.to_json()))) == changed


def test_namespaces(plan):
    names = plan.namespaces()
    assert all(n.startswith("nlab.classic-vlan.") for n in names)
    # 2 wires, 3 nodes, 6 instances, 1 external host, 1 router, 3 DHCP servers
    assert len(names) == len(set(names)) == 2 + 3 + 6 + 1 + 1 + 3
    assert names[:2] == ["nlab.classic-vlan.physnet1", "nlab.classic-vlan.external"]
    assert names[-4:] == [plan.router("router1").instances[0].netns] + [d.netns for d in plan.dhcp_servers]
    assert all(naming.split_netns(n)[0] == "classic-vlan" for n in names)


def test_targets(plan):
    targets = plan.targets()
    assert targets["compute1"] == ("node", "nlab.classic-vlan.compute1")
    assert targets["physnet1"] == ("wire", "nlab.classic-vlan.physnet1")
    assert targets["vm4"] == ("instance", "nlab.classic-vlan.vm4")
    assert targets["ext1"] == ("external-host", "nlab.classic-vlan.ext1")
    assert targets["router1"] == ("router", plan.router("router1").instances[0].netns)
    assert targets["net1-dhcp"] == ("dhcp", plan.dhcp_servers[0].netns)
    assert sorted(ns for _, ns in targets.values()) == sorted(plan.namespaces())


def test_endpoint_ip(plan):
    assert plan.endpoint_ip("vm1") == "192.168.1.11"
    assert plan.endpoint_ip("ext1") == "203.0.113.50"
    assert plan.endpoint_ip("router1") is None


def test_datapath_and_state_root(scenario):
    plan = build_plan(scenario, datapath="system", state_root="/tmp/state")
    assert plan.datapath == "system"
    assert plan.node("compute1").rundir == "/tmp/state/classic-vlan/nodes/compute1"
    net1_id = naming.object_uuid(LAB, "network", "net1")
    assert plan.dhcp_servers[0].dir == f"/tmp/state/classic-vlan/dhcp/{net1_id}"
    with pytest.raises(ValueError, match="datapath must be one of"):
        build_plan(scenario, datapath="dpdk")


def test_cookie(plan):
    assert plan.cookie == naming.flow_cookie("classic-vlan")


def test_classic_vlan_has_no_tunnels(plan):
    assert (plan.l2_population, plan.arp_responder) == (False, False)
    for n in plan.nodes:
        assert (n.tunnel, n.tunnel_networks) == (None, ())
        assert n.nics == tuple(b.nic for b in n.physical_bridges)
    assert plan.node("network1").nics == ("eth1", "eth2")


# --------------------------------------------------------------------------- tunnels (classic-vxlan, classic-gre)

LOCAL_IP = {"network1": "198.51.100.11", "compute1": "198.51.100.12", "compute2": "198.51.100.13"}
NODES = tuple(LOCAL_IP)


def hex_ip(ip: str) -> str:
    """Neutron's tunnel port suffix: the remote address as 8 hex digits."""
    return f"{int(ipaddress.IPv4Address(ip)):08x}"


@pytest.fixture(scope="module")
def vxlan_scenario():
    return load_scenario("classic-vxlan")


@pytest.fixture(scope="module")
def vxlan(vxlan_scenario):
    return build_plan(vxlan_scenario)


@pytest.fixture(scope="module")
def gre():
    return build_plan(load_scenario("classic-gre"))


def tunnel_net(plan, node: str, network: str) -> TunnelNetwork:
    return next(t for t in plan.node(node).tunnel_networks if t.network == network)


def port_to(plan, node: str, remote: str) -> str:
    return next(p.name for p in plan.node(node).tunnel.ports if p.remote_node == remote)


def test_tunnel_port_names():
    assert hex_ip("198.51.100.12") == "c633640c"
    assert {n: hex_ip(ip) for n, ip in LOCAL_IP.items()} == {
        "network1": "c633640b", "compute1": "c633640c", "compute2": "c633640d"}


@pytest.mark.parametrize("name, ntype", [("vxlan", "vxlan"), ("gre", "gre")])
def test_tunnel_endpoints(name, ntype, request):
    plan = request.getfixturevalue(name)
    for node in NODES:
        t = plan.node(node).tunnel
        assert isinstance(t, TunnelEndpoint)
        # the underlay is the node's only wire besides external: eth1 everywhere
        assert (t.wire, t.nic, t.local_ip, t.prefixlen, t.bridge) == ("underlay", "eth1", LOCAL_IP[node], 24, "br-phy")
        remotes = [r for r in NODES if r != node]
        assert t.ports == tuple(TunnelPort(f"{ntype}-{hex_ip(LOCAL_IP[r])}", ntype, LOCAL_IP[r], r) for r in remotes)
        assert all(len(p.name) <= naming.IFNAMSIZ for p in t.ports)
    assert port_to(plan, "network1", "compute1") == f"{ntype}-c633640c"
    assert port_to(plan, "compute2", "compute1") == f"{ntype}-c633640c"
    assert port_to(plan, "compute1", "network1") == f"{ntype}-c633640b"
    assert port_to(plan, "compute1", "compute2") == f"{ntype}-c633640d"


def test_tunnel_nics_and_bridges(vxlan):
    assert vxlan.node("network1").nics == ("eth2", "eth1")       # br-ex's NIC, then the underlay's
    assert vxlan.node("compute1").nics == vxlan.node("compute2").nics == ("eth1",)
    # the underlay is no provider network: no br-vlan; br-ex (external) on network1 only
    assert [b.bridge for b in vxlan.node("network1").physical_bridges] == ["br-ex"]
    assert vxlan.node("compute1").physical_bridges == vxlan.node("compute2").physical_bridges == ()
    underlay = vxlan.wire("underlay")
    assert [(m.name, m.peer_ifname) for m in underlay.members] == [
        ("network1", "eth1"), ("compute1", "eth1"), ("compute2", "eth1")]


def test_tunnel_endpoint_on_the_kernel_datapath(vxlan_scenario):
    plan = build_plan(vxlan_scenario, datapath="system")
    for node in NODES:
        t = plan.node(node).tunnel
        assert (t.bridge, t.nic, t.local_ip) == (None, "eth1", LOCAL_IP[node])
    assert build_plan(load_scenario("classic-gre"), datapath="system").node("compute1").tunnel.bridge is None


def test_vni_allocation(vxlan):
    assert [(t.network, t.type, t.segmentation_id, t.local_vlan) for t in vxlan.node("network1").tunnel_networks] == [
        ("net1", "vxlan", 1001, 1), ("net2", "vxlan", 1002, 2), ("alt-net", "vxlan", 1003, 3)]
    assert [(t.network, t.segmentation_id, t.local_vlan) for t in vxlan.node("compute2").tunnel_networks] == [
        ("alt-net", 1003, 1), ("net1", 1001, 2), ("net2", 1002, 3)]
    assert [(t.network, t.segmentation_id, t.local_vlan) for t in vxlan.node("compute1").tunnel_networks] == [
        ("net1", 1001, 1)]
    # ext-net is flat on br-ex, not tunnelled
    assert all(t.network != "ext-net" for n in vxlan.nodes for t in n.tunnel_networks)
    assert {p.instance: (p.network_type, p.segmentation_id) for p in vxlan.ports} == {
        "vm1": ("vxlan", 1001), "vm3": ("vxlan", 1001), "alt-vm1": ("vxlan", 1003),
        "vm2": ("vxlan", 1001), "vm4": ("vxlan", 1001), "vm5": ("vxlan", 1002)}


def test_gre_keys(gre):
    assert [(t.network, t.type, t.segmentation_id) for t in gre.node("network1").tunnel_networks] == [
        ("net1", "gre", 1), ("net2", "gre", 2), ("alt-net", "gre", 3)]
    assert {p.instance: (p.network_type, p.segmentation_id) for p in gre.ports} == {
        "vm1": ("gre", 1), "vm3": ("gre", 1), "alt-vm1": ("gre", 3),
        "vm2": ("gre", 1), "vm4": ("gre", 1), "vm5": ("gre", 2)}


@pytest.mark.parametrize("name, mtu", [("vxlan", 1450), ("gre", 1458)])
def test_tunnel_mtu(name, mtu, request):
    plan = request.getfixturevalue(name)
    assert {p.instance: p.mtu for p in plan.ports} == dict.fromkeys(
        ("vm1", "vm3", "alt-vm1", "vm2", "vm4", "vm5"), mtu)
    assert {d.name: d.mtu for d in plan.dhcp_servers} == dict.fromkeys(("net1-dhcp", "net2-dhcp", "alt-net-dhcp"), mtu)
    (r,) = plan.router("router1").instances
    assert [i.mtu for i in r.interfaces] == [mtu, mtu]
    assert r.gateway.mtu == 1500                                # ext-net: flat
    assert plan.external_host("ext1").mtu == 1500


def test_l2pop_flood_lists(vxlan):
    assert (vxlan.l2_population, vxlan.arp_responder) == (True, True)
    # compute1 floods net1 to network1 (DHCP and router ports) and compute2 (vm2, vm4) only
    assert tunnel_net(vxlan, "compute1", "net1").flood_ports == ("vxlan-c633640b", "vxlan-c633640d")
    # alt-net lives on compute2 (alt-vm1) and network1 (its DHCP port): never flooded to compute1
    assert tunnel_net(vxlan, "compute2", "alt-net").flood_ports == ("vxlan-c633640b",)
    assert tunnel_net(vxlan, "network1", "alt-net").flood_ports == ("vxlan-c633640d",)
    assert all(t.network != "alt-net" for t in vxlan.node("compute1").tunnel_networks)
    # net2: network1 (DHCP, router) and compute2 (vm5)
    assert tunnel_net(vxlan, "network1", "net2").flood_ports == ("vxlan-c633640d",)
    assert tunnel_net(vxlan, "compute2", "net2").flood_ports == ("vxlan-c633640b",)
    assert tunnel_net(vxlan, "network1", "net1").flood_ports == ("vxlan-c633640c", "vxlan-c633640d")


def remote_ports(plan, node: str, network: str) -> list[tuple[str, str, str]]:
    """(node, MAC, IP) of every port of the network on another node: instances, DHCP, routers."""
    out = []
    for n in plan.nodes:
        if n.name == node:
            continue
        out += [(n.name, p.mac, p.ip) for p in n.ports if p.network == network]
        out += [(n.name, d.port.mac, d.port.ip) for d in n.dhcp_servers if d.network == network]
        out += [(n.name, q.mac, q.ip) for r in plan.routers_on(n.name) for q in r.ports if q.network == network]
    return out


def test_l2pop_unicast_and_arp_entries_are_the_remote_ports(vxlan):
    for n in vxlan.nodes:
        local_macs = {p.mac for p in n.ports} | {d.port.mac for d in n.dhcp_servers} | \
            {q.mac for r in vxlan.routers_on(n.name) for q in r.ports}
        for t in n.tunnel_networks:
            remote = remote_ports(vxlan, n.name, t.network)
            assert remote, (n.name, t.network)
            assert t.unicast == tuple((mac, port_to(vxlan, n.name, node)) for node, mac, _ in remote)
            assert t.arp == tuple((ip, mac) for _, mac, ip in remote)
            assert not local_macs & {mac for mac, _ in t.unicast}, (n.name, t.network)
    # compute1 answers ARP for net1's DHCP port and router interface and for compute2's vm2 and
    # vm4, never for its own vm1 and vm3
    arp = dict(tunnel_net(vxlan, "compute1", "net1").arp)
    assert set(arp) == {"192.168.1.2", "192.168.1.1", "192.168.1.12", "192.168.1.14"}
    assert arp["192.168.1.12"] == vxlan.port("vm2").mac
    assert not {"192.168.1.11", "192.168.1.13"} & set(arp)
    # the same address on two networks (alt-net overlaps net1): each network has its own entry
    assert dict(tunnel_net(vxlan, "compute2", "alt-net").arp) == {
        "192.168.1.2": next(d.port.mac for d in vxlan.dhcp_servers if d.network == "alt-net")}


def test_without_l2pop_broadcasts_go_to_every_node(gre):
    assert (gre.l2_population, gre.arp_responder) == (False, False)
    for n in gre.nodes:
        every = tuple(p.name for p in n.tunnel.ports)
        for t in n.tunnel_networks:
            assert (t.flood_ports, t.unicast, t.arp) == (every, (), ()), (n.name, t.network)
    # alt-net is flooded to compute1 too, which has no alt-net port
    assert "gre-c633640c" in tunnel_net(gre, "compute2", "alt-net").flood_ports


def test_json_round_trip_with_tunnels(vxlan):
    data = json.loads(json.dumps(vxlan.to_json()))
    back = Plan.from_json(data)
    assert back == vxlan
    t = back.node("compute1").tunnel
    assert isinstance(t, TunnelEndpoint) and isinstance(t.ports[0], TunnelPort)
    tn = back.node("compute1").tunnel_networks[0]
    assert isinstance(tn, TunnelNetwork)
    assert isinstance(tn.flood_ports, tuple) and isinstance(tn.unicast[0], tuple) and isinstance(tn.arp[0], tuple)
    assert (back.l2_population, back.arp_responder) == (True, True)
    assert back.node("compute1").nics == ("eth1",)


def test_json_round_trip_kernel_datapath_without_tunnel_bridge(vxlan_scenario):
    plan = build_plan(vxlan_scenario, datapath="system")
    back = Plan.from_json(json.loads(json.dumps(plan.to_json())))
    assert back == plan
    assert back.node("network1").tunnel.bridge is None
