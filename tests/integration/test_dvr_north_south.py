"""DVR north-south for real, on dvr-vlan and dvr-vxlan: SNAT for an instance without a floating
IP goes compute -> the network node's snat- -> qg-, the external host sees the router's
gateway address; the SNAT redirect (ip rule + a table per qr- subnet) in every qrouter-, the
sg- ports and the snat- namespace as DvrEdgeRouter makes them; a deleted snat- namespace and
a lost redirect rule are reported and repaired; the host is unchanged afterwards."""

from __future__ import annotations

import ipaddress
import json
import subprocess

import pytest

from lab.tools import checks

from .conftest import lab, lab_up, running, test_name

SNAT_CHECK = "SNAT through the network node's snat-"


@pytest.fixture(scope="module", params=["dvr-vlan", "dvr-vxlan"])
def live(request, host_before):
    with running(host_before, request.param) as labs:
        yield request.param, labs[request.param]


def test_snat_goes_through_the_network_nodes_snat(live):
    scenario, lab_ = live
    name = test_name(scenario)
    report = json.loads(lab("check", name, "--json").stdout)
    assert report["passed"], json.dumps(report, indent=1)
    ev = {r["name"]: r for r in report["results"]}[SNAT_CHECK]["evidence"]
    d2 = lab_.plan.node("compute2").dvr_mac
    snat = lab_.plan.router_instances_of("router1.snat")[0]
    sg1 = next(p for p in snat.interfaces if p.network == "net1")
    assert "[router1@compute2 qr-" in ev[0] and "192.168.1.12 > 203.0.113.50" in ev[0]
    # redirected to net1's sg- port: from compute2's DVR MAC (inside the VNI on VXLAN)
    assert d2 in ev[1] and f"> {sg1.mac}" in ev[1], ev[1]
    assert f"[router1.snat {sg1.ns_dev}]" in ev[2]
    assert "[ext1 eth0]" in ev[3] and "203.0.113.101 > 203.0.113.50" in ev[3]
    assert "never pass through router router1@network1" in ev[4]


def test_snat_namespace_as_dvr_edge_router_makes_it(live):
    scenario, lab_ = live
    name = test_name(scenario)
    snat = lab_.plan.router_instances_of("router1.snat")[0]
    assert snat.netns.endswith(f".network1.snat-{lab_.plan.router('router1').router_id}")
    addrs = lab("exec", name, "router1.snat", "--", "ip", "-4", "-o", "addr", "show").stdout
    for p in snat.ports:
        assert f"{p.ns_dev}    inet {p.ip}/{p.prefixlen}" in addrs, addrs
    assert [p.ip for p in snat.interfaces] == ["192.168.1.3", "192.168.2.3"]
    routes = lab("exec", name, "router1.snat", "--", "ip", "-4", "route", "show", "default").stdout
    assert f"default via 203.0.113.1 dev {snat.gateway.ns_dev}" in routes
    for key, value in (("net/ipv4/ip_nonlocal_bind", "1"), ("net/netfilter/nf_conntrack_tcp_loose", "0"),
                       ("net/ipv4/ip_forward", "1")):
        assert lab("exec", name, "router1.snat", "--", "cat", f"/proc/sys/{key}").stdout.strip() == value
    nat = lab("exec", name, "router1.snat", "--", "iptables-save", "-t", "nat").stdout
    assert f"-A neutron-l3-agent-snat -o {snat.gateway.ns_dev} -j SNAT --to-source 203.0.113.101 --random-fully" \
        in nat


def test_every_qrouter_redirects_to_the_sg_ports(live):
    scenario, lab_ = live
    name = test_name(scenario)
    snat = lab_.plan.router_instances_of("router1.snat")[0]
    sg = {p.network: p.ip for p in snat.interfaces}
    for inst in (i for i in lab_.plan.router_instances_of("router1") if i.role == "dvr_local"):
        rules = lab("exec", name, inst.name, "--", "ip", "-4", "rule", "show").stdout
        for q in inst.interfaces:
            idx = int(ipaddress.IPv4Address(q.ip))
            net = ipaddress.ip_interface(f"{q.ip}/{q.prefixlen}").network
            assert f"{idx}:\tfrom {net} lookup {idx}" in rules, rules
            table = lab("exec", name, inst.name, "--", "ip", "-4", "route", "show", "table", str(idx)).stdout
            assert f"default via {sg[q.network]} dev {q.ns_dev}" in table, table
            redirects = lab("exec", name, inst.name, "--", "cat",
                            f"/proc/sys/net/ipv4/conf/{q.ns_dev}/send_redirects").stdout.strip()
            assert redirects == "0"
        neigh = lab("exec", name, inst.name, "--", "ip", "neigh", "show", "nud", "permanent").stdout
        for p in snat.interfaces:
            assert f"{p.ip} dev " in neigh and p.mac in neigh


def test_deleted_snat_namespace_is_repaired(live):
    scenario, lab_ = live
    name = test_name(scenario)
    snat = lab_.plan.router_instances_of("router1.snat")[0]
    subprocess.run(["ip", "netns", "del", snat.netns], check=True)
    status = lab("status", name, check=False)
    assert status.returncode == 1 and f"namespace {snat.netns} is missing" in status.stdout
    assert "repaired" in lab_up(scenario).stdout
    assert lab("status", name).returncode == 0
    check = next(c for c in lab_.scenario().checks if c.name == SNAT_CHECK)
    result = checks.run_check(lab_.plan, check)
    assert result.passed, result.evidence


def test_lost_redirect_rule_is_reported_and_repaired(live):
    scenario, lab_ = live
    name = test_name(scenario)
    inst = lab_.plan.router_instances_of("router1@compute2")[0]
    rule = inst.rules[0]
    lab("exec", name, inst.name, "--", "ip", "rule", "del", "priority", str(rule.priority))
    status = lab("status", name, check=False)
    assert status.returncode == 1
    assert f"router1@compute2: no rule from {rule.source} lookup {rule.table} priority {rule.priority}" \
        in status.stdout
    assert "repaired" in lab_up(scenario).stdout
    assert lab("status", name).returncode == 0
