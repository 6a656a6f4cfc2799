"""The pytest plugin as a user meets it: an inner pytest run with a module on lab_fixture and
one on `pytestmark = pytest.mark.lab(...)`. Each lab is up for its module under a test name,
reachable through the api.Lab handle (exec, capture, check, status), and down afterwards even
though a test failed."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from lab.runtime import lifecycle, netns

from . import hoststate
from .conftest import PREFIX

WITH_FACTORY = '''
from lab.pytest_plugin import lab_fixture

vlan = lab_fixture("classic-vlan")


def test_exec_and_capture(vlan):
    print("LAB-NAME", vlan.name)
    assert vlan.exec("vm1", "ping", "-c1", "-W2", "192.168.1.12").ok
    with vlan.capture("physnet1", "icmp") as cap:
        vlan.exec("vm1", "ping", "-c1", "-W2", "192.168.1.12")
    assert any("vlan 101" in line and "from compute1" in line for line in cap.lines), cap.lines


def test_fails_on_purpose(vlan):
    assert vlan.status().healthy
    assert False, "failing on purpose: the lab must still go down"
'''

WITH_MARKER = '''
import pytest

pytestmark = pytest.mark.lab("classic-vlan", name="{name}")


def test_one_check(lab):
    report = lab.check("same project, different hosts")
    assert report.passed and len(report.results) == 1, report.to_json()
    assert "vlan 101" in " ".join(report.results[0].evidence)
'''


def test_plugin_brings_labs_up_and_down_even_on_failure(tmp_path, host_before):
    inner_prefix = "tbeef-" if PREFIX != "tbeef-" else "tcafe-"
    marked = inner_prefix + "marked"
    (tmp_path / "test_factory.py").write_text(WITH_FACTORY)
    (tmp_path / "test_marker.py").write_text(WITH_MARKER.format(name=marked))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "lab.pytest_plugin", "-q", "-s",
                           "-p", "no:cacheprovider", str(tmp_path)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "LAB_TEST_PREFIX": inner_prefix})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "1 failed, 2 passed" in proc.stdout, proc.stdout
    assert "failing on purpose" in proc.stdout
    name = re.search(r"LAB-NAME (\S+)", proc.stdout).group(1)
    assert name == inner_prefix + "classic-vlan"
    for gone in (name, marked):
        assert gone not in lifecycle.list_labs()
        assert not [ns for ns in netns.list_ours() if ns.startswith(f"nlab.{gone}.")]
    assert not hoststate.our_namespaces(inner_prefix)
    assert not hoststate.our_state_dirs(inner_prefix)
    assert not hoststate.live_lab_processes(inner_prefix)
    hoststate.assert_unchanged(host_before, PREFIX)
