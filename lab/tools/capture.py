"""tcpdump as a packet source, and `lab capture`.

`Tcpdump` runs one tcpdump that writes a pcap stream (`-w - -U`) into a pipe; a thread decodes
it with dpkt (lab/tools/packets.py) as it arrives. A capture counts as started only once
tcpdump says it is listening, and on stop tcpdump's own report ("N packets dropped by
kernel") is read: a capture that did not start, lost packets, or ended without its report
cannot prove that something was never there (`problem()` says why).

`lab capture` runs one such tcpdump per interface of a target (every node port of a wire:
frames entering the wire, so each is seen once, labelled with its sender; every NIC of a
node; every port of a router), prints each decoded packet live, or writes one pcap merged by
timestamp with dpkt's writer. (Capturing on the wire's bridge device would miss unicast
between ports, and `-i any` drops the 802.1Q tags.)
"""

from __future__ import annotations

import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable

import dpkt

from lab.errors import LabError, LabStateError
from lab.core.plan import Plan
from lab.budget import budget
from lab.runtime import gateway
from lab.tools import packets

LISTEN_TIMEOUT = 5.0
STOP_TIMEOUT = 3.0
QUIET_AFTER = 0.15      # a capture is done when it has been quiet this long after the probe...
SETTLE_LIMIT = 1.5      # ...or after this long at most
POLL_INTERVAL = 0.02
CHECK_SNAPLEN = 256     # headers of a tunnelled frame fit; payloads are not needed


class CaptureError(LabError):
    pass


# --------------------------------------------------------------------------- tcpdump's words

@dataclass(frozen=True)
class Report:
    """What tcpdump says about a capture when it stops (None: it did not say)."""
    captured: int | None = None
    received: int | None = None        # by filter
    dropped: int | None = None         # by kernel: packets the capture never saw
    dropped_by_interface: int | None = None


REPORT_LINES = {
    "captured": re.compile(r"^(\d+) packets? captured", re.M),
    "received": re.compile(r"^(\d+) packets? received by filter", re.M),
    "dropped": re.compile(r"^(\d+) packets? dropped by kernel", re.M),
    "dropped_by_interface": re.compile(r"^(\d+) packets? dropped by interface", re.M),
}


def parse_report(stderr: str) -> Report | None:
    """tcpdump's exit report from its stderr; None when it printed none (killed, crashed)."""
    values = {k: (int(m.group(1)) if (m := rx.search(stderr)) else None) for k, rx in REPORT_LINES.items()}
    if values["captured"] is None and values["dropped"] is None:
        return None
    return Report(**values)


def capture_problem(error: str | None, report: Report | None, decoded: int) -> str | None:
    """Why this capture cannot prove an absence, or None when it can."""
    if error is not None:
        return f"the capture did not start ({error})"
    if report is None:
        return "tcpdump ended without its packet report"
    if report.dropped:
        return f"tcpdump reports {report.dropped} packets dropped by kernel"
    if report.captured is not None and decoded < report.captured:
        return f"tcpdump captured {report.captured} packets but {decoded} could be read"
    return None


def tcpdump_argv(iface: str, inbound: bool = False, count: int | None = None, snaplen: int | None = None,
                 expression: list[str] | tuple[str, ...] = ()) -> list[str]:
    """tcpdump writing a pcap stream to stdout, each packet flushed as it comes."""
    argv = ["tcpdump", "-i", iface, "-nn", "-U", "-w", "-", "--immediate-mode"]
    if inbound:
        argv += ["-Q", "in"]
    if snaplen:
        argv += ["-s", str(snaplen)]
    if count:
        argv += ["-c", str(count)]
    return argv + list(expression)


def read_until(fd: int, marker: str, timeout: float) -> str:
    """Text from a pipe up to MARKER, waiting at most TIMEOUT seconds in all (a child that
    prints nothing cannot hang us). Reads the descriptor itself, so nothing hides in a buffer."""
    text, deadline = "", time.monotonic() + timeout
    while marker not in text:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        text += chunk.decode(errors="replace")
    return text


# --------------------------------------------------------------------------- one tcpdump

@dataclass
class Tcpdump:
    label: str
    netns: str
    iface: str
    inbound: bool = True        # only frames arriving on IFACE (each frame once per wire port)
    snaplen: int | None = CHECK_SNAPLEN
    count: int | None = None
    expression: tuple[str, ...] = ()
    keep: bool = True           # keep the decoded packets (checks); False: only hand them on
    on_packet: Callable[[Tcpdump, float, bytes, int, packets.Packet], None] | None = None
    packets: list[packets.Packet] = field(default_factory=list)
    seen: int = 0
    error: str | None = None
    report: Report | None = None
    stderr: str = ""
    last_packet_at: float = 0.0
    proc: subprocess.Popen | None = None
    reader: threading.Thread | None = None

    def argv(self) -> list[str]:
        return tcpdump_argv(self.iface, self.inbound, self.count, self.snaplen, self.expression)

    def start(self) -> bool:
        """Start tcpdump and wait until it listens. False (and `error` set) when it does not."""
        self.proc = gateway.spawn(self.argv(), netns=self.netns, text=False)
        # tcpdump says "listening on IFACE" on stderr once its socket is bound
        self.stderr = read_until(self.proc.stderr.fileno(), "listening on", budget(LISTEN_TIMEOUT))
        if "listening on" not in self.stderr:
            said = self.stderr.strip().replace("\n", " ") or f"no word within {budget(LISTEN_TIMEOUT):g} s"
            self.stop()
            self.error = f"tcpdump on {self.iface} in netns {self.netns}: {said}"
            return False
        self.last_packet_at = time.monotonic()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        return True

    def _read(self) -> None:
        assert self.proc is not None
        for ts, buf, linktype in packets.read_raw(self.proc.stdout):
            pkt = packets.decode(buf, ts, self.label, linktype)
            if self.keep:
                self.packets.append(pkt)
            self.seen += 1
            self.last_packet_at = time.monotonic()
            if self.on_packet:
                self.on_packet(self, ts, buf, linktype, pkt)

    def settle(self) -> None:
        """Wait until the capture has been quiet for a moment (bounded)."""
        deadline, quiet = time.monotonic() + budget(SETTLE_LIMIT), budget(QUIET_AFTER)
        while time.monotonic() < deadline and time.monotonic() - self.last_packet_at < quiet:
            time.sleep(POLL_INTERVAL)

    def stop(self) -> None:
        """Stop tcpdump (SIGINT: it flushes and prints its report), read the rest."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.reader is not None:
            self.reader.join(timeout=STOP_TIMEOUT)
        self.stderr += self.proc.stderr.read().decode(errors="replace")
        for stream in (self.proc.stdout, self.proc.stderr):
            stream.close()
        self.report = parse_report(self.stderr)
        self.proc = None

    def problem(self) -> str | None:
        return capture_problem(self.error, self.report, self.seen)


# --------------------------------------------------------------------------- lab capture

def capture_interfaces(plan: Plan, target: str, iface: str | None) -> list[tuple[str, str, str, bool]]:
    """(label, netns, interface, inbound only) of each tcpdump a capture at TARGET runs."""
    kind, netns = plan.targets()[target]
    if iface:
        return [(f"{target}:{iface}", netns, iface, False)]
    if kind in ("instance", "external-host"):
        return [(f"{target} eth0", netns, "eth0", False)]
    if kind == "dhcp":
        dev = next(d for d in plan.dhcp_servers if d.name == target).port.ns_dev
        return [(f"{target} {dev}", netns, dev, False)]
    if kind == "node":
        return [(f"{target} {nic}", netns, nic, False) for nic in plan.node(target).nics]
    if kind == "router":
        return [(f"{r.name} {p.ns_dev}", r.netns, p.ns_dev, False)
                for r in plan.router_instances_of(target) for p in r.ports]
    wire = plan.wire(target)
    return [(f"{wire.name} from {m.name}", netns, m.wire_ifname, True) for m in wire.members]


def live_line(pkt: packets.Packet, labelled: bool) -> str:
    when = datetime.fromtimestamp(pkt.ts).strftime("%H:%M:%S.%f")
    return f"{when} " + (f"[{pkt.point}] " if labelled else "") + packets.summary(pkt)


def capture(plan: Plan, target_spec: str, write: str | None, count: int | None, expression: list[str]) -> int:
    target, _, iface = target_spec.partition(":")
    targets = plan.targets()
    if target not in targets:
        raise LabStateError(f"lab {plan.lab} has no target {target!r} (its targets: {', '.join(sorted(targets))})")
    points = capture_interfaces(plan, target, iface or None)
    session = _Session(write is not None, count, len(points) > 1)
    caps = [Tcpdump(label, netns, dev, inbound, None, count, tuple(expression), keep=False,
                    on_packet=session.take) for label, netns, dev, inbound in points]
    try:
        session.run(caps, target, targets[target][0] == "wire")
    finally:
        for cap in caps:
            cap.stop()
        session.close()
    try:
        for cap in caps:
            if cap.report and cap.report.dropped:
                print(f"[{cap.label}] tcpdump: {cap.report.dropped} packets dropped by kernel", file=sys.stderr)
        if write:
            with open(write, "wb") as out:
                n = packets.merge_pcaps(list(session.parts.values()), out, count)
            os.chmod(write, 0o644)
            print(f"{n} packets written to {write}", file=sys.stderr)
    finally:
        session.cleanup()
    return 0


class _Session:
    """The shared state of one `lab capture`: printing, per-port pcap parts, the count."""

    def __init__(self, writing: bool, count: int | None, labelled: bool):
        self.writing, self.count, self.labelled = writing, count, labelled
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.total = 0
        self.tmp = Path(tempfile.mkdtemp(prefix="lab-capture-")) if writing else None
        self.parts: dict[str, Path] = {}           # label -> its pcap part
        self.writers: dict[str, tuple] = {}         # label -> (open file, dpkt writer)

    def take(self, cap: Tcpdump, ts: float, buf: bytes, linktype: int, pkt: packets.Packet) -> None:
        with self.lock:
            if self.done.is_set():
                return
            if self.writing:
                self._write(cap, ts, buf, linktype)
            else:
                print(live_line(pkt, self.labelled), flush=True)
            self.total += 1
            if self.count and self.total >= self.count:
                self.done.set()

    def _write(self, cap: Tcpdump, ts: float, buf: bytes, linktype: int) -> None:
        if cap.label not in self.writers:
            self.parts[cap.label] = self.tmp / f"{len(self.parts)}.pcap"
            f = open(self.parts[cap.label], "wb")
            self.writers[cap.label] = (f, dpkt.pcap.Writer(f, snaplen=262144, linktype=linktype))
        self.writers[cap.label][1].writepkt(buf, ts)

    def run(self, caps: list[Tcpdump], target: str, wire: bool) -> None:
        for cap in caps:
            if not cap.start():
                raise CaptureError(cap.error)
        names = ", ".join(c.label for c in caps)
        head = f"capturing on every port of wire {target}: " if wire else ""
        print(f"{head}listening on {names}; Ctrl-C stops", file=sys.stderr, flush=True)
        try:
            while not self.done.is_set() and any(c.proc and c.proc.poll() is None for c in caps):
                self.done.wait(0.2)
        except KeyboardInterrupt:
            pass
        self.done.set()

    def close(self) -> None:
        with self.lock:
            self.done.set()
            for f, _ in self.writers.values():
                f.close()

    def cleanup(self) -> None:
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
