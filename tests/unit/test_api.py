"""lab.api's pure parts: a lab may be given a name of its own, and everything derived from the
lab name (namespaces, state directory, UUIDs, MACs, device names, flow cookie) follows it,
stably; the scenario-named lab is unchanged (the golden files pin it)."""

from __future__ import annotations

import pytest

from lab import api
from lab.core.scenario import load_scenario
from lab.errors import UsageError


def test_a_renamed_lab_derives_everything_from_its_name():
    plain = api.plan("classic-vlan", datapath="netdev")
    named = api.plan("classic-vlan", name="t1a2b-classic-vlan", datapath="netdev")
    again = api.plan("classic-vlan", name="t1a2b-classic-vlan", datapath="netdev")
    assert plain.lab == "classic-vlan" and named.lab == "t1a2b-classic-vlan"
    assert named == again                                   # stable for a given name
    assert named.cookie != plain.cookie
    assert all(ns.startswith("nlab.t1a2b-classic-vlan.") for ns in named.namespaces())
    assert all(n.rundir.startswith("/run/neutron-lab/t1a2b-classic-vlan/") for n in named.nodes)
    p, q = plain.port("vm1"), named.port("vm1")
    assert p.port_id != q.port_id and p.mac != q.mac and p.ovs_port != q.ovs_port
    assert (p.ip, p.local_vlan, p.segmentation_id) == (q.ip, q.local_vlan, q.segmentation_id)


def test_the_scenario_named_lab_is_what_it_always_was():
    assert api.load("classic-vlan") == load_scenario("classic-vlan")
    assert api.load("classic-vlan", name="classic-vlan") == load_scenario("classic-vlan")


@pytest.mark.parametrize("bad", ["../etc", "Upper", "", "x" * 41, "a.b"])
def test_a_bad_name_is_refused_before_anything(bad):
    with pytest.raises(UsageError, match="is not a lab name"):
        api.load("classic-vlan", name=bad)
    with pytest.raises(UsageError):
        api.Lab(bad)


def test_check_report_json_and_schema():
    from lab.core.scenario import Check
    from lab.tools.checks import Result
    c = Check("a", "vm1", "vm2", "icmp", None, "reach", (), 0)
    report = api.CheckReport("lab1", [Result(c, "reach", "reached", True, ["ok   x"]),
                                      Result(c, "reach", "no reply", False, ["FAIL y"])], [0.5, 1.25], 1.75)
    doc = report.to_json()
    assert doc["schema_version"] == 1 and doc["passed"] is False and doc["lab"] == "lab1"
    assert [r["seconds"] for r in doc["results"]] == [0.5, 1.25]
    assert len(report.failed) == 1 and not report.passed


def test_status_json_carries_the_schema_version():
    s = api.LabStatus("lab1", "netdev", (), {"lab": "lab1", "problems": []})
    assert s.healthy and s.to_json() == {"schema_version": 1, "lab": "lab1", "problems": []}
    assert not api.LabStatus("lab1", "netdev", ("x",), {}).healthy
    fault = {"kind": "namespace-missing", "text": "namespace n is missing; ..."}
    assert api.LabStatus("lab1", "netdev", ("x",), {"faults": [fault]}).faults == (fault,)
    assert s.faults == ()


def test_up_of_a_scenario_object_under_another_name_is_refused():
    from lab.runtime import lifecycle
    with pytest.raises(UsageError, match="give the lab name when loading"):
        lifecycle.up(load_scenario("classic-vlan"), name="other")
