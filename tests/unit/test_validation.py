"""Scenario validation: every bad input is reported with its file:line, its dotted `where` path
and a message that says what is wrong. One case per bad input, each a mutation of BASE.

Line numbers are never hard-coded: ``line_of(text, snippet)`` finds the (unique) line of the
mutated text that the problem must point at, so the assertion is exact yet survives edits of
BASE.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from helpers import line_of, only_problem, parse, problems_of
from lab.core import naming
from lab.errors import ScenarioError
from lab.core.scenario import parse_scenario

BASE = """\
name: unit
description: two computes and a network node on one VLAN physical network
nodes:
  network1:
    role: network
  compute1:
    role: compute
  compute2:
    role: compute
physical_networks:
  physnet1:
    bridge: br-vlan
    vlan_ranges: ['101:199']
    nodes: [network1, compute1, compute2]
projects: [demo]
networks:
  net1:
    project: demo
    type: vlan
    physical_network: physnet1
    segmentation_id: 101
    cidr: 10.0.0.0/24
    gateway: 10.0.0.1
instances:
  vm1:
    node: compute1
    network: net1
    ip: 10.0.0.11
  vm2:
    node: compute2
    network: net1
    ip: 10.0.0.12
checks:
  - name: vm1 to vm2
    from: vm1
    to: vm2
    expect: reach
    path:
      - crosses: physnet1
        vlan: 101
"""


# --------------------------------------------------------------------------- mutations

def mutate(old: str, new: str, text: str = BASE) -> str:
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times"
    return text.replace(old, new)


def _block(name: str, fields: dict[str, str | None], indent: str = "  ") -> str:
    lines = [f"{indent}{name}:"]
    lines += [f"{indent}  {k}: {v}" for k, v in fields.items() if v is not None]
    return "\n".join(lines) + "\n"


def insert_before(marker: str, block: str, text: str = BASE) -> str:
    return mutate(marker, block + marker, text)


def with_node(name: str, role: str = "compute", text: str = BASE) -> str:
    return insert_before("physical_networks:\n", _block(name, {"role": role}), text)


def with_physnet(name: str = "physnet2", text: str = BASE, **fields: str | None) -> str:
    body = {"bridge": "br-two", "vlan_ranges": "['201:299']"} | fields
    return insert_before("projects:", _block(name, body), text)


def with_network(name: str = "net2", text: str = BASE, **fields: str | None) -> str:
    """A second network net2 (valid as given: demo, VLAN 102, 10.2.0.0/24), fields overridden;
    a field set to None is left out."""
    body = {"project": "demo", "type": "vlan", "physical_network": "physnet1",
            "segmentation_id": "102", "cidr": "10.2.0.0/24"} | fields
    return insert_before("instances:\n", _block(name, body), text)


def with_instance(name: str = "vm3", text: str = BASE, **fields: str | None) -> str:
    body = {"node": "compute1", "network": "net1", "ip": "10.0.0.13"} | fields
    return insert_before("checks:\n", _block(name, body), text)


def with_check(text: str = BASE, path: str | None = None, **fields: str | None) -> str:
    """A second check (checks[1]) from vm1 to vm2; `path` is raw YAML for its path list."""
    body = {"name": "extra", "from": "vm1", "to": "vm2", "expect": "reach"} | fields
    items = [(k, v) for k, v in body.items() if v is not None]
    lines = [f"  - {items[0][0]}: {items[0][1]}"] + [f"    {k}: {v}" for k, v in items[1:]]
    if path is not None:
        lines += ["    path:"] + [f"      {p}" for p in path.splitlines()]
    return text + "\n".join(lines) + "\n"


def with_path(item: str) -> str:
    """BASE with the path of checks[0] replaced by one item (raw YAML, may span lines)."""
    lines = item.splitlines()
    raw = "\n".join([f"      - {lines[0]}"] + [f"        {x}" for x in lines[1:]]) + "\n"
    return mutate("      - crosses: physnet1\n        vlan: 101\n", raw)


# --------------------------------------------------------------------------- the valid base

def test_base_is_valid_and_records_lines():
    s = parse(BASE)
    assert s.name == "unit"
    assert [n.name for n in s.nodes] == ["network1", "compute1", "compute2"]
    assert s.node("compute1").line == line_of(BASE, "  compute1:")
    assert s.network("net1").line == line_of(BASE, "  net1:")
    assert s.instance("vm2").line == line_of(BASE, "  vm2:")
    assert s.physical_network("physnet1").vlan_ranges == ((101, 199),)
    assert s.checks[0].line == line_of(BASE, "- name: vm1 to vm2")
    assert s.checks[0].path[0].line == line_of(BASE, "- crosses: physnet1")
    vm1 = s.instance("vm1")
    assert vm1.port_id == naming.object_uuid("unit", "port", "vm1")
    assert vm1.mac == naming.port_mac(vm1.port_id)
    assert vm1.security_groups == ("default",)
    assert (vm1.address, vm1.floating_ip) == ("dhcp", None)     # net1 has DHCP (the default)
    net1 = s.network("net1")
    assert (net1.external, net1.dhcp, net1.dhcp_ip, net1.allocation_pool) == (False, True, "10.0.0.2", None)
    assert net1.dhcp_port_id == naming.object_uuid("unit", "dhcp-port", "net1")
    assert net1.network_id == naming.object_uuid("unit", "network", "net1")
    assert (s.security_groups, s.routers, s.external_hosts) == ((), (), ())


def test_default_name_is_used_without_name_key():
    text = mutate("name: unit\n", "")
    assert parse_scenario(text, "x.yaml", default_name="from-file").name == "from-file"


# --------------------------------------------------------------------------- one case each

Message = str | Callable[[str], str]


def case(id: str, text: str, at: str | tuple[str, int], where: str, message: Message, marks=()):
    return pytest.param(text, at, where, message, id=id, marks=marks)


CASES = [
    # ---- the file itself
    case("yaml-syntax", mutate("  vm2:\n    node: compute2", "  vm2:\n\tnode: compute2"),
         "\tnode: compute2", "(file)", "not valid YAML: found character '\\t' that cannot start any token"),
    case("duplicate-key", mutate("    ip: 10.0.0.11\n", "    ip: 10.0.0.11\n    ip: 10.0.0.21\n"),
         "ip: 10.0.0.21", "instances.vm1.ip",
         lambda t: f"duplicate key (first at line {line_of(t, 'ip: 10.0.0.11')})"),
    case("duplicate-instance", with_instance("vm1", ip="10.0.0.21"),
         ("  vm1:", -1), "instances.vm1",
         lambda t: f"duplicate key (first at line {line_of(t, '  vm1:', 0)})"),
    case("unknown-top-level-key", BASE + "firewalls:\n  f1: {}\n", "firewalls:", "firewalls",
         "unknown key (expected one of: name, description, include, ml2, agent, nodes, physical_networks, "
         "projects, networks, security_groups, instances, routers, external_hosts, checks)"),
    case("bad-lab-name", mutate("name: unit", "name: Unit_Lab"), "name: Unit_Lab", "name",
         "lab name 'Unit_Lab' must be lowercase letters"),
    case("project-twice", mutate("projects: [demo]", "projects: [demo, demo]"), "projects:",
         "projects", "project 'demo' is listed twice"),
    case("bad-project-name", mutate("projects: [demo]", "projects: [demo, Alt]"), "projects:",
         "projects", "project name 'Alt' must be lowercase"),
    # ---- nodes
    case("unknown-node-key", mutate("    role: network\n", "    role: network\n    flavor: m1.small\n"),
         "flavor:", "nodes.network1.flavor", "unknown key (expected one of: role, local_ip, firewall_driver, agent_mode, enable_ipset)"),
    case("bad-role", mutate("  compute2:\n    role: compute", "  compute2:\n    role: storage"),
         "role: storage", "nodes.compute2.role", "'storage' is not one of: network, compute"),
    case("network-project-is-a-list", mutate("    project: demo\n    type: vlan", "    project: [demo]\n    type: vlan"),
         "project: [demo]", "networks.net1.project", "must be a string, not a list", marks=()),
    case("firewall-driver-unknown",
         mutate("  compute2:\n    role: compute\n", "  compute2:\n    role: compute\n    firewall_driver: iptables\n"),
         "firewall_driver: iptables", "nodes.compute2.firewall_driver",
         "unknown firewall driver 'iptables' (built: iptables_hybrid, noop, openvswitch)"),
    case("firewall-driver-not-a-string",
         mutate("  compute2:\n    role: compute\n", "  compute2:\n    role: compute\n    firewall_driver: [noop]\n"),
         "firewall_driver: [noop]", "nodes.compute2.firewall_driver", "must be a string, not a list"),
    case("node-name-too-long", with_node("compute-number-3"), "compute-number-3:",
         "nodes.compute-number-3", "name 'compute-number-3' is 16 characters; at most 15"),
    case("node-name-uppercase", with_node("Compute3"), "Compute3:", "nodes.Compute3",
         "name 'Compute3' must start with a lowercase letter and hold only lowercase letters"),
    case("node-name-underscore", with_node("compute_3"), "compute_3:", "nodes.compute_3",
         "name 'compute_3' must start with a lowercase letter"),
    case("node-name-digit-first", with_node("3compute"), "3compute:", "nodes.3compute",
         "must start with a lowercase letter"),
    # ---- physical networks
    case("physnet-unknown-node",
         mutate("nodes: [network1, compute1, compute2]", "nodes: [network1, compute1, compute2, compute9]"),
         "compute9", "physical_networks.physnet1.nodes", "unknown node 'compute9'"),
    case("physnet-unknown-node-block-list",
         mutate("    nodes: [network1, compute1, compute2]\n",
                "    nodes:\n      - network1\n      - compute1\n      - compute2\n      - compute9\n"),
         "- compute9", "physical_networks.physnet1.nodes", "unknown node 'compute9'"),
    case("physnet-node-twice",
         mutate("nodes: [network1, compute1, compute2]", "nodes: [network1, compute1, compute2, compute1]"),
         "nodes: [network1", "physical_networks.physnet1.nodes", "lists a node twice"),
    case("bridge-br-int", mutate("bridge: br-vlan", "bridge: br-int"), "bridge: br-int",
         "physical_networks.physnet1.bridge", "br-int is Neutron's own bridge"),
    case("bridge-br-tun", mutate("bridge: br-vlan", "bridge: br-tun"), "bridge: br-tun",
         "physical_networks.physnet1.bridge", "br-tun is Neutron's own bridge"),
    case("bridge-too-long", mutate("bridge: br-vlan", "bridge: br-physical1"), "bridge: br-physical1",
         "physical_networks.physnet1.bridge",
         "bridge name 'br-physical1' must be lowercase letters, digits and '-', at most 10 characters"),
    case("bridge-uppercase", mutate("bridge: br-vlan", "bridge: br-VLAN"), "bridge: br-VLAN",
         "physical_networks.physnet1.bridge", "bridge name 'br-VLAN' must be lowercase"),
    case("bridge-shared", with_physnet(bridge="br-vlan"), ("bridge: br-vlan", -1),
         "physical_networks.physnet2.bridge",
         lambda t: f"bridge br-vlan already maps another physical network "
                   f"(line {line_of(t, 'bridge: br-vlan', 0)})"),
    case("physnet-name-clash", with_physnet("compute1"), ("  compute1:", -1),
         "physical_networks.compute1",
         lambda t: f"name 'compute1' is already used by a node at line {line_of(t, '  compute1:', 0)}"),
    case("vlan-range-malformed",
         mutate("vlan_ranges: ['101:199']", "vlan_ranges: ['101:199', '200-299']"),
         "vlan_ranges:", "physical_networks.physnet1.vlan_ranges", "'200-299' is not a range like '101:199'"),
    case("vlan-range-out-of-range",
         mutate("vlan_ranges: ['101:199']", "vlan_ranges: ['101:199', '4000:4095']"),
         "vlan_ranges:", "physical_networks.physnet1.vlan_ranges",
         "range 4000:4095 must satisfy 1 <= first <= last <= 4094"),
    case("vlan-range-zero",
         mutate("vlan_ranges: ['101:199']", "vlan_ranges: ['101:199', '0:10']"),
         "vlan_ranges:", "physical_networks.physnet1.vlan_ranges", "range 0:10 must satisfy"),
    case("vlan-range-reversed-block-list",
         mutate("    vlan_ranges: ['101:199']\n", "    vlan_ranges:\n      - '101:199'\n      - '300:200'\n"),
         "- '300:200'", "physical_networks.physnet1.vlan_ranges", "range 300:200 must satisfy"),
    # ---- networks
    case("network-unknown-project", mutate("    project: demo\n", "    project: nobody\n"),
         "project: nobody", "networks.net1.project", "unknown project 'nobody'"),
    case("network-unknown-key", with_network(qos="gold"), "qos: gold", "networks.net2.qos",
         "unknown key (expected one of: project, type, physical_network, segmentation_id, cidr, "
         "gateway, mtu, external, allocation_pool, dhcp)"),
    case("network-local", with_network(type="local"), "type: local", "networks.net2.type",
         "network type 'local' is not supported yet (supported: vlan, flat, vxlan, gre)"),
    case("network-geneve", with_network(type="geneve"), "type: geneve", "networks.net2.type",
         "network type 'geneve' is not supported yet (supported: vlan, flat, vxlan, gre)"),
    case("network-unknown-type", with_network(type="ethernet"), "type: ethernet", "networks.net2.type",
         "unknown network type 'ethernet' (supported: vlan, flat, vxlan, gre)"),
    case("network-unknown-physnet", with_network(physical_network="physnet9"), "physnet9",
         "networks.net2.physical_network", "unknown physical network 'physnet9'"),
    case("vlan-outside-physnet-ranges", with_network(segmentation_id="300"), "segmentation_id: 300",
         "networks.net2.segmentation_id", "VLAN id 300 is outside physnet1's vlan_ranges (101:199)"),
    case("vlan-zero", with_network(segmentation_id="0"), "segmentation_id: 0",
         "networks.net2.segmentation_id", "VLAN id 0 is out of range 1-4094"),
    case("vlan-5000", with_network(segmentation_id="5000"), "segmentation_id: 5000",
         "networks.net2.segmentation_id", "VLAN id 5000 is out of range 1-4094"),
    case("vlan-not-integer", with_network(segmentation_id="abc"), "segmentation_id: abc",
         "networks.net2.segmentation_id", "must be an integer, not str 'abc'"),
    case("vlan-used-twice", with_network(segmentation_id="101"), "  net2:", "networks.net2",
         lambda t: f"VLAN 101 of physnet1 is already used by network net1 (line {line_of(t, '  net1:')})"),
    case("flat-with-segmentation-id", with_network(type="flat", segmentation_id="150"),
         "segmentation_id: 150", "networks.net2.segmentation_id", "a flat network has no segmentation id"),
    case("flat-twice", with_network("net3", with_network(type="flat", segmentation_id=None),
                                    type="flat", segmentation_id=None, cidr="10.3.0.0/24"),
         "  net3:", "networks.net3",
         lambda t: f"the flat segment of physnet1 is already used by network net2 (line {line_of(t, '  net2:')})"),
    case("cidr-malformed", with_network(cidr="10.2.0.0/33"), "cidr: 10.2.0.0/33", "networks.net2.cidr",
         "'10.2.0.0/33' is not an IPv4 CIDR"),
    case("cidr-garbage", with_network(cidr="banana"), "cidr: banana", "networks.net2.cidr",
         "'banana' is not an IPv4 CIDR"),
    case("cidr-host-bits", with_network(cidr="10.2.0.5/24"), "cidr: 10.2.0.5/24", "networks.net2.cidr",
         "'10.2.0.5/24' is not an IPv4 CIDR: 10.2.0.5/24 has host bits set"),
    case("cidr-too-small", with_network(cidr="10.2.0.0/30"), "cidr: 10.2.0.0/30", "networks.net2.cidr",
         "10.2.0.0/30 is too small (at most /29)"),
    case("overlap-same-project", with_network(cidr="10.0.0.0/16"), "cidr: 10.0.0.0/16", "networks.net2.cidr",
         lambda t: f"10.0.0.0/16 overlaps 10.0.0.0/24 of network net1 (line {line_of(t, '  net1:')}) "
                   "in project demo"),
    case("gateway-outside-cidr", with_network(gateway="10.9.0.1"), "gateway: 10.9.0.1",
         "networks.net2.gateway", "10.9.0.1 is not a host address of 10.2.0.0/24"),
    case("gateway-network-address", with_network(gateway="10.2.0.0"), "gateway: 10.2.0.0",
         "networks.net2.gateway", "10.2.0.0 is not a host address of 10.2.0.0/24"),
    case("gateway-not-an-address", with_network(gateway="router"), "gateway: router",
         "networks.net2.gateway", "'router' is not an IPv4 address"),
    case("mtu-out-of-range", with_network(mtu="100"), "mtu: 100", "networks.net2.mtu",
         "MTU 100 must be between 576 and 1500 (a vlan network over a 1500-byte physical network)"),
    case("mtu-above-vlan-maximum", with_network(mtu="9000"), "mtu: 9000", "networks.net2.mtu",
         "MTU 9000 must be between 576 and 1500 (a vlan network over a 1500-byte physical network)"),
    case("network-name-uppercase", with_network("Net2"), "Net2:", "networks.Net2",
         "name 'Net2' must start with a lowercase letter"),
    # ---- instances
    case("instance-unknown-node", with_instance(node="compute9"), "node: compute9",
         "instances.vm3.node", "unknown node 'compute9'"),
    case("instance-on-network-node", with_instance(node="network1"), "node: network1",
         "instances.vm3.node", "network1 is a network node; instances run on compute nodes"),
    case("instance-node-not-on-physnet",
         mutate("nodes: [network1, compute1, compute2]", "nodes: [network1, compute1]"),
         "node: compute2", "instances.vm2.node",
         "compute2 is not attached to physnet1, which carries network net1"),
    case("instance-unknown-network", with_instance(network="net9"), "network: net9",
         "instances.vm3.network", "unknown or invalid network 'net9'"),
    case("instance-unknown-key", with_instance(flavor="m1.tiny"), "flavor: m1.tiny",
         "instances.vm3.flavor",
         "unknown key (expected one of: node, network, ip, mac, security_groups, address, floating_ip)"),
    case("instance-name-too-long", with_instance("a-very-long-vm-name"), "a-very-long-vm-name:",
         "instances.a-very-long-vm-name", "is 19 characters; at most 15"),
    case("ip-outside-subnet", with_instance(ip="10.9.0.13"), "ip: 10.9.0.13", "instances.vm3.ip",
         "10.9.0.13 is not a host address of net1 (10.0.0.0/24)"),
    case("ip-broadcast", with_instance(ip="10.0.0.255"), "ip: 10.0.0.255", "instances.vm3.ip",
         "10.0.0.255 is not a host address of net1 (10.0.0.0/24)"),
    case("ip-is-gateway", with_instance(ip="'10.0.0.1'"), "ip: '10.0.0.1'", "instances.vm3.ip",
         "10.0.0.1 is the gateway of net1"),
    case("ip-malformed", with_instance(ip="10.0.0.300"), "ip: 10.0.0.300", "instances.vm3.ip",
         "'10.0.0.300' is not an IPv4 address"),
    case("ip-duplicate", with_instance(ip="'10.0.0.11'"), "ip: '10.0.0.11'", "instances.vm3.ip",
         # the line of the address that is taken (vm1's ip key), not of vm1 itself
         lambda t: f"10.0.0.11 is already used by vm1 (line {line_of(t, 'ip: 10.0.0.11')}) on network net1"),
    case("mac-duplicate",
         with_instance(mac="FA:16:3E:00:00:01",
                       text=mutate("    ip: 10.0.0.11\n", "    ip: 10.0.0.11\n    mac: fa:16:3e:00:00:01\n")),
         "mac: FA:16:3E", "instances.vm3.mac",
         lambda t: f"fa:16:3e:00:00:01 is already used by vm1 (line {line_of(t, '  vm1:')})"),
    case("mac-malformed", with_instance(mac="fa:16:3e:00:00"), "mac: fa:16:3e:00:00", "instances.vm3.mac",
         "'fa:16:3e:00:00' is not a MAC address"),
    case("mac-multicast", with_instance(mac="'01:00:5e:00:00:01'"), "mac: '01:00:5e", "instances.vm3.mac",
         "01:00:5e:00:00:01 is a multicast address"),
    case("unknown-security-group", with_instance(security_groups="[web]"), "security_groups: [web]",
         "instances.vm3.security_groups", "unknown security group 'web' in project demo"),
    case("instance-named-like-node", with_instance("compute2"), ("  compute2:", -1), "instances.compute2",
         lambda t: f"name 'compute2' is already used by a node at line {line_of(t, '  compute2:', 0)}; "
                   "nodes, instances, physical networks, routers, external hosts and DHCP servers "
                   "(<network>-dhcp) share one name space"),
    case("instance-named-like-physnet", with_instance("physnet1"), ("  physnet1:", -1),
         "instances.physnet1",
         lambda t: f"name 'physnet1' is already used by a physical network at line "
                   f"{line_of(t, '  physnet1:', 0)}"),
    # ---- checks
    case("check-unknown-from", mutate("    from: vm1\n", "    from: vm9\n"), "from: vm9",
         "checks[0].from", "unknown instance or external host 'vm9'"),
    case("check-to-nowhere", mutate("    to: vm2\n", "    to: nowhere\n"), "to: nowhere",
         "checks[0].to", "'nowhere' is neither an instance, an external host nor an IPv4 address"),
    case("check-to-missing", with_check(to=None), "- name: extra", "checks[1].to",
         "is required (an instance, an external host or an IPv4 address)"),
    case("check-unknown-key", with_check(timeout="5"), "timeout: 5", "checks[1].timeout",
         "unknown key (expected one of: name, from, to, proto, expect, path)"),
    case("tcp-to-bare-ip", with_check(to="10.0.0.99", proto="tcp"), "to: 10.0.0.99", "checks[1].to",
         "a tcp check needs a destination that can run the server (an instance, an external host "
         "or a floating IP), not '10.0.0.99'"),
    case("tcp-to-dhcp-port", with_check(to="10.0.0.2", proto="tcp"), "to: 10.0.0.2", "checks[1].to",
         "a tcp check needs a destination that can run the server (an instance, an external host "
         "or a floating IP), not '10.0.0.2'"),
    case("proto-udp", with_check(proto="udp"), "proto: udp", "checks[1].proto",
         "'udp' must be icmp, tcp or tcp:PORT"),
    case("proto-icmp-with-port", with_check(proto="icmp:80"), "proto: icmp:80", "checks[1].proto",
         "'icmp:80' must be icmp, tcp or tcp:PORT"),
    case("proto-port-out-of-range", with_check(proto="tcp:70000"), "proto: tcp:70000", "checks[1].proto",
         "port 70000 is out of range"),
    case("bad-expect", with_check(expect="maybe"), "expect: maybe", "checks[1].expect",
         "'maybe' is not one of: reach, blocked"),
    case("check-name-twice", with_check(name="vm1 to vm2"), ("name: vm1 to vm2", -1), "checks[1].name",
         "check name 'vm1 to vm2' is used twice"),
    case("path-two-kinds", with_path("crosses: physnet1\nnever_on: physnet1"), "- crosses: physnet1",
         "checks[0].path[0]", "needs exactly one of: crosses, never_on, never_reaches, reaches, passes"),
    case("path-no-kind", with_path("vlan: 101"), "- vlan: 101", "checks[0].path[0]",
         "needs exactly one of: crosses, never_on, never_reaches, reaches, passes"),
    case("path-not-a-mapping", with_path("physnet1"), "- physnet1", "checks[0].path[0]",
         "must be a mapping like {crosses: physnet1, vlan: 101}"),
    case("path-unknown-physnet", with_path("crosses: physnet9\nvlan: 101"), "crosses: physnet9",
         "checks[0].path[0].crosses", "unknown physical network 'physnet9'"),
    case("path-never-on-unknown", with_path("never_on: physnet9"), "never_on: physnet9",
         "checks[0].path[0].never_on", "unknown physical network 'physnet9'"),
    case("path-never-reaches-unknown", with_path("never_reaches: vm9"), "never_reaches: vm9",
         "checks[0].path[0].never_reaches",
         "unknown node, instance, external host or physical network 'vm9'"),
    case("path-vlan-on-never-on", with_path("never_on: physnet1\nvlan: 101"), "vlan: 101",
         "checks[0].path[0].vlan", "vlan only goes with crosses"),
    case("path-vlan-5000", with_path("crosses: physnet1\nvlan: 5000"), "vlan: 5000",
         "checks[0].path[0].vlan", "VLAN id 5000 is out of range 1-4094"),
    case("path-packets-bogus", with_path("crosses: physnet1\nvlan: 101\npackets: bogus"), "packets: bogus",
         "checks[0].path[0].packets", "'bogus' is not one of: ip, arp"),
    case("path-unknown-key", with_path("crosses: physnet1\nvia: br-int"), "via: br-int",
         "checks[0].path[0].via",
         "unknown key (expected one of: crosses, never_on, never_reaches, reaches, passes, never_passes, vlan, "
         "vni, key, packets, source, destination, source_mac)"),
    case("path-not-a-list", mutate("    path:\n      - crosses: physnet1\n        vlan: 101\n",
                                   "    path: physnet1\n"),
         "path: physnet1", "checks[0].path", "must be a list of path assertions"),
]


# --------------------------------------------------------------------------- network node features

EXTERNAL = """\
  ext-net:
    project: admin
    type: flat
    physical_network: external
    external: true
    cidr: 203.0.113.0/24
    gateway: 203.0.113.1
    allocation_pool: 203.0.113.101-203.0.113.200
routers:
  router1:
    project: demo
    external_gateway: ext-net
    interfaces: [net1]
external_hosts:
  ext1:
    network: ext-net
    ip: 203.0.113.50
"""

# BASE plus an external flat network ext-net (physical network `external`, network1 only), a
# router router1 of demo (net1 + gateway on ext-net) and an external host ext1.
EXT = insert_before("instances:\n", EXTERNAL,
                    mutate("projects: [demo]", "projects: [demo, admin]",
                           with_physnet("external", bridge="br-ex", vlan_ranges=None, nodes="[network1]")))

IP_LINE = {"vm1": "    ip: 10.0.0.11\n", "vm2": "    ip: 10.0.0.12\n"}
POOL = "    allocation_pool: 203.0.113.101-203.0.113.200\n"
# ext-net without allocation_pool: the pool is the whole subnet
NOPOOL = mutate(POOL, "", EXT)


def ext(old: str, new: str, text: str = EXT) -> str:
    return mutate(old, new, text)


def with_fip(vm: str, fip: str, text: str = EXT) -> str:
    return mutate(IP_LINE[vm], IP_LINE[vm] + f"    floating_ip: {fip}\n", text)


def with_router_key(key: str, value: str, text: str = EXT) -> str:
    """router1 with one more key (after its interfaces)."""
    return mutate("    interfaces: [net1]\n", f"    interfaces: [net1]\n    {key}: {value}\n", text)


def with_router(name: str = "router2", text: str = EXT, **fields: str | None) -> str:
    body = {"project": "demo", "interfaces": "[]"} | fields
    return insert_before("external_hosts:\n", _block(name, body), text)


def with_project_network(name: str = "net2", text: str = EXT, **fields: str | None) -> str:
    """with_network for EXT: net2 goes into the networks section (before routers)."""
    body = {"project": "demo", "type": "vlan", "physical_network": "physnet1",
            "segmentation_id": "102", "cidr": "10.2.0.0/24"} | fields
    return insert_before("routers:\n", _block(name, body), text)


def with_host(name: str = "ext2", text: str = EXT, **fields: str | None) -> str:
    body = {"network": "ext-net", "ip": "203.0.113.60"} | fields
    return insert_before("instances:\n", _block(name, body), text)


def with_group(rule: str | None = "{direction: ingress, protocol: tcp, port: 80}", name: str = "web",
               project: str = "demo", text: str = BASE) -> str:
    """A security group (one rule, raw YAML flow mapping; None: no rules key)."""
    block = f"security_groups:\n  {name}:\n    project: {project}\n"
    if rule is not None:
        block += f"    rules:\n      - {rule}\n"
    return insert_before("instances:\n", block, text)


def with_lease(instance: str, text: str = EXT) -> str:
    return text + f"  - lease: {instance}\n"


GROUP = with_group()
TCP_SERVER = ("a tcp check needs a destination that can run the server (an instance, an external "
              "host or a floating IP), not ")

CASES += [
    # ---- networks: external, allocation_pool, dhcp
    case("pool-malformed", ext(POOL, "    allocation_pool: 203.0.113.101\n"), "allocation_pool:",
         "networks.ext-net.allocation_pool", "'203.0.113.101' must look like 203.0.113.101-203.0.113.200"),
    case("pool-bad-address", ext(POOL, "    allocation_pool: 203.0.113.101-203.0.113.300\n"),
         "allocation_pool:", "networks.ext-net.allocation_pool",
         "'203.0.113.101-203.0.113.300': Octet 300 (> 255) not permitted"),
    case("pool-outside-cidr", ext(POOL, "    allocation_pool: 203.0.113.101-203.0.114.20\n"),
         "allocation_pool:", "networks.ext-net.allocation_pool",
         "203.0.113.101-203.0.114.20 is not inside the host addresses of 203.0.113.0/24"),
    case("pool-holds-broadcast", ext(POOL, "    allocation_pool: 203.0.113.101-203.0.113.255\n"),
         "allocation_pool:", "networks.ext-net.allocation_pool",
         "203.0.113.101-203.0.113.255 is not inside the host addresses of 203.0.113.0/24"),
    case("pool-reversed", ext(POOL, "    allocation_pool: 203.0.113.200-203.0.113.101\n"),
         "allocation_pool:", "networks.ext-net.allocation_pool", "203.0.113.200 comes after 203.0.113.101"),
    case("pool-holds-gateway", ext(POOL, "    allocation_pool: 203.0.113.1-203.0.113.200\n"),
         "allocation_pool:", "networks.ext-net.allocation_pool",
         "the pool 203.0.113.1-203.0.113.200 holds the gateway 203.0.113.1"),
    case("pool-holds-default-gateway",
         with_network(allocation_pool="10.2.0.1-10.2.0.100"), "allocation_pool:",
         "networks.net2.allocation_pool", "the pool 10.2.0.1-10.2.0.100 holds the gateway 10.2.0.1"),
    case("external-not-bool", with_network(external="yes please"), "external: yes please",
         "networks.net2.external", "must be true or false, not str 'yes please'"),
    case("dhcp-not-bool", with_network(dhcp="1"), "dhcp: 1", "networks.net2.dhcp",
         "must be true or false, not int 1"),
    case("dhcp-without-network-node",
         mutate("nodes: [network1, compute1, compute2]", "nodes: [compute1, compute2]"),
         "  net1:", "networks.net1.dhcp",
         "DHCP runs on a network node, and none is attached to physnet1 (attach one, or set dhcp: false)"),
    case("dhcp-true-without-network-node",
         with_network(dhcp="true", text=mutate("  network1:\n    role: network\n", "  network1:\n    role: compute\n",
                                               mutate("    gateway: 10.0.0.1\n",
                                                      "    gateway: 10.0.0.1\n    dhcp: false\n"))),
         "dhcp: true", "networks.net2.dhcp",
         "DHCP runs on a network node, and none is attached to physnet1"),
    case("dhcp-server-name-clash", with_instance("net1-dhcp"), "  net1-dhcp:", "instances.net1-dhcp",
         lambda t: f"name 'net1-dhcp' is already used by a DHCP server at line {line_of(t, '  net1:')}"),
    # ---- external hosts
    case("host-on-project-network", ext("    network: ext-net\n    ip: 203.0.113.50\n",
                                        "    network: net1\n    ip: 10.0.0.50\n"),
         ("network: net1", 0), "external_hosts.ext1.network",
         "net1 is not external; external hosts stand for the world outside Neutron"),
    case("host-inside-pool", ext("ip: 203.0.113.50", "ip: 203.0.113.150"), "ip: 203.0.113.150",
         "external_hosts.ext1.ip",
         "203.0.113.150 is inside ext-net's allocation pool (203.0.113.101-203.0.113.200), where "
         "Neutron allocates router gateways and floating IPs"),
    case("host-outside-cidr", ext("ip: 203.0.113.50", "ip: 198.51.100.5"), "ip: 198.51.100.5",
         "external_hosts.ext1.ip", "198.51.100.5 is not a host address of ext-net (203.0.113.0/24)"),
    case("host-broadcast", ext("ip: 203.0.113.50", "ip: 203.0.113.255"), "ip: 203.0.113.255",
         "external_hosts.ext1.ip", "203.0.113.255 is not a host address of ext-net (203.0.113.0/24)"),
    case("host-bad-ip", ext("ip: 203.0.113.50", "ip: banana"), "ip: banana", "external_hosts.ext1.ip",
         "'banana' is not an IPv4 address"),
    # a missing key is reported at the first line of its mapping, as everywhere
    case("host-no-ip", ext("    ip: 203.0.113.50\n", ""), "network: ext-net", "external_hosts.ext1.ip",
         "is required"),
    case("host-unknown-network", ext("network: ext-net\n", "network: ext9\n"), "network: ext9",
         "external_hosts.ext1.network", "unknown or invalid network 'ext9'"),
    case("host-ip-twice", with_host(ip="203.0.113.50"), ("ip: 203.0.113.50", -1), "external_hosts.ext2.ip",
         lambda t: f"203.0.113.50 is already used by ext1 (line {line_of(t, 'ip: 203.0.113.50', 0)}) "
                   "on network ext-net"),
    case("host-multicast-mac", with_host(mac="'01:00:5e:00:00:01'"), "mac: '01:00:5e", "external_hosts.ext2.mac",
         "01:00:5e:00:00:01 is a multicast address"),
    case("host-unknown-key", with_host(gateway="203.0.113.1"), ("gateway: 203.0.113.1", -1), "external_hosts.ext2.gateway",
         "unknown key (expected one of: network, ip, mac)"),
    case("host-named-like-node", with_host("compute1"), ("  compute1:", -1), "external_hosts.compute1",
         lambda t: f"name 'compute1' is already used by a node at line {line_of(t, '  compute1:', 0)}"),
    # ---- routers
    case("router-unknown-project", ext("  router1:\n    project: demo", "  router1:\n    project: nobody"),
         "project: nobody", "routers.router1.project", "unknown project 'nobody'"),
    case("router-without-project", ext("  router1:\n    project: demo\n", "  router1:\n"),
         "external_gateway: ext-net", "routers.router1.project", "is required"),
    case("router-on-compute-node", with_router_key("node", "compute1"), ("node: compute1", 0),
         "routers.router1.node", "'compute1' is not a network node (network nodes: network1)"),
    case("router-on-unknown-node", with_router_key("node", "network9"), "node: network9",
         "routers.router1.node", "'network9' is not a network node (network nodes: network1)"),
    case("router-node-ambiguous",
         with_node("network2", "network", mutate("nodes: [network1, compute1, compute2]",
                                                 "nodes: [network1, network2, compute1, compute2]", EXT)),
         "  router1:", "routers.router1.node", "is required when the scenario has 2 network nodes"),
    case("router-node-off-the-physnet",
         with_router_key("node", "network2",
                         with_node("network2", "network", mutate("nodes: [network1, compute1, compute2]",
                                                                 "nodes: [network1, network2, compute1, compute2]",
                                                                 EXT))),
         "external_gateway: ext-net", "routers.router1.external_gateway",
         "network2 is not attached to external, which carries ext-net"),
    case("router-interface-of-other-project",
         ext("  router1:\n    project: demo", "  router1:\n    project: admin"),
         "interfaces: [net1]", "routers.router1.interfaces[0]",
         "network net1 belongs to project demo, not to the router's project admin"),
    case("router-external-as-interface", ext("interfaces: [net1]", "interfaces: [net1, ext-net]"),
         "interfaces: [net1, ext-net]", "routers.router1.interfaces[1]",
         "ext-net is external: give it as external_gateway"),
    case("router-project-network-as-gateway",
         ext("external_gateway: ext-net", "external_gateway: net2", with_project_network()),
         "external_gateway: net2", "routers.router1.external_gateway",
         "network net2 is not external (set external: true on it)"),
    case("router-unknown-gateway", ext("external_gateway: ext-net", "external_gateway: ext9"),
         "external_gateway: ext9", "routers.router1.external_gateway", "unknown or invalid network 'ext9'"),
    case("router-unknown-interface", ext("interfaces: [net1]", "interfaces: [net9]"),
         "interfaces: [net9]", "routers.router1.interfaces[0]", "unknown or invalid network 'net9'"),
    case("router-interfaces-not-a-list", ext("interfaces: [net1]", "interfaces: net1"),
         "interfaces: net1", "routers.router1.interfaces", "must be a list of network names"),
    case("router-network-on-two-routers", with_router(interfaces="[net1]"), ("interfaces: [net1]", -1), "routers.router2.interfaces[0]",
         lambda t: f"network net1 is already attached to router router1 (line "
                   f"{line_of(t, 'interfaces: [net1]', 0)}); its gateway address can be on one router only"),
    case("router-network-twice", ext("interfaces: [net1]", "interfaces: [net1, net1]"),
         "interfaces: [net1, net1]", "routers.router1.interfaces[1]",
         lambda t: f"network net1 is already attached to router router1 (line "
                   f"{line_of(t, 'interfaces: [net1, net1]')})"),
    case("router-gateway-ip-outside-pool", with_router_key("gateway_ip", "203.0.113.50",
                                                           ext("ip: 203.0.113.50", "ip: 203.0.113.60")),
         "gateway_ip: 203.0.113.50", "routers.router1.gateway_ip",
         "203.0.113.50 is outside the allocation pool of ext-net (203.0.113.101-203.0.113.200)"),
    case("router-gateway-ip-without-gateway",
         ext("    external_gateway: ext-net\n", "    gateway_ip: 203.0.113.150\n"),
         "gateway_ip: 203.0.113.150", "routers.router1.gateway_ip", "a gateway address needs an external_gateway"),
    case("router-gateway-ip-malformed", with_router_key("gateway_ip", "nope"), "gateway_ip: nope",
         "routers.router1.gateway_ip", "'nope' is not an IPv4 address"),
    case("router-gateway-ip-twice",
         with_router(external_gateway="ext-net", gateway_ip="203.0.113.150",
                     text=with_router_key("gateway_ip", "203.0.113.150")),
         ("gateway_ip: 203.0.113.150", -1), "routers.router2.gateway_ip",
         lambda t: f"203.0.113.150 is already used by router router1 "
                   f"(line {line_of(t, 'gateway_ip: 203.0.113.150', 0)}) on network ext-net"),
    case("router-unknown-key", with_router_key("ha", "true"), "ha: true", "routers.router1.ha",
         "unknown key (expected one of: project, node, interfaces, external_gateway, gateway_ip, distributed)"),
    case("router-named-like-node", ext("  router1:\n", "  compute1:\n"), ("  compute1:", -1),
         "routers.compute1",
         lambda t: f"name 'compute1' is already used by a node at line {line_of(t, '  compute1:', 0)}"),
    # ---- floating IPs
    case("fip-outside-pool", with_fip("vm1", "203.0.113.50"), "floating_ip: 203.0.113.50",
         "instances.vm1.floating_ip",
         "203.0.113.50 is outside the allocation pool of ext-net (203.0.113.101-203.0.113.200)"),
    case("fip-outside-subnet-without-pool", with_fip("vm1", "198.51.100.1", NOPOOL), "floating_ip: 198.51.100.1",
         "instances.vm1.floating_ip",
         "198.51.100.1 is outside the allocation pool of ext-net (all of 203.0.113.0/24)"),
    case("fip-used-twice", with_fip("vm2", "203.0.113.150", with_fip("vm1", "203.0.113.150")),
         ("floating_ip: 203.0.113.150", -1), "instances.vm2.floating_ip",
         lambda t: f"203.0.113.150 is already used by floating IP of vm1 "
                   f"(line {line_of(t, 'floating_ip: 203.0.113.150', 0)}) on network ext-net"),
    case("fip-is-router-gateway", with_fip("vm1", "203.0.113.150", with_router_key("gateway_ip", "203.0.113.150")),
         "floating_ip: 203.0.113.150", "instances.vm1.floating_ip",
         lambda t: f"203.0.113.150 is already used by router router1 "
                   f"(line {line_of(t, 'gateway_ip: 203.0.113.150')}) on network ext-net"),
    case("fip-router-without-gateway", with_fip("vm1", "203.0.113.150", ext("    external_gateway: ext-net\n", "")),
         "floating_ip: 203.0.113.150", "instances.vm1.floating_ip",
         "network net1 is not on a router with an external gateway, so no floating IP can reach it"),
    case("fip-auto-without-router", with_fip("vm1", "auto", BASE), "floating_ip: auto",
         "instances.vm1.floating_ip",
         "network net1 is not on a router with an external gateway, so no floating IP can reach it"),
    case("fip-not-an-ip", with_fip("vm1", "banana"), "floating_ip: banana", "instances.vm1.floating_ip",
         "'banana' is not an IPv4 address or 'auto'"),
    case("fip-auto-pool-exhausted",
         with_fip("vm2", "auto", with_fip("vm1", "auto", ext(POOL, "    allocation_pool: 203.0.113.101-203.0.113.102\n"))),
         "  vm2:", "instances.vm2.floating_ip",
         "network ext-net (203.0.113.0/24) has no free address left in its pool"),
    case("router-gateway-pool-exhausted",
         with_fip("vm1", "203.0.113.101", ext(POOL, "    allocation_pool: 203.0.113.101-203.0.113.101\n")),
         "  router1:", "routers.router1.external_gateway",
         "network ext-net (203.0.113.0/24) has no free address left in its pool"),
    # ---- instances
    case("instance-on-external-network",
         ext("    node: compute2\n    network: net1\n    ip: 10.0.0.12\n",
             "    node: compute2\n    network: ext-net\n",
             ext("nodes: [network1]\n", "nodes: [network1, compute2]\n")),
         ("network: ext-net", -1), "instances.vm2.network",
         "ext-net is an external network; instances attach to project networks "
         "(use external_hosts for the outside world)"),
    case("instance-address-bogus", with_instance(address="manual"), "address: manual",
         "instances.vm3.address", "'manual' is not one of: dhcp, static"),
    case("instance-dhcp-without-dhcp",
         with_instance(network="net2", ip="10.2.0.13", address="dhcp", text=with_network(dhcp="false")),
         "address: dhcp", "instances.vm3.address", "network net2 has DHCP disabled"),
    # ---- security groups
    case("group-named-default", with_group(name="default"), "  default:", "security_groups.default",
         "the default group exists in every project already (egress to anywhere, ingress from its "
         "members); give yours another name"),
    case("group-bad-name", with_group(name="Web"), "  Web:", "security_groups.Web",
         "name 'Web' must be lowercase letters, digits and '-'"),
    case("group-unknown-project", with_group(project="nobody"), "project: nobody",
         "security_groups.web.project", "unknown project 'nobody'"),
    case("group-unknown-key", mutate("    project: demo\n    rules:", "    project: demo\n    stateful: no\n    rules:",
                                     GROUP),
         "stateful: no", "security_groups.web.stateful", "unknown key (expected one of: project, rules)"),
    case("instance-unknown-group", with_instance(security_groups="[default, db]", text=GROUP),
         "security_groups: [default, db]", "instances.vm3.security_groups",
         "unknown security group 'db' in project demo"),
    case("instance-group-of-other-project",
         with_instance(security_groups="[web]",
                       text=with_group(project="alt", text=mutate("projects: [demo]", "projects: [demo, alt]"))),
         "security_groups: [web]", "instances.vm3.security_groups", "unknown security group 'web' in project demo"),
    case("instance-groups-not-a-list", with_instance(security_groups="web", text=GROUP),
         "security_groups: web", "instances.vm3.security_groups",
         "must be a list of security group names ([] means no group: all traffic dropped)"),
    case("rules-not-a-list", mutate("    rules:\n      - {direction: ingress, protocol: tcp, port: 80}\n",
                                    "    rules: all\n", GROUP),
         "rules: all", "security_groups.web.rules", "must be a list of rules"),
    case("rule-not-a-mapping", with_group("allow"), "- allow", "security_groups.web.rules[0]",
         "must be a mapping like {direction: ingress, protocol: tcp, port: 22}"),
    case("rule-unknown-key", with_group("{direction: ingress, ethertype: IPv4}"), "ethertype: IPv4",
         "security_groups.web.rules[0].ethertype",
         "unknown key (expected one of: direction, protocol, port, remote_ip, remote_group)"),
    case("rule-bad-direction", with_group("{direction: inward}"), "direction: inward",
         "security_groups.web.rules[0].direction", "'inward' is not one of: ingress, egress"),
    case("rule-without-direction", with_group("{protocol: tcp, port: 80}"), "- {protocol: tcp",
         "security_groups.web.rules[0].direction", "is required"),
    case("rule-bad-protocol", with_group("{direction: ingress, protocol: sctp}"), "protocol: sctp",
         "security_groups.web.rules[0].protocol", "'sctp' is not one of: any, icmp, tcp, udp"),
    case("rule-port-with-icmp", with_group("{direction: ingress, protocol: icmp, port: 80}"), "protocol: icmp",
         "security_groups.web.rules[0].port", "a port needs protocol tcp or udp"),
    case("rule-port-without-protocol", with_group("{direction: ingress, port: 80}"), "port: 80",
         "security_groups.web.rules[0].port", "a port needs protocol tcp or udp"),
    case("rule-port-range-reversed", with_group("{direction: ingress, protocol: tcp, port: 90-80}"),
         "port: 90-80", "security_groups.web.rules[0].port", "'90-80' must be a port or a range like 8000-8080"),
    case("rule-port-out-of-range", with_group("{direction: ingress, protocol: udp, port: 70000}"),
         "port: 70000", "security_groups.web.rules[0].port", "70000 must be a port or a range like 8000-8080"),
    case("rule-port-zero", with_group("{direction: ingress, protocol: udp, port: 0-80}"),
         "port: 0-80", "security_groups.web.rules[0].port", "'0-80' must be a port or a range like 8000-8080"),
    case("rule-port-name", with_group("{direction: ingress, protocol: tcp, port: http}"),
         "port: http", "security_groups.web.rules[0].port", "'http' must be a port or a range like 8000-8080"),
    case("rule-remote-ip-and-group",
         with_group("{direction: ingress, remote_ip: 10.0.0.0/8, remote_group: default}"), "remote_ip: 10.0.0.0/8",
         "security_groups.web.rules[0]", "give remote_ip or remote_group, not both"),
    case("rule-unknown-remote-group", with_group("{direction: ingress, remote_group: db}"), "remote_group: db",
         "security_groups.web.rules[0].remote_group", "unknown security group 'db' in project demo"),
    case("rule-remote-group-of-other-project",
         insert_before("instances:\n", "security_groups:\n"
                                        "  web: {project: alt, rules: []}\n"
                                        "  db:\n"
                                        "    project: demo\n"
                                        "    rules:\n"
                                        "      - {direction: ingress, remote_group: web}\n",
                       mutate("projects: [demo]", "projects: [demo, alt]")),
         "remote_group: web", "security_groups.db.rules[0].remote_group",
         "unknown security group 'web' in project demo"),
    case("rule-remote-ip-host-bits", with_group("{direction: ingress, remote_ip: 10.0.0.1/8}"),
         "remote_ip: 10.0.0.1/8", "security_groups.web.rules[0].remote_ip",
         "'10.0.0.1/8' is not an IPv4 CIDR: 10.0.0.1/8 has host bits set"),
    case("rule-remote-ip-garbage", with_group("{direction: ingress, remote_ip: banana}"),
         "remote_ip: banana", "security_groups.web.rules[0].remote_ip", "'banana' is not an IPv4 CIDR"),
    # ---- checks: endpoints, leases, reaches / passes
    case("check-from-unknown-endpoint", with_check(EXT, **{"from": "ext9"}), "from: ext9", "checks[1].from",
         "unknown instance or external host 'ext9'"),
    case("check-from-router", with_check(EXT, **{"from": "router1"}), "from: router1", "checks[1].from",
         "unknown instance or external host 'router1'"),
    case("check-from-node", with_check(EXT, **{"from": "network1"}), "from: network1", "checks[1].from",
         "unknown instance or external host 'network1'"),
    case("check-to-router", with_check(EXT, to="router1"), "to: router1", "checks[1].to",
         "'router1' is neither an instance, an external host nor an IPv4 address"),
    case("tcp-to-router-gateway", with_check(EXT, to="203.0.113.101", proto="tcp"), "to: 203.0.113.101",
         "checks[1].to", TCP_SERVER + "'203.0.113.101'"),
    case("tcp-to-unused-floating-range", with_check(EXT, **{"from": "ext1"}, to="203.0.113.150", proto="tcp"),
         "to: 203.0.113.150", "checks[1].to", TCP_SERVER + "'203.0.113.150'"),
    case("lease-of-static-instance", with_lease("vm1", with_instance("vm1", address="static", ip="10.0.0.11",
                                                                     text=mutate("  vm1:\n    node: compute1\n    network: net1\n    ip: 10.0.0.11\n", "", EXT))),
         "lease: vm1", "checks[1].lease", "vm1 has a static address, no lease"),
    case("lease-on-network-without-dhcp", with_lease("vm1", ext("    gateway: 10.0.0.1\n",
                                                                "    gateway: 10.0.0.1\n    dhcp: false\n")),
         "lease: vm1", "checks[1].lease", "vm1 has a static address, no lease"),
    case("lease-of-unknown-instance", with_lease("vm9"), "lease: vm9", "checks[1].lease", "unknown instance 'vm9'"),
    case("lease-of-external-host", with_lease("ext1"), "lease: ext1", "checks[1].lease", "unknown instance 'ext1'"),
    case("lease-unknown-key", with_lease("vm1") + "    expect: blocked\n", ("expect: blocked", -1), "checks[1].expect", "unknown key (expected one of: name, lease)"),
    case("lease-twice", with_lease("vm1", with_lease("vm1")), ("- lease: vm1", -1), "checks[2].name",
         "check name 'vm1 holds its DHCP lease' is used twice"),
    case("passes-unknown-router", with_check(EXT, path="- passes: router9"), "passes: router9",
         "checks[1].path[0].passes", "unknown router 'router9'"),
    case("passes-a-node", with_check(EXT, path="- passes: network1"), "passes: network1",
         "checks[1].path[0].passes", "unknown router 'network1'"),
    case("reaches-a-router", with_check(EXT, path="- reaches: router1"), "reaches: router1",
         "checks[1].path[0].reaches", "unknown node, instance, external host or physical network 'router1'"),
    case("reaches-unknown", with_check(EXT, path="- reaches: ext9"), "reaches: ext9",
         "checks[1].path[0].reaches", "unknown node, instance, external host or physical network 'ext9'"),
    case("reaches-bad-source", with_check(EXT, path="- reaches: vm2\n  source: 10.0.0.300"), "source: 10.0.0.300",
         "checks[1].path[0].source", "'10.0.0.300' is not an IPv4 address"),
    case("reaches-bad-destination", with_check(EXT, path="- reaches: vm2\n  destination: vm2"),
         "destination: vm2", "checks[1].path[0].destination", "'vm2' is not an IPv4 address"),
    case("passes-with-vlan", with_check(EXT, path="- passes: router1\n  vlan: 101"), ("vlan: 101", -1),
         "checks[1].path[0].vlan", "vlan only goes with crosses"),
]


# --------------------------------------------------------------------------- ML2, agent, tunnels

# BASE plus the tunnel underlay: a physical network with tunnels: true (every node on it, so
# network1, compute1 and compute2 get local_ip 198.51.100.11, .12 and .13).
TUN = with_physnet("underlay", bridge=None, vlan_ranges=None, tunnels="true", cidr="198.51.100.0/24")
# TUN plus net2 as a VXLAN network (VNI allocated by ML2: 1001)
VXNET = with_network(type="vxlan", physical_network=None, segmentation_id=None, text=TUN)
ROLES = {"network1": "network", "compute1": "compute", "compute2": "compute"}


def with_ml2(body: str, text: str = BASE) -> str:
    """A top-level ml2 section (``body``: raw YAML, 2-space indented lines)."""
    return insert_before("nodes:\n", "ml2:\n" + body, text)


def with_agent(body: str, text: str = BASE) -> str:
    return insert_before("nodes:\n", "agent:\n" + body, text)


def with_local_ip(node: str, ip: str, text: str = TUN) -> str:
    head = f"  {node}:\n    role: {ROLES[node]}\n"
    return mutate(head, head + f"    local_ip: {ip}\n", text)


def underlay_nodes(nodes: str, text: str = TUN) -> str:
    return mutate("    tunnels: true\n", f"    tunnels: true\n    nodes: {nodes}\n", text)


def tunnel_net(name: str = "net2", ntype: str = "vxlan", text: str = TUN, **fields: str | None) -> str:
    body = {"type": ntype, "physical_network": None, "segmentation_id": None} | fields
    return with_network(name, text, **body)


UNDERLAY_KEYS = "the tunnel underlay has no bridge mapping or VLAN ranges (tunnel endpoints live on it)"
# net1 flat on a physnet1 without VLAN ranges (BASE's check still crosses physnet1)
NO_VLAN_RANGES = mutate("    type: vlan\n    physical_network: physnet1\n    segmentation_id: 101\n",
                        "    type: flat\n    physical_network: physnet1\n",
                        mutate("    vlan_ranges: ['101:199']\n", ""))

CASES += [
    # ---- ml2
    case("ml2-not-a-mapping", insert_before("nodes:\n", "ml2: vxlan\n"), "ml2: vxlan", "ml2",
         "must be a mapping, not str 'vxlan'"),
    case("ml2-unknown-key", with_ml2("  mechanism_drivers: [openvswitch]\n"), "mechanism_drivers:",
         "ml2.mechanism_drivers",
         "unknown key (expected one of: tenant_network_types, vni_ranges, tunnel_id_ranges)"),
    case("ml2-tenant-type-geneve", with_ml2("  tenant_network_types: [geneve]\n"), "tenant_network_types:",
         "ml2.tenant_network_types", "must be a list of network types (vlan, vxlan, gre)"),
    case("ml2-tenant-types-empty", with_ml2("  tenant_network_types: []\n"), "tenant_network_types:",
         "ml2.tenant_network_types", "must be a list of network types (vlan, vxlan, gre)"),
    case("ml2-tenant-types-not-a-list", with_ml2("  tenant_network_types: vxlan\n"), "tenant_network_types:",
         "ml2.tenant_network_types", "must be a list of network types (vlan, vxlan, gre)"),
    case("ml2-tenant-type-flat", with_ml2("  tenant_network_types: [flat]\n"), "tenant_network_types:",
         "ml2.tenant_network_types", "flat is no tenant network type"),
    case("ml2-vni-range-malformed", with_ml2("  vni_ranges: ['1001-2000']\n"), "vni_ranges:",
         "ml2.vni_ranges", "'1001-2000' is not a range like '101:199'"),
    case("ml2-vni-range-above-24-bits", with_ml2("  vni_ranges: ['1:16777216']\n"), "vni_ranges:",
         "ml2.vni_ranges", "range 1:16777216 must satisfy 1 <= first <= last <= 16777215"),
    case("ml2-tunnel-id-range-above-32-bits", with_ml2("  tunnel_id_ranges: ['1:4294967296']\n"),
         "tunnel_id_ranges:", "ml2.tunnel_id_ranges",
         "range 1:4294967296 must satisfy 1 <= first <= last <= 4294967295"),
    case("vni-ranges-exhausted",
         tunnel_net("net3", cidr="10.3.0.0/24", text=with_ml2("  vni_ranges: ['1001:1001']\n", VXNET)),
         "  net3:", "networks.net3", "no free vxlan segmentation id left (ranges: 1001:1001)"),
    case("tunnel-id-ranges-exhausted",
         tunnel_net("net3", "gre", cidr="10.3.0.0/24",
                    text=tunnel_net(ntype="gre", text=with_ml2("  tunnel_id_ranges: ['7:7']\n", TUN))),
         "  net3:", "networks.net3", "no free gre segmentation id left (ranges: 7:7)"),
    case("vlan-ranges-exhausted",
         with_network(segmentation_id=None, text=mutate("vlan_ranges: ['101:199']", "vlan_ranges: ['101:101']")),
         "  net2:", "networks.net2", "no free vlan segmentation id left (ranges: 101:101)"),
    case("tenant-vlan-without-vlan-ranges", with_network(physical_network=None, segmentation_id=None,
                                                         text=NO_VLAN_RANGES),
         "type: vlan", "networks.net2", "a vlan network needs a physical network with vlan_ranges"),
    # ---- agent
    case("arp-responder-without-l2pop", with_agent("  arp_responder: true\n"), "arp_responder: true",
         "agent.arp_responder",
         "the ARP responder answers from l2_population's entries: set l2_population: true too"),
    case("arp-responder-with-l2pop-false", with_agent("  l2_population: false\n  arp_responder: true\n"),
         "arp_responder: true", "agent.arp_responder",
         "the ARP responder answers from l2_population's entries: set l2_population: true too"),
    case("agent-unknown-key", with_agent("  tunnel_csum: true\n"), "tunnel_csum:", "agent.tunnel_csum",
         "unknown key (expected one of: l2_population, arp_responder, enable_distributed_routing, dvr_base_mac)"),
    case("agent-l2pop-not-bool", with_agent("  l2_population: 1\n"), "l2_population: 1",
         "agent.l2_population", "must be true or false, not int 1"),
    case("agent-not-a-mapping", insert_before("nodes:\n", "agent: l2pop\n"), "agent: l2pop", "agent",
         "must be a mapping, not str 'l2pop'"),
    # ---- the tunnel underlay
    case("underlay-with-bridge", with_physnet("underlay", tunnels="true", cidr="198.51.100.0/24", vlan_ranges=None),
         "bridge: br-two", "physical_networks.underlay.bridge", UNDERLAY_KEYS),
    case("underlay-with-vlan-ranges",
         with_physnet("underlay", bridge=None, tunnels="true", cidr="198.51.100.0/24"),
         "vlan_ranges: ['201:299']", "physical_networks.underlay.vlan_ranges", UNDERLAY_KEYS),
    # a missing key is reported at the first line of its mapping
    case("underlay-without-cidr", with_physnet("underlay", bridge=None, vlan_ranges=None, tunnels="true"),
         "tunnels: true", "physical_networks.underlay.cidr", "is required"),
    case("underlay-cidr-host-bits",
         with_physnet("underlay", bridge=None, vlan_ranges=None, tunnels="true", cidr="198.51.100.1/24"),
         "cidr: 198.51.100.1/24", "physical_networks.underlay.cidr",
         "'198.51.100.1/24' is not an IPv4 CIDR: 198.51.100.1/24 has host bits set"),
    case("two-underlays",
         with_physnet("under2", bridge=None, vlan_ranges=None, tunnels="true", cidr="198.51.101.0/24", text=TUN),
         ("tunnels: true", -1), "physical_networks.under2.tunnels", "there is one tunnel underlay already"),
    case("provider-physnet-with-cidr",
         mutate("    vlan_ranges: ['101:199']\n", "    vlan_ranges: ['101:199']\n    cidr: 10.9.0.0/24\n"),
         "cidr: 10.9.0.0/24", "physical_networks.physnet1.cidr",
         "only the tunnel underlay (tunnels: true) has a cidr"),
    case("tunnels-not-bool", with_physnet(tunnels="1"), "tunnels: 1", "physical_networks.physnet2.tunnels",
         "must be true or false, not int 1"),
    case("underlay-too-small-for-default-local-ip",
         underlay_nodes("[network1]", mutate("cidr: 198.51.100.0/24", "cidr: 198.51.100.0/29", TUN)),
         "cidr: 198.51.100.0/29", "physical_networks.underlay.cidr",
         "198.51.100.0/29 is too small to give network1 a local_ip"),
    # ---- local_ip
    case("local-ip-outside-underlay", with_local_ip("compute1", "198.51.101.5"), "local_ip: 198.51.101.5",
         "nodes.compute1.local_ip", "198.51.101.5 is not a host address of underlay (198.51.100.0/24)"),
    case("local-ip-broadcast", with_local_ip("compute1", "198.51.100.255"), "local_ip: 198.51.100.255",
         "nodes.compute1.local_ip", "198.51.100.255 is not a host address of underlay (198.51.100.0/24)"),
    case("local-ip-malformed", with_local_ip("compute1", "banana"), "local_ip: banana",
         "nodes.compute1.local_ip", "'banana' is not an IPv4 address"),
    case("local-ip-twice", with_local_ip("compute2", "198.51.100.12"), "local_ip: 198.51.100.12",
         "nodes.compute2.local_ip", "198.51.100.12 is the local_ip of compute1 already"),
    case("local-ip-off-the-underlay",
         with_local_ip("compute2", "198.51.100.20", underlay_nodes("[network1, compute1]")),
         "local_ip: 198.51.100.20", "nodes.compute2.local_ip", "only nodes on the tunnel underlay have a local_ip"),
    case("local-ip-without-underlay", with_local_ip("compute1", "198.51.100.20", BASE),
         "local_ip: 198.51.100.20", "nodes.compute1.local_ip", "only nodes on the tunnel underlay have a local_ip"),
    # ---- tunnel networks
    case("vxlan-with-physical-network", tunnel_net(physical_network="physnet1"), ("physical_network: physnet1", -1),
         "networks.net2.physical_network",
         "a vxlan network has no physical network: it is carried over the tunnel underlay"),
    case("gre-with-physical-network", tunnel_net(ntype="gre", physical_network="underlay"),
         "physical_network: underlay", "networks.net2.physical_network",
         "a gre network has no physical network: it is carried over the tunnel underlay"),
    case("vxlan-without-underlay", tunnel_net(text=BASE), "type: vxlan", "networks.net2.type",
         "a vxlan network needs a tunnel underlay (a physical network with tunnels: true)"),
    case("gre-without-underlay", tunnel_net(ntype="gre", text=BASE), "type: gre", "networks.net2.type",
         "a gre network needs a tunnel underlay (a physical network with tunnels: true)"),
    case("vlan-on-the-underlay", with_network(physical_network="underlay", text=TUN),
         "physical_network: underlay", "networks.net2.physical_network",
         "underlay is the tunnel underlay, not a provider network"),
    case("flat-on-the-underlay", with_network(type="flat", physical_network="underlay", segmentation_id=None, text=TUN),
         "physical_network: underlay", "networks.net2.physical_network",
         "underlay is the tunnel underlay, not a provider network"),
    case("vxlan-id-above-24-bits", tunnel_net(segmentation_id="16777216"), "segmentation_id: 16777216",
         "networks.net2.segmentation_id", "vxlan id 16777216 is out of range 1-16777215"),
    case("vxlan-id-zero", tunnel_net(segmentation_id="0"), "segmentation_id: 0",
         "networks.net2.segmentation_id", "vxlan id 0 is out of range 1-16777215"),
    case("gre-key-above-32-bits", tunnel_net(ntype="gre", segmentation_id="4294967296"),
         "segmentation_id: 4294967296", "networks.net2.segmentation_id",
         "gre id 4294967296 is out of range 1-4294967295"),
    case("vxlan-id-twice", tunnel_net("net3", cidr="10.3.0.0/24", segmentation_id="1001",
                                      text=tunnel_net(segmentation_id="1001")),
         "  net3:", "networks.net3",
         lambda t: f"vxlan id 1001 is already used by network net2 (line {line_of(t, '  net2:')})"),
    case("vxlan-mtu-above-maximum", tunnel_net(mtu="1451"), "mtu: 1451", "networks.net2.mtu",
         "MTU 1451 must be between 576 and 1450 (a vxlan network over a 1500-byte physical network)"),
    case("gre-mtu-above-maximum", tunnel_net(ntype="gre", mtu="1459"), "mtu: 1459", "networks.net2.mtu",
         "MTU 1459 must be between 576 and 1458 (a gre network over a 1500-byte physical network)"),
    case("instance-of-vxlan-network-off-the-underlay",
         with_instance(network="net2", ip="10.2.0.13", node="compute2", text=underlay_nodes("[network1, compute1]", VXNET)),
         ("node: compute2", -1), "instances.vm3.node", "compute2 is not attached to underlay, which carries network net2"),
    # ---- path assertions on the underlay
    case("path-vlan-on-the-underlay", with_check(VXNET, path="- crosses: underlay\n  vlan: 101"),
         ("vlan: 101", -1), "checks[1].path[0].vlan", "underlay carries tunnels: use vni or key"),
    case("path-vni-on-a-provider-network", with_check(VXNET, path="- crosses: physnet1\n  vni: 1001"),
         "vni: 1001", "checks[1].path[0].vni", "vni only goes with crosses of the tunnel underlay"),
    case("path-key-with-never-on", with_check(VXNET, path="- never_on: underlay\n  key: 1"),
         "key: 1", "checks[1].path[0].key", "key only goes with crosses of the tunnel underlay"),
    case("path-vni-not-integer", with_check(VXNET, path="- crosses: underlay\n  vni: abc"),
         "vni: abc", "checks[1].path[0].vni", "must be an integer, not str 'abc'"),
]


@pytest.mark.parametrize("text, at, where, message", CASES)
def test_bad_input(text: str, at, where: str, message: Message):
    p = only_problem(text)
    expected_line = line_of(text, *at) if isinstance(at, tuple) else line_of(text, at)
    expected_message = message(text) if callable(message) else message
    assert p.file == "unit.yaml"
    assert (p.line, p.where) == (expected_line, where), str(p)
    assert expected_message in p.message, str(p)


# --------------------------------------------------------------------------- file-level errors

def test_empty_file():
    p = only_problem("")
    assert (p.line, p.where, p.message) == (1, "(file)", "is empty")


def test_comment_only_file_is_empty():
    p = only_problem("# nothing here\n")
    assert (p.line, p.where, p.message) == (1, "(file)", "is empty")


def test_top_level_list():
    p = only_problem("\n- a\n- b\n")
    assert (p.line, p.where) == (2, "(file)")
    assert p.message == "must be a mapping at the top level"


def test_missing_sections_are_each_reported():
    problems = problems_of("name: unit\n")
    assert {(p.where, p.message.split(" (")[0]) for p in problems} == {
        ("nodes", "is required"), ("physical_networks", "is required"),
        ("projects", "is required"), ("networks", "is required"), ("instances", "is required")}


# --------------------------------------------------------------------------- valid variations

def test_overlapping_cidrs_in_different_projects_are_allowed():
    text = with_network(text=mutate("projects: [demo]", "projects: [demo, alt]"),
                        project="alt", cidr="10.0.0.0/24")
    s = parse(text)
    assert s.network("net1").cidr == s.network("net2").cidr == "10.0.0.0/24"
    assert (s.network("net1").project, s.network("net2").project) == ("demo", "alt")


def test_overlap_in_same_project_is_reported():
    """Message and `where` (the line itself is pinned by the case overlap-same-project)."""
    p = only_problem(with_network(cidr="10.0.0.0/16"))
    assert p.where == "networks.net2.cidr"
    assert p.message.startswith("10.0.0.0/16 overlaps 10.0.0.0/24 of network net1")
    assert p.message.endswith("in project demo")


def test_names_at_the_limit_are_valid():
    text = with_instance("vm-fifteen-char", node="compute-node-15",
                         text=mutate("nodes: [network1, compute1, compute2]",
                                     "nodes: [network1, compute1, compute2, compute-node-15]",
                                     with_node("compute-node-15")))
    s = parse(text)
    assert s.instance("vm-fifteen-char").node == "compute-node-15"
    assert len("compute-node-15") == len("vm-fifteen-char") == naming.IFNAMSIZ


def test_bridge_name_at_the_limit_is_valid():
    s = parse(mutate("bridge: br-vlan", "bridge: br-physnt1"))
    assert s.physical_network("physnet1").bridge == "br-physnt1"
    assert max(map(len, naming.patch_ports("br-physnt1"))) <= naming.IFNAMSIZ


def test_flat_network_without_segmentation_id():
    s = parse(with_network(type="flat", segmentation_id=None))
    assert s.network("net2").segmentation_id is None
    assert s.network("net2").type == "flat"


def test_icmp_check_to_a_bare_ip_is_allowed():
    s = parse(with_check(to="10.0.0.12"))
    assert s.checks[1].destination == "10.0.0.12"
    assert (s.checks[1].proto, s.checks[1].port) == ("icmp", None)


def test_tcp_default_port():
    s = parse(with_check(proto="tcp"))
    assert (s.checks[1].proto, s.checks[1].port) == ("tcp", 5001)


def test_mac_is_lowercased_and_empty_security_groups_kept():
    s = parse(with_instance(mac="FA:16:3E:AA:BB:CC", security_groups="[]"))
    assert s.instance("vm3").mac == "fa:16:3e:aa:bb:cc"
    assert s.instance("vm3").security_groups == ()


def test_physnet_without_nodes_attaches_every_node():
    s = parse(mutate("    nodes: [network1, compute1, compute2]\n", ""))
    assert s.physical_network("physnet1").nodes == ("network1", "compute1", "compute2")


# --------------------------------------------------------------------------- many at once

def test_many_problems_reported_at_once_sorted_by_line():
    # Found in this order: unknown top-level key (root keys come first, but it is the last
    # line), then the role, then the MAC. Reported sorted by line.
    text = mutate("  compute2:\n    role: compute", "  compute2:\n    role: storage")
    text = mutate("    ip: 10.0.0.12\n", "    ip: 10.0.0.12\n    mac: not-a-mac\n", text)
    text += "firewalls: {}\n"
    with pytest.raises(ScenarioError) as info:
        parse(text)
    problems = info.value.problems
    assert [(p.line, p.where) for p in problems] == [
        (line_of(text, "role: storage"), "nodes.compute2.role"),
        (line_of(text, "mac: not-a-mac"), "instances.vm2.mac"),
        (line_of(text, "firewalls:"), "firewalls"),
    ]
    assert [p.line for p in problems] == sorted(p.line for p in problems)
    message = str(info.value)
    assert message.startswith("scenario has 3 problems:\n")
    for p in problems:
        assert f"  unit.yaml:{p.line}: {p.where}: {p.message}" in message.splitlines()


def test_str_of_scenario_error_says_file_and_line():
    text = with_network(segmentation_id="5000")
    with pytest.raises(ScenarioError) as info:
        parse(text, "labs/my-lab.yaml")
    line = line_of(text, "segmentation_id: 5000")
    assert str(info.value) == (
        "scenario has 1 problem:\n"
        f"  labs/my-lab.yaml:{line}: networks.net2.segmentation_id: VLAN id 5000 is out of range 1-4094")
    assert re.search(rf"^  labs/my-lab\.yaml:{line}: ", str(info.value), re.M)


# --------------------------------------------------------------------------- allocation

def with_instances(*instances: tuple[str, str | None], cidr: str = "10.0.0.0/24",
                   gateway: str | None = "10.0.0.1", network_extra: str = "") -> str:
    """BASE with net1's subnet changed, its instances replaced (name, ip or None) and no checks.
    ``network_extra`` is raw YAML added to net1 (4-space indented lines)."""
    head = BASE.split("instances:\n")[0]
    head = mutate("    cidr: 10.0.0.0/24\n", f"    cidr: {cidr}\n", head)
    head = mutate("    gateway: 10.0.0.1\n", (f"    gateway: {gateway}\n" if gateway else "") + network_extra, head)
    lines = ["instances:"]
    for name, ip in instances:
        extra = f", ip: {ip}" if ip else ""
        lines.append(f"  {name}: {{node: compute1, network: net1{extra}}}")
    return head + "\n".join(lines) + "\n"


NO_DHCP = "    dhcp: false\n"


def test_allocation_takes_lowest_free_address_skipping_gateway_and_explicit_ones():
    # explicit addresses first (.2, .4), then the DHCP port (lowest free: .3), then the
    # instances without an address, in file order
    text = with_instances(("a", None), ("b", "10.0.0.2"), ("c", None), ("d", "10.0.0.4"), ("e", None))
    s = parse(text)
    assert s.network("net1").dhcp_ip == "10.0.0.3"
    assert {i.name: i.ip for i in s.instances} == {
        "a": "10.0.0.5", "b": "10.0.0.2", "c": "10.0.0.6", "d": "10.0.0.4", "e": "10.0.0.7"}


def test_allocation_without_dhcp_takes_lowest_free_address():
    text = with_instances(("a", None), ("b", "10.0.0.2"), ("c", None), ("d", "10.0.0.4"), ("e", None),
                          network_extra=NO_DHCP)
    s = parse(text)
    assert s.network("net1").dhcp_ip is None
    assert {i.name: i.ip for i in s.instances} == {
        "a": "10.0.0.3", "b": "10.0.0.2", "c": "10.0.0.5", "d": "10.0.0.4", "e": "10.0.0.6"}


def test_dhcp_port_takes_the_lowest_free_address_then_instances():
    s = parse(with_instances(("a", None), ("b", None)))
    net = s.network("net1")
    assert (net.dhcp, net.dhcp_ip) == (True, "10.0.0.2")
    assert net.dhcp_port_id == naming.object_uuid("unit", "dhcp-port", "net1")
    assert [i.ip for i in s.instances] == ["10.0.0.3", "10.0.0.4"]


def test_dhcp_port_skips_explicit_instance_addresses():
    s = parse(with_instances(("a", None), ("b", "10.0.0.2"), ("c", "10.0.0.3")))
    assert s.network("net1").dhcp_ip == "10.0.0.4"
    assert s.instance("a").ip == "10.0.0.5"


def test_allocation_with_gateway_elsewhere_starts_at_first_host():
    s = parse(with_instances(("a", None), ("b", None), gateway="10.0.0.254"))
    assert s.network("net1").dhcp_ip == "10.0.0.1"
    assert [i.ip for i in s.instances] == ["10.0.0.2", "10.0.0.3"]
    s = parse(with_instances(("a", None), ("b", None), gateway="10.0.0.254", network_extra=NO_DHCP))
    assert [i.ip for i in s.instances] == ["10.0.0.1", "10.0.0.2"]


def test_default_gateway_is_first_host_and_skipped():
    s = parse(with_instances(("a", None), gateway=None))
    assert s.network("net1").gateway == "10.0.0.1"
    assert s.network("net1").dhcp_ip == "10.0.0.2"
    assert s.instance("a").ip == "10.0.0.3"


def test_allocation_stays_in_the_pool():
    s = parse(with_instances(("a", None), ("b", None),
                             network_extra="    allocation_pool: 10.0.0.100-10.0.0.200\n"))
    assert s.network("net1").allocation_pool == ("10.0.0.100", "10.0.0.200")
    assert s.network("net1").dhcp_ip == "10.0.0.100"
    assert [i.ip for i in s.instances] == ["10.0.0.101", "10.0.0.102"]


def test_slash_29_runs_out_of_addresses():
    # 10.0.0.0/29: hosts .1-.6, .1 is the gateway and .2 the DHCP port: four addresses for
    # five instances.
    names = [f"vm{i}" for i in range(1, 6)]
    text = with_instances(*[(n, None) for n in names], cidr="10.0.0.0/29")
    p = only_problem(text)
    assert (p.line, p.where) == (line_of(text, "  vm5:"), "instances.vm5")
    assert p.message == "network net1 (10.0.0.0/29) has no free address left in its pool"


def test_slash_29_full_is_fine():
    text = with_instances(*[(f"vm{i}", None) for i in range(1, 5)], cidr="10.0.0.0/29")
    s = parse(text)
    assert s.network("net1").dhcp_ip == "10.0.0.2"
    assert [i.ip for i in s.instances] == [f"10.0.0.{n}" for n in range(3, 7)]


def test_slash_29_without_dhcp_holds_five_instances():
    names = [f"vm{i}" for i in range(1, 7)]
    text = with_instances(*[(n, None) for n in names], cidr="10.0.0.0/29", network_extra=NO_DHCP)
    p = only_problem(text)
    assert (p.line, p.where) == (line_of(text, "  vm6:"), "instances.vm6")
    assert p.message == "network net1 (10.0.0.0/29) has no free address left in its pool"
    text = with_instances(*[(n, None) for n in names[:5]], cidr="10.0.0.0/29", network_extra=NO_DHCP)
    assert [i.ip for i in parse(text).instances] == [f"10.0.0.{n}" for n in range(2, 7)]


def test_dhcp_port_with_a_full_pool():
    text = with_instances(("a", "10.0.0.100"), ("b", "10.0.0.101"),
                          network_extra="    allocation_pool: 10.0.0.100-10.0.0.101\n")
    p = only_problem(text)
    assert (p.line, p.where) == (line_of(text, "  net1:"), "networks.net1")
    assert p.message == "network net1 (10.0.0.0/24) has no free address left in its pool"


# --------------------------------------------------------------------------- network node features: valid

def test_external_base_is_valid():
    s = parse(EXT)
    ext_net, net1 = s.network("ext-net"), s.network("net1")
    assert (ext_net.external, ext_net.dhcp, ext_net.dhcp_ip) == (True, False, None)
    assert ext_net.allocation_pool == ("203.0.113.101", "203.0.113.200")
    assert (net1.external, net1.dhcp, net1.dhcp_ip) == (False, True, "10.0.0.2")
    (r,) = s.routers
    assert (r.name, r.project, r.node, r.external_network) == ("router1", "demo", "network1", "ext-net")
    assert r.line == line_of(EXT, "  router1:")
    assert r.router_id == naming.object_uuid("unit", "router", "router1")
    assert r.gateway_ip == "203.0.113.101"          # lowest free address of the pool
    assert r.gateway_port_id == naming.object_uuid("unit", "router-gateway", "router1")
    assert r.gateway_mac == naming.port_mac(r.gateway_port_id)
    (iface,) = r.interfaces
    assert (iface.network, iface.ip) == ("net1", "10.0.0.1")   # the subnet's gateway
    assert iface.port_id == naming.object_uuid("unit", "router-interface", "router1/net1")
    assert iface.mac == naming.port_mac(iface.port_id)
    (h,) = s.external_hosts
    assert (h.name, h.network, h.ip, h.line) == ("ext1", "ext-net", "203.0.113.50", line_of(EXT, "  ext1:"))
    assert h.mac == naming.port_mac(naming.object_uuid("unit", "external-host", "ext1"))
    assert [(i.name, i.address, i.floating_ip) for i in s.instances] == [("vm1", "dhcp", None), ("vm2", "dhcp", None)]


def test_router_gateway_is_lowest_free_of_the_pool_after_explicit_floating_ips():
    s = parse(with_fip("vm1", "203.0.113.101"))
    assert s.routers[0].gateway_ip == "203.0.113.102"
    assert s.instance("vm1").floating_ip == "203.0.113.101"


def test_auto_floating_ips_come_after_the_router_gateway():
    s = parse(with_fip("vm2", "auto", with_fip("vm1", "auto")))
    assert s.routers[0].gateway_ip == "203.0.113.101"
    assert (s.instance("vm1").floating_ip, s.instance("vm2").floating_ip) == ("203.0.113.102", "203.0.113.103")


def test_auto_floating_ip_skips_explicit_ones_and_the_explicit_gateway():
    text = with_fip("vm2", "auto", with_fip("vm1", "203.0.113.102", with_router_key("gateway_ip", "203.0.113.101")))
    s = parse(text)
    assert s.routers[0].gateway_ip == "203.0.113.101"
    assert (s.instance("vm1").floating_ip, s.instance("vm2").floating_ip) == ("203.0.113.102", "203.0.113.103")
    s = parse(with_fip("vm1", "auto", with_router_key("gateway_ip", "203.0.113.150")))
    assert (s.routers[0].gateway_ip, s.instance("vm1").floating_ip) == ("203.0.113.150", "203.0.113.101")


def test_external_network_without_pool_allocates_from_the_subnet():
    s = parse(with_fip("vm1", "auto", NOPOOL))
    assert s.network("ext-net").allocation_pool is None
    assert (s.routers[0].gateway_ip, s.instance("vm1").floating_ip) == ("203.0.113.2", "203.0.113.3")


def test_external_host_outside_the_pool_is_not_allocated_again():
    s = parse(with_fip("vm1", "auto", ext("ip: 203.0.113.50", "ip: 203.0.113.2", NOPOOL)))
    assert s.external_hosts[0].ip == "203.0.113.2"
    assert (s.routers[0].gateway_ip, s.instance("vm1").floating_ip) == ("203.0.113.3", "203.0.113.4")


def test_router_without_external_gateway():
    s = parse(ext("    external_gateway: ext-net\n", ""))
    r = s.routers[0]
    assert (r.external_network, r.gateway_ip, r.gateway_port_id, r.gateway_mac) == (None, None, None, None)


def test_router_node_given_explicitly():
    s = parse(with_router_key("node", "network1"))
    assert s.routers[0].node == "network1"


def test_address_defaults_follow_dhcp():
    text = with_instance("vm5", network="net2", ip=None, address="static",
                         text=with_instance("vm4", network="net2", ip=None,
                                            text=with_instance(ip=None, address="static",
                                                               text=with_network(dhcp="false"))))
    s = parse(text)
    assert s.network("net2").dhcp is False
    assert [(i.name, i.address, i.ip) for i in s.instances] == [
        ("vm1", "dhcp", "10.0.0.11"), ("vm2", "dhcp", "10.0.0.12"), ("vm3", "static", "10.0.0.3"),
        ("vm4", "static", "10.2.0.2"), ("vm5", "static", "10.2.0.3")]


def test_external_network_with_dhcp_gets_a_dhcp_port_in_its_pool():
    s = parse(ext("    external: true\n", "    external: true\n    dhcp: true\n"))
    assert s.network("ext-net").dhcp_ip == "203.0.113.101"
    assert s.routers[0].gateway_ip == "203.0.113.102"


def test_security_groups_and_rules():
    text = with_instance(security_groups="[default, web]", text=insert_before("instances:\n", """\
security_groups:
  web:
    project: demo
    rules:
      - {direction: ingress, protocol: tcp, port: 8000-8080}
      - {direction: ingress, protocol: udp, port: 53, remote_ip: 10.9.0.0/16}
      - {direction: ingress, remote_group: web}
      - {direction: egress, protocol: icmp, remote_group: default}
"""))
    s = parse(text)
    (g,) = s.security_groups
    assert (g.name, g.project, g.line) == ("web", "demo", line_of(text, "  web:"))
    assert [(r.direction, r.protocol, r.port_min, r.port_max, r.remote_ip, r.remote_group) for r in g.rules] == [
        ("ingress", "tcp", 8000, 8080, "0.0.0.0/0", None),
        ("ingress", "udp", 53, 53, "10.9.0.0/16", None),
        ("ingress", "any", None, None, None, "web"),
        ("egress", "icmp", None, None, None, "default"),
    ]
    assert g.rules[0].line == line_of(text, "port: 8000-8080")
    assert s.instance("vm3").security_groups == ("default", "web")
    assert s.security_group("demo", "web") is g
    assert s.security_group("alt", "web") is None


def test_checks_with_external_hosts_floating_ips_and_leases():
    text = with_fip("vm1", "203.0.113.150")
    text = with_check(text, name="out", to="ext1", path="- passes: router1\n- reaches: ext1\n  source: 203.0.113.101")
    text = with_check(text, name="in", **{"from": "ext1"}, to="203.0.113.150", proto="tcp:80",
                      path="- reaches: vm1\n  source: 203.0.113.50\n  destination: 10.0.0.11")
    text = with_check(text, name="to instance ip", to="10.0.0.12", proto="tcp")
    text = with_check(text, name="to host ip", to="203.0.113.50", proto="tcp")
    text = with_lease("vm2", text)
    s = parse(text)
    out, inbound, to_ip, to_host_ip, lease = s.checks[1:]
    assert (out.source, out.destination, out.proto) == ("vm1", "ext1", "icmp")
    assert [(p.kind, p.target, p.source, p.destination) for p in out.path] == [
        ("passes", "router1", None, None), ("reaches", "ext1", "203.0.113.101", None)]
    assert out.path[1].describe() == "probe packets (203.0.113.101 <-> destination) reach ext1"
    assert out.path[0].describe() == "probe packets pass through router router1"
    assert (inbound.source, inbound.destination, inbound.proto, inbound.port) == ("ext1", "203.0.113.150", "tcp", 80)
    assert inbound.path[0].destination == "10.0.0.11"
    assert (to_ip.destination, to_host_ip.destination) == ("10.0.0.12", "203.0.113.50")
    assert (lease.name, lease.source, lease.destination, lease.proto, lease.path) == (
        "vm2 holds its DHCP lease", "vm2", "", "lease", ())
    assert lease.line == line_of(text, "- lease: vm2")


def test_dhcp_server_is_a_path_target():
    s = parse(with_check(EXT, path="- never_reaches: net1-dhcp"))
    assert s.checks[1].path[0].target == "net1-dhcp"


# --------------------------------------------------------------------------- fixed bugs (found by review)

def test_router_without_interfaces_is_valid():
    s = parse(ext("    interfaces: [net1]\n", ""))
    assert s.routers[0].interfaces == ()
    assert s.routers[0].gateway_ip == "203.0.113.101"


def test_security_group_without_rules_is_valid():
    s = parse(with_instance(security_groups="[web]", text=with_group(None)))
    assert s.security_group("demo", "web").rules == ()


@pytest.mark.parametrize("addr", ["203.0.113.1", "203.0.113.0", "203.0.113.255"])
def test_explicit_floating_ip_must_be_a_free_host_address(addr):
    text = with_fip("vm1", addr, NOPOOL)
    p = only_problem(text)
    assert (p.line, p.where) == (line_of(text, f"floating_ip: {addr}"), "instances.vm1.floating_ip")
    assert addr in p.message


@pytest.mark.parametrize("addr", ["203.0.113.1", "203.0.113.0", "203.0.113.255"])
def test_explicit_router_gateway_ip_must_be_a_free_host_address(addr):
    text = with_router_key("gateway_ip", addr, NOPOOL)
    p = only_problem(text)
    assert (p.line, p.where) == (line_of(text, f"gateway_ip: {addr}"), "routers.router1.gateway_ip")
    assert addr in p.message


# --------------------------------------------------------------------------- fixed bugs

def test_vlan_without_segmentation_id_does_not_collide_with_flat():
    """A vlan network without segmentation_id gets one from ML2 (the lowest free VLAN of
    physnet1's ranges: net1 holds 101) and is not mistaken for a second flat segment of the
    physical network by the flat network net3."""
    text = with_network("net3", with_network(segmentation_id=None),
                        type="flat", segmentation_id=None, cidr="10.3.0.0/24")
    s = parse(text)
    net2, net3 = s.network("net2"), s.network("net3")
    assert (net2.type, net2.physical_network, net2.segmentation_id) == ("vlan", "physnet1", 102)
    assert (net3.type, net3.physical_network, net3.segmentation_id) == ("flat", "physnet1", None)
    assert s.network("net1").segmentation_id == 101


def test_duplicate_key_in_list_item_where_path():
    text = mutate("  - name: vm1 to vm2\n", "  - name: vm1 to vm2\n    name: again\n")
    p = only_problem(text)
    assert (p.line, p.where) == (line_of(text, "name: again"), "checks[0].name")


# --------------------------------------------------------------------------- ML2, agent, tunnels: valid

def test_tunnel_underlay_and_vxlan_network():
    s = parse(VXNET)
    u = s.physical_network("underlay")
    assert (u.tunnels, u.cidr, u.bridge, u.vlan_ranges) == (True, "198.51.100.0/24", "", ())
    assert u.nodes == ("network1", "compute1", "compute2")
    assert s.physical_network("physnet1").tunnels is False
    assert s.physical_network("physnet1").cidr is None
    # default local_ip: the underlay's 11th, 12th, 13th host, in node order
    assert [(n.name, n.local_ip) for n in s.nodes] == [
        ("network1", "198.51.100.11"), ("compute1", "198.51.100.12"), ("compute2", "198.51.100.13")]
    net2 = s.network("net2")
    assert (net2.type, net2.physical_network, net2.segmentation_id, net2.mtu) == ("vxlan", "underlay", 1001, 1450)
    assert (s.l2_population, s.arp_responder) == (False, False)


def test_nodes_without_underlay_have_no_local_ip():
    assert [n.local_ip for n in parse(BASE).nodes] == [None, None, None]
    s = parse(underlay_nodes("[network1, compute2]"))
    assert [(n.name, n.local_ip) for n in s.nodes] == [
        ("network1", "198.51.100.11"), ("compute1", None), ("compute2", "198.51.100.13")]


def test_explicit_local_ip():
    s = parse(with_local_ip("compute1", "198.51.100.99"))
    assert [n.local_ip for n in s.nodes] == ["198.51.100.11", "198.51.100.99", "198.51.100.13"]


def test_gre_network_defaults():
    s = parse(tunnel_net(ntype="gre"))
    net2 = s.network("net2")
    assert (net2.type, net2.physical_network, net2.segmentation_id, net2.mtu) == ("gre", "underlay", 1, 1458)


@pytest.mark.parametrize("ntype, mtu", [("vxlan", "1450"), ("gre", "1458"), ("vxlan", "1400"), ("gre", "576")])
def test_tunnel_mtu_up_to_the_maximum_is_valid(ntype, mtu):
    assert parse(tunnel_net(ntype=ntype, mtu=mtu)).network("net2").mtu == int(mtu)


@pytest.mark.parametrize("ntype, seg", [("vxlan", 16777215), ("vxlan", 1), ("gre", 4294967295)])
def test_tunnel_ids_at_the_limits_are_valid(ntype, seg):
    assert parse(tunnel_net(ntype=ntype, segmentation_id=str(seg))).network("net2").segmentation_id == seg


def test_network_without_type_gets_the_first_tenant_network_type():
    # no ml2 section: vlan, on the first physical network with VLAN ranges
    s = parse(with_network(type=None, physical_network=None, segmentation_id=None))
    net2 = s.network("net2")
    assert (net2.type, net2.physical_network, net2.segmentation_id, net2.mtu) == ("vlan", "physnet1", 102, 1500)
    s = parse(with_network(type=None, physical_network=None, segmentation_id=None,
                           text=with_ml2("  tenant_network_types: [gre, vxlan]\n", TUN)))
    net2 = s.network("net2")
    assert (net2.type, net2.physical_network, net2.segmentation_id, net2.mtu) == ("gre", "underlay", 1, 1458)
    # net1 says type: vlan, so it stays a VLAN network
    assert s.network("net1").type == "vlan"


def test_tenant_vlan_network_goes_to_the_first_physnet_with_vlan_ranges():
    text = with_network(physical_network=None, segmentation_id=None,
                        text=with_physnet("physnet2", text=NO_VLAN_RANGES))
    net2 = parse(text).network("net2")
    assert (net2.physical_network, net2.segmentation_id) == ("physnet2", 201)


def test_explicit_segmentation_ids_are_reserved_before_allocation():
    # net2 comes first but has no id; net3 holds 1001 explicitly, so net2 gets 1002
    text = tunnel_net("net3", cidr="10.3.0.0/24", segmentation_id="1001", text=VXNET)
    s = parse(text)
    assert (s.network("net2").segmentation_id, s.network("net3").segmentation_id) == (1002, 1001)
    # the same for VLANs: net2 (no id) after net1's 101 and net3's explicit 102
    text = with_network("net3", cidr="10.3.0.0/24", segmentation_id="102",
                        text=with_network(segmentation_id=None))
    s = parse(text)
    assert [n.segmentation_id for n in s.networks] == [101, 103, 102]


def test_allocation_walks_the_ranges_in_file_order():
    text = tunnel_net("net4", "gre", cidr="10.4.0.0/24", text=tunnel_net(
        "net3", "gre", cidr="10.3.0.0/24", text=tunnel_net(
            ntype="gre", text=with_ml2("  tunnel_id_ranges: ['9:9', '2:3']\n", TUN))))
    s = parse(text)
    assert [(n.name, n.segmentation_id) for n in s.networks] == [("net1", 101), ("net2", 9), ("net3", 2), ("net4", 3)]


def test_vxlan_and_gre_ids_are_separate_pools():
    text = tunnel_net("net3", "gre", cidr="10.3.0.0/24", segmentation_id="1001",
                      text=tunnel_net(segmentation_id="1001"))
    s = parse(text)
    assert [(n.type, n.segmentation_id) for n in s.networks[1:]] == [("vxlan", 1001), ("gre", 1001)]


def test_vni_ranges_from_ml2():
    s = parse(with_ml2("  tenant_network_types: [vxlan]\n  vni_ranges: ['5000:5010']\n", VXNET))
    assert s.network("net2").segmentation_id == 5000


def test_agent_options():
    s = parse(with_agent("  l2_population: true\n  arp_responder: true\n", VXNET))
    assert (s.l2_population, s.arp_responder) == (True, True)
    s = parse(with_agent("  l2_population: true\n", VXNET))
    assert (s.l2_population, s.arp_responder) == (True, False)


def test_path_vni_and_key_on_the_underlay():
    text = with_check(VXNET, path="- crosses: underlay\n  vni: 1001\n- crosses: underlay\n  key: 7\n  packets: arp")
    vni, key = parse(text).checks[1].path
    assert (vni.kind, vni.target, vni.vlan, vni.vni, vni.key) == ("crosses", "underlay", None, 1001, None)
    assert (key.vni, key.key, key.packets) == (None, 7, "arp")
    assert vni.line == line_of(text, "- crosses: underlay", 0)
    assert vni.describe() == "probe packets cross underlay in VXLAN VNI 1001"
    assert key.describe() == "ARP requests for the destination cross underlay in GRE key 7"


def test_classic_scenarios_segmentation_ids():
    from lab.core.scenario import load_scenario
    ids = {name: {n.name: (n.type, n.segmentation_id, n.mtu) for n in load_scenario(name).networks}
           for name in ("classic-vlan", "classic-vxlan", "classic-gre")}
    assert ids["classic-vlan"] == {"ext-net": ("flat", None, 1500), "net1": ("vlan", 101, 1500),
                                   "net2": ("vlan", 102, 1500), "alt-net": ("vlan", 103, 1500)}
    assert ids["classic-vxlan"] == {"ext-net": ("flat", None, 1500), "net1": ("vxlan", 1001, 1450),
                                    "net2": ("vxlan", 1002, 1450), "alt-net": ("vxlan", 1003, 1450)}
    assert ids["classic-gre"] == {"ext-net": ("flat", None, 1500), "net1": ("gre", 1, 1458),
                                  "net2": ("gre", 2, 1458), "alt-net": ("gre", 3, 1458)}


# --------------------------------------------------------------------------- include

# A fragment for BASE without its nodes and projects (those come from the fragment).
FRAGMENT = """\
# shared topology
nodes:
  network1:
    role: network
  compute1:
    role: compute
projects: [demo]
checks:
  - name: from the fragment
    from: vm2
    to: vm1
description: the fragment's description
"""


def main_with_include(include: str = "include: frag.yaml", text: str = BASE) -> str:
    """BASE with an include line after its name, and network1/compute1 and the projects moved
    out (to FRAGMENT)."""
    text = mutate("  network1:\n    role: network\n  compute1:\n    role: compute\n", "", text)
    text = mutate("projects: [demo]\n", "", text)
    return mutate("name: unit\n", f"name: unit\n{include}\n", text)


def write(tmp_path, name: str, text: str) -> str:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def parse_file(tmp_path, main: str, **fragments: str):
    """Write the fragments (file name -> text) and the main file into tmp_path and parse it."""
    for name, text in fragments.items():
        write(tmp_path, name, text)
    filename = write(tmp_path, "main.yaml", main)
    return parse_scenario(main, filename, default_name="unit"), filename


def file_problems(tmp_path, main: str, **fragments: str):
    for name, text in fragments.items():
        write(tmp_path, name, text)
    filename = write(tmp_path, "main.yaml", main)
    with pytest.raises(ScenarioError) as info:
        parse_scenario(main, filename, default_name="unit")
    return info.value.problems, filename


def test_include_merges_the_fragment(tmp_path):
    main = main_with_include()
    s, filename = parse_file(tmp_path, main, **{"frag.yaml": FRAGMENT})
    frag = str(tmp_path / "frag.yaml")
    # a section the main file lacks is taken whole (projects), named entries are added (nodes:
    # the main file's own first), lists are concatenated (the fragment's first), the main
    # file's scalars win (description)
    assert s.projects == ("demo",)
    assert [n.name for n in s.nodes] == ["compute2", "network1", "compute1"]
    assert [c.name for c in s.checks] == ["from the fragment", "vm1 to vm2"]
    assert s.description == "two computes and a network node on one VLAN physical network"
    # lines of what came from the fragment are the fragment's, and know their file
    assert s.node("network1").line == line_of(FRAGMENT, "  network1:")
    assert s.node("network1").line.file == frag
    assert s.node("compute2").line == line_of(main, "  compute2:")
    assert s.node("compute2").line.file == filename
    assert s.checks[0].line == line_of(FRAGMENT, "- name: from the fragment")
    assert s.checks[0].line.file == frag
    assert s.source == filename


def test_include_a_list_of_files_relative_to_the_including_file(tmp_path):
    nodes, rest = FRAGMENT.split("projects:")
    main = main_with_include("include: [parts/nodes.yaml, parts/rest.yaml]")
    s, _ = parse_file(tmp_path, main, **{"parts/nodes.yaml": nodes, "parts/rest.yaml": "projects:" + rest})
    assert [n.name for n in s.nodes] == ["compute2", "network1", "compute1"]
    assert s.node("compute1").line.file == str(tmp_path / "parts/nodes.yaml")
    assert s.checks[0].line.file == str(tmp_path / "parts/rest.yaml")


def test_problem_inside_an_included_file_names_that_file_and_line(tmp_path):
    fragment = mutate("  compute1:\n    role: compute\n", "  compute1:\n    role: storage\n", FRAGMENT)
    problems, _ = file_problems(tmp_path, main_with_include(), **{"frag.yaml": fragment})
    assert [(p.file, p.line, p.where, p.message) for p in problems] == [
        (str(tmp_path / "frag.yaml"), line_of(fragment, "role: storage"), "nodes.compute1.role",
         "'storage' is not one of: network, compute")]


def test_missing_key_inside_an_included_file(tmp_path):
    fragment = FRAGMENT + "routers:\n  router1:\n    interfaces: [net1]\n"
    problems, _ = file_problems(tmp_path, main_with_include(), **{"frag.yaml": fragment})
    assert [(p.file, p.line, p.where, p.message) for p in problems] == [
        (str(tmp_path / "frag.yaml"), line_of(fragment, "interfaces: [net1]"), "routers.router1.project",
         "is required")]


def test_yaml_error_inside_an_included_file(tmp_path):
    fragment = mutate("projects: [demo]", "projects: [demo", FRAGMENT)
    problems, _ = file_problems(tmp_path, main_with_include(), **{"frag.yaml": fragment})
    frag = str(tmp_path / "frag.yaml")
    # (the main file then lacks what the fragment should have given: reported there)
    assert [(p.file, p.line, p.where, p.message) for p in problems if p.file == frag] == [
        (frag, line_of(fragment, "checks:"), "(file)", "not valid YAML: expected ',' or ']', but got ':'")]


def test_duplicate_key_inside_an_included_file(tmp_path):
    fragment = mutate("  compute1:\n    role: compute\n", "  compute1:\n    role: compute\n    role: network\n",
                      FRAGMENT)
    problems, _ = file_problems(tmp_path, main_with_include(), **{"frag.yaml": fragment})
    assert [(p.file, p.line, p.where, p.message) for p in problems] == [
        (str(tmp_path / "frag.yaml"), line_of(fragment, "role: network", -1), "nodes.compute1.role",
         f"duplicate key (first at line {line_of(fragment, 'role: compute')})")]


def test_name_defined_in_the_fragment_and_the_main_file(tmp_path):
    main = mutate("  compute2:\n", "  compute1:\n    role: compute\n  compute2:\n", main_with_include())
    problems, filename = file_problems(tmp_path, main, **{"frag.yaml": FRAGMENT})
    frag = str(tmp_path / "frag.yaml")
    assert [(p.file, p.line, p.where, p.message) for p in problems] == [
        (filename, line_of(main, "  compute1:"), "nodes.compute1",
         f"is also defined in {frag}:{line_of(FRAGMENT, '  compute1:')}")]


@pytest.mark.parametrize("key", ["name: other", "include: more.yaml"])
def test_fragment_may_not_set_name_or_include(tmp_path, key):
    fragment = FRAGMENT.replace("# shared topology\n", f"# shared topology\n{key}\n")
    # BASE is complete on its own, so the ignored fragment leaves one problem
    main = mutate("name: unit\n", "name: unit\ninclude: frag.yaml\n")
    problems, _ = file_problems(tmp_path, main, **{"frag.yaml": fragment, "more.yaml": "{}\n"})
    frag = str(tmp_path / "frag.yaml")
    assert [(p.file, p.line, p.where, p.message) for p in problems] == [
        (frag, line_of(fragment, key), "include",
         f"{frag} is a fragment: it may not set name or include other files")]


def test_missing_include_file(tmp_path):
    main = mutate("name: unit\n", "name: unit\ninclude: nope.yaml\n")
    problems, filename = file_problems(tmp_path, main)
    assert [(p.file, p.line, p.where, p.message) for p in problems] == [
        (filename, line_of(main, "include: nope.yaml"), "include",
         f"cannot read {tmp_path / 'nope.yaml'}: No such file or directory")]


def test_missing_include_file_in_a_list(tmp_path):
    main = mutate("name: unit\n", "name: unit\ninclude:\n  - ok.yaml\n  - nope.yaml\n")
    problems, filename = file_problems(tmp_path, main, **{"ok.yaml": "agent: {l2_population: false}\n"})
    assert [(p.file, p.line, p.where, p.message) for p in problems] == [
        (filename, line_of(main, "- nope.yaml"), "include",
         f"cannot read {tmp_path / 'nope.yaml'}: No such file or directory")]


def test_include_of_a_directory(tmp_path):
    (tmp_path / "adir").mkdir()
    main = mutate("name: unit\n", "name: unit\ninclude: adir\n")
    problems, filename = file_problems(tmp_path, main)
    assert [(p.file, p.line, p.where, p.message) for p in problems] == [
        (filename, line_of(main, "include: adir"), "include", f"cannot read {tmp_path / 'adir'}: is a directory, not a regular file")]


def test_include_must_be_a_file_name_or_a_list(tmp_path):
    main = mutate("name: unit\n", "name: unit\ninclude: {file: frag.yaml}\n")
    problems, filename = file_problems(tmp_path, main)
    assert [(p.file, p.line, p.where, p.message) for p in problems] == [
        (filename, line_of(main, "include:"), "include", "must be a file name or a list of them")]


def test_fragment_must_hold_a_mapping(tmp_path):
    main = mutate("name: unit\n", "name: unit\ninclude: frag.yaml\n")
    problems, filename = file_problems(tmp_path, main, **{"frag.yaml": "- nodes\n- networks\n"})
    assert [(p.file, p.line, p.where, p.message) for p in problems] == [
        (filename, line_of(main, "include: frag.yaml"), "include", f"{tmp_path / 'frag.yaml'} must hold a mapping")]


def test_include_file_that_is_not_text(tmp_path):
    (tmp_path / "frag.yaml").write_bytes(b"nodes: {}\n# \xff\xfe\n")
    main = mutate("name: unit\n", "name: unit\ninclude: frag.yaml\n")
    problems, filename = file_problems(tmp_path, main)
    assert [(p.file, p.line, p.where) for p in problems] == [(filename, line_of(main, "include: frag.yaml"),
                                                              "include")]
    assert problems[0].message.startswith(f"cannot read {tmp_path / 'frag.yaml'}")


def test_reference_to_a_line_of_the_other_file_names_that_file(tmp_path):
    # net1 (main file) holds VLAN 101; the fragment's net9 asks for it too
    fragment = FRAGMENT + ("networks:\n  net9:\n    project: demo\n    type: vlan\n    physical_network: physnet1\n"
                           "    segmentation_id: 101\n    cidr: 10.9.0.0/24\n")
    main = main_with_include()
    problems, filename = file_problems(tmp_path, main, **{"frag.yaml": fragment})
    (p,) = problems
    assert (p.file, p.line, p.where) == (str(tmp_path / "frag.yaml"), line_of(fragment, "  net9:"), "networks.net9")
    assert p.message.startswith("VLAN 101 of physnet1 is already used by network net1")
    # the reference must name the main file (in whatever words) next to net1's line there
    assert "main.yaml" in p.message and f"{line_of(main, '  net1:')}" in p.message


@pytest.mark.parametrize("text, snippet, where, message", [
    pytest.param(with_network(segmentation_id="5000", text=mutate("vlan_ranges: ['101:199']", "vlan_ranges: ['101:101']")),
                 "segmentation_id: 5000", "networks.net2.segmentation_id", "VLAN id 5000 is out of range 1-4094",
                 id="vlan"),
    pytest.param(tunnel_net("net3", cidr="10.3.0.0/24", text=tunnel_net(
                     segmentation_id="16777216", text=with_ml2("  vni_ranges: ['1001:1001']\n", TUN))),
                 "segmentation_id: 16777216", "networks.net2.segmentation_id",
                 "vxlan id 16777216 is out of range 1-16777215", id="vxlan"),
])
def test_invalid_explicit_segmentation_id_is_not_replaced_by_an_allocated_one(text, snippet, where, message):
    p = only_problem(text)
    assert (p.file, p.line, p.where, p.message) == ("unit.yaml", line_of(text, snippet), where, message)


# --------------------------------------------------------------------------- firewall driver

def test_firewall_driver_defaults_to_iptables_hybrid_and_noop_is_accepted():
    text = mutate("  compute2:\n    role: compute\n", "  compute2:\n    role: compute\n    firewall_driver: noop\n")
    s = parse(text)
    assert [(n.name, n.firewall_driver) for n in s.nodes] == [
        ("network1", "iptables_hybrid"), ("compute1", "iptables_hybrid"), ("compute2", "noop")]
    explicit = mutate("  compute1:\n    role: compute\n",
                      "  compute1:\n    role: compute\n    firewall_driver: iptables_hybrid\n", text)
    assert parse(explicit).node("compute1").firewall_driver == "iptables_hybrid"


def test_lab_name_replaces_the_files_name():
    s = parse_scenario(BASE, "unit.yaml", default_name="unit", lab_name="other-lab")
    assert s.name == "other-lab"
    assert s.network("net1").network_id != parse(BASE).network("net1").network_id   # derived from the name
    with pytest.raises(ScenarioError, match="lab name 'Bad_Name' must be lowercase"):
        parse_scenario(BASE, "unit.yaml", lab_name="Bad_Name")
