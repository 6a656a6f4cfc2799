"""lab.api against a live lab, through the project's own pytest plugin (lab_fixture): exec
returns statuses instead of raising, capture sees the packets a test makes, check runs a
chosen check, status is typed, and bad input is a typed error."""

from __future__ import annotations

import pytest

from lab import api
from lab.errors import LabStateError, UsageError
from lab.pytest_plugin import lab_fixture

from .conftest import PREFIX

vlan = lab_fixture("classic-vlan")


def test_the_fixture_gives_a_test_named_lab(vlan):
    assert vlan.name == PREFIX + "classic-vlan" and vlan.name in api.labs()
    status = vlan.status()
    assert status.healthy and status.datapath in ("netdev", "system")
    assert status.to_json()["schema_version"] == api.SCHEMA_VERSION


def test_exec_returns_status_and_output(vlan):
    ok = vlan.exec("vm1", "ping", "-c1", "-W2", "192.168.1.12")
    assert ok.ok and "1 received" in ok.stdout
    bad = vlan.exec("vm1", "sh", "-c", "echo oops >&2; exit 7")
    assert (bad.ok, bad.returncode, bad.stderr.strip()) == (False, 7, "oops")
    with pytest.raises(LabStateError, match="no target 'vm9'"):
        vlan.exec("vm9", "true")


def test_capture_sees_what_the_test_sends(vlan):
    with vlan.capture("physnet1", "icmp") as wire, vlan.capture("vm2", "icmp") as vm2:
        assert vlan.exec("vm1", "ping", "-c2", "-i", "0.2", "-W2", "192.168.1.12").ok
    requests = [line for line in wire.lines if "echo request" in line]
    assert len(requests) == 2 and all("[physnet1 from compute1]" in line and "vlan 101" in line for line in requests)
    assert sum("echo request" in line for line in vm2.lines) == 2
    assert not any("vlan" in line for line in vm2.lines)        # untagged inside the instance
    with pytest.raises(api.CaptureFailed, match="did not start"):
        with vlan.capture("vm2", "not-a-filter((("):
            pass


def test_check_runs_chosen_checks(vlan):
    report = vlan.check("same project, same host")
    assert report.passed and [r.check.name for r in report.results] == ["same project, same host"]
    assert report.to_json()["results"][0]["seconds"] > 0
    with pytest.raises(LabStateError, match="has no check 'nope'"):
        vlan.check("nope")


def test_bad_names_are_usage_errors():
    with pytest.raises(UsageError):
        api.down("../etc")
    with pytest.raises(UsageError):
        api.cleanup("a/b")
