"""The debugging commands on a live classic-vlan: trace (a working path and one blocked by a
security group), capture (to a pcap read back here, and live), annotated flows with --diff,
and the graph in every format."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import time

import pytest

from lab.tools import packets

from . import hoststate
from .conftest import PREFIX, REPO, lab, running, test_name

SCENARIO = "classic-vlan"
LAB = test_name(SCENARIO)


@pytest.fixture(scope="module")
def live(host_before):
    with running(host_before, SCENARIO) as labs:
        yield labs[SCENARIO]


def test_trace_of_a_working_path(live):
    out = lab("trace", LAB, "vm1", "vm2", "--json")
    t = json.loads(out.stdout)
    assert t["reached"] and t["verdict"].startswith("delivered")
    hops = {h["where"]: h for h in t["hops"]}
    assert hops["wire physnet1 (from compute1)"]["ok"] and "vlan 101" in hops["wire physnet1 (from compute1)"]["explain"][0]
    brint = hops["compute1 br-int"]
    assert any(e.startswith("br-int: table 0") for e in brint["explain"])
    assert any(e.startswith("Datapath actions: push_vlan(vid=101") for e in brint["explain"])
    egress = next(h for h in t["hops"] if h["kind"] == "iptables")
    assert any("neutron-openvswi-s" in e and "RETURN" in e for e in egress["explain"])
    assert all(h["ok"] in (True, None) for h in t["hops"])


def test_trace_names_the_security_group_rule_that_drops(live):
    out = lab("trace", LAB, "vm1", "vm4", check=False)
    assert out.returncode == 1
    vm4 = live.plan.port("vm4")
    verdict = out.stdout.strip().splitlines()[-1]
    assert verdict.startswith(f"not delivered: last seen at compute2 {vm4.ovs_port}")
    assert "-A neutron-openvswi-sg-fallback" in verdict and "-j DROP" in verdict
    assert f"{vm4.plug.host_device}" in out.stdout and "<-- not seen" in out.stdout


def test_trace_through_the_router_and_nat(live):
    t = json.loads(lab("trace", LAB, "ext1", "203.0.113.102", "--json").stdout)
    assert t["reached"]
    after_dnat = next(h for h in t["hops"] if h["expected"].endswith("(after DNAT)"))
    assert (after_dnat["src"], after_dnat["dst"]) == ("203.0.113.50", "192.168.1.11") and after_dnat["ok"]
    nat = next(h for h in t["hops"] if h["kind"] == "nat")
    assert any("DNAT --to-destination 192.168.1.11" in e for e in nat["explain"])


def _ethertypes(path):
    """Read the pcap file back with dpkt: the EtherType after the two MAC addresses of each
    frame, and the frames in time order (merged from every port of the wire)."""
    with open(path, "rb") as f:
        records = list(packets.read_raw(f))
    assert all(linktype == packets.DLT_EN10MB for _, _, linktype in records)
    assert [ts for ts, _, _ in records] == sorted(ts for ts, _, _ in records)
    return [struct.unpack("!H", frame[12:14])[0] for _, frame, _ in records]


def test_capture_a_wire_to_pcap_and_read_it_back(live, tmp_path):
    out = tmp_path / "physnet1.pcap"
    proc = subprocess.Popen([sys.executable, "-m", "lab.cli", "capture", LAB, "physnet1", "-w", str(out),
                             "-c", "4", "icmp"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "capturing on every port" in proc.stderr.readline()
        time.sleep(0.5)  # the per-port tcpdumps print "listening" on stderr we do not read
        lab("exec", LAB, "vm1", "--", "ping", "-c", "3", "-i", "0.2", "-W", "1", "192.168.1.12")
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    types = _ethertypes(out)
    assert len(types) == 4 and set(types) == {0x8100}     # every frame carries its 802.1Q tag
    decoded = subprocess.run(["tcpdump", "-r", str(out), "-e", "-nn"], capture_output=True, text=True).stdout
    assert decoded.count("vlan 101") == 4
    assert not [p for p in hoststate.live_lab_processes(PREFIX) if "tcpdump" in p]


def test_live_capture_on_an_instance_stops_by_itself(live):
    proc = subprocess.Popen([sys.executable, "-m", "lab.cli", "capture", LAB, "vm2", "-c", "2",
                             "icmp[icmptype]", "==", "icmp-echo"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "listening" not in proc.stderr.readline():
            pass
        lab("exec", LAB, "vm1", "--", "ping", "-c", "2", "-i", "0.2", "-W", "1", "192.168.1.12")
        out, _ = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert out.count("ICMP echo request") == 2 and "192.168.1.11 > 192.168.1.12" in out


def test_flows_are_annotated_and_diffed(live):
    out = lab("flows", LAB, "compute1").stdout
    assert "table 0 — local switching" in out and "table 24 — ARP spoofing protection" in out
    assert "VLAN 101 on the wire = net1" in out
    vm1 = live.plan.port("vm1")
    assert f"{vm1.ovs_port} [vm1 (net1)]" in out
    lab("flows", LAB, "compute1", "br-vlan", "--diff")
    lab("exec", LAB, "vm1", "--", "ping", "-c", "5", "-i", "0.2", "-W", "1", "192.168.1.12")
    deadline = time.monotonic() + 5     # OVS updates flow counters about once a second
    while time.monotonic() < deadline:
        diff = lab("flows", LAB, "compute1", "br-vlan", "--diff").stdout
        if "leaves with VLAN 101" in diff:
            break
        time.sleep(0.5)
    line = next(line for line in diff.splitlines() if "leaves with VLAN 101" in line)
    assert line.split()[0].startswith("+")


@pytest.mark.parametrize("fmt", ["text", "mermaid", "dot"])
def test_graph_prints(live, fmt):
    out = lab("graph", LAB, "--format", fmt).stdout
    assert {"text": f"lab {LAB}", "mermaid": "flowchart LR", "dot": "digraph"}[fmt] in out
    assert "br-int" in out and "qrouter-" in out and "physnet1" in out


@pytest.mark.parametrize("suffix,magic", [("svg", b"<?xml"), ("png", b"\x89PNG"), ("dot", b"digraph")])
def test_graph_files(live, tmp_path, suffix, magic):
    out = tmp_path / f"lab.{suffix}"
    lab("graph", LAB, "-o", str(out))
    assert out.read_bytes().startswith(magic)
