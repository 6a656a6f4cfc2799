"""`lab graph`: a picture of a running lab, read from the live system (each node's OVSDB for
bridges and ports) and named from the plan: nodes with their bridges and agent namespaces,
the instances' port plugs, patch links, wires and tunnels, coloured by network.

One neutral model (Graph) and three writers: Graphviz DOT (rendered to SVG/PNG by `dot`),
Mermaid, and indented text for a terminal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lab.core import naming
from lab.core.plan import Plan

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf",
           "#bcbd22", "#7f7f7f"]
NEUTRAL = "#555555"


@dataclass
class Box:
    id: str
    label: str
    kind: str            # ovs-bridge | linux-bridge | namespace | wire | port
    cluster: str | None  # id of the cluster (node or agent namespace) it is drawn in


@dataclass
class Link:
    a: str
    b: str
    label: str = ""
    network: str | None = None
    style: str = "solid"  # solid | dashed (patch) | bold (wire)


@dataclass
class Graph:
    lab: str
    clusters: dict[str, tuple[str, str | None]] = field(default_factory=dict)   # id -> (label, parent)
    boxes: list[Box] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)
    colours: dict[str, str] = field(default_factory=dict)                     # network -> colour

    def box(self, id: str, label: str, kind: str, cluster: str | None = None) -> str:
        if not any(b.id == id for b in self.boxes):
            self.boxes.append(Box(id, label, kind, cluster))
        return id


def _id(*parts: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", "__".join(parts))


def build(plan: Plan, live_ports: dict[str, dict] | None = None) -> Graph:
    """The lab as boxes and links. LIVE_PORTS (node -> {port name: PortRow}) marks what OVS
    really has; a port the plan expects but OVS lacks is drawn as missing."""
    g = Graph(plan.lab)
    networks = []
    for n in plan.nodes:
        networks += [net for net, _ in n.local_vlans]
    for i, net in enumerate(dict.fromkeys(networks)):
        g.colours[net] = PALETTE[i % len(PALETTE)]

    def present(node: str, port: str) -> str:
        if live_ports is None or node not in live_ports:
            return ""
        return "" if port in live_ports[node] else " (MISSING)"

    for w in plan.wires:
        g.box(_id("wire", w.name), f"{w.name}\n(wire: Linux bridge)", "wire")
    for n in plan.nodes:
        cl = _id("node", n.name)
        g.clusters[cl] = (f"{n.name} ({n.role})  netns {n.netns}", None)
        brint = g.box(_id(n.name, "br-int"), "br-int", "ovs-bridge", cl)
        for b in n.physical_bridges:
            phys = g.box(_id(n.name, b.bridge), f"{b.bridge}\n({b.physical_network})", "ovs-bridge", cl)
            g.links.append(Link(brint, phys, f"{b.int_patch} / {b.phy_patch}{present(n.name, b.int_patch)}",
                                style="dashed"))
            g.links.append(Link(phys, _id("wire", b.physical_network), f"{b.nic}{present(n.name, b.nic)}",
                                style="bold"))
        if n.tunnel:
            brtun = g.box(_id(n.name, "br-tun"), f"br-tun\nlocal_ip {n.tunnel.local_ip}", "ovs-bridge", cl)
            g.links.append(Link(brint, brtun, f"patch-tun / patch-int{present(n.name, 'patch-tun')}", style="dashed"))
            uplink = brtun
            if n.tunnel.bridge:
                uplink = g.box(_id(n.name, n.tunnel.bridge), f"{n.tunnel.bridge}\n(userspace tunnel endpoint)",
                               "ovs-bridge", cl)
                g.links.append(Link(brtun, uplink, "routes tunnels", style="dashed"))
            g.links.append(Link(uplink, _id("wire", n.tunnel.wire), n.tunnel.nic, style="bold"))
            for tn in n.tunnel_networks:
                g.links.append(Link(brtun, _id("wire", n.tunnel.wire),
                                    f"{tn.type} id {tn.segmentation_id} <-> local VLAN {tn.local_vlan}",
                                    tn.network, style="dotted"))
        for p in n.ports:
            _plug(g, n.name, cl, brint, p, present(n.name, p.ovs_port))
        for d in n.dhcp_servers:
            ns = _id("dhcp", d.name)
            g.clusters[ns] = (f"{naming.agent_ns_label(d.netns)} ({d.name})", cl)
            box = g.box(_id(ns, "dnsmasq"), f"dnsmasq\n{d.port.ns_dev} {d.port.ip}", "namespace", ns)
            g.links.append(Link(box, brint, f"{d.port.ovs_dev} tag {d.port.local_vlan}{present(n.name, d.port.ovs_dev)}",
                                d.network))
        for r in plan.routers_on(n.name):
            ns = _id("router", r.name)
            g.clusters[ns] = (f"{naming.agent_ns_label(r.netns)} ({r.name})", cl)
            box = g.box(_id(ns, "router"), f"{r.name}\niptables NAT" + (
                f"\nFIPs {', '.join(f.address for f in r.floating_ips)}" if r.floating_ips else ""), "namespace", ns)
            for port in r.ports:
                g.links.append(Link(box, brint, f"{port.ns_dev} {port.ip} = {port.ovs_dev} tag {port.local_vlan}"
                                                f"{present(n.name, port.ovs_dev)}", port.network))
    for h in plan.external_hosts:
        box = g.box(_id("host", h.name), f"{h.name}\n{h.ip}\n(outside world)", "namespace")
        g.links.append(Link(box, _id("wire", h.wire), "eth0", h.network, style="bold"))
    return g


def _plug(g: Graph, node: str, cluster: str, brint: str, p, missing: str) -> None:
    """An instance and its port's plug, read from the plug's devices (any firewall driver):
    each Linux bridge is a box, the veths between boxes name the links."""
    segments: list[list[str]] = [["eth0"]]
    bridges: list[str] = []
    for d in p.plug.devices:
        if d.kind == "bridge":
            label = f"{d.name}\n({d.firewall})" if d.firewall else d.name
            bridges.append(g.box(_id(node, d.name), label, "linux-bridge", cluster))
            segments.append([])
        else:
            segments[-1].append(d.name)
    chain = [None, *bridges, brint]
    for i in reversed(range(len(segments))):
        label = " = ".join(segments[i])
        if i == len(segments) - 1:
            label += f" tag {p.local_vlan}{missing}"
        if i == 0:
            chain[0] = g.box(_id("inst", p.instance), f"{p.instance}\n{p.ip}", "namespace")
        g.links.append(Link(chain[i], chain[i + 1], label, p.network))


def to_dot(g: Graph) -> str:
    shapes = {"ovs-bridge": "box3d", "linux-bridge": "box", "namespace": "component", "wire": "hexagon"}
    out = [f'digraph "{g.lab}" {{', "  rankdir=LR; compound=true; newrank=true;",
           '  node [fontname="Helvetica", fontsize=10]; edge [fontname="Helvetica", fontsize=8, dir=none];',
           f'  label="neutron-lab {g.lab}"; labelloc=t;']

    def emit_cluster(cid: str, indent: str) -> None:
        label, _ = g.clusters[cid]
        out.append(f'{indent}subgraph cluster_{cid} {{ label="{label}"; style=rounded;')
        for b in g.boxes:
            if b.cluster == cid:
                out.append(f'{indent}  {b.id} [label="{_esc(b.label)}", shape={shapes[b.kind]}];')
        for child, (_, parent) in g.clusters.items():
            if parent == cid:
                emit_cluster(child, indent + "  ")
        out.append(f"{indent}}}")

    for cid, (_, parent) in g.clusters.items():
        if parent is None:
            emit_cluster(cid, "  ")
    for b in g.boxes:
        if b.cluster is None:
            out.append(f'  {b.id} [label="{_esc(b.label)}", shape={shapes[b.kind]}];')
    for link in g.links:
        colour = g.colours.get(link.network, NEUTRAL)
        style = {"bold": "bold", "dashed": "dashed", "dotted": "dotted"}.get(link.style, "solid")
        out.append(f'  {link.a} -> {link.b} [label="{_esc(link.label)}", color="{colour}", '
                   f'fontcolor="{colour}", style={style}];')
    legend = [f'<tr><td bgcolor="{c}">  </td><td align="left">{net}</td></tr>' for net, c in g.colours.items()]
    if legend:
        out.append(f'  legend [shape=plaintext, label=<<table border="0" cellspacing="2">'
                   f'<tr><td colspan="2"><b>networks</b></td></tr>{"".join(legend)}</table>>];')
    out.append("}")
    return "\n".join(out) + "\n"


def to_mermaid(g: Graph) -> str:
    out = ["flowchart LR"]

    def emit(cid: str, indent: str) -> None:
        label, _ = g.clusters[cid]
        out.append(f'{indent}subgraph {cid}["{label}"]')
        for b in g.boxes:
            if b.cluster == cid:
                out.append(f'{indent}  {b.id}["{_mermaid(b.label)}"]')
        for child, (_, parent) in g.clusters.items():
            if parent == cid:
                emit(child, indent + "  ")
        out.append(f"{indent}end")

    for cid, (_, parent) in g.clusters.items():
        if parent is None:
            emit(cid, "  ")
    for b in g.boxes:
        if b.cluster is None:
            shape = ('{{"', '"}}') if b.kind == "wire" else ('["', '"]')
            out.append(f"  {b.id}{shape[0]}{_mermaid(b.label)}{shape[1]}")
    for i, link in enumerate(g.links):
        arrow = {"dashed": "-.-", "dotted": "-.-", "bold": "==="}.get(link.style, "---")
        label = f"|{_mermaid(link.label)}|" if link.label else ""
        out.append(f"  {link.a} {arrow}{label} {link.b}")
        if link.network in g.colours:
            out.append(f"  linkStyle {i} stroke:{g.colours[link.network]}")
    return "\n".join(out) + "\n"


def to_text(g: Graph) -> str:
    labels = {b.id: b.label.replace("\n", " ") for b in g.boxes}
    out = [f"lab {g.lab}"]

    def emit(cid: str, indent: str) -> None:
        out.append(f"{indent}[{g.clusters[cid][0]}]")
        for b in g.boxes:
            if b.cluster == cid:
                out.append(f"{indent}  {labels[b.id]}")
                for link in g.links:
                    if link.a == b.id:
                        net = f" ({link.network})" if link.network else ""
                        out.append(f"{indent}    -- {link.label}{net} --> {labels.get(link.b, link.b)}")
        for child, (_, parent) in g.clusters.items():
            if parent == cid:
                emit(child, indent + "  ")

    for cid, (_, parent) in g.clusters.items():
        if parent is None:
            emit(cid, "")
    for b in g.boxes:
        if b.cluster is None:
            out.append(labels[b.id])
            for link in g.links:
                if link.a == b.id:
                    net = f" ({link.network})" if link.network else ""
                    out.append(f"    -- {link.label}{net} --> {labels.get(link.b, link.b)}")
    return "\n".join(out) + "\n"


def _esc(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _mermaid(text: str) -> str:
    return text.replace('"', "'").replace("\n", "<br/>").replace("|", "/")
