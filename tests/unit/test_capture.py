"""lab/tools/capture.py without root: tcpdump's command line and report, and the whole
start / read / stop of a capture against tests/unit/fake_tcpdump.py, which says and writes
what tcpdump would (a recorded pcap from tests/data on its stdout)."""

from __future__ import annotations

import io
import os

import fakes
import pytest

from lab.core.plan import build_plan
from lab.core.scenario import load_scenario
from lab.errors import LabStateError
from lab.tools import capture, packets

DATA = fakes.DATA


@pytest.fixture
def fake(monkeypatch):
    """gateway.spawn runs fake_tcpdump.py instead: (the (argv, netns) it was given, the modes)."""
    modes: dict[str, tuple[str, str]] = {}
    return fakes.install_tcpdump(monkeypatch, modes), modes


def test_argv():
    assert capture.tcpdump_argv("eth1", inbound=True, count=4, snaplen=256, expression=["icmp"]) == [
        "tcpdump", "-i", "eth1", "-nn", "-U", "-w", "-", "--immediate-mode", "-Q", "in", "-s", "256",
        "-c", "4", "icmp"]
    assert capture.tcpdump_argv("eth0") == ["tcpdump", "-i", "eth0", "-nn", "-U", "-w", "-", "--immediate-mode"]
    t = capture.Tcpdump("x", "ns", "eth2")
    assert t.argv()[-4:] == ["-Q", "in", "-s", str(capture.CHECK_SNAPLEN)]


def test_a_capture_reads_decodes_and_reports(fake):
    calls, modes = fake
    modes["eth9"] = (str(DATA / "vlan-ping.pcap"), "normal")
    t = capture.Tcpdump("physnet1 from compute1", "nlab.x.physnet1", "eth9")
    assert t.start() and t.error is None
    t.settle()
    t.stop()
    assert calls[0][1] == "nlab.x.physnet1"
    assert t.report == capture.Report(captured=3, received=3, dropped=0)
    assert [p.vlans for p in t.packets] == [(101,)] * 3 and t.seen == 3
    assert all(p.point == "physnet1 from compute1" for p in t.packets)
    assert t.problem() is None
    t.stop()   # twice is harmless


def test_drops_are_reported(fake):
    _, modes = fake
    modes["*"] = (str(DATA / "qinq.pcap"), "drops")
    t = capture.Tcpdump("p", "ns", "eth9")
    assert t.start()
    t.settle()
    t.stop()
    assert t.report.dropped == 7 and t.problem() == "tcpdump reports 7 packets dropped by kernel"


def test_a_tcpdump_that_never_listens(fake):
    _, modes = fake
    modes["*"] = ("-", "silent")
    t = capture.Tcpdump("p", "nlab.x.vm1", "eth9")
    assert not t.start()
    assert t.error == "tcpdump on eth9 in netns nlab.x.vm1: no word within 1 s"
    assert t.problem().startswith("the capture did not start (tcpdump on eth9")


def test_a_tcpdump_that_fails(fake):
    _, modes = fake
    modes["*"] = ("-", "fail")
    t = capture.Tcpdump("p", "ns", "eth9")
    assert not t.start()
    assert "No such device exists" in t.error


def test_a_tcpdump_that_must_be_killed_has_no_report(fake):
    _, modes = fake
    modes["*"] = (str(DATA / "qinq.pcap"), "stubborn")
    t = capture.Tcpdump("p", "ns", "eth9")
    assert t.start()
    t.stop()
    assert t.report is None and t.problem() == "tcpdump ended without its packet report"


def test_read_until_gives_up():
    r, w = os.pipe()
    os.write(w, b"hello ")
    assert capture.read_until(r, "listening", 0.1) == "hello "
    os.close(w)
    assert capture.read_until(r, "listening", 1.0) == ""
    os.close(r)


# --------------------------------------------------------------------------- lab capture

@pytest.fixture(scope="module")
def plan():
    return build_plan(load_scenario("classic-vlan"))


def test_capture_interfaces(plan):
    w = plan.wire("physnet1")
    wire = capture.capture_interfaces(plan, "physnet1", None)
    assert wire == [(f"physnet1 from {m.name}", w.netns, m.wire_ifname, True) for m in w.members]
    vm1 = plan.port("vm1")
    assert capture.capture_interfaces(plan, "vm1", None) == [("vm1 eth0", vm1.netns, "eth0", False)]
    n1 = plan.node("network1")
    assert capture.capture_interfaces(plan, "network1", "eth2") == [("network1:eth2", n1.netns, "eth2", False)]
    assert [i for _, _, i, _ in capture.capture_interfaces(plan, "network1", None)] == list(n1.nics)
    (router,) = plan.router_instances
    ports = capture.capture_interfaces(plan, router.name, None)
    assert [(ns, i) for _, ns, i, _ in ports] == [(router.netns, p.ns_dev) for p in router.ports]
    dhcp = plan.dhcp_servers[0]
    assert capture.capture_interfaces(plan, dhcp.name, None) == [(f"{dhcp.name} {dhcp.port.ns_dev}", dhcp.netns,
                                                                  dhcp.port.ns_dev, False)]


def test_unknown_target(plan):
    with pytest.raises(LabStateError, match="has no target 'nope'"):
        capture.capture(plan, "nope", None, None, [])


def test_live_capture_of_a_wire_prints_labelled_summaries(fake, plan, capsys):
    _, modes = fake
    modes["*"] = (str(DATA / "vlan-ping.pcap"), "exit")
    assert capture.capture(plan, "physnet1", None, None, ["icmp"]) == 0
    out, err = capsys.readouterr()
    members = [m.name for m in plan.wire("physnet1").members]
    assert err.startswith("capturing on every port of wire physnet1: listening on physnet1 from ")
    lines = out.splitlines()
    assert len(lines) == 3 * len(members)
    assert all(f"[physnet1 from {m}] " in out for m in members)
    assert sum("ICMP echo request, id 16962, seq 1" in line for line in lines) == len(members)


def test_live_capture_stops_at_the_count(fake, plan, capsys):
    calls, modes = fake
    modes["*"] = (str(DATA / "vlan-ping.pcap"), "normal")
    capture.capture(plan, "vm1", None, 2, [])
    out, err = capsys.readouterr()
    assert err.startswith("listening on vm1 eth0; Ctrl-C stops")
    assert len(out.splitlines()) == 2 and "[" not in out.split(" ", 1)[1][:1]
    assert calls[-1][0][calls[-1][0].index("-c") + 1] == "2"


def test_capture_to_a_file_merges_the_ports_by_time(fake, plan, tmp_path, capsys):
    _, modes = fake
    members = plan.wire("physnet1").members
    sources = ["vlan-ping.pcap", "arp-prefix.pcap", "qinq.pcap"]
    for m, src in zip(members, sources):
        modes[m.wire_ifname] = (str(DATA / src), "exit")
    out = tmp_path / "wire.pcap"
    capture.capture(plan, "physnet1", str(out), None, [])
    assert f"packets written to {out}" in capsys.readouterr().err
    with open(out, "rb") as f:
        records = list(packets.read_raw(f))
    expected = sum(len(packets.read_pcap(DATA / s)) for s in sources[:len(members)])
    assert len(records) == expected
    assert [ts for ts, _, _ in records] == sorted(ts for ts, _, _ in records)
    assert oct(out.stat().st_mode & 0o777) == "0o644"


def test_capture_to_a_file_with_a_count(fake, plan, tmp_path, capsys):
    _, modes = fake
    modes["*"] = (str(DATA / "vlan-ping.pcap"), "drops")
    out = tmp_path / "two.pcap"
    capture.capture(plan, "vm1", str(out), 2, [])
    err = capsys.readouterr().err
    assert "2 packets written" in err and "[vm1 eth0] tcpdump: 7 packets dropped by kernel" in err
    assert len(packets.read_pcap(out)) == 2


def test_capture_that_cannot_start_is_an_error(fake, plan):
    _, modes = fake
    modes["*"] = ("-", "fail")
    with pytest.raises(capture.CaptureError, match="No such device"):
        capture.capture(plan, "vm1", None, None, [])


def test_live_line():
    p = packets.Packet(ts=0.5, point="vm1 eth0", src_mac="a", dst_mac="b", length=1)
    assert capture.live_line(p, True).endswith(".500000 [vm1 eth0] a > b, length 1: ethertype 0x0000")
    assert "[" not in capture.live_line(p, False)


def test_empty_capture_to_a_file_is_a_valid_pcap(fake, plan, tmp_path):
    _, modes = fake
    modes["*"] = ("-", "exit")
    out = tmp_path / "none.pcap"
    capture.capture(plan, "vm1", str(out), None, [])
    assert packets.read_pcap(out) == [] and out.read_bytes()[:4] in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4")
    assert io.BytesIO(out.read_bytes()).read(24)
