"""`lab graph`: a picture of a running lab, read from the live system (each node's OVSDB for
bridges and ports) and named from the plan: nodes with their bridges and agent namespaces,
the instances' port plugs, patch links, wires and tunnels, coloured by network.

One model (`Graph`: clusters, boxes, links, colours), built once by `build` from the plan;
`Graph.outline()` is the one walk over it, in drawing order. The three writers only format
that walk: Graphviz DOT (rendered to SVG/PNG by `dot`), Mermaid, and indented text.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from lab.core import naming
from lab.core.plan import NodePlan, Plan

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf",
           "#bcbd22", "#7f7f7f"]
NEUTRAL = "#555555"
KINDS = ("ovs-bridge", "linux-bridge", "namespace", "wire")
STYLES = ("solid", "dashed", "dotted", "bold")


@dataclass
class Box:
    id: str
    label: str
    kind: str            # one of KINDS
    cluster: str | None  # id of the cluster (node or agent namespace) it is drawn in


@dataclass
class Link:
    a: str
    b: str
    label: str = ""
    network: str | None = None
    style: str = "solid"  # solid | dashed (patch) | dotted (tunnel) | bold (wire)


@dataclass
class Cluster:
    id: str
    label: str
    parent: str | None


@dataclass
class Graph:
    lab: str
    clusters: list[Cluster] = field(default_factory=list)
    boxes: list[Box] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)
    colours: dict[str, str] = field(default_factory=dict)                     # network -> colour
    _ids: dict[tuple[str, ...], str] = field(default_factory=dict, repr=False)

    def ident(self, *key: str) -> str:
        """The drawing id of KEY: readable, a valid DOT/Mermaid id, and never shared by two
        keys (names with '-' map to '_', so 'a-b' and 'a_b' would otherwise meet)."""
        if key not in self._ids:
            base = re.sub(r"[^A-Za-z0-9_]", "_", "__".join(key))
            base = base if re.match(r"[A-Za-z_]", base) else f"_{base}"
            taken = set(self._ids.values())
            ident, n = base, 2
            while ident in taken:
                ident, n = f"{base}_{n}", n + 1
            self._ids[key] = ident
        return self._ids[key]

    def cluster(self, key: tuple[str, ...], label: str, parent: str | None = None) -> str:
        cid = self.ident(*key)
        if not any(c.id == cid for c in self.clusters):
            self.clusters.append(Cluster(cid, label, parent))
        return cid

    def box(self, key: tuple[str, ...], label: str, kind: str, cluster: str | None = None) -> str:
        assert kind in KINDS, kind
        bid = self.ident(*key)
        if not any(b.id == bid for b in self.boxes):
            self.boxes.append(Box(bid, label, kind, cluster))
        return bid

    def link(self, a: str, b: str, label: str = "", network: str | None = None, style: str = "solid") -> None:
        assert style in STYLES, style
        self.links.append(Link(a, b, label, network, style))

    def outline(self) -> Iterator[tuple[str, int, Cluster | Box]]:
        """The drawing order, once for every writer: ("open", depth, cluster), then its boxes
        ("box", depth + 1, box) and its child clusters, then ("close", depth, cluster); the
        boxes outside any cluster come last at depth 0."""
        members: dict[str | None, list[Box]] = {}
        for b in self.boxes:
            members.setdefault(b.cluster, []).append(b)
        children: dict[str | None, list[Cluster]] = {}
        for c in self.clusters:
            children.setdefault(c.parent, []).append(c)

        def walk(c: Cluster, depth: int) -> Iterator[tuple[str, int, Cluster | Box]]:
            yield "open", depth, c
            for b in members.get(c.id, []):
                yield "box", depth + 1, b
            for child in children.get(c.id, []):
                yield from walk(child, depth + 1)
            yield "close", depth, c

        for c in children.get(None, []):
            yield from walk(c, 0)
        for b in members.get(None, []):
            yield "box", 0, b


# --------------------------------------------------------------------------- the model

Present = Callable[[str, str], str]


def build(plan: Plan, live_ports: dict[str, dict] | None = None) -> Graph:
    """The lab as boxes and links. LIVE_PORTS (node -> {port name: PortRow}) marks what OVS
    really has; a port the plan expects but OVS lacks is labelled (MISSING)."""
    g = Graph(plan.lab)
    networks = [net for n in plan.nodes for net, _ in n.local_vlans]
    for i, net in enumerate(dict.fromkeys(networks)):
        g.colours[net] = PALETTE[i % len(PALETTE)]

    def present(node: str, port: str) -> str:
        if live_ports is None or node not in live_ports:
            return ""
        return "" if port in live_ports[node] else " (MISSING)"

    for w in plan.wires:
        g.box(("wire", w.name), f"{w.name}\n(wire: Linux bridge)", "wire")
    for n in plan.nodes:
        cl = g.cluster(("node", n.name), f"{n.name} ({n.role})  netns {n.netns}")
        brint = g.box((n.name, "br-int"), "br-int", "ovs-bridge", cl)
        _physical_bridges(g, n, cl, brint, present)
        _tunnel(g, n, cl, brint, present)
        _instance_ports(g, n, cl, brint, present)
        _agents(g, plan, n, cl, brint, present)
    for h in plan.external_hosts:
        box = g.box(("host", h.name), f"{h.name}\n{h.ip}\n(outside world)", "namespace")
        g.link(box, g.ident("wire", h.wire), "eth0", h.network, style="bold")
    return g


def _physical_bridges(g: Graph, n: NodePlan, cl: str, brint: str, present: Present) -> None:
    for b in n.physical_bridges:
        phys = g.box((n.name, b.bridge), f"{b.bridge}\n({b.physical_network})", "ovs-bridge", cl)
        g.link(brint, phys, f"{b.int_patch} / {b.phy_patch}{present(n.name, b.int_patch)}", style="dashed")
        g.link(phys, g.ident("wire", b.physical_network), f"{b.nic}{present(n.name, b.nic)}", style="bold")


def _tunnel(g: Graph, n: NodePlan, cl: str, brint: str, present: Present) -> None:
    if not n.tunnel:
        return
    t = n.tunnel
    brtun = g.box((n.name, "br-tun"), f"br-tun\nlocal_ip {t.local_ip}", "ovs-bridge", cl)
    g.link(brint, brtun, f"patch-tun / patch-int{present(n.name, 'patch-tun')}", style="dashed")
    uplink = brtun
    if t.bridge:   # userspace datapath: the endpoint address lives on br-phy, which holds the NIC
        uplink = g.box((n.name, t.bridge), f"{t.bridge}\n(userspace tunnel endpoint)", "ovs-bridge", cl)
        g.link(brtun, uplink, "routes tunnels", style="dashed")
    wire = g.ident("wire", t.wire)
    g.link(uplink, wire, t.nic, style="bold")
    for tn in n.tunnel_networks:
        g.link(brtun, wire, f"{tn.type} id {tn.segmentation_id} <-> local VLAN {tn.local_vlan}",
               tn.network, style="dotted")


def _instance_ports(g: Graph, n: NodePlan, cl: str, brint: str, present: Present) -> None:
    """An instance and its port's plug, read from the plug's devices (any firewall driver):
    each Linux bridge is a box, the veths between boxes name the links."""
    for p in n.ports:
        segments: list[list[str]] = [["eth0"]]
        boxes = [g.box(("inst", p.instance), f"{p.instance}\n{p.ip}", "namespace")]
        for d in p.plug.devices:
            if d.kind == "bridge":
                label = f"{d.name}\n({d.firewall})" if d.firewall else d.name
                boxes.append(g.box((n.name, d.name), label, "linux-bridge", cl))
                segments.append([])
            else:
                segments[-1].append(d.name)
        boxes.append(brint)
        for i in reversed(range(len(segments))):
            label = " = ".join(segments[i])
            if i == len(segments) - 1:
                label += f" tag {p.local_vlan}{present(n.name, p.ovs_port)}"
            g.link(boxes[i], boxes[i + 1], label, p.network)


def _agents(g: Graph, plan: Plan, n: NodePlan, cl: str, brint: str, present: Present) -> None:
    """DHCP servers and routers: a namespace cluster inside the node, a veth to br-int a port."""
    for d in n.dhcp_servers:
        ns = g.cluster(("dhcp", d.name), f"{naming.agent_ns_label(d.netns)} ({d.name})", cl)
        box = g.box((ns, "dnsmasq"), f"dnsmasq\n{d.port.ns_dev} {d.port.ip}", "namespace", ns)
        g.link(box, brint, f"{d.port.ovs_dev} tag {d.port.local_vlan}{present(n.name, d.port.ovs_dev)}",
               d.network)
    router_box = {}
    for r in plan.routers_on(n.name):
        ns = g.cluster(("router", r.name), f"{naming.agent_ns_label(r.netns)} ({r.name})", cl)
        fips = f"\nFIPs {', '.join(f.address for f in r.floating_ips)}" if r.floating_ips else ""
        box = router_box[r.fip_link] = g.box((ns, "router"), f"{r.name}\niptables NAT{fips}", "namespace", ns)
        for port in r.ports:
            g.link(box, brint, f"{port.ns_dev} {port.ip} = {port.ovs_dev} tag {port.local_vlan}"
                               f"{present(n.name, port.ovs_dev)}", port.network)
    for f in plan.fips_on(n.name):     # DVR: fg- on br-int, an rfp-/fpr- veth to each router
        ns = g.cluster(("fip", f.name), f"{naming.agent_ns_label(f.netns)} ({f.name})", cl)
        held = ", ".join(r.address for r in f.routes) or "no floating IP here"
        box = g.box((ns, "fip"), f"{f.name}\nproxy ARP for {held}", "namespace", ns)
        port = f.gateway
        g.link(box, brint, f"{port.ns_dev} {port.ip} = {port.ovs_dev} tag {port.local_vlan}"
                           f"{present(n.name, port.ovs_dev)}", port.network)
        for x in f.links:
            g.link(box, router_box[x], f"{x.fpr_dev} {x.fpr_ip} = {x.rfp_dev} {x.rfp_ip}", style="dashed")


# --------------------------------------------------------------------------- writers

DOT_SHAPES = {"ovs-bridge": "box3d", "linux-bridge": "box", "namespace": "component", "wire": "hexagon"}


def to_dot(g: Graph) -> str:
    out = [f'digraph "{_esc(g.lab)}" {{', "  rankdir=LR; compound=true; newrank=true;",
           '  node [fontname="Helvetica", fontsize=10]; edge [fontname="Helvetica", fontsize=8, dir=none];',
           f'  label="neutron-lab {_esc(g.lab)}"; labelloc=t;']
    for event, depth, item in g.outline():
        pad = "  " * (depth + 1)
        if event == "open":
            out.append(f'{pad}subgraph cluster_{item.id} {{ label="{_esc(item.label)}"; style=rounded;')
        elif event == "close":
            out.append(f"{pad}}}")
        else:
            out.append(f'{pad}{item.id} [label="{_esc(item.label)}", shape={DOT_SHAPES[item.kind]}];')
    for link in g.links:
        colour = g.colours.get(link.network, NEUTRAL)
        out.append(f'  {link.a} -> {link.b} [label="{_esc(link.label)}", color="{colour}", '
                   f'fontcolor="{colour}", style={link.style}];')
    legend = [f'<tr><td bgcolor="{c}">  </td><td align="left">{html.escape(net)}</td></tr>'
              for net, c in g.colours.items()]
    if legend:
        out.append(f'  legend [shape=plaintext, label=<<table border="0" cellspacing="2">'
                   f'<tr><td colspan="2"><b>networks</b></td></tr>{"".join(legend)}</table>>];')
    out.append("}")
    return "\n".join(out) + "\n"


MERMAID_ARROWS = {"solid": "---", "dashed": "-.-", "dotted": "-.-", "bold": "==="}


def to_mermaid(g: Graph) -> str:
    out = ["flowchart LR"]
    for event, depth, item in g.outline():
        pad = "  " * (depth + 1)
        if event == "open":
            out.append(f'{pad}subgraph {item.id}["{_mermaid(item.label)}"]')
        elif event == "close":
            out.append(f"{pad}end")
        else:
            left, right = ('{{"', '"}}') if item.kind == "wire" else ('["', '"]')
            out.append(f"{pad}{item.id}{left}{_mermaid(item.label)}{right}")
    for i, link in enumerate(g.links):
        label = f"|{_mermaid(link.label)}|" if link.label else ""
        out.append(f"  {link.a} {MERMAID_ARROWS[link.style]}{label} {link.b}")
        if link.network in g.colours:
            out.append(f"  linkStyle {i} stroke:{g.colours[link.network]}")
    return "\n".join(out) + "\n"


def to_text(g: Graph) -> str:
    labels = {b.id: _line(b.label) for b in g.boxes}
    out = [f"lab {g.lab}"]
    for event, depth, item in g.outline():
        pad = "  " * depth
        if event == "open":
            out.append(f"{pad}[{_line(item.label)}]")
        elif event == "box":
            out.append(f"{pad}{labels[item.id]}")
            for link in g.links:
                if link.a == item.id:
                    net = f" ({link.network})" if link.network else ""
                    out.append(f"{pad}  -- {_line(link.label)}{net} --> {labels.get(link.b, link.b)}")
    return "\n".join(out) + "\n"


def _esc(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _mermaid(text: str) -> str:
    return text.replace('"', "'").replace("\n", "<br/>").replace("|", "/")


def _line(text: str) -> str:
    return text.replace("\n", " ")
