"""The openvswitch firewall driver (lab/core/plugs/openvswitch.py): the plug, the OVSDB
columns, and the flows as Neutron's OVSFirewallDriver writes them (firewall.py, rules.py).

The full renders of classic-ovsfw are golden files (tests/golden/classic-ovsfw/); these
tests pin the parts that follow from Neutron's code rule by rule."""

from __future__ import annotations

import random

import pytest

from lab.core import naming, plugs
from lab.core.plan import PortRule, build_plan
from lab.core.plugs import openvswitch as ovsfw
from lab.core.render import render_plan
from test_golden import ovsdb_text, scenario_for_golden

COMPUTES = ("compute1", "compute2")


@pytest.fixture(scope="module")
def plan():
    return build_plan(scenario_for_golden("classic-ovsfw"))


@pytest.fixture(scope="module")
def rendered(plan):
    return render_plan(plan)


# ------------------------------------------------------------------ Neutron's port_rule_masking
# neutron/common/utils.py (Apache 2.0), copied as the reference the lab's version must equal.

def _hex_format(port, mask=0):
    def hex_str(num):
        return format(num, '#06x')
    if mask > 0:
        return f"{hex_str(port)}/{hex_str(0xffff & ~mask)}"
    return hex_str(port)


def _gen_rules_port_min(port_min, top_bit):
    rules = []
    mask = top_bit - 1
    while True:
        if (port_min & mask) == 0:
            rules.append(_hex_format(port_min, mask))
            break
        top_bit >>= 1
        mask >>= 1
        if (port_min & top_bit) == 0:
            rules.append(_hex_format(port_min & ~mask | top_bit, mask))
    return rules


def _gen_rules_port_max(port_max, top_bit):
    rules = []
    mask = top_bit - 1
    while True:
        if (port_max & mask) == mask:
            rules.append(_hex_format(port_max & ~mask, mask))
            break
        top_bit >>= 1
        mask >>= 1
        if (port_max & top_bit) == top_bit:
            rules.append(_hex_format(port_max & ~mask & ~top_bit, mask))
    return rules


def neutron_port_rule_masking(port_min, port_max):
    bitdiff = port_min ^ port_max
    if bitdiff == 0:
        return [_hex_format(port_min)]
    top_bit = 1
    while top_bit <= bitdiff:
        top_bit <<= 1
    if port_min & (top_bit - 1) == 0 and port_max & (top_bit - 1) == top_bit - 1:
        return [_hex_format(port_min, top_bit - 1)]
    top_bit >>= 1
    return _gen_rules_port_min(port_min, top_bit) + _gen_rules_port_max(port_max, top_bit)


def _canonical(match: str) -> tuple[int, int]:
    value, _, mask = match.partition("/")
    return int(value, 0), int(mask or "0xffff", 0)


@pytest.mark.parametrize("port_min, port_max", [(5, 12), (20, 130), (4501, 33057), (0, 65535), (22, 22),
                                                (5001, 5001), (0, 7), (8, 15), (1, 127), (1, 65535)])
def test_port_masks_are_neutrons(port_min, port_max):
    ours = ovsfw.port_masks(port_min, port_max)
    assert sorted(map(_canonical, ours)) == sorted(map(_canonical, neutron_port_rule_masking(port_min, port_max)))


def test_port_masks_random_ranges_cover_exactly():
    rng = random.Random(15)
    for _ in range(300):
        lo, hi = sorted(rng.sample(range(1, 65536), 2))
        ours = [_canonical(m) for m in ovsfw.port_masks(lo, hi)]
        assert sorted(ours) == sorted(map(_canonical, neutron_port_rule_masking(lo, hi))), (lo, hi)
        covered = sum(0x10000 - mask for _, mask in ours)      # each block is 2^k ports
        assert covered == hi - lo + 1 and all(lo <= v <= hi for v, _ in ours)


def test_link_local_address_is_eui64_of_the_mac():
    # the example of neutron-facts §2.3 (OFPort.lla_address)
    assert ovsfw.lla("fa:16:3e:11:22:33") == "fe80::f816:3eff:fe11:2233"


# ------------------------------------------------------------------ the plug and the node

def test_computes_plug_taps_straight_on_br_int(plan):
    for name in COMPUTES:
        node = plan.node(name)
        assert node.firewall_driver == "openvswitch"
        for p in node.ports:
            tap = naming.port_device("tap", p.port_id)
            assert [d.role for d in p.plug.devices] == ["tap"] and p.ovs_port == tap
    assert plan.node("network1").firewall_driver == "iptables_hybrid"


def test_computes_keep_no_iptables_and_no_br_int_anti_spoofing(plan, rendered):
    for name in COMPUTES:
        r = rendered[name]
        assert r.iptables == ""
        flows = r.flows["br-int"]
        assert "resubmit(,24)" not in flows and "resubmit(,25)" not in flows and "qvo" not in flows
        for p in plan.node(name).ports:
            assert f"dl_src={p.mac},arp_spa={p.ip},actions=resubmit(,94)" in flows


def test_ovsdb_requests_the_ofports_the_flows_name(plan, rendered):
    for name in COMPUTES:
        text = ovsdb_text(rendered[name].ovsdb)
        numbers = ovsfw.ofports(plan, plan.node(name))
        for i, p in enumerate(plan.node(name).ports):
            assert numbers[p.ovs_port] == ovsfw.OFPORT_BASE + i
            line = next(l for l in text.splitlines() if l.startswith(f"set Interface {p.ovs_port} "))
            assert f"external_ids:iface-id={p.port_id}" in line and f"ofport_request={numbers[p.ovs_port]}" in line
            assert f"table=60,priority=100,in_port={p.ovs_port},actions=set_field:{numbers[p.ovs_port]:#x}->reg5," \
                   f"set_field:{p.local_vlan:#x}->reg6,resubmit(,71)" in rendered[name].flows["br-int"]
    assert "ofport_request" not in " ".join(rendered["network1"].ovsdb)


# ------------------------------------------------------------------ rules (rules.py)

def _port(plan, rules):
    import dataclasses
    return dataclasses.replace(plan.port("vm1"), rules=tuple(rules))


def test_cidr_rules_priority_and_match(plan):
    """flow_priority_offset: 4 without a remote group, +1 ICMP, +3 TCP/UDP; ingress matches
    the source, egress the destination, /0 matches nothing; ports become masks."""
    rules = [PortRule("ingress", "tcp", 8000, 8080, ("10.0.0.0/8",)),
             PortRule("ingress", "icmp", None, None, ("0.0.0.0/0",)),
             PortRule("egress", "udp", 53, 53, ("198.51.100.7/32",)),
             PortRule("egress", "any", None, None, ("0.0.0.0/0",))]
    port = _port(plan, rules)
    flows = {(f.table, f.priority, f.match, f.actions) for f in ovsfw.port_rule_flows(port, 10, {})}
    tap = port.ovs_port
    new_in = f"ct(commit,zone=NXM_NX_REG6[0..15]),output:{tap},resubmit(,92)"
    assert (82, 77, "ct_state=+new-est,tcp,reg5=0xa,nw_src=10.0.0.0/8,tp_dst=0x1f40/0xffc0", new_in) in flows
    assert (82, 77, "ct_state=+est-rel-rpl,tcp,reg5=0xa,nw_src=10.0.0.0/8,tp_dst=8080", f"output:{tap}") in flows
    assert (82, 75, "ct_state=+new-est,icmp,reg5=0xa", new_in) in flows
    assert (72, 77, "ct_state=+new-est,udp,reg5=0xa,nw_dst=198.51.100.7,tp_dst=53", "resubmit(,73)") in flows
    assert (72, 74, "ct_state=+est-rel-rpl,ip,reg5=0xa", "resubmit(,73)") in flows
    masks = [f[2] for f in flows if f[0] == 82 and f[1] == 77 and "+new-est" in f[2]]
    assert len(masks) == len(ovsfw.port_masks(8000, 8080)) == 3


def test_remote_group_rules_are_conjunctions(plan):
    """A remote-group rule: dimension 2 per port at 70 + offset (no +4), conj ids from the
    group's block (+2 per offset, +1 for +new-est), accept flows that load reg7."""
    rules = [PortRule("ingress", "tcp", 22, 22, ("192.168.1.12/32",), "admins"),
             PortRule("ingress", "any", None, None, ("192.168.1.13/32",), "default")]
    port = _port(plan, rules)
    bases = ovsfw.conj_bases((port,))
    assert bases == {("demo", "admins", "ingress"): 16, ("demo", "default", "ingress"): 24}
    flows = {(f.table, f.priority, f.match, f.actions) for f in ovsfw.port_rule_flows(port, 10, bases)}
    assert (82, 73, "ct_state=+new-est,tcp,reg5=0xa,tp_dst=22", "conjunction(23,2/2)") in flows
    assert (82, 73, "conj_id=23,ct_state=+new-est,ip,reg5=0xa",
            f"set_field:0x17->reg7,ct(commit,zone=NXM_NX_REG6[0..15]),output:{port.ovs_port},resubmit(,92)") in flows
    assert (82, 70, "conj_id=24,ct_state=+est-rel-rpl,ip,reg5=0xa", f"set_field:0x18->reg7,output:{port.ovs_port}") in flows
    members = {(f.priority, f.match, f.actions) for f in ovsfw.member_flows((port,), bases)}
    assert (73, f"ct_state=+est-rel-rpl,ip,reg6={port.local_vlan:#x},nw_src=192.168.1.12", "conjunction(22,1/2)") in members
    assert (70, f"ct_state=+new-est,ip,reg6={port.local_vlan:#x},nw_src=192.168.1.13", "conjunction(25,1/2)") in members


def test_port_without_security_group_has_no_accept_flow(plan, rendered):
    vm4 = plan.port("vm4")
    o = ovsfw.ofports(plan, plan.node(vm4.node))[vm4.ovs_port]
    mine = [l for l in rendered[vm4.node].flows["br-int"].splitlines() if f"reg5={o:#x}" in l and "table=82" in l]
    assert mine and not [l for l in mine if "priority=7" in l]
    assert any("priority=40,ct_state=-est" in l and "resubmit(,93)" in l for l in mine)


def test_trusted_ports_get_the_no_port_security_flows():
    """A node with the OVS firewall that also holds router and DHCP ports (classic-ovsfw
    with network1 on openvswitch): process_trusted_ports -> table 60 to 73, 73 to 94."""
    import dataclasses
    scenario = scenario_for_golden("classic-ovsfw")
    scenario = dataclasses.replace(scenario, nodes=tuple(dataclasses.replace(n, firewall_driver="openvswitch")
                                                         for n in scenario.nodes))
    plan = build_plan(scenario)
    node = plan.node("network1")
    flows = plugs.driver("openvswitch").br_int_flows(plan, node)
    numbers = ovsfw.ofports(plan, node)
    trusted = ovsfw.trusted_ports(plan, node)
    assert trusted and len(numbers) == len(trusted)
    for t in trusted:
        o = numbers[t.ovs_dev]
        assert f"table=60,priority=100,in_port={t.ovs_dev},actions=set_field:{o:#x}->reg5,set_field:{t.local_vlan:#x}->reg6," \
               f"resubmit(,73)" in flows
        assert f"table=73,priority=80,reg5={o:#x},actions=resubmit(,94)" in flows


# ------------------------------------------------------------------ lab trace through ct()
# tests/data/ofproto/: real `ovs-appctl ofproto/trace` output on compute2 of classic-ovsfw,
# a packet from the wire (VLAN 101) to vm2 (allowed by the default group) and to vm4 (no group).

def _summary(name: str) -> list[str]:
    from pathlib import Path
    from lab.tools.trace import summarize_ofproto
    data = Path(__file__).resolve().parent.parent / "data" / "ofproto"
    return summarize_ofproto((data / f"classic-ovsfw-compute2-{name}.txt").read_text())


def test_trace_follows_conntrack_recirculation_to_the_accepting_rule():
    lines = _summary("vm1-vm2")
    assert lines[1].startswith("br-int: table 0 (local switching) prio 3")
    assert lines[1].endswith("table 81 (base ingress) prio 90 [ct_state=-trk,ip,reg5=0xb] -> ct(table=82,zone=NXM_NX_REG6[0..15])")
    assert lines[3] == ("br-int: table 82 (rules ingress) prio 70 [conj_id=25,ct_state=+new-est,ip,reg5=0xb] -> "
                        "ct(commit,zone=NXM_NX_REG6[0..15]) -> output:11 -> table 92 (accepted ingress) prio 0 -> drop")
    assert lines[4] == "Datapath actions: ct(commit,zone=2),2"
    assert not any(line.startswith("br-vlan: ") and "table 82" in line for line in lines)   # thawed in br-int


def test_trace_names_the_dropping_table():
    lines = _summary("vm1-vm4")
    assert "drop" not in lines[1]           # the ct() of table 81 is not a verdict
    assert lines[3] == "br-int: table 82 (rules ingress) prio 40 [ct_state=-est,reg5=0xc] -> table 93 (dropped) prio 0 -> drop"
    assert lines[4] == "Datapath actions: drop"


# ------------------------------------------------------------------ which rule counted (lab check)

def test_runtime_reads_the_ports_rule_counters_from_a_real_dump(plan, monkeypatch):
    """The OVS firewall's kernel plug parses `ovs-ofctl dump-flows br-int reg5=…` (here the
    recorded dump of compute2) into the counters of tables 72 and 82."""
    from pathlib import Path
    from types import SimpleNamespace
    from lab.runtime.plugs import openvswitch as kernel_ovsfw
    dump = (Path(__file__).resolve().parent.parent / "data" / "flows" / "classic-ovsfw-compute2-br-int.txt").read_text()
    vm2 = plan.port("vm2")
    seen = []

    def run(argv, **kw):
        seen.append(argv)
        mine = "\n".join(line for line in dump.splitlines() if "reg5=0xb" in line)   # what the match selects
        return SimpleNamespace(stdout=mine, returncode=0)
    monkeypatch.setattr(kernel_ovsfw.gateway, "run", run)
    got = kernel_ovsfw.DRIVER.counters(plan, vm2)
    assert seen == [["ovs-appctl", "revalidator/wait"], ["ovs-ofctl", "dump-flows", "--names", "br-int", "reg5=0xb"]]
    assert {t for t, _, _, _ in got} == {72, 82}
    assert got[(82, 70, "conj_id=25,ct_state=+new-est,ip,reg5=0xb",
                "load:0x19->NXM_NX_REG7[],ct(commit,zone=NXM_NX_REG6[0..15]),output:tap30f8d82b-fa,resubmit(,92)")] == 1


def test_check_evidence_names_the_rule_whose_counter_moved(plan, monkeypatch):
    from lab.runtime.plugs import openvswitch as kernel_ovsfw
    from lab.tools import rules
    key = (82, 40, "ct_state=-est,reg5=0xc", "resubmit(,93)")
    readings = iter([{key: 5}, {key: 7}])       # vm4's port before and after; vm1's: none
    monkeypatch.setattr(kernel_ovsfw.DRIVER, "counters", lambda plan, port: next(readings) if port.instance == "vm4" else {})
    counted = rules.Counted(plan, "vm1", "vm4")
    assert {p.instance for p in counted.ports} == {"vm1", "vm4"}
    assert counted.moved() == ["rule compute2 br-int table 82 (rules ingress) prio 40 [ct_state=-est,reg5=0xc] "
                               "-> resubmit(,93): 2 packet(s) (vm4)"]
    assert [p.instance for p in rules.Counted(plan, "ext1", "203.0.113.102").ports] == ["vm1"]   # behind the floating IP
