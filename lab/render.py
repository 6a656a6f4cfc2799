"""Plan -> the files and transactions each node gets. Pure (jinja2 templates in templates/).

Per node: one OVSDB transaction (as ovs-vsctl arguments), one flow file per bridge (for
``ovs-ofctl --bundle replace-flows``) and one iptables-restore file. The golden-file tests pin
all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import jinja2

from . import naming
from .paths import data_dir
from .plan import NodePlan, Plan

CONNTRACK_ZONE_BASE = 4096


@dataclass(frozen=True)
class NodeRender:
    node: str
    ovsdb: tuple[str, ...]          # ovs-vsctl arguments of the node's one transaction
    flows: dict[str, str]           # bridge -> flow file text
    iptables: str                   # iptables-restore input


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(data_dir("templates"))),
                              undefined=jinja2.StrictUndefined, trim_blocks=True,
                              lstrip_blocks=True, keep_trailing_newline=True)


def render_template(name: str, **context) -> str:
    return _env().get_template(name).render(**context)


def ovsdb_transaction(plan: Plan, node: NodePlan) -> tuple[str, ...]:
    """Every bridge, port and interface of a node in one ovs-vsctl transaction.

    Bridges and ports carry external_ids:neutron-lab=<lab>; instance ports carry what Nova
    and the OVS agent write (iface-id, attached-mac, iface-status, vm-uuid) and the agent's
    other_config (net_uuid, network_type, physical_network, segmentation_id, tag).
    """
    mark = f"external_ids:{naming.EXTERNAL_ID_KEY}={plan.lab}"
    args: list[str] = []

    def cmd(*words: str) -> None:
        if args:
            args.append("--")
        args.extend(words)

    def bridge(name: str) -> None:
        cmd("--may-exist", "add-br", name)
        cmd("set", "Bridge", name, f"datapath_type={plan.datapath}", "fail_mode=secure",
            "protocols=OpenFlow10,OpenFlow13,OpenFlow14", "other_config:disable-in-band=true", mark)

    bridge("br-int")
    for b in node.physical_bridges:
        bridge(b.bridge)
        cmd("--may-exist", "add-port", b.bridge, b.nic)
        cmd("set", "Port", b.nic, mark)
        cmd("--may-exist", "add-port", "br-int", b.int_patch)
        cmd("set", "Interface", b.int_patch, "type=patch", f"options:peer={b.phy_patch}")
        cmd("set", "Port", b.int_patch, mark)
        cmd("--may-exist", "add-port", b.bridge, b.phy_patch)
        cmd("set", "Interface", b.phy_patch, "type=patch", f"options:peer={b.int_patch}")
        cmd("set", "Port", b.phy_patch, mark)
    for p in node.ports:
        net_uuid = naming.object_uuid(plan.lab, "network", p.network)
        vm_uuid = naming.object_uuid(plan.lab, "instance", p.instance)
        seg = "None" if p.segmentation_id is None else str(p.segmentation_id)
        cmd("--may-exist", "add-port", "br-int", p.qvo)
        cmd("set", "Port", p.qvo, f"tag={p.local_vlan}", mark,
            f"other_config:net_uuid={net_uuid}", f"other_config:network_type={p.network_type}",
            f"other_config:physical_network={p.physical_network}",
            f"other_config:segmentation_id={seg}", f"other_config:tag={p.local_vlan}")
        cmd("set", "Interface", p.qvo, f"external_ids:iface-id={p.port_id}",
            "external_ids:iface-status=active", f'external_ids:attached-mac="{p.mac}"',
            f"external_ids:vm-uuid={vm_uuid}")
    return tuple(args)


def iptables_rules(plan: Plan, node: NodePlan) -> str:
    ports = [{"port": p, "i": naming.sg_chain("i", p.port_id), "o": naming.sg_chain("o", p.port_id),
              "s": naming.sg_chain("s", p.port_id), "zone": CONNTRACK_ZONE_BASE + p.local_vlan}
             for p in node.ports]
    return render_template("iptables-hybrid.rules.j2", lab=plan.lab, node=node, ports=ports,
                           wrap=naming.IPTABLES_WRAP)


def render_node(plan: Plan, node: NodePlan) -> NodeRender:
    flows = {"br-int": render_template("br-int.flows.j2", node=node, cookie=plan.cookie)}
    for b in node.physical_bridges:
        flows[b.bridge] = render_template("physical-bridge.flows.j2", bridge=b, cookie=plan.cookie)
    return NodeRender(node=node.name, ovsdb=ovsdb_transaction(plan, node), flows=flows,
                      iptables=iptables_rules(plan, node))


def render_plan(plan: Plan) -> dict[str, NodeRender]:
    return {n.name: render_node(plan, n) for n in plan.nodes}


def describe(plan: Plan) -> str:
    """What `lab show` prints: the objects `up` would make, by namespace."""
    lines = [f"lab {plan.lab}  (scenario {plan.scenario_file}, datapath {plan.datapath}, "
             f"flow cookie {plan.cookie})", ""]
    for w in plan.wires:
        lines.append(f"wire {w.name}: netns {w.netns}, Linux bridge {w.bridge}")
        for m in w.members:
            lines.append(f"  {m.wire_ifname} <-> {m.node}:{m.node_ifname}")
    lines.append("")
    for n in plan.nodes:
        lines.append(f"node {n.name} ({n.role}): netns {n.netns}, OVS run directory {n.rundir}")
        lines.append("  br-int")
        for p in n.ports:
            lines.append(f"    {p.qvo}  tag={p.local_vlan}  ({p.instance}, network {p.network})")
        for b in n.physical_bridges:
            lines.append(f"    {b.int_patch}  patch <-> {b.bridge}:{b.phy_patch}")
        for b in n.physical_bridges:
            lines.append(f"  {b.bridge}  (bridge_mappings = {b.physical_network}:{b.bridge})")
            lines.append(f"    {b.nic}  -> wire {b.physical_network}")
            for network, lvid, seg in b.vlan_translations:
                to = f"VLAN {seg}" if seg is not None else "untagged (flat)"
                lines.append(f"    local VLAN {lvid} <-> {to}  (network {network})")
        for p in n.ports:
            lines.append(f"  {p.qbr}  Linux bridge: {p.tap}, {p.qvb}  (security groups: "
                         f"{', '.join(p.security_groups) or 'none'})")
        lines.append("")
    lines.append("instances")
    for p in plan.ports:
        lines.append(f"  {p.instance}: netns {p.netns}, eth0 {p.mac} {p.ip}/{p.prefixlen} mtu {p.mtu} "
                     f"gw {p.gateway}; on {p.node} via {p.tap}; port {p.port_id}")
    return "\n".join(lines) + "\n"
