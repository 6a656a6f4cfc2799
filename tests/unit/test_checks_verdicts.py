"""Verdicts of path assertions judged on decoded packets (lab/tools/checks.py), pure: captures
are filled from the pcaps in tests/data and tcpdump's recorded reports, nothing runs."""

from __future__ import annotations

import socket
import struct
import subprocess
from pathlib import Path
from types import SimpleNamespace

import fakes
import pytest

from lab.core.plan import build_plan
from lab.core.scenario import Check, PathAssertion, load_scenario
from lab.tools import capture, checks, packets
from lab.tools.checks import FAIL, PASS, UNPROVEN
from lab.tools.packets import Probe

DATA = Path(__file__).resolve().parents[1] / "data"
VM1, VM2, ROUTER = "192.168.1.11", "192.168.1.12", "192.168.1.1"
PROBE = Probe("icmp", icmp_id=0x4242)
CLEAN = capture.parse_report((DATA / "vlan-ping.stderr").read_text())
DROPS = capture.parse_report((DATA / "drops.stderr").read_text())


def cap(name: str, label: str = "physnet1 from compute1", report=CLEAN, error=None) -> checks.Capture:
    c = checks.Capture(label, "nlab.unit.wire", "eth9")
    c.packets = packets.read_pcap(DATA / name, label) if name else []
    c.seen, c.report, c.error = len(c.packets), report, error
    if report is CLEAN:   # the recorded report counts what that recording captured
        c.report = capture.Report(captured=c.seen, received=c.seen, dropped=0)
    return c


def crosses(vlan=None, vni=None, key=None, packets_="ip", target="physnet1") -> PathAssertion:
    return PathAssertion("crosses", target, vlan, packets_, 1, vni=vni, key=key)


def never(kind="never_on", packets_="ip", target="physnet1", source=None) -> PathAssertion:
    return PathAssertion(kind, target, None, packets_, 1, source=source)


# --------------------------------------------------------------------------- segments

def test_crosses_with_the_vlan_seen_on_the_wire():
    status, text = checks.judge(crosses(vlan=101), [cap("vlan-ping.pcap")], VM1, VM2, PROBE)
    assert status == PASS
    assert text.startswith("probe packets cross physnet1 tagged VLAN 101: 2 seen, e.g. [physnet1 from compute1] ")
    assert "vlan 101" in text and f"{VM1} > {VM2}: ICMP echo request, id {0x4242}, seq 1" in text


def test_the_wrong_vlan_fails_and_says_what_was_seen():
    status, text = checks.judge(crosses(vlan=102), [cap("vlan-ping.pcap")], VM1, VM2, PROBE)
    assert status == FAIL and "none with VLAN 102; 2 seen with VLAN 101, e.g. [physnet1" in text


def test_qinq_the_wire_switches_on_the_outer_tag():
    c = [cap("qinq.pcap")]
    assert checks.judge(crosses(vlan=200), c, VM1, VM2, PROBE)[0] == PASS
    status, text = checks.judge(crosses(vlan=101), c, VM1, VM2, PROBE)
    assert status == FAIL and "seen with VLAN 200 (inner 101), VLAN 300 (inner 200, 101)" in text


def test_a_tagged_frame_inside_a_tunnel_is_not_on_the_wires_vlan():
    c = [cap("tunnel-inner.pcap", "underlay from compute1")]
    status, text = checks.judge(crosses(vlan=5), c, VM1, VM2, PROBE)
    assert status == FAIL and "seen with GRE key 7, VNI 1001" in text
    assert checks.judge(crosses(vni=1001), c, VM1, VM2, PROBE)[0] == PASS
    assert checks.judge(crosses(key=7), c, VM1, VM2, PROBE)[0] == PASS


def test_vxlan_and_gre_underlays_recorded():
    vx = [cap("vxlan-ping.pcap", "underlay from compute1")]
    status, text = checks.judge(crosses(vni=1001, target="underlay"), vx, VM1, VM2, PROBE)
    assert status == PASS and "in VXLAN VNI 1001: 2 seen" in text
    assert "198.51.100.12" in text and "198.51.100.13" in text
    status, text = checks.judge(crosses(vni=1002, target="underlay"), vx, VM1, VM2, PROBE)
    assert status == FAIL and "none with VNI 1002; 2 seen with VNI 1001" in text
    gre = [cap("gre-ping.pcap", "underlay from compute1")]
    assert checks.judge(crosses(key=1, target="underlay"), gre, VM1, VM2, PROBE)[0] == PASS
    status, text = checks.judge(crosses(key=2, target="underlay"), gre, VM1, VM2, PROBE)
    assert status == FAIL and "none with GRE key 2" in text
    arp = checks.judge(crosses(key=1, packets_="arp", target="underlay"), gre, VM1, VM2, PROBE)
    assert arp[0] == PASS and "2 seen" in arp[1] and "who-has 192.168.1.12 tell 192.168.1.11" in arp[1]


# --------------------------------------------------------------------------- which packets

def test_arp_from_192_168_1_1_is_not_arp_from_192_168_1_11():
    c = [cap("arp-prefix.pcap")]
    status, text = checks.judge(crosses(vlan=101, packets_="arp"), c, ROUTER, VM2, PROBE)
    assert status == PASS and "1 seen" in text and f"tell {ROUTER}" in text
    status, text = checks.judge(never(packets_="arp"), c, "192.168.1.111", VM2, PROBE)
    assert status == PASS and "none of them among the 3 frames captured on physnet1 from compute1" in text
    status, _ = checks.judge(never(packets_="arp"), c, VM1, VM2, PROBE)
    assert status == FAIL


def test_unrelated_icmp_between_the_same_addresses_is_not_the_probe():
    c = [cap("unrelated-icmp.pcap")]
    someone_else = Probe("icmp", icmp_id=0x7777)
    assert checks.judge(never(), c, VM1, VM2, someone_else)[0] == PASS
    status, text = checks.judge(never(), c, VM1, VM2, PROBE)
    assert status == FAIL and text.startswith("probe packets never appear on physnet1: 2 seen")


def test_nat_pair_and_token():
    """After SNAT the probe is found by its token, with the assertion's own address pair."""
    c = [cap("snat-ping.pcap", "ext1 eth0")]
    probe = Probe("icmp", icmp_id=0x4242, token=b"nlab-probe-token")
    reaches = PathAssertion("reaches", "ext1", None, "ip", 1, source="203.0.113.101")
    status, text = checks.judge(reaches, c, "192.168.1.12", "203.0.113.50", probe)
    assert status == PASS and text.startswith("probe packets (203.0.113.101 <-> destination) reach ext1: 2 seen")
    assert checks.judge(reaches, c, "192.168.1.12", "203.0.113.50", PROBE)[0] == FAIL


# --------------------------------------------------------------------------- what a capture cannot prove

def test_drops_make_an_absence_unproven():
    c = [cap("unrelated-icmp.pcap", report=DROPS)]
    status, text = checks.judge(never(), c, VM1, VM2, Probe("icmp", icmp_id=0x7777))
    assert status == UNPROVEN
    assert "not proven, none seen on physnet1 from compute1" in text
    assert "tcpdump reports 79829 packets dropped by kernel" in text


def test_a_capture_that_did_not_start_proves_nothing():
    c = [cap("", error="tcpdump on eth9 in netns x: no word within 5 s")]
    status, text = checks.judge(never(kind="never_reaches", target="vm4"), c, VM1, VM2, PROBE)
    assert status == UNPROVEN and "the capture did not start (tcpdump on eth9" in text
    status, text = checks.judge(crosses(vlan=101), c, VM1, VM2, PROBE)
    assert status == UNPROVEN and "none seen on physnet1 from compute1; cannot be sure" in text


def test_a_capture_without_its_report_or_short_of_packets_proves_nothing():
    c = [cap("vlan-ping.pcap", report=None)]
    assert checks.judge(never(), c, VM1, VM2, Probe("icmp", icmp_id=1))[1].endswith(
        "tcpdump ended without its packet report")
    c = [cap("vlan-ping.pcap")]
    c[0].report = capture.Report(captured=5, received=5, dropped=0)
    assert "tcpdump captured 5 packets but 3 could be read" in checks.judge(
        never(), c, VM1, VM2, Probe("icmp", icmp_id=1))[1]


def test_seen_is_seen_even_when_some_were_dropped():
    c = [cap("vlan-ping.pcap", report=DROPS)]
    assert checks.judge(crosses(vlan=101), c, VM1, VM2, PROBE)[0] == PASS
    assert checks.judge(never(), c, VM1, VM2, PROBE)[0] == FAIL


# --------------------------------------------------------------------------- tcpdump's words

def test_tcpdump_reports_recorded():
    assert DROPS == capture.Report(captured=33, received=80000, dropped=79829)
    assert CLEAN.dropped == 0 and CLEAN.captured == 3
    for name in ("vxlan-ping", "gre-ping", "snat-ping"):
        assert capture.parse_report((DATA / f"{name}.stderr").read_text()).dropped == 0
    assert capture.parse_report("tcpdump: listening on eth0\n") is None
    one = capture.parse_report("1 packet captured\n1 packet received by filter\n0 packets dropped by kernel\n"
                               "4 packets dropped by interface\n")
    assert one == capture.Report(1, 1, 0, 4)
    assert capture.capture_problem(None, one, 1) is None


# --------------------------------------------------------------------------- the check's result

def _check(expect="reach", proto="icmp", port=None) -> Check:
    return Check("c", "vm1", "vm2", proto, port, expect, (), 3)


def test_result_of_combines_the_probe_and_the_assertions():
    ok = checks.result_of(_check(), VM2, True, "reached (3/3 echo replies)", [(PASS, "a"), (PASS, "b")])
    assert ok.passed and ok.status == "passed" and ok.evidence == ["ok   a", "ok   b"]
    assert ok.expected == f"reach (icmp vm1 -> {VM2})"
    unproven = checks.result_of(_check(), VM2, True, "reached", [(PASS, "a"), (UNPROVEN, "b")])
    assert not unproven.passed and unproven.status == "unproven" and unproven.evidence[1] == "UNPROVEN b"
    failed = checks.result_of(_check(), VM2, True, "reached", [(FAIL, "a"), (UNPROVEN, "b")])
    assert failed.status == "failed" and failed.evidence[0] == "FAIL a"
    unreached = checks.result_of(_check(), VM2, False, "no reply", [(UNPROVEN, "b")])
    assert unreached.status == "failed"
    blocked = checks.result_of(_check("blocked", "tcp", 5001), VM2, False, "no connection", [])
    assert blocked.passed and blocked.expected == f"blocked (tcp:5001 vm1 -> {VM2})"
    j = unproven.to_json()
    assert j["status"] == "unproven" and j["passed"] is False and j["proto"] == "icmp"
    assert blocked.to_json()["proto"] == "tcp:5001"
    text = checks.table([ok, unproven, failed, checks.Result(_check(), "e", "s", True, [])])
    assert "PASS c" in text and "UNPROVEN c" in text and "FAIL c" in text
    assert "evidence: UNPROVEN b" in text and "evidence: (no path assertion)" in text


def test_probes_are_told_apart():
    icmp = {checks.new_probe("icmp", None) for _ in range(20)}
    assert all(0x1000 <= p.icmp_id <= 0xFFFE and len(p.token) == 16 for p in icmp)
    assert len({p.token for p in icmp}) == 20
    tcp = checks.new_probe("tcp", 5001)
    assert tcp.dport == 5001 and 20000 <= tcp.sport < 32768
    argv = checks.ping_argv(VM2, 3, icmp.pop())
    assert argv[:2] == ["ping", "-e"] and "-p" in argv and argv[-1] == VM2
    assert len(argv[argv.index("-p") + 1]) == 32


@pytest.mark.parametrize("rc,out,count,want", [
    (0, "3 packets transmitted, 3 received, 0% packet loss", 3, (True, "reached (3/3 echo replies)")),
    (1, "2 packets transmitted, 0 received, 100% packet loss", 2, (False, "no reply (0/2 echo replies)")),
    (2, "ping: connect: Network is unreachable", 2, (False, "no reply (0/2 echo replies)")),
])
def test_ping_result(rc, out, count, want):
    assert checks.ping_result(rc, out, count) == want


def test_tcp_result():
    ok = '{"ok": true, "bytes": 1048576, "mss": 1398, "seconds": 0.1}'
    assert checks.tcp_result("noise\n" + ok, "") == (True, "reached: 1048576 bytes echoed intact, MSS 1398, 0.1 s")
    assert checks.tcp_result('{"ok": false, "error": "timed out"}', "") == (False, "no connection (timed out)")
    assert checks.tcp_result("", "Traceback: boom") == (False, "probe client failed: Traceback: boom")


# --------------------------------------------------------------------------- where captures go

@pytest.fixture(scope="module")
def plan():
    return build_plan(load_scenario("classic-vlan"))


def test_capture_points(plan):
    wire = checks.capture_points(plan, crosses(vlan=101))
    assert [c.label for c in wire] == [f"physnet1 from {m.name}" for m in plan.wire("physnet1").members]
    assert all(c.inbound and c.netns == plan.wire("physnet1").netns for c in wire)
    (vm,) = checks.capture_points(plan, never(kind="never_reaches", target="alt-vm1"))
    assert (vm.label, vm.iface) == ("alt-vm1 eth0", "eth0")
    node = checks.capture_points(plan, never(kind="never_reaches", target="network1"))
    assert [c.iface for c in node] == list(plan.node("network1").nics)
    (router,) = plan.router_instances
    r = checks.capture_points(plan, PathAssertion("passes", plan.routers[0].name, None, "ip", 1))
    assert [(c.netns, c.iface) for c in r] == [(router.netns, p.ns_dev) for p in router.ports]
    dhcp = plan.dhcp_servers[0]
    (d,) = checks.capture_points(plan, never(kind="never_reaches", target=dhcp.name))
    assert d.iface == dhcp.port.ns_dev


def test_server_for(plan):
    vm1 = plan.port("vm1")
    assert checks.server_for(plan, "vm1") == vm1.netns
    assert checks.server_for(plan, vm1.ip) == vm1.netns
    fip = next(p for p in plan.ports if p.floating_ip)
    assert checks.server_for(plan, fip.floating_ip) == fip.netns
    ext = plan.external_hosts[0]
    assert checks.server_for(plan, ext.ip) == ext.netns
    with pytest.raises(checks.CaptureError, match="no instance or external host answers at 10.9.9.9"):
        checks.server_for(plan, "10.9.9.9")


# --------------------------------------------------------------------------- whole checks, programs stood in for

def _runner(ping_ok=True, tcp_json='{"ok": true, "bytes": 1048576, "mss": 1398, "seconds": 0.2}', addr=""):
    calls = []

    def run(argv, *, netns=None, env=None, timeout=30.0, check=True, input=None):
        calls.append(list(argv))
        out = ""
        if argv[0] == "ping":
            out = "3 packets transmitted, 3 received" if ping_ok else "2 packets transmitted, 0 received"
        elif any("tcpprobe" in a for a in argv):
            out = tcp_json
        elif argv[:3] == ["ip", "-4", "-o"]:
            out = addr
        return subprocess.CompletedProcess(argv, 0 if ping_ok else 1, out, "")
    run.calls = calls
    return run


def _tcp_pcap(path, sport, dport):
    import dpkt
    with open(path, "wb") as f:
        w = dpkt.pcap.Writer(f)
        for i, (s, d, a, b) in enumerate([(VM2, VM1, sport, dport), (VM1, VM2, dport, sport)]):
            tcp = dpkt.tcp.TCP(sport=a, dport=b, flags=dpkt.tcp.TH_SYN, off=5)
            ip = dpkt.ip.IP(src=socket.inet_aton(s), dst=socket.inet_aton(d), p=6, data=tcp)
            ip.len = len(ip)
            vlan = struct.pack("!HH", 101, 0x0800)
            w.writepkt(b"\x04" * 6 + b"\x02" * 6 + b"\x81\x00" + vlan + bytes(ip), 1.0 + i)


def test_run_checks_with_the_programs_stood_in_for(plan, monkeypatch):
    fakes.install_tcpdump(monkeypatch, {"*": (str(DATA / "vlan-ping.pcap"), "normal")})
    run = _runner()
    monkeypatch.setattr(checks.gateway, "run", run)
    monkeypatch.setattr(checks.gateway, "require", lambda *programs: None)
    monkeypatch.setattr(checks, "new_probe", lambda proto, port: PROBE)
    c = Check("vm1 to vm2", "vm1", "vm2", "icmp", None, "reach", (crosses(vlan=101),), 1)
    seen = []
    (r,) = checks.run_checks(plan, SimpleNamespace(checks=(c,)), progress=seen.append)
    assert r.passed and r.seen == "reached (3/3 echo replies)" and seen == ["PASS  vm1 to vm2"]
    assert r.evidence[0].startswith("ok   probe packets cross physnet1 tagged VLAN 101: ")
    assert ["ip", "neigh", "flush", "dev", "eth0"] == run.calls[0]


def test_a_tcp_check(plan, monkeypatch, tmp_path):
    probe = Probe("tcp", sport=21000, dport=5001, token=b"t" * 16)
    _tcp_pcap(tmp_path / "tcp.pcap", 21000, 5001)
    fakes.install_tcpdump(monkeypatch, {"*": (str(tmp_path / "tcp.pcap"), "normal")})
    run = _runner()
    monkeypatch.setattr(checks.gateway, "run", run)
    monkeypatch.setattr(checks, "new_probe", lambda proto, port: probe)
    c = Check("tcp", "vm2", "vm1", "tcp", 5001, "reach", (crosses(vlan=101),), 1)
    r = checks.run_check(plan, c)
    assert r.passed and r.seen.startswith("reached: 1048576 bytes echoed intact, MSS 1398"), r
    assert "Flags [S]" in r.evidence[0]
    send = next(a for a in run.calls if "send" in a)
    assert send[send.index("--sport") + 1] == "21000" and send[send.index("--token") + 1] == probe.token.hex()


def test_a_check_whose_capture_does_not_start_is_unproven(plan, monkeypatch):
    fakes.install_tcpdump(monkeypatch, {"*": ("-", "fail")})
    monkeypatch.setattr(checks.gateway, "run", _runner())
    c = Check("same host", "vm1", "vm3", "icmp", None, "reach", (never(),), 1)
    r = checks.run_check(plan, c)
    assert not r.passed and r.status == "unproven" and "No such device exists" in r.evidence[0]


def test_lease_check(monkeypatch, tmp_path):
    plan = build_plan(load_scenario("classic-vlan"), state_root=str(tmp_path))
    dhcp_port = next((p for p in plan.ports if any(d.network == p.network for d in plan.dhcp_servers)), None)
    if dhcp_port is None:
        pytest.skip("classic-vlan has no DHCP instance")
    dhcp = next(d for d in plan.dhcp_servers if d.network == dhcp_port.network)
    Path(dhcp.dir).mkdir(parents=True)
    Path(dhcp.dir, "leases").write_text(f"1700000000 {dhcp_port.mac} {dhcp_port.ip} * *\n")
    record = tmp_path / plan.lab / "clients" / f"{dhcp_port.instance}.lease"
    record.parent.mkdir(parents=True)
    record.write_text(f"lease ip={dhcp_port.ip} mask={dhcp_port.prefixlen} mtu= router= server={dhcp.port.ip} "
                      "seconds=86400 at=1699913600 staticroutes=\n")
    addr = f"2: eth0    inet {dhcp_port.ip}/{dhcp_port.prefixlen} brd x scope global eth0\n"
    monkeypatch.setattr(checks.gateway, "run", _runner(addr=addr))
    c = Check("lease", dhcp_port.instance, "", "lease", None, "reach", (), 1)
    r = checks.run_check(plan, c)
    assert r.passed and r.seen == f"{dhcp_port.ip}/{dhcp_port.prefixlen} acked leased", r.evidence
    Path(dhcp.dir, "leases").write_text("")
    record.unlink()
    monkeypatch.setattr(checks.gateway, "run", _runner(addr=""))
    r = checks.run_check(plan, c)
    assert not r.passed and r.seen == "no address" and r.evidence[0].startswith("FAIL ")
