"""`lab capture`: tcpdump at any lab target, decoded live (VLAN tags, VNIs and GRE keys shown)
or written to a pcap file that Wireshark opens.

One interface: tcpdump replaces this process, so Ctrl-C reaches it directly and nothing is
left behind. A wire without an interface: one tcpdump per node port of the wire (frames
entering the wire, so each is seen once, labelled with its sender), merged live or into one
pcap by timestamp. (Capturing on the wire's bridge device would miss unicast between ports,
and `-i any` drops the 802.1Q tags.)
"""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from lab.runtime import gateway
from lab.errors import LabStateError
from lab.core.plan import Plan

PCAP_HEADER = struct.Struct("<IHHiIII")
RECORD_HEADER = struct.Struct("<IIII")


def default_interface(plan: Plan, target: str) -> str | None:
    """The interface a capture at TARGET watches by default (None: every port of a wire)."""
    kind, _ = plan.targets()[target]
    if kind in ("instance", "external-host"):
        return "eth0"
    if kind == "dhcp":
        return next(d for d in plan.dhcp_servers if d.name == target).port.ns_dev
    if kind == "node":
        nics = plan.node(target).nics
        return nics[0] if len(nics) == 1 else "any"
    if kind == "router":
        return "any"
    return None


def tcpdump_argv(iface: str, count: int | None, write: str | None, expression: list[str],
                 direction_in: bool = False) -> list[str]:
    argv = ["tcpdump", "-i", iface, "-nn", "-e", "-l", "--immediate-mode"]
    if direction_in:
        argv += ["-Q", "in"]
    if count:
        argv += ["-c", str(count)]
    if write:
        argv += ["-U", "-w", write]
    return argv + expression


def capture(plan: Plan, target_spec: str, write: str | None, count: int | None, expression: list[str]) -> int:
    target, _, iface = target_spec.partition(":")
    targets = plan.targets()
    if target not in targets:
        raise LabStateError(f"lab {plan.lab} has no target {target!r} (its targets: {', '.join(sorted(targets))})")
    _, netns = targets[target]
    iface = iface or default_interface(plan, target)
    if iface:
        gateway.exec_replace(tcpdump_argv(iface, count, write, expression), netns=netns)
        return 0  # not reached
    return _capture_wire(plan, target, netns, write, count, expression)


def _capture_wire(plan: Plan, wire_name: str, netns: str, write: str | None, count: int | None,
                  expression: list[str]) -> int:
    wire = plan.wire(wire_name)
    tmp = Path(tempfile.mkdtemp(prefix="lab-capture-"))
    procs: dict[str, subprocess.Popen] = {}
    seen = [0]
    done = threading.Event()
    lock = threading.Lock()

    def pump(label: str, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            with lock:
                if done.is_set():
                    break
                sys.stdout.write(f"[{wire_name} from {label}] {line}")
                sys.stdout.flush()
                seen[0] += 1
                if count and seen[0] >= count:
                    done.set()

    try:
        for m in wire.members:
            out = str(tmp / f"{m.name}.pcap") if write else None
            procs[m.name] = gateway.spawn(tcpdump_argv(m.wire_ifname, count, out, expression, direction_in=True),
                                          netns=netns, stderr=subprocess.DEVNULL)
        print(f"capturing on every port of wire {wire_name} ({', '.join(procs)}); Ctrl-C stops",
              file=sys.stderr)
        if write:
            # -c counts packets of the merged file: stop once the ports have that many together
            while all(p.poll() is None for p in procs.values()):
                if count and sum(len(read_pcap(tmp / f"{n}.pcap")[1]) for n in procs) >= count:
                    break
                done.wait(0.2)
        else:
            threads = [threading.Thread(target=pump, args=(n, p), daemon=True) for n, p in procs.items()]
            for t in threads:
                t.start()
            while not done.is_set() and any(p.poll() is None for p in procs.values()):
                done.wait(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        done.set()
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in procs.values():
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            if p.stdout:
                p.stdout.close()
        if write:
            n = merge_pcaps([tmp / f"{name}.pcap" for name in procs], Path(write), count)
            print(f"{n} packets written to {write}", file=sys.stderr)
        for f in tmp.iterdir():
            f.unlink()
        tmp.rmdir()
    return 0


def read_pcap(path: Path) -> tuple[bytes, list[tuple[int, int, bytes]]]:
    """(global header, [(seconds, microseconds, record bytes)]) of a classic pcap file."""
    data = path.read_bytes() if path.exists() else b""
    if len(data) < PCAP_HEADER.size:
        return b"", []
    header, offset, records = data[:PCAP_HEADER.size], PCAP_HEADER.size, []
    while offset + RECORD_HEADER.size <= len(data):
        sec, usec, incl, _orig = RECORD_HEADER.unpack_from(data, offset)
        end = offset + RECORD_HEADER.size + incl
        if end > len(data):
            break   # cut short by the stop
        records.append((sec, usec, data[offset:end]))
        offset = end
    return header, records


def merge_pcaps(parts: list[Path], out: Path, count: int | None = None) -> int:
    header, merged = b"", []
    for part in parts:
        h, records = read_pcap(part)
        header = header or h
        merged += records
    merged.sort(key=lambda r: (r[0], r[1]))
    if count:
        merged = merged[:count]
    if not header:   # nothing captured: still a valid, empty Ethernet pcap
        header = PCAP_HEADER.pack(0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)
    with open(out, "wb") as f:
        f.write(header)
        for _, _, record in merged:
            f.write(record)
    os.chmod(out, 0o644)
    return len(merged)
