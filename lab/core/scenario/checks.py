"""The `checks:` section: probes (ping or TCP) with an expected verdict and path assertions
(where the packets must and must not be seen), and DHCP lease checks."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from lab.core.metadata import METADATA_IP
from lab.core.scenario.checker import Checker, kind, shown
from lab.core.scenario.model import (DEFAULT_TCP_PORT, EXPECTS, PACKET_KINDS, PATH_KINDS, TUNNEL_ID_MAX, Check,
                                     ExternalHost, Instance, PathAssertion, PhysicalNetwork)
from lab.core.scenario.yamlsource import LineDict, LineList

PATH_KEYS = PATH_KINDS + ("vlan", "vni", "key", "packets", "source", "destination", "source_mac")
MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


@dataclass
class _Known:
    """What checks may name."""

    instances: dict[str, Instance]      # resolved instances
    declared: set[str]                  # every instance the file declares (even invalid ones)
    hosts: dict[str, ExternalHost]
    targets: set[str]                   # every exec target name
    physnets: dict[str, PhysicalNetwork]
    routers: set[str]
    mac_names: set[str] = frozenset()    # dvr:<node> and gateway:<network> a source_mac may name
    metadata_networks: set[str] = frozenset()   # networks whose instances reach a metadata proxy

    @property
    def endpoints(self) -> set[str]:
        return self.declared | set(self.hosts)

    @property
    def servable(self) -> set[str]:
        """Addresses a tcp check can serve from: instances, external hosts, floating IPs."""
        return {i.ip for i in self.instances.values()} | {h.ip for h in self.hosts.values()} | \
            {i.floating_ip for i in self.instances.values() if i.floating_ip}


def parse_checks(c: Checker, data: LineDict, instances: dict[str, Instance], targets: set[str],
                 physnets: dict[str, PhysicalNetwork], declared_instances: set[str],
                 hosts: dict[str, ExternalHost], routers: set[str], mac_names: set[str] = frozenset(),
                 metadata_networks: set[str] = frozenset()) -> list[Check]:
    raw = data.get("checks")
    if raw is None:
        return []
    if not isinstance(raw, LineList):
        c.add(data.line_of("checks"), "checks", "must be a list of checks")
        return []
    known = _Known(instances, declared_instances, hosts, targets, physnets, routers, set(mac_names),
                   set(metadata_networks))
    checks: list[Check] = []
    names: set[str] = set()
    for i, body in enumerate(raw):
        line, where = raw.line_of(i), f"checks[{i}]"
        if not isinstance(body, LineDict):
            c.add(line, where, f"must be a mapping, not {kind(body)}")
            continue
        parse = _lease_check if "lease" in body else _metadata_check if "metadata" in body else _probe_check
        check = parse(c, body, line, where, known, names)
        if check is not None:
            checks.append(check)
    return checks


def _unique_name(c: Checker, name: str, line: int, where: str, names: set[str]) -> None:
    if name in names:
        c.add(line, f"{where}.name", f"check name {shown(name)} is used twice")
    names.add(name)


def _lease_check(c: Checker, body: LineDict, line: int, where: str, known: _Known, names: set[str]) -> Check | None:
    c.known_keys(body, ("name", "lease"), where)
    inst = str(body["lease"])
    name = str(body.get("name") or f"{inst} holds its DHCP lease")
    check = None
    if inst not in known.declared:
        c.add(body.line_of("lease"), f"{where}.lease", f"unknown instance {shown(inst)}")
    elif inst in known.instances and known.instances[inst].address != "dhcp":
        c.add(body.line_of("lease"), f"{where}.lease", f"{inst} has a static address, no lease")
    else:
        check = Check(name, inst, "", "lease", None, "reach", (), line)
    _unique_name(c, name, line, where, names)
    return check


def _metadata_check(c: Checker, body: LineDict, line: int, where: str, known: _Known, names: set[str]) -> Check | None:
    """metadata: INSTANCE fetches its own instance-id from http://169.254.169.254/ (lab/tools/metadata_check.py)."""
    c.known_keys(body, ("name", "metadata"), where)
    inst = str(body["metadata"])
    name = str(body.get("name") or f"{inst} reads its own metadata")
    check = None
    if inst not in known.declared:
        c.add(body.line_of("metadata"), f"{where}.metadata", f"unknown instance {shown(inst)}")
    elif inst in known.instances and known.instances[inst].network not in known.metadata_networks:
        c.add(body.line_of("metadata"), f"{where}.metadata",
              f"no router serves metadata on {inst}'s network {known.instances[inst].network} "
              "(attach the network to a router)")
    else:
        check = Check(name, inst, METADATA_IP, "metadata", 80, "reach", (), line)
    _unique_name(c, name, line, where, names)
    return check


def _probe_check(c: Checker, body: LineDict, line: int, where: str, known: _Known, names: set[str]) -> Check | None:
    c.known_keys(body, ("name", "from", "to", "proto", "expect", "path"), where)
    src = c.string(body, "from", f"{where}.from")
    if src is not None and src not in known.endpoints:
        c.add(body.line_of("from"), f"{where}.from", f"unknown instance or external host {shown(src)}")
        src = None
    dst = _destination(c, body, line, where, known)
    proto_text = str(body.get("proto", "icmp"))
    proto, port = _proto(c, body, where, proto_text)
    if proto == "tcp" and dst is not None and dst not in known.endpoints and dst not in known.servable:
        c.add(body.line_of("to"), f"{where}.to",
              f"a tcp check needs a destination that can run the server (an instance, an "
              f"external host or a floating IP), not {dst!r}")
    expect = c.string(body, "expect", f"{where}.expect", required=False, choices=EXPECTS) or "reach"
    if src is not None and src == dst:
        c.add(body.line_of("to"), f"{where}.to", f"a check from {src} to itself proves nothing")
    name = str(body.get("name") or f"{src} -> {dst} ({proto_text})")
    _unique_name(c, name, body.line_of("name") if "name" in body else line, where, names)
    path = _path(c, body, where, known)
    if src is None or dst is None:
        return None
    return Check(name, src, dst, proto, port, expect, tuple(path), line)


def _destination(c: Checker, body: LineDict, line: int, where: str, known: _Known) -> str | None:
    """An instance, an external host or an IPv4 address."""
    dst = body.get("to")
    if dst is None:
        c.add(line, f"{where}.to", "is required (an instance, an external host or an IPv4 address)")
        return None
    dst = str(dst)
    if dst in known.endpoints:
        return dst
    try:
        ipaddress.IPv4Address(dst)
    except ValueError:
        c.add(body.line_of("to"), f"{where}.to",
              f"{shown(dst)} is neither an instance, an external host nor an IPv4 address")
        return None
    return dst


def _proto(c: Checker, body: LineDict, where: str, proto_text: str) -> tuple[str, int | None]:
    """icmp, tcp or tcp:PORT (default port 5001)."""
    m = re.fullmatch(r"(icmp|tcp)(?::(\d{1,6}))?", proto_text)
    if not m or (m.group(1) == "icmp" and m.group(2)):
        c.add(body.line_of("proto"), f"{where}.proto", f"{shown(proto_text)} must be icmp, tcp or tcp:PORT")
        return "icmp", None
    if m.group(1) == "icmp":
        return "icmp", None
    port = int(m.group(2) or DEFAULT_TCP_PORT)
    if not 1 <= port <= 65535:
        c.add(body.line_of("proto"), f"{where}.proto", f"port {port} is out of range")
    return "tcp", port


def _path(c: Checker, body: LineDict, where: str, known: _Known) -> list[PathAssertion]:
    raw_path = body.get("path", [])
    if not isinstance(raw_path, list):
        c.add(body.line_of("path"), f"{where}.path", "must be a list of path assertions")
        return []
    path = []
    for j, item in enumerate(raw_path):
        pline, pwhere = raw_path.line_of(j), f"{where}.path[{j}]"
        if not isinstance(item, LineDict):
            c.add(pline, pwhere, "must be a mapping like {crosses: physnet1, vlan: 101}")
            continue
        assertion = _assertion(c, item, pline, pwhere, known)
        if assertion is not None:
            path.append(assertion)
    return path


def _assertion(c: Checker, item: LineDict, pline: int, pwhere: str, known: _Known) -> PathAssertion | None:
    c.known_keys(item, PATH_KEYS, pwhere)
    kinds = [k for k in PATH_KINDS if k in item]
    if len(kinds) != 1:
        c.add(pline, pwhere, f"needs exactly one of: {', '.join(PATH_KINDS)}")
        return None
    what = kinds[0]
    target = str(item[what])
    twhere = f"{pwhere}.{what}"
    if what in ("crosses", "never_on") and target not in known.physnets:
        c.add(item.line_of(what), twhere, f"unknown physical network {shown(target)}")
        return None
    if what in ("passes", "never_passes") and target not in known.routers:
        c.add(item.line_of(what), twhere, f"unknown router {shown(target)}")
        return None
    if what in ("never_reaches", "reaches") and (target not in known.targets or target in known.routers):
        c.add(item.line_of(what), twhere, f"unknown node, instance, external host or physical network {shown(target)}")
        return None
    on_underlay = what == "crosses" and known.physnets[target].tunnels
    vlan = _vlan(c, item, pwhere, what, target, on_underlay)
    tunnel_ids = _tunnel_ids(c, item, pwhere, on_underlay)
    packets = c.string(item, "packets", f"{pwhere}.packets", required=False, choices=PACKET_KINDS) or "ip"
    pair = {}
    for key in ("source", "destination"):
        if key in item:
            try:
                pair[key] = str(ipaddress.IPv4Address(str(item[key])))
            except ValueError:
                c.add(item.line_of(key), f"{pwhere}.{key}", f"{shown(item[key])} is not an IPv4 address")
    return PathAssertion(what, target, vlan, packets, pline, **pair, **tunnel_ids,
                         source_mac=_source_mac(c, item, pwhere, what, known))


def _source_mac(c: Checker, item: LineDict, pwhere: str, what: str, known: _Known) -> str | None:
    """source_mac: a MAC, an instance (its port's MAC), dvr:<node> (its DVR MAC) or
    gateway:<network> (its router port's MAC)."""
    if "source_mac" not in item:
        return None
    value, line, where = str(item["source_mac"]).lower(), item.line_of("source_mac"), f"{pwhere}.source_mac"
    if what not in ("crosses", "never_on", "reaches"):
        c.add(line, where, "source_mac goes with crosses, never_on or reaches")
    elif not (MAC_RE.match(value) or value in known.mac_names or value in known.instances):
        c.add(line, where, f"{shown(item['source_mac'])} is not a MAC address, nor one of: "
                           f"an instance, {', '.join(sorted(known.mac_names)) or 'dvr:<node> (needs DVR), gateway:<network>'}")
    else:
        return value
    return None


def _vlan(c: Checker, item: LineDict, pwhere: str, what: str, target: str, on_underlay: bool) -> int | None:
    vlan = c.integer(item, "vlan", f"{pwhere}.vlan", required=False)
    if vlan is not None and what != "crosses":
        c.add(item.line_of("vlan"), f"{pwhere}.vlan", "vlan only goes with crosses")
    if vlan is not None and not 1 <= vlan <= 4094:
        c.add(item.line_of("vlan"), f"{pwhere}.vlan", f"VLAN id {vlan} is out of range 1-4094")
    if vlan is not None and on_underlay:
        c.add(item.line_of("vlan"), f"{pwhere}.vlan", f"{target} carries tunnels: use vni or key")
    return vlan


def _tunnel_ids(c: Checker, item: LineDict, pwhere: str, on_underlay: bool) -> dict[str, int]:
    """vni (VXLAN) and key (GRE): only on crosses of the tunnel underlay."""
    tunnel_ids = {}
    for tkey in ("vni", "key"):
        value = c.integer(item, tkey, f"{pwhere}.{tkey}", required=False)
        if value is None:
            continue
        if not on_underlay:
            c.add(item.line_of(tkey), f"{pwhere}.{tkey}", f"{tkey} only goes with crosses of the tunnel underlay")
            continue
        limit = TUNNEL_ID_MAX["vxlan" if tkey == "vni" else "gre"]
        if not 1 <= value <= limit:
            c.add(item.line_of(tkey), f"{pwhere}.{tkey}", f"{tkey} {value} is out of range 1-{limit}")
            continue
        tunnel_ids[tkey] = value
    return tunnel_ids
