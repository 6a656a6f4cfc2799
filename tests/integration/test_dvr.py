"""dvr-vlan for real (seed 004): a distributed router on every host, east-west routed on the
sending compute and carried with its DVR MAC, the gateway MAC back at the receiver, the network
node's router never used; Neutron's DVR flows on br-int and br-vlan, permanent neighbours and
the L3 agent's sysctls; trace, flows, graph and status speak DVR; a deleted qrouter- and lost
neighbour entries are reported and repaired; the host is unchanged afterwards."""

from __future__ import annotations

import json
import subprocess

import pytest

from lab.tools import checks

from .conftest import lab, lab_up, running, test_name

SCENARIO = "dvr-vlan"
LAB = test_name(SCENARIO)


@pytest.fixture(scope="module")
def live(host_before):
    with running(host_before, SCENARIO) as labs:
        yield labs[SCENARIO]


def test_every_check_passes_with_dvr_evidence(live):
    report = json.loads(lab("check", LAB, "--json").stdout)
    assert report["passed"], json.dumps(report, indent=1)
    results = {r["name"]: r for r in report["results"]}
    d1, d2 = live.plan.node("compute1").dvr_mac, live.plan.node("compute2").dvr_mac
    g2 = live.plan.mac_named("gateway:net2")
    ew = results["east-west is routed on compute1"]["evidence"]
    assert f"[physnet1 from compute1] {d1} > " in ew[1] and "vlan 102" in ew[1]
    assert f"[vm4 eth0] {g2} > " in ew[2]
    assert f"[physnet1 from compute2] {d2} > " in ew[3] and "echo reply" in ew[3]
    arp = results["ARP for the gateway crosses the VLAN wire"]["evidence"]
    assert "Request who-has 192.168.1.1" in arp[0] and "Reply 192.168.1.1 is-at" in arp[1]


def test_the_same_router_on_every_host(live):
    router = live.plan.router("router1")
    seen = set()
    for inst in (i for i in router.instances if i.role == "dvr_local"):     # snat-: tests/integration/test_dvr_north_south.py
        out = lab("exec", LAB, inst.name, "--", "ip", "-4", "-o", "addr", "show").stdout
        links = lab("exec", LAB, inst.name, "--", "ip", "-o", "link", "show").stdout
        seen.add(tuple(sorted((q.ns_dev, q.ip, q.mac) for q in inst.interfaces
                              if f"{q.ns_dev}    inet {q.ip}/24" in out and q.mac in links)))
    assert len(seen) == 1 and len(next(iter(seen))) == 2


def test_permanent_neighbours_and_sysctls(live):
    inst = live.plan.router_instances_of("router1@compute1")[0]
    neigh = lab("exec", LAB, inst.name, "--", "ip", "neigh", "show", "nud", "permanent").stdout
    for n in inst.neighbours:
        assert f"{n.ip} dev {n.dev} lladdr {n.mac} PERMANENT" in neigh, neigh
    for key, value in (("net/ipv4/ip_forward", "1"), ("net/ipv4/conf/all/arp_ignore", "1"),
                       ("net/ipv4/conf/all/arp_announce", "2")):
        assert lab("exec", LAB, inst.name, "--", "cat", f"/proc/sys/{key}").stdout.strip() == value


def test_installed_flows_are_the_rendered_ones(live):
    d1 = live.plan.node("compute1").dvr_mac
    out = lab("exec", LAB, "compute1", "--", "ovs-ofctl", "dump-flows", "br-vlan").stdout
    assert f"actions=mod_dl_src:{d1},resubmit(,2)" in out
    for mac in live.plan.other_dvr_macs("compute1"):
        assert f"table=3, n_packets" in out and f"dl_src={mac} actions=output:" in out
    brint = lab("exec", LAB, "compute2", "--", "ovs-ofctl", "dump-flows", "br-int").stdout
    assert f"in_port=\"int-br-vlan\",dl_src={d1} actions=resubmit(,2)" in brint \
        or f"dl_src={d1} actions=resubmit(,2)" in brint


def test_flows_name_the_dvr_tables_and_macs(live):
    out = lab("flows", LAB, "compute1", "br-vlan").stdout
    assert "table 1 — DVR process (physical)" in out and "table 3 — DVR not learn (physical)" in out
    assert "DVR MAC of compute2" in out and "DVR MAC of network1" in out
    out = lab("flows", LAB, "compute2", "br-int").stdout
    assert "table 2 — DVR to src MAC (physical)" in out and "DVR MAC of compute1" in out


def test_trace_walks_the_distributed_path(live):
    t = json.loads(lab("trace", LAB, "vm1", "vm4", "--json").stdout)
    assert t["reached"], json.dumps(t, indent=1)
    where = [h["where"] for h in t["hops"]]
    assert "router1@compute1 qr-" in " ".join(where)
    assert not any("network1" in w for w in where)
    d1 = live.plan.node("compute1").dvr_mac
    wire = next(h for h in t["hops"] if h["where"] == "wire physnet1 (from compute1)")
    assert d1 in wire["expected"] and wire["ok"]
    explain = " ".join(e for h in t["hops"] for e in h["explain"])
    assert "table 1" in explain and "table 2" in explain and "table 60" in explain


def test_graph_draws_a_router_per_host(live):
    out = lab("graph", LAB, "--format", "text").stdout
    for node in ("network1", "compute1", "compute2"):
        assert f"router1@{node}" in out


def test_status_shows_the_dvr_macs(live):
    out = lab("status", LAB).stdout
    for node, mac in live.plan.dvr_macs:
        assert f"DVR MAC {mac}" in out
    status = json.loads(lab("status", LAB, "--json").stdout)
    assert {n["name"]: n["dvr_mac"] for n in status["nodes"]} == dict(live.plan.dvr_macs)


def test_deleted_qrouter_on_a_compute_is_repaired(live):
    inst = live.plan.router_instances_of("router1@compute1")[0]
    subprocess.run(["ip", "netns", "del", inst.netns], check=True)
    status = lab("status", LAB, check=False)
    assert status.returncode == 1 and f"namespace {inst.netns} is missing" in status.stdout
    assert "repaired" in lab_up(SCENARIO).stdout
    assert lab("status", LAB).returncode == 0
    ew = next(c for c in live.scenario().checks if c.name == "east-west is routed on compute1")
    result = checks.run_check(live.plan, ew)
    assert result.passed, result.evidence


def test_lost_neighbour_entries_are_reported_and_repaired(live):
    inst = live.plan.router_instances_of("router1@compute2")[0]
    n = next(x for x in inst.neighbours if x.ip == "192.168.1.11")
    lab("exec", LAB, inst.name, "--", "ip", "neigh", "del", n.ip, "dev", n.dev)
    status = lab("status", LAB, check=False)
    assert status.returncode == 1
    assert f"router1@compute2: no permanent neighbour entry {n.ip} {n.mac} on {n.dev}" in status.stdout
    assert "repaired" in lab_up(SCENARIO).stdout
    assert lab("status", LAB).returncode == 0
