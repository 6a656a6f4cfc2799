"""DVR north-south for real, on dvr-vlan and dvr-vxlan: SNAT for an instance without a floating
IP goes compute -> the network node's snat- -> qg-, the external host sees the router's
gateway address; the SNAT redirect (ip rule + a table per qr- subnet) in every qrouter-, the
sg- ports and the snat- namespace as DvrEdgeRouter makes them; vm1's floating IP on compute1
through fip- (fg- proxy ARP, rfp-/fpr-, table 16, rule 32768), never the network node; a
deleted snat- or fip- namespace, a lost redirect rule and a deleted fip- or qrouter- iptables
rule are reported and repaired; the host is unchanged afterwards."""

from __future__ import annotations

import ipaddress
import json
import subprocess

import pytest

from lab.tools import checks

from .conftest import lab, lab_up, running, test_name

SNAT_CHECK = "SNAT through the network node's snat-"
FIP_IN = "floating IP inbound through compute1's fip-"
FIP_OUT = "floating IP outbound leaves compute1 as the floating IP"


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


def test_floating_ip_goes_through_compute1s_fip(live):
    scenario, lab_ = live
    name = test_name(scenario)
    report = json.loads(lab("check", name, "--json").stdout)
    results = {r["name"]: r for r in report["results"]}
    assert results[FIP_IN]["passed"] and results[FIP_OUT]["passed"], json.dumps(report, indent=1)
    fip = compute1_fip(lab_.plan)
    inbound = results[FIP_IN]["evidence"]
    # the example frame may be the request or the reply: the addresses say which side of the NAT
    assert f"[{fip.name} " in inbound[0] and "203.0.113.102" in inbound[0] and "192.168.1.11" not in inbound[0]
    assert "[router1@compute1 qr-" in inbound[1] and "192.168.1.11" in inbound[1] and "203.0.113.102" not in inbound[1]
    assert "never reach network1" in inbound[3] and "never pass through router router1.snat" in inbound[4]
    outbound = results[FIP_OUT]["evidence"]
    assert "[ext1 eth0]" in outbound[2] and "203.0.113.102" in outbound[2] and "192.168.1.11" not in outbound[2]
    assert "never reach network1" in outbound[4]


def test_fip_namespace_as_the_dvr_l3_agent_makes_it(live):
    scenario, lab_ = live
    name = test_name(scenario)
    fip = compute1_fip(lab_.plan)
    (link,) = fip.links
    assert (fip.node, fip.gateway.ip, link.rfp_ip, link.fpr_ip) == ("compute1", "203.0.113.103",
                                                                  "169.254.64.0", "169.254.64.1")
    addrs = lab("exec", name, fip.name, "--", "ip", "-4", "-o", "addr", "show").stdout
    assert f"{fip.gateway.ns_dev}    inet 203.0.113.103/24" in addrs and f"{link.fpr_dev}    inet 169.254.64.1/31" in addrs
    for key, value in ((f"net/ipv4/conf/{fip.gateway.ns_dev}/proxy_arp", "1"), ("net/ipv4/ip_nonlocal_bind", "1")):
        assert lab("exec", name, fip.name, "--", "cat", f"/proc/sys/{key}").stdout.strip() == value
    # proxy_delay=1 is in 1/100 s and kept in jiffies: it reads back 0 or 1 depending on HZ
    delay = lab("exec", name, fip.name, "--", "cat", f"/proc/sys/net/ipv4/neigh/{fip.gateway.ns_dev}/proxy_delay")
    assert delay.stdout.strip() in ("0", "1")
    routes = lab("exec", name, fip.name, "--", "ip", "-4", "route", "show").stdout
    assert f"203.0.113.102 via 169.254.64.0 dev {link.fpr_dev}" in routes, routes
    rules = lab("exec", name, fip.name, "--", "ip", "-4", "rule", "show").stdout
    assert f"{link.table}:\tfrom all iif {link.fpr_dev} lookup {link.table}" in rules, rules
    table = lab("exec", name, fip.name, "--", "ip", "-4", "route", "show", "table", str(link.table)).stdout
    assert f"default via 203.0.113.1 dev {fip.gateway.ns_dev}" in table
    raw = lab("exec", name, fip.name, "--", "iptables-save", "-t", "raw").stdout
    assert "-A neutron-l3-agent-PREROUTING -j CT --notrack" in raw
    # the qrouter- side: rfp-, table 16, the floating IP's rule, its NAT
    qrules = lab("exec", name, "router1@compute1", "--", "ip", "-4", "rule", "show").stdout
    assert "32768:\tfrom 192.168.1.11 lookup 16" in qrules, qrules
    t16 = lab("exec", name, "router1@compute1", "--", "ip", "-4", "route", "show", "table", "16").stdout
    assert f"default via 169.254.64.1 dev {link.rfp_dev}" in t16
    nat = lab("exec", name, "router1@compute1", "--", "iptables-save", "-t", "nat").stdout
    assert f"-A neutron-l3-agent-PREROUTING -d 203.0.113.102/32 -i {link.rfp_dev} -j DNAT --to-destination " \
           "192.168.1.11" in nat


def compute1_fip(plan):
    return next(f for f in plan.fip_namespaces if f.node == "compute1")


def test_fip_namespace_on_every_host_without_a_floating_ip(live):
    """issue 12: Neutron's DvrLocalRouter.process_external makes fip- (fg-, the rfp-/fpr- link,
    table 16) on network1 (dvr_snat) and compute2 too, where no floating IP is bound."""
    scenario, lab_ = live
    name = test_name(scenario)
    others = [f for f in lab_.plan.fip_namespaces if f.node != "compute1"]
    assert [(f.node, f.gateway.ip) for f in others] == [("network1", "203.0.113.104"), ("compute2", "203.0.113.105")]
    for fip in others:
        (link,) = fip.links
        addrs = lab("exec", name, fip.name, "--", "ip", "-4", "-o", "addr", "show").stdout
        assert f"{fip.gateway.ns_dev}    inet {fip.gateway.ip}/24" in addrs and \
            f"{link.fpr_dev}    inet 169.254.64.1/31" in addrs, addrs
        routes = lab("exec", name, fip.name, "--", "ip", "-4", "route", "show").stdout
        assert "203.0.113.102" not in routes, routes      # no floating IP's /32 here
        table = lab("exec", name, fip.name, "--", "ip", "-4", "route", "show", "table", str(link.table)).stdout
        assert f"default via 203.0.113.1 dev {fip.gateway.ns_dev}" in table, table   # _add_default_gateway_for_fip
        router = f"router1@{fip.node}"
        t16 = lab("exec", name, router, "--", "ip", "-4", "route", "show", "table", "16").stdout
        assert f"default via 169.254.64.1 dev {link.rfp_dev}" in t16, t16
        qrules = lab("exec", name, router, "--", "ip", "-4", "rule", "show").stdout
        assert "lookup 16" not in qrules, qrules          # no floating IP here: nothing uses table 16
        nat = lab("exec", name, router, "--", "iptables-save", "-t", "nat").stdout
        assert "-j neutron-l3-agent-float-snat" not in nat and f"! -o {link.rfp_dev}" not in nat
        # the fg- answers on the external wire: ext1 reaches it
        ping = lab("exec", name, "ext1", "--", "ping", "-c", "1", "-W", "2", fip.gateway.ip, check=False)
        assert ping.returncode == 0, ping.stdout


def test_deleted_fip_namespace_is_repaired(live):
    scenario, lab_ = live
    name = test_name(scenario)
    fip = compute1_fip(lab_.plan)
    subprocess.run(["ip", "netns", "del", fip.netns], check=True)
    status = lab("status", name, check=False)
    assert status.returncode == 1 and f"namespace {fip.netns} is missing" in status.stdout
    assert "repaired" in lab_up(scenario).stdout
    assert lab("status", name).returncode == 0
    for check in (c for c in lab_.scenario().checks if c.name in (FIP_IN, FIP_OUT)):
        result = checks.run_check(lab_.plan, check)
        assert result.passed, result.evidence


def _drop_fip_notrack(lab_):
    """fip-'s one rule of its own (FipNamespace.create: raw PREROUTING -j CT --notrack)."""
    fip = compute1_fip(lab_.plan)
    return fip.name, "raw", ["neutron-l3-agent-PREROUTING", "-j", "CT", "--notrack"]


def _drop_qrouter_dnat(lab_):
    """compute1's qrouter-: the floating IP's DNAT of what comes in by rfp-."""
    (link,) = compute1_fip(lab_.plan).links
    return "router1@compute1", "nat", ["neutron-l3-agent-PREROUTING", "-d", "203.0.113.102/32", "-i", link.rfp_dev,
                                       "-j", "DNAT", "--to-destination", "192.168.1.11"]


def _drop_qrouter_float_snat(lab_):
    """compute1's qrouter-: float-snat, vm1's traffic leaving as its floating IP."""
    return "router1@compute1", "nat", ["neutron-l3-agent-float-snat", "-s", "192.168.1.11/32", "-j", "SNAT",
                                       "--to-source", "203.0.113.102", "--random-fully"]


@pytest.mark.parametrize("inject", [_drop_fip_notrack, _drop_qrouter_dnat, _drop_qrouter_float_snat],
                         ids=lambda f: f.__name__[len("_drop_"):])
def test_deleted_dvr_iptables_rule_is_reported_and_repaired(live, inject):
    """A rule deleted from fip- or from a compute's qrouter- (the floating IP's NAT): `status`
    names the namespace and the rule, `up` re-applies the rendered rules, the floating IP's
    checks pass again."""
    scenario, lab_ = live
    name = test_name(scenario)
    target, table, rule = inject(lab_)
    assert f"-A {' '.join(rule)}" in lab("exec", name, target, "--", "iptables-save", "-t", table).stdout
    lab("exec", name, target, "--", "iptables", "-t", table, "-D", *rule)
    who = target if target.startswith("fip-") else f"router {target}"
    status = lab("status", name, check=False)
    assert status.returncode == 1, status.stdout
    words = f"{who}: its iptables rules differ from what `up` applied (1 rule(s) missing, 0 unexpected; " \
            f"first missing: `-A {' '.join(rule)}`)"
    doc = json.loads(lab("status", name, "--json", check=False).stdout)
    problems = doc["problems"]
    assert [p for p in problems if p.startswith(words)] == problems, problems    # that one, nothing else
    [fault] = doc["faults"]
    assert (fault["kind"], fault["who"], fault["missing"], fault["unexpected"]) == \
        ("iptables", who, [f"-A {' '.join(rule)}"], []), fault
    up = lab_up(scenario)
    assert "repaired" in up.stdout and words in up.stdout, up.stdout
    assert lab("status", name).returncode == 0
    assert f"-A {' '.join(rule)}" in lab("exec", name, target, "--", "iptables-save", "-t", table).stdout
    for check in (c for c in lab_.scenario().checks if c.name in (FIP_IN, FIP_OUT)):
        result = checks.run_check(lab_.plan, check)
        assert result.passed, result.evidence


def test_trace_walks_the_north_south_paths(live):
    scenario, lab_ = live
    name = test_name(scenario)
    snat = json.loads(lab("trace", name, "vm2", "ext1", "--json").stdout)
    assert snat["reached"] and snat["verdict"].startswith("delivered: every hop"), snat["verdict"]
    where = [h["where"] for h in snat["hops"]]
    assert "router1@compute2 routing" in where and any(w.startswith("router1.snat qg-") for w in where)
    inbound = json.loads(lab("trace", name, "ext1", "203.0.113.102", "--json").stdout)
    assert inbound["reached"] and inbound["verdict"].startswith("delivered: every hop"), inbound["verdict"]
    where = [h["where"] for h in inbound["hops"]]
    assert any(w.startswith("fip-ext-net@compute1 fg-") for w in where)
    assert not any(w.startswith(("network1", "router1.snat")) for w in where)
