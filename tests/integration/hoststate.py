"""A snapshot of what the lab must never change in the host: the root namespace's links,
addresses, routes, iptables rules and the list of namespaces, plus live lab processes."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

LAB_MARKS = ("/run/neutron-lab", "nlab.")


def _run(*argv: str) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True)
    return proc.stdout


def _iptables() -> str:
    out = []
    for tool in ("iptables-save", "ip6tables-save"):
        text = _run(tool)
        # drop comments and packet counters: they move on their own
        out += [re.sub(r"\[\d+:\d+\]", "", line) for line in text.splitlines() if not line.startswith("#")]
    return "\n".join(out)


def live_lab_processes() -> list[str]:
    """Processes (not zombies) that carry a lab mark in their command line."""
    found = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit() or int(p.name) == os.getpid():
            continue
        try:
            cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (p / "stat").read_text().rsplit(") ", 1)[1][0]
        except (OSError, IndexError):
            continue
        if state != "Z" and any(m in cmd for m in LAB_MARKS) and "pytest" not in cmd:
            found.append(f"{p.name} {cmd.strip()}")
    return found


def snapshot() -> dict[str, str]:
    return {
        "links": _run("ip", "-o", "link", "show"),
        "addresses": _run("ip", "-o", "address", "show"),
        "routes": _run("ip", "route", "show", "table", "all") + _run("ip", "-6", "route", "show", "table", "all"),
        "rules": _run("ip", "rule", "show"),
        "iptables": _iptables(),
        "netns": _run("ip", "netns", "list"),
        "lab processes": "\n".join(live_lab_processes()),
    }


def assert_unchanged(before: dict[str, str], timeout: float = 5.0) -> None:
    """Compare with BEFORE; namespaces vanish a moment after deletion, so wait a bounded time."""
    from lab.budget import budget    # longer on a slow machine (LAB_TIME_SCALE)
    deadline = time.monotonic() + budget(timeout)
    while True:
        after = snapshot()
        diff = {k for k in before if before[k] != after[k]}
        if not diff or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert not diff, "host changed: " + "; ".join(
        f"{k}:\n--- before\n{before[k]}\n--- after\n{after[k]}" for k in sorted(diff))
