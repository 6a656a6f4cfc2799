"""Integration tests build real labs: root, Open vSwitch, tcpdump and ping are required.

Without them the tests are skipped, unless LAB_REQUIRE_INTEGRATION=1 (as in CI), where a
missing prerequisite is a failure: CI must never pass by skipping the real thing.
"""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
import subprocess
import sys
from pathlib import Path

import pytest

from . import hoststate

REPO = Path(__file__).resolve().parents[2]
NEEDED = ("ovs-vswitchd", "ovsdb-server", "ovs-vsctl", "ovs-ofctl", "tcpdump", "ping", "iptables-restore",
          "dnsmasq", "busybox", "dot")


def pytest_collection_modifyitems(config, items):
    missing = [p for p in NEEDED if shutil.which(p) is None]
    reason = None
    if os.geteuid() != 0:
        reason = "integration tests need root"
    elif missing:
        reason = "integration tests need: " + ", ".join(missing)
    if reason is None:
        return
    if os.environ.get("LAB_REQUIRE_INTEGRATION") == "1":
        raise pytest.UsageError(f"LAB_REQUIRE_INTEGRATION=1 but {reason}")
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.skip(reason=reason))


def lab(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the real CLI, as a user would."""
    from lab.budget import budget     # a slow machine (LAB_TIME_SCALE, e.g. in tests/vm/) waits longer
    proc = subprocess.run([sys.executable, "-m", "lab.cli", *args], capture_output=True, text=True,
                          timeout=budget(timeout), cwd=REPO)
    if check and proc.returncode != 0:
        raise AssertionError(f"lab {' '.join(args)} exited {proc.returncode}\n"
                             f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def host_before():
    """The host as it was before any lab: compared after every teardown."""
    return hoststate.snapshot()


@contextmanager
def running(host_before, *names: str):
    """Labs up for a test module; afterwards down (and swept), and the host as it was."""
    from lab.runtime import lifecycle
    try:
        for name in names:
            lab("up", name)
        yield {name: lifecycle.load_state(name) for name in names}
    finally:
        for name in names:
            if name in lifecycle.list_labs():
                lab("down", name, check=False)
        lab("cleanup", check=False)
        hoststate.assert_unchanged(host_before)
