"""Finding the processes a lab started, and ending them: only those, by pid.

Two marks identify them: they live in one of our namespaces, or their command line names our
state directory (the OVS daemons and dnsmasq, whose pid files and sockets live there). A pid
from a pid file or the ledger is trusted only while its command line still carries the mark.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from lab.budget import budget


def read_pidfile(path: Path | str) -> int | None:
    """The pid in a daemon's pid file, or None (no file, or not a number)."""
    try:
        return int(Path(path).read_text().strip())
    except (OSError, ValueError):
        return None


def is_ours(pid: int, mark: str) -> bool:
    """True when PID is alive and its command line names MARK (a node's run directory, a DHCP
    server's directory): never trust a stale pid."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return False
    return names_path(args[1:], mark)   # exact: compute1's rundir is no prefix of compute10's


def alive(pid: int | None, mark: str) -> bool:
    return pid is not None and is_ours(pid, mark)


def stop(pid: int, timeout: float = 5.0) -> None:
    """End one process we started: SIGTERM, then SIGKILL if it lingers."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    if not wait_gone(pid, timeout):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        wait_gone(pid, timeout)


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + budget(timeout)
    delay = 0.002
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        # a daemon whose parent is gone is reaped by init; a zombie counts as gone
        try:
            if Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z"):
                return True
        except (OSError, IndexError):
            return True
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
    return False


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


# comm names: the metadata agent and server name themselves (lab/services/daemon.py)
DAEMONS = ("ovsdb-server", "ovs-vswitchd", "dnsmasq", "haproxy", "nlab-md-agent", "nlab-md-server")


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
