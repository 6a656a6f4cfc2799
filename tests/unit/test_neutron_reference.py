"""The lab's renders against what Neutron's own agent classes build (issue 10, section 1).

tests/golden/neutron/<scenario>/<node>/ holds normalised dumps written by
``tools/neutron-reference/run`` from Neutron's OVS agent bridges, iptables_hybrid driver,
LegacyRouter and Dnsmasq driver (release in tests/golden/neutron/VERSIONS). This test renders
the lab's side (pure: build_plan, render_plan), puts it in the same normal form
(tools/neutron-reference/normalize.py) and diffs file by file. Every line that differs must
be covered by an entry of tests/golden/neutron/accepted-differences.yaml, which says why:
``accepted`` (cosmetic, or a deliberate choice) or ``to-fix`` (changes packets: issue 10 §2).
An entry that no longer matches anything must be removed, so the list shrinks as fixes land.

No Neutron, no root: CI runs it on every commit. Regenerate the dumps (root, package index)
when Neutron's pin or a scenario changes: ``sudo tools/neutron-reference/run``.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import importlib.util
import re
from pathlib import Path

import pytest
import yaml

from lab.core.plan import DhcpPlan, Plan, RouterInstance, build_plan
from lab.core import routers
from lab.core.render import render_plan
from lab.core.scenario import load_scenario

ROOT = Path(__file__).resolve().parent.parent.parent
REFERENCE = ROOT / "tests" / "golden" / "neutron"
ACCEPTED = REFERENCE / "accepted-differences.yaml"
SCENARIOS = sorted(p.name for p in REFERENCE.iterdir() if p.is_dir()) if REFERENCE.is_dir() else []
STATUSES = {"accepted", "to-fix"}


def _load_normalize():
    path = ROOT / "tools" / "neutron-reference" / "normalize.py"
    spec = importlib.util.spec_from_file_location("neutron_reference_normalize", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


norm = _load_normalize()


# --------------------------------------------------------------------------- the lab's side

def lab_router_state(router: RouterInstance) -> str:
    """What the lab's runtime sets in qrouter-: each port's veth with the port's MAC and MTU
    (lab/runtime/lifecycle.py, ``links.veth(... peer_mac=port.mac, mtu=port.mtu)``), then
    the l3 agent's sysctls (routers.QROUTER_SYSCTLS), the port addresses, floating IPs as /32 on qg- and the default route
    (lab/runtime/agents.py, router_links). Those run as root, so their steps are restated here
    from the plan they read; keep the two in step."""
    lines = {f"sysctl {key}={value}" for key, value in routers.sysctls(router)}
    lines |= {f"link {p.ns_dev} mac {p.mac} mtu {p.mtu}" for p in router.ports}
    lines |= {f"address {p.ns_dev} {p.ip}/{p.prefixlen}" for p in router.ports}
    if router.gateway:
        lines |= {f"address {router.gateway.ns_dev} {f.address}/32" for f in router.floating_ips}
        if router.external_gateway_ip:
            lines.add(f"route default via {router.external_gateway_ip} dev {router.gateway.ns_dev}")
    # DVR (agents.router_policy_routes, fip.link_up): the SNAT redirect's and table 16's default
    # routes (the dump leaves out the table), rfp-'s /31
    lines |= {f"route {'default' if r.destination == '0.0.0.0/0' else r.destination} via {r.via} dev {r.dev}"
              for r in router.routes}
    if router.fip_link:
        lines.add(f"address {router.fip_link.rfp_dev} {router.fip_link.rfp_ip}/31")
    return "".join(line + "\n" for line in sorted(lines))


def lab_fip_state(fip) -> str:
    """fip- (lifecycle.py: fg-'s veth; lab/runtime/fip.py: addresses, sysctls, routes),
    restated from the plan like lab_router_state."""
    g = fip.gateway
    lines = {f"sysctl {key}={value}" for key, value in routers.fip_sysctls(g.ns_dev)}
    lines |= {f"link {g.ns_dev} mac {g.mac} mtu {g.mtu}", f"address {g.ns_dev} {g.ip}/{g.prefixlen}"}
    lines |= {f"address {x.fpr_dev} {x.fpr_ip}/31" for x in fip.links}
    lines |= {f"route default via {fip.external_gateway_ip} dev {g.ns_dev}" for x in fip.links}
    lines |= {f"route {r.address}/32 via {r.via} dev {r.dev}" for r in fip.routes}
    return "".join(line + "\n" for line in sorted(lines))


def lab_dhcp_state(dhcp: DhcpPlan) -> str:
    """qdhcp-: the port's veth (lifecycle.py, MAC and MTU) and its address (agents.py,
    dhcp_links); restated from the plan like lab_router_state."""
    p = dhcp.port
    lines = {f"link {p.ns_dev} mac {p.mac} mtu {p.mtu}", f"address {p.ns_dev} {p.ip}/{p.prefixlen}"}
    if dhcp.metadata_address:       # enable_isolated_metadata (agents.py, dhcp_links)
        lines.add(f"address {p.ns_dev} 169.254.169.254/32")
    return "".join(line + "\n" for line in sorted(lines))


def lab_dumps(plan: Plan) -> dict[str, str]:
    """<node>/<file> -> normalised text, named as the reference names its dumps."""
    out: dict[str, str] = {}
    renders = render_plan(plan)
    for node in plan.nodes:
        r = renders[node.name]
        for bridge, text in r.flows.items():
            out[f"{node.name}/{bridge}.flows"] = norm.normalize_flows(text)
        out[f"{node.name}/iptables"] = norm.normalize_iptables(r.iptables)
        if r.ipset:
            out[f"{node.name}/ipset"] = norm.normalize_ipset(r.ipset)
        for router in plan.routers_on(node.name):
            out[f"{node.name}/router-{router.name}.iptables"] = norm.normalize_iptables(r.routers[router.name])
            out[f"{node.name}/router-{router.name}.net"] = lab_router_state(router)
        for fip in plan.fips_on(node.name):
            out[f"{node.name}/{fip.name}.iptables"] = norm.normalize_iptables(r.fips[fip.name])
            out[f"{node.name}/{fip.name}.net"] = lab_fip_state(fip)
        for dhcp in node.dhcp_servers:
            d = r.dhcp[dhcp.name]
            out[f"{node.name}/dhcp-{dhcp.name}.net"] = lab_dhcp_state(dhcp)
            out[f"{node.name}/dhcp-{dhcp.name}.iptables"] = ""      # the lab sets none in qdhcp-
            for name in ("host", "opts", "addn_hosts", "leases"):
                text = d.files.get(name, "")
                out[f"{node.name}/dhcp-{dhcp.name}.{name}"] = norm.normalize_sorted_lines(text)
            argv = "\n".join(a.replace(dhcp.dir, "<dir>") for a in d.argv)
            out[f"{node.name}/dhcp-{dhcp.name}.argv"] = norm.normalize_sorted_lines(argv)
    return out


def reference_dumps(scenario: str) -> dict[str, str]:
    base = REFERENCE / scenario
    return {str(p.relative_to(base)): p.read_text() for p in sorted(base.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------- differences

@dataclasses.dataclass(frozen=True)
class Difference:
    path: str        # <scenario>/<node>/<file>
    side: str        # "lab": only the lab has the line; "neutron": only Neutron has it
    line: str

    def __str__(self) -> str:
        return f"{self.path}: only in {self.side}: {self.line}"


def diff_lines(path: str, lab: str, neutron: str) -> list[Difference]:
    """Lines one side has and the other lacks, in order (a moved line counts on both sides)."""
    a, b = lab.splitlines(), neutron.splitlines()
    out = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op in ("delete", "replace"):
            out += [Difference(path, "lab", line) for line in a[i1:i2]]
        if op in ("insert", "replace"):
            out += [Difference(path, "neutron", line) for line in b[j1:j2]]
    return out


def differences(scenario: str, lab: dict[str, str], neutron: dict[str, str]) -> list[Difference]:
    out = []
    for rel in sorted(set(lab) | set(neutron)):
        if rel == "VERSIONS":
            continue
        out += diff_lines(f"{scenario}/{rel}", lab.get(rel, ""), neutron.get(rel, ""))
    return out


def load_accepted(path: Path = ACCEPTED) -> list[dict]:
    entries = yaml.safe_load(path.read_text()) or []
    for e in entries:
        missing = {"id", "status", "files", "side", "match", "count", "reason"} - set(e)
        assert not missing, f"{path.name}: entry {e.get('id', e)} lacks {sorted(missing)}"
        assert e["status"] in STATUSES, f"{path.name}: {e['id']}: status must be one of {STATUSES}"
        assert e["side"] in ("lab", "neutron", "*"), f"{path.name}: {e['id']}: side is lab, neutron or *"
        assert e["reason"].strip(), f"{path.name}: {e['id']}: a reason is required"
        re.compile(e["match"])
    ids = [e["id"] for e in entries]
    assert len(ids) == len(set(ids)), f"{path.name}: duplicate ids"
    return entries


def covering(d: Difference, entries: list[dict]) -> list[dict]:
    return [e for e in entries
            if e["side"] in ("*", d.side) and fnmatch.fnmatch(d.path, e["files"]) and re.search(e["match"], d.line)]


def unaccepted(diffs: list[Difference], entries: list[dict]) -> list[Difference]:
    return [d for d in diffs if not covering(d, entries)]


def all_differences() -> list[Difference]:
    out = []
    for scenario in SCENARIOS:
        plan = build_plan(load_scenario(scenario))
        out += differences(scenario, lab_dumps(plan), reference_dumps(scenario))
    return out


# --------------------------------------------------------------------------- the tests

def test_reference_dumps_exist():
    assert SCENARIOS, f"no reference dumps under {REFERENCE}; run: sudo tools/neutron-reference/run"
    shipped = {p.stem for p in (ROOT / "scenarios").glob("*.yaml")}
    assert shipped <= set(SCENARIOS), \
        f"scenarios without a Neutron reference: {sorted(shipped - set(SCENARIOS))}; " \
        "run: sudo tools/neutron-reference/run"


@pytest.fixture(scope="module")
def diffs() -> list[Difference]:
    return all_differences()


@pytest.fixture(scope="module")
def entries() -> list[dict]:
    return load_accepted()


def test_every_difference_is_listed(diffs, entries):
    """The lab may differ from Neutron only where accepted-differences.yaml says why."""
    new = unaccepted(diffs, entries)
    assert not new, (
        f"{len(new)} line(s) differ from Neutron's own agents and are not in "
        f"{ACCEPTED.relative_to(ROOT)}:\n" + "\n".join(str(d) for d in new[:60]))


def test_no_stale_entries(diffs, entries):
    """An entry that matches no difference any more was fixed: remove it from the list."""
    stale = [e["id"] for e in entries if not any(covering(d, [e]) for d in diffs)]
    assert not stale, f"entries in {ACCEPTED.name} that match nothing now (remove them): {stale}"


def test_entry_counts(diffs, entries):
    """An entry's count pins how many differing lines it covers (all scenarios together): one
    more line of an already listed kind is a new difference too, and fails here."""
    wrong = []
    for e in entries:
        n = sum(1 for d in diffs if covering(d, [e]))
        if n != e["count"]:
            wrong.append(f"{e['id']}: covers {n} line(s), the list says {e['count']}")
    assert not wrong, "counts in accepted-differences.yaml are off (review, then update):\n" + \
        "\n".join(wrong)


def test_to_fix_entries_are_the_ones_that_change_packets(entries):
    """Only the two statuses are used (every to-fix entry is closed now: ipsets and the
    metadata redirect landed) and any to-fix entry points at issue 10 §2 in its reason."""
    assert {e["status"] for e in entries} <= STATUSES and "accepted" in {e["status"] for e in entries}
    for e in entries:
        if e["status"] == "to-fix":
            assert "§2" in e["reason"] or "section 2" in e["reason"], e["id"]


# --------------------------------------------------------------------------- the test can fail

def _vxlan():
    plan = build_plan(load_scenario("classic-vxlan"))
    return plan, lab_dumps(plan), reference_dumps("classic-vxlan")


def test_an_injected_lab_flow_is_caught(entries):
    """A flow the lab would add that Neutron does not have fails the comparison."""
    _plan, lab, neutron = _vxlan()
    lab["compute1/br-int.flows"] += norm.normalize_flows(
        "table=0,priority=50,in_port=qvofcfe59c6-1b,actions=output:patch-tun\n")
    new = unaccepted(differences("classic-vxlan", lab, neutron), entries)
    assert [str(d) for d in new] == [
        "classic-vxlan/compute1/br-int.flows: only in lab: "
        "table=0 priority=50 match=in_port=qvofcfe59c6-1b actions=output:patch-tun"]


def test_a_rule_missing_from_the_lab_is_caught(entries):
    """A security-group rule Neutron writes and the lab loses fails the comparison."""
    _plan, lab, neutron = _vxlan()
    lines = lab["compute1/iptables"].splitlines(keepends=True)
    dropped = next(l for l in lines if "-m mac --mac-source" in l)
    lab["compute1/iptables"] = "".join(l for l in lines if l is not dropped)
    new = unaccepted(differences("classic-vxlan", lab, neutron), entries)
    assert len(new) == 1 and new[0].side == "neutron" and "--mac-source" in new[0].line


def test_a_changed_router_rule_is_caught(entries):
    """The SNAT address changing in the lab's router rules fails the comparison."""
    plan, lab, neutron = _vxlan()
    router = next(r for n in plan.nodes for r in plan.routers_on(n.name))
    key = f"{router.node}/router-{router.name}.iptables"
    lab[key] = lab[key].replace(f"--to-source {router.gateway.ip} ", "--to-source 203.0.113.99 ")
    new = unaccepted(differences("classic-vxlan", lab, neutron), entries)
    assert new and all("203.0.113.99" in d.line or d.side == "neutron" for d in new)
    assert any(d.side == "lab" and "203.0.113.99" in d.line for d in new)


def test_one_more_line_of_a_listed_kind_is_caught(entries):
    """A line that fits an entry's pattern still changes that entry's count."""
    _plan, lab, neutron = _vxlan()
    base = differences("classic-vxlan", lab, neutron)
    entry = next(e for e in entries if e["id"] == "conntrack-zone-order-and-comment")
    lines = lab["compute1/iptables"].splitlines(keepends=True)
    i = next(i for i, line in enumerate(lines) if re.search(entry["match"], line))
    lines.insert(i + 1, re.sub(r"--zone \d+", "--zone 9999", lines[i]))
    lab["compute1/iptables"] = "".join(lines)
    more = differences("classic-vxlan", lab, neutron)
    assert not unaccepted(more, entries)          # the pattern alone would let it through...
    count = lambda ds: sum(1 for d in ds if covering(d, [entry]))  # noqa: E731
    assert count(more) == count(base) + 1         # ...the count does not


# --------------------------------------------------------------------------- the normal form

@pytest.mark.parametrize("lab_flow, dumped", [
    ("cookie=0x1,table=0,priority=0,actions=resubmit(,59)",
     " cookie=0x2, priority=0 actions=goto_table:59"),
    ("cookie=0x1,table=0,priority=3,in_port=int-br-vlan,dl_vlan=101,actions=mod_vlan_vid:1,resubmit(,59)",
     ' cookie=0x2, priority=3,in_port="int-br-vlan",dl_vlan=101 actions=set_field:4097->vlan_vid,goto_table:59'),
    ("table=4,priority=1,tun_id=0x3e9,actions=mod_vlan_vid:1,resubmit(,10)",
     " cookie=0x2, table=4, priority=1,tun_id=0x3e9 actions=push_vlan:0x8100,set_field:4097->vlan_vid,goto_table:10"),
    ("table=22,priority=1,dl_vlan=1,actions=strip_vlan,load:0x3e9->NXM_NX_TUN_ID[],output:vxlan-c633640b",
     ' table=22, priority=1,dl_vlan=1 actions=pop_vlan,set_field:0x3e9->tun_id,output:"vxlan-c633640b"'),
])
def test_equivalent_flow_spellings_normalise_alike(lab_flow, dumped):
    assert norm.normalize_flow(lab_flow) == norm.normalize_flow(dumped)


@pytest.mark.parametrize("a, b", [
    ("table=0,priority=0,actions=resubmit(,59),NORMAL", "table=0,priority=0,actions=goto_table:59,NORMAL"),
    ("table=0,priority=3,actions=NORMAL", "table=0,priority=1,actions=NORMAL"),
    ("table=0,priority=1,in_port=a,actions=drop", "table=0,priority=1,in_port=b,actions=drop"),
])
def test_different_flows_stay_different(a, b):
    assert norm.normalize_flow(a) != norm.normalize_flow(b)


def test_iptables_insert_positions_become_rule_order():
    neutron = "*filter\n:INPUT - [0:0]\n:x - [0:0]\n-I x 2 -j DROP\n-I x 1 -j RETURN\n-I INPUT 1 -j x\nCOMMIT\n"
    lab = "*filter\n:INPUT ACCEPT [0:0]\n:x - [0:0]\n-A INPUT -j x\n-A x -j RETURN\n-A x -j DROP\nCOMMIT\n"
    assert norm.normalize_iptables(neutron) == norm.normalize_iptables(lab)
    swapped = lab.replace("-A x -j RETURN\n-A x -j DROP", "-A x -j DROP\n-A x -j RETURN")
    assert norm.normalize_iptables(swapped) != norm.normalize_iptables(lab)


def test_iptables_last_block_of_a_table_wins():
    text = "*nat\n:a - [0:0]\n-I a 1 -j X\nCOMMIT\n*nat\n:a - [0:0]\n-I a 1 -j Y\nCOMMIT\n"
    assert norm.normalize_iptables(text) == "*nat\n:a\n-A a -j Y\n"
