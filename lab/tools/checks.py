"""Scenario checks against a live lab: real probes (ping, a TCP transfer) while tcpdump
watches the places a path assertion names. Every verdict comes with the packets that prove it.

Capture points: a physical network is watched on each node's port of the wire's bridge
(frames *entering* the wire from that node, so each frame counts once and the sender is
known); an instance on its eth0; a node on its NICs.
"""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from lab.budget import budget
from lab.runtime import gateway
from lab.errors import LabError
from lab.core.plan import Plan
from lab.core.scenario import Check, PathAssertion, Scenario

LISTEN_TIMEOUT = 5.0
QUIET_AFTER = 0.15      # a capture is done when it has been quiet this long after the probe...
SETTLE_LIMIT = 1.5      # ...or after this long at most
POLL_INTERVAL = 0.02
TIMESTAMP = re.compile(r"^\d\d:\d\d:\d\d")


class CaptureError(LabError):
    pass


def read_lines_until(stream, marker: str, timeout: float) -> list[str]:
    """Lines of a child's pipe up to the one holding MARKER, waiting at most TIMEOUT seconds
    in all (a child that prints nothing cannot hang us). Reads the file descriptor itself, so
    no line can hide in a Python buffer while select() waits."""
    fd, text = stream.fileno(), ""
    deadline = time.monotonic() + timeout
    while marker not in text:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        text += chunk.decode(errors="replace")
    return text.splitlines(keepends=True)


@dataclass
class Capture:
    label: str
    netns: str
    iface: str
    inbound: bool = True     # only frames arriving on IFACE (each frame once per wire port)
    proc: subprocess.Popen | None = None
    lines: list[str] = field(default_factory=list)
    last_line_at: float = 0.0
    reader: threading.Thread | None = None

    def start(self) -> None:
        argv = ["tcpdump", "-i", self.iface, "-e", "-nn", "-l", "--immediate-mode", "-s", "256"]
        if self.inbound:
            argv[3:3] = ["-Q", "in"]
        self.proc = gateway.spawn(argv, netns=self.netns)
        # tcpdump says "listening on IFACE" on stderr once its socket is bound
        err = read_lines_until(self.proc.stderr, "listening on", budget(LISTEN_TIMEOUT))
        if not any("listening on" in line for line in err):
            self.stop()
            raise CaptureError(f"tcpdump on {self.iface} in netns {self.netns} did not start: "
                               f"{''.join(err).strip() or 'no output'}")
        self.last_line_at = time.monotonic()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc is not None
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            if self.lines and not TIMESTAMP.match(line):
                # tcpdump prints a tunnel's inner frame on a line of its own: keep them together
                self.lines[-1] += " | " + line.strip()
            else:
                self.lines.append(line)
            self.last_line_at = time.monotonic()

    def settle(self) -> None:
        deadline, quiet = time.monotonic() + budget(SETTLE_LIMIT), budget(QUIET_AFTER)
        while time.monotonic() < deadline and time.monotonic() - self.last_line_at < quiet:
            time.sleep(POLL_INTERVAL)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.reader is not None:
            self.reader.join(timeout=2)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream:
                stream.close()


@dataclass
class Result:
    check: Check
    expected: str
    seen: str
    passed: bool
    evidence: list[str]

    def to_json(self) -> dict:
        c = self.check
        return {"name": c.name, "from": c.source, "to": c.destination,
                "proto": c.proto if c.port is None else f"{c.proto}:{c.port}",
                "expected": self.expected, "seen": self.seen, "passed": self.passed,
                "evidence": self.evidence}


# --------------------------------------------------------------------------- matching

def packet_matches(line: str, src: str, dst: str, packets: str, proto: str) -> bool:
    """Is this tcpdump -e -nn line one of the probe's packets (or its ARP)?"""
    if packets == "arp":
        return f"who-has {dst} tell {src}" in line or f"Reply {dst} is-at" in line
    a, b = re.escape(src), re.escape(dst)
    pair = re.search(rf"(?<![\d.]){a}(?:\.\d+)? > {b}(?:\.\d+)?:", line) or \
        re.search(rf"(?<![\d.]){b}(?:\.\d+)? > {a}(?:\.\d+)?:", line)
    if not pair:
        return False
    return "ICMP" in line if proto == "icmp" else "Flags [" in line


def outer_vlan(line: str) -> int | None:
    m = re.search(r"\bvlan (\d+)\b", line)
    return int(m.group(1)) if m else None


def tunnel_id(line: str) -> tuple[str, int] | None:
    """('vni', N) of a VXLAN frame or ('key', N) of a GRE one, as tcpdump prints them."""
    m = re.search(r"VXLAN, flags \[I\] \(0x08\), vni (\d+)", line)
    if m:
        return ("vni", int(m.group(1)))
    m = re.search(r"GREv0, (?:Flags \[[^]]*\], )?key=0x([0-9a-f]+)", line)
    if m:
        return ("key", int(m.group(1), 16))
    return None


def segment_matches(a: PathAssertion, line: str) -> bool:
    if a.vlan is not None:
        return outer_vlan(line) == a.vlan
    if a.vni is not None:
        return tunnel_id(line) == ("vni", a.vni)
    if a.key is not None:
        return tunnel_id(line) == ("key", a.key)
    return True


def segment_of(line: str) -> str:
    tid = tunnel_id(line)
    if tid:
        return f"{'VNI' if tid[0] == 'vni' else 'GRE key'} {tid[1]}"
    tag = outer_vlan(line)
    return f"VLAN {tag}" if tag else "untagged"


def _short(line: str, limit: int = 220) -> str:
    # drop the timestamp; keep the part that says what the packet is
    text = line.split(" ", 1)[1] if re.match(r"^\d\d:\d\d:\d\d", line) else line
    return text if len(text) <= limit else text[:limit] + "..."


# --------------------------------------------------------------------------- capture points

def capture_points(plan: Plan, a: PathAssertion) -> list[Capture]:
    targets = plan.targets()
    kind, ns = targets.get(a.target, ("wire", ""))
    if a.kind in ("crosses", "never_on") or kind == "wire":
        wire = plan.wire(a.target)
        return [Capture(f"{wire.name} from {m.name}", wire.netns, m.wire_ifname) for m in wire.members]
    if kind in ("instance", "external-host"):
        return [Capture(f"{a.target} eth0", ns, "eth0")]
    if kind == "dhcp":
        dhcp = next(d for d in plan.dhcp_servers if d.name == a.target)
        return [Capture(f"{dhcp.name} {dhcp.port.ns_dev}", ns, dhcp.port.ns_dev)]
    if kind == "router":
        router = plan.router(a.target)
        return [Capture(f"{router.name} {p.ns_dev}", router.netns, p.ns_dev) for p in router.ports]
    node = plan.node(a.target)
    return [Capture(f"{node.name} {nic}", node.netns, nic) for nic in node.nics]


def judge(a: PathAssertion, captures: list[Capture], src: str, dst: str, proto: str) -> tuple[bool, str]:
    src, dst = a.source or src, a.destination or dst
    hits = [(c.label, line) for c in captures for line in c.lines
            if packet_matches(line, src, dst, a.packets, proto)]
    what = a.describe()
    if a.kind in ("crosses", "reaches", "passes"):
        good = [h for h in hits if segment_matches(a, h[1])]
        if good:
            label, line = good[0]
            return True, f"{what}: {len(good)} seen, e.g. [{label}] {_short(line)}"
        if hits:  # seen, but not in the segment asked for
            wanted = (f"VLAN {a.vlan}" if a.vlan is not None else f"VNI {a.vni}" if a.vni is not None
                      else f"GRE key {a.key}")
            seen = sorted({segment_of(line) for _, line in hits})
            label, line = hits[0]
            return False, (f"{what}: none with {wanted}; {len(hits)} seen with "
                           f"{', '.join(seen)}, e.g. [{label}] {_short(line)}")
        return False, f"{what}: none seen on {', '.join(c.label for c in captures)}"
    if not hits:
        return True, f"{what}: none of them among the {sum(len(c.lines) for c in captures)} frames " \
                     f"captured on {', '.join(c.label for c in captures)}"
    label, line = hits[0]
    return False, f"{what}: {len(hits)} seen, e.g. [{label}] {_short(line)}"


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


def probe_icmp(plan: Plan, c: Check, dst_ip: str) -> tuple[bool, str]:
    count = 3 if c.expect == "reach" else 2
    wait = max(1, round(budget(1))) if c.expect == "reach" else 1   # a reply may be slow, never late
    out = gateway.run(["ping", "-c", str(count), "-i", "0.2", "-W", str(wait), "-n", dst_ip],
                      netns=endpoint_netns(plan, c.source), check=False, timeout=15)
    m = re.search(r"(\d+) received", out.stdout)
    received = int(m.group(1)) if m else 0
    reached = out.returncode == 0 and received > 0
    return reached, f"{'reached' if reached else 'no reply'} ({received}/{count} echo replies)"


def probe_tcp(plan: Plan, c: Check, dst_ip: str) -> tuple[bool, str]:
    src_netns, dst_netns = endpoint_netns(plan, c.source), server_for(plan, c.destination)
    timeout = budget(5.0) if c.expect == "reach" else 2.0
    server = gateway.spawn([sys.executable, "-m", "lab.tools.tcpprobe", "serve", "--port", str(c.port),
                            "--timeout", str(timeout + budget(5))], netns=dst_netns)
    try:
        ready = "".join(read_lines_until(server.stdout, "listening", budget(LISTEN_TIMEOUT)))
        if "listening" not in ready:
            err = server.stderr.read() if server.poll() is not None else ""
            raise CaptureError(f"TCP probe server in {dst_netns} did not start: {err.strip() or ready}")
        out = gateway.run([sys.executable, "-m", "lab.tools.tcpprobe", "send", "--host", dst_ip, "--port",
                           str(c.port), "--timeout", str(timeout)], netns=src_netns, check=False,
                          timeout=timeout + 10)
        try:
            result = json.loads(out.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return False, f"probe client failed: {out.stderr.strip()[-300:]}"
    finally:
        if server.poll() is None:
            server.terminate()
        try:
            server.wait(timeout=3)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        for stream in (server.stdout, server.stderr):
            stream.close()
    if result.get("ok"):
        return True, (f"reached: {result['bytes']} bytes echoed intact, MSS {result.get('mss')}, "
                      f"{result.get('seconds')} s")
    return False, f"no connection ({result.get('error', 'unknown error')})"


# --------------------------------------------------------------------------- running

def check_lease(plan: Plan, c: Check) -> Result:
    """The instance holds the address the scenario expects, and dnsmasq's lease file says so."""
    port = plan.port(c.source)
    addrs = gateway.run(["ip", "-4", "-o", "address", "show", "dev", "eth0"], netns=port.netns).stdout
    has = re.findall(r"inet (\d+\.\d+\.\d+\.\d+)/(\d+)", addrs)
    dhcp = next(d for d in plan.dhcp_servers if d.network == port.network)
    try:
        leases = Path(dhcp.dir, "leases").read_text().splitlines()
    except OSError:
        leases = []
    lease = next((line for line in leases if port.mac in line), None)
    evidence = [("ok   " if lease and port.ip in lease else "FAIL ")
                + (f"{dhcp.name} leases file: {lease}" if lease else f"{dhcp.name} has no lease for {port.mac}"),
                ("ok   " if (port.ip, str(port.prefixlen)) in has else "FAIL ")
                + f"{c.source} eth0: {', '.join('/'.join(a) for a in has) or 'no IPv4 address'}"]
    passed = all(e.startswith("ok") for e in evidence)
    seen = f"{'/'.join(has[0]) if has else 'no address'}" + (" leased" if lease else "")
    return Result(c, f"lease {port.ip}/{port.prefixlen} for {port.mac}", seen, passed, evidence)


def run_check(plan: Plan, c: Check) -> Result:
    if c.proto == "lease":
        return check_lease(plan, c)
    src_ip = plan.endpoint_ip(c.source)
    dst_ip = plan.endpoint_ip(c.destination) or c.destination
    # start cold: the probe's ARP is part of the path the assertions look at
    gateway.run(["ip", "neigh", "flush", "dev", "eth0"], netns=endpoint_netns(plan, c.source), check=False)
    captures_by_assertion = [(a, capture_points(plan, a)) for a in c.path]
    started: list[Capture] = []
    try:
        for _, caps in captures_by_assertion:
            for cap in caps:
                cap.start()
                started.append(cap)
        probe = probe_icmp if c.proto == "icmp" else probe_tcp
        reached, seen = probe(plan, c, dst_ip)
        for cap in started:
            cap.settle()
    finally:
        for cap in started:
            cap.stop()
    expected_reach = c.expect == "reach"
    evidence = []
    passed = reached == expected_reach
    for a, caps in captures_by_assertion:
        ok, text = judge(a, caps, src_ip, dst_ip, c.proto)
        evidence.append(("ok   " if ok else "FAIL ") + text)
        passed = passed and ok
    what = f"{c.proto}" + (f":{c.port}" if c.port else "")
    expected = f"{'reach' if expected_reach else 'blocked'} ({what} {c.source} -> {dst_ip})"
    return Result(c, expected, seen, passed, evidence)


def run_checks(plan: Plan, scenario: Scenario, progress: Callable[[str], None] | None = None) -> list[Result]:
    gateway.require("tcpdump", "ping")
    results = []
    for c in scenario.checks:
        r = run_check(plan, c)
        if progress:
            progress(f"{'PASS' if r.passed else 'FAIL'}  {c.name}")
        results.append(r)
    return results


def table(results: list[Result]) -> str:
    """check | expected | seen, with each check's evidence on the lines under it."""
    rows = [("check", "expected", "seen")]
    rows += [(f"{'PASS' if r.passed else 'FAIL'} {r.check.name}", r.expected, r.seen) for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    out = ["  ".join(rows[0][j].ljust(widths[j]) for j in range(3)).rstrip(),
           "  ".join("-" * w for w in widths)]
    for r, row in zip(results, rows[1:]):
        out.append("  ".join(row[j].ljust(widths[j]) for j in range(3)).rstrip())
        for line in r.evidence or ["(no path assertion)"]:
            out.append(f"     evidence: {line}")
    return "\n".join(out)
