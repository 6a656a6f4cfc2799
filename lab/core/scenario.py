"""Scenario files: load, validate, resolve. Pure: reads one file, imports nothing that touches
the system.

A scenario describes what Neutron would have been asked for (nodes, physical networks,
projects, networks, instances) and the checks that prove the dataplane. ``load_scenario``
returns an immutable, fully resolved ``Scenario`` (every instance has its IP and MAC) or raises
``ScenarioError`` listing every problem with its file:line.

The format is documented in docs/scenario-format.md.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import itertools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.core import naming
from lab.errors import Problem, ScenarioError, ScenarioNotFound
from lab.core.yamlsource import LineDict, LineList, load_yaml, merge_included

NAME_RE = re.compile(r"^[a-z][a-z0-9-]*$")
ROLES = ("network", "compute")
NETWORK_TYPES_NOW = ("vlan", "flat", "vxlan", "gre")
NETWORK_TYPES_LATER = ("geneve", "local")
TUNNEL_TYPES = ("vxlan", "gre")
TUNNEL_ID_MAX = {"vxlan": 2 ** 24 - 1, "gre": 2 ** 32 - 1}
# Neutron's encapsulation overheads (IPv4 underlay): VXLAN 50, GRE 42 bytes
DEFAULT_MTU_UNDERLAY = 1500
RESERVED_BRIDGES = ("br-int", "br-tun")
PROTOS = ("icmp", "tcp")
EXPECTS = ("reach", "blocked")
PACKET_KINDS = ("ip", "arp")
PATH_KINDS = ("crosses", "never_on", "never_reaches", "reaches", "passes")
DEFAULT_TCP_PORT = 5001
DEFAULT_MTU = {"vlan": 1500, "flat": 1500, "vxlan": 1450, "gre": 1458}


@dataclass(frozen=True)
class Node:
    name: str
    role: str
    line: int
    local_ip: str | None = None     # tunnel endpoint on the underlay
    firewall_driver: str = "iptables_hybrid"    # the OVS agent's [securitygroup] firewall_driver


@dataclass(frozen=True)
class PhysicalNetwork:
    name: str
    bridge: str
    vlan_ranges: tuple[tuple[int, int], ...]
    nodes: tuple[str, ...]
    line: int
    tunnels: bool = False           # the tunnel underlay (VXLAN/GRE endpoints), not a provider network
    cidr: str | None = None         # the underlay's addresses


@dataclass(frozen=True)
class Network:
    name: str
    project: str
    type: str
    physical_network: str
    segmentation_id: int | None
    cidr: str
    gateway: str
    mtu: int
    line: int
    external: bool = False
    allocation_pool: tuple[str, str] | None = None   # (first, last); None: the whole subnet
    dhcp: bool = False
    dhcp_ip: str | None = None                       # the DHCP port's address, when dhcp
    dhcp_port_id: str | None = None
    network_id: str = ""

    @property
    def prefixlen(self) -> int:
        return ipaddress.ip_network(self.cidr).prefixlen


@dataclass(frozen=True)
class Rule:
    """One security group rule, as Neutron stores it."""

    direction: str                 # ingress | egress
    protocol: str                  # any | icmp | tcp | udp
    port_min: int | None
    port_max: int | None
    remote_ip: str | None          # a CIDR, or None with remote_group
    remote_group: str | None
    line: int


@dataclass(frozen=True)
class SecurityGroup:
    name: str
    project: str
    rules: tuple[Rule, ...]
    line: int


@dataclass(frozen=True)
class Instance:
    name: str
    node: str
    network: str
    ip: str
    mac: str
    port_id: str
    security_groups: tuple[str, ...]
    line: int
    address: str = "static"        # dhcp | static: how eth0 gets its address
    floating_ip: str | None = None


@dataclass(frozen=True)
class RouterInterface:
    network: str
    port_id: str
    ip: str
    mac: str


@dataclass(frozen=True)
class Router:
    name: str
    project: str
    node: str
    router_id: str
    interfaces: tuple[RouterInterface, ...]
    external_network: str | None
    gateway_port_id: str | None
    gateway_ip: str | None
    gateway_mac: str | None
    line: int


@dataclass(frozen=True)
class ExternalHost:
    """A namespace on an external network's wire that stands for the outside world."""

    name: str
    network: str
    ip: str
    mac: str
    line: int


@dataclass(frozen=True)
class PathAssertion:
    kind: str              # crosses | never_on | never_reaches | reaches | passes
    target: str            # physical network, instance, node, external host or router
    vlan: int | None       # crosses only: the 802.1Q id seen on the wire
    packets: str           # ip (the probe's own packets) | arp (ARP for the destination)
    line: int
    source: str | None = None       # the address pair to look for there, when NAT changed it
    destination: str | None = None
    vni: int | None = None          # crosses only: VXLAN network identifier seen on the underlay
    key: int | None = None          # crosses only: GRE key seen on the underlay

    def describe(self) -> str:
        what = "ARP requests for the destination" if self.packets == "arp" else "probe packets"
        pair = ""
        if self.source or self.destination:
            pair = f" ({self.source or 'source'} <-> {self.destination or 'destination'})"
        if self.kind == "crosses":
            tag = f" tagged VLAN {self.vlan}" if self.vlan is not None else ""
            tag += f" in VXLAN VNI {self.vni}" if self.vni is not None else ""
            tag += f" in GRE key {self.key}" if self.key is not None else ""
            return f"{what}{pair} cross {self.target}{tag}"
        if self.kind == "never_on":
            return f"{what}{pair} never appear on {self.target}"
        if self.kind == "reaches":
            return f"{what}{pair} reach {self.target}"
        if self.kind == "passes":
            return f"{what}{pair} pass through router {self.target}"
        return f"{what}{pair} never reach {self.target}"


@dataclass(frozen=True)
class Check:
    name: str
    source: str            # instance or external host; for a lease check, the instance
    destination: str       # instance, external host or IPv4 address; "" for a lease check
    proto: str             # icmp | tcp | lease
    port: int | None
    expect: str            # reach | blocked
    path: tuple[PathAssertion, ...]
    line: int


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    source: str
    nodes: tuple[Node, ...]
    physical_networks: tuple[PhysicalNetwork, ...]
    projects: tuple[str, ...]
    networks: tuple[Network, ...]
    instances: tuple[Instance, ...]
    checks: tuple[Check, ...]
    security_groups: tuple[SecurityGroup, ...] = ()
    routers: tuple[Router, ...] = ()
    external_hosts: tuple[ExternalHost, ...] = ()
    l2_population: bool = False
    arp_responder: bool = False

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def network(self, name: str) -> Network:
        return next(n for n in self.networks if n.name == name)

    def physical_network(self, name: str) -> PhysicalNetwork:
        return next(p for p in self.physical_networks if p.name == name)

    def instance(self, name: str) -> Instance:
        return next(i for i in self.instances if i.name == name)

    def security_group(self, project: str, name: str) -> SecurityGroup | None:
        return next((g for g in self.security_groups if g.project == project and g.name == name), None)


# --------------------------------------------------------------------------- finding files

def scenarios_dir() -> Path:
    from lab.paths import data_dir
    return data_dir("scenarios")


def builtin_scenarios() -> list[Path]:
    return sorted(scenarios_dir().glob("*.yaml"))


def find_scenario(name_or_path: str) -> Path:
    """A built-in scenario name (``classic-vlan``) or a path to a YAML file."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or "/" in name_or_path:
        if not path.is_file():
            raise ScenarioNotFound(f"no scenario file at {path}")
        return path
    candidate = scenarios_dir() / f"{name_or_path}.yaml"
    if candidate.is_file():
        return candidate
    known = ", ".join(p.stem for p in builtin_scenarios()) or "none"
    raise ScenarioNotFound(f"no scenario named {name_or_path!r} (built-in: {known}); "
                           "give a path to a .yaml file to use your own")


def load_scenario(name_or_path: str, lab_name: str | None = None) -> Scenario:
    """LAB_NAME, when given, replaces the file's `name:` (`lab up X --name Y`): the lab and
    everything derived from its name (namespaces, UUIDs, MACs, flow cookie) are Y's."""
    path = find_scenario(name_or_path)
    return parse_scenario(path.read_text(), str(path), default_name=path.stem, lab_name=lab_name)


# --------------------------------------------------------------------------- validation

class _Checker:
    """Collects problems; every accessor reports with the line of what it looked at."""

    def __init__(self, filename: str):
        self.filename = filename
        self.problems: list[Problem] = []
        self.included = False

    def at(self, line: int) -> str:
        """How a message refers to another line: 'line N', or 'FILE:N' once files are included
        (the message may stand in one file and refer to the other)."""
        if not self.included:
            return f"line {int(line)}"
        return f"{getattr(line, 'file', self.filename)}:{int(line)}"

    def add(self, line: int, where: str, message: str) -> None:
        # lines from an included file know their file (SourceLine)
        self.problems.append(Problem(getattr(line, "file", self.filename), int(line), where, message))

    def mapping(self, parent: LineDict, key: str, where: str, required: bool = False) -> LineDict | None:
        value = parent.get(key)
        if value is None:
            if required:
                self.add(parent.line_of(key), where, "is required")
            return None
        if not isinstance(value, LineDict):
            self.add(parent.line_of(key), where, f"must be a mapping, not {_kind(value)}")
            return None
        return value

    def known_keys(self, d: LineDict, allowed: tuple[str, ...], where: str) -> None:
        for key in d:
            if key not in allowed:
                self.add(d.line_of(key), f"{where}.{key}" if where else key,
                         f"unknown key (expected one of: {', '.join(allowed)})")

    def name(self, name: str, line: int, where: str, maxlen: int) -> bool:
        if not NAME_RE.match(name):
            self.add(line, where, f"name {name!r} must start with a lowercase letter and hold only "
                                  "lowercase letters, digits and '-'")
            return False
        if len(name) > maxlen:
            self.add(line, where, f"name {name!r} is {len(name)} characters; at most {maxlen} "
                                  f"(it becomes a Linux interface name, {naming.IFNAMSIZ} max)")
            return False
        return True

    def string(self, d: LineDict, key: str, where: str, required: bool = True,
               choices: tuple[str, ...] | None = None) -> str | None:
        value = d.get(key)
        if value is None:
            if required:
                self.add(d.line_of(key), where, "is required")
            return None
        if not isinstance(value, str):
            self.add(d.line_of(key), where, f"must be a string, not {_kind(value)}")
            return None
        if choices and value not in choices:
            self.add(d.line_of(key), where, f"{value!r} is not one of: {', '.join(choices)}")
            return None
        return value

    def project(self, d: LineDict, where: str, projects: list[str]) -> str | None:
        """The required 'project' key, naming one of the scenario's projects."""
        project = self.string(d, "project", where)
        if project is not None and project not in projects:
            self.add(d.line_of("project"), where, f"unknown project {project!r}")
            return None
        return project

    def mac(self, d: LineDict, where: str) -> str | None:
        """An optional unicast MAC address under key 'mac'."""
        if "mac" not in d:
            return None
        mac = str(d["mac"]).lower()
        if not re.fullmatch(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}", mac):
            self.add(d.line_of("mac"), where, f"{d['mac']!r} is not a MAC address")
            return None
        if int(mac[:2], 16) & 1:
            self.add(d.line_of("mac"), where, f"{mac} is a multicast address")
            return None
        return mac

    def boolean(self, d: LineDict, key: str, where: str, default: bool) -> bool:
        value = d.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.add(d.line_of(key), where, f"must be true or false, not {_kind(value)}")
            return default
        return value

    def integer(self, d: LineDict, key: str, where: str, required: bool = True) -> int | None:
        value = d.get(key)
        if value is None:
            if required:
                self.add(d.line_of(key), where, "is required")
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.add(d.line_of(key), where, f"must be an integer, not {_kind(value)}")
            return None
        return value


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "empty"
    return f"{type(value).__name__} {value!r}"


def _items(c: _Checker, root: LineDict, key: str, required: bool = True):
    """(name, body, line) for each entry of a top-level mapping section."""
    section = c.mapping(root, key, key, required=required)
    if section is None:
        return []
    out = []
    for name, body in section.items():
        line = section.line_of(name)
        if body is None:
            body = LineDict()
            body.line, body.key_lines = line, {}
        if not isinstance(body, LineDict):
            c.add(line, f"{key}.{name}", f"must be a mapping, not {_kind(body)}")
            continue
        out.append((str(name), body, line))
    return out


def _ranges(c: _Checker, body: LineDict, key: str, where: str, maximum: int) -> tuple[tuple[int, int], ...]:
    """A list of 'first:last' ranges (network_vlan_ranges, vni_ranges, tunnel_id_ranges)."""
    raw = body.get(key)
    if raw is None:
        return ()
    if not isinstance(raw, LineList):
        c.add(body.line_of(key), where, "must be a list like ['101:199']")
        return ()
    ranges = []
    for i, item in enumerate(raw):
        line = raw.line_of(i)
        m = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", str(item))
        if not m:
            c.add(line, where, f"{item!r} is not a range like '101:199'")
            continue
        lo, hi = int(m.group(1)), int(m.group(2))
        if not (1 <= lo <= hi <= maximum):
            c.add(line, where, f"range {lo}:{hi} must satisfy 1 <= first <= last <= {maximum}")
            continue
        ranges.append((lo, hi))
    return tuple(ranges)


def parse_scenario(text: str, filename: str, default_name: str = "scenario",
                   lab_name: str | None = None) -> Scenario:
    data, problems = load_yaml(text, filename)
    c = _Checker(filename)
    c.problems.extend(problems)
    if data is None and not problems:
        c.add(1, "(file)", "is empty")
    if data is not None and not isinstance(data, LineDict):
        c.add(getattr(data, "line", 1), "(file)", "must be a mapping at the top level")
        data = None
    if data is None:
        raise ScenarioError(c.problems)
    _include(c, data, filename)

    c.known_keys(data, ("name", "description", "include", "ml2", "agent", "nodes", "physical_networks", "projects",
                        "networks", "security_groups", "instances", "routers", "external_hosts",
                        "checks"), "")
    name = lab_name if lab_name is not None else data.get("name", default_name)
    if not isinstance(name, str) or not NAME_RE.match(name) or len(name) > 40:
        c.add(data.line_of("name"), "name", f"lab name {name!r} must be lowercase letters, digits "
                                           "and '-', starting with a letter, at most 40 characters")
        name = "invalid"
    description = str(data.get("description", "")).strip()

    targets: dict[str, tuple[str, int]] = {}   # every exec target name -> (kind, line)

    def claim(kind: str, nm: str, line: int, where: str) -> None:
        if nm in targets:
            other, oline = targets[nm]
            c.add(line, where, f"name {nm!r} is already used by {other} at {c.at(oline)}; nodes, "
                               "instances, physical networks, routers, external hosts and DHCP "
                               "servers (<network>-dhcp) share one name space")
        else:
            targets[nm] = (kind, line)

    # nodes
    nodes: list[Node] = []
    for nm, body, line in _items(c, data, "nodes"):
        where = f"nodes.{nm}"
        c.known_keys(body, ("role", "local_ip"), where)
        if not c.name(nm, line, where, naming.IFNAMSIZ):
            continue
        claim("a node", nm, line, where)
        role = c.string(body, "role", f"{where}.role", choices=ROLES)
        local_ip = c.string(body, "local_ip", f"{where}.local_ip", required=False)
        nodes.append(Node(nm, role or "compute", line, local_ip))
    node_names = {n.name for n in nodes}

    # physical networks (the wires)
    physnets: list[PhysicalNetwork] = []
    bridges_seen: dict[str, int] = {}
    for nm, body, line in _items(c, data, "physical_networks"):
        where = f"physical_networks.{nm}"
        c.known_keys(body, ("bridge", "vlan_ranges", "nodes", "tunnels", "cidr"), where)
        if not c.name(nm, line, where, naming.IFNAMSIZ):
            continue
        claim("a physical network", nm, line, where)
        tunnels = c.boolean(body, "tunnels", f"{where}.tunnels", default=False)
        underlay_cidr = None
        if tunnels:
            bridge = ""
            for key in ("bridge", "vlan_ranges"):
                if key in body:
                    c.add(body.line_of(key), f"{where}.{key}", "the tunnel underlay has no bridge mapping "
                                                              "or VLAN ranges (tunnel endpoints live on it)")
            if any(p.tunnels for p in physnets):
                c.add(body.line_of("tunnels"), f"{where}.tunnels", "there is one tunnel underlay already")
            cidr_text = c.string(body, "cidr", f"{where}.cidr")
            if cidr_text is not None:
                try:
                    underlay_cidr = str(ipaddress.IPv4Network(cidr_text, strict=True))
                except ValueError as exc:
                    c.add(body.line_of("cidr"), f"{where}.cidr", f"{cidr_text!r} is not an IPv4 CIDR: {exc}")
        else:
            if "cidr" in body:
                c.add(body.line_of("cidr"), f"{where}.cidr", "only the tunnel underlay (tunnels: true) has a cidr")
            bridge = c.string(body, "bridge", f"{where}.bridge") or "br-invalid"
        if tunnels:
            pass
        elif bridge in RESERVED_BRIDGES:
            c.add(body.line_of("bridge"), f"{where}.bridge", f"{bridge} is Neutron's own bridge; "
                                                            "map the physical network to another one")
        elif not re.fullmatch(r"[a-z][a-z0-9-]{0,9}", bridge):
            c.add(body.line_of("bridge"), f"{where}.bridge",
                  f"bridge name {bridge!r} must be lowercase letters, digits and '-', at most 10 "
                  f"characters (its patch ports int-{bridge} / phy-{bridge} must fit "
                  f"{naming.IFNAMSIZ} characters)")
        elif bridge in bridges_seen:
            c.add(body.line_of("bridge"), f"{where}.bridge",
                  f"bridge {bridge} already maps another physical network ({c.at(bridges_seen[bridge])})")
        else:
            bridges_seen[bridge] = body.line_of("bridge")
        ranges = _ranges(c, body, "vlan_ranges", f"{where}.vlan_ranges", 4094)
        attached = body.get("nodes")
        if attached is None:
            attached_names = tuple(n.name for n in nodes)
        elif not isinstance(attached, LineList) or not all(isinstance(x, str) for x in attached):
            c.add(body.line_of("nodes"), f"{where}.nodes", "must be a list of node names")
            attached_names = ()
        else:
            for i, n in enumerate(attached):
                if n not in node_names:
                    c.add(attached.line_of(i), f"{where}.nodes", f"unknown node {n!r}")
            if len(set(attached)) != len(attached):
                c.add(body.line_of("nodes"), f"{where}.nodes", "lists a node twice")
            attached_names = tuple(n for n in dict.fromkeys(attached) if n in node_names)
        physnets.append(PhysicalNetwork(nm, bridge, ranges, attached_names, line, tunnels, underlay_cidr))
    physnet_by_name = {p.name: p for p in physnets}
    nodes = _tunnel_endpoints(c, data, nodes, next((p for p in physnets if p.tunnels), None))

    # projects
    projects: list[str] = []
    raw_projects = data.get("projects")
    if raw_projects is None:
        c.add(data.line, "projects", "is required (a list of project names)")
    elif not isinstance(raw_projects, (LineList, LineDict)):
        c.add(data.line_of("projects"), "projects", "must be a list of project names")
    else:
        plist = list(raw_projects)
        for i, p in enumerate(plist):
            line = raw_projects.line_of(i) if isinstance(raw_projects, LineList) else raw_projects.line_of(p)
            if not isinstance(p, str) or not NAME_RE.match(p):
                c.add(line, "projects", f"project name {p!r} must be lowercase letters, digits and '-'")
            elif p in projects:
                c.add(line, "projects", f"project {p!r} is listed twice")
            else:
                projects.append(p)

    # networks
    ml2 = _parse_ml2(c, data)
    l2pop, arp_responder = _parse_agent(c, data)
    underlay = next((p for p in physnets if p.tunnels), None)
    networks: list[Network] = []
    segments: dict[tuple[str, int | None], tuple[str, int]] = {}   # (physnet or type, id) -> network
    cidr_lines: dict[str, int] = {}
    to_allocate: list[tuple[int, LineDict]] = []    # networks whose segment ML2 allocates
    for nm, body, line in _items(c, data, "networks"):
        where = f"networks.{nm}"
        c.known_keys(body, ("project", "type", "physical_network", "segmentation_id", "cidr",
                            "gateway", "mtu", "external", "allocation_pool", "dhcp"), where)
        if not c.name(nm, line, where, 32):
            continue
        # an unknown project is reported once; the network stays, so what uses it is not
        # reported again as an unknown network
        project = c.project(body, f"{where}.project", projects) or body.get("project")
        ntype = c.string(body, "type", f"{where}.type", required=False) or ml2["tenant_type"]
        if ntype in NETWORK_TYPES_LATER:
            c.add(body.line_of("type"), f"{where}.type",
                  f"network type {ntype!r} is not supported yet (supported: {', '.join(NETWORK_TYPES_NOW)})")
            continue
        if ntype not in NETWORK_TYPES_NOW:
            c.add(body.line_of("type"), f"{where}.type",
                  f"unknown network type {ntype!r} (supported: {', '.join(NETWORK_TYPES_NOW)})")
            continue
        physnet = None
        physnet_name = c.string(body, "physical_network", f"{where}.physical_network", required=(ntype == "flat"))
        if ntype in TUNNEL_TYPES:
            if physnet_name is not None:
                c.add(body.line_of("physical_network"), f"{where}.physical_network",
                      f"a {ntype} network has no physical network: it is carried over the tunnel underlay")
            elif underlay is None:
                c.add(body.line_of("type"), f"{where}.type",
                      f"a {ntype} network needs a tunnel underlay (a physical network with tunnels: true)")
            physnet = underlay
        elif physnet_name is not None:
            physnet = physnet_by_name.get(physnet_name)
            if physnet is None:
                c.add(body.line_of("physical_network"), f"{where}.physical_network",
                      f"unknown physical network {physnet_name!r}")
            elif physnet.tunnels:
                c.add(body.line_of("physical_network"), f"{where}.physical_network",
                      f"{physnet.name} is the tunnel underlay, not a provider network")
                physnet = None
        elif ntype == "vlan":   # a tenant VLAN network: ML2 picks the physnet with a free id
            physnet = next((p for p in physnets if p.vlan_ranges), None)
            if physnet is None:
                c.add(body.line_of("type") if "type" in body else line, where,
                      "a vlan network needs a physical network with vlan_ranges")
        seg = c.integer(body, "segmentation_id", f"{where}.segmentation_id", required=False)
        if ntype == "flat" and seg is not None:
            c.add(body.line_of("segmentation_id"), f"{where}.segmentation_id",
                  "a flat network has no segmentation id")
            seg = None
        if ntype == "vlan" and seg is not None:
            if not 1 <= seg <= 4094:
                c.add(body.line_of("segmentation_id"), f"{where}.segmentation_id",
                      f"VLAN id {seg} is out of range 1-4094")
                seg = None
            elif physnet is not None and not any(lo <= seg <= hi for lo, hi in physnet.vlan_ranges):
                have = ", ".join(f"{lo}:{hi}" for lo, hi in physnet.vlan_ranges) or "no VLAN ranges"
                c.add(body.line_of("segmentation_id"), f"{where}.segmentation_id",
                      f"VLAN id {seg} is outside {physnet.name}'s vlan_ranges ({have})")
        if ntype in TUNNEL_TYPES and seg is not None and not 1 <= seg <= TUNNEL_ID_MAX[ntype]:
            c.add(body.line_of("segmentation_id"), f"{where}.segmentation_id",
                  f"{ntype} id {seg} is out of range 1-{TUNNEL_ID_MAX[ntype]}")
            seg = None
        # an explicit id that is wrong stays wrong: ML2 does not pick another one instead
        seg_rejected = "segmentation_id" in body and seg is None and ntype != "flat"
        if physnet is not None and (seg is not None or ntype == "flat"):
            key = (ntype if ntype in TUNNEL_TYPES else physnet.name, seg)
            if key in segments:
                other, oline = segments[key]
                what = {"vlan": f"VLAN {seg} of {physnet.name}", "flat": f"the flat segment of {physnet.name}"}.get(
                    ntype, f"{ntype} id {seg}")
                c.add(line, where, f"{what} is already used by network {other} ({c.at(oline)})")
            else:
                segments[key] = (nm, line)
        cidr_text = c.string(body, "cidr", f"{where}.cidr")
        cidr = None
        if cidr_text is not None:
            try:
                cidr = ipaddress.IPv4Network(cidr_text, strict=True)
                if cidr.prefixlen > 29:
                    c.add(body.line_of("cidr"), f"{where}.cidr", f"{cidr_text} is too small (at most /29)")
                    cidr = None
            except ValueError as exc:
                c.add(body.line_of("cidr"), f"{where}.cidr", f"{cidr_text!r} is not an IPv4 CIDR: {exc}")
        gateway_text = body.get("gateway")
        gateway = None
        if cidr is not None:
            if gateway_text is None:
                gateway = str(next(cidr.hosts()))
            else:
                try:
                    gw = ipaddress.IPv4Address(str(gateway_text))
                    if gw not in cidr or gw in (cidr.network_address, cidr.broadcast_address):
                        c.add(body.line_of("gateway"), f"{where}.gateway",
                              f"{gw} is not a host address of {cidr}")
                    else:
                        gateway = str(gw)
                except ValueError:
                    c.add(body.line_of("gateway"), f"{where}.gateway", f"{gateway_text!r} is not an IPv4 address")
        mtu = c.integer(body, "mtu", f"{where}.mtu", required=False)
        if mtu is not None and not 576 <= mtu <= DEFAULT_MTU.get(ntype, 1500):
            c.add(body.line_of("mtu"), f"{where}.mtu",
                  f"MTU {mtu} must be between 576 and {DEFAULT_MTU.get(ntype, 1500)} (a {ntype} network "
                  f"over a 1500-byte physical network)")
        external = c.boolean(body, "external", f"{where}.external", default=False)
        dhcp = c.boolean(body, "dhcp", f"{where}.dhcp", default=not external)
        pool = _allocation_pool(c, body, where, cidr, gateway)
        if None in (project, physnet, cidr, gateway) or seg_rejected:
            continue
        if dhcp:
            claim("a DHCP server", f"{nm}-dhcp", line, where)
            if not any(n.role == "network" and n.name in physnet.nodes for n in nodes):
                c.add(body.line_of("dhcp") if "dhcp" in body else line, f"{where}.dhcp",
                      f"DHCP runs on a network node, and none is attached to {physnet.name} "
                      "(attach one, or set dhcp: false)")
        if seg is None and ntype != "flat":
            to_allocate.append((len(networks), body))
        networks.append(Network(nm, project, ntype, physnet.name, seg, str(cidr), gateway,
                                mtu or DEFAULT_MTU[ntype], line, external=external,
                                allocation_pool=pool, dhcp=dhcp,
                                network_id=naming.object_uuid(name, "network", nm)))
        cidr_lines[nm] = body.line_of("cidr")
    # segmentation ids ML2 allocates: the lowest free of the type's ranges, in file order
    for index, body in to_allocate:
        net = networks[index]
        if net.type == "vlan":
            physnet = physnet_by_name[net.physical_network]
            candidates = [(physnet.name, v) for lo, hi in physnet.vlan_ranges for v in range(lo, hi + 1)]
        else:
            candidates = [(net.type, v) for lo, hi in ml2["ranges"][net.type] for v in range(lo, hi + 1)]
        free = next((k for k in candidates if k not in segments), None)
        if free is None:
            c.add(net.line, f"networks.{net.name}",
                  f"no free {net.type} segmentation id left (ranges: "
                  f"{', '.join(f'{lo}:{hi}' for lo, hi in (ml2['ranges'].get(net.type) or physnet_by_name[net.physical_network].vlan_ranges))})")
            continue
        segments[free] = (net.name, net.line)
        networks[index] = dataclasses.replace(net, segmentation_id=free[1])
    networks = [n for n in networks if n.segmentation_id is not None or n.type == "flat"]
    # overlapping subnets inside one project (different projects may overlap, as in Neutron)
    for i, a in enumerate(networks):
        for b in networks[i + 1:]:
            if a.project == b.project and ipaddress.ip_network(a.cidr).overlaps(ipaddress.ip_network(b.cidr)):
                c.add(cidr_lines[b.name], f"networks.{b.name}.cidr",
                      f"{b.cidr} overlaps {a.cidr} of network {a.name} ({c.at(a.line)}) in project {a.project}")
    net_by_name = {n.name: n for n in networks}

    groups_parsed = _parse_security_groups(c, data, projects)
    group_keys = {(g.name, g.project) for g in groups_parsed}

    # instances (first pass: explicit addresses; allocation below)
    pending = []
    for nm, body, line in _items(c, data, "instances"):
        where = f"instances.{nm}"
        c.known_keys(body, ("node", "network", "ip", "mac", "security_groups", "address",
                            "floating_ip"), where)
        if not c.name(nm, line, where, naming.IFNAMSIZ):
            continue
        claim("an instance", nm, line, where)
        node = c.string(body, "node", f"{where}.node")
        if node is not None:
            if node not in node_names:
                c.add(body.line_of("node"), f"{where}.node", f"unknown node {node!r}")
                node = None
            elif next(n for n in nodes if n.name == node).role != "compute":
                c.add(body.line_of("node"), f"{where}.node",
                      f"{node} is a {next(n for n in nodes if n.name == node).role} node; "
                      "instances run on compute nodes")
                node = None
        net_name = c.string(body, "network", f"{where}.network")
        net = net_by_name.get(net_name) if net_name else None
        if net_name is not None and net is None:
            c.add(body.line_of("network"), f"{where}.network", f"unknown or invalid network {net_name!r}")
        if net is not None and node is not None:
            physnet = physnet_by_name[net.physical_network]
            if node not in physnet.nodes:
                c.add(body.line_of("node"), f"{where}.node",
                      f"{node} is not attached to {physnet.name}, which carries network {net.name}")
        ip = None
        if "ip" in body:
            try:
                ip = ipaddress.IPv4Address(str(body["ip"]))
                if net is not None:
                    cidr = ipaddress.ip_network(net.cidr)
                    if ip not in cidr or ip in (cidr.network_address, cidr.broadcast_address):
                        c.add(body.line_of("ip"), f"{where}.ip", f"{ip} is not a host address of "
                                                                  f"{net.name} ({net.cidr})")
                        ip = None
                    elif str(ip) == net.gateway:
                        c.add(body.line_of("ip"), f"{where}.ip", f"{ip} is the gateway of {net.name}")
                        ip = None
            except ValueError:
                c.add(body.line_of("ip"), f"{where}.ip", f"{body['ip']!r} is not an IPv4 address")
        mac = c.mac(body, f"{where}.mac")
        groups = body.get("security_groups", ["default"])
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            c.add(body.line_of("security_groups"), f"{where}.security_groups",
                  "must be a list of security group names ([] means no group: all traffic dropped)")
            groups = ["default"]
        elif net is not None:
            for g in groups:
                if g != "default" and (g, net.project) not in group_keys:
                    c.add(body.line_of("security_groups"), f"{where}.security_groups",
                          f"unknown security group {g!r} in project {net.project}")
        if net is not None and net.external:
            c.add(body.line_of("network"), f"{where}.network",
                  f"{net.name} is an external network; instances attach to project networks "
                  "(use external_hosts for the outside world)")
            net = None
        address = c.string(body, "address", f"{where}.address", required=False, choices=("dhcp", "static"))
        if address == "dhcp" and net is not None and not net.dhcp:
            c.add(body.line_of("address"), f"{where}.address", f"network {net.name} has DHCP disabled")
        fip = body.get("floating_ip")
        if fip is not None and fip != "auto":
            try:
                fip = str(ipaddress.IPv4Address(str(fip)))
            except ValueError:
                c.add(body.line_of("floating_ip"), f"{where}.floating_ip",
                      f"{fip!r} is not an IPv4 address or 'auto'")
                fip = None
        if node is None or net is None:
            continue
        address = address or ("dhcp" if net.dhcp else "static")
        pending.append((nm, node, net, ip, mac, tuple(groups), body, line, address, fip))

    routers_raw = _parse_routers(c, data, projects, nodes, physnet_by_name, net_by_name, claim)
    hosts_raw = _parse_external_hosts(c, data, physnet_by_name, net_by_name, claim)

    # Addresses: explicit ones first (duplicates are errors), then what Neutron allocates, in
    # the order it would: DHCP ports (made with the subnet), instances, router gateways,
    # floating IPs. Allocation takes the lowest free address of the pool.
    used: dict[tuple[str, str], tuple[str, int]] = {}

    def take(net_name: str, ip: str, who: str, line: int, where: str) -> bool:
        key = (net_name, ip)
        if key in used:
            other, oline = used[key]
            c.add(line, where, f"{ip} is already used by {other} ({c.at(oline)}) on network {net_name}")
            return False
        used[key] = (who, line)
        return True

    def allocate(net: Network, who: str, line: int, where: str) -> str | None:
        ip = _allocate(net, {a for (n, a) in used if n == net.name})
        if ip is None:
            c.add(line, where, f"network {net.name} ({net.cidr}) has no free address left in its pool")
            return None
        used[(net.name, str(ip))] = (who, line)
        return str(ip)

    for nm, node, net, ip, mac, groups, body, line, address, fip in pending:
        if ip is not None:
            take(net.name, str(ip), nm, body.line_of("ip"), f"instances.{nm}.ip")
    for h in hosts_raw:
        take(h["network"].name, h["ip"], h["name"], h["ip_line"], f"external_hosts.{h['name']}.ip")
    for r in routers_raw:
        if r["gateway_ip"]:
            take(r["external"].name, r["gateway_ip"], f"router {r['name']}", r["gateway_line"],
                 f"routers.{r['name']}.gateway_ip")
    fip_owner: dict[str, Network] = {}   # instance -> the external network of its floating IP
    router_of_network = {n.name: r for r in routers_raw for n in r["interfaces"]}
    for nm, node, net, ip, mac, groups, body, line, address, fip in pending:
        if fip is None:
            continue
        where = f"instances.{nm}.floating_ip"
        r = router_of_network.get(net.name)
        if r is None or r["external"] is None:
            c.add(body.line_of("floating_ip"), where,
                  f"network {net.name} is not on a router with an external gateway, so no floating IP "
                  "can reach it")
            continue
        fip_owner[nm] = r["external"]
        if fip != "auto":
            if not _in_pool(r["external"], fip):
                c.add(body.line_of("floating_ip"), where,
                      f"{fip} is outside the allocation pool of {r['external'].name} "
                      f"({_pool_text(r['external'])})")
                continue
            take(r["external"].name, fip, f"floating IP of {nm}", body.line_of("floating_ip"), where)

    for i, net in enumerate(networks):
        if net.dhcp:
            dhcp_ip = allocate(net, f"DHCP port of {net.name}", net.line, f"networks.{net.name}")
            networks[i] = dataclasses.replace(net, dhcp_ip=dhcp_ip,
                                              dhcp_port_id=naming.object_uuid(name, "dhcp-port", net.name))
    net_by_name = {n.name: n for n in networks}

    instances: list[Instance] = []
    macs: dict[str, tuple[str, int]] = {}
    for nm, node, net, ip, mac, groups, body, line, address, fip in pending:
        if ip is None:
            ip = allocate(net, nm, line, f"instances.{nm}")
            if ip is None:
                continue
        port_id = naming.object_uuid(name, "port", nm)
        mac = mac or naming.port_mac(port_id)
        if mac in macs:
            other, oline = macs[mac]
            c.add(body.line_of("mac") if "mac" in body else line, f"instances.{nm}.mac",
                  f"{mac} is already used by {other} ({c.at(oline)})")
            continue
        macs[mac] = (nm, line)
        instances.append(Instance(nm, node, net.name, str(ip), mac, port_id, groups, line,
                                  address=address, floating_ip=fip))

    routers: list[Router] = []
    for r in routers_raw:
        gw_ip, gw_port, gw_mac = r["gateway_ip"], None, None
        ext = r["external"]
        if ext is not None:
            if gw_ip is None:
                gw_ip = allocate(ext, f"router {r['name']}", r["line"], f"routers.{r['name']}.external_gateway")
            gw_port = naming.object_uuid(name, "router-gateway", r["name"])
            gw_mac = naming.port_mac(gw_port)
        interfaces = []
        for n in r["interfaces"]:
            pid = naming.object_uuid(name, "router-interface", f"{r['name']}/{n.name}")
            interfaces.append(RouterInterface(n.name, pid, n.gateway, naming.port_mac(pid)))
        routers.append(Router(r["name"], r["project"], r["node"], naming.object_uuid(name, "router", r["name"]),
                              tuple(interfaces), ext.name if ext else None, gw_port, gw_ip, gw_mac, r["line"]))
    for i, inst in enumerate(instances):
        if inst.floating_ip == "auto" and inst.name in fip_owner:
            ext = fip_owner[inst.name]
            instances[i] = dataclasses.replace(inst, floating_ip=allocate(ext, f"floating IP of {inst.name}",
                                                                          inst.line, f"instances.{inst.name}.floating_ip"))
        elif inst.floating_ip == "auto":
            instances[i] = dataclasses.replace(inst, floating_ip=None)
    hosts = [ExternalHost(h["name"], h["network"].name, h["ip"],
                          h["mac"] or naming.port_mac(naming.object_uuid(name, "external-host", h["name"])),
                          h["line"]) for h in hosts_raw]

    checks = _parse_checks(c, data, {i.name: i for i in instances}, set(targets), physnet_by_name,
                           net_by_name, {k for k, (kind, _) in targets.items() if kind == "an instance"},
                           {h.name: h for h in hosts}, {r.name for r in routers})

    if c.problems:
        raise ScenarioError(c.problems)
    return Scenario(name, description, filename, tuple(nodes), tuple(physnets), tuple(projects),
                    tuple(networks), tuple(instances), tuple(checks), tuple(groups_parsed),
                    tuple(routers), tuple(hosts), l2pop, arp_responder)


def _tunnel_endpoints(c: _Checker, data: LineDict, nodes: list[Node],
                      underlay: PhysicalNetwork | None) -> list[Node]:
    """Each node on the underlay gets its local_ip: given, or the underlay's 11th, 12th...
    host address in node order."""
    raw_nodes = data.get("nodes") if isinstance(data.get("nodes"), LineDict) else LineDict()
    out = []
    used: dict[str, str] = {}
    for index, node in enumerate(nodes):
        body = raw_nodes.get(node.name)
        if not isinstance(body, LineDict):
            body = LineDict()
            body.line, body.key_lines = node.line, {}
        where = f"nodes.{node.name}.local_ip"
        ip = node.local_ip
        on_underlay = underlay is not None and node.name in underlay.nodes
        if ip is not None and not on_underlay:
            c.add(body.line_of("local_ip"), where, "only nodes on the tunnel underlay have a local_ip")
            ip = None
        elif ip is not None and underlay.cidr:
            try:
                addr = ipaddress.IPv4Address(ip)
                cidr = ipaddress.ip_network(underlay.cidr)
                if addr not in cidr or addr in (cidr.network_address, cidr.broadcast_address):
                    c.add(body.line_of("local_ip"), where, f"{ip} is not a host address of {underlay.name} ({cidr})")
                    ip = None
            except ValueError:
                c.add(body.line_of("local_ip"), where, f"{ip!r} is not an IPv4 address")
                ip = None
        elif on_underlay and underlay.cidr:
            hosts = list(itertools.islice(ipaddress.ip_network(underlay.cidr).hosts(), 10 + index, 11 + index))
            ip = str(hosts[0]) if hosts else None
            if ip is None:
                physnets_raw = data.get("physical_networks")
                raw = physnets_raw.get(underlay.name) if isinstance(physnets_raw, LineDict) else None
                cline = raw.line_of("cidr") if isinstance(raw, LineDict) else underlay.line
                c.add(cline, f"physical_networks.{underlay.name}.cidr",
                      f"{underlay.cidr} is too small to give {node.name} a local_ip")
        if ip is not None and ip in used:
            c.add(body.line_of("local_ip"), where, f"{ip} is the local_ip of {used[ip]} already")
        elif ip is not None:
            used[ip] = node.name
        out.append(dataclasses.replace(node, local_ip=ip))
    return out


def _parse_ml2(c: _Checker, data: LineDict) -> dict:
    """ml2: {tenant_network_types: [vxlan], vni_ranges: ['1001:2000'], tunnel_id_ranges: [...]}"""
    out = {"tenant_type": "vlan", "ranges": {"vxlan": ((1001, 2000),), "gre": ((1, 1000),)}}
    ml2 = c.mapping(data, "ml2", "ml2")
    if ml2 is None:
        return out
    c.known_keys(ml2, ("tenant_network_types", "vni_ranges", "tunnel_id_ranges"), "ml2")
    types = ml2.get("tenant_network_types")
    if types is not None:
        if not isinstance(types, list) or not types or any(t not in NETWORK_TYPES_NOW for t in types):
            c.add(ml2.line_of("tenant_network_types"), "ml2.tenant_network_types",
                  f"must be a list of network types ({', '.join(t for t in NETWORK_TYPES_NOW if t != 'flat')})")
        elif types[0] == "flat":
            c.add(ml2.line_of("tenant_network_types"), "ml2.tenant_network_types", "flat is no tenant network type")
        else:
            out["tenant_type"] = types[0]
    for key, ntype in (("vni_ranges", "vxlan"), ("tunnel_id_ranges", "gre")):
        if key in ml2:
            ranges = _ranges(c, ml2, key, f"ml2.{key}", TUNNEL_ID_MAX[ntype])
            if ranges:
                out["ranges"][ntype] = ranges
    return out


def _parse_agent(c: _Checker, data: LineDict) -> tuple[bool, bool]:
    """agent: {l2_population: false, arp_responder: false}: the OVS agent's options."""
    agent = c.mapping(data, "agent", "agent")
    if agent is None:
        return False, False
    c.known_keys(agent, ("l2_population", "arp_responder"), "agent")
    l2pop = c.boolean(agent, "l2_population", "agent.l2_population", default=False)
    arp = c.boolean(agent, "arp_responder", "agent.arp_responder", default=False)
    if arp and not l2pop:
        c.add(agent.line_of("arp_responder"), "agent.arp_responder",
              "the ARP responder answers from l2_population's entries: set l2_population: true too")
    return l2pop, arp


def _include(c: _Checker, data: LineDict, filename: str) -> None:
    """`include: FILE` (or a list): fragments shared by several scenarios, e.g. the logical
    topology of the classic scenarios. Paths are relative to the including file."""
    raw = data.get("include")
    if raw is None:
        return
    names = [raw] if isinstance(raw, str) else raw
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        c.add(data.line_of("include"), "include", "must be a file name or a list of them")
        return
    base = Path(filename).parent
    for i, name in enumerate(names):
        line = data.line_of("include") if isinstance(raw, str) else raw.line_of(i)
        path = base / name
        try:
            text = path.read_text()
        except OSError as exc:
            c.add(line, "include", f"cannot read {path}: {exc.strerror}")
            continue
        except UnicodeDecodeError:
            c.add(line, "include", f"cannot read {path}: not UTF-8 text")
            continue
        fragment, problems = load_yaml(text, str(path))
        c.problems.extend(problems)
        if fragment is None:
            continue
        if not isinstance(fragment, LineDict):
            c.add(line, "include", f"{path} must hold a mapping")
            continue
        if "include" in fragment or "name" in fragment:
            c.add(fragment.line_of("include" if "include" in fragment else "name"), "include",
                  f"{path} is a fragment: it may not set name or include other files")
            continue
        merge_included(data, fragment, c.problems)
        c.included = True


def _allocate(net: Network, used: set[str]) -> ipaddress.IPv4Address | None:
    """Lowest free address of the allocation pool (default: the subnet less its gateway)."""
    for host in ipaddress.ip_network(net.cidr).hosts():
        if str(host) != net.gateway and str(host) not in used and _in_pool(net, str(host)):
            return host
    return None


def _in_pool(net: Network, ip: str) -> bool:
    """Inside the allocation pool; without one, any host address but the gateway's."""
    if net.allocation_pool is None:
        cidr, addr = ipaddress.ip_network(net.cidr), ipaddress.IPv4Address(ip)
        return addr in cidr and addr not in (cidr.network_address, cidr.broadcast_address) \
            and ip != net.gateway
    first, last = (ipaddress.IPv4Address(a) for a in net.allocation_pool)
    return first <= ipaddress.IPv4Address(ip) <= last


def _pool_text(net: Network) -> str:
    return "-".join(net.allocation_pool) if net.allocation_pool else f"all of {net.cidr}"


def _allocation_pool(c: _Checker, body: LineDict, where: str, cidr, gateway) -> tuple[str, str] | None:
    raw = body.get("allocation_pool")
    if raw is None or cidr is None:
        return None
    line, w = body.line_of("allocation_pool"), f"{where}.allocation_pool"
    m = re.fullmatch(r"\s*([\d.]+)\s*-\s*([\d.]+)\s*", str(raw))
    if not m:
        c.add(line, w, f"{raw!r} must look like 203.0.113.101-203.0.113.200")
        return None
    try:
        first, last = ipaddress.IPv4Address(m.group(1)), ipaddress.IPv4Address(m.group(2))
    except ValueError as exc:
        c.add(line, w, f"{raw!r}: {exc}")
        return None
    hosts = (cidr.network_address, cidr.broadcast_address)
    if first not in cidr or last not in cidr or first in hosts or last in hosts:
        c.add(line, w, f"{first}-{last} is not inside the host addresses of {cidr}")
        return None
    if first > last:
        c.add(line, w, f"{first} comes after {last}")
        return None
    if gateway is not None and first <= ipaddress.IPv4Address(gateway) <= last:
        c.add(line, w, f"the pool {first}-{last} holds the gateway {gateway}")
        return None
    return (str(first), str(last))


def _parse_security_groups(c: _Checker, data: LineDict, projects: list[str]) -> list[SecurityGroup]:
    groups: list[SecurityGroup] = []
    raw = [(nm, body, line) for nm, body, line in _items(c, data, "security_groups", required=False)]
    known = {(nm, str(body.get("project"))) for nm, body, _ in raw}
    for nm, body, line in raw:
        where = f"security_groups.{nm}"
        c.known_keys(body, ("project", "rules"), where)
        if nm == "default":
            c.add(line, where, "the default group exists in every project already (egress to "
                               "anywhere, ingress from its members); give yours another name")
            continue
        if not NAME_RE.match(nm):
            c.add(line, where, f"name {nm!r} must be lowercase letters, digits and '-'")
            continue
        project = c.project(body, f"{where}.project", projects)
        rules_raw = body.get("rules", LineList())
        if not isinstance(rules_raw, LineList):
            c.add(body.line_of("rules"), f"{where}.rules", "must be a list of rules")
            continue
        rules = []
        for i, r in enumerate(rules_raw):
            rwhere, rline = f"{where}.rules[{i}]", rules_raw.line_of(i)
            if not isinstance(r, LineDict):
                c.add(rline, rwhere, "must be a mapping like {direction: ingress, protocol: tcp, port: 22}")
                continue
            c.known_keys(r, ("direction", "protocol", "port", "remote_ip", "remote_group"), rwhere)
            direction = c.string(r, "direction", f"{rwhere}.direction", choices=("ingress", "egress"))
            protocol = c.string(r, "protocol", f"{rwhere}.protocol", required=False,
                                choices=("any", "icmp", "tcp", "udp")) or "any"
            port_min = port_max = None
            if "port" in r:
                m = re.fullmatch(r"(\d+)(?:-(\d+))?", str(r["port"]))
                if protocol not in ("tcp", "udp"):
                    c.add(r.line_of("port"), f"{rwhere}.port", "a port needs protocol tcp or udp")
                elif not m or not 1 <= int(m.group(1)) <= int(m.group(2) or m.group(1)) <= 65535:
                    c.add(r.line_of("port"), f"{rwhere}.port", f"{r['port']!r} must be a port or a range like 8000-8080")
                else:
                    port_min, port_max = int(m.group(1)), int(m.group(2) or m.group(1))
            remote_ip = remote_group = None
            if "remote_ip" in r and "remote_group" in r:
                c.add(rline, rwhere, "give remote_ip or remote_group, not both")
            elif "remote_group" in r:
                remote_group = str(r["remote_group"])
                if remote_group != "default" and (remote_group, str(project)) not in known:
                    c.add(r.line_of("remote_group"), f"{rwhere}.remote_group",
                          f"unknown security group {remote_group!r} in project {project}")
            else:
                try:
                    remote_ip = str(ipaddress.IPv4Network(str(r.get("remote_ip", "0.0.0.0/0")), strict=True))
                except ValueError as exc:
                    c.add(r.line_of("remote_ip"), f"{rwhere}.remote_ip", f"{r.get('remote_ip')!r} is not an IPv4 CIDR: {exc}")
            if direction is None:
                continue
            rules.append(Rule(direction, protocol, port_min, port_max, remote_ip, remote_group, rline))
        if project is not None:
            groups.append(SecurityGroup(nm, project, tuple(rules), line))
    return groups


def _parse_routers(c: _Checker, data: LineDict, projects: list[str], nodes: list[Node],
                   physnets: dict[str, PhysicalNetwork], networks: dict[str, Network], claim) -> list[dict]:
    out = []
    attached: dict[str, tuple[str, int]] = {}
    network_nodes = [n.name for n in nodes if n.role == "network"]
    for nm, body, line in _items(c, data, "routers", required=False):
        where = f"routers.{nm}"
        c.known_keys(body, ("project", "node", "interfaces", "external_gateway", "gateway_ip"), where)
        if not c.name(nm, line, where, 32):
            continue
        claim("a router", nm, line, where)
        project = c.project(body, f"{where}.project", projects)
        node = body.get("node")
        if node is None:
            if len(network_nodes) != 1:
                c.add(line, f"{where}.node", "is required when the scenario has "
                                              f"{len(network_nodes)} network nodes")
                continue
            node = network_nodes[0]
        elif node not in network_nodes:
            c.add(body.line_of("node"), f"{where}.node",
                  f"{node!r} is not a network node (network nodes: {', '.join(network_nodes) or 'none'})")
            continue
        ifaces_raw = body.get("interfaces", LineList())
        interfaces: list[Network] = []
        if not isinstance(ifaces_raw, LineList):
            c.add(body.line_of("interfaces"), f"{where}.interfaces", "must be a list of network names")
            ifaces_raw = LineList()
        for i, n in enumerate(ifaces_raw):
            iline, iwhere = ifaces_raw.line_of(i), f"{where}.interfaces[{i}]"
            net = networks.get(str(n))
            if net is None:
                c.add(iline, iwhere, f"unknown or invalid network {n!r}")
            elif net.external:
                c.add(iline, iwhere, f"{net.name} is external: give it as external_gateway")
            elif project is not None and net.project != project:
                c.add(iline, iwhere, f"network {net.name} belongs to project {net.project}, "
                                     f"not to the router's project {project}")
            elif net.name in attached:
                other, oline = attached[net.name]
                c.add(iline, iwhere, f"network {net.name} is already attached to router {other} "
                                     f"({c.at(oline)}); its gateway address can be on one router only")
            elif node not in physnets[net.physical_network].nodes:
                c.add(iline, iwhere, f"{node} is not attached to {net.physical_network}, which carries {net.name}")
            else:
                attached[net.name] = (nm, iline)
                interfaces.append(net)
        external = None
        if "external_gateway" in body:
            ext = networks.get(str(body["external_gateway"]))
            eline, ewhere = body.line_of("external_gateway"), f"{where}.external_gateway"
            if ext is None:
                c.add(eline, ewhere, f"unknown or invalid network {body['external_gateway']!r}")
            elif not ext.external:
                c.add(eline, ewhere, f"network {ext.name} is not external (set external: true on it)")
            elif node not in physnets[ext.physical_network].nodes:
                c.add(eline, ewhere, f"{node} is not attached to {ext.physical_network}, which carries {ext.name}")
            else:
                external = ext
        gateway_ip = None
        if "gateway_ip" in body:
            gline, gwhere = body.line_of("gateway_ip"), f"{where}.gateway_ip"
            if external is None:
                c.add(gline, gwhere, "a gateway address needs an external_gateway")
            else:
                try:
                    gateway_ip = str(ipaddress.IPv4Address(str(body["gateway_ip"])))
                    if not _in_pool(external, gateway_ip):
                        c.add(gline, gwhere, f"{gateway_ip} is outside the allocation pool of "
                                             f"{external.name} ({_pool_text(external)})")
                        gateway_ip = None
                except ValueError:
                    c.add(gline, gwhere, f"{body['gateway_ip']!r} is not an IPv4 address")
        if project is None:
            continue
        out.append({"name": nm, "project": project, "node": node, "interfaces": interfaces,
                    "external": external, "gateway_ip": gateway_ip,
                    "gateway_line": body.line_of("gateway_ip"), "line": line})
    return out


def _parse_external_hosts(c: _Checker, data: LineDict, physnets: dict[str, PhysicalNetwork],
                          networks: dict[str, Network], claim) -> list[dict]:
    out = []
    for nm, body, line in _items(c, data, "external_hosts", required=False):
        where = f"external_hosts.{nm}"
        c.known_keys(body, ("network", "ip", "mac"), where)
        if not c.name(nm, line, where, naming.IFNAMSIZ):
            continue
        claim("an external host", nm, line, where)
        net_name = c.string(body, "network", f"{where}.network")
        net = networks.get(net_name) if net_name else None
        if net_name is not None and net is None:
            c.add(body.line_of("network"), f"{where}.network", f"unknown or invalid network {net_name!r}")
        elif net is not None and not net.external:
            c.add(body.line_of("network"), f"{where}.network",
                  f"{net.name} is not external; external hosts stand for the world outside Neutron")
            net = None
        ip = None
        raw_ip = c.string(body, "ip", f"{where}.ip")
        if raw_ip is not None and net is not None:
            try:
                addr = ipaddress.IPv4Address(raw_ip)
                cidr = ipaddress.ip_network(net.cidr)
                if addr not in cidr or addr in (cidr.network_address, cidr.broadcast_address):
                    c.add(body.line_of("ip"), f"{where}.ip", f"{addr} is not a host address of {net.name} ({net.cidr})")
                elif _in_pool(net, str(addr)) and net.allocation_pool is not None:
                    c.add(body.line_of("ip"), f"{where}.ip",
                          f"{addr} is inside {net.name}'s allocation pool ({_pool_text(net)}), where "
                          "Neutron allocates router gateways and floating IPs")
                else:
                    ip = str(addr)
            except ValueError:
                c.add(body.line_of("ip"), f"{where}.ip", f"{raw_ip!r} is not an IPv4 address")
        mac = c.mac(body, f"{where}.mac")
        if net is None or ip is None:
            continue
        out.append({"name": nm, "network": net, "ip": ip, "ip_line": body.line_of("ip"),
                    "mac": mac, "line": line})
    return out


def _parse_checks(c: _Checker, data: LineDict, instances: dict[str, Instance], targets: set[str],
                  physnets: dict[str, PhysicalNetwork], networks: dict[str, Network],
                  declared_instances: set[str], hosts: dict[str, ExternalHost],
                  routers: set[str]) -> list[Check]:
    raw = data.get("checks")
    if raw is None:
        return []
    if not isinstance(raw, LineList):
        c.add(data.line_of("checks"), "checks", "must be a list of checks")
        return []
    endpoints = declared_instances | set(hosts)
    # addresses a tcp check can serve from: instances, external hosts, floating IPs
    servable = {i.ip for i in instances.values()} | {h.ip for h in hosts.values()} | \
        {i.floating_ip for i in instances.values() if i.floating_ip}
    checks: list[Check] = []
    names: set[str] = set()
    for i, body in enumerate(raw):
        line = raw.line_of(i)
        where = f"checks[{i}]"
        if not isinstance(body, LineDict):
            c.add(line, where, f"must be a mapping, not {_kind(body)}")
            continue
        if "lease" in body:
            c.known_keys(body, ("name", "lease"), where)
            inst = str(body["lease"])
            name = str(body.get("name") or f"{inst} holds its DHCP lease")
            if inst not in declared_instances:
                c.add(body.line_of("lease"), f"{where}.lease", f"unknown instance {inst!r}")
            elif inst in instances and instances[inst].address != "dhcp":
                c.add(body.line_of("lease"), f"{where}.lease", f"{inst} has a static address, no lease")
            else:
                checks.append(Check(name, inst, "", "lease", None, "reach", (), line))
            if name in names:
                c.add(line, f"{where}.name", f"check name {name!r} is used twice")
            names.add(name)
            continue
        c.known_keys(body, ("name", "from", "to", "proto", "expect", "path"), where)
        src = c.string(body, "from", f"{where}.from")
        if src is not None and src not in endpoints:
            c.add(body.line_of("from"), f"{where}.from", f"unknown instance or external host {src!r}")
            src = None
        dst = body.get("to")
        if dst is None:
            c.add(line, f"{where}.to", "is required (an instance, an external host or an IPv4 address)")
        else:
            dst = str(dst)
            if dst not in endpoints:
                try:
                    ipaddress.IPv4Address(dst)
                except ValueError:
                    c.add(body.line_of("to"), f"{where}.to",
                          f"{dst!r} is neither an instance, an external host nor an IPv4 address")
                    dst = None
        proto_text = str(body.get("proto", "icmp"))
        m = re.fullmatch(r"(icmp|tcp)(?::(\d+))?", proto_text)
        proto, port = "icmp", None
        if not m or (m.group(1) == "icmp" and m.group(2)):
            c.add(body.line_of("proto"), f"{where}.proto", f"{proto_text!r} must be icmp, tcp or tcp:PORT")
        else:
            proto = m.group(1)
            if proto == "tcp":
                port = int(m.group(2) or DEFAULT_TCP_PORT)
                if not 1 <= port <= 65535:
                    c.add(body.line_of("proto"), f"{where}.proto", f"port {port} is out of range")
        if proto == "tcp" and dst is not None and dst not in endpoints and dst not in servable:
            c.add(body.line_of("to"), f"{where}.to",
                  f"a tcp check needs a destination that can run the server (an instance, an "
                  f"external host or a floating IP), not {dst!r}")
        expect = c.string(body, "expect", f"{where}.expect", required=False, choices=EXPECTS) or "reach"
        if src is not None and src == dst:
            c.add(body.line_of("to"), f"{where}.to", f"a check from {src} to itself proves nothing")
        name = str(body.get("name") or f"{src} -> {dst} ({proto_text})")
        if name in names:
            c.add(body.line_of("name") if "name" in body else line, f"{where}.name",
                  f"check name {name!r} is used twice")
        names.add(name)
        path: list[PathAssertion] = []
        raw_path = body.get("path", [])
        if not isinstance(raw_path, list):
            c.add(body.line_of("path"), f"{where}.path", "must be a list of path assertions")
            raw_path = []
        for j, item in enumerate(raw_path):
            pline = raw_path.line_of(j)
            pwhere = f"{where}.path[{j}]"
            if not isinstance(item, LineDict):
                c.add(pline, pwhere, "must be a mapping like {crosses: physnet1, vlan: 101}")
                continue
            c.known_keys(item, PATH_KINDS + ("vlan", "vni", "key", "packets", "source", "destination"), pwhere)
            kinds = [k for k in PATH_KINDS if k in item]
            if len(kinds) != 1:
                c.add(pline, pwhere, f"needs exactly one of: {', '.join(PATH_KINDS)}")
                continue
            kind = kinds[0]
            target = str(item[kind])
            if kind in ("crosses", "never_on") and target not in physnets:
                c.add(item.line_of(kind), f"{pwhere}.{kind}", f"unknown physical network {target!r}")
                continue
            if kind == "passes" and target not in routers:
                c.add(item.line_of(kind), f"{pwhere}.{kind}", f"unknown router {target!r}")
                continue
            if kind in ("never_reaches", "reaches") and (target not in targets or target in routers):
                c.add(item.line_of(kind), f"{pwhere}.{kind}",
                      f"unknown node, instance, external host or physical network {target!r}")
                continue
            vlan = c.integer(item, "vlan", f"{pwhere}.vlan", required=False)
            if vlan is not None and kind != "crosses":
                c.add(item.line_of("vlan"), f"{pwhere}.vlan", "vlan only goes with crosses")
            if vlan is not None and not 1 <= vlan <= 4094:
                c.add(item.line_of("vlan"), f"{pwhere}.vlan", f"VLAN id {vlan} is out of range 1-4094")
            on_underlay = kind == "crosses" and physnets[target].tunnels
            if vlan is not None and on_underlay:
                c.add(item.line_of("vlan"), f"{pwhere}.vlan", f"{target} carries tunnels: use vni or key")
            tunnel_ids = {}
            for tkey in ("vni", "key"):
                value = c.integer(item, tkey, f"{pwhere}.{tkey}", required=False)
                if value is None:
                    continue
                if not on_underlay:
                    c.add(item.line_of(tkey), f"{pwhere}.{tkey}",
                          f"{tkey} only goes with crosses of the tunnel underlay")
                    continue
                limit = TUNNEL_ID_MAX["vxlan" if tkey == "vni" else "gre"]
                if not 1 <= value <= limit:
                    c.add(item.line_of(tkey), f"{pwhere}.{tkey}", f"{tkey} {value} is out of range 1-{limit}")
                    continue
                tunnel_ids[tkey] = value
            packets = c.string(item, "packets", f"{pwhere}.packets", required=False,
                               choices=PACKET_KINDS) or "ip"
            pair = {}
            for key in ("source", "destination"):
                if key in item:
                    try:
                        pair[key] = str(ipaddress.IPv4Address(str(item[key])))
                    except ValueError:
                        c.add(item.line_of(key), f"{pwhere}.{key}", f"{item[key]!r} is not an IPv4 address")
            path.append(PathAssertion(kind, target, vlan, packets, pline, **pair, **tunnel_ids))
        if src is None or dst is None:
            continue
        checks.append(Check(name, src, dst, proto, port, expect, tuple(path), line))
    return checks
