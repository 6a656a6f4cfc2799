"""The `networks:` section: type, physical network, segmentation id, subnet, MTU, DHCP.

Segmentation ids that are not given are allocated by ML2 afterwards (``ml2.allocate_segments``)
in file order; overlapping subnets inside one project are problems (two projects may overlap,
as in Neutron).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from lab.core import naming
from lab.core.scenario.checker import Checker, Claims, items, shown
from lab.core.scenario.ipam import parse_allocation_pool
from lab.core.scenario.ml2 import allocate_segments
from lab.core.scenario.model import (DEFAULT_MTU, NETWORK_TYPES_LATER, NETWORK_TYPES_NOW, TUNNEL_ID_MAX,
                                     TUNNEL_TYPES, Network, Node, PhysicalNetwork)
from lab.core.scenario.yamlsource import LineDict

KEYS = ("project", "type", "physical_network", "segmentation_id", "cidr", "gateway", "mtu", "external",
        "allocation_pool", "dhcp")


@dataclass
class _Env:
    """What the networks section reads from the sections before it, and what it accumulates."""

    lab: str
    projects: list[str]
    ml2: dict
    nodes: list[Node]
    physnets: dict[str, PhysicalNetwork]
    claim: Claims
    segments: dict = field(default_factory=dict)     # (physnet or type, id) -> (network, line)
    cidr_lines: dict = field(default_factory=dict)
    to_allocate: list[int] = field(default_factory=list)

    @property
    def underlay(self) -> PhysicalNetwork | None:
        return next((p for p in self.physnets.values() if p.tunnels), None)


def parse_networks(c: Checker, data: LineDict, lab: str, projects: list[str], ml2: dict, nodes: list[Node],
                   physnets: list[PhysicalNetwork], claim: Claims) -> list[Network]:
    env = _Env(lab, projects, ml2, nodes, {p.name: p for p in physnets}, claim)
    networks: list[Network] = []
    for nm, body, line in items(c, data, "networks"):
        net = _network(c, env, nm, body, line)
        if net is None:
            continue
        if net.segmentation_id is None and net.type != "flat":
            env.to_allocate.append(len(networks))
        networks.append(net)
        env.cidr_lines[nm] = body.line_of("cidr")
    networks = allocate_segments(c, networks, env.to_allocate, env.segments, ml2, env.physnets)
    _overlaps(c, networks, env.cidr_lines)
    return networks


def _network(c: Checker, env: _Env, nm: str, body: LineDict, line: int) -> Network | None:
    where = f"networks.{nm}"
    c.known_keys(body, KEYS, where)
    if not c.name(nm, line, where, 32):
        return None
    # an unknown project is reported once; the network stays, so what uses it is not
    # reported again as an unknown network
    project = c.project(body, f"{where}.project", env.projects)
    if project is None and body.get("project") is not None:
        project = str(body["project"])      # reported; a string, so what uses it can compare
    ntype = _network_type(c, body, where, env.ml2)
    if ntype is None:
        return None
    physnet = _physical_network(c, env, body, line, where, ntype)
    seg, seg_rejected = _segmentation_id(c, body, where, ntype, physnet)
    if physnet is not None and (seg is not None or ntype == "flat"):
        _claim_segment(c, env, nm, line, ntype, physnet, seg)
    cidr, gateway = _subnet(c, body, where)
    mtu = c.integer(body, "mtu", f"{where}.mtu", required=False)
    if mtu is not None and not 576 <= mtu <= DEFAULT_MTU.get(ntype, 1500):
        c.add(body.line_of("mtu"), f"{where}.mtu",
              f"MTU {mtu} must be between 576 and {DEFAULT_MTU.get(ntype, 1500)} (a {ntype} network "
              f"over a 1500-byte physical network)")
    external = c.boolean(body, "external", f"{where}.external", default=False)
    dhcp = c.boolean(body, "dhcp", f"{where}.dhcp", default=not external)
    pool = parse_allocation_pool(c, body, where, cidr, gateway)
    if None in (project, physnet, cidr, gateway) or seg_rejected:
        return None
    if dhcp:
        _dhcp_server(c, env, nm, body, line, where, physnet)
    return Network(nm, project, ntype, physnet.name, seg, str(cidr), gateway,
                   mtu or DEFAULT_MTU[ntype], line, external=external, allocation_pool=pool, dhcp=dhcp,
                   network_id=naming.object_uuid(env.lab, "network", nm))


def _network_type(c: Checker, body: LineDict, where: str, ml2: dict) -> str | None:
    ntype = c.string(body, "type", f"{where}.type", required=False) or ml2["tenant_type"]
    if ntype in NETWORK_TYPES_LATER:
        c.add(body.line_of("type"), f"{where}.type",
              f"network type {ntype!r} is not supported yet (supported: {', '.join(NETWORK_TYPES_NOW)})")
        return None
    if ntype not in NETWORK_TYPES_NOW:
        c.add(body.line_of("type"), f"{where}.type",
              f"unknown network type {ntype[:40]!r} (supported: {', '.join(NETWORK_TYPES_NOW)})")
        return None
    return ntype


def _physical_network(c: Checker, env: _Env, body: LineDict, line: int, where: str,
                      ntype: str) -> PhysicalNetwork | None:
    """The wire that carries the network: the underlay for tunnels, the given physnet for
    vlan/flat, or for a tenant VLAN network the first physnet with vlan_ranges."""
    pwhere = f"{where}.physical_network"
    physnet_name = c.string(body, "physical_network", pwhere, required=(ntype == "flat"))
    if ntype in TUNNEL_TYPES:
        if physnet_name is not None:
            c.add(body.line_of("physical_network"), pwhere,
                  f"a {ntype} network has no physical network: it is carried over the tunnel underlay")
        elif env.underlay is None:
            c.add(body.line_of("type"), f"{where}.type",
                  f"a {ntype} network needs a tunnel underlay (a physical network with tunnels: true)")
        return env.underlay
    if physnet_name is not None:
        physnet = env.physnets.get(physnet_name)
        if physnet is None:
            c.add(body.line_of("physical_network"), pwhere, f"unknown physical network {physnet_name[:40]!r}")
        elif physnet.tunnels:
            c.add(body.line_of("physical_network"), pwhere,
                  f"{physnet.name} is the tunnel underlay, not a provider network")
            return None
        return physnet
    if ntype == "vlan":   # a tenant VLAN network: ML2 picks the physnet with a free id
        physnet = next((p for p in env.physnets.values() if p.vlan_ranges), None)
        if physnet is None:
            c.add(body.line_of("type") if "type" in body else line, where,
                  "a vlan network needs a physical network with vlan_ranges")
        return physnet
    return None


def _segmentation_id(c: Checker, body: LineDict, where: str, ntype: str,
                     physnet: PhysicalNetwork | None) -> tuple[int | None, bool]:
    """(the given id or None, whether a given id was rejected: an explicit id that is wrong
    stays wrong, ML2 does not pick another one instead)."""
    swhere, sline = f"{where}.segmentation_id", body.line_of("segmentation_id")
    seg = c.integer(body, "segmentation_id", swhere, required=False)
    if ntype == "flat" and seg is not None:
        c.add(sline, swhere, "a flat network has no segmentation id")
        seg = None
    if ntype == "vlan" and seg is not None:
        if not 1 <= seg <= 4094:
            c.add(sline, swhere, f"VLAN id {seg} is out of range 1-4094")
            seg = None
        elif physnet is not None and not any(lo <= seg <= hi for lo, hi in physnet.vlan_ranges):
            have = ", ".join(f"{lo}:{hi}" for lo, hi in physnet.vlan_ranges) or "no VLAN ranges"
            c.add(sline, swhere, f"VLAN id {seg} is outside {physnet.name}'s vlan_ranges ({have})")
    if ntype in TUNNEL_TYPES and seg is not None and not 1 <= seg <= TUNNEL_ID_MAX[ntype]:
        c.add(sline, swhere, f"{ntype} id {seg} is out of range 1-{TUNNEL_ID_MAX[ntype]}")
        seg = None
    return seg, ("segmentation_id" in body and seg is None and ntype != "flat")


def _claim_segment(c: Checker, env: _Env, nm: str, line: int, ntype: str, physnet: PhysicalNetwork,
                   seg: int | None) -> None:
    key = (ntype if ntype in TUNNEL_TYPES else physnet.name, seg)
    if key in env.segments:
        other, oline = env.segments[key]
        what = {"vlan": f"VLAN {seg} of {physnet.name}", "flat": f"the flat segment of {physnet.name}"}.get(
            ntype, f"{ntype} id {seg}")
        c.add(line, f"networks.{nm}", f"{what} is already used by network {other} ({c.at(oline)})")
    else:
        env.segments[key] = (nm, line)


def _subnet(c: Checker, body: LineDict, where: str) -> tuple[ipaddress.IPv4Network | None, str | None]:
    """(cidr, gateway): an IPv4 subnet of at least /29 and a host address of it (default:
    the first)."""
    cidr_text = c.string(body, "cidr", f"{where}.cidr")
    cidr = None
    if cidr_text is not None:
        try:
            cidr = ipaddress.IPv4Network(cidr_text, strict=True)
            if cidr.prefixlen > 29:
                c.add(body.line_of("cidr"), f"{where}.cidr", f"{cidr_text} is too small (at most /29)")
                cidr = None
        except ValueError as exc:
            c.add(body.line_of("cidr"), f"{where}.cidr", f"{cidr_text[:60]!r} is not an IPv4 CIDR: {exc}")
    gateway_text = body.get("gateway")
    if cidr is None:
        return None, None
    if gateway_text is None:
        return cidr, str(next(cidr.hosts()))
    try:
        gw = ipaddress.IPv4Address(str(gateway_text))
    except ValueError:
        c.add(body.line_of("gateway"), f"{where}.gateway", f"{shown(gateway_text)} is not an IPv4 address")
        return cidr, None
    if gw not in cidr or gw in (cidr.network_address, cidr.broadcast_address):
        c.add(body.line_of("gateway"), f"{where}.gateway", f"{gw} is not a host address of {cidr}")
        return cidr, None
    return cidr, str(gw)


def _dhcp_server(c: Checker, env: _Env, nm: str, body: LineDict, line: int, where: str,
                 physnet: PhysicalNetwork) -> None:
    env.claim("a DHCP server", naming.dhcp_server(nm), line, where)
    if not any(n.role == "network" and n.name in physnet.nodes for n in env.nodes):
        c.add(body.line_of("dhcp") if "dhcp" in body else line, f"{where}.dhcp",
              f"DHCP runs on a network node, and none is attached to {physnet.name} "
              "(attach one, or set dhcp: false)")


def _overlaps(c: Checker, networks: list[Network], cidr_lines: dict[str, int]) -> None:
    """Overlapping subnets inside one project (different projects may overlap, as in Neutron)."""
    spans = []      # (network, first address, last address) as integers: cheap to compare
    for n in networks:
        cidr = ipaddress.ip_network(n.cidr)
        spans.append((n, int(cidr.network_address), int(cidr.broadcast_address)))
    for i, (a, afirst, alast) in enumerate(spans):
        for b, bfirst, blast in spans[i + 1:]:
            if afirst <= blast and bfirst <= alast and a.project == b.project:
                c.add(cidr_lines[b.name], f"networks.{b.name}.cidr",
                      f"{b.cidr} overlaps {a.cidr} of network {a.name} ({c.at(a.line)}) in project {a.project}")
