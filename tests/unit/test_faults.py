"""Every problem `lab status` names is a `Fault` (lab/runtime/faults.py): one test per kind
found outside lab/runtime/inventory.py (whose kinds are in test_inventory.py), each made by
the code that finds it, on a plan, with the kernel and OVS reads faked; its sentence and its
JSON record. And the kinds' table in docs/api.md lists exactly the kinds there are."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
from pathlib import Path

import pytest

from lab.core import metadata as core_metadata
from lab.core import naming
from lab.core.plan import build_plan
from lab.core.scenario import load_scenario
from lab.errors import LabError
from lab.runtime import agents, faults, health, ipsets, lifecycle, metadata, netns, ovsdb
from lab.runtime import fip as fips_rt
from lab.runtime.faults import Fault

DOCS = Path(__file__).resolve().parents[2] / "docs" / "api.md"


@pytest.fixture(scope="module")
def classic():
    return build_plan(load_scenario("classic-vlan"))


@pytest.fixture(scope="module")
def dvr():
    return build_plan(load_scenario("dvr-vlan"))


@pytest.fixture
def every_namespace(monkeypatch):
    monkeypatch.setattr(netns, "exists", lambda ns: True)
    monkeypatch.setattr(netns, "entered", lambda ns: contextlib.nullcontext())


class FakeLinks:
    """What a namespace holds, for the code that reads it through kernel.Links."""

    def __init__(self, devices=(), rules=(), iif_rules=(), routes_via=()):
        self.devices, self._rules, self._iif, self._via = set(devices), set(rules), set(iif_rules), set(routes_via)

    def __call__(self, ns):
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def has(self, dev):
        return dev in self.devices

    def rules(self):
        return self._rules

    def iif_rules(self):
        return self._iif

    def routes_via(self):
        return self._via


def as_json(f: Fault) -> dict:
    """What `status --json` prints of F, read back."""
    doc = json.loads(json.dumps(f.to_json()))
    assert doc["text"] == f.text() and doc["kind"] == f.kind
    assert set(doc) == {"kind", "who", "netns", "what", "expected", "found", "repair", "missing", "unexpected",
                        "text"}
    return doc


def test_a_missing_namespace(classic, monkeypatch):
    gone = {classic.port("vm1").netns, classic.nodes[0].netns}
    monkeypatch.setattr(netns, "exists", lambda ns: ns not in gone)
    found = lifecycle._namespace_faults(classic)
    assert [(f.kind, f.netns) for f in found] == [("namespace-missing", ns) for ns in classic.namespaces() if ns in gone]
    by_ns = {f.netns: f for f in found}
    assert by_ns[classic.port("vm1").netns].text() == (
        f"namespace {classic.port('vm1').netns} is missing; `lab up {classic.lab}` rebuilds it")
    node = as_json(by_ns[classic.nodes[0].netns])
    assert node["what"] == classic.nodes[0].netns and node["found"] == "missing"
    assert node["text"].endswith(f"it cannot be rebuilt in place: `lab down {classic.lab}`, then `lab up`")


def _rows(plan, node, **changed):
    """NODE's OVS ports as the IDL reads them, all where the plan puts them, but CHANGED."""
    rows = {name: ovsdb.PortRow(name, bridge, tag, "", 10, None, {})
            for name, (bridge, tag) in lifecycle._expected_ports(plan, node).items()}
    for name, row in changed.items():
        if row is None:
            del rows[name]
        else:
            rows[name] = dataclasses.replace(rows[name], **row)
    return rows


def test_ovs_ports_missing_misplaced_or_without_an_openflow_port(classic, monkeypatch):
    node = classic.node("compute1")
    vm1, patch = classic.port("vm1").ovs_port, node.physical_bridges[0].int_patch
    nic = node.physical_bridges[0].nic
    rows = _rows(classic, node, **{vm1: None, patch: {"tag": 5}, nic: {"ofport": -1, "error": "could not open"}})
    monkeypatch.setattr(ovsdb, "read_ports", lambda rundir, timeout=5.0: rows)
    found = {f.what: f for f in lifecycle._port_faults(classic, node)}
    assert set(found) == {vm1, patch, nic}
    again = f"`lab up {classic.lab}` applies the node's OVSDB transaction again"
    assert found[vm1].text() == f"compute1: port {vm1} is missing from br-int; {again}"
    assert as_json(found[vm1])["expected"] == f"br-int tag {classic.port('vm1').local_vlan}"
    assert found[patch].text() == f"compute1: port {patch} is on br-int tag 5, expected br-int tag None; {again}"
    assert (found[patch].kind, found[patch].found) == ("port-misplaced", "br-int tag 5")
    assert found[nic].kind == "port-no-ofport" and found[nic].netns == node.netns
    assert found[nic].text().startswith(f"compute1: port {nic} has no OpenFlow port (could not open); {again}")


def test_an_unreadable_ovsdb(classic, monkeypatch):
    def no_answer(rundir, timeout=5.0):
        raise ovsdb.OvsdbError("no answer from OVSDB within 5s")
    monkeypatch.setattr(ovsdb, "read_ports", no_answer)
    [f] = lifecycle._port_faults(classic, classic.node("network1"))
    assert (f.kind, f.what, f.found) == ("unreadable", "OVSDB", "no answer from OVSDB within 5s")
    assert f.text().startswith("network1: cannot read its OVSDB (no answer from OVSDB within 5s); ")


def test_a_plug_device_missing(classic, monkeypatch, every_namespace):
    node = classic.node("compute1")
    vm1 = classic.port("vm1")
    gone = vm1.plug.devices[0].name
    links = FakeLinks(d.name for p in node.ports for d in p.plug.devices if d.name != gone)
    monkeypatch.setattr(lifecycle, "Links", links)
    [f] = lifecycle._plug_faults(classic, node)
    assert (f.kind, f.who, f.netns, f.what) == ("plug-device-missing", "compute1", node.netns, f"vm1's {gone}")
    assert f.text().startswith(f"compute1: vm1's {gone} is missing; `lab up {classic.lab}` cannot make it alone")


def test_a_dvr_snat_redirect_rule_missing(dvr, monkeypatch, every_namespace):
    r = next(i for i in dvr.router_instances if len(i.rules) >= 1)
    kept = {(x.priority, x.table, x.source) for x in r.rules[1:]}
    monkeypatch.setattr(agents, "Links", FakeLinks(rules=kept))
    [f] = agents.router_faults(r, dvr.lab)
    x = r.rules[0]
    assert (f.kind, f.who, f.netns) == ("ip-rule", r.name, r.netns)
    assert f.text() == (f"{r.name}: no rule from {x.source} lookup {x.table} priority {x.priority}; "
                        f"`lab up {dvr.lab}` puts it back")


def test_a_fip_namespaces_rule_and_floating_ip_route(dvr, monkeypatch, every_namespace):
    fip = next(f for f in dvr.fip_namespaces if f.routes)
    link, route = fip.links[0], fip.routes[0]
    monkeypatch.setattr(fips_rt, "Links", FakeLinks(devices={x.fpr_dev for x in fip.links}))
    rule, gone = fips_rt.faults(fip, dvr.lab)
    assert rule.text() == (f"{fip.name}: no rule iif {link.fpr_dev} lookup {link.table}; "
                           f"`lab up {dvr.lab}` puts it back")
    assert (gone.kind, gone.netns) == ("route", fip.netns)
    assert gone.text().startswith(f"{fip.name}: no route to {route.address}/32 via {route.via} on {route.dev}; ")
    # an fpr- gone (named by inventory: link-missing) takes its routes with it: not named again
    monkeypatch.setattr(fips_rt, "Links", FakeLinks(iif_rules={(x.table, x.table, x.fpr_dev) for x in fip.links}))
    assert fips_rt.faults(fip, dvr.lab) == []


def test_open_vswitch_restarted(classic, monkeypatch, every_namespace):
    node = classic.node("compute2")
    monkeypatch.setattr(health, "ovs_state", lambda n: "restarted")
    f = health.ovs_fault(node, classic.lab)
    assert (f.kind, f.who, f.what) == ("ovs-restarted", "compute2", "br-int table 23")
    assert f.text() == ("compute2: Open vSwitch was restarted (no canary flow in br-int table 23) and lost the "
                        f"lab's flows; `lab up {classic.lab}` re-applies its rows, flows and ports")
    monkeypatch.setattr(health, "ovs_state", lambda n: "normal")
    assert health.ovs_fault(node, classic.lab) is None


def test_iptables_carries_every_rule_missing_and_unexpected(tmp_path, monkeypatch, every_namespace):
    rules = tmp_path / "iptables.rules"
    applied = ["*filter", ":INPUT ACCEPT [0:0]", "-A INPUT -j neutron-filter-top", "-A INPUT -j a",
               "-A INPUT -j b", "COMMIT"]
    monkeypatch.setattr(health, "iptables_now", lambda ns: applied)
    health.record_iptables(rules, "nlab.x.compute1")
    monkeypatch.setattr(health, "iptables_now", lambda ns: applied[:3] + ["-A INPUT -j c"] + applied[5:])
    f = health.iptables_fault("compute1", rules, "nlab.x.compute1", "x")
    doc = as_json(f)
    assert (doc["kind"], doc["netns"], doc["what"]) == ("iptables", "nlab.x.compute1", str(rules))
    assert doc["missing"] == ["-A INPUT -j a", "-A INPUT -j b"] and doc["unexpected"] == ["-A INPUT -j c"]
    assert f.text() == ("compute1: its iptables rules differ from what `up` applied (2 rule(s) missing, "
                        "1 unexpected; first missing: `-A INPUT -j a`); `lab up x` re-applies them")
    monkeypatch.setattr(health, "iptables_now", lambda ns: applied + ["-A INPUT -j c"])
    assert "(0 rule(s) missing, 1 unexpected; first unexpected: `-A INPUT -j c`)" in \
        health.iptables_fault("compute1", rules, "nlab.x.compute1", "x").text()


def test_iptables_chain_policy_and_order(tmp_path, monkeypatch, every_namespace):
    rules = tmp_path / "iptables.rules"
    applied = ["*filter", ":FORWARD ACCEPT [0:0]", ":neutron-filter-top - [0:0]",
               "-A FORWARD -j neutron-filter-top", "-A FORWARD -j a", "COMMIT"]
    monkeypatch.setattr(health, "iptables_now", lambda ns: applied)
    health.record_iptables(rules, "nlab.x.compute1")
    policy = [":FORWARD DROP [0:0]" if line == ":FORWARD ACCEPT [0:0]" else line for line in applied]
    monkeypatch.setattr(health, "iptables_now", lambda ns: policy)
    f = health.iptables_fault("compute1", rules, "nlab.x.compute1", "x")
    assert (f.missing, f.unexpected) == ((":FORWARD ACCEPT [0:0]",), (":FORWARD DROP [0:0]",))
    monkeypatch.setattr(health, "iptables_now", lambda ns: applied[:3] + [applied[4], applied[3]] + applied[5:])
    f = health.iptables_fault("compute1", rules, "nlab.x.compute1", "x")
    assert (f.found, f.missing, f.unexpected) == ("reordered", (), ())
    assert f.text() == ("compute1: its iptables rules are the ones `up` applied, in another order; "
                        "`lab up x` re-applies them")
    monkeypatch.setattr(health, "iptables_now", lambda ns: applied[:5] + ["-A FORWARD -j a"] + applied[5:])
    f = health.iptables_fault("compute1", rules, "nlab.x.compute1", "x")      # a rule added twice
    assert (f.missing, f.unexpected) == ((), ("-A FORWARD -j a",))


def test_iptables_that_cannot_be_read(tmp_path, monkeypatch, every_namespace):
    rules = tmp_path / "iptables.rules"
    monkeypatch.setattr(health, "iptables_now", lambda ns: ["*filter", "COMMIT"])
    health.record_iptables(rules, "nlab.x.compute1")

    def refused(ns):
        raise LabError("iptables-save: permission denied")
    monkeypatch.setattr(health, "iptables_now", refused)
    f = health.iptables_fault("router router1", rules, "nlab.x.r", "x")
    assert (f.kind, f.netns, f.what) == ("unreadable", "nlab.x.r", "iptables rules")
    assert f.text().startswith("router router1: cannot read its iptables rules (iptables-save: permission denied); ")


def test_ipsets_carry_every_member_missing_and_unexpected(tmp_path, monkeypatch, every_namespace):
    node = dataclasses.replace(build_plan(load_scenario("remote-groups")).nodes[0], rundir=str(tmp_path))
    (tmp_path / naming.NODE_IPSET_FILE).write_text("")
    want = {"NIPv4a": {"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"}, "NIPv4b": {"10.0.1.1"}}
    monkeypatch.setattr(ipsets, "parse_restore", lambda text: want)
    monkeypatch.setattr(ipsets, "sets_now", lambda ns: {"NIPv4a": {"10.0.0.1", "10.0.0.9"}})
    f = ipsets.node_fault(node, "x")
    doc = as_json(f)
    assert (doc["kind"], doc["who"], doc["netns"]) == ("ipset", node.name, node.netns)
    assert doc["what"] == str(tmp_path / naming.NODE_IPSET_FILE)
    assert doc["missing"] == ["NIPv4a 10.0.0.2", "NIPv4a 10.0.0.3", "NIPv4a 10.0.0.4", "NIPv4a 10.0.0.5", "NIPv4b"]
    assert doc["unexpected"] == ["NIPv4a 10.0.0.9"]
    assert f.text() == (f"{node.name}: its remote-group ipsets differ from the plan: set NIPv4a lacks 4 member(s) "
                        "(10.0.0.2, 10.0.0.3, 10.0.0.4, ...); set NIPv4a has 1 unexpected member(s) (10.0.0.9); "
                        "set NIPv4b is missing; `lab up x` re-applies them")
    monkeypatch.setattr(ipsets, "sets_now", lambda ns: want)
    assert ipsets.node_fault(node, "x") is None


def test_metadata_processes_not_running(dvr, monkeypatch):
    monkeypatch.setattr(metadata, "server_alive", lambda srv: False)
    monkeypatch.setattr(metadata, "agent_alive", lambda a: a.node != "network1")
    monkeypatch.setattr(metadata, "proxy_alive", lambda p: p.node != "compute1")
    found = metadata.faults(dvr)
    assert {f.kind for f in found} == {"metadata"}
    fix = f"`lab up {dvr.lab}` starts it again"
    proxy = next(p for p in core_metadata.proxies(dvr) if p.node == "compute1")
    texts = [f.text() for f in found]
    assert texts[0] == f"the metadata server of lab {dvr.lab} is not running; {fix}"
    assert f"the metadata agent of network1 is not running in {dvr.node('network1').netns}; {fix}" in texts
    assert f"the metadata proxy (haproxy) of {proxy.name} is not running in {proxy.netns}; {fix}" in texts
    assert found[0].netns == "" and as_json(found[0])["found"] == "not running"


def test_unreadable_flows_say_so():
    f = Fault("flows", "compute1", "nlab.x.compute1", "br-int", "readable", "unreadable (ovs-ofctl: timeout)", "again")
    assert f.text() == "compute1: br-int's flows are unreadable (ovs-ofctl: timeout); again"


def test_every_kind_is_in_the_table_of_docs_api_md():
    """docs/api.md's table of fault kinds (`| \\`kind\\` | meaning | repair |`) lists exactly PHRASES."""
    text = DOCS.read_text()
    section = text[text.index("### Fault kinds"):]
    section = section[:section.index("\n\n", section.index("| kind |"))]
    documented = re.findall(r"^\| `([a-z-]+)` \|", section, re.M)
    assert sorted(documented) == sorted(faults.PHRASES) and len(documented) == len(set(documented))
