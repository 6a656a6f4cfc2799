"""A snapshot of what the test suite must leave as it found it: the root namespace's links,
addresses, routes, rules and iptables rules (no lab ever touches them), plus the marks of the
suite's OWN labs (names starting with the run prefix, lab.pytest_plugin.run_prefix()): their
namespaces, state directories and live processes. Labs that are not the suite's (a user's
`classic-vlan` running beside `pytest`) are not looked at, so they may come and go."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from lab import paths
from lab.core.naming import NETNS_PREFIX, split_netns


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


def is_ours(lab: str, prefix: str) -> bool:
    """A lab of this run: its name starts with the run prefix (exactly, not somewhere)."""
    return lab.startswith(prefix)


def our_namespaces(prefix: str) -> list[str]:
    names = _run("ip", "netns", "list").split("\n")
    found = []
    for line in names:
        name = line.split(" ")[0]
        parts = split_netns(name) if name.startswith(NETNS_PREFIX) else None
        if parts and is_ours(parts[0], prefix):
            found.append(name)
    return sorted(found)


def our_state_dirs(prefix: str) -> list[str]:
    root = paths.STATE_ROOT
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and is_ours(p.name, prefix))


def _names_our_lab(arg: str, prefix: str) -> bool:
    """An argument that is a path in one of our labs' state directories, or one of our
    labs' namespaces (`ip netns exec nlab.<lab>.<target> ...`)."""
    value = arg.split("=", 1)[1] if arg.startswith("-") and "=" in arg else arg
    value = value.split(":", 1)[1] if value.startswith(("unix:", "punix:")) else value
    root = str(paths.STATE_ROOT).rstrip("/") + "/"
    if value.startswith(root):
        return is_ours(value[len(root):].split("/", 1)[0], prefix)
    parts = split_netns(value) if value.startswith(NETNS_PREFIX) else None
    return bool(parts) and is_ours(parts[0], prefix)


def _netns_inodes(names: list[str]) -> set[tuple[int, int]]:
    found = set()
    for name in names:
        try:
            st = os.stat(f"/run/netns/{name}")
        except OSError:
            continue
        found.add((st.st_dev, st.st_ino))
    return found


def _in(pid: str, inodes: set[tuple[int, int]]) -> bool:
    try:
        st = os.stat(f"/proc/{pid}/ns/net")
    except OSError:
        return False
    return (st.st_dev, st.st_ino) in inodes


def live_lab_processes(prefix: str) -> list[str]:
    """Processes (not zombies) whose command line names one of our labs, or that run in one
    of our labs' namespaces (a tcpdump started through `ip netns exec`)."""
    found = []
    inodes = _netns_inodes(our_namespaces(prefix))
    for p in Path("/proc").iterdir():
        if not p.name.isdigit() or int(p.name) == os.getpid():
            continue
        try:
            args = (p / "cmdline").read_bytes().decode(errors="replace").split("\0")
            state = (p / "stat").read_text().rsplit(") ", 1)[1][0]
        except (OSError, IndexError):
            continue
        if state == "Z" or "pytest" in " ".join(args):
            continue
        if any(_names_our_lab(a, prefix) for a in args[1:]) or _in(p.name, inodes):
            found.append(f"{p.name} {' '.join(args).strip()}")
    return found


def snapshot(prefix: str) -> dict[str, str]:
    return {
        "links": _run("ip", "-o", "link", "show"),
        "addresses": _run("ip", "-o", "address", "show"),
        "routes": _run("ip", "route", "show", "table", "all") + _run("ip", "-6", "route", "show", "table", "all"),
        "rules": _run("ip", "rule", "show"),
        "iptables": _iptables(),
        "ipsets": _run("ipset", "list", "-n") if shutil.which("ipset") else "",   # ipsets live in node namespaces
        "our namespaces": "\n".join(our_namespaces(prefix)),
        "our state directories": "\n".join(our_state_dirs(prefix)),
        "our lab processes": "\n".join(live_lab_processes(prefix)),
    }


def assert_unchanged(before: dict[str, str], prefix: str, timeout: float = 5.0) -> None:
    """Compare with BEFORE; namespaces vanish a moment after deletion, so wait a bounded time."""
    from lab.budget import budget    # longer on a slow machine (LAB_TIME_SCALE)
    deadline = time.monotonic() + budget(timeout)
    while True:
        after = snapshot(prefix)
        diff = {k for k in before if before[k] != after[k]}
        if not diff or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert not diff, "host changed: " + "; ".join(
        f"{k}:\n--- before\n{before[k]}\n--- after\n{after[k]}" for k in sorted(diff))
