"""Remote security groups (lab/core/ipsets.py): Neutron's names and forms, both enable_ipset
settings, the restore input read back, the node option's validation, and issue 14's scale
figure: 1,000 instances in one group stay O(N) iptables rules with ipsets (O(N²) without)."""

from __future__ import annotations

import dataclasses
import re

import pytest

from helpers import line_of, only_problem, parse
from lab.core import ipsets, naming
from lab.core.plan import build_plan
from lab.core.render import render_plan
from lab.core.scenario import load_scenario


def scaled(n: int, enable_ipset: bool = True) -> str:
    """N instances on two computes, every one in the default group and in web, whose one rule
    lets in TCP 80 from web's members: two remote-group rules per port."""
    opt = "" if enable_ipset else ", enable_ipset: false"
    head = f"""\
nodes:
  network1: {{role: network}}
  compute1: {{role: compute{opt}}}
  compute2: {{role: compute{opt}}}
physical_networks:
  physnet1: {{bridge: br-vlan, vlan_ranges: ["101:199"]}}
projects: [demo]
networks:
  net1: {{project: demo, cidr: 198.18.0.0/21, dhcp: false}}
security_groups:
  web:
    project: demo
    rules:
      - {{direction: ingress, protocol: tcp, port: 80, remote_group: web}}
instances:
"""
    return head + "".join(f"  vm{i}: {{node: compute{1 + i % 2}, network: net1, security_groups: [default, web]}}\n"
                          for i in range(n))


def _rendered(n: int, enable_ipset: bool = True):
    plan = build_plan(parse(scaled(n, enable_ipset)))
    return plan, render_plan(plan)


def _sg_rules(renders) -> int:
    """Lines of the per-port ingress chains that let a remote in (-s CIDR or -m set)."""
    return sum(1 for r in renders.values() for line in r.iptables.splitlines()
               if re.match(r"-A neutron-openvswi-i\S+ (-s \S+ |.*-m set )", line))


# --------------------------------------------------------------------------- names and forms

def test_set_name_is_ipset_managers():
    gid = naming.security_group_uuid("lab", "demo", "web")
    name = naming.ipset_name(gid)
    assert name == ("NIPv4" + gid)[:29] and len(name + ipsets.SWAP_SUFFIX) == 31
    assert naming.ipset_name(gid, "IPv6").startswith("NIPv6")
    assert naming.security_group_uuid("lab", "alt", "web") != gid     # a group is its project's


def test_ipset_rule_form_and_direction():
    plan = build_plan(load_scenario("remote-groups"))
    c1 = plan.node("compute1")
    db1 = plan.port("db1")
    tcp = next(r for r in db1.rules if r.protocol == "tcp")
    name = naming.ipset_name(tcp.remote_group_id)
    assert ipsets.match_set(c1, tcp) == f"-m set --match-set {name} src"
    assert ipsets.match_set(c1, dataclasses.replace(tcp, direction="egress")).endswith(" dst")
    chain = naming.sg_chain("i", db1.port_id)
    assert f"-A {chain} -p tcp -m tcp --dport 5001 -m set --match-set {name} src -j RETURN\n" \
        in render_plan(plan)["compute1"].iptables


def test_expanded_form_leaves_out_the_ports_own_address():
    """_expand_sg_rule_with_remote_ips: `if ip not in port_ips` (enable_ipset = False)."""
    plan = build_plan(load_scenario("remote-groups"))
    c2, app2 = plan.node("compute2"), plan.port("app2")
    default = next(r for r in app2.rules if r.remote_group == "default")
    assert f"{app2.ip}/32" in default.remotes                     # a member of its own group...
    assert f"{app2.ip}/32" not in ipsets.expanded_remotes(c2, app2, default)   # ...not let in by it
    assert ipsets.match_set(c2, default) is None and ipsets.node_sets(c2) == {}
    render = render_plan(plan)["compute2"]
    chain = naming.sg_chain("i", app2.port_id)
    lets_in = [x for x in render.iptables.splitlines() if x.startswith(f"-A {chain} -s ")]
    assert render.ipset == "" and lets_in
    assert {x.split()[3] for x in lets_in} == set(default.remotes) - {f"{app2.ip}/32"}


def test_ipset_form_keeps_the_ports_own_address_in_the_set():
    plan = build_plan(load_scenario("remote-groups"))
    c1, app1 = plan.node("compute1"), plan.port("app1")
    default = next(r for r in app1.rules if r.remote_group == "default")
    sets = ipsets.parse_restore(render_plan(plan)["compute1"].ipset)
    assert f"{app1.ip}/32" in sets[naming.ipset_name(default.remote_group_id)]
    assert sets == {name: set(members) for name, members in ipsets.node_sets(c1).items()}


def test_drivers_without_iptables_get_no_sets():
    plan = build_plan(load_scenario("classic-ovsfw"))
    assert all(r.ipset == "" for r in render_plan(plan).values())


def test_restore_input_is_ipset_managers_refresh():
    """create -exist NAME; restore NAME-n; swap; destroy NAME-n (IpsetManager._refresh_set)."""
    plan = build_plan(load_scenario("remote-groups"))
    text = render_plan(plan)["compute1"].ipset.splitlines()
    name = text[0].split()[1]
    assert text[0] == f"create {name} hash:net family inet"
    assert text[1] == f"create {name}-n hash:net family inet"
    assert f"swap {name}-n {name}" in text and f"destroy {name}-n" in text
    assert text.index(f"destroy {name}-n") > max(i for i, x in enumerate(text) if x.startswith(f"add {name}-n "))


def test_parse_restore_reads_ipset_save():
    saved = """\
create NIPv4abc hash:net family inet hashsize 1024 maxelem 65536 bucketsize 12 initval 0x1234
add NIPv4abc 192.168.1.12
add NIPv4abc 10.0.0.0/8
create NIPv4def hash:net family inet hashsize 1024 maxelem 65536 bucketsize 12 initval 0x99
"""
    assert ipsets.parse_restore(saved) == {"NIPv4abc": {"192.168.1.12/32", "10.0.0.0/8"}, "NIPv4def": set()}
    assert ipsets.parse_restore("create A hash:net\ncreate B hash:net\nadd B 1.2.3.4\nswap B A\ndestroy B\n") \
        == {"A": {"1.2.3.4/32"}}


def test_enable_ipset_must_be_a_boolean():
    text = scaled(1).replace("compute1: {role: compute}", "compute1: {role: compute, enable_ipset: yes please}")
    p = only_problem(text)
    assert (p.line, p.where) == (line_of(text, "yes please"), "nodes.compute1.enable_ipset")
    assert "must be true or false" in p.message


def test_enable_ipset_defaults_to_true_and_reaches_the_plan():
    plan = build_plan(load_scenario("remote-groups"))
    assert (plan.node("compute1").enable_ipset, plan.node("compute2").enable_ipset) == (True, False)


# --------------------------------------------------------------------------- scale (issue 14)

def test_one_thousand_instances_in_one_group_stay_linear():
    n = 1000
    plan, renders = _rendered(n)
    assert sum(ipsets.rule_count(node) for node in plan.nodes) == 2 * n       # default + web, per port
    assert _sg_rules(renders) == 2 * n
    for node in ("compute1", "compute2"):     # two sets per node (default, web), every member in each
        sets = ipsets.parse_restore(renders[node].ipset)
        assert len(sets) == 2 and all(len(m) == n for m in sets.values())
    small_plan, small = _rendered(n // 4)
    lines = lambda rs: sum(len(r.iptables.splitlines()) + len(r.ipset.splitlines()) for r in rs.values())  # noqa: E731
    assert lines(renders) <= 4.2 * lines(small)      # 4x the instances, about 4x the lines


@pytest.mark.parametrize("n", [20, 40])
def test_without_ipset_rules_grow_as_n_squared(n):
    """enable_ipset: false writes every other member into every port's chain: 2·N·(N-1)."""
    plan, renders = _rendered(n, enable_ipset=False)
    assert sum(ipsets.rule_count(node) for node in plan.nodes) == 2 * n * (n - 1) == _sg_rules(renders)
    assert all(r.ipset == "" for r in renders.values())


def test_a_group_without_members_gets_an_empty_set_that_its_rule_matches():
    """The server sends the ethertype with an empty member list; IpsetManager.set_members
    still creates the set, and _generate_ipset_rule_args references it (it exists)."""
    text = scaled(2).replace("remote_group: web}", "remote_group: web}\n"
                             "      - {direction: ingress, protocol: icmp, remote_group: nobody}") \
        .replace("security_groups:\n", "security_groups:\n  nobody: {project: demo, rules: []}\n")
    plan = build_plan(parse(text))
    node = plan.node("compute1")
    rule = next(r for r in node.ports[0].rules if r.remote_group == "nobody")
    name = naming.ipset_name(rule.remote_group_id)
    assert rule.remotes == () and ipsets.node_sets(node)[name] == ()
    render = render_plan(plan)["compute1"]
    assert ipsets.parse_restore(render.ipset)[name] == set()
    assert f"-p icmp -m set --match-set {name} src -j RETURN" in render.iptables
    off = build_plan(parse(text.replace("compute1: {role: compute}", "compute1: {role: compute, enable_ipset: false}")))
    assert "-p icmp" not in "".join(x for x in render_plan(off)["compute1"].iptables.splitlines()
                                    if x.startswith("-A neutron-openvswi-i"))
