"""`lab flows`: a bridge's flow table in Neutron's words. Tables get their neutron-lib names,
local VLANs and tunnel ids their networks, ports their instances/routers/DHCP servers, and
packet counters stay. `--diff` shows what moved since the previous call (saved in the lab's
state directory), for live debugging: run traffic, see which flows counted it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from lab.runtime import gateway, ovs
from lab.core import plugs
from lab.core.plan import NodePlan, Plan

TABLES = {
    "br-int": {0: "local switching", 1: "DVR to src MAC", 2: "DVR to src MAC (physical)",
               3: "ARP DVR MAC to dst MAC", 4: "ARP DVR MAC to dst MAC (physical)", 23: "canary",
               24: "ARP spoofing protection", 25: "MAC spoofing protection", 30: "local egress",
               31: "local IP", 58: "packet rate limit", 59: "bandwidth rate limit", 60: "transient", 61: "local MAC direct",
               62: "transient egress", 71: "base egress", 72: "rules egress", 73: "accept or ingress",
               77: "DHCP IPv4", 78: "DHCP IPv6", 81: "base ingress", 82: "rules ingress",
               91: "accepted egress", 92: "accepted ingress", 93: "dropped", 94: "accepted egress normal"},
    "br-tun": {0: "from br-int or from tunnels", 1: "DVR process", 2: "unicast or flood (from br-int)",
               3: "GRE tunnel id to local VLAN", 4: "VXLAN tunnel id to local VLAN",
               6: "Geneve tunnel id to local VLAN", 9: "DVR not learn", 10: "learn from tunnel",
               20: "unicast to tunnel", 21: "ARP responder", 22: "flood to tunnels"},
    "physical": {0: "local VLAN translation", 1: "DVR process (physical)", 2: "local VLAN translation (DVR)",
                 3: "DVR not learn (physical)"},
}


@dataclass(frozen=True)
class Flow:
    table: int
    priority: int
    match: str
    actions: str
    n_packets: int
    n_bytes: int
    cookie: str

    @property
    def key(self) -> str:
        return f"{self.table}|{self.priority}|{self.match}|{self.actions}"


def parse_flows(text: str) -> list[Flow]:
    flows = []
    for line in text.splitlines():
        line = line.strip()
        m = re.match(r"cookie=(\S+), duration=\S+, table=(\d+), n_packets=(\d+), n_bytes=(\d+), (.*?) ?actions=(.*)$",
                     line)
        if not m:
            continue
        cookie, table, packets, nbytes, rest, actions = m.groups()
        fields = [f for f in rest.rstrip(", ").split(", ") if f]
        # drop idle_age/hard_age/...; what is left is "priority=N,match"
        fields = [f for f in fields if not re.match(r"(idle|hard)_(age|timeout)=", f)]
        match_text = fields[-1].split(" ")[-1] if fields else ""   # past flag words (send_flow_rem ...)
        prio = re.match(r"priority=(\d+),?(.*)$", match_text)
        priority, match = (int(prio.group(1)), prio.group(2)) if prio else (32768, match_text)
        flows.append(Flow(int(table), priority, match, actions, int(packets), int(nbytes), cookie))
    return flows


def _names(plan: Plan, node: NodePlan) -> tuple[dict[str, str], dict[int, str], dict[int, str]]:
    """port name -> owner, local VLAN -> network, tunnel id -> network."""
    owners: dict[str, str] = {}
    for p in node.ports:
        owners[p.ovs_port] = f"{p.instance} ({p.network})"
    for r in plan.routers_on(node.name):
        for port in r.ports:
            owners[port.ovs_dev] = f"{r.name} {port.ns_dev} ({port.network})"
    for d in node.dhcp_servers:
        owners[d.port.ovs_dev] = f"{d.name} ({d.network})"
    for b in node.physical_bridges:
        owners[b.int_patch] = f"patch to {b.bridge}"
        owners[b.phy_patch] = "patch to br-int"
        owners[b.nic] = f"NIC on {b.physical_network}"
    if node.tunnel:
        owners["patch-tun"] = "patch to br-tun"
        owners["patch-int"] = "patch to br-int"
        for tp in node.tunnel.ports:
            owners[tp.name] = f"{tp.type} to {tp.remote_node}"
    vlans = {lvid: net for net, lvid in node.local_vlans}
    tunnels = {tn.segmentation_id: tn.network for tn in node.tunnel_networks}
    return owners, vlans, tunnels


def _macs(plan: Plan) -> dict[str, str]:
    """MAC -> what has it, lab-wide (br-tun's l2pop and ARP responder flows name remote ports)."""
    macs = {p.mac: p.instance for p in plan.ports}
    macs.update({d.port.mac: d.name for d in plan.dhcp_servers})
    macs.update({q.mac: f"{r.name} {q.ns_dev}" if r.name == r.router else f"{r.router} {q.ns_dev} (on every host)"
                 for r in plan.router_instances for q in r.ports})
    macs.update({h.mac: h.name for h in plan.external_hosts})
    macs.update({mac: f"DVR MAC of {node}" for node, mac in plan.dvr_macs})
    return macs


def _matched_vlans(match: str) -> list[int | None]:
    """The VLAN ids a match selects (dl_vlan=N, or vlan_tci=V/M as learned flows write it);
    None for "untagged" (vlan_tci=0x0000/0x1fff, neutron-lib's FLAT_VLAN_TCI)."""
    vids: list[int | None] = [int(v) for v in re.findall(r"dl_vlan=(\d+)", match)]
    for value, mask in re.findall(r"vlan_tci=(0x[0-9a-f]+)/(0x[0-9a-f]+)", match):
        value, mask = int(value, 16), int(mask, 16)
        if mask & 0xfff == 0xfff:
            vids.append(None if mask & 0x1000 and not value & 0x1000 else value & 0xfff)
    return vids


def _vlan_notes(flow: Flow, bridge: str, node: NodePlan, vlans: dict[int, str]) -> list[str]:
    wire_vlans = {seg: net for b in node.physical_bridges for net, _, seg in b.vlan_translations
                  if seg is not None}
    on_physical = bridge in {b.bridge for b in node.physical_bridges}
    patches = [b for b in node.physical_bridges if b.int_patch in flow.match] if bridge == "br-int" else []
    notes = []
    for vid in _matched_vlans(flow.match):
        if vid is None:
            flat = [net for b in patches for net, _, seg in b.vlan_translations if seg is None]
            notes.append(f"untagged on the wire = {flat[0]}" if flat else "untagged")
        elif vid == 4095:
            notes.append("dead VLAN")
        elif patches and vid in wire_vlans:
            notes.append(f"VLAN {vid} on the wire = {wire_vlans[vid]}")
        elif vid in vlans:
            notes.append(f"local VLAN {vid} = {vlans[vid]}")
    for m in re.finditer(r"mod_vlan_vid:(\d+)", flow.actions):
        vid = int(m.group(1))
        if on_physical and vid in wire_vlans:
            notes.append(f"leaves with VLAN {vid} ({wire_vlans[vid]})")
        elif not on_physical and vid in vlans:
            notes.append(f"to local VLAN {vid} ({vlans[vid]})")
    if on_physical and "strip_vlan" in flow.actions:
        notes.append("leaves untagged (flat)")
    return notes


def _mac_notes(flow: Flow, macs: dict[str, str]) -> list[str]:
    notes = [f"to {macs[mac]}" for mac in re.findall(r"dl_dst=([0-9a-f:]{17})(?![/0-9a-f:])", flow.match)
             if mac in macs]
    notes += [f"from {macs[mac]}" for mac in re.findall(r"dl_src=([0-9a-f:]{17})(?![/0-9a-f:])", flow.match)
              if mac in macs]
    answer = re.search(r"mod_dl_src:([0-9a-f:]{17})", flow.actions)
    tpa = re.search(r"arp_tpa=([0-9.]+)", flow.match)
    if answer and "NXM_OF_ARP_OP" not in flow.actions and answer.group(1) in macs:
        notes.append(f"source becomes {macs[answer.group(1)]}")
    if answer and tpa and "NXM_OF_ARP_OP" in flow.actions:
        notes.append(f"answers ARP: {tpa.group(1)} is at {answer.group(1)}"
                     + (f" ({macs[answer.group(1)]})" if answer.group(1) in macs else ""))
    return notes


def annotate(flow: Flow, bridge: str, plan: Plan, node: NodePlan) -> str:
    owners, vlans, tunnels = _names(plan, node)

    def port_note(m):
        name = m.group(2).strip('"')
        return f"{m.group(1)}{name}" + (f" [{owners[name]}]" if name in owners else "")

    text = re.sub(r"(in_port=|output:)(\"[^\"]+\"|[A-Za-z][\w.-]*)", port_note,
                  f"{flow.match or 'any'} -> {flow.actions}")
    notes = _vlan_notes(flow, bridge, node, vlans)
    for m in re.finditer(r"tun_id=(0x[0-9a-f]+)|load:(0x[0-9a-f]+)->NXM_NX_TUN_ID", flow.match + " " + flow.actions):
        tid = int(m.group(1) or m.group(2), 16)
        if tid in tunnels:
            notes.append(f"tunnel id {tid} = {tunnels[tid]}")
    notes += _mac_notes(flow, _macs(plan))
    rule = plugs.driver(node.firewall_driver).flow_notes(plan, node).get(
        (flow.table, flow.priority, flow.match.replace('"', "")))
    if rule:
        notes.append(rule)      # the security-group rule the firewall driver made it from
    if "learn(" in flow.actions:
        notes.append("learns MAC -> tunnel into table 20")
    note = f"   # {'; '.join(dict.fromkeys(notes))}" if notes else ""
    return f"{flow.n_packets:>8} pkts  prio {flow.priority:<5} {text}{note}"


def table_name(bridge: str, table: int) -> str:
    kind = bridge if bridge in ("br-int", "br-tun") else "physical"
    return TABLES[kind].get(table, "")


def dump(node: NodePlan, bridge: str) -> list[Flow]:
    return parse_flows(gateway.run(["ovs-ofctl", "dump-flows", "--names", bridge], env=ovs.env(node.rundir)).stdout)


def bridges_of(node: NodePlan) -> list[str]:
    return ["br-int"] + [b.bridge for b in node.physical_bridges] + (["br-tun"] if node.tunnel else [])


def render(plan: Plan, node: NodePlan, bridge: str, flows: list[Flow], previous: dict[str, int] | None = None) -> str:
    lines = [f"{node.name} {bridge}  (cookie {plan.cookie}; packets counted since the flow was installed)"]
    current_table = None
    shown = 0
    for f in sorted(flows, key=lambda f: (f.table, -f.priority)):
        if previous is not None:
            before = previous.get(f.key)
            if before is not None and before == f.n_packets:
                continue
        if f.table != current_table:
            current_table = f.table
            name = table_name(bridge, f.table)
            lines.append(f"  table {f.table}" + (f" — {name}" if name else ""))
        line = annotate(f, bridge, plan, node)
        if previous is not None:
            before = previous.get(f.key)
            line = ("     new  " if before is None else f"{f.n_packets - before:>+8}  ") + line
        lines.append("    " + line)
        shown += 1
    if previous is not None:
        gone = set(previous) - {f.key for f in flows}
        for key in sorted(gone):
            lines.append(f"    removed  {key.replace('|', ' ')}")
        if not shown and not gone:
            lines.append("    no flow counted a packet since the previous call")
    return "\n".join(lines)


def snapshot_path(state_dir: Path, node: str, bridge: str) -> Path:
    return state_dir / "flows" / f"{node}-{bridge}.json"


def show(plan: Plan, state_dir: Path, node_name: str, bridge: str | None, diff: bool) -> str:
    node = plan.node(node_name)
    out = []
    for b in ([bridge] if bridge else bridges_of(node)):
        if b not in bridges_of(node):
            raise ValueError(f"{node.name} has no bridge {b} (its bridges: {', '.join(bridges_of(node))})")
        flows = dump(node, b)
        path = snapshot_path(state_dir, node.name, b)
        previous = None
        if diff:
            try:
                previous = json.loads(path.read_text())
            except (OSError, ValueError):
                previous = {}
        out.append(render(plan, node, b, flows, previous))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({f.key: f.n_packets for f in flows}))
    return "\n\n".join(out)
