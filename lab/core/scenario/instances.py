"""The `instances:` section: where each VM runs, its port (network, address, MAC, security
groups) and floating IP. ``parse_instances`` validates what is written; ``resolve_instances``
makes the ports once addresses are known (see ``addresses.py``)."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from lab.core import naming
from lab.core.scenario.checker import Checker, Claims, items, shown
from lab.core.scenario.ipam import Addresses
from lab.core.scenario.model import Instance, Network, Node, PhysicalNetwork, SecurityGroup
from lab.core.scenario.yamlsource import LineDict

KEYS = ("node", "network", "ip", "mac", "security_groups", "address", "floating_ip", "user_data", "public_keys")
USER_DATA_MAX = 65535          # Nova's limit on user data (bytes)
KEY_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9 _.-]{0,254}$")
KEY_RE = re.compile(r"^(ssh-(rsa|ed25519|dss)|ecdsa-sha2-nistp(256|384|521)|sk-\S+) [A-Za-z0-9+/]+={0,3}( [^\n]*)?$")


@dataclass
class PendingInstance:
    """An instance as written, before IPAM: ip None means 'allocate'."""

    name: str
    node: str
    net: Network
    ip: str | None
    mac: str | None
    groups: tuple[str, ...]
    body: LineDict
    line: int
    address: str
    fip: str | None
    user_data: str | None = None
    public_keys: tuple[tuple[str, str], ...] = ()


def parse_instances(c: Checker, data: LineDict, nodes: list[Node], physnets: dict[str, PhysicalNetwork],
                    networks: dict[str, Network], groups: list[SecurityGroup],
                    claim: Claims) -> list[PendingInstance]:
    pending = []
    group_keys = {(g.name, g.project) for g in groups}
    for nm, body, line in items(c, data, "instances"):
        where = f"instances.{nm}"
        c.known_keys(body, KEYS, where)
        if not c.name(nm, line, where, naming.IFNAMSIZ):
            continue
        claim("an instance", nm, line, where)
        node = _node(c, body, where, nodes)
        net_name = c.string(body, "network", f"{where}.network")
        net = networks.get(net_name) if net_name else None
        if net_name is not None and net is None:
            c.add(body.line_of("network"), f"{where}.network", f"unknown or invalid network {net_name[:40]!r}")
        if net is not None and node is not None and node not in physnets[net.physical_network].nodes:
            c.add(body.line_of("node"), f"{where}.node",
                  f"{node} is not attached to {net.physical_network}, which carries network {net.name}")
        ip = _ip(c, body, where, net)
        mac = c.mac(body, f"{where}.mac")
        sgs = _security_groups(c, body, where, net, group_keys)
        if net is not None and net.external:
            c.add(body.line_of("network"), f"{where}.network",
                  f"{net.name} is an external network; instances attach to project networks "
                  "(use external_hosts for the outside world)")
            net = None
        address = c.string(body, "address", f"{where}.address", required=False, choices=("dhcp", "static"))
        if address == "dhcp" and net is not None and not net.dhcp:
            c.add(body.line_of("address"), f"{where}.address", f"network {net.name} has DHCP disabled")
        fip = _floating_ip(c, body, where)
        if node is None or net is None:
            continue
        address = address or ("dhcp" if net.dhcp else "static")
        user_data, keys = _user_data(c, body, where), _public_keys(c, body, where)
        pending.append(PendingInstance(nm, node, net, ip, mac, sgs, body, line, address, fip, user_data, keys))
    return pending


def _node(c: Checker, body: LineDict, where: str, nodes: list[Node]) -> str | None:
    """A compute node's name."""
    node = c.string(body, "node", f"{where}.node")
    if node is None:
        return None
    found = next((n for n in nodes if n.name == node), None)
    if found is None:
        c.add(body.line_of("node"), f"{where}.node", f"unknown node {node[:40]!r}")
        return None
    if found.role != "compute":
        c.add(body.line_of("node"), f"{where}.node",
              f"{node} is a {found.role} node; instances run on compute nodes")
        return None
    return node


def _ip(c: Checker, body: LineDict, where: str, net: Network | None) -> str | None:
    """The given address: a host address of the network, not its gateway."""
    if "ip" not in body:
        return None
    try:
        ip = ipaddress.IPv4Address(str(body["ip"]))
    except ValueError:
        c.add(body.line_of("ip"), f"{where}.ip", f"{shown(body['ip'])} is not an IPv4 address")
        return None
    if net is not None:
        cidr = ipaddress.ip_network(net.cidr)
        if ip not in cidr or ip in (cidr.network_address, cidr.broadcast_address):
            c.add(body.line_of("ip"), f"{where}.ip", f"{ip} is not a host address of {net.name} ({net.cidr})")
            return None
        if str(ip) == net.gateway:
            c.add(body.line_of("ip"), f"{where}.ip", f"{ip} is the gateway of {net.name}")
            return None
    return str(ip)


def _security_groups(c: Checker, body: LineDict, where: str, net: Network | None,
                     group_keys: set[tuple[str, str]]) -> tuple[str, ...]:
    groups = body.get("security_groups", ["default"])
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        c.add(body.line_of("security_groups"), f"{where}.security_groups",
              "must be a list of security group names ([] means no group: all traffic dropped)")
        return ("default",)
    if net is not None:
        for g in groups:
            if g != "default" and (g, net.project) not in group_keys:
                c.add(body.line_of("security_groups"), f"{where}.security_groups",
                      f"unknown security group {g[:40]!r} in project {net.project}")
    return tuple(groups)


def _floating_ip(c: Checker, body: LineDict, where: str) -> str | None:
    """An IPv4 address or 'auto' (allocated from the router's external network)."""
    fip = body.get("floating_ip")
    if fip is None or fip == "auto":
        return fip
    try:
        return str(ipaddress.IPv4Address(str(fip)))
    except ValueError:
        c.add(body.line_of("floating_ip"), f"{where}.floating_ip", f"{shown(fip)} is not an IPv4 address or 'auto'")
        return None


def _user_data(c: Checker, body: LineDict, where: str) -> str | None:
    """user_data: the text the metadata service serves as user-data (at most Nova's 64 KiB)."""
    value = c.string(body, "user_data", f"{where}.user_data", required=False)
    if value is not None and len(value.encode()) > USER_DATA_MAX:
        c.add(body.line_of("user_data"), f"{where}.user_data",
              f"is {len(value.encode())} bytes; Nova takes at most {USER_DATA_MAX}")
        return None
    return value


def _public_keys(c: Checker, body: LineDict, where: str) -> tuple[tuple[str, str], ...]:
    """public_keys: {key name: OpenSSH public key}, served as metadata public-keys."""
    keys = c.mapping(body, "public_keys", f"{where}.public_keys")
    if keys is None:
        return ()
    out = []
    for name, key in keys.items():
        kwhere, kline = f"{where}.public_keys.{name}", keys.line_of(name)
        if not KEY_NAME_RE.match(str(name)):
            c.add(kline, kwhere, f"key name {shown(name)} must be letters, digits, ' ', '_', '.', '-'")
        elif not isinstance(key, str) or not KEY_RE.match(key.strip()):
            c.add(kline, kwhere, f"{shown(key)} is not an OpenSSH public key (like 'ssh-ed25519 AAAA... comment')")
        else:
            out.append((str(name), key.strip()))
    return tuple(out)


def resolve_instances(c: Checker, lab: str, pending: list[PendingInstance], addresses: Addresses) -> list[Instance]:
    """Instances with their port: allocated address (when none was given), port id, MAC."""
    instances: list[Instance] = []
    macs: dict[str, tuple[str, int]] = {}
    for p in pending:
        ip = p.ip
        if ip is None:
            ip = addresses.allocate(p.net, p.name, p.line, f"instances.{p.name}")
            if ip is None:
                continue
        port_id = naming.object_uuid(lab, "port", p.name)
        mac = p.mac or naming.port_mac(port_id)
        if mac in macs:
            other, oline = macs[mac]
            c.add(p.body.line_of("mac") if "mac" in p.body else p.line, f"instances.{p.name}.mac",
                  f"{mac} is already used by {other} ({c.at(oline)})")
            continue
        macs[mac] = (p.name, p.line)
        instances.append(Instance(p.name, p.node, p.net.name, ip, mac, port_id, p.groups, p.line,
                                  address=p.address, floating_ip=p.fip, user_data=p.user_data,
                                  public_keys=p.public_keys))
    return instances
