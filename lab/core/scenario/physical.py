"""The `physical_networks:` section (the wires, and the tunnel underlay) and `projects:`."""

from __future__ import annotations

import ipaddress
import re

from lab.core import naming
from lab.core.scenario.checker import Checker, Claims, items, shown
from lab.core.scenario.ml2 import parse_ranges
from lab.core.scenario.model import NAME_RE, RESERVED_BRIDGES, Node, PhysicalNetwork
from lab.core.scenario.yamlsource import LineDict, LineList


def parse_physical_networks(c: Checker, data: LineDict, nodes: list[Node], claim: Claims) -> list[PhysicalNetwork]:
    physnets: list[PhysicalNetwork] = []
    bridges_seen: dict[str, int] = {}
    for nm, body, line in items(c, data, "physical_networks"):
        where = f"physical_networks.{nm}"
        c.known_keys(body, ("bridge", "vlan_ranges", "nodes", "tunnels", "cidr"), where)
        if not c.name(nm, line, where, naming.IFNAMSIZ):
            continue
        claim("a physical network", nm, line, where)
        tunnels = c.boolean(body, "tunnels", f"{where}.tunnels", default=False)
        underlay_cidr = None
        if tunnels:
            bridge = ""
            underlay_cidr = _underlay(c, body, where, physnets)
        else:
            if "cidr" in body:
                c.add(body.line_of("cidr"), f"{where}.cidr", "only the tunnel underlay (tunnels: true) has a cidr")
            bridge = c.string(body, "bridge", f"{where}.bridge") or "br-invalid"
            _bridge(c, body, where, bridge, bridges_seen)
        ranges = parse_ranges(c, body, "vlan_ranges", f"{where}.vlan_ranges", 4094)
        attached = _attached_nodes(c, body, where, nodes)
        physnets.append(PhysicalNetwork(nm, bridge, ranges, attached, line, tunnels, underlay_cidr))
    return physnets


def _underlay(c: Checker, body: LineDict, where: str, physnets: list[PhysicalNetwork]) -> str | None:
    """The tunnel underlay's cidr (it has no bridge mapping and no VLAN ranges)."""
    for key in ("bridge", "vlan_ranges"):
        if key in body:
            c.add(body.line_of(key), f"{where}.{key}", "the tunnel underlay has no bridge mapping "
                                                      "or VLAN ranges (tunnel endpoints live on it)")
    if any(p.tunnels for p in physnets):
        c.add(body.line_of("tunnels"), f"{where}.tunnels", "there is one tunnel underlay already")
    cidr_text = c.string(body, "cidr", f"{where}.cidr")
    if cidr_text is None:
        return None
    try:
        return str(ipaddress.IPv4Network(cidr_text, strict=True))
    except ValueError as exc:
        c.add(body.line_of("cidr"), f"{where}.cidr", f"{cidr_text[:60]!r} is not an IPv4 CIDR: {exc}")
        return None


def _bridge(c: Checker, body: LineDict, where: str, bridge: str, bridges_seen: dict[str, int]) -> None:
    """The bridge_mappings entry: not Neutron's own bridges, short enough, used once."""
    if bridge in RESERVED_BRIDGES:
        c.add(body.line_of("bridge"), f"{where}.bridge", f"{bridge} is Neutron's own bridge; "
                                                        "map the physical network to another one")
    elif not re.fullmatch(r"[a-z][a-z0-9-]{0,9}", bridge):
        c.add(body.line_of("bridge"), f"{where}.bridge",
              f"bridge name {bridge[:40]!r} must be lowercase letters, digits and '-', at most 10 "
              f"characters (its patch ports int-{bridge[:40]} / phy-{bridge[:40]} must fit "
              f"{naming.IFNAMSIZ} characters)")
    elif bridge in bridges_seen:
        c.add(body.line_of("bridge"), f"{where}.bridge",
              f"bridge {bridge} already maps another physical network ({c.at(bridges_seen[bridge])})")
    else:
        bridges_seen[bridge] = body.line_of("bridge")


def _attached_nodes(c: Checker, body: LineDict, where: str, nodes: list[Node]) -> tuple[str, ...]:
    """The nodes on this wire (default: every node), each once, in the order given."""
    node_names = {n.name for n in nodes}
    attached = body.get("nodes")
    if attached is None:
        return tuple(n.name for n in nodes)
    if not isinstance(attached, LineList) or not all(isinstance(x, str) for x in attached):
        c.add(body.line_of("nodes"), f"{where}.nodes", "must be a list of node names")
        return ()
    for i, n in enumerate(attached):
        if n not in node_names:
            c.add(attached.line_of(i), f"{where}.nodes", f"unknown node {n[:40]!r}")
    if len(set(attached)) != len(attached):
        c.add(body.line_of("nodes"), f"{where}.nodes", "lists a node twice")
    return tuple(n for n in dict.fromkeys(attached) if n in node_names)


def parse_projects(c: Checker, data: LineDict) -> list[str]:
    projects: list[str] = []
    raw_projects = data.get("projects")
    if raw_projects is None:
        c.add(data.line, "projects", "is required (a list of project names)")
        return projects
    if not isinstance(raw_projects, (LineList, LineDict)):
        c.add(data.line_of("projects"), "projects", "must be a list of project names")
        return projects
    for i, p in enumerate(list(raw_projects)):
        line = raw_projects.line_of(i) if isinstance(raw_projects, LineList) else raw_projects.line_of(p)
        if not isinstance(p, str) or not NAME_RE.match(p):
            c.add(line, "projects", f"project name {shown(p)} must be lowercase letters, digits and '-'")
        elif p in projects:
            c.add(line, "projects", f"project {p!r} is listed twice")
        else:
            projects.append(p)
    return projects
