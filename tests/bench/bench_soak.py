#!/usr/bin/env python3
"""An hour of one lab with `lab check` every minute: does a running lab leak? (issue 13 §5)

    sudo .venv/bin/python tests/bench/bench_soak.py [--minutes 60] [--name soak] \
        [--scenario classic-vlan] [--out samples.jsonl] [--lock /tmp/nlab-integration.lock]

Brings the lab up through the real CLI (holding LOCK only for `up` and `down`, if given),
then once a minute runs `lab check LAB` and samples, for this lab alone where a mark says what
is the lab's: its namespaces and their /run/netns nsfs mounts, its processes (in its
namespaces or naming its state directory) and their zombies, the open file descriptors and
resident memory of its daemons by program (ovsdb-server, ovs-vswitchd, dnsmasq), the files
and bytes under its state directory (OVS run directories, logs, leases); and, host-wide
(other labs come and go meanwhile), all nlab. namespaces, nsfs mounts, processes, zombies
and the kernel's Slab/SUnreclaim/KernelStack/PageTables. Writes one JSON line per sample
to OUT and prints a table; `lab down` at the end (also on SIGTERM or Ctrl-C).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from lab.paths import STATE_ROOT  # noqa: E402

DAEMONS = ("ovsdb-server", "ovs-vswitchd", "dnsmasq")
KERNEL = ("Slab", "SUnreclaim", "KernelStack", "PageTables")


def _lab(*args: str, timeout: float = 600) -> tuple[int, float, str]:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "lab.cli", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "PYTHONPATH": str(REPO)})
    return done.returncode, time.monotonic() - started, done.stdout + done.stderr


@contextmanager
def _held(lock: str | None):
    if not lock:
        yield
        return
    with open(lock, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _proc(pid: str) -> tuple[bytes, str, str, int | None, int] | None:
    """(cmdline, comm, state, netns inode, parent pid) of a process, or None when it is gone.
    A zombie has no namespace (None) and an empty command line."""
    p = Path("/proc", pid)
    try:
        stat = (p / "stat").read_text()
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat.rsplit(") ", 1)[1].split()
        cmd = (p / "cmdline").read_bytes()
    except (OSError, ValueError, IndexError):
        return None
    try:
        ns = os.stat(p / "ns" / "net").st_ino
    except OSError:
        ns = None
    return cmd, comm, fields[0], ns, int(fields[1])


def _fds(pid: str) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def _rss_kb(pid: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _namespaces(prefix: str) -> tuple[int, set[int]]:
    netns_dir = Path("/run/netns")
    names = [n for n in netns_dir.iterdir() if n.name.startswith(prefix)] if netns_dir.is_dir() else []
    inodes = set()
    for n in names:
        try:
            inodes.add(os.stat(n).st_ino)
        except OSError:
            pass
    return len(names), inodes


def _processes(lab_inodes: set[int], mark: bytes) -> dict[str, int]:
    out = {"procs": 0, "zombies": 0, "lab_procs": 0, "lab_zombies": 0}
    for name in DAEMONS:
        out[f"{name}_n"] = out[f"{name}_fds"] = out[f"{name}_rss_kb"] = 0
    procs = {p.name: info for p in Path("/proc").iterdir() if p.name.isdigit() and (info := _proc(p.name))}
    ours = {pid for pid, (cmd, _, _, ns, _) in procs.items() if ns in lab_inodes or mark in cmd}
    for pid, (cmd, comm, state, ns, ppid) in procs.items():
        out["procs"] += 1
        out["zombies"] += state == "Z"
        # a zombie is the lab's when a process of the lab is its parent (a detached daemon's
        # parent is PID 1: it cannot be told apart, and counts host-wide only)
        if pid not in ours and not (state == "Z" and str(ppid) in ours):
            continue
        out["lab_procs"] += 1
        out["lab_zombies"] += state == "Z"
        if comm in DAEMONS:
            out[f"{comm}_n"] += 1
            out[f"{comm}_fds"] += _fds(pid)
            out[f"{comm}_rss_kb"] += _rss_kb(pid)
    return out


def sample(lab: str) -> dict[str, int]:
    lab_ns, inodes = _namespaces(f"nlab.{lab}.")
    all_ns, _ = _namespaces("nlab.")
    mounts = [line for line in Path("/proc/self/mountinfo").read_text().splitlines() if "/run/netns/" in line]
    meminfo = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    state = STATE_ROOT / lab
    files = [f for f in state.rglob("*") if f.is_file()] if state.is_dir() else []
    return {
        "lab_netns": lab_ns,
        "lab_mounts": sum(f"/run/netns/nlab.{lab}." in line for line in mounts),
        **_processes(inodes, f"{STATE_ROOT}/{lab}/".encode()),
        "state_files": len(files),
        "state_kb": sum(f.stat().st_size for f in files) // 1024,
        "netns": all_ns,
        "mounts": len(mounts),
        **{f"{k.lower()}_kb": int(meminfo[k].split()[0]) for k in KERNEL},
        "own_fds": len(os.listdir("/proc/self/fd")),
    }


COLUMNS = ("min", "check", "check_s", "lab_netns", "lab_mounts", "lab_procs", "lab_zombies",
           "ovsdb-server_fds", "ovs-vswitchd_fds", "dnsmasq_fds", "ovs-vswitchd_rss_kb",
           "state_files", "state_kb", "netns", "procs", "zombies", "slab_kb", "sunreclaim_kb")


def _row(s: dict) -> str:
    return " ".join(f"{str(s.get(c, '')):>{max(len(c), 6)}}" for c in COLUMNS)


def soak(args: argparse.Namespace, out) -> int:
    started = time.monotonic()
    failures = 0
    print(_row({c: c for c in COLUMNS}), flush=True)
    minute = 0
    while True:
        rc, secs, text = _lab("check", args.name)
        s = {"min": minute, "t": round(time.monotonic() - started), "check": rc,
             "check_s": round(secs, 1), **sample(args.name)}
        if rc:
            failures += 1
            s["check_output"] = text[-2000:]
        out.write(json.dumps(s) + "\n")
        out.flush()
        print(_row(s), flush=True)
        minute += 1
        if minute > args.minutes:
            return failures
        time.sleep(max(0.0, started + 60 * minute - time.monotonic()))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=int, default=60)
    ap.add_argument("--name", default="soak")
    ap.add_argument("--scenario", default="classic-vlan")
    ap.add_argument("--out", default="soak-samples.jsonl")
    ap.add_argument("--lock", help="hold this flock file during `up` and `down` only")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    print("before up:", json.dumps(sample(args.name)), flush=True)
    with _held(args.lock):
        rc, secs, text = _lab("up", args.scenario, "--name", args.name)
    print(f"up: exit {rc} in {secs:.1f} s", flush=True)
    if rc:
        print(text, file=sys.stderr)
        return 1
    failures = 0
    try:
        with open(args.out, "w") as out:
            failures = soak(args, out)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
    finally:
        with _held(args.lock):
            rc, secs, text = _lab("down", args.name)
        print(f"down: exit {rc} in {secs:.1f} s", flush=True)
        time.sleep(2)
        print("after down:", json.dumps(sample(args.name)), flush=True)
    print(f"{failures} failed check run(s)", flush=True)
    return 1 if failures or rc else 0


if __name__ == "__main__":
    sys.exit(main())
