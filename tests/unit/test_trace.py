"""lab trace without root (lab/tools/trace.py): the expected path from the plan, what each hop's
capture saw (decoded packets from tests/data, replayed by fake_tcpdump.py), ofproto/trace
summaries, iptables counters and the verdict, with the programs it runs stood in for."""

from __future__ import annotations

import subprocess

import fakes
import pytest

from lab.core.plan import build_plan
from lab.core.scenario import load_scenario
from lab.errors import LabStateError
from lab.runtime import gateway
from lab.tools import packets, trace
from lab.tools.packets import Probe
from lab.tools.trace import Hop

DATA = fakes.DATA
VM1, VM2 = "192.168.1.11", "192.168.1.12"
RECORDED = Probe("icmp", icmp_id=0x4242, token=b"nlab-probe-token")   # what vlan-ping.pcap holds

OFPROTO = """\
Flow: icmp,in_port=5,vlan_tci=0x0000,dl_src=fa:16:3e:d0:df:82,dl_dst=fa:16:3e:54:79:3f,nw_src=192.168.1.11

bridge("br-int")
----------------
 0. in_port=5, priority 9, cookie 0x1
    goto_table:25
25. in_port=5,dl_src=fa:16:3e:d0:df:82, priority 2, cookie 0x1
    goto_table:60
60. priority 3, cookie 0x1
    NORMAL
     -> forwarding to learned port

bridge("br-vlan")
-----------------
 0. in_port=2,dl_vlan=1, priority 4, cookie 0x1
    mod_vlan_vid:101
    NORMAL
     -> no learned MAC for destination, flooding

Final flow: unchanged
Datapath actions: push_vlan(vid=101,pcp=0),3
"""

DROPPING = """\
Flow: icmp,in_port=5

bridge("br-int")
----------------
 0. priority 0, cookie 0x1
    drop

Datapath actions: drop
"""


@pytest.fixture(scope="module")
def plan():
    return build_plan(load_scenario("classic-vlan"))


# --------------------------------------------------------------------------- pure parts

def test_summarize_ofproto():
    assert trace.summarize_ofproto(OFPROTO) == [
        "br-int: table 0 (local switching) prio 9 [in_port=5] -> table 25 (MAC spoofing protection) prio 2 "
        "[in_port=5,dl_src=fa:16:3e:d0:df:82] -> table 60 (transient) prio 3 -> NORMAL (forwarding to learned port)",
        "br-vlan: table 0 (local VLAN translation) prio 4 [in_port=2,dl_vlan=1] -> mod_vlan_vid:101 -> NORMAL "
        "(no learned MAC for destination, flooding)",
        "Datapath actions: push_vlan(vid=101,pcp=0),3"]
    assert trace.summarize_ofproto(DROPPING)[0] == "br-int: table 0 (local switching) prio 0 -> drop"
    assert trace.summarize_ofproto('bridge("br-x")\n 0. priority 1, cookie 0\n') == ["br-x: table 0 (local VLAN translation) prio 1"]


def test_the_expected_path_of_a_vlan_network(plan):
    b, dst, ip = trace.build_path(plan, "vm1", "vm2")
    assert (dst.name, ip) == ("vm2", VM2)
    where = [h.where for h in b.hops]
    assert where[0] == "vm1 eth0" and where[-1] == "vm2 eth0"
    assert "wire physnet1 (from compute1)" in where
    wire = next(h for h in b.hops if h.kind == "wire")
    assert wire.expected.endswith("(VLAN 101)") and (wire.src, wire.dst) == (VM1, VM2)
    assert [n.name for n, _, _ in b.ovs_entries] == ["compute1", "compute2"]


def test_the_expected_path_through_nat(plan):
    b, _, ip = trace.build_path(plan, "ext1", "203.0.113.102")
    after = next(h for h in b.hops if h.expected.endswith("(after DNAT)"))
    assert ip == "203.0.113.102" and after.dst == plan.port("vm1").ip
    b, _, _ = trace.build_path(plan, "vm2", "203.0.113.50")
    assert next(h for h in b.hops if h.expected.endswith("(after SNAT)")).src == "203.0.113.101"
    b, _, _ = trace.build_path(plan, "vm1", "vm5")
    assert any(h.kind == "nat" and h.expected.endswith("(no NAT)") for h in b.hops)


@pytest.mark.parametrize("src,dst,message", [
    ("vm1", "10.9.9.9", "nothing in lab classic-vlan answers at 10.9.9.9"),
    ("nope", "vm2", "has no instance or external host 'nope'"),
    ("ext1", "vm1", "only floating IPs are reachable"),
])
def test_paths_that_cannot_be(plan, src, dst, message):
    with pytest.raises(LabStateError, match=message):
        trace.build_path(plan, src, dst)


def test_observe_sees_only_the_probe_going_forward():
    frames = packets.read_pcap(DATA / "vlan-ping.pcap", "w")
    hop = Hop("wire", "wire", "", src=VM1, dst=VM2)
    trace.observe(hop, frames, None, RECORDED)
    assert hop.ok and hop.seen == "2 packet(s)" and "vlan 101" in hop.explain[0]
    back = Hop("back", "nic", "", src=VM2, dst=VM1)
    trace.observe(back, frames, None, RECORDED)
    assert back.ok is False and back.seen == "not seen" and back.explain == []
    blind = Hop("blind", "nic", "", src=VM2, dst=VM1)
    trace.observe(blind, [], "tcpdump reports 3 packets dropped by kernel", RECORDED)
    assert blind.seen == "not seen, unproven" and blind.explain == [
        "unproven: tcpdump reports 3 packets dropped by kernel"]


def test_verdicts():
    seen = [Hop("a", "nic", "", ok=True), Hop("b", "ovs", "", ok=None, explain=["x"]), Hop("c", "nic", "", ok=True)]
    assert trace._verdict(seen, True) == "delivered: every hop saw the packet"
    assert trace._verdict([Hop("a", "nic", "", ok=False)], False).startswith("not delivered: no hop saw")
    dropped = [Hop("a", "nic", "", ok=True),
               Hop("fw", "iptables", "", ok=None, explain=["3 pkts  rule 2: -A sg-fallback -j DROP", "1 pkts x"]),
               Hop("c", "nic", "", ok=False)]
    assert trace._verdict(dropped, False) == ("not delivered: last seen at a; dropped by fw: "
                                              "3 pkts  rule 2: -A sg-fallback -j DROP")
    ovs = [Hop("a", "nic", "", ok=True), Hop("br", "ovs", "", explain=["br-int: table 0 -> drop", "Datapath actions: drop"]),
           Hop("c", "nic", "", ok=False)]
    assert trace._verdict(ovs, True).startswith("delivered, but last seen at a; dropped by br: br-int: table 0 -> drop")
    assert trace._verdict([Hop("a", "nic", "", ok=True), Hop("c", "nic", "", ok=False)], False) == \
        "not delivered: last seen at a"
    blind = Hop("c", "nic", "", ok=False, seen=trace.UNPROVEN_SEEN,
                explain=["unproven: tcpdump reports 2 packets dropped by kernel"])
    assert trace._verdict([Hop("a", "nic", "", ok=True), blind], False) == (
        "not delivered: last seen at a (unproven: the capture at c: tcpdump reports 2 packets dropped by kernel)")


def test_entry_hops_and_render(plan):
    b, _, _ = trace.build_path(plan, "vm1", "vm2")
    ovs_hops = [h for h in b.hops if h.kind == "ovs"]
    picked = trace._entry_hops(ovs_hops, b.ovs_entries)
    assert [h.where for h in picked] == ["compute1 br-int", "compute2 br-vlan -> br-int"]
    lonely = trace._entry_hops([], b.ovs_entries[:1])
    assert lonely[0].where == "?"
    b.hops[0].ok, b.hops[0].seen, b.hops[0].explain = False, "not seen", ["why"]
    t = trace.Trace("vm1", "vm2", "icmp", b.hops, False, "no reply", "not delivered: no hop saw the packet")
    text = trace.render_table(t)
    assert text.startswith("trace vm1 -> vm2 (icmp): no reply") and "<-- not seen" in text and "      why" in text
    assert t.to_json()["hops"][0]["where"] == "vm1 eth0"


# --------------------------------------------------------------------------- a whole trace, programs stood in for

def fake_run(rules: dict[str, str], ofproto: str, ping_ok: bool = True):
    calls = []

    def run(argv, *, netns=None, env=None, timeout=30.0, check=True, input=None):
        calls.append(list(argv))
        out = ""
        if argv[0] == "iptables" and "-S" in argv:
            out = rules.get(argv[argv.index("-S") + 1], "")
        elif argv[0] == "ovs-appctl":
            out = ofproto
        elif argv[0] == "ping":
            out = "3 packets transmitted, 3 received" if ping_ok else "3 packets transmitted, 0 received"
        elif any("tcpprobe" in a for a in argv):
            out = '{"host": "x", "sent": 3}'
        return subprocess.CompletedProcess(argv, 0 if ping_ok else 1, out, "")
    run.calls = calls
    return run


def test_a_delivered_trace(plan, monkeypatch):
    fakes.install_tcpdump(monkeypatch, {"*": (str(DATA / "vlan-ping.pcap"), "normal")})
    vm1 = plan.port("vm1")
    egress = f"-A neutron-openvswi-s{vm1.port_id[:10]} -s {VM1}/32 -m mac --mac-source x -c 3 252 -j RETURN\n"
    run = fake_run({f"neutron-openvswi-s{vm1.port_id[:10]}": "-P x\n" + egress}, OFPROTO)
    monkeypatch.setattr(gateway, "run", run)
    monkeypatch.setattr(trace, "new_probe", lambda kind, port: RECORDED)
    t = trace.trace(plan, "vm1", "vm2")
    assert t.reached and t.verdict == "delivered: every hop saw the packet", trace.render_table(t)
    wire = next(h for h in t.hops if h.kind == "wire")
    assert wire.ok and "vlan 101" in wire.explain[0]
    fw = next(h for h in t.hops if h.kind == "iptables")
    assert fw.seen == "rules matched" and "RETURN" in fw.explain[0] and fw.explain[0].startswith("3 pkts  rule 1:")
    brint = next(h for h in t.hops if h.where == "compute1 br-int")
    assert brint.explain[-1].startswith("Datapath actions: push_vlan(vid=101")
    ping = next(c for c in run.calls if c[0] == "ping")
    assert ping[ping.index("-p") + 1] == RECORDED.token.hex() and ping[ping.index("-e") + 1] == str(0x4242)
    assert len(t.ovs_traces) == 2


def test_a_trace_dropped_by_the_security_group(plan, monkeypatch):
    vm2 = plan.port("vm2")
    node2 = plan.node("compute2")
    tap, qbr = vm2.plug.device("tap"), vm2.plug.device("qbr")
    quiet = ("-", "normal")
    fakes.install_tcpdump(monkeypatch, {"*": (str(DATA / "vlan-ping.pcap"), "normal"),
                                        f"{node2.netns}:{tap}": quiet, f"{vm2.netns}:eth0": quiet})
    rules = {"neutron-openvswi-sg-fallback": "-A neutron-openvswi-sg-fallback -c 2 168 -j DROP\n"}
    monkeypatch.setattr(gateway, "run", fake_run(rules, OFPROTO, ping_ok=False))
    monkeypatch.setattr(trace, "new_probe", lambda kind, port: RECORDED)
    t = trace.trace(plan, "vm1", "vm2")
    assert not t.reached
    last_seen = [h for h in t.hops if h.ok][-1]
    assert last_seen.where.startswith("compute2 ") and vm2.ovs_port in last_seen.where
    assert t.verdict == (f"not delivered: last seen at {last_seen.where}; dropped by "
                         f"compute2 {qbr} (iptables ingress): 2 pkts  rule 1: "
                         "-A neutron-openvswi-sg-fallback -j DROP")
    assert next(h for h in t.hops if h.where == "vm2 eth0").seen == "not seen"


def test_udp_and_tcp_traces_pass_the_probe_identity(plan, monkeypatch):
    fakes.install_tcpdump(monkeypatch, {"*": ("-", "normal")})
    run = fake_run({}, OFPROTO)
    monkeypatch.setattr(gateway, "run", run)
    t = trace.trace(plan, "vm1", "vm2", "udp:5353")
    udp = next(c for c in run.calls if "udp" in c)
    assert udp[udp.index("--port") + 1] == "5353" and "--sport" in udp and "--token" in udp
    assert t.probe.startswith('{"host"') and not any(h.ok for h in t.hops if h.iface)
    with pytest.raises(LabStateError, match="--proto must be"):
        trace.trace(plan, "vm1", "vm2", "sctp")
