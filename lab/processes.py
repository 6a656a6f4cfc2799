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


def with_cmdline_containing(text: str) -> list[int]:
    found = []
    for pid in _pids():
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(pid)
    return found


def describe(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"
