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
from lab import naming
from lab.errors import ScenarioError
from lab.scenario import parse_scenario

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
    case("unknown-top-level-key", BASE + "routers:\n  r1: {}\n", "routers:", "routers",
         "unknown key (expected one of: name, description, nodes, physical_networks, projects, "
         "networks, instances, checks)"),
    case("bad-lab-name", mutate("name: unit", "name: Unit_Lab"), "name: Unit_Lab", "name",
         "lab name 'Unit_Lab' must be lowercase letters"),
    case("project-twice", mutate("projects: [demo]", "projects: [demo, demo]"), "projects:",
         "projects", "project 'demo' is listed twice"),
    case("bad-project-name", mutate("projects: [demo]", "projects: [demo, Alt]"), "projects:",
         "projects", "project name 'Alt' must be lowercase"),
    # ---- nodes
    case("unknown-node-key", mutate("    role: network\n", "    role: network\n    flavor: m1.small\n"),
         "flavor:", "nodes.network1.flavor", "unknown key (expected one of: role)"),
    case("bad-role", mutate("  compute2:\n    role: compute", "  compute2:\n    role: storage"),
         "role: storage", "nodes.compute2.role", "'storage' is not one of: network, compute"),
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
         "gateway, mtu)"),
    case("network-vxlan", with_network(type="vxlan"), "type: vxlan", "networks.net2.type",
         "network type 'vxlan' is not supported yet (supported: vlan, flat)"),
    case("network-geneve", with_network(type="geneve"), "type: geneve", "networks.net2.type",
         "network type 'geneve' is not supported yet"),
    case("network-unknown-type", with_network(type="ethernet"), "type: ethernet", "networks.net2.type",
         "unknown network type 'ethernet' (supported: vlan, flat)"),
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
         "MTU 100 must be between 576 and 9000"),
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
         "instances.vm3.flavor", "unknown key (expected one of: node, network, ip, mac, security_groups)"),
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
         lambda t: f"10.0.0.11 is already used by vm1 (line {line_of(t, '  vm1:')}) on network net1"),
    case("mac-duplicate",
         with_instance(mac="FA:16:3E:00:00:01",
                       text=mutate("    ip: 10.0.0.11\n", "    ip: 10.0.0.11\n    mac: fa:16:3e:00:00:01\n")),
         "mac: FA:16:3E", "instances.vm3.mac",
         lambda t: f"fa:16:3e:00:00:01 is already used by vm1 (line {line_of(t, '  vm1:')})"),
    case("mac-malformed", with_instance(mac="fa:16:3e:00:00"), "mac: fa:16:3e:00:00", "instances.vm3.mac",
         "'fa:16:3e:00:00' is not a MAC address"),
    case("mac-multicast", with_instance(mac="'01:00:5e:00:00:01'"), "mac: '01:00:5e", "instances.vm3.mac",
         "01:00:5e:00:00:01 is a multicast address"),
    case("custom-security-group", with_instance(security_groups="[web]"), "security_groups: [web]",
         "instances.vm3.security_groups", "custom groups are not supported yet"),
    case("instance-named-like-node", with_instance("compute2"), ("  compute2:", -1), "instances.compute2",
         lambda t: f"name 'compute2' is already used by a node at line {line_of(t, '  compute2:', 0)}; "
                   "nodes, instances and physical networks share one name space"),
    case("instance-named-like-physnet", with_instance("physnet1"), ("  physnet1:", -1),
         "instances.physnet1",
         lambda t: f"name 'physnet1' is already used by a physical network at line "
                   f"{line_of(t, '  physnet1:', 0)}"),
    # ---- checks
    case("check-unknown-from", mutate("    from: vm1\n", "    from: vm9\n"), "from: vm9",
         "checks[0].from", "unknown instance 'vm9'"),
    case("check-to-nowhere", mutate("    to: vm2\n", "    to: nowhere\n"), "to: nowhere",
         "checks[0].to", "'nowhere' is neither an instance nor an IPv4 address"),
    case("check-to-missing", with_check(to=None), "- name: extra", "checks[1].to",
         "is required (an instance name or an IPv4 address)"),
    case("check-unknown-key", with_check(timeout="5"), "timeout: 5", "checks[1].timeout",
         "unknown key (expected one of: name, from, to, proto, expect, path)"),
    case("tcp-to-bare-ip", with_check(to="10.0.0.12", proto="tcp"), "to: 10.0.0.12", "checks[1].to",
         "a tcp check needs an instance as destination (it runs the server), not '10.0.0.12'"),
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
         "checks[0].path[0]", "needs exactly one of: crosses, never_on, never_reaches"),
    case("path-no-kind", with_path("vlan: 101"), "- vlan: 101", "checks[0].path[0]",
         "needs exactly one of: crosses, never_on, never_reaches"),
    case("path-not-a-mapping", with_path("physnet1"), "- physnet1", "checks[0].path[0]",
         "must be a mapping like {crosses: physnet1, vlan: 101}"),
    case("path-unknown-physnet", with_path("crosses: physnet9\nvlan: 101"), "crosses: physnet9",
         "checks[0].path[0].crosses", "unknown physical network 'physnet9'"),
    case("path-never-on-unknown", with_path("never_on: physnet9"), "never_on: physnet9",
         "checks[0].path[0].never_on", "unknown physical network 'physnet9'"),
    case("path-never-reaches-unknown", with_path("never_reaches: vm9"), "never_reaches: vm9",
         "checks[0].path[0].never_reaches", "unknown node, instance or physical network 'vm9'"),
    case("path-vlan-on-never-on", with_path("never_on: physnet1\nvlan: 101"), "vlan: 101",
         "checks[0].path[0].vlan", "vlan only goes with crosses"),
    case("path-vlan-5000", with_path("crosses: physnet1\nvlan: 5000"), "vlan: 5000",
         "checks[0].path[0].vlan", "VLAN id 5000 is out of range 1-4094"),
    case("path-packets-bogus", with_path("crosses: physnet1\nvlan: 101\npackets: bogus"), "packets: bogus",
         "checks[0].path[0].packets", "'bogus' is not one of: ip, arp"),
    case("path-unknown-key", with_path("crosses: physnet1\nvia: br-int"), "via: br-int",
         "checks[0].path[0].via", "unknown key (expected one of: crosses, never_on, never_reaches, vlan, packets)"),
    case("path-not-a-list", mutate("    path:\n      - crosses: physnet1\n        vlan: 101\n",
                                   "    path: physnet1\n"),
         "path: physnet1", "checks[0].path", "must be a list of path assertions"),
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
    text += "routers: {}\n"
    with pytest.raises(ScenarioError) as info:
        parse(text)
    problems = info.value.problems
    assert [(p.line, p.where) for p in problems] == [
        (line_of(text, "role: storage"), "nodes.compute2.role"),
        (line_of(text, "mac: not-a-mac"), "instances.vm2.mac"),
        (line_of(text, "routers:"), "routers"),
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
                   gateway: str | None = "10.0.0.1") -> str:
    """BASE with net1's subnet changed, its instances replaced (name, ip or None) and no checks."""
    head = BASE.split("instances:\n")[0]
    head = mutate("    cidr: 10.0.0.0/24\n", f"    cidr: {cidr}\n", head)
    head = mutate("    gateway: 10.0.0.1\n", f"    gateway: {gateway}\n" if gateway else "", head)
    lines = ["instances:"]
    for name, ip in instances:
        extra = f", ip: {ip}" if ip else ""
        lines.append(f"  {name}: {{node: compute1, network: net1{extra}}}")
    return head + "\n".join(lines) + "\n"


def test_allocation_takes_lowest_free_address_skipping_gateway_and_explicit_ones():
    text = with_instances(("a", None), ("b", "10.0.0.2"), ("c", None), ("d", "10.0.0.4"), ("e", None))
    s = parse(text)
    assert {i.name: i.ip for i in s.instances} == {
        "a": "10.0.0.3", "b": "10.0.0.2", "c": "10.0.0.5", "d": "10.0.0.4", "e": "10.0.0.6"}


def test_allocation_with_gateway_elsewhere_starts_at_first_host():
    s = parse(with_instances(("a", None), ("b", None), gateway="10.0.0.254"))
    assert [i.ip for i in s.instances] == ["10.0.0.1", "10.0.0.2"]


def test_default_gateway_is_first_host_and_skipped():
    s = parse(with_instances(("a", None), gateway=None))
    assert s.network("net1").gateway == "10.0.0.1"
    assert s.instance("a").ip == "10.0.0.2"


def test_slash_29_runs_out_of_addresses():
    # 10.0.0.0/29: hosts .1-.6, .1 is the gateway: five addresses for six instances.
    names = [f"vm{i}" for i in range(1, 7)]
    text = with_instances(*[(n, None) for n in names], cidr="10.0.0.0/29")
    p = only_problem(text)
    assert (p.line, p.where) == (line_of(text, "  vm6:"), "instances.vm6")
    assert p.message == "network net1 (10.0.0.0/29) has no free address left"


def test_slash_29_full_is_fine():
    text = with_instances(*[(f"vm{i}", None) for i in range(1, 6)], cidr="10.0.0.0/29")
    assert [i.ip for i in parse(text).instances] == [f"10.0.0.{n}" for n in range(2, 7)]


# --------------------------------------------------------------------------- fixed bugs

def test_vlan_without_segmentation_id_does_not_collide_with_flat():
    text = with_network("net3", with_network(segmentation_id=None),
                        type="flat", segmentation_id=None, cidr="10.3.0.0/24")
    problems = problems_of(text)
    assert [(p.where, p.message) for p in problems] == [
        ("networks.net2.segmentation_id", "is required")]


def test_duplicate_key_in_list_item_where_path():
    text = mutate("  - name: vm1 to vm2\n", "  - name: vm1 to vm2\n    name: again\n")
    p = only_problem(text)
    assert (p.line, p.where) == (line_of(text, "name: again"), "checks[0].name")
