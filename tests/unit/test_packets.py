"""Decoding, summaries, merging and matching of packets (lab/tools/packets.py) on the pcaps in
tests/data: recorded from real labs (VLAN wire, SNAT, VXLAN and GRE underlays) and crafted
with dpkt where no scenario makes the frames (ARP prefix ambiguity, QinQ, a tagged frame
inside a tunnel, ICMP that is not the probe)."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import dpkt
import pytest

from lab.tools import packets
from lab.tools.packets import Packet, Probe

DATA = Path(__file__).resolve().parents[1] / "data"
VM1, VM2, ROUTER = "192.168.1.11", "192.168.1.12", "192.168.1.1"
PROBE_ID = 0x4242
TOKEN = b"nlab-probe-token"      # what tests/data/record.py gave ping -p


def read(name: str) -> list[Packet]:
    return packets.read_pcap(DATA / name, name)


# --------------------------------------------------------------------------- recorded frames

def test_vlan_wire_recorded():
    frames = read("vlan-ping.pcap")
    assert [f.vlans for f in frames] == [(101,)] * 3
    arp, req1, req2 = frames
    assert (arp.arp_op, arp.arp_spa, arp.arp_tpa, arp.dst_mac) == (1, VM1, VM2, "ff:ff:ff:ff:ff:ff")
    assert (req1.ip_src, req1.ip_dst, req1.icmp_type, req1.icmp_id, req1.icmp_seq) == (VM1, VM2, 8, PROBE_ID, 1)
    assert req2.icmp_seq == 2 and req1.ts < req2.ts and req1.point == "vlan-ping.pcap"
    assert packets.summary(req1).endswith(
        f"vlan 101, length 102: {VM1} > {VM2}: ICMP echo request, id {PROBE_ID}, seq 1")
    assert packets.summary(arp).endswith(f"ARP, Request who-has {VM2} tell {VM1}")


def test_vxlan_underlay_recorded():
    frames = read("vxlan-ping.pcap")
    assert frames and all(f.tunnel == "vxlan" and f.tunnel_id == 1001 for f in frames)
    outer = frames[0]
    assert (outer.ip_src, outer.ip_dst, outer.dport, outer.vlans) == ("198.51.100.12", "198.51.100.13", 4789, ())
    inner = outer.inner
    assert (inner.ip_src, inner.ip_dst, inner.icmp_id, inner.icmp_type) == (VM1, VM2, PROBE_ID, 8)
    assert inner.src_mac.startswith("fa:16:3e") and TOKEN in inner.payload
    text = packets.summary(outer)
    assert "198.51.100.12." in text and ".4789: VXLAN, vni 1001 | " in text and f"id {PROBE_ID}" in text


def test_gre_underlay_recorded():
    frames = read("gre-ping.pcap")
    assert all(f.tunnel == "gre" and f.tunnel_id == 1 for f in frames)
    kinds = [("arp" if f.inner.arp_op else "icmp") for f in frames]
    assert kinds.count("icmp") == 2 and "arp" in kinds
    echo = next(f for f in frames if f.inner.icmp_type == 8)
    assert echo.inner.icmp_id == PROBE_ID and "GRE, key=0x1 | " in packets.summary(echo)


def test_snat_rewrites_the_echo_id_but_not_the_token():
    """Recorded on ext1 behind router1's SNAT --random-fully: the id is not the probe's any
    more; the payload token still says whose packets these are."""
    echoes = [f for f in read("snat-ping.pcap") if f.icmp_type == 8]
    assert len(echoes) == 2 and all(f.ip_src == "203.0.113.101" for f in echoes)
    assert all(f.icmp_id != PROBE_ID for f in echoes)
    by_id = Probe("icmp", icmp_id=PROBE_ID)
    by_token = Probe("icmp", icmp_id=PROBE_ID, token=TOKEN)
    assert not any(packets.is_probe(f, by_id, "203.0.113.101", "203.0.113.50") for f in echoes)
    assert all(packets.is_probe(f, by_token, "203.0.113.101", "203.0.113.50") for f in echoes)
    other = Probe("icmp", icmp_id=PROBE_ID, token=b"someone-else-xyz")
    assert not any(packets.is_probe(f, other, "203.0.113.101", "203.0.113.50") for f in echoes)


# --------------------------------------------------------------------------- crafted frames

def test_arp_who_has_tell_is_compared_exactly():
    frames = read("arp-prefix.pcap")
    from_vm1 = [f for f in frames if packets.is_arp_for(f, VM1, VM2)]
    from_router = [f for f in frames if packets.is_arp_for(f, ROUTER, VM2)]
    assert [(f.arp_op, f.arp_spa) for f in from_vm1] == [(1, VM1), (2, VM2)]   # request and its reply
    assert [(f.arp_op, f.arp_spa) for f in from_router] == [(1, ROUTER)]      # not "tell 192.168.1.11"
    assert not any(packets.is_arp_for(f, "192.168.1.111", VM2) for f in frames)


def test_every_vlan_tag_outer_to_inner():
    qinq, triple = read("qinq.pcap")
    assert qinq.vlans == (200, 101) and triple.vlans == (300, 200, 101)
    assert qinq.ethertype == triple.ethertype == packets.ETHERTYPE_IPV4
    assert triple.icmp_id == PROBE_ID and triple.icmp_seq == 2
    assert "vlan 300, vlan 200, vlan 101, length" in packets.summary(triple)
    assert packets.segment(qinq, None) == "VLAN 200 (inner 101)"


def test_tunnel_inner_frames_keep_their_own_tags():
    vx, gre = read("tunnel-inner.pcap")
    assert vx.vlans == () and vx.inner.vlans == (5,) and vx.tunnel_id == 1001
    assert gre.vlans == (44,) and gre.inner.vlans == () and gre.tunnel_id == 7
    probe = Probe("icmp", icmp_id=PROBE_ID)
    layer, carrier = packets.find_layer(vx, lambda f: packets.is_probe(f, probe, VM1, VM2))
    assert layer is vx.inner and carrier is vx
    assert packets.segment(layer, carrier) == "VNI 1001"
    layer, carrier = packets.find_layer(gre, lambda f: packets.is_probe(f, probe, VM1, VM2))
    assert packets.segment(layer, carrier) == "GRE key 7"
    assert [len(list(f.layers())) for f in (vx, gre)] == [2, 2]


def test_only_the_probes_own_echoes_match():
    frames = read("unrelated-icmp.pcap")
    probe = Probe("icmp", icmp_id=PROBE_ID)
    mine = [f for f in frames if packets.is_probe(f, probe, VM1, VM2)]
    assert [(f.icmp_type, f.icmp_id) for f in mine] == [(8, PROBE_ID), (0, PROBE_ID)]
    unreachable = frames[1]
    assert unreachable.icmp_type == 3 and unreachable.icmp_code == 3 and unreachable.icmp_id is None
    assert "ICMP destination unreachable, code 3" in packets.summary(unreachable)
    # one way only: the echo request from VM1, not the reply
    assert [f.icmp_type for f in frames if packets.is_probe(f, probe, VM1, VM2, both_ways=False)] == [8]
    # the reverse pair's request is not ours either
    assert not any(packets.is_probe(f, probe, VM2, VM1, both_ways=False) for f in frames)


# --------------------------------------------------------------------------- TCP / UDP

def _tcp(src, sport, dst, dport, flags=dpkt.tcp.TH_ACK, data=b"") -> bytes:
    tcp = dpkt.tcp.TCP(sport=sport, dport=dport, flags=flags, off=5, data=data)
    ip = dpkt.ip.IP(src=bytes(map(int, src.split("."))), dst=bytes(map(int, dst.split("."))),
                    p=dpkt.ip.IP_PROTO_TCP, data=tcp)
    ip.len = len(ip)
    return bytes(dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, type=0x0800, data=ip))


def test_tcp_probe_by_its_port_pair_and_by_the_flow_its_token_rides():
    probe = Probe("tcp", sport=21000, dport=5001, token=TOKEN)
    syn = packets.decode(_tcp(VM1, 21000, VM2, 5001, dpkt.tcp.TH_SYN))
    synack = packets.decode(_tcp(VM2, 5001, VM1, 21000, dpkt.tcp.TH_SYN | dpkt.tcp.TH_ACK))
    other = packets.decode(_tcp(VM1, 21001, VM2, 5001, dpkt.tcp.TH_SYN))
    assert packets.is_probe(syn, probe, VM1, VM2) and packets.is_probe(synack, probe, VM1, VM2)
    assert not packets.is_probe(other, probe, VM1, VM2)
    assert packets.summary(synack).endswith(f"{VM2}.5001 > {VM1}.21000: Flags [S.]")
    # after SNAT the client port is another: the segment with the token teaches the flow
    nat = "203.0.113.101"
    data = packets.decode(_tcp(nat, 40000, "203.0.113.50", 5001, dpkt.tcp.TH_PUSH | dpkt.tcp.TH_ACK,
                               b"\0" * 8 + TOKEN + b"rest"))
    ack = packets.decode(_tcp("203.0.113.50", 5001, nat, 40000))
    flows = packets.learn_flows([data, ack], probe)
    assert flows == {(nat, 40000, "203.0.113.50", 5001)}
    assert not packets.is_probe(ack, probe, nat, "203.0.113.50")
    assert packets.is_probe(ack, probe, nat, "203.0.113.50", flows=flows)
    assert packets.tcp_flags_text(0) == "none"


def test_udp_summary_and_probe():
    udp = dpkt.udp.UDP(sport=20001, dport=53, data=TOKEN)
    udp.ulen = len(udp)
    ip = dpkt.ip.IP(src=b"\x0a\0\0\x01", dst=b"\x0a\0\0\x02", p=dpkt.ip.IP_PROTO_UDP, data=udp)
    ip.len = len(ip)
    p = packets.decode(bytes(dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, data=ip)))
    assert packets.summary(p).endswith("10.0.0.1.20001 > 10.0.0.2.53: UDP")
    assert packets.is_probe(p, Probe("udp", sport=20001, dport=53), "10.0.0.1", "10.0.0.2")
    assert not packets.is_probe(p, Probe("tcp", sport=20001, dport=53), "10.0.0.1", "10.0.0.2")
    assert Probe("udp", sport=1, dport=2).describe() == "UDP port 1 <-> 2"
    assert Probe("icmp", icmp_id=7).describe() == "ICMP echo id 7"


# --------------------------------------------------------------------------- odd input

def test_a_frame_cut_by_the_snap_length_keeps_its_length():
    full = _tcp(VM1, 21000, VM2, 5001, data=b"x" * 1400)
    cut = packets.decode(full[:256])
    assert cut.length == len(full) == 14 + 20 + 20 + 1400 and cut.sport == 21000
    assert packets.summary(cut).startswith(f"02:02:02:02:02:02 > 04:04:04:04:04:04, length {len(full)}: ")
    padded = packets.decode(_tcp(VM1, 1, VM2, 2) + b"\0" * 6)     # Ethernet padding to 60 bytes
    assert padded.length == 60


def test_what_cannot_be_decoded_is_left_empty():
    assert packets.decode(b"\x01\x02") == Packet(length=2)
    short_ip = b"\x04" * 6 + b"\x02" * 6 + b"\x08\x00" + b"\x45\x00"
    p = packets.decode(short_ip)
    assert p.ethertype == 0x0800 and p.ip_src is None
    assert packets.summary(p).endswith("length 16: IPv4")
    ipv6 = packets.decode(b"\x04" * 6 + b"\x02" * 6 + b"\x86\xdd" + b"\0" * 40)
    assert packets.summary(ipv6).endswith("IPv6")


def test_linux_cooked_frames_from_any():
    ip = dpkt.ip.IP(src=b"\x0a\0\0\x01", dst=b"\x0a\0\0\x02", p=dpkt.ip.IP_PROTO_ICMP,
                    data=dpkt.icmp.ICMP(type=8, data=dpkt.icmp.ICMP.Echo(id=9, seq=1)))
    ip.len = len(ip)
    sll = dpkt.sll.SLL(type=4, hrd=1, hlen=6, hdr=b"\x02\x00\x00\x00\x00\x01\0\0", ethtype=0x0800, data=ip)
    p = packets.decode(bytes(sll), linktype=packets.DLT_LINUX_SLL)
    assert (p.src_mac, p.ip_src, p.icmp_id) == ("02:00:00:00:00:01", "10.0.0.1", 9)
    assert packets.decode(b"\0", linktype=packets.DLT_LINUX_SLL).src_mac is None


def test_empty_and_cut_short_streams_end_quietly():
    assert list(packets.read_stream(io.BytesIO(b""))) == []
    data = (DATA / "qinq.pcap").read_bytes()
    assert len(list(packets.read_stream(io.BytesIO(data[:-5])))) == 2     # last record cut: kept short
    assert len(list(packets.read_stream(io.BytesIO(data[:24 + 8])))) == 0  # a record header cut in half


def test_merge_by_timestamp(tmp_path):
    a, b = read("vlan-ping.pcap"), read("arp-prefix.pcap")
    merged = packets.merge(a, b)
    assert [p.ts for p in merged] == sorted(p.ts for p in a + b) and len(merged) == len(a) + len(b)


def test_merge_pcaps_writes_one_time_ordered_file(tmp_path):
    early, late = tmp_path / "early.pcap", tmp_path / "late.pcap"
    for path, times in ((early, (1.0, 3.0)), (late, (2.0, 4.0))):
        with open(path, "wb") as f:
            w = dpkt.pcap.Writer(f)
            for t in times:
                w.writepkt(b"\x04" * 6 + b"\x02" * 6 + b"\x08\x06" + struct.pack("!d", t), t)
    out = io.BytesIO()
    assert packets.merge_pcaps([late, early, tmp_path / "missing.pcap"], out) == 4
    out.seek(0)
    assert [ts for ts, _, _ in packets.read_raw(out)] == [1.0, 2.0, 3.0, 4.0]
    out = io.BytesIO()
    assert packets.merge_pcaps([late, early], out, count=3) == 3
    empty = io.BytesIO()
    assert packets.merge_pcaps([], empty) == 0
    empty.seek(0)
    assert dpkt.pcap.Reader(empty).datalink() == packets.DLT_EN10MB


@pytest.mark.parametrize("op,text", [(1, "Request who-has 10.0.0.2 tell 10.0.0.1"),
                                     (2, "Reply 10.0.0.1 is-at 02:00:00:00:00:01"),
                                     (3, "op 3 10.0.0.1 > 10.0.0.2")])
def test_arp_summaries(op, text):
    p = Packet(arp_op=op, arp_sha="02:00:00:00:00:01", arp_spa="10.0.0.1", arp_tpa="10.0.0.2")
    assert packets.summary(p).endswith(f"ARP, {text}")


def test_other_ip_summaries():
    assert packets.summary(Packet(ip_src="1.1.1.1", ip_dst="2.2.2.2", ip_proto=89)).endswith(
        "1.1.1.1 > 2.2.2.2: ip-proto-89")
    assert packets.summary(Packet(ip_src="1.1.1.1", ip_dst="2.2.2.2", tunnel="gre")).endswith("GRE")
    assert packets.summary(Packet(ip_src="1.1.1.1", ip_dst="2.2.2.2", sport=1, dport=4789,
                                  tunnel="vxlan")).endswith("VXLAN")
    assert packets.segment(Packet(), Packet(tunnel="gre")) == "GRE without key"
    assert packets.segment(Packet(), None) == "untagged"
