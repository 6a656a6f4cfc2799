"""The metadata check's verdicts (lab/tools/metadata_check.py) on decoded packets, and its
parsing in the scenario language."""

from __future__ import annotations

from dataclasses import dataclass, field

from lab.core.plan import build_plan
from lab.core.scenario import load_scenario
from lab.tools import metadata_check
from lab.tools.checks import FAIL, PASS, UNPROVEN
from lab.tools.packets import Packet, Probe

TOKEN = bytes(range(16))
PROBE = Probe("tcp", sport=23456, dport=80, token=TOKEN)


@dataclass
class FakeCapture:
    label: str
    packets: list = field(default_factory=list)
    trouble: str | None = None

    def problem(self):
        return self.trouble


def request(src="192.168.1.11", sport=23456, payload=b"GET / HTTP/1.1\r\nX-Lab-Probe: " + TOKEN.hex().encode()):
    return Packet(ip_src=src, ip_dst="169.254.169.254", ip_proto=6, sport=sport, dport=80, payload=payload)


def test_request_on_qr_needs_port_and_token():
    cap = FakeCapture("router1 qr-x", [request()])
    assert metadata_check._arrives(cap, "192.168.1.11", PROBE)[0] == PASS
    assert metadata_check._arrives(FakeCapture("q", [request(payload=b"GET / HTTP/1.1")]), "192.168.1.11", PROBE)[0] == FAIL
    assert metadata_check._arrives(FakeCapture("q", [request(sport=1111)]), "192.168.1.11", PROBE)[0] == FAIL
    assert metadata_check._arrives(FakeCapture("q", [request(src="192.168.1.12")]), "192.168.1.11", PROBE)[0] == FAIL
    assert metadata_check._arrives(FakeCapture("q", [], "tcpdump died"), "192.168.1.11", PROBE)[0] == UNPROVEN


def test_nothing_leaves_through_qg():
    other = Packet(ip_src="203.0.113.101", ip_dst="203.0.113.50", ip_proto=1)
    assert metadata_check._never_leaves(FakeCapture("router1 qg-x", [other]))[0] == PASS
    leaked = Packet(ip_src="203.0.113.101", ip_dst="169.254.169.254", ip_proto=6, sport=40000, dport=80)
    status, text = metadata_check._never_leaves(FakeCapture("router1 qg-x", [other, leaked]))
    assert status == FAIL and "1 seen" in text
    assert metadata_check._never_leaves(FakeCapture("router1 qg-x", [], "3 packets dropped by kernel"))[0] == UNPROVEN


def test_redirect_counter():
    assert metadata_check._redirected(1, "router1")[0] == PASS
    assert metadata_check._redirected(0, "router1")[0] == FAIL
    sample = ("Chain neutron-l3-agent-PREROUTING (1 references)\n"
              "    pkts      bytes target     prot opt in     out     source               destination\n"
              "       3      180 REDIRECT   6    --  qr-+   *       0.0.0.0/0            169.254.169.254      tcp dpt:80 redir ports 9697\n"
              "       0        0 DNAT       0    --  *      *       0.0.0.0/0            203.0.113.102        to:192.168.1.11\n")
    assert sum(int(m.group(1)) for m in metadata_check.REDIRECT_RE.finditer(sample)) == 3


def test_metadata_checks_in_the_scenarios():
    for name, instances in (("classic-vlan", {"vm1", "alt-vm1"}), ("classic-vxlan", {"vm1"}),
                            ("classic-gre", {"vm1"}), ("dvr-vlan", {"vm1", "vm2"}), ("dvr-vxlan", {"vm1", "vm2"})):
        scenario = load_scenario(name)
        checks = [c for c in scenario.checks if c.proto == "metadata"]
        assert {c.source for c in checks} == instances, name
        assert all(c.destination == "169.254.169.254" and c.port == 80 for c in checks)
        plan = build_plan(scenario)
        assert all(metadata_check.metadata.for_instance(plan, c.source) is not None for c in checks)
