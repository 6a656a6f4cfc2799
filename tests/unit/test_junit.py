"""`lab check --junit`: one testcase per check, a failure carries the evidence, read back with
an XML parser as a CI system would."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from lab import junit

REPORT = {
    "schema_version": 1, "lab": "classic-vlan", "passed": False, "elapsed": 3.5,
    "results": [
        {"name": "same project, different hosts", "from": "vm1", "to": "vm2", "proto": "icmp",
         "expected": "reach (icmp vm1 -> 192.168.1.12)", "seen": "reached (3/3 echo replies)", "passed": True,
         "evidence": ["ok   probe packets cross physnet1 tagged VLAN 101: 6 seen"], "seconds": 1.2},
        {"name": "different projects", "from": "vm1", "to": "alt-vm1", "proto": "tcp:22",
         "expected": "blocked (tcp:22 vm1 -> 192.168.2.11)", "seen": "connected", "passed": False,
         "evidence": ["ok   something", "FAIL probe packets never appear on physnet1: 2 seen <&>"], "seconds": 2.3},
    ],
}


def test_one_testcase_per_check_with_evidence():
    root = ET.fromstring(junit.from_check_report(REPORT, timestamp=0, hostname="h"))
    assert root.tag == "testsuites" and root.get("tests") == "2" and root.get("failures") == "1"
    suite = root.find("testsuite")
    assert suite.get("name") == "lab check classic-vlan" and suite.get("timestamp") == "1970-01-01T00:00:00"
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["same project, different hosts", "different projects"]
    assert [c.get("time") for c in cases] == ["1.200", "2.300"]
    assert all(c.get("classname") == "neutron-lab.classic-vlan" for c in cases)
    ok, bad = cases
    assert ok.find("failure") is None
    assert "tagged VLAN 101" in ok.find("system-out").text
    failure = bad.find("failure")
    assert failure.get("type") == "CheckFailed"
    assert failure.get("message").startswith("expected blocked (tcp:22 vm1 -> 192.168.2.11), seen connected")
    assert "FAIL probe packets never appear on physnet1: 2 seen <&>" in failure.get("message")
    assert "evidence: FAIL probe packets never appear on physnet1: 2 seen <&>" in failure.text
    props = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert props == {"lab": "classic-vlan", "schema_version": "1"}


def test_all_passed_has_no_failure():
    report = dict(REPORT, results=REPORT["results"][:1], passed=True)
    root = ET.fromstring(junit.from_check_report(report))
    assert root.get("failures") == "0" and root.find(".//failure") is None
