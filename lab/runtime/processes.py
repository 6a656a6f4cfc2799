"""Finding the processes a lab started, so that only those are ever ended.

Two marks identify them: they live in one of our namespaces, or their command line names our
state directory (the OVS daemons, whose pid files and sockets live there).
"""

from __future__ import annotations

import os
from pathlib import Path


def _pids() -> list[int]:
    me = os.getpid()
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and int(p.name) != me]


def in_namespaces(inodes: set[tuple[int, int]]) -> list[int]:
    """Processes whose network namespace is one of INODES ((st_dev, st_ino) pairs)."""
    if not inodes:
        return []
    found = []
    for pid in _pids():
        try:
            st = os.stat(f"/proc/{pid}/ns/net")
        except OSError:
            continue
        if (st.st_dev, st.st_ino) in inodes:
            found.append(pid)
    return found


DAEMONS = ("ovsdb-server", "ovs-vswitchd", "dnsmasq")


def daemons_under(directory: str) -> list[int]:
    """The lab's daemons (OVS, dnsmasq) whose command line names a file under DIRECTORY, e.g.
    their --pidfile: found even when their namespace is gone. Nothing else is ever matched
    (not a user's `less` of a log file there)."""
    found = []
    for pid in _pids():
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if comm in DAEMONS and names_path([a.decode(errors="replace") for a in args[1:]], directory):
            found.append(pid)
    return found


def names_path(args: list[str], directory: str) -> bool:
    """Does an argument name DIRECTORY or a path under it, exactly: as itself, as the value
    of an --option=, or as a unix:/punix: socket? (/run/neutron-lab/lab1 is not under
    /run/neutron-lab/lab, nor is /tmp/run/neutron-lab/lab/x.)"""
    d = directory.rstrip("/")
    for arg in args:
        value = arg.split("=", 1)[1] if arg.startswith("-") and "=" in arg else arg
        for scheme in ("punix:", "unix:"):
            if value.startswith(scheme):
                value = value[len(scheme):]
        if value == d or value.startswith(d + "/"):
            return True
    return False
