"""`lab flows`: parsing real `ovs-ofctl dump-flows --names` output, naming tables, annotating
flows in Neutron's words, and --diff.

The dumps in tests/data/flows/ were recorded from live labs by tests/data/flows/record.sh (its
header has the one-line command); their port names, MACs and cookies are the ones the plan
derives, so the plan built here names them. Annotated renders are pinned by golden files in
tests/golden/flows/ (regenerate with UPDATE_GOLDEN=1 .venv/bin/python -m pytest
tests/unit/test_flows.py and review the diff).
"""

from __future__ import annotations

import difflib
import json
import os
import re
import types
from pathlib import Path

import pytest

from lab.core import naming
from lab.core.plan import build_plan
from lab.core.scenario import load_scenario
from lab.tools import flows

TESTS = Path(__file__).resolve().parent.parent
DATA = TESTS / "data" / "flows"
GOLDEN = TESTS / "golden" / "flows"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
DUMPS = sorted(p.stem for p in DATA.glob("*.txt"))
PLANS: dict[str, object] = {}


def split(stem: str) -> tuple[str, str, str]:
    """classic-vlan-compute1-br-int -> (lab, node, bridge)."""
    parts = stem.split("-")
    return "-".join(parts[:-3]), parts[-3], "-".join(parts[-2:])


def plan_of(lab: str):
    if lab not in PLANS:
        PLANS[lab] = build_plan(load_scenario(lab), datapath="netdev")
    return PLANS[lab]


def dump(stem: str) -> list[flows.Flow]:
    return flows.parse_flows((DATA / f"{stem}.txt").read_text())


def annotated(stem: str) -> dict[str, str]:
    """match -> annotated line, for the flows of one recorded dump that have a match (unique
    per dump); "table N" -> the line of table N's catch-all flow."""
    lab, node, bridge = split(stem)
    plan = plan_of(lab)
    out = {}
    for f in dump(stem):
        key = f.match or f"table {f.table}"
        assert key not in out, key
        out[key] = flows.annotate(f, bridge, plan, plan.node(node))
    return out


def test_recorded_dumps_exist():
    assert len(DUMPS) >= 7, DUMPS
    assert {split(s)[2] for s in DUMPS} >= {"br-int", "br-tun", "br-vlan", "br-ex"}


# --------------------------------------------------------------------------- parse_flows

def test_parse_every_line_of_every_dump():
    for stem in DUMPS:
        lines = [x for x in (DATA / f"{stem}.txt").read_text().splitlines() if x.strip()]
        parsed = dump(stem)
        assert len(parsed) == len(lines), stem
        for line, f in zip(lines, parsed):
            assert f"table={f.table}, n_packets={f.n_packets}, n_bytes={f.n_bytes}," in line
            assert line.endswith(f" actions={f.actions}")
            assert int(f.cookie, 16) == int(plan_of(split(stem)[0]).cookie, 16), stem   # OVS drops leading zeros


def test_parse_fields_of_a_recorded_bridge():
    assert dump("classic-vlan-compute1-br-vlan") == [
        flows.Flow(0, 4, 'in_port="phy-br-vlan",dl_vlan=1', "mod_vlan_vid:101,NORMAL", 11, 1942, "0xd3554110c109b317"),
        flows.Flow(0, 2, 'in_port="phy-br-vlan"', "drop", 0, 0, "0xd3554110c109b317"),
        flows.Flow(0, 0, "", "NORMAL", 20, 4932, "0xd3554110c109b317")]


def test_parse_learned_flows_drop_timeouts():
    learned = [f for f in dump("classic-gre-compute1-br-tun") if f.table == 20 and f.priority == 1]
    assert [f.match for f in learned] == [f"vlan_tci=0x0001/0x0fff,dl_dst={m}" for m in
                                          ("fa:16:3e:33:8d:5e", "fa:16:3e:34:14:62", "fa:16:3e:d4:26:1d")]
    assert all("timeout" not in f.match and "age" not in f.match for f in learned)
    assert learned[0].n_packets == 3 and learned[0].actions.endswith('output:"gre-c633640d"')


COOKIE = "cookie=0x1, duration=1.5s, table=3, n_packets=7, n_bytes=700, "


@pytest.mark.parametrize("rest, priority, match", [
    ("idle_age=4, hard_age=2, priority=5,ip,nw_dst=10.0.0.1 actions=drop", 5, "ip,nw_dst=10.0.0.1"),
    ("idle_timeout=10, hard_timeout=300, idle_age=1, priority=1,arp actions=drop", 1, "arp"),
    ("send_flow_rem reset_counts priority=9,in_port=1 actions=drop", 9, "in_port=1"),
    ("importance=3, priority=2 actions=drop", 2, ""),
    ("actions=drop", 32768, ""),                            # default priority: OVS prints none
    ("hard_timeout=300, idle_age=4, actions=drop", 32768, ""),
    ("in_port=2 actions=drop", 32768, "in_port=2"),
])
def test_parse_crafted_lines(rest, priority, match):
    (f,) = flows.parse_flows(f" {COOKIE}{rest}\n")
    assert (f.table, f.priority, f.match, f.actions, f.n_packets, f.n_bytes, f.cookie) == (
        3, priority, match, "drop", 7, 700, "0x1")


def test_parse_skips_what_is_not_a_flow():
    text = f"NXST_FLOW reply (xid=0x4):\n\n {COOKIE}priority=1 actions=NORMAL\nOFPST_FLOW reply (OF1.3):\n"
    assert [f.actions for f in flows.parse_flows(text)] == ["NORMAL"]
    assert flows.parse_flows("") == []


def test_flow_key_ignores_counters():
    a, b = flows.parse_flows(f" {COOKIE}priority=1 actions=NORMAL\n"
                             " cookie=0x1, duration=9s, table=3, n_packets=99, n_bytes=1, priority=1 actions=NORMAL\n")
    assert a.key == b.key == "3|1||NORMAL" and a != b


def _golden_flows(lab: str, node: str, bridge: str) -> set[tuple]:
    out = set()
    for line in (TESTS / "golden" / lab / node / f"{bridge}.flows").read_text().splitlines():
        if line and not line.startswith("#"):
            m = re.fullmatch(r"cookie=\S+?,table=(\d+),priority=(\d+),?(.*?),?actions=(.*)", line)
            out.add((int(m[1]), int(m[2]), m[3], m[4]))
    return out


@pytest.mark.parametrize("stem", DUMPS)
def test_recorded_dump_is_what_the_lab_renders(stem):
    """Every installed flow is a rendered one and back, but for the flows br-tun learned at run
    time: proves the parse keeps table, priority, match and actions whole. If the render
    changed on purpose, re-record: flock /tmp/nlab-integration.lock tests/data/flows/record.sh"""
    lines = (DATA / f"{stem}.txt").read_text().splitlines()
    learned = {i for i, line in enumerate(lines) if re.search(r"n_bytes=\d+, hard_timeout=", line)}
    parsed = [f for i, f in enumerate(dump(stem)) if i not in learned]

    def norm(text: str) -> str:     # OVS quotes port names and spells the in_port action IN_PORT
        text = re.sub(r",IN_PORT$", ",in_port", text.replace('"', ""))
        # the OVS firewall writes set_field, as Neutron does; OpenFlow 1.0 dumps say load
        text = re.sub(r"load:(0x[0-9a-f]+)->NXM_NX_(REG\d)\[\]", lambda m: f"set_field:{m[1]}->{m[2].lower()}", text)
        return text.replace("load:0x1->NXM_NX_CT_MARK[]", "set_field:0x1->ct_mark")
    installed = {(f.table, f.priority, norm(f.match), norm(f.actions)) for f in parsed}
    assert installed == _golden_flows(*split(stem))
    assert len(installed) == len(parsed)
    assert all(dump(stem)[i].table == 20 for i in learned)


# --------------------------------------------------------------------------- tables

# neutron-lib neutron_lib/plugins/ml2/ovs_constants.py, without the metadata tables (80-91)
NEUTRON_LIB_TABLES = {
    "br-int": {0, 1, 2, 3, 4, 23, 24, 25, 30, 31, 58, 59, 60, 61, 62, 71, 72, 73, 77, 78, 81, 82, 91, 92, 93, 94},
    "br-tun": {0, 1, 2, 3, 4, 6, 9, 10, 20, 21, 22},
    "physical": {0, 1, 2, 3},
}


def test_tables_are_neutron_libs():
    assert {k: set(v) for k, v in flows.TABLES.items()} == NEUTRON_LIB_TABLES


@pytest.mark.parametrize("bridge, table, name", [
    ("br-int", 0, "local switching"), ("br-int", 23, "canary"), ("br-int", 24, "ARP spoofing protection"),
    ("br-int", 25, "MAC spoofing protection"), ("br-int", 58, "packet rate limit"), ("br-int", 60, "transient"),
    ("br-int", 62, "transient egress"),
    ("br-tun", 2, "unicast or flood (from br-int)"), ("br-tun", 3, "GRE tunnel id to local VLAN"),
    ("br-tun", 4, "VXLAN tunnel id to local VLAN"), ("br-tun", 10, "learn from tunnel"),
    ("br-tun", 20, "unicast to tunnel"), ("br-tun", 21, "ARP responder"), ("br-tun", 22, "flood to tunnels"),
    ("br-vlan", 0, "local VLAN translation"), ("br-ex", 0, "local VLAN translation"),
    ("br-anything", 1, "DVR process (physical)"), ("br-int", 200, ""), ("br-tun", 59, ""),
])
def test_table_name(bridge, table, name):
    assert flows.table_name(bridge, table) == name


@pytest.mark.parametrize("lab", ["classic-vlan", "classic-vxlan", "classic-gre", "classic-ovsfw"])
def test_every_table_the_lab_installs_has_a_name(lab):
    for path in (TESTS / "golden" / lab).glob("*/*.flows"):
        bridge = path.stem
        for table in {int(t) for t in re.findall(r"^cookie=\S+?,table=(\d+),", path.read_text(), re.M)}:
            assert flows.table_name(bridge, table), (path, table)


# --------------------------------------------------------------------------- annotate

def test_annotate_names_instance_ports():
    plan = plan_of("classic-vlan")
    vm1, vm3 = plan.node("compute1").ports
    qvo1, qvo3 = (naming.port_device("qvo", p.port_id) for p in (vm1, vm3))
    lines = annotated("classic-vlan-compute1-br-int")
    line = lines[f'in_port="{qvo1}",dl_src={vm1.mac}']
    assert f"in_port={qvo1} [vm1 (net1)],dl_src={vm1.mac} -> resubmit(,30)" in line
    assert line.startswith("       9 pkts  prio 2     ")
    assert "[vm3 (net1)]" in lines[f'arp,in_port="{qvo3}"']
    assert lines["dl_vlan=4095"].endswith("-> drop   # dead VLAN")
    assert lines["table 30"].endswith("prio 0     any -> resubmit(,58)")   # no match, no note


def test_annotate_vlans_on_the_wire_and_local():
    lines = annotated("classic-vlan-network1-br-int")
    assert lines['in_port="int-br-vlan",dl_vlan=102'].endswith(
        "# VLAN 102 on the wire = net2; to local VLAN 2 (net2)")
    assert "in_port=int-br-vlan [patch to br-vlan]" in lines['in_port="int-br-vlan",dl_vlan=102']
    assert lines['in_port="int-br-ex",vlan_tci=0x0000/0x1fff'].endswith(
        "# untagged on the wire = ext-net; to local VLAN 4 (ext-net)")
    assert lines['in_port="int-br-ex"'].endswith("in_port=int-br-ex [patch to br-ex] -> drop")


def test_annotate_physical_bridges():
    vlan = annotated("classic-vlan-compute1-br-vlan")
    assert vlan['in_port="phy-br-vlan",dl_vlan=1'].endswith(
        "in_port=phy-br-vlan [patch to br-int],dl_vlan=1 -> mod_vlan_vid:101,NORMAL"
        "   # local VLAN 1 = net1; leaves with VLAN 101 (net1)")
    ex = annotated("classic-vlan-network1-br-ex")
    assert ex['in_port="phy-br-ex",dl_vlan=4'].endswith("# local VLAN 4 = ext-net; leaves untagged (flat)")


def test_annotate_tunnels_learning_and_arp_responder():
    plan = plan_of("classic-vxlan")
    lines = annotated("classic-vxlan-compute1-br-tun")
    assert lines['in_port="vxlan-c633640d"'].endswith("in_port=vxlan-c633640d [vxlan to compute2] -> resubmit(,4)")
    assert lines["tun_id=0x3e9"].endswith("# to local VLAN 1 (net1); tunnel id 1001 = net1")
    assert lines["dl_vlan=1"].endswith(
        "output:vxlan-c633640b [vxlan to network1],output:vxlan-c633640d [vxlan to compute2]"
        "   # local VLAN 1 = net1; tunnel id 1001 = net1")
    vm2 = plan.port("vm2")
    assert lines[f"dl_vlan=1,dl_dst={vm2.mac}"].endswith("# local VLAN 1 = net1; tunnel id 1001 = net1; to vm2")
    learned = lines[f"vlan_tci=0x0001/0x0fff,dl_dst={vm2.mac}"]
    assert learned.endswith("# local VLAN 1 = net1; tunnel id 1001 = net1; to vm2")
    assert lines["table 10"].endswith(",output:patch-int [patch to br-int]   # learns MAC -> tunnel into table 20")
    arp = lines["arp,dl_vlan=1,arp_tpa=192.168.1.12"]
    assert arp.startswith("       1 pkts  prio 1 ")
    assert arp.endswith(f"# local VLAN 1 = net1; answers ARP: 192.168.1.12 is at {vm2.mac} (vm2)")
    dhcp = next(d for d in plan.dhcp_servers if d.network == "net1")
    assert lines["arp,dl_vlan=1,arp_tpa=192.168.1.2"].endswith(f"is at {dhcp.port.mac} (net1-dhcp)")
    routers = getattr(plan, "router_instances", plan.routers)       # where each router lives
    gw = next(p for r in routers for p in r.ports if p.ip == "192.168.1.1")
    assert lines["arp,dl_vlan=1,arp_tpa=192.168.1.1"].endswith(f"is at {gw.mac} (router1 {gw.ns_dev})")


def test_annotate_gre_keys():
    lines = annotated("classic-gre-compute1-br-tun")
    assert lines["tun_id=0x1"].endswith("# to local VLAN 1 (net1); tunnel id 1 = net1")
    assert 'in_port=gre-c633640b [gre to network1]' in lines['in_port="gre-c633640b"']


def test_annotate_unknown_names_stay_plain():
    plan = plan_of("classic-vlan")
    (f,) = flows.parse_flows(f" {COOKIE}priority=1,in_port=\"qvo-stranger\",dl_vlan=77,dl_dst=fa:16:3e:00:00:01"
                             " actions=mod_vlan_vid:88,load:0x99->NXM_NX_TUN_ID[],output:\"eth9\"\n")
    line = flows.annotate(f, "br-int", plan, plan.node("compute1"))
    assert line == ("       7 pkts  prio 1     in_port=qvo-stranger,dl_vlan=77,dl_dst=fa:16:3e:00:00:01 -> "
                    "mod_vlan_vid:88,load:0x99->NXM_NX_TUN_ID[],output:eth9")


@pytest.mark.parametrize("match, vids", [
    ("dl_vlan=5", [5]), ("vlan_tci=0x0000/0x1fff", [None]), ("vlan_tci=0x1005/0x1fff", [5]),
    ("vlan_tci=0x0007/0x0fff", [7]), ("vlan_tci=0x1000/0x1000", []), ("ip", []),
])
def test_matched_vlans(match, vids):
    assert flows._matched_vlans(match) == vids


# --------------------------------------------------------------------------- render and --diff

def check_golden(path: Path, actual: str) -> None:
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual)
        return
    assert path.is_file(), f"{path} is missing; regenerate with UPDATE_GOLDEN=1"
    expected = path.read_text()
    if actual != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), actual.splitlines(True),
                                            f"{path.name} (golden)", f"{path.name} (now)"))
        pytest.fail(f"{path.name} differs; if intended, regenerate with UPDATE_GOLDEN=1\n{diff}", pytrace=False)


@pytest.mark.parametrize("stem", DUMPS)
def test_render_golden(stem):
    lab, node, bridge = split(stem)
    plan = plan_of(lab)
    check_golden(GOLDEN / f"{stem}.txt", flows.render(plan, plan.node(node), bridge, dump(stem)) + "\n")


def test_no_stale_flow_goldens():
    assert sorted(p.stem for p in GOLDEN.glob("*.txt")) == DUMPS


def test_render_groups_by_table_highest_priority_first():
    plan = plan_of("classic-vlan")
    text = flows.render(plan, plan.node("compute1"), "br-int", dump("classic-vlan-compute1-br-int")).splitlines()
    assert text[0] == f"compute1 br-int  (cookie {plan.cookie}; packets counted since the flow was installed)"
    headers = [x for x in text if x.startswith("  table ")]
    assert headers == ["  table 0 — local switching", "  table 23 — canary", "  table 24 — ARP spoofing protection",
                       "  table 25 — MAC spoofing protection", "  table 30 — local egress", "  table 31 — local IP",
                       "  table 58 — packet rate limit", "  table 59 — bandwidth rate limit", "  table 60 — transient",
                       "  table 62 — transient egress"]
    table0 = text[2:text.index("  table 23 — canary")]
    prios = [int(re.search(r" prio (\d+) ", x).group(1)) for x in table0]
    assert prios == sorted(prios, reverse=True) and len(prios) == 8


def _with_counts(fl: list[flows.Flow], changes: dict[str, int]) -> list[flows.Flow]:
    return [flows.Flow(f.table, f.priority, f.match, f.actions, changes.get(f.match, f.n_packets), f.n_bytes,
                       f.cookie) for f in fl]


def test_diff_shows_only_what_moved():
    plan = plan_of("classic-vlan")
    node = plan.node("compute1")
    before = dump("classic-vlan-compute1-br-vlan")
    previous = {f.key: f.n_packets for f in before}
    assert flows.render(plan, node, "br-vlan", before, previous).splitlines()[1:] == [
        "    no flow counted a packet since the previous call"]
    now = _with_counts(before, {'in_port="phy-br-vlan",dl_vlan=1': 16})
    lines = flows.render(plan, node, "br-vlan", now, previous).splitlines()
    assert lines[1] == "  table 0 — local VLAN translation"
    assert len(lines) == 3 and lines[2].startswith("          +5        16 pkts  prio 4 ")
    assert lines[2].endswith("leaves with VLAN 101 (net1)")


def test_diff_names_new_and_removed_flows():
    plan = plan_of("classic-vlan")
    node = plan.node("compute1")
    before = dump("classic-vlan-compute1-br-vlan")
    previous = {f.key: f.n_packets for f in before[1:]}          # the first flow is new
    previous["0|7|dl_vlan=9|drop"] = 3                           # and this one went away
    lines = flows.render(plan, node, "br-vlan", before, previous).splitlines()
    assert lines[2].startswith("         new        11 pkts  prio 4 ")
    assert lines[-1] == "    removed  0 7 dl_vlan=9 drop"
    assert len(lines) == 4


# --------------------------------------------------------------------------- show, dump, bridges

def test_bridges_of():
    vlan, vxlan = plan_of("classic-vlan"), plan_of("classic-vxlan")
    assert flows.bridges_of(vlan.node("compute1")) == ["br-int", "br-vlan"]
    assert flows.bridges_of(vlan.node("network1")) == ["br-int", "br-vlan", "br-ex"]
    assert flows.bridges_of(vxlan.node("compute1")) == ["br-int", "br-tun"]
    assert flows.bridges_of(vxlan.node("network1")) == ["br-int", "br-ex", "br-tun"]


def test_dump_asks_the_nodes_ovs(monkeypatch):
    plan = plan_of("classic-vlan")
    node = plan.node("compute1")
    calls = []

    def run(argv, **kw):
        calls.append((argv, kw))
        return types.SimpleNamespace(stdout=(DATA / "classic-vlan-compute1-br-vlan.txt").read_text())
    monkeypatch.setattr(flows.gateway, "run", run)
    assert flows.dump(node, "br-vlan") == dump("classic-vlan-compute1-br-vlan")
    assert calls == [(["ovs-ofctl", "dump-flows", "--names", "br-vlan"],
                      {"env": {"OVS_RUNDIR": node.rundir, "OVS_DBDIR": node.rundir, "OVS_LOGDIR": node.rundir}})]


@pytest.fixture
def fake_dump(monkeypatch):
    """flows.dump reads the recorded dumps of classic-vlan; COUNTS changes counters by match."""
    counts: dict[str, int] = {}
    asked: list[str] = []

    def fake(node, bridge):
        asked.append(f"{node.name} {bridge}")
        return _with_counts(dump(f"classic-vlan-{node.name}-{bridge}"), counts)
    monkeypatch.setattr(flows, "dump", fake)
    return types.SimpleNamespace(counts=counts, asked=asked)


def test_show_every_bridge_and_snapshot(tmp_path, fake_dump):
    plan = plan_of("classic-vlan")
    out = flows.show(plan, tmp_path, "compute1", None, diff=False)
    assert fake_dump.asked == ["compute1 br-int", "compute1 br-vlan"]
    first, second = out.split("\n\n")
    assert first.startswith("compute1 br-int ") and second.startswith("compute1 br-vlan ")
    snap = json.loads(flows.snapshot_path(tmp_path, "compute1", "br-vlan").read_text())
    assert snap == {f.key: f.n_packets for f in dump("classic-vlan-compute1-br-vlan")}
    assert flows.snapshot_path(tmp_path, "compute1", "br-int") == tmp_path / "flows" / "compute1-br-int.json"


def test_show_diff_against_the_previous_call(tmp_path, fake_dump):
    plan = plan_of("classic-vlan")
    first = flows.show(plan, tmp_path, "compute1", "br-vlan", diff=True)     # no snapshot yet: all new
    assert first.count("     new  ") == 3
    assert flows.show(plan, tmp_path, "compute1", "br-vlan", diff=True).endswith(
        "no flow counted a packet since the previous call")
    fake_dump.counts['in_port="phy-br-vlan",dl_vlan=1'] = 20
    moved = flows.show(plan, tmp_path, "compute1", "br-vlan", diff=True).splitlines()
    assert len(moved) == 3 and moved[2].strip().startswith("+9 ")
    flows.snapshot_path(tmp_path, "compute1", "br-vlan").write_text("{not json")
    assert flows.show(plan, tmp_path, "compute1", "br-vlan", diff=True).count("     new  ") == 3


def test_show_unknown_bridge(tmp_path, fake_dump):
    with pytest.raises(ValueError, match=r"compute1 has no bridge br-tun \(its bridges: br-int, br-vlan\)"):
        flows.show(plan_of("classic-vlan"), tmp_path, "compute1", "br-tun", diff=False)
    assert fake_dump.asked == []
