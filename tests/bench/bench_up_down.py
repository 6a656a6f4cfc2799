#!/usr/bin/env python3
"""Times `lab up` / `lab down` for classic-vlan and for generated scenarios of N instances.

    sudo .venv/bin/python tests/bench/bench_up_down.py [--sizes 10 50 200] [--repeat 3] [--write]

Each figure is the median of --repeat runs, measured in-process around lifecycle.up/down (the
CLI adds Python start-up, measured once separately). --write rewrites the table in
docs/benchmarks.md. A benchmark, not a test: it asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from lab.runtime import ovs, lifecycle  # noqa: E402


def generated(n: int, name: str = "", description: str = "generated for the benchmark") -> str:
    """N instances over two compute nodes and two VLAN networks, one project, static addresses
    (no DHCP); named NAME (bench-N). bench_scale.py's l2-N is this one."""
    lines = [f"name: {name or f'bench-{n}'}", f"description: {description}",
             "nodes:", "  network1: {role: network}", "  compute1: {role: compute}", "  compute2: {role: compute}",
             "physical_networks:", "  physnet1: {bridge: br-vlan, vlan_ranges: ['101:199']}",
             "projects: [demo]", "networks:",
             "  net1: {project: demo, type: vlan, physical_network: physnet1, segmentation_id: 101, cidr: 10.1.0.0/22, dhcp: false}",
             "  net2: {project: demo, type: vlan, physical_network: physnet1, segmentation_id: 102, cidr: 10.2.0.0/22, dhcp: false}",
             "instances:"]
    for i in range(n):
        lines.append(f"  vm{i}: {{node: compute{1 + i % 2}, network: net{1 + (i // 2) % 2}}}")
    return "\n".join(lines) + "\n"


def settle(namespaces: int) -> None:
    """The kernel tears deleted namespaces down after `down` returns; without a pause the
    next `up` pays for that work and the figures mix the two."""
    time.sleep(2 + 0.04 * namespaces)


def measure(path: str, lab: str, repeat: int, namespaces: int) -> tuple[float, float]:
    ups, downs = [], []
    for _ in range(repeat):
        t = time.monotonic()
        lifecycle.up(path)
        ups.append(time.monotonic() - t)
        t = time.monotonic()
        lifecycle.down(lab)
        downs.append(time.monotonic() - t)
        settle(namespaces)
    return statistics.median(ups), statistics.median(downs)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", type=int, nargs="*", default=[10, 50, 200])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--write", action="store_true", help="write the table into docs/benchmarks.md")
    args = p.parse_args()
    if os.geteuid() != 0:
        print("run as root", file=sys.stderr)
        return 1
    rows = []
    t = time.monotonic()
    subprocess.run([sys.executable, "-m", "lab.cli", "up", "classic-vlan"], check=True, capture_output=True)
    cli_up = time.monotonic() - t
    t = time.monotonic()
    subprocess.run([sys.executable, "-m", "lab.cli", "down", "classic-vlan"], check=True, capture_output=True)
    cli_down = time.monotonic() - t
    settle(9)
    up, down = measure("classic-vlan", "classic-vlan", args.repeat, 9)
    rows.append(("classic-vlan (3 nodes, 5 instances)", 5, up, down))
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            path = Path(tmp) / f"bench-{n}.yaml"
            path.write_text(generated(n))
            up, down = measure(str(path), f"bench-{n}", args.repeat, n + 4)
            rows.append((f"generated, {n} instances", n, up, down))

    gen = [r for r in rows if r[0].startswith("generated")]
    per_instance = ""
    if len(gen) >= 2:
        (_, n1, u1, _), (_, n2, u2, _) = gen[0], gen[-1]
        per_instance = f"{(u2 - u1) / (n2 - n1) * 1000:.1f} ms"
    table = ["| scenario | up (s) | down (s) |", "|---|---:|---:|"]
    table += [f"| {name} | {u:.3f} | {d:.3f} |" for name, _, u, d in rows]
    table.append(f"| classic-vlan through the CLI (with Python start-up) | {cli_up:.3f} | {cli_down:.3f} |")
    summary = (f"Median of {args.repeat} runs, {time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs, "
               f"kernel {platform.release()}, datapath {ovs.detect_datapath()}. "
               + (f"Each extra instance costs {per_instance} of `up` ({gen[0][1]} -> {gen[-1][1]} instances)."
                  if per_instance else ""))
    text = "\n".join(table) + "\n\n" + summary + "\n"
    print(text)
    if args.write:
        doc = REPO / "docs" / "benchmarks.md"
        body = doc.read_text() if doc.exists() else "# Benchmarks\n\n<!-- bench:start -->\n<!-- bench:end -->\n"
        start, end = body.index("<!-- bench:start -->"), body.index("<!-- bench:end -->")
        doc.write_text(body[:start] + "<!-- bench:start -->\n" + text + body[end:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
