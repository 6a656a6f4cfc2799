"""classic-vxlan and classic-gre for real: br-tun as the OVS agent programs it, VNI / GRE key
on the underlay, the tunnel MTU giving full-size TCP segments, l2_population and the ARP
responder (classic-vxlan), both labs up together, and the host unchanged afterwards."""

from __future__ import annotations

import json

import pytest


from .conftest import lab, running, test_name

# scenario -> (segment word in the evidence, tunnel port prefix, br-tun table, TCP MSS)
TUNNELS = {
    "classic-vxlan": ("VXLAN VNI 1001", "vxlan-", 4, 1450 - 52),
    "classic-gre": ("GRE key 1", "gre-", 3, 1458 - 52),
}


@pytest.fixture(scope="module")
def tunnel_labs(host_before):
    with running(host_before, *TUNNELS) as labs:   # both up at once
        yield labs


@pytest.mark.parametrize("name", list(TUNNELS))
def test_checks_pass_with_tunnel_evidence(tunnel_labs, name):
    segment, _, _, mss = TUNNELS[name]
    report = json.loads(lab("check", test_name(name), "--json").stdout)
    assert report["passed"], json.dumps(report, indent=1)
    results = {r["name"]: r for r in report["results"]}
    cross = results["same project, different hosts"]["evidence"][0]
    assert f"cross underlay in {segment}" in cross
    # between the two compute nodes' endpoint addresses
    assert "198.51.100.12" in cross and "198.51.100.13" in cross
    tcp = results["TCP across hosts, full-size segments"]
    assert f"MSS {mss}" in tcp["seen"], tcp


@pytest.mark.parametrize("name", list(TUNNELS))
def test_br_tun_reads_like_the_agent(tunnel_labs, name):
    _, prefix, table, _ = TUNNELS[name]
    flows = lab("exec", test_name(name), "compute1", "--", "ovs-ofctl", "dump-flows", "br-tun").stdout
    assert "in_port=patch-int" in flows or "in_port=1" in flows
    assert f"table={table}," in flows and "tun_id=0x" in flows
    assert "learn(table=20" in flows and "table=22" in flows
    ports = lab("exec", test_name(name), "compute1", "--", "ovs-vsctl", "list-ports", "br-tun").stdout.split()
    assert "patch-int" in ports and sum(p.startswith(prefix) for p in ports) == 2
    endpoint = tunnel_labs[name].plan.node("compute1").tunnel
    addrs = lab("exec", test_name(name), "compute1", "--", "ip", "-4", "-o", "addr").stdout
    assert f"{endpoint.local_ip}/24" in addrs


def test_vxlan_l2pop_and_arp_responder_flows(tunnel_labs):
    flows = lab("exec", test_name("classic-vxlan"), "compute1", "--", "ovs-ofctl", "dump-flows", "br-tun").stdout
    assert "table=21" in flows and "arp_tpa=192.168.1.12" in flows   # vm2, on compute2
    assert "table=20" in flows and "priority=2,dl_vlan=1" in flows    # l2pop unicast
    gre = lab("exec", test_name("classic-gre"), "compute1", "--", "ovs-ofctl", "dump-flows", "br-tun").stdout
    assert "arp_tpa" not in gre                                        # off by default


def test_status_knows_both_labs(tunnel_labs):
    status = json.loads(lab("status", "--json").stdout)
    assert status["schema_version"] == 1
    ours = [item for item in status["labs"] if item["lab"] in {test_name(s) for s in TUNNELS}]
    assert {item["lab"] for item in ours} == {test_name(s) for s in TUNNELS}
    assert all(not item["problems"] for item in ours)


def test_flows_name_tunnel_ids(tunnel_labs):
    out = lab("flows", test_name("classic-vxlan"), "compute1", "br-tun").stdout
    assert "table 4 — VXLAN tunnel id to local VLAN" in out and "table 22 — flood to tunnels" in out
    assert "tunnel id 1001 = net1" in out and "learns MAC -> tunnel into table 20" in out
    gre = lab("flows", test_name("classic-gre"), "compute2", "br-tun").stdout
    assert "table 3 — GRE tunnel id to local VLAN" in gre and "tunnel id 1 = net1" in gre
