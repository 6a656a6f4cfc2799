"""classic-ovsfw for real: the OVS native firewall (firewall_driver = openvswitch) on both
computes. Taps straight on br-int, no qbr/qvb/qvo and no iptables there; the classic
security-group checks pass with capture evidence; the firewall flow that decided counts the
packet; `lab trace` names the deciding table through ct() recirculation; and a removed rule
cuts the connection it allowed (ct_mark 0x1) and refuses new ones."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from lab.core.plugs import openvswitch as ovsfw
from lab.tools.flows import parse_flows

from .conftest import REPO, lab, running, test_name

SCENARIO = "classic-ovsfw"
LAB = test_name(SCENARIO)      # this run's copy: t<hex>-classic-ovsfw
COMPUTES = ("compute1", "compute2")


@pytest.fixture(scope="module")
def live(host_before):
    with running(host_before, SCENARIO) as labs:
        yield labs[SCENARIO]


def ofport(live, instance: str) -> int:
    p = live.plan.port(instance)
    return ovsfw.ofports(live.plan, live.plan.node(p.node))[p.ovs_port]


def packets(node: str, match: str) -> int:
    """Packets counted by the br-int flows of NODE that match (ovs-ofctl's flow syntax), once
    the revalidators have handed the datapath's statistics to the flows."""
    lab("exec", LAB, node, "--", "ovs-appctl", "revalidator/wait")
    out = lab("exec", LAB, node, "--", "ovs-ofctl", "dump-flows", "br-int", match).stdout
    return sum(f.n_packets for f in parse_flows(out))


def ping(src: str, dst: str, count: int = 2) -> bool:
    return lab("exec", LAB, src, "--", "ping", "-c", str(count), "-i", "0.2", "-W", "1", dst,
               check=False).returncode == 0


def test_checks_pass_with_capture_evidence(live):
    report = json.loads(lab("check", LAB, "--json").stdout)
    assert report["passed"], json.dumps(report, indent=1)
    results = {r["name"]: r for r in report["results"]}
    assert len(results) == 15
    blocked = results["port without security group"]
    assert blocked["seen"].startswith("no reply") and any("never reach vm4" in e for e in blocked["evidence"])
    # ...and the rule that decided, by its counter: vm4 has no group, so -est drops it to table 93
    assert any(e.startswith("rule compute2 br-int table 82 (rules ingress) prio 40 [ct_state=-est,")
               and "resubmit(,93)" in e and e.endswith("(vm4)") for e in blocked["evidence"]), blocked
    remote = results["same project, different hosts"]      # vm2's default group: ingress from members
    assert any(e.startswith("rule compute2 br-int table 82 (rules ingress) prio 70 [conj_id=")
               and e.endswith("(vm2)") for e in remote["evidence"]), remote
    web = results["floating IP inbound, TCP"]               # vm1's web group: tcp 5001 from anywhere
    assert any("table 82 (rules ingress) prio 77 [ct_state=+new-est,tcp," in e and "tp_dst=5001" in e
               for e in web["evidence"]), web
    assert results["floating IP inbound, TCP"]["seen"].startswith("reached: 1048576 bytes echoed intact")


def test_computes_have_taps_on_br_int_and_no_iptables(live):
    for node in COMPUTES:
        links = lab("exec", LAB, node, "--", "ip", "-o", "link").stdout
        assert "qbr" not in links and "qvb" not in links and "qvo" not in links
        assert "neutron" not in lab("exec", LAB, node, "--", "iptables-save").stdout
        ports = lab("exec", LAB, node, "--", "ovs-vsctl", "list-ports", "br-int").stdout.split()
        for p in live.plan.node(node).ports:
            assert p.ovs_port in ports and f"{p.ovs_port}@" in links
            ids = lab("exec", LAB, node, "--", "ovs-vsctl", "get", "Interface", p.ovs_port, "external_ids").stdout
            assert f'iface-id="{p.port_id}"' in ids and f'attached-mac="{p.mac}"' in ids
            got = lab("exec", LAB, node, "--", "ovs-vsctl", "get", "Interface", p.ovs_port, "ofport").stdout
            assert int(got) == ofport(live, p.instance)      # the ofport the flows name
    assert "neutron-openvswi-sg-chain" in lab("exec", LAB, "network1", "--", "iptables-save").stdout


def test_remote_group_rule_counts_the_accepted_packet(live):
    """vm1 -> vm2: vm2's default group allows ingress from its members: the conjunction's
    +new-est accept flow in table 82 on compute2 counts the first packet."""
    o = ofport(live, "vm2")
    match = f"table=82,ct_state=+new-est,ip,reg5={o:#x}"
    before = packets("compute2", match)
    assert ping("vm1", live.plan.port("vm2").ip)
    out = lab("exec", LAB, "compute2", "--", "ovs-ofctl", "dump-flows", "br-int", match).stdout
    assert "conj_id=" in out and packets("compute2", match) > before


def test_port_without_security_group_is_dropped_by_table_82(live):
    o = ofport(live, "vm4")
    drop = f"table=82,ct_state=-est,reg5={o:#x}"
    before, dropped = packets("compute2", drop), packets("compute2", "table=93")
    assert not ping("vm1", live.plan.port("vm4").ip)
    assert packets("compute2", drop) >= before + 2 and packets("compute2", "table=93") >= dropped + 2


def test_trace_names_the_deciding_table(live):
    out = lab("trace", LAB, "vm1", "vm4", check=False).stdout
    verdict = out.strip().splitlines()[-1]
    assert verdict.startswith("not delivered") and "table 82 (rules ingress) prio 40" in verdict
    assert "table 93 (dropped)" in verdict
    out = lab("trace", LAB, "vm1", "vm2").stdout
    assert "table 82 (rules ingress) prio 70 [conj_id=" in out and "delivered: every hop saw the packet" in out


def test_removed_rule_cuts_its_connection_and_refuses_new_ones(live):
    """What Neutron's agent does when a rule goes: it rewrites the port's flows without it.
    Here the web group's ICMP rule of vm1 (table 82, priority 75) is deleted while ext1 pings
    the floating IP: the established ICMP flow hits priority 40 +est, is committed with
    ct_mark 0x1 and dropped; a new ping is refused (-est). Put back, a new ping passes."""
    node, o = "compute1", ofport(live, "vm1")
    rule = f"table=82,icmp,reg5={o:#x}"
    flows = [l for l in lab("exec", LAB, node, "--", "ovs-ofctl", "dump-flows", "--no-stats", "br-int", rule,
                            ).stdout.splitlines() if "priority=75" in l]
    assert len(flows) == 2
    marked = f"table=82,ct_mark=0x1,reg5={o:#x}"
    before = packets(node, marked)
    proc = subprocess.Popen([sys.executable, "-m", "lab.cli", "exec", LAB, "ext1", "--", "ping", "-c", "25",
                             "-i", "0.1", "-W", "1", "203.0.113.102"], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)
        lab("exec", LAB, node, "--", "ovs-ofctl", "--strict", "del-flows", "br-int",
            f"table=82,priority=75,ct_state=+est-rel-rpl,icmp,reg5={o:#x}")
        lab("exec", LAB, node, "--", "ovs-ofctl", "--strict", "del-flows", "br-int",
            f"table=82,priority=75,ct_state=+new-est,icmp,reg5={o:#x}")
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    received = int(out.split(" received")[0].rsplit(", ", 1)[1])
    assert 0 < received < 20, out                       # replies before the removal, none after
    assert packets(node, marked) > before               # the connection was marked invalid, then dropped
    assert not ping("ext1", "203.0.113.102")            # a new connection is refused
    for line in flows:
        lab("exec", LAB, node, "--", "ovs-ofctl", "add-flow", "br-int", line.strip().replace(" actions=", ",actions="))
    assert ping("ext1", "203.0.113.102")                # the rule back: a new connection passes


def test_status_and_graph_read_the_plug(live):
    status = json.loads(lab("status", LAB, "--json").stdout)
    assert status["problems"] == []                       # flows counted per bridge match the renders
    inst = {i["name"]: i for i in status["instances"]}
    assert inst["vm1"]["firewall_driver"] == "openvswitch" and set(inst["vm1"]["devices"]) == {"tap"}
    out = lab("graph", LAB, "--format", "text").stdout
    vm2 = live.plan.port("vm2")
    assert f"eth0 = {vm2.ovs_port} tag {vm2.local_vlan} (net1) --> br-int" in out and "MISSING" not in out
