"""pytest plugin: real labs for your own integration tests, the way Neutron's fullstack tests
brought up a deployment per test module.

Installed with neutron-lab (entry point ``pytest11``: ``lab.pytest_plugin``), or named in a
conftest.py with ``pytest_plugins = ["lab.pytest_plugin"]``. Two ways to get a lab:

    from lab.pytest_plugin import lab_fixture

    vlan = lab_fixture("classic-vlan")              # a fixture named `vlan`, module scope

    def test_same_network_reaches(vlan):
        assert vlan.exec("vm1", "ping", "-c1", "-W2", "192.168.1.12").ok

or, one lab per module through the `lab` fixture:

    pytestmark = pytest.mark.lab("classic-vlan")

    def test_checks(lab):
        assert lab.check().passed

Each lab gets a name of its own, ``t<4 hex digits>-<scenario>`` (the same prefix for the whole
run, see run_prefix()), so it never collides with a lab you have up, and is brought down
after the module even when its tests fail (or `up` fails half-way). The plugin only ever
removes labs it made. Without root or the programs a lab needs, the tests are skipped with
the reason; with LAB_REQUIRE_INTEGRATION=1 (CI) they fail instead.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import threading

import pytest

from lab import api
from lab.errors import LabStateError

TEST_PREFIX = re.compile(r"^t[0-9a-f]{4}-")     # what every run prefix looks like
NEEDED = ("ip", "ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovs-ofctl",
          "iptables-restore", "tcpdump", "ping")
_prefix: str | None = None
_made: set[str] = set()          # labs this process brought up and has not yet brought down
_guard = threading.Lock()


def run_prefix() -> str:
    """`t<4 hex>-`, the same for the whole test run (LAB_TEST_PREFIX overrides it)."""
    global _prefix
    if _prefix is None:
        _prefix = os.environ.get("LAB_TEST_PREFIX") or f"t{secrets.token_hex(2)}-"
        if not TEST_PREFIX.match(_prefix):
            raise pytest.UsageError(f"LAB_TEST_PREFIX={_prefix!r} must look like t1a2b- (t, 4 hex digits, -)")
    return _prefix


def test_lab_name(scenario: str) -> str:
    """The lab name a test run gives SCENARIO (a built-in name or a path): run prefix +
    its file's stem, cut to the 40 characters a lab name may have."""
    stem = os.path.basename(scenario).rsplit(".", 1)[0] if scenario.endswith((".yaml", ".yml")) else scenario
    stem = re.sub(r"[^a-z0-9-]", "-", stem.lower())
    return (run_prefix() + stem)[:40].rstrip("-")


test_lab_name.__test__ = False    # not a test, whatever its name says


def missing_prerequisite() -> str | None:
    """Why labs cannot be built here, or None."""
    if os.geteuid() != 0:
        return "lab tests need root (they build namespaces and Open vSwitch instances)"
    missing = [p for p in NEEDED if shutil.which(p) is None]
    return f"lab tests need these programs: {', '.join(missing)}" if missing else None


def require_labs() -> None:
    """Skip the calling test (fail it under LAB_REQUIRE_INTEGRATION=1) when labs cannot be built."""
    reason = missing_prerequisite()
    if reason is None:
        return
    if os.environ.get("LAB_REQUIRE_INTEGRATION") == "1":
        pytest.fail(f"LAB_REQUIRE_INTEGRATION=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def start(scenario: str, name: str | None = None, datapath: str | None = None) -> api.Lab:
    """Bring SCENARIO up under a test name and remember it, so stop() / the end of the
    session removes it. A failed `up` leaves nothing (lifecycle removes what it made)."""
    require_labs()
    name = name or test_lab_name(scenario)
    api.up(scenario, name=name, datapath=datapath)    # on failure nothing of it is left
    with _guard:
        _made.add(name)
    return api.Lab(name, scenario)


def stop(name: str) -> None:
    """Bring a lab this plugin started down, then sweep its marks (never another lab's)."""
    try:
        try:
            api.down(name)
        except LabStateError:
            pass    # not up (its `up` failed and removed itself)
        finally:
            api.cleanup(name)
    finally:
        with _guard:
            _made.discard(name)


def lab_fixture(scenario: str, *, scope: str = "module", name: str | None = None,
                datapath: str | None = None):
    """A fixture that brings SCENARIO up for SCOPE and down after, even when tests fail.
    Assign it in a test module: ``vlan = lab_fixture("classic-vlan")``; tests ask for `vlan`
    and get an api.Lab."""

    def fixture():
        lab = start(scenario, name=name, datapath=datapath)
        try:
            yield lab
        finally:
            stop(lab.name)

    return pytest.fixture(scope=scope)(fixture)


@pytest.fixture(scope="module")
def lab(request):
    """The lab named by the module's ``pytestmark = pytest.mark.lab("scenario", ...)``."""
    marker = request.node.get_closest_marker("lab")
    if marker is None or not marker.args:
        raise pytest.UsageError(f"{request.node.nodeid}: the `lab` fixture needs "
                                "`pytestmark = pytest.mark.lab(\"SCENARIO\")` in the module")
    running = start(marker.args[0], name=marker.kwargs.get("name"), datapath=marker.kwargs.get("datapath"))
    try:
        yield running
    finally:
        stop(running.name)


def pytest_configure(config):
    config.addinivalue_line("markers", "lab(scenario, name=None, datapath=None): the lab the `lab` "
                                       "fixture brings up for this module (lab.pytest_plugin)")


def pytest_sessionfinish(session, exitstatus):
    """Anything a crashed fixture left up is removed; only the labs this run made."""
    for name in sorted(_made):
        try:
            stop(name)
        except Exception as exc:   # report, and go on with the others
            print(f"\nlab.pytest_plugin: could not remove lab {name}: {exc}; `lab cleanup {name}`")
