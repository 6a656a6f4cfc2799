"""classic-vlan for real: up, checks with capture evidence, TCP across hosts, node OVS reached
through `lab exec`, a check that must fail does fail, then down leaves the host as before."""

from __future__ import annotations

import json
import sys

import pytest

from lab.core import naming
from lab.runtime import agents, lifecycle
from lab.tools import checks
from lab.core.scenario import Check, PathAssertion

from . import hoststate
from .conftest import PREFIX, lab, lab_up, running, test_name

SCENARIO = "classic-vlan"
LAB = test_name(SCENARIO)      # this run's copy: t<hex>-classic-vlan


@pytest.fixture(scope="module")
def classic_vlan(host_before):
    with running(host_before, SCENARIO) as labs:
        yield labs[SCENARIO]


def test_checks_pass_with_capture_evidence(classic_vlan):
    out = lab("check", LAB, "--json")
    report = json.loads(out.stdout)
    results = {r["name"]: r for r in report["results"]}
    assert report["passed"], json.dumps(report, indent=1)
    cross = results["same project, different hosts"]
    assert any("tagged VLAN 101" in e and "[physnet1 from compute1]" in e and "vlan 101" in e
               for e in cross["evidence"]), cross
    same_host = results["same project, same host"]
    assert all("never appear on physnet1" in e for e in same_host["evidence"])
    assert results["different projects"]["seen"].startswith("no reply")


def test_check_table_and_exit_code(classic_vlan, tmp_path):
    out = lab("check", LAB, "--junit", str(tmp_path / "checks.xml"))
    assert "15 passed, 0 failed" in out.stdout
    assert "evidence:" in out.stdout
    import xml.etree.ElementTree as ET
    suite = ET.parse(tmp_path / "checks.xml").getroot().find("testsuite")
    assert suite.get("name") == f"lab check {LAB}" and suite.get("failures") == "0"
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert len(cases) == 15 and float(cases["same project, different hosts"].get("time")) > 0
    assert "tagged VLAN 101" in cases["same project, different hosts"].find("system-out").text


def test_a_wrong_expectation_fails(classic_vlan):
    """The checks can fail: vm4 has no security group, so expecting to reach it must fail,
    and claiming same-host traffic crosses physnet1 must fail too."""
    state = classic_vlan
    wrong_sg = Check("wrong: reach vm4", "vm1", "vm4", "icmp", None, "reach", (), 0)
    r = checks.run_check(state.plan, wrong_sg)
    assert not r.passed and r.seen.startswith("no reply")
    wrong_path = Check("wrong: same host crosses", "vm1", "vm3", "icmp", None, "reach",
                       (PathAssertion("crosses", "physnet1", 101, "ip", 0),), 0)
    r = checks.run_check(state.plan, wrong_path)
    assert not r.passed and "none seen" in r.evidence[0]
    wrong_vlan = Check("wrong: VLAN 102", "vm1", "vm2", "icmp", None, "reach",
                       (PathAssertion("crosses", "physnet1", 102, "ip", 0),), 0)
    r = checks.run_check(state.plan, wrong_vlan)
    assert not r.passed and "none with VLAN 102" in r.evidence[0] and "seen with VLAN 101" in r.evidence[0]


def test_probes_are_recognised_behind_snat(classic_vlan, monkeypatch):
    """router1 SNATs with --random-fully, which rewrites the echo id and the TCP client port:
    the probe is still found on ext1 by its payload token (TCP: the flow that carried it),
    and someone else's probe between the same addresses is not taken for it."""
    state = classic_vlan
    made = []
    monkeypatch.setattr(checks, "new_probe", lambda *a, new=checks.new_probe: made.append(new(*a)) or made[-1])
    behind = (PathAssertion("reaches", "ext1", None, "ip", 0, source="203.0.113.101"),)
    for proto, port in (("icmp", None), ("tcp", 5001)):
        r = checks.run_check(state.plan, Check(f"{proto} via SNAT", "vm2", "ext1", proto, port, "reach", behind, 0))
        assert r.passed, r.evidence
        assert "203.0.113.101" in r.evidence[0] and "reach ext1: " in r.evidence[0]
        mine = f"id {made[-1].icmp_id}," if proto == "icmp" else f"203.0.113.101.{made[-1].sport} >"
        assert mine not in r.evidence[0], r.evidence     # what left vm2 is not what reached ext1
    never = (PathAssertion("never_reaches", "vm3", None, "ip", 0),)
    r = checks.run_check(state.plan, Check("not there", "vm2", "ext1", "icmp", None, "reach", never, 0))
    assert r.passed and "none of them among the" in r.evidence[0], r.evidence


def test_exec_on_node_reaches_its_own_ovs(classic_vlan):
    flows = lab("exec", LAB, "compute1", "--", "ovs-ofctl", "dump-flows", "br-vlan").stdout
    assert "mod_vlan_vid:101" in flows
    assert hex(int(classic_vlan.plan.cookie, 16)) in flows     # OVS prints the cookie without leading zeros
    bridges = lab("exec", LAB, "compute2", "--", "ovs-vsctl", "list-br").stdout.split()
    assert bridges == ["br-int", "br-vlan"]
    # compute2 binds alt-net first: net1 gets local VLAN 2 there, 1 on compute1
    c2 = lab("exec", LAB, "compute2", "--", "ovs-ofctl", "dump-flows", "br-int").stdout
    assert "dl_vlan=101 actions=mod_vlan_vid:2" in c2
    version = lab("exec", LAB, "network1", "--", "ovs-appctl", "version").stdout
    assert "ovs-vswitchd" in version


def test_exec_in_instance_and_ping(classic_vlan):
    out = lab("exec", LAB, "vm1", "--", "ping", "-c1", "-W2", "192.168.1.12")
    assert "1 received" in out.stdout


def test_tcp_across_hosts_at_full_segment_size(classic_vlan):
    """4 MiB from vm3 (compute1) to vm2 (compute2): intact, with 1448-byte segments."""
    from lab.runtime import gateway
    vm2, vm3 = classic_vlan.plan.port("vm2"), classic_vlan.plan.port("vm3")
    server = gateway.spawn([sys.executable, "-m", "lab.tools.tcpprobe", "serve", "--port", "6001"], netns=vm2.netns)
    try:
        assert "listening" in server.stdout.readline()
        out = gateway.run([sys.executable, "-m", "lab.tools.tcpprobe", "send", "--host", vm2.ip, "--port", "6001",
                           "--bytes", str(4 << 20)], netns=vm3.netns, check=False)
        result = json.loads(out.stdout)
    finally:
        server.terminate()
        server.wait(timeout=5)
        server.stdout.close()
        server.stderr.close()
    assert result["ok"], result
    assert result["mss"] == 1448


def test_security_group_chains_read_like_the_agent(classic_vlan):
    rules = lab("exec", LAB, "compute2", "--", "iptables", "-S").stdout
    vm2 = classic_vlan.plan.port("vm2")
    assert "-N neutron-openvswi-sg-chain" in rules
    assert f"-A neutron-openvswi-sg-chain -m physdev --physdev-out {vm2.plug.host_device} --physdev-is-bridged" in rules
    assert f"-N neutron-openvswi-i{vm2.port_id[:10]}" in rules
    # ingress from members of the default group only (enable_ipset: its set, in compute2's
    # namespace): vm1 is a member, alt-vm1 is not
    default = next(r for r in vm2.rules if r.remote_group == "default")
    name = naming.ipset_name(default.remote_group_id)
    assert f"-A neutron-openvswi-i{vm2.port_id[:10]} -m set --match-set {name} src -j RETURN" in rules
    members = lab("exec", LAB, "compute2", "--", "ipset", "list", name).stdout.splitlines()
    assert "192.168.1.11" in members and "192.168.1.21" not in members


def test_status_json(classic_vlan):
    status = json.loads(lab("status", LAB, "--json").stdout)
    assert status["problems"] == []
    assert {n["name"] for n in status["nodes"]} == {"network1", "compute1", "compute2"}
    for n in status["nodes"]:
        assert n["netns"] == f"nlab.{LAB}.{n['name']}" and n["ovs_rundir"] and n["role"]
    vm1 = next(i for i in status["instances"] if i["name"] == "vm1")
    assert (vm1["node"], vm1["network"], vm1["ip"]) == ("compute1", "net1", "192.168.1.11")
    assert vm1["mac"].startswith("fa:16:3e:") and vm1["netns"] == f"nlab.{LAB}.vm1"
    physnet1 = next(w for w in status["wires"] if w["name"] == "physnet1")
    assert (physnet1["netns"], physnet1["bridge"], physnet1["up"]) == (f"nlab.{LAB}.physnet1", "physnet1", True)
    assert {m["name"] for m in physnet1["members"]} == {"network1", "compute1", "compute2"}
    router = status["routers"][0]
    assert (router["name"], router["router"], router["role"], router["node"]) == ("router1", "router1", "legacy", "network1")
    assert router["netns"].startswith(f"nlab.{LAB}.network1.qrouter-")
    assert {i["ip"] for i in router["interfaces"]} == {"192.168.1.1", "192.168.2.1", "203.0.113.101"}
    dhcp = {d["name"]: d for d in status["dhcp"]}
    assert dhcp["net1-dhcp"]["netns"].startswith(f"nlab.{LAB}.network1.qdhcp-") and dhcp["net1-dhcp"]["pid"]
    assert status["external_hosts"][0]["ip"] == "203.0.113.50"


def test_up_again_says_it_is_up(classic_vlan):
    out = lab_up(SCENARIO)
    assert "already up" in out.stdout


def test_unknown_target_is_a_clear_error(classic_vlan):
    out = lab("exec", LAB, "vm9", "--", "true", check=False)
    assert out.returncode == 1 and "no target 'vm9'" in out.stderr and "vm1" in out.stderr


def test_router_iptables_read_like_the_l3_agent(classic_vlan):
    nat = lab("exec", LAB, "router1", "--", "iptables", "-t", "nat", "-S").stdout
    qg = classic_vlan.plan.router("router1").instances[0].gateway.ns_dev
    assert "-A neutron-l3-agent-PREROUTING -d 203.0.113.102/32 -j DNAT --to-destination 192.168.1.11" in nat
    assert "-A neutron-l3-agent-float-snat -s 192.168.1.11/32 -j SNAT --to-source 203.0.113.102" in nat
    assert f"-A neutron-l3-agent-snat -o {qg} -j SNAT --to-source 203.0.113.101" in nat
    assert "-A neutron-postrouting-bottom" in nat
    addrs = lab("exec", LAB, "router1", "--", "ip", "-4", "-o", "addr", "show", "dev", qg).stdout
    assert "203.0.113.101/24" in addrs and "203.0.113.102/32" in addrs


def test_dhcp_server_serves_the_hosts_file(classic_vlan):
    dhcp = next(d for d in classic_vlan.plan.dhcp_servers if d.name == "net1-dhcp")
    hosts = lab("exec", LAB, "net1-dhcp", "--", "cat", f"{dhcp.dir}/host").stdout
    vm1 = classic_vlan.plan.port("vm1")
    assert f"{vm1.mac},host-192-168-1-11.openstacklocal,192.168.1.11" in hosts
    listening = lab("exec", LAB, "net1-dhcp", "--", "ip", "-4", "-o", "addr").stdout
    assert f"{dhcp.port.ns_dev}" in listening and "192.168.1.2/24" in listening


def test_router_namespace_has_the_l3_agent_sysctls_and_rules(classic_vlan):
    """qrouter- as Neutron 29's l3 agent leaves it: its sysctls, read back from the namespace's
    /proc/sys, and the nat POSTROUTING accept rule in the `! -o qg-X` form."""
    from lab.core.routers import QROUTER_SYSCTLS
    for key, value in QROUTER_SYSCTLS:
        path = "/proc/sys/" + key.replace(".", "/")
        assert lab("exec", LAB, "router1", "--", "cat", path).stdout.strip() == value, key
    qg = classic_vlan.plan.router("router1").instances[0].gateway.ns_dev
    nat = lab("exec", LAB, "router1", "--", "iptables", "-t", "nat", "-S").stdout
    assert f"-A neutron-l3-agent-POSTROUTING ! -o {qg} -m conntrack ! --ctstate DNAT -j ACCEPT" in nat
    assert f"! -i {qg} ! -o {qg}" not in nat


def test_instance_routes_come_from_option_121(classic_vlan):
    """dnsmasq sends option 121 for a router-attached subnet and the instance installs those
    routes (169.254.169.254/32 exists only in option 121); on alt-net, which has no router,
    the default route comes from option 3."""
    routes = lab("exec", LAB, "vm1", "--", "ip", "-4", "route").stdout
    assert "169.254.169.254 via 192.168.1.1 dev eth0" in routes, routes
    assert "default via 192.168.1.1 dev eth0" in routes, routes
    alt = lab("exec", LAB, "alt-vm1", "--", "ip", "-4", "route").stdout
    assert "default via 192.168.1.1 dev eth0" in alt and "169.254.169.254" not in alt, alt
    net1 = next(d for d in classic_vlan.plan.dhcp_servers if d.name == "net1-dhcp")
    log = lab("exec", LAB, "net1-dhcp", "--", "cat", f"{net1.dir}/dnsmasq.log").stdout
    vm1 = classic_vlan.plan.port("vm1")
    # 121 as dnsmasq logs it: /32 169.254.169.254 via 192.168.1.1, /0 via 192.168.1.1 (RFC 3442)
    assert "option:121 classless-static-route  20:a9:fe:a9:fe:c0:a8:01:01:00:c0:a8:01:01" in log, log
    assert "DHCPACK(" in log and vm1.mac in log
    hosts = lab("exec", LAB, "net1-dhcp", "--", "cat", f"{net1.dir}/host").stdout
    qr = next(p for p in classic_vlan.plan.router("router1").instances[0].ports if p.network == "net1")
    assert f"{qr.mac},host-192-168-1-1.openstacklocal,192.168.1.1" in hosts
    assert "1 received" in lab("exec", LAB, "vm1", "--", "ping", "-c1", "-W2", "203.0.113.50").stdout


def test_a_missing_lease_is_named(classic_vlan):
    """With alt-net's dnsmasq stopped, the DHCP wait names alt-vm1; `up` restarts dnsmasq."""
    from lab.runtime import processes
    state = classic_vlan
    dhcp = next(d for d in state.plan.dhcp_servers if d.name == "alt-net-dhcp")
    pid = agents.dnsmasq_pid(dhcp)
    processes.stop(pid)
    missing = agents.dhcp_leases(state.plan, [state.plan.port("alt-vm1")], state.directory, timeout=4)
    assert len(missing) == 1 and missing[0].startswith("alt-vm1: no lease")
    assert "dnsmasq of alt-net-dhcp is not running" in lab("status", LAB, check=False).stdout
    assert "repaired" in lab_up(SCENARIO).stdout
    assert agents.dhcp_leases(state.plan, [state.plan.port("alt-vm1")], state.directory) == []


def test_deleted_router_namespace_is_reported_and_repaired(classic_vlan):
    (router,) = classic_vlan.plan.router("router1").instances
    import subprocess
    subprocess.run(["ip", "netns", "del", router.netns], check=True)
    status = lab("status", LAB, check=False)
    assert status.returncode == 1 and f"namespace {router.netns} is missing" in status.stdout
    assert "repaired" in lab_up(SCENARIO).stdout
    assert lab("status", LAB).returncode == 0
    snat = next(c for c in classic_vlan.scenario().checks if c.name == "SNAT to the router gateway")
    result = checks.run_check(classic_vlan.plan, snat)
    assert result.passed, result.evidence


def test_damage_is_reported_and_up_repairs_it(classic_vlan):
    """A port and flows removed behind the lab's back: status says what, `up` puts it back."""
    vm2 = classic_vlan.plan.port("vm2")
    lab("exec", LAB, "compute2", "--", "ovs-vsctl", "del-port", "br-int", vm2.ovs_port)
    lab("exec", LAB, "compute1", "--", "ovs-ofctl", "del-flows", "br-vlan")
    assert "0 received" in lab("exec", LAB, "vm1", "--", "ping", "-c1", "-W1", vm2.ip, check=False).stdout
    status = lab("status", LAB, check=False)
    assert status.returncode == 1
    assert f"port {vm2.ovs_port} is missing from br-int" in status.stdout
    assert "br-vlan has 0 of the lab's 3 flows" in status.stdout
    out = lab_up(SCENARIO)
    assert "repaired" in out.stdout
    assert lab("status", LAB).returncode == 0
    assert "1 received" in lab("exec", LAB, "vm1", "--", "ping", "-c1", "-W2", vm2.ip).stdout


def test_zz_down_leaves_host_as_before(classic_vlan, host_before):
    out = lab("down", LAB)
    assert "is down" in out.stdout
    hoststate.assert_unchanged(host_before, PREFIX)
    assert LAB not in lifecycle.list_labs()
