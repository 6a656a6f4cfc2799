"""`lab graph`: one model built from the plan, three writers that only format it.

The writers are pinned by golden files (tests/golden/graph/<scenario>.{txt,mmd,dot}; regenerate
with UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/unit/test_graph.py, then review the diff);
the model by assertions computed from the plan, not from the graph.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path

import pytest

from lab.core import naming
from lab.core.plan import build_plan
from lab.core.scenario import load_scenario
from lab.tools import graph

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "graph"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
SCENARIOS = ["classic-vlan", "classic-vxlan"]
WRITERS = {"txt": graph.to_text, "mmd": graph.to_mermaid, "dot": graph.to_dot}


def plan_of(name: str, datapath: str = "netdev"):
    return build_plan(load_scenario(name), datapath=datapath)


def dev(prefix: str, port) -> str:
    """An instance port's device as Neutron names it (tap, qbr, qvb, qvo + 11 of the port id)."""
    return naming.port_device(prefix, port.port_id)


def routers(plan) -> list:
    """Each router where it lives (one legacy instance per router in these scenarios)."""
    return list(getattr(plan, "router_instances", plan.routers))


def ns_label(netns: str) -> str:
    """qrouter-1234abcd… for nlab.<lab>.<node>.qrouter-1234abcd-...: what a person calls it."""
    prefix, _, rest = netns.rsplit(".", 1)[-1].partition("-")
    return f"{prefix}-{rest[:8]}…"


@pytest.fixture(scope="module", params=SCENARIOS)
def plan(request):
    return plan_of(request.param)


@pytest.fixture(scope="module")
def g(plan):
    return graph.build(plan)


def check_golden(path: Path, actual: str) -> None:
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual)
        return
    assert path.is_file(), f"{path} is missing; UPDATE_GOLDEN=1 .venv/bin/python -m pytest {__file__}"
    expected = path.read_text()
    if actual != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), actual.splitlines(True),
                                            f"{path.name} (golden)", f"{path.name} (now)"))
        pytest.fail(f"{path.name} differs; if intended, regenerate with UPDATE_GOLDEN=1\n{diff}", pytrace=False)


# --------------------------------------------------------------------------- golden writers

@pytest.mark.parametrize("name", SCENARIOS)
@pytest.mark.parametrize("suffix", sorted(WRITERS))
def test_writer_golden(name, suffix):
    check_golden(GOLDEN / f"{name}.{suffix}", WRITERS[suffix](graph.build(plan_of(name))))


def test_no_stale_graph_goldens():
    expected = {f"{n}.{s}" for n in SCENARIOS for s in WRITERS}
    present = {p.name for p in GOLDEN.glob("*")} if GOLDEN.is_dir() else set()
    assert present == expected


# --------------------------------------------------------------------------- the model

def boxes_by_label(g: graph.Graph) -> dict[str, graph.Box]:
    return {b.label.split("\n")[0]: b for b in g.boxes if b.cluster is None}


def test_every_instance_host_and_wire_has_a_box(plan, g):
    free = boxes_by_label(g)
    for p in plan.ports:
        assert free[p.instance].label == f"{p.instance}\n{p.ip}" and free[p.instance].kind == "namespace"
    for h in plan.external_hosts:
        assert free[h.name].label == f"{h.name}\n{h.ip}\n(outside world)"
    for w in plan.wires:
        assert free[w.name].kind == "wire"
    assert len(free) == len(plan.ports) + len(plan.external_hosts) + len(plan.wires)


def test_every_router_and_dhcp_server_is_a_namespace_inside_its_node(plan, g):
    clusters = {c.id: c for c in g.clusters}
    for r in routers(plan):
        (c,) = [c for c in g.clusters if c.label == f"{ns_label(r.netns)} ({r.name})"]
        assert clusters[c.parent].label.startswith(f"{r.node} ")
        (box,) = [b for b in g.boxes if b.cluster == c.id]
        assert box.label.startswith(f"{r.name}\niptables NAT")
        assert all(f.address in box.label for f in r.floating_ips)
        # one link per router port, to br-int of the router's node, with the port's local VLAN
        links = [lk for lk in g.links if lk.a == box.id]
        assert [lk.network for lk in links] == [p.network for p in r.ports]
        assert all(lk.b == g.ident(r.node, "br-int") for lk in links)
        assert [lk.label.split(" tag ")[1] for lk in links] == [str(p.local_vlan) for p in r.ports]
    for d in plan.dhcp_servers:
        (c,) = [c for c in g.clusters if c.label == f"{ns_label(d.netns)} ({d.name})"]
        assert clusters[c.parent].label.startswith(f"{d.node} ")
        (box,) = [b for b in g.boxes if b.cluster == c.id]
        assert box.label == f"dnsmasq\n{d.port.ns_dev} {d.port.ip}"


def test_one_cluster_per_node_with_its_bridges_and_plugs(plan, g):
    tops = [c for c in g.clusters if c.parent is None]
    assert [c.label.split()[0] for c in tops] == [n.name for n in plan.nodes]
    for n, c in zip(plan.nodes, tops):
        assert f"netns {n.netns}" in c.label
        inside = sorted(b.label.split("\n")[0] for b in g.boxes if b.cluster == c.id)
        expected = ["br-int"] + [b.bridge for b in n.physical_bridges] + [dev("qbr", p) for p in n.ports]
        if n.tunnel:
            expected += ["br-tun"] + ([n.tunnel.bridge] if n.tunnel.bridge else [])
        assert inside == sorted(expected), n.name


def test_every_link_endpoint_is_a_box(g):
    ids = [b.id for b in g.boxes]
    assert len(ids) == len(set(ids))
    for link in g.links:
        assert link.a in ids and link.b in ids, link


def test_each_instance_is_plugged_through_its_qbr(plan, g):
    for p in plan.ports:
        vm, qbr = g.ident("inst", p.instance), g.ident(p.node, dev("qbr", p))
        (to_qbr,) = [lk for lk in g.links if lk.a == vm]
        assert (to_qbr.b, to_qbr.label, to_qbr.network) == (qbr, f"eth0 = {dev('tap', p)}", p.network)
        (to_brint,) = [lk for lk in g.links if lk.a == qbr]
        assert to_brint.b == g.ident(p.node, "br-int")
        assert to_brint.label == f"{dev('qvb', p)} = {dev('qvo', p)} tag {p.local_vlan}"


def test_tunnels_and_wires(plan, g):
    for n in plan.nodes:
        for b in n.physical_bridges:
            (lk,) = [lk for lk in g.links if lk.a == g.ident(n.name, b.bridge)]
            assert (lk.b, lk.label, lk.style) == (g.ident("wire", b.physical_network), b.nic, "bold")
        dotted = [lk for lk in g.links if lk.a == g.ident(n.name, "br-tun") and lk.style == "dotted"]
        assert [lk.network for lk in dotted] == [t.network for t in n.tunnel_networks]
        assert all(lk.b == g.ident("wire", n.tunnel.wire) for lk in dotted)


def test_kernel_datapath_has_no_br_phy():
    plan = plan_of("classic-vxlan", datapath="system")
    g = graph.build(plan)
    assert not [b for b in g.boxes if b.label.startswith("br-phy")]
    for n in plan.nodes:
        (up,) = [lk for lk in g.links if lk.a == g.ident(n.name, "br-tun") and lk.style == "bold"]
        assert (up.b, up.label) == (g.ident("wire", "underlay"), "eth1")


def test_colours_one_per_network(plan, g):
    networks = list(dict.fromkeys(net for n in plan.nodes for net, _ in n.local_vlans))
    assert list(g.colours) == networks
    assert len(set(g.colours.values())) == len(networks)
    dot = graph.to_dot(g)
    for net, colour in g.colours.items():
        assert f'<td bgcolor="{colour}">  </td><td align="left">{net}</td>' in dot
    for link in g.links:
        if link.network is None:
            continue
        assert f'[label="{graph._esc(link.label)}", color="{g.colours[link.network]}"' in dot


def test_missing_ports_are_marked():
    plan = plan_of("classic-vlan")
    c1 = plan.node("compute1")
    vm1, vm3 = c1.ports
    # compute1's OVS lacks vm1's qvo and the patch to br-vlan; compute2 was not read at all
    live = {"compute1": {dev("qvo", vm3): None, "phy-br-vlan": None, "eth1": None}, "network1": {}}
    labels = [lk.label for lk in graph.build(plan, live).links]
    missing = [x for x in labels if x.endswith(" (MISSING)")]
    n1 = plan.node("network1")
    agent_ports = [d.port.ovs_dev for d in n1.dhcp_servers] + [p.ovs_dev for r in routers(plan) for p in r.ports]
    expected = [f"{dev('qvb', vm1)} = {dev('qvo', vm1)} tag 1", "int-br-vlan / phy-br-vlan"]            # compute1
    expected += [f"{b.int_patch} / {b.phy_patch}" for b in n1.physical_bridges]         # network1: nothing
    expected += [b.nic for b in n1.physical_bridges] + agent_ports
    assert len(missing) == len(expected) == 2 + 2 * 2 + 6
    for what in expected:
        assert [x for x in missing if x.startswith(what) or f"= {what} " in x], what
    assert f"{dev('qvb', vm3)} = {dev('qvo', vm3)} tag 1" in labels and "eth1" in labels
    # compute2 is not in LIVE (its OVSDB was not read): nothing of it is marked
    assert not [x for x in missing if any(dev("qvo", p) in x for p in plan.node("compute2").ports)]
    assert len(graph.to_text(graph.build(plan, live)).split("(MISSING)")) == len(missing) + 1


# --------------------------------------------------------------------------- ids and escaping

def test_ident_never_joins_two_names():
    g = graph.Graph("x")
    a, b = g.ident("node", "a-b"), g.ident("node", "a_b")
    assert a == "node__a_b" and b != a and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", b)
    assert g.ident("node", "a-b") == a and g.ident("node", "a_b") == b      # stable
    assert g.ident("a", "b--c") != g.ident("a--b", "c")
    assert re.match(r"[A-Za-z_]", g.ident("1node", "br-int"))               # DOT ids start with no digit


def test_boxes_and_clusters_are_not_duplicated():
    g = graph.Graph("x")
    c = g.cluster(("node", "n"), "n")
    assert g.cluster(("node", "n"), "n again") == c and len(g.clusters) == 1
    assert g.box(("n", "br-int"), "br-int", "ovs-bridge", c) == g.box(("n", "br-int"), "other", "ovs-bridge", c)
    assert [b.label for b in g.boxes] == ["br-int"]
    with pytest.raises(AssertionError):
        g.box(("n", "p"), "p", "port")
    with pytest.raises(AssertionError):
        g.link("a", "b", style="wavy")


ODD = 'say "hi"\\ | <b>&\nnext'


def odd_graph() -> graph.Graph:
    g = graph.Graph('lab"x')
    c = g.cluster(("node", "n"), ODD)
    inner = g.cluster(("ns", "n"), "inner", c)
    a = g.box(("a",), ODD, "ovs-bridge", c)
    b = g.box(("b",), "b", "namespace", inner)
    w = g.box(("w",), "wire|1", "wire")
    g.colours["net<&>"] = "#000000"
    g.link(a, b, ODD, "net<&>", "dashed")
    g.link(b, w, "", None, "bold")
    return g


def unquote_dot(s: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), s)


def test_dot_escapes_odd_labels():
    dot = graph.to_dot(odd_graph())
    strings = re.findall(r'"((?:[^"\\]|\\.)*)"', dot)
    for line in dot.splitlines():    # every quote is closed on its line
        assert len(re.findall(r'(?<!\\)"', re.sub(r"\\\\", "", line))) % 2 == 0, line
    assert [unquote_dot(s) for s in strings].count(ODD) == 3      # cluster, box and link label
    assert 'digraph "lab\\"x"' in dot
    assert "net&lt;&amp;&gt;" in dot and "net<&>" not in dot        # HTML-like legend
    assert dot.count("{") == dot.count("}")


def test_mermaid_escapes_odd_labels():
    mmd = graph.to_mermaid(odd_graph())
    lines = mmd.splitlines()
    assert lines[0] == "flowchart LR"
    (link,) = [x for x in lines if " -.-|" in x]
    label = link.split("|", 1)[1].rsplit("|", 1)[0]
    assert '"' not in label and "|" not in label and "\n" not in label
    assert label == "say 'hi'\\ / <b>&<br/>next"
    assert "  w{{\"wire/1\"}}" in lines                              # a wire is a hexagon
    assert [x.strip() for x in lines if x.strip() in ("end",) or "subgraph" in x] == [
        f'subgraph node__n["{label}"]', 'subgraph ns__n["inner"]', "end", "end"]
    assert "  linkStyle 0 stroke:#000000" in lines and "linkStyle 1" not in mmd


def test_text_indents_by_cluster_depth():
    text = graph.to_text(odd_graph()).splitlines()
    flat = ODD.replace("\n", " ")
    assert text == [
        'lab lab"x',
        f"[{flat}]",
        f"  {flat}",
        f"    -- {flat} (net<&>) --> b",
        "  [inner]",
        "    b",
        "      --  --> wire|1",
        "wire|1"]


def test_outline_visits_every_box_once_in_balanced_clusters(g):
    events = list(g.outline())
    assert sorted(id(item) for kind, _, item in events if kind == "box") == sorted(id(b) for b in g.boxes)
    depth = {}
    stack = []
    for kind, d, item in events:
        if kind == "open":
            assert d == len(stack)
            stack.append(item.id)
        elif kind == "close":
            assert stack.pop() == item.id
        else:
            assert item.cluster == (stack[-1] if stack else None) and d == len(stack)
        depth[item.id] = d
    assert not stack
