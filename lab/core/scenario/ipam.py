"""IPAM: allocation pools and the addresses neutron-server would hand out.

``Addresses`` records every address taken on a network (explicit ones first, where a
duplicate is a problem) and allocates the lowest free address of a pool. Allocation walks
the pool from its first address and skips the taken ones, so it is bounded by the number of
addresses taken, not by the size of the subnet.
"""

from __future__ import annotations

import ipaddress
import re

from lab.core.scenario.checker import Checker
from lab.core.scenario.model import Network
from lab.core.scenario.yamlsource import LineDict


def pool_bounds(net: Network) -> tuple[int, int]:
    """First and last address of the pool as integers (default: every host address)."""
    if net.allocation_pool is not None:
        first, last = net.allocation_pool
        return int(ipaddress.IPv4Address(first)), int(ipaddress.IPv4Address(last))
    cidr = ipaddress.ip_network(net.cidr)
    return int(cidr.network_address) + 1, int(cidr.broadcast_address) - 1


def allocate(net: Network, used: set[str]) -> ipaddress.IPv4Address | None:
    """Lowest free address of the allocation pool (default: the subnet less its gateway)."""
    first, last = pool_bounds(net)
    candidate = first
    while candidate <= last:
        addr = ipaddress.IPv4Address(candidate)
        if str(addr) != net.gateway and str(addr) not in used:
            return addr
        candidate += 1
    return None


def in_pool(net: Network, ip: str) -> bool:
    """Inside the allocation pool; without one, any host address but the gateway's."""
    if net.allocation_pool is None:
        cidr, addr = ipaddress.ip_network(net.cidr), ipaddress.IPv4Address(ip)
        return addr in cidr and addr not in (cidr.network_address, cidr.broadcast_address) \
            and ip != net.gateway
    first, last = (ipaddress.IPv4Address(a) for a in net.allocation_pool)
    return first <= ipaddress.IPv4Address(ip) <= last


def pool_text(net: Network) -> str:
    return "-".join(net.allocation_pool) if net.allocation_pool else f"all of {net.cidr}"


def parse_allocation_pool(c: Checker, body: LineDict, where: str, cidr, gateway) -> tuple[str, str] | None:
    raw = body.get("allocation_pool")
    if raw is None or cidr is None:
        return None
    line, w = body.line_of("allocation_pool"), f"{where}.allocation_pool"
    m = re.fullmatch(r"\s*([\d.]+)\s*-\s*([\d.]+)\s*", str(raw))
    if not m:
        c.add(line, w, f"{str(raw)[:60]!r} must look like 203.0.113.101-203.0.113.200")
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


class Addresses:
    """The addresses taken on each network, and who took them."""

    def __init__(self, c: Checker):
        self.c = c
        self.used: dict[tuple[str, str], tuple[str, int]] = {}   # (network, ip) -> (who, line)
        self.by_network: dict[str, set[str]] = {}

    def _mark(self, net_name: str, ip: str, who: str, line: int) -> None:
        self.used[(net_name, ip)] = (who, line)
        self.by_network.setdefault(net_name, set()).add(ip)

    def take(self, net_name: str, ip: str, who: str, line: int, where: str) -> bool:
        """Take an address given in the file; a second taker is a problem."""
        key = (net_name, ip)
        if key in self.used:
            other, oline = self.used[key]
            self.c.add(line, where, f"{ip} is already used by {other} ({self.c.at(oline)}) on network {net_name}")
            return False
        self._mark(net_name, ip, who, line)
        return True

    def allocate(self, net: Network, who: str, line: int, where: str) -> str | None:
        """Allocate the lowest free address of NET's pool to WHO."""
        ip = allocate(net, self.by_network.get(net.name, set()))
        if ip is None:
            self.c.add(line, where, f"network {net.name} ({net.cidr}) has no free address left in its pool")
            return None
        self._mark(net.name, str(ip), who, line)
        return str(ip)
