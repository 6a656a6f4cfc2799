"""Integration tests build real labs: root, Open vSwitch, tcpdump and ping are required.

Without them the tests are skipped, unless LAB_REQUIRE_INTEGRATION=1 (as in CI), where a
missing prerequisite is a failure: CI must never pass by skipping the real thing.

Every lab the suite makes is named test_name(scenario) = <run prefix><scenario>
(lab.pytest_plugin.run_prefix(), e.g. t3f2a-classic-vlan): the suite brings down and cleans
only those, and its host check compares only their marks, so a lab a user has up beside
`pytest` is left alone and stays healthy.
"""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
import subprocess
import sys
from pathlib import Path

import pytest

from lab.pytest_plugin import run_prefix, test_lab_name

from . import hoststate

REPO = Path(__file__).resolve().parents[2]
NEEDED = ("ovs-vswitchd", "ovsdb-server", "ovs-vsctl", "ovs-ofctl", "tcpdump", "ping", "iptables-restore",
          "dnsmasq", "busybox", "dot")
PREFIX = run_prefix()


def test_name(scenario: str) -> str:
    """The name this run's lab of SCENARIO has."""
    return test_lab_name(scenario)


test_name.__test__ = False


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


def lab_up(scenario: str, *more: str, check: bool = True) -> subprocess.CompletedProcess:
    """`lab up SCENARIO --name <this run's name for it>`."""
    return lab("up", scenario, "--name", test_name(scenario), *more, check=check)


@pytest.fixture(scope="session", autouse=True)
def bystander():
    """A lab that is NOT the suite's, up for the whole run as a user's lab would be (named
    bystander-<hex>, outside the test prefix). After the last test it must still be healthy
    and pass its checks: the suite never touched it. LAB_BYSTANDER=0 leaves it out."""
    if os.environ.get("LAB_BYSTANDER", "1") == "0" or os.geteuid() != 0 \
            or any(shutil.which(p) is None for p in NEEDED):
        yield None
        return
    name = f"bystander-{PREFIX[1:5]}"
    assert not name.startswith(PREFIX)
    lab("up", "classic-vlan", "--name", name)
    try:
        yield name
        status = lab("status", name, check=False)
        assert status.returncode == 0, f"the bystander lab was damaged by the suite:\n{status.stdout}"
        checks = lab("check", name, check=False)
        assert checks.returncode == 0, f"the bystander lab fails its checks after the suite:\n{checks.stdout}"
    finally:
        lab("down", name, check=False)


@pytest.fixture(scope="session")
def host_before():
    """The host (and this run's own lab marks: none) before any lab: compared after every
    teardown."""
    return hoststate.snapshot(PREFIX)


def remove_ours(*names: str) -> None:
    """`lab down` then `lab cleanup NAME` for each of this run's labs NAMES; never anything else."""
    from lab.runtime import lifecycle
    for name in names:
        assert name.startswith(PREFIX), f"refusing to remove {name}: not a lab of this test run"
        if name in lifecycle.list_labs():
            lab("down", name, check=False)
        lab("cleanup", name, check=False)


@contextmanager
def running(host_before, *scenarios: str):
    """Labs up for a test module, under this run's names ({scenario: LabState}); afterwards
    down (and swept, by name), and the host as it was."""
    from lab.runtime import lifecycle
    try:
        for scenario in scenarios:
            lab_up(scenario)
        yield {scenario: lifecycle.load_state(test_name(scenario)) for scenario in scenarios}
    finally:
        remove_ours(*(test_name(s) for s in scenarios))
        hoststate.assert_unchanged(host_before, PREFIX)
