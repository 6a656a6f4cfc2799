"""Scenario checks against a live lab: real probes (ping, a TCP transfer) while tcpdump
watches the places a path assertion names. Every verdict comes with the packets that prove it.

Capture points: a physical network is watched on each node's port of the wire's bridge
(frames *entering* the wire from that node, so each frame counts once and the sender is
known); an instance on its eth0; a node on its NICs.

Verdicts are judged on decoded packets (lab/tools/packets.py, from tcpdump's pcap stream, see
lab/tools/capture.py): the probe's packets are the ones carrying its echo id, port pair or
payload token, between exactly the addresses asked for. A path assertion is PASS, FAIL, or
UNPROVEN: nothing seen where a capture did not start or lost packets proves no absence.
"""

from __future__ import annotations

import dataclasses
import json
import random
import re
import secrets
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from lab.budget import budget
from lab.runtime import gateway
from lab.core.plan import Plan
from lab.core.scenario import Check, PathAssertion, Scenario
from lab.tools import packets, rules
from lab.tools.capture import LISTEN_TIMEOUT, CaptureError, Tcpdump as Capture, read_until
from lab.tools.packets import Packet, Probe

__all__ = ["Capture", "CaptureError", "Result", "judge", "run_check", "run_checks", "table"]

PASS, FAIL, UNPROVEN = "ok", "FAIL", "UNPROVEN"


@dataclass
class Result:
    check: Check
    expected: str
    seen: str
    passed: bool
    evidence: list[str]
    unproven: bool = False      # failed because a capture cannot prove an absence

    @property
    def status(self) -> str:
        return "passed" if self.passed else "unproven" if self.unproven else "failed"

    def to_json(self) -> dict:
        c = self.check
        return {"name": c.name, "from": c.source, "to": c.destination,
                "proto": c.proto if c.port is None else f"{c.proto}:{c.port}",
                "expected": self.expected, "seen": self.seen, "passed": self.passed,
                "status": self.status, "evidence": self.evidence}


# --------------------------------------------------------------------------- matching

def wanted(a: PathAssertion, probe: Probe, src: str, dst: str,
           flows: frozenset[packets.Flow] = frozenset()) -> Callable[[Packet], bool]:
    """The test a frame's layer must pass to be one of the packets assertion A looks for."""
    if a.packets == "arp":
        return lambda layer: packets.is_arp_for(layer, src, dst)
    return lambda layer: packets.is_probe(layer, probe, src, dst, flows=flows)


def with_mac(plan: Plan, a: PathAssertion) -> PathAssertion:
    """A path assertion whose source_mac (dvr:<node>, gateway:<network>) is a MAC."""
    return dataclasses.replace(a, source_mac=plan.mac_named(a.source_mac)) if a.source_mac else a


def segment_matches(a: PathAssertion, frame: Packet, carrier: Packet | None) -> bool:
    """Did the matched packet travel in the segment A names? A VLAN is the outer tag of the
    frame on the wire; a VNI or GRE key is the tunnel that carries the matched frame."""
    if a.vlan is not None:
        return carrier is None and frame.vlans[:1] == (a.vlan,)
    if a.vni is not None:
        return carrier is not None and carrier.tunnel == "vxlan" and carrier.tunnel_id == a.vni
    if a.key is not None:
        return carrier is not None and carrier.tunnel == "gre" and carrier.tunnel_id == a.key
    return True


def _wanted_segment(a: PathAssertion) -> str:
    return (f"VLAN {a.vlan}" if a.vlan is not None else f"VNI {a.vni}" if a.vni is not None
            else f"GRE key {a.key}")


def _evidence(label: str, frame: Packet) -> str:
    return f"[{label}] {packets.summary(frame)}"


@dataclass(frozen=True)
class Hit:
    label: str
    frame: Packet              # the frame as captured
    layer: Packet              # the probe's own packet in it (the frame, or a tunnelled one)
    carrier: Packet | None     # the frame that tunnels LAYER (None: not tunnelled)


def hits_in(captures: list[Capture], a: PathAssertion, probe: Probe, src: str, dst: str) -> list[Hit]:
    """Every frame of these captures that is (or tunnels) a packet assertion A looks for."""
    out = []
    for cap in captures:
        want = wanted(a, probe, src, dst, packets.learn_flows(cap.packets, probe))
        for frame in cap.packets:
            found = packets.find_layer(frame, want)
            if found and (a.source_mac is None or found[0].src_mac == a.source_mac):
                out.append(Hit(cap.label, frame, found[0], found[1]))
    return out


def judge(a: PathAssertion, captures: list[Capture], src: str, dst: str, probe: Probe) -> tuple[str, str]:
    """(PASS | FAIL | UNPROVEN, the evidence line) of one path assertion."""
    src, dst = a.source or src, a.destination or dst
    hits = hits_in(captures, a, probe, src, dst)
    what = a.describe()
    where = ", ".join(c.label for c in captures)
    problems = [f"{c.label}: {p}" for c in captures if (p := c.problem())]
    doubt = f"; cannot be sure: {'; '.join(problems)}" if problems else ""
    if a.kind in ("crosses", "reaches", "passes"):
        good = [h for h in hits if segment_matches(a, h.frame, h.carrier)]
        if good:
            return PASS, f"{what}: {len(good)} seen, e.g. {_evidence(good[0].label, good[0].frame)}"
        if hits:  # seen, but not in the segment asked for
            seen = sorted({packets.segment(h.layer, h.carrier) for h in hits})
            return FAIL, (f"{what}: none with {_wanted_segment(a)}; {len(hits)} seen with "
                          f"{', '.join(seen)}, e.g. {_evidence(hits[0].label, hits[0].frame)}")
        return (UNPROVEN if problems else FAIL), f"{what}: none seen on {where}{doubt}"
    if hits:
        return FAIL, f"{what}: {len(hits)} seen, e.g. {_evidence(hits[0].label, hits[0].frame)}"
    if problems:
        return UNPROVEN, f"{what}: not proven, none seen on {where}{doubt}"
    total = sum(len(c.packets) for c in captures)
    return PASS, f"{what}: none of them among the {total} frames captured on {where}"


# --------------------------------------------------------------------------- capture points

def capture_points(plan: Plan, a: PathAssertion) -> list[Capture]:
    targets = plan.targets()
    kind, ns = targets.get(a.target, ("wire", ""))
    routers = plan.router_instances_of(a.target) if a.kind not in ("crosses", "never_on") else ()
    if routers:
        # a router (every port of each of its instances; legacy: one) or one router instance
        return [Capture(f"{r.name} {p.ns_dev}", r.netns, p.ns_dev) for r in routers for p in r.ports]
    if a.kind in ("crosses", "never_on") or kind == "wire":
        wire = plan.wire(a.target)
        return [Capture(f"{wire.name} from {m.name}", wire.netns, m.wire_ifname) for m in wire.members]
    if kind in ("instance", "external-host"):
        return [Capture(f"{a.target} eth0", ns, "eth0")]
    if kind == "fip":       # DVR: a node's fip- namespace, its fg- and every fpr-
        fip = next(f for f in plan.fip_namespaces if f.name == a.target)
        return [Capture(f"{fip.name} {dev}", ns, dev) for dev in (fip.gateway.ns_dev, *(x.fpr_dev for x in fip.links))]
    if kind == "dhcp":
        dhcp = next(d for d in plan.dhcp_servers if d.name == a.target)
        return [Capture(f"{dhcp.name} {dhcp.port.ns_dev}", ns, dhcp.port.ns_dev)]
    node = plan.node(a.target)
    return [Capture(f"{node.name} {nic}", node.netns, nic) for nic in node.nics]


# --------------------------------------------------------------------------- probes

def endpoint_netns(plan: Plan, name: str) -> str:
    return plan.targets()[name][1]


def server_for(plan: Plan, destination: str) -> str:
    """Where a TCP probe server runs for a destination: the instance or external host itself,
    or the instance behind a floating IP."""
    if destination in plan.targets():
        return endpoint_netns(plan, destination)
    for p in plan.ports:
        if destination in (p.ip, p.floating_ip):
            return p.netns
    for h in plan.external_hosts:
        if destination == h.ip:
            return h.netns
    raise CaptureError(f"no instance or external host answers at {destination}")


def new_probe(proto: str, port: int | None) -> Probe:
    """A probe identity no other traffic shares: a random ICMP echo id, or a random client
    port below the kernel's ephemeral range (32768-60999), so no other connection has it."""
    token = secrets.token_bytes(16)
    if proto == "icmp":
        return Probe("icmp", icmp_id=random.randint(0x1000, 0xFFFE), token=token)
    return Probe(proto, sport=random.randint(20000, 32767), dport=port, token=token)


def ping_argv(dst_ip: str, count: int, probe: Probe, wait: int = 1) -> list[str]:
    # iputils ping: -e the echo identifier (a raw socket; we are root), -p 16 bytes that fill
    # the payload after its timestamp (what still identifies the probe after SNAT)
    return ["ping", "-e", str(probe.icmp_id), "-p", probe.token.hex(), "-c", str(count), "-i", "0.2",
            "-W", str(wait), "-n", dst_ip]


def ping_result(returncode: int, stdout: str, count: int) -> tuple[bool, str]:
    m = re.search(r"(\d+) received", stdout)
    received = int(m.group(1)) if m else 0
    reached = returncode == 0 and received > 0
    return reached, f"{'reached' if reached else 'no reply'} ({received}/{count} echo replies)"


def probe_icmp(plan: Plan, c: Check, dst_ip: str, probe: Probe) -> tuple[bool, str]:
    count = 3 if c.expect == "reach" else 2
    wait = max(1, round(budget(1))) if c.expect == "reach" else 1   # a reply may be slow, never late
    out = gateway.run(ping_argv(dst_ip, count, probe, wait), netns=endpoint_netns(plan, c.source),
                      check=False, timeout=15)
    return ping_result(out.returncode, out.stdout, count)


def probe_tcp(plan: Plan, c: Check, dst_ip: str, probe: Probe) -> tuple[bool, str]:
    src_netns, dst_netns = endpoint_netns(plan, c.source), server_for(plan, c.destination)
    timeout = budget(5.0) if c.expect == "reach" else 2.0
    server = gateway.spawn([sys.executable, "-m", "lab.tools.tcpprobe", "serve", "--port", str(probe.dport),
                            "--timeout", str(timeout + budget(5))], netns=dst_netns)
    try:
        ready = read_until(server.stdout.fileno(), "listening", budget(LISTEN_TIMEOUT))
        if "listening" not in ready:
            err = server.stderr.read() if server.poll() is not None else ""
            raise CaptureError(f"TCP probe server in {dst_netns} did not start: {err.strip() or ready}")
        out = gateway.run([sys.executable, "-m", "lab.tools.tcpprobe", "send", "--host", dst_ip, "--port",
                           str(probe.dport), "--sport", str(probe.sport), "--token", probe.token.hex(),
                           "--timeout", str(timeout)],
                          netns=src_netns, check=False, timeout=timeout + 10)
    finally:
        _end(server)
    return tcp_result(out.stdout, out.stderr)


def tcp_result(stdout: str, stderr: str) -> tuple[bool, str]:
    try:
        result = json.loads(stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return False, f"probe client failed: {stderr.strip()[-300:]}"
    if result.get("ok"):
        return True, (f"reached: {result['bytes']} bytes echoed intact, MSS {result.get('mss')}, "
                      f"{result.get('seconds')} s")
    return False, f"no connection ({result.get('error', 'unknown error')})"


def _end(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=3)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    for stream in (proc.stdout, proc.stderr):
        stream.close()


# --------------------------------------------------------------------------- running

def check_lease(plan: Plan, c: Check) -> Result:
    """The instance obtained its lease: its client's DHCPACK, eth0 and dnsmasq's lease file
    agree (lab/tools/leases.py)."""
    from lab.tools import leases
    port = plan.port(c.source)
    passed, seen, evidence = leases.prove(plan, c.source)
    return Result(c, f"lease {port.ip}/{port.prefixlen} for {port.mac}", seen, passed, evidence)


def run_check(plan: Plan, c: Check) -> Result:
    if c.proto == "lease":
        return check_lease(plan, c)
    if c.proto == "metadata":
        from lab.tools import metadata_check
        return metadata_check.run(plan, c)
    src_ip = plan.endpoint_ip(c.source)
    dst_ip = plan.endpoint_ip(c.destination) or c.destination
    probe = new_probe(c.proto, c.port)
    # start cold: the probe's ARP is part of the path the assertions look at
    gateway.run(["ip", "neigh", "flush", "dev", "eth0"], netns=endpoint_netns(plan, c.source), check=False)
    captures_by_assertion = [(with_mac(plan, a), capture_points(plan, a)) for a in c.path]
    started: list[Capture] = []
    try:
        for _, caps in captures_by_assertion:
            for cap in caps:
                started.append(cap)
                cap.start()          # one that does not start says so in its verdict
        send = probe_icmp if c.proto == "icmp" else probe_tcp
        counted = rules.Counted(plan, c.source, c.destination)      # firewall rule counters, before
        reached, seen = send(plan, c, dst_ip, probe)
        for cap in started:
            if cap.error is None:
                cap.settle()
    finally:
        for cap in started:
            cap.stop()
    judged = [judge(a, caps, src_ip, dst_ip, probe) for a, caps in captures_by_assertion]
    result = result_of(c, dst_ip, reached, seen, judged)
    result.evidence += counted.moved()      # which rule accepted or dropped it (OVS firewall)
    return result


def result_of(c: Check, dst_ip: str, reached: bool, seen: str, judged: list[tuple[str, str]]) -> Result:
    """The check's result from what the probe saw and each path assertion's verdict."""
    expected_reach = c.expect == "reach"
    evidence = [f"{status:<5}{text}" if status != UNPROVEN else f"{status} {text}" for status, text in judged]
    passed = reached == expected_reach and all(status == PASS for status, _ in judged)
    unproven = not passed and reached == expected_reach and any(s == UNPROVEN for s, _ in judged) \
        and all(s != FAIL for s, _ in judged)
    what = f"{c.proto}" + (f":{c.port}" if c.port else "")
    expected = f"{'reach' if expected_reach else 'blocked'} ({what} {c.source} -> {dst_ip})"
    return Result(c, expected, seen, passed, evidence, unproven)


def run_checks(plan: Plan, scenario: Scenario, progress: Callable[[str], None] | None = None) -> list[Result]:
    gateway.require("tcpdump", "ping")
    results = []
    for c in scenario.checks:
        r = run_check(plan, c)
        if progress:
            progress(f"{_mark(r)}  {c.name}")
        results.append(r)
    return results


def table(results: list[Result]) -> str:
    """check | expected | seen, with each check's evidence on the lines under it."""
    rows = [("check", "expected", "seen")]
    rows += [(f"{_mark(r)} {r.check.name}", r.expected, r.seen) for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    out = ["  ".join(rows[0][j].ljust(widths[j]) for j in range(3)).rstrip(),
           "  ".join("-" * w for w in widths)]
    for r, row in zip(results, rows[1:]):
        out.append("  ".join(row[j].ljust(widths[j]) for j in range(3)).rstrip())
        for line in r.evidence or ["(no path assertion)"]:
            out.append(f"     evidence: {line}")
    return "\n".join(out)


def _mark(r: Result) -> str:
    return "PASS" if r.passed else "UNPROVEN" if r.unproven else "FAIL"
