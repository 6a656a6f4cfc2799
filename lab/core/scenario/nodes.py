"""The `nodes:` section: the emulated hosts, their role, firewall driver and tunnel endpoint."""

from __future__ import annotations

import dataclasses
import ipaddress
import itertools

from lab.core import naming
from lab.core.scenario.checker import Checker, Claims, empty_at, items
from lab.core.scenario.model import (AGENT_MODES, AGENT_MODES_OF_ROLE, DVR_AGENT_MODES,
                                     FIREWALL_DRIVERS_LATER, FIREWALL_DRIVERS_NOW, ROLES, Node,
                                     PhysicalNetwork)
from lab.core.scenario.yamlsource import LineDict


def parse_nodes(c: Checker, data: LineDict, claim: Claims) -> list[Node]:
    nodes: list[Node] = []
    for nm, body, line in items(c, data, "nodes"):
        where = f"nodes.{nm}"
        c.known_keys(body, ("role", "local_ip", "firewall_driver", "agent_mode", "enable_ipset"), where)
        if not c.name(nm, line, where, naming.IFNAMSIZ):
            continue
        claim("a node", nm, line, where)
        role = c.string(body, "role", f"{where}.role", choices=ROLES)
        local_ip = c.string(body, "local_ip", f"{where}.local_ip", required=False)
        driver = firewall_driver(c, body, f"{where}.firewall_driver")
        mode = agent_mode(c, body, f"{where}.agent_mode", role or "compute")
        ipset = c.boolean(body, "enable_ipset", f"{where}.enable_ipset", default=True)
        nodes.append(Node(nm, role or "compute", line, local_ip, firewall_driver=driver, agent_mode=mode,
                          enable_ipset=ipset))
    return nodes


def agent_mode(c: Checker, body: LineDict, where: str, role: str) -> str | None:
    """The L3 agent's agent_mode: legacy on a network node unless given; a compute runs an L3
    agent only in a DVR mode (dvr, dvr_no_external)."""
    default = "legacy" if role == "network" else None
    mode = c.string(body, "agent_mode", where, required=False)
    if mode is None:
        return default
    allowed = AGENT_MODES_OF_ROLE.get(role, ())
    if mode not in AGENT_MODES:
        c.add(body.line_of("agent_mode"), where,
              f"unknown agent_mode {str(mode)[:40]!r} (one of: {', '.join(AGENT_MODES)})")
        return default
    if mode not in allowed:
        c.add(body.line_of("agent_mode"), where,
              f"agent_mode {mode} is not for a {role} node (a {role} node runs: {', '.join(allowed)})")
        return default
    return mode


def dvr_agents(c: Checker, data: LineDict, nodes: list[Node], distributed_routing: bool) -> None:
    """An L3 agent in a DVR mode needs the OVS agent's DVR mode (enable_distributed_routing):
    without it no DVR flows exist and the local routers' frames would leave with the shared
    gateway MAC."""
    if distributed_routing:
        return
    raw_nodes = data.get("nodes") if isinstance(data.get("nodes"), LineDict) else LineDict()
    for node in nodes:
        if node.agent_mode in DVR_AGENT_MODES:
            body = raw_nodes.get(node.name)
            line = body.line_of("agent_mode") if isinstance(body, LineDict) else node.line
            c.add(line, f"nodes.{node.name}.agent_mode",
                  f"agent_mode {node.agent_mode} needs the OVS agent's DVR mode: set "
                  "agent: {enable_distributed_routing: true}")


def firewall_driver(c: Checker, body: LineDict, where: str) -> str:
    """The OVS agent's [securitygroup] firewall_driver (default iptables_hybrid)."""
    driver = c.string(body, "firewall_driver", where, required=False)
    if driver is None or driver in FIREWALL_DRIVERS_NOW:
        return driver or FIREWALL_DRIVERS_NOW[0]
    if driver in FIREWALL_DRIVERS_LATER:
        c.add(body.line_of("firewall_driver"), where,
              f"firewall driver {driver!r} is not built yet (built: {', '.join(FIREWALL_DRIVERS_NOW)})")
    else:
        later = f"; not yet: {', '.join(FIREWALL_DRIVERS_LATER)}" if FIREWALL_DRIVERS_LATER else ""
        c.add(body.line_of("firewall_driver"), where,
              f"unknown firewall driver {str(driver)[:40]!r} (built: {', '.join(FIREWALL_DRIVERS_NOW)}{later})")
    return FIREWALL_DRIVERS_NOW[0]


def tunnel_endpoints(c: Checker, data: LineDict, nodes: list[Node],
                      underlay: PhysicalNetwork | None) -> list[Node]:
    """Each node on the underlay gets its local_ip: given, or the underlay's 11th, 12th...
    host address in node order."""
    raw_nodes = data.get("nodes") if isinstance(data.get("nodes"), LineDict) else LineDict()
    out = []
    used: dict[str, str] = {}
    for index, node in enumerate(nodes):
        body = raw_nodes.get(node.name)
        if not isinstance(body, LineDict):
            body = empty_at(node.line)
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
