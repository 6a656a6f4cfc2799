"""The `external_hosts:` section: namespaces on an external network's wire that stand for the
world outside Neutron. Their addresses are outside the allocation pool, where Neutron would
put router gateways and floating IPs."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from lab.core import naming
from lab.core.scenario.checker import Checker, Claims, items
from lab.core.scenario.ipam import in_pool, pool_text
from lab.core.scenario.model import ExternalHost, Network
from lab.core.scenario.yamlsource import LineDict


@dataclass
class PendingHost:
    name: str
    network: Network
    ip: str
    ip_line: int
    mac: str | None
    line: int


def parse_external_hosts(c: Checker, data: LineDict, networks: dict[str, Network],
                         claim: Claims) -> list[PendingHost]:
    out = []
    for nm, body, line in items(c, data, "external_hosts", required=False):
        where = f"external_hosts.{nm}"
        c.known_keys(body, ("network", "ip", "mac"), where)
        if not c.name(nm, line, where, naming.IFNAMSIZ):
            continue
        claim("an external host", nm, line, where)
        net_name = c.string(body, "network", f"{where}.network")
        net = networks.get(net_name) if net_name else None
        if net_name is not None and net is None:
            c.add(body.line_of("network"), f"{where}.network", f"unknown or invalid network {net_name[:40]!r}")
        elif net is not None and not net.external:
            c.add(body.line_of("network"), f"{where}.network",
                  f"{net.name} is not external; external hosts stand for the world outside Neutron")
            net = None
        raw_ip = c.string(body, "ip", f"{where}.ip")
        ip = _ip(c, body, where, net, raw_ip) if raw_ip is not None and net is not None else None
        mac = c.mac(body, f"{where}.mac")
        if net is None or ip is None:
            continue
        out.append(PendingHost(nm, net, ip, body.line_of("ip"), mac, line))
    return out


def _ip(c: Checker, body: LineDict, where: str, net: Network, raw_ip: str) -> str | None:
    try:
        addr = ipaddress.IPv4Address(raw_ip)
    except ValueError:
        c.add(body.line_of("ip"), f"{where}.ip", f"{raw_ip[:60]!r} is not an IPv4 address")
        return None
    cidr = ipaddress.ip_network(net.cidr)
    if addr not in cidr or addr in (cidr.network_address, cidr.broadcast_address):
        c.add(body.line_of("ip"), f"{where}.ip", f"{addr} is not a host address of {net.name} ({net.cidr})")
        return None
    if in_pool(net, str(addr)) and net.allocation_pool is not None:
        c.add(body.line_of("ip"), f"{where}.ip",
              f"{addr} is inside {net.name}'s allocation pool ({pool_text(net)}), where "
              "Neutron allocates router gateways and floating IPs")
        return None
    return str(addr)


def resolve_external_hosts(lab: str, pending: list[PendingHost]) -> list[ExternalHost]:
    return [ExternalHost(h.name, h.network.name, h.ip,
                         h.mac or naming.port_mac(naming.object_uuid(lab, "external-host", h.name)), h.line)
            for h in pending]
