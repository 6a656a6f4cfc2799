"""Make the pcaps and tcpdump reports the unit tests read (see README.md in this directory).

    python tests/data/record.py craft    # the frames no scenario makes, built with dpkt
    flock /tmp/nlab-integration.lock python tests/data/record.py record   # root: real labs

`craft` is deterministic (fixed addresses, ids and timestamps). `record` brings classic-vlan,
classic-vxlan and classic-gre up one after the other, captures a ping with a known ICMP id
and payload pattern where the scenario's checks look (the VLAN wire, the tunnel underlay,
the external host behind the router's SNAT), keeps tcpdump's own exit report next to each
pcap, and brings each lab down again. It also records tcpdump's report of a capture that
lost packets (drops.stderr).
"""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import dpkt

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
T0 = 1_700_000_000.0
VM1_MAC, VM2_MAC = bytes.fromhex("fa163e000001"), bytes.fromhex("fa163e000002")
ROUTER_MAC = bytes.fromhex("fa163e0000fe")
VM1, VM2, ROUTER = "192.168.1.11", "192.168.1.12", "192.168.1.1"
PROBE_ID = 0x4242


# --------------------------------------------------------------------------- crafting

def _a(ip: str) -> bytes:
    return socket.inet_aton(ip)


def arp(op: int, sha: bytes, spa: str, tpa: str, tha: bytes = b"\0" * 6) -> dpkt.arp.ARP:
    return dpkt.arp.ARP(op=op, sha=sha, spa=_a(spa), tha=tha, tpa=_a(tpa))


def eth(src: bytes, dst: bytes, payload, etype: int, vlans: tuple[int, ...] = ()) -> bytes:
    """An Ethernet frame with VLAN tags outer to inner (0x88a8 outside when stacked)."""
    body = bytes(payload)
    for i, vid in reversed(list(enumerate(vlans))):
        body = struct.pack("!HH", vid, etype) + body
        etype = 0x88A8 if i == 0 and len(vlans) > 1 else 0x8100
    return dst + src + struct.pack("!H", etype) + body


def ipv4(src: str, dst: str, proto: int, payload) -> dpkt.ip.IP:
    ip = dpkt.ip.IP(src=_a(src), dst=_a(dst), p=proto, ttl=64, id=1, data=payload)
    ip.len = len(ip)
    return ip


def echo(src: str, dst: str, icmp_id: int, seq: int, reply: bool = False) -> dpkt.ip.IP:
    icmp = dpkt.icmp.ICMP(type=0 if reply else 8, code=0,
                          data=dpkt.icmp.ICMP.Echo(id=icmp_id, seq=seq, data=b"x" * 56))
    return ipv4(src, dst, dpkt.ip.IP_PROTO_ICMP, icmp)


def unreachable(src: str, dst: str, original: dpkt.ip.IP) -> dpkt.ip.IP:
    icmp = dpkt.icmp.ICMP(type=3, code=3, data=dpkt.icmp.ICMP.Unreach(data=bytes(original)[:28]))
    return ipv4(src, dst, dpkt.ip.IP_PROTO_ICMP, icmp)


def vxlan(outer_src: str, outer_dst: str, vni: int, inner: bytes) -> dpkt.ip.IP:
    header = struct.pack("!B3xI", 0x08, vni << 8)
    udp = dpkt.udp.UDP(sport=50000, dport=4789, data=header + inner)
    udp.ulen = len(udp)
    return ipv4(outer_src, outer_dst, dpkt.ip.IP_PROTO_UDP, udp)


def gre(outer_src: str, outer_dst: str, key: int, inner: bytes) -> dpkt.ip.IP:
    body = struct.pack("!HHI", dpkt.gre.GRE_KP, 0x6558, key) + inner
    return ipv4(outer_src, outer_dst, dpkt.ip.IP_PROTO_GRE, body)


def write(name: str, frames: list[bytes]) -> None:
    with open(HERE / name, "wb") as f:
        w = dpkt.pcap.Writer(f, snaplen=262144)
        for i, frame in enumerate(frames):
            w.writepkt(frame, T0 + i * 0.001)
    print(f"wrote {name}: {len(frames)} frames")


def craft() -> None:
    bcast = b"\xff" * 6
    write("arp-prefix.pcap", [
        # vm1 (.11) asks for vm2; a search for ARP from the router (.1) must not find it
        eth(VM1_MAC, bcast, arp(1, VM1_MAC, VM1, VM2), 0x0806, (101,)),
        eth(VM2_MAC, VM1_MAC, arp(2, VM2_MAC, VM2, VM1, VM1_MAC), 0x0806, (101,)),
        # the router asks for .12 too: the one request from .1
        eth(ROUTER_MAC, bcast, arp(1, ROUTER_MAC, ROUTER, VM2), 0x0806, (101,)),
    ])
    probe = echo(VM1, VM2, PROBE_ID, 1)
    write("unrelated-icmp.pcap", [
        eth(VM1_MAC, VM2_MAC, echo(VM1, VM2, 0x1111, 1), 0x0800),          # someone else's ping
        eth(VM2_MAC, VM1_MAC, unreachable(VM2, VM1, probe), 0x0800),        # an error about ours
        eth(VM1_MAC, VM2_MAC, echo(VM1, VM2, PROBE_ID, 1), 0x0800),         # the probe
        eth(VM2_MAC, VM1_MAC, echo(VM2, VM1, PROBE_ID, 1, reply=True), 0x0800),
    ])
    write("qinq.pcap", [
        eth(VM1_MAC, VM2_MAC, echo(VM1, VM2, PROBE_ID, 1), 0x0800, (200, 101)),
        eth(VM1_MAC, VM2_MAC, echo(VM1, VM2, PROBE_ID, 2), 0x0800, (300, 200, 101)),
    ])
    tagged_inner = eth(VM1_MAC, VM2_MAC, echo(VM1, VM2, PROBE_ID, 1), 0x0800, (5,))
    plain_inner = eth(VM1_MAC, VM2_MAC, echo(VM1, VM2, PROBE_ID, 2), 0x0800)
    node1, node2 = bytes.fromhex("02000000000c"), bytes.fromhex("02000000000d")
    write("tunnel-inner.pcap", [
        eth(node1, node2, vxlan("198.51.100.12", "198.51.100.13", 1001, tagged_inner), 0x0800),
        eth(node1, node2, gre("198.51.100.12", "198.51.100.13", 7, plain_inner), 0x0800, (44,)),
    ])


# --------------------------------------------------------------------------- recording

TOKEN = b"nlab-probe-token"      # ping -p: what identifies the probe after SNAT rewrote its id
RECORDINGS = {  # lab -> [(pcap, where: a wire's port from a node, or an endpoint's eth0, ping from, to)]
    "classic-vlan": [("vlan-ping.pcap", ("wire", "physnet1", "compute1"), "vm1", VM2),
                     ("snat-ping.pcap", ("eth0", "ext1"), "vm2", "203.0.113.50")],
    "classic-vxlan": [("vxlan-ping.pcap", ("wire", None, "compute1"), "vm1", VM2)],
    "classic-gre": [("gre-ping.pcap", ("wire", None, "compute1"), "vm1", VM2)],
}


def _lab(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lab.cli", *args], cwd=REPO, check=check,
                          capture_output=True, text=True, timeout=180)


def _where(plan, where) -> tuple[str, str]:
    """(netns, interface) of a capture point."""
    if where[0] == "eth0":
        return plan.targets()[where[1]][1], "eth0"
    _, wire, member = where
    wire_plan = plan.wire(wire or plan.node(member).tunnel.wire)
    return wire_plan.netns, next(m.wire_ifname for m in wire_plan.members if m.name == member)


def record_ping(name: str, plan, out: str, where, source: str, destination: str) -> None:
    netns, iface = _where(plan, where)
    tcpdump = subprocess.Popen(["ip", "netns", "exec", netns, "tcpdump", "-i", iface, "-Q", "in", "-nn", "-U",
                                "-s", "256", "-w", str(HERE / out)], stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)
        _lab("exec", name, source, "--", "ip", "neigh", "flush", "dev", "eth0")
        _lab("exec", name, source, "--", "ping", "-e", str(PROBE_ID), "-p", TOKEN.hex(), "-c", "2",
             "-i", "0.2", "-W", "1", "-n", destination)
        time.sleep(0.5)
    finally:
        tcpdump.send_signal(2)
        _, err = tcpdump.communicate(timeout=10)
    (HERE / out.replace(".pcap", ".stderr")).write_text(err)
    print(f"recorded {out}: {err.strip().splitlines()[-3:]}")


def record_lab(name: str) -> None:
    from lab.runtime import lifecycle
    _lab("up", name)
    try:
        plan = lifecycle.load_state(name).plan
        for out, where, source, destination in RECORDINGS[name]:
            record_ping(name, plan, out, where, source, destination)
    finally:
        _lab("down", name, check=False)


def record_drops() -> None:
    """tcpdump's report of a capture that lost packets: a flood into a capture nobody reads
    (its pipe fills, the kernel's buffer overflows), between two veths of a throwaway
    namespace."""
    ns = "nlab.record-drops"
    run = lambda *a: subprocess.run(["ip", "netns", "exec", ns, *a], check=True)  # noqa: E731
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        run("ip", "link", "set", "lo", "up")
        tcpdump = subprocess.Popen(["ip", "netns", "exec", ns, "tcpdump", "-i", "lo", "-B", "32", "-nn",
                                    "-U", "-w", "-"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(1.0)
        run("ping", "-f", "-c", "20000", "-s", "1400", "-q", "127.0.0.1")
        drain = threading.Thread(target=tcpdump.stdout.read, daemon=True)   # unblock it now
        drain.start()
        tcpdump.send_signal(2)
        err = tcpdump.stderr.read().decode()
        tcpdump.wait(timeout=10)
        drain.join(timeout=5)
        (HERE / "drops.stderr").write_text(err)
        print(f"recorded drops.stderr: {err.strip().splitlines()[-3:]}")
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


def main(argv: list[str]) -> int:
    what = argv[1] if len(argv) > 1 else ""
    if what == "craft":
        craft()
    elif what == "record":
        sys.path.insert(0, str(REPO))
        for name in RECORDINGS:
            record_lab(name)
        record_drops()
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
