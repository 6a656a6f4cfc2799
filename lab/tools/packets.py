"""Decoded packets: what checks, trace and capture judge by, instead of tcpdump's printed text.

dpkt decodes each frame (pure Python, imported in about a tenth of a second, with a pcap
reader and writer; scapy takes over a second to import here). A frame becomes a `Packet`:
every 802.1Q tag outer to inner, ARP fields, IPv4, ICMP type/code/id/seq, TCP/UDP ports, and
for VXLAN (UDP 4789) and GRE the tunnel id and the inner frame, decoded the same way.
Matching compares addresses exactly (192.168.1.1 is not 192.168.1.11) and recognises a
probe by what only it carries: its ICMP echo id, or its TCP/UDP port pair.

This module is pure: it reads bytes and files, and runs nothing.
"""

from __future__ import annotations

import heapq
import socket
import struct
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

import dpkt

DLT_EN10MB = 1
DLT_LINUX_SLL = 113
VXLAN_PORT = 4789
VLAN_TYPES = frozenset({0x8100, 0x88A8, 0x9100, 0x9200})
ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_ARP = 0x0806
ETHERTYPE_TEB = 0x6558
ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST = 0, 8
ICMP_NAMES = {0: "echo reply", 3: "destination unreachable", 5: "redirect", 8: "echo request",
              11: "time exceeded"}
TCP_FLAG_LETTERS = ((0x02, "S"), (0x01, "F"), (0x04, "R"), (0x08, "P"), (0x10, "."), (0x20, "U"))
ETHERTYPE_NAMES = {ETHERTYPE_IPV4: "IPv4", ETHERTYPE_ARP: "ARP", 0x86DD: "IPv6"}
MAX_DEPTH = 4           # tunnels inside tunnels: enough for anything a lab makes


@dataclass(frozen=True)
class Packet:
    """One decoded frame as a capture point saw it. Fields a frame lacks are None."""
    ts: float = 0.0
    point: str = ""                          # where it was captured (a check's label)
    length: int = 0                          # bytes on the wire (IPv4's total length tells, when cut short)
    src_mac: str | None = None
    dst_mac: str | None = None
    vlans: tuple[int, ...] = ()              # 802.1Q / 802.1ad ids, outer to inner
    ethertype: int | None = None             # after the tags
    arp_op: int | None = None                # 1 request, 2 reply
    arp_sha: str | None = None
    arp_spa: str | None = None
    arp_tpa: str | None = None
    ip_src: str | None = None
    ip_dst: str | None = None
    ip_proto: int | None = None
    ip_len: int | None = None                # IPv4 total length
    icmp_type: int | None = None
    icmp_code: int | None = None
    icmp_id: int | None = None               # echo request/reply only
    icmp_seq: int | None = None
    sport: int | None = None                 # TCP or UDP
    dport: int | None = None
    tcp_flags: int | None = None
    payload: bytes = b""                     # what the ICMP echo / TCP / UDP header carries (as captured)
    tunnel: str | None = None                # "vxlan" | "gre": this frame carries `inner`
    tunnel_id: int | None = None             # the VNI, or the GRE key (None: no key)
    inner: Packet | None = None

    def layers(self) -> Iterator[Packet]:
        """This frame, then the frame it carries, and so on inwards."""
        p: Packet | None = self
        while p is not None:
            yield p
            p = p.inner


# --------------------------------------------------------------------------- decoding

def _mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def _ip(raw: bytes) -> str:
    return socket.inet_ntoa(raw)


def decode(buf: bytes, ts: float = 0.0, point: str = "", linktype: int = DLT_EN10MB) -> Packet:
    """A captured frame (Ethernet, or Linux cooked from `-i any`) as a Packet. Never raises:
    what cannot be decoded is left None."""
    base = Packet(ts=ts, point=point, length=len(buf))
    if linktype == DLT_LINUX_SLL:
        return _linux_sll(buf, base)
    return _ethernet(buf, base, 0)


def _linux_sll(buf: bytes, base: Packet) -> Packet:
    try:
        sll = dpkt.sll.SLL(buf)
    except (dpkt.UnpackError, dpkt.NeedData):
        return base
    base = replace(base, src_mac=_mac(sll.hdr[:sll.hlen]) if sll.hlen == 6 else None)
    return _network(sll.ethtype, buf[sll.__hdr_len__:], base, 0)


def _ethernet(buf: bytes, base: Packet, depth: int) -> Packet:
    try:
        eth = dpkt.ethernet.Ethernet(buf)
    except (dpkt.UnpackError, dpkt.NeedData):
        return base
    p = replace(base, src_mac=_mac(eth.src), dst_mac=_mac(eth.dst))
    # every tag in order: dpkt reads two (QinQ); a deeper stack is read on with its tag class
    offset, etype, vlans = 12, eth.type, []
    while etype in VLAN_TYPES and len(buf) >= offset + 6:
        tag = dpkt.ethernet.VLANtag8021Q(buf[offset + 2:offset + 6])
        vlans.append(tag.id)
        etype, offset = tag.type, offset + 4
    p = _network(etype, buf[offset + 2:], replace(p, vlans=tuple(vlans)), depth)
    if p.ip_len:     # a capture's snap length may have cut the frame: say how long it was
        p = replace(p, length=max(p.length, offset + 2 + p.ip_len))
    return p


def _network(etype: int, payload: bytes, p: Packet, depth: int) -> Packet:
    p = replace(p, ethertype=etype)
    try:
        if etype == ETHERTYPE_ARP:
            arp = dpkt.arp.ARP(payload)
            return replace(p, arp_op=arp.op, arp_sha=_mac(arp.sha), arp_spa=_ip(arp.spa),
                           arp_tpa=_ip(arp.tpa))
        if etype == ETHERTYPE_IPV4:
            return _ipv4(payload, p, depth)
    except (dpkt.UnpackError, dpkt.NeedData, OSError, struct.error):
        pass
    return p


def _ipv4(payload: bytes, p: Packet, depth: int) -> Packet:
    ip = dpkt.ip.IP(payload)
    p = replace(p, ip_src=_ip(ip.src), ip_dst=_ip(ip.dst), ip_proto=ip.p, ip_len=ip.len)
    if ip.offset != 0:       # a later fragment: no transport header
        return p
    body = payload[ip.hl * 4:ip.len or None]
    if ip.p == dpkt.ip.IP_PROTO_ICMP:
        return _icmp(body, p)
    if ip.p in (dpkt.ip.IP_PROTO_TCP, dpkt.ip.IP_PROTO_UDP):
        return _transport(ip.p, body, p, depth)
    if ip.p == dpkt.ip.IP_PROTO_GRE:
        return _gre(body, p, depth)
    return p


def _icmp(body: bytes, p: Packet) -> Packet:
    icmp = dpkt.icmp.ICMP(body)
    p = replace(p, icmp_type=icmp.type, icmp_code=icmp.code)
    if icmp.type in (ICMP_ECHO_REQUEST, ICMP_ECHO_REPLY) and len(body) >= 8:
        echo = dpkt.icmp.ICMP.Echo(body[4:])
        p = replace(p, icmp_id=echo.id, icmp_seq=echo.seq, payload=bytes(body[8:]))
    return p


def _transport(proto: int, body: bytes, p: Packet, depth: int) -> Packet:
    if proto == dpkt.ip.IP_PROTO_TCP:
        tcp = dpkt.tcp.TCP(body)
        return replace(p, sport=tcp.sport, dport=tcp.dport, tcp_flags=tcp.flags,
                       payload=bytes(body[tcp.off * 4:]))
    udp = dpkt.udp.UDP(body)
    p = replace(p, sport=udp.sport, dport=udp.dport, payload=bytes(body[8:]))
    vxlan = body[8:]
    if udp.dport == VXLAN_PORT and len(vxlan) >= 8 and vxlan[0] & 0x08 and depth < MAX_DEPTH:
        vni = int.from_bytes(vxlan[4:7], "big")
        inner = _ethernet(vxlan[8:], Packet(ts=p.ts, point=p.point, length=len(vxlan) - 8), depth + 1)
        return replace(p, tunnel="vxlan", tunnel_id=vni, inner=inner)
    return p


def _gre(body: bytes, p: Packet, depth: int) -> Packet:
    gre = dpkt.gre.GRE(body)
    key = getattr(gre, "key", None) if gre.flags & dpkt.gre.GRE_KP else None
    p = replace(p, tunnel="gre", tunnel_id=key)
    if gre.p != ETHERTYPE_TEB or depth >= MAX_DEPTH:
        return p
    header = 4 + 4 * sum(bool(gre.flags & f) for f in (dpkt.gre.GRE_CP | dpkt.gre.GRE_RP,
                                                      dpkt.gre.GRE_KP, dpkt.gre.GRE_SP))
    inner = _ethernet(body[header:], Packet(ts=p.ts, point=p.point, length=len(body) - header), depth + 1)
    return replace(p, inner=inner)


# --------------------------------------------------------------------------- pcap files

def read_stream(stream: BinaryIO, point: str = "") -> Iterator[Packet]:
    """Packets of a pcap stream (a file, or tcpdump's `-w -` pipe) as they arrive. An empty or
    cut-short stream ends the iteration; it does not raise."""
    for ts, buf, linktype in read_raw(stream):
        yield decode(buf, ts, point, linktype)


def read_raw(stream: BinaryIO) -> Iterator[tuple[float, bytes, int]]:
    """(timestamp, frame bytes, link type) of each record of a pcap stream."""
    try:
        reader = dpkt.pcap.Reader(stream)
    except (ValueError, dpkt.NeedData, dpkt.UnpackError):
        return
    linktype = reader.datalink()
    try:
        for ts, buf in reader:
            yield float(ts), buf, linktype
    except (dpkt.NeedData, dpkt.UnpackError, struct.error):
        return      # the last record was cut short by the stop


def read_pcap(path: Path | str, point: str = "") -> list[Packet]:
    with open(path, "rb") as f:
        return list(read_stream(f, point))


def merge(*streams: Iterable[Packet]) -> list[Packet]:
    """Packets of several captures in one timeline (each stream is in time order already)."""
    return list(heapq.merge(*streams, key=lambda p: p.ts))


def merge_pcaps(parts: list[Path], out: BinaryIO, count: int | None = None,
                snaplen: int = 262144) -> int:
    """Write the records of PARTS, in time order, to one pcap (the first part's link type);
    at most COUNT of them. Returns how many were written."""
    opened = [open(p, "rb") for p in parts if Path(p).exists()]
    try:
        raws = [read_raw(f) for f in opened]
        firsts = [next(r, None) for r in raws]
        linktype = next((f[2] for f in firsts if f), DLT_EN10MB)
        streams = [_chain(first, rest) for first, rest in zip(firsts, raws) if first]
        writer = dpkt.pcap.Writer(out, snaplen=snaplen, linktype=linktype)
        n = 0
        for ts, buf, _ in heapq.merge(*streams, key=lambda r: r[0]):
            if count and n >= count:
                break
            writer.writepkt(buf, ts)
            n += 1
        return n
    finally:
        for f in opened:
            f.close()


def _chain(first, rest):
    yield first
    yield from rest


# --------------------------------------------------------------------------- summaries

def summary(p: Packet) -> str:
    """One line a person reads, like `tcpdump -e -nn` prints it (with a tunnel's inner frame
    after " | ")."""
    head = f"{p.src_mac or '?'} > {p.dst_mac or '?'}"
    tags = "".join(f", vlan {v}" for v in p.vlans)
    return f"{head}{tags}, length {p.length}: {_network_summary(p)}"


def _network_summary(p: Packet) -> str:
    if p.arp_op is not None:
        if p.arp_op == 1:
            return f"ARP, Request who-has {p.arp_tpa} tell {p.arp_spa}"
        if p.arp_op == 2:
            return f"ARP, Reply {p.arp_spa} is-at {p.arp_sha}"
        return f"ARP, op {p.arp_op} {p.arp_spa} > {p.arp_tpa}"
    if p.ip_src is None:
        name = ETHERTYPE_NAMES.get(p.ethertype or 0, f"ethertype 0x{p.ethertype or 0:04x}")
        return name
    return _ip_summary(p)


def _ip_summary(p: Packet) -> str:
    if p.icmp_type is not None:
        what = ICMP_NAMES.get(p.icmp_type, f"type {p.icmp_type}")
        if p.icmp_id is not None:
            what += f", id {p.icmp_id}, seq {p.icmp_seq}"
        elif p.icmp_code:
            what += f", code {p.icmp_code}"
        return f"{p.ip_src} > {p.ip_dst}: ICMP {what}"
    if p.tunnel == "gre":
        key = f", key=0x{p.tunnel_id:x}" if p.tunnel_id is not None else ""
        inner = f" | {summary(p.inner)}" if p.inner else ""
        return f"{p.ip_src} > {p.ip_dst}: GRE{key}{inner}"
    if p.sport is not None:
        pair = f"{p.ip_src}.{p.sport} > {p.ip_dst}.{p.dport}"
        if p.tcp_flags is not None:
            return f"{pair}: Flags [{tcp_flags_text(p.tcp_flags)}]"
        if p.tunnel == "vxlan":
            return f"{pair}: VXLAN, vni {p.tunnel_id} | {summary(p.inner)}" if p.inner else f"{pair}: VXLAN"
        return f"{pair}: UDP"
    return f"{p.ip_src} > {p.ip_dst}: ip-proto-{p.ip_proto}"


def tcp_flags_text(flags: int) -> str:
    return "".join(letter for bit, letter in TCP_FLAG_LETTERS if flags & bit) or "none"


# --------------------------------------------------------------------------- matching

@dataclass(frozen=True)
class Probe:
    """What only a probe's packets carry. Its ICMP echo id or its port pair, as it leaves the
    source; and a TOKEN in its payload (ping's -p pattern, the TCP probe's first bytes, each
    UDP datagram), which survives the router's SNAT --random-fully that rewrites ids and ports."""
    proto: str                       # icmp | tcp | udp
    icmp_id: int | None = None
    sport: int | None = None         # the client's port
    dport: int | None = None         # the server's port
    token: bytes = b""

    def describe(self) -> str:
        if self.proto == "icmp":
            return f"ICMP echo id {self.icmp_id}"
        return f"{self.proto.upper()} port {self.sport} <-> {self.dport}"


Flow = tuple[str, int, str, int]     # (source address, port, destination address, port)


def learn_flows(frames: Iterable[Packet], probe: Probe) -> frozenset[Flow]:
    """The TCP/UDP flows that carried the probe's token in these frames: after NAT, the probe's
    segments are recognised by the ports its token-carrying segment had at this point."""
    flows = set()
    for frame in frames:
        for layer in frame.layers():
            if probe.token and layer.sport is not None and probe.token in layer.payload:
                flows.add((layer.ip_src, layer.sport, layer.ip_dst, layer.dport))
    return frozenset(flows)


def is_probe(p: Packet, probe: Probe, src: str, dst: str, both_ways: bool = True,
             flows: frozenset[Flow] = frozenset()) -> bool:
    """Is this layer one of the probe's own packets from SRC to DST (or its answers back,
    with BOTH_WAYS)? Compared exactly: addresses, then the token, echo id or port pair
    (or a flow learned from the token, see learn_flows)."""
    forward = (p.ip_src, p.ip_dst) == (src, dst)
    if not forward and (not both_ways or (p.ip_src, p.ip_dst) != (dst, src)):
        return False
    if probe.proto == "icmp":
        if p.icmp_type != (ICMP_ECHO_REQUEST if forward else ICMP_ECHO_REPLY):
            return False
        return probe.token in p.payload if probe.token else p.icmp_id == probe.icmp_id
    proto = dpkt.ip.IP_PROTO_TCP if probe.proto == "tcp" else dpkt.ip.IP_PROTO_UDP
    if p.ip_proto != proto or p.sport is None or p.tunnel is not None:
        return False
    ports = (probe.sport, probe.dport) if forward else (probe.dport, probe.sport)
    flow = (p.ip_src, p.sport, p.ip_dst, p.dport)
    back = (p.ip_dst, p.dport, p.ip_src, p.sport)
    return (p.sport, p.dport) == ports or flow in flows or back in flows


def is_arp_for(p: Packet, src: str, dst: str) -> bool:
    """SRC asking for DST (who-has DST tell SRC), or DST's answer to SRC."""
    if p.arp_op == 1:
        return (p.arp_spa, p.arp_tpa) == (src, dst)
    if p.arp_op == 2:
        return (p.arp_spa, p.arp_tpa) == (dst, src)
    return False


def find_layer(p: Packet, want) -> tuple[Packet, Packet | None] | None:
    """The first layer of P (outermost first) for which WANT(layer) holds, with the layer
    that carries it (None when it is the frame itself)."""
    outer = None
    for layer in p.layers():
        if want(layer):
            return layer, outer
        outer = layer
    return None


def segment(layer: Packet, carrier: Packet | None) -> str:
    """How a matched layer travelled: in a tunnel (the carrier's VNI or key), or with the
    frame's own tags."""
    if carrier is not None and carrier.tunnel == "vxlan":
        return f"VNI {carrier.tunnel_id}"
    if carrier is not None and carrier.tunnel == "gre":
        return f"GRE key {carrier.tunnel_id}" if carrier.tunnel_id is not None else "GRE without key"
    if not layer.vlans:
        return "untagged"
    if len(layer.vlans) == 1:
        return f"VLAN {layer.vlans[0]}"
    return f"VLAN {layer.vlans[0]} (inner {', '.join(map(str, layer.vlans[1:]))})"
