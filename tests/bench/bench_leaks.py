#!/usr/bin/env python3
"""Looks for leaks over many `lab up` / `lab down` cycles of classic-vlan (issue 13 §5).

    sudo .venv/bin/python tests/bench/bench_leaks.py [--cycles 100] [--name leak-bench]

Runs the real CLI (a new process per command, as a user would) and, before the first cycle
and after every tenth, counts what a leak would grow: the lab's namespaces and nsfs mounts
(and all nlab. ones: other labs may come and go meanwhile), processes and zombies naming the lab, the host's total process count, entries
under the state root and under the lab's own directory (run directories, lock files), open file descriptors of this process,
and the kernel's Slab and SUnreclaim memory (/proc/meminfo). Prints one line per sample and the growth
between the first and the last. A measurement, not a test; run it under the shared lock.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from lab.paths import STATE_ROOT  # noqa: E402


def _lab(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "lab.cli", *args], cwd=REPO, check=True, capture_output=True,
                   env={**os.environ, "PYTHONPATH": str(REPO)})


def sample(name: str) -> dict[str, int]:
    procs = zombies = ours = 0
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        procs += 1
        try:
            cmd = (p / "cmdline").read_bytes()
            state = (p / "stat").read_text().rsplit(") ", 1)[1][0]
        except (OSError, IndexError):
            continue
        zombies += state == "Z"
        ours += name.encode() in cmd
    mountinfo = [line for line in Path("/proc/self/mountinfo").read_text().splitlines() if "/run/netns/" in line]
    meminfo = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    netns_dir = Path("/run/netns")
    return {
        "lab_netns": sum(1 for n in netns_dir.iterdir() if n.name.startswith(f"nlab.{name}.")) if netns_dir.is_dir() else 0,
        "lab_mounts": sum(f"/run/netns/nlab.{name}." in line for line in mountinfo),
        "netns": sum(1 for n in netns_dir.iterdir() if n.name.startswith("nlab.")) if netns_dir.is_dir() else 0,
        "netns_mounts": len(mountinfo),
        "lab_procs": ours,
        "zombies": zombies,
        "procs": procs,
        "state_entries": sum(1 for _ in STATE_ROOT.rglob("*")) if STATE_ROOT.is_dir() else 0,
        "lab_state": sum(1 for _ in (STATE_ROOT / name).rglob("*")) if (STATE_ROOT / name).is_dir() else 0,
        "fds": len(os.listdir("/proc/self/fd")),
        "slab_kb": int(meminfo["Slab"].split()[0]),
        "sunreclaim_kb": int(meminfo["SUnreclaim"].split()[0]),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cycles", type=int, default=100)
    ap.add_argument("--name", default="leak-bench")
    args = ap.parse_args()
    samples = [(0, sample(args.name))]
    started = time.monotonic()
    print("cycle " + " ".join(f"{k:>14}" for k in samples[0][1]))
    print(f"{0:>5} " + " ".join(f"{v:>14}" for v in samples[0][1].values()), flush=True)
    for i in range(1, args.cycles + 1):
        _lab("up", "classic-vlan", "--name", args.name)
        _lab("down", args.name)
        if i % 10 == 0 or i == args.cycles:
            s = sample(args.name)
            samples.append((i, s))
            print(f"{i:>5} " + " ".join(f"{v:>14}" for v in s.values()), flush=True)
    first, last = samples[0][1], samples[-1][1]
    print(f"{args.cycles} cycles in {time.monotonic() - started:.0f} s; growth: "
          + ", ".join(f"{k} {last[k] - first[k]:+d}" for k in first))
    return 0


if __name__ == "__main__":
    sys.exit(main())
