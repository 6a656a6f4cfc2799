"""ML2: the `ml2:` section, ID ranges, and the segmentation ids neutron-server would allocate.

Ranges stay ranges: ``tunnel_id_ranges: ["1:4294967295"]`` is one pair of integers, never four
billion of them. The lowest free id is found by walking the ranges in order and skipping the
ids in use, so the work is bounded by the number of networks, not by the size of the ranges.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable

from lab.core.scenario.checker import Checker
from lab.core.scenario.model import NETWORK_TYPES_NOW, TUNNEL_ID_MAX, Network, PhysicalNetwork
from lab.core.scenario.yamlsource import LineDict, LineList

Ranges = tuple[tuple[int, int], ...]
DEFAULT_RANGES = {"vxlan": ((1001, 2000),), "gre": ((1, 1000),)}


def parse_ranges(c: Checker, body: LineDict, key: str, where: str, maximum: int) -> Ranges:
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
        m = re.fullmatch(r"\s*(\d{1,12})\s*:\s*(\d{1,12})\s*", str(item))
        if not m:
            c.add(line, where, f"{str(item)[:40]!r} is not a range like '101:199'")
            continue
        lo, hi = int(m.group(1)), int(m.group(2))
        if not (1 <= lo <= hi <= maximum):
            c.add(line, where, f"range {lo}:{hi} must satisfy 1 <= first <= last <= {maximum}")
            continue
        ranges.append((lo, hi))
    return tuple(ranges)


def ranges_text(ranges: Ranges) -> str:
    return ", ".join(f"{lo}:{hi}" for lo, hi in ranges)


def first_free(ranges: Iterable[tuple[int, int]], used: set[int]) -> int | None:
    """The lowest id of RANGES (in their order) that is not in USED. Each step past an id
    skips a used one, so this takes at most len(used) + 1 steps per range."""
    for lo, hi in ranges:
        candidate = lo
        while candidate <= hi:
            if candidate not in used:
                return candidate
            candidate += 1
    return None


def parse_ml2(c: Checker, data: LineDict) -> dict:
    """ml2: {tenant_network_types: [vxlan], vni_ranges: ['1001:2000'], tunnel_id_ranges: [...]}"""
    out = {"tenant_type": "vlan", "ranges": dict(DEFAULT_RANGES)}
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
            ranges = parse_ranges(c, ml2, key, f"ml2.{key}", TUNNEL_ID_MAX[ntype])
            if ranges:
                out["ranges"][ntype] = ranges
    return out


def segment_key(net: Network) -> str:
    """What a segmentation id is unique within: the physical network for vlan/flat, the
    type for tunnels."""
    return net.type if net.type in ("vxlan", "gre") else net.physical_network


def allocate_segments(c: Checker, networks: list[Network], to_allocate: list[int],
                      segments: dict[tuple[str, int | None], tuple[str, int]], ml2: dict,
                      physnets: dict[str, PhysicalNetwork]) -> list[Network]:
    """Give each network at an index of TO_ALLOCATE the lowest free id of its type's ranges,
    in file order (SEGMENTS: the ids taken, by (physnet or type, id)). Networks left without
    an id are dropped (their problem is reported)."""
    networks = list(networks)
    for index in to_allocate:
        net = networks[index]
        ranges = physnets[net.physical_network].vlan_ranges if net.type == "vlan" else ml2["ranges"][net.type]
        key = segment_key(net)
        used = {seg for (k, seg) in segments if k == key and seg is not None}
        free = first_free(ranges, used)
        if free is None:
            c.add(net.line, f"networks.{net.name}",
                  f"no free {net.type} segmentation id left (ranges: {ranges_text(ranges)})")
            continue
        segments[(key, free)] = (net.name, net.line)
        networks[index] = dataclasses.replace(net, segmentation_id=free)
    return [n for n in networks if n.segmentation_id is not None or n.type == "flat"]
