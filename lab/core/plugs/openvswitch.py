"""The openvswitch plug (OVSFirewallDriver, ovs_hybrid_plug = False): the VM's tap sits
straight on br-int and security groups are OpenFlow flows with conntrack:

    eth0 (instance) = tap (node, a port of br-int)    tables 60, 71-73, 81-82, 91-94 of br-int

No Linux bridge, no iptables on the node. The flows follow Neutron's
``neutron/agent/linux/openvswitch_firewall/firewall.py`` and ``rules.py``: table 60 puts the
port's ofport in reg5 and its network (local VLAN) in reg6; the conntrack zone is reg6;
71 is anti-spoofing (ARP, IP, DHCP, ND), 72/82 the rules (egress/ingress), 73 accept or
local ingress, 81 base ingress, 91-94 accepted/dropped. Remote-group rules are conjunctions
(dimension 1: member addresses per network, dimension 2: the port's rule). Trusted ports
(router and DHCP ports, device_owner network:*) get the "no port security" flows.

The flows need each port's ofport, which OVS picks at runtime; the lab asks for it with
``ofport_request`` (``interface_columns``), so the pure core knows the numbers.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lab.core import naming
from lab.core.plugs import Plug, PlugDevice, PlugHop

if TYPE_CHECKING:  # pragma: no cover
    from lab.core.plan import InstancePort, NodePlan, Plan, PortRule

OFPORT_BASE = 10            # ofport_request of the node's first br-int port with firewall flows
CONJ_ID_BLOCK = 8           # ConjIdMap.CONJ_ID_BLOCK_SIZE; the first id an empty br-int gets is 16
CT_NEW = "+new-est"         # OF_STATE_NEW_NOT_ESTABLISHED
CT_EST = "+est-rel-rpl"     # OF_STATE_ESTABLISHED_NOT_REPLY
ZONE = "zone=NXM_NX_REG6[0..15]"
PROTO_MATCH = {"any": "ip", "icmp": "icmp", "tcp": "tcp", "udp": "udp"}


@dataclass(frozen=True)
class Flow:
    table: int
    priority: int
    match: str              # ovs-ofctl match fields, without table and priority
    actions: str
    note: str = ""          # the security-group rule it comes from (`lab flows` shows it)

    def line(self, cookie: str) -> str:
        match = f",{self.match}" if self.match else ""
        return f"cookie={cookie},table={self.table},priority={self.priority}{match},actions={self.actions}"


def lla(mac: str) -> str:
    """The port's IPv6 link-local address (EUI-64 of its MAC), as OFPort.lla_address."""
    b = bytearray(int(x, 16) for x in mac.split(":"))
    b[0] ^= 0x02
    eui = bytes(b[:3]) + b"\xff\xfe" + bytes(b[3:])
    return str(ipaddress.IPv6Address(b"\xfe\x80" + bytes(6) + eui))


def port_masks(port_min: int, port_max: int) -> list[str]:
    """A port range as value/mask matches (neutron.common.utils.port_rule_masking: the
    aligned power-of-two blocks that cover it), a single port as its number."""
    if port_min == port_max:
        return [str(port_min)]
    out, p = [], port_min
    while p <= port_max:
        size = p & -p if p else 1 << 16
        while p + size - 1 > port_max:
            size //= 2
        out.append(str(p) if size == 1 else f"{p:#06x}/{0xffff & ~(size - 1):#06x}")
        p += size
    return out


def priority_offset(rule: "PortRule", conjunction: bool) -> int:
    """rules.flow_priority_offset: 4 for rules without a remote group, then by protocol."""
    base = 0 if conjunction else 4
    if rule.protocol == "any":
        return base
    if rule.protocol == "icmp":
        return base + 1         # ICMP without a type (the lab's rules have none)
    return base + 3


def rule_matches(rule: "PortRule", ofport: int, remote: str | None) -> list[str]:
    """rules.create_flows_from_rule_and_port: the match of each flow of one rule."""
    match = f"{PROTO_MATCH[rule.protocol]},reg5={ofport:#x}"
    if remote and remote != "0.0.0.0/0":            # is_valid_prefix: /0 matches nothing
        field = "nw_src" if rule.direction == "ingress" else "nw_dst"
        match += f",{field}={remote.removesuffix('/32')}"
    if rule.protocol in ("tcp", "udp") and rule.port_min is not None:
        return [f"{match},tp_dst={m}" for m in port_masks(rule.port_min, rule.port_max)]
    return [match]


def rule_text(rule: "PortRule") -> str:
    """'ingress tcp 5001 from anywhere', 'ingress any from group default' (for `lab flows`)."""
    what = rule.protocol
    if rule.port_min is not None:
        what += f" {rule.port_min}" + (f"-{rule.port_max}" if rule.port_max != rule.port_min else "")
    remote = (f"group {rule.remote_group}" if rule.remote_group is not None
              else "anywhere" if rule.remotes == ("0.0.0.0/0",) else ", ".join(rule.remotes))
    return f"{rule.direction} {what} {'from' if rule.direction == 'ingress' else 'to'} {remote}"


def accept_flows(rule: "PortRule", device: str, priority: int, match: str,
                 conj_id: int | None = None, note: str = "") -> list[Flow]:
    """rules.create_accept_flows / create_conj_flows: established and new, ingress commits
    (output to the port by name: ovs-ofctl resolves it to the ofport Neutron writes)."""
    table = 82 if rule.direction == "ingress" else 72
    accept = f"output:{device}" if table == 82 else "resubmit(,73)"
    out = []
    for i, state in enumerate((CT_EST, CT_NEW)):
        act = accept
        if table == 82 and state == CT_NEW:
            act = f"ct(commit,{ZONE}),{accept},resubmit(,92)"
        m = f"ct_state={state},{match}"
        if conj_id is not None:
            m = f"conj_id={conj_id + i},{m}"
            act = f"set_field:{conj_id + i:#x}->reg7,{act}"
        out.append(Flow(table, priority, m, act, note))
    return out


Key = tuple[str, str, str]     # (project, remote group, direction)


def conj_bases(ports: "tuple[InstancePort, ...]") -> dict[Key, int]:
    """ConjIdMap.get_conj_id: one block of 8 ids per remote group (a group is a project's) and
    direction, from 16, in the order the node's ports and their rules come (IPv4 only: the
    lab has no IPv6 rules)."""
    bases: dict[Key, int] = {}
    for p in ports:
        for r in p.rules:
            if r.remote_group is not None:
                bases.setdefault((p.project, r.remote_group, r.direction), CONJ_ID_BLOCK * (len(bases) + 2))
    return bases


def port_rule_flows(port: "InstancePort", ofport: int, bases: dict[Key, int]) -> list[Flow]:
    """add_flows_from_rules for one port: CIDR rules as accept flows, remote-group rules as
    conjunction dimension 2 (merged where the match is the same) and their accept flows."""
    flows: list[Flow] = []
    for r in port.rules:
        if r.remote_group is None:
            prio = 70 + priority_offset(r, False)
            for remote in r.remotes:
                for m in rule_matches(r, ofport, remote):
                    flows += accept_flows(r, port.ovs_port, prio, m, note=f"{port.instance}: {rule_text(r)}")
    dim2: dict[tuple[int, int, str], list[int]] = {}
    texts: dict[tuple[int, int, str], list[str]] = {}
    accepts: dict[int, "PortRule"] = {}
    for r in port.rules:
        if r.remote_group is None:
            continue
        off = priority_offset(r, True)
        cid = bases[(port.project, r.remote_group, r.direction)] + 2 * off
        for m in rule_matches(r, ofport, None):
            key = (82 if r.direction == "ingress" else 72, 70 + off, m)
            ids = dim2.setdefault(key, [])
            if cid not in ids:
                ids.append(cid)
            texts.setdefault(key, []).append(rule_text(r))
        accepts.setdefault(cid, r)
    for (table, prio, m), ids in dim2.items():
        for i, state in enumerate((CT_EST, CT_NEW)):
            conj = ",".join(f"conjunction({c + i},2/2)" for c in sorted(ids))
            note = f"{port.instance}: {'; '.join(dict.fromkeys(texts[(table, prio, m)]))} (the port's half)"
            flows.append(Flow(table, prio, f"ct_state={state},{m}", conj, note))
    for cid, r in sorted(accepts.items()):
        flows += accept_flows(r, port.ovs_port, 70 + (cid % CONJ_ID_BLOCK) // 2, f"ip,reg5={ofport:#x}", cid,
                              note=f"{port.instance}: {rule_text(r)} (both halves matched)")
    return flows


def member_flows(ports: "tuple[InstancePort, ...]", bases: dict[Key, int]) -> list[Flow]:
    """ConjIPFlowManager.update_flows_for_vlan: conjunction dimension 1, one flow per member
    address of each remote group a port on the network uses, matched by reg6 (the network)."""
    per_vlan: dict[tuple[int, str], dict[str, dict[int, set[int]]]] = {}
    groups: dict[str, set[str]] = {}
    for p in ports:
        for r in p.rules:
            if r.remote_group is None:
                continue
            off = priority_offset(r, True)
            cid = bases[(p.project, r.remote_group, r.direction)] + 2 * off
            addrs = per_vlan.setdefault((p.local_vlan, r.direction), {})
            for addr in r.remotes:
                addrs.setdefault(addr, {}).setdefault(off, set()).add(cid)
                groups.setdefault(addr, set()).add(r.remote_group)
    flows = []
    for (vlan, direction), addrs in per_vlan.items():
        table, field = (82, "nw_src") if direction == "ingress" else (72, "nw_dst")
        for addr, by_off in addrs.items():
            for off, ids in sorted(by_off.items()):
                for i, state in enumerate((CT_EST, CT_NEW)):
                    conj = ",".join(f"conjunction({c + i},1/2)" for c in sorted(ids))
                    flows.append(Flow(table, 70 + off, f"ct_state={state},ip,reg6={vlan:#x},"
                                                       f"{field}={addr.removesuffix('/32')}", conj,
                                      f"member of group {', '.join(sorted(groups[addr]))} (the remote's half)"))
    return flows


def trusted_ports(plan: "Plan", node: "NodePlan") -> list:
    """The node's router and DHCP ports (device_owner network:*): process_trusted_ports."""
    return [d.port for d in node.dhcp_servers] + [p for r in plan.routers_on(node.name) for p in r.ports]


def ofports(plan: "Plan", node: "NodePlan") -> dict[str, int]:
    """The ofport the lab requests for each br-int port with firewall flows: instance ports
    in the node's order, then trusted ports."""
    devices = [p.ovs_port for p in node.ports] + [p.ovs_dev for p in trusted_ports(plan, node)]
    return {dev: OFPORT_BASE + i for i, dev in enumerate(devices)}


class OvsFirewall:
    name = "openvswitch"
    hybrid_plug = False
    iptables = False
    provides_arp_spoofing_protection = True     # tables 71/81 replace br-int's 24/25

    def plug(self, node_netns: str, port_id: str) -> Plug:
        tap = naming.port_device("tap", port_id)
        return Plug(self.name, (PlugDevice("tap", tap, "veth", node_netns, "openflow"),), tap)

    def firewall_rules(self, plan: "Plan", node: "NodePlan") -> str:
        return ""       # no iptables on the node

    def interface_columns(self, plan: "Plan", node: "NodePlan", device: str) -> tuple[str, ...]:
        ofport = ofports(plan, node).get(device)
        return () if ofport is None else (f"ofport_request={ofport}",)

    def br_int_flows(self, plan: "Plan", node: "NodePlan") -> str:
        from lab.core.render import render_template
        numbers, rule_flows, members = _rule_flows(plan, node)
        ports = [{"port": p, "ofport": numbers[p.ovs_port], "lla": lla(p.mac), "rules": rule_flows[p.ovs_port]}
                 for p in node.ports]
        trusted = [{"port": t, "ofport": numbers[t.ovs_dev]} for t in trusted_ports(plan, node)]
        text = render_template("ovs-firewall.flows.j2", cookie=plan.cookie, ports=ports, trusted=trusted,
                               members=members)
        return _dedupe(text)

    def flow_notes(self, plan: "Plan", node: "NodePlan") -> dict[tuple[int, int, str], str]:
        """(table, priority, match) of each security-group rule flow -> the rule it comes from."""
        _, rule_flows, members = _rule_flows(plan, node)
        return {(f.table, f.priority, f.match): f.note
                for f in [*members, *(f for flows in rule_flows.values() for f in flows)] if f.note}

    def trace_hops(self, port: "InstancePort", direction: str) -> tuple[PlugHop, ...]:
        tap = port.plug.device("tap")
        return (PlugHop(tap, "nic", port.plug.devices[0].netns, tap),)


def _rule_flows(plan: "Plan", node: "NodePlan") -> tuple[dict[str, int], dict[str, list[Flow]], list[Flow]]:
    """ofports, each instance port's rule flows (by its br-int port), the member flows."""
    numbers = ofports(plan, node)
    bases = conj_bases(node.ports)
    rule_flows = {p.ovs_port: port_rule_flows(p, numbers[p.ovs_port], bases) for p in node.ports}
    return numbers, rule_flows, member_flows(node.ports, bases)


def _dedupe(text: str) -> str:
    """Flows that several ports install the same (ct_state=+trk+inv drops) once."""
    return "".join(dict.fromkeys(text.splitlines(keepends=True)))


DRIVER = OvsFirewall()
