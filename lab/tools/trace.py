"""`lab trace`: the hop-by-hop path of a packet, the way the seed articles draw it.

1. The expected path comes from the plan: the instance's eth0, the hops of its port's plug
   (its node's firewall driver says which: lab/core/plugs/), br-int, the physical or tunnel
   bridge, the NIC, the wire, the next node..., through the router's qr-/qg- ports (with NAT
   changing the addresses) when the packet is routed.
2. Each OVS hop is explained by `ofproto/trace` on that node (the tables and flows that
   decided), each iptables hop by the rules whose counters moved, each NAT hop likewise.
3. Real traffic is sent while tcpdump watches every interface on the path, so every hop shows
   expected vs seen. A packet that vanishes is pinned to the last hop that saw it and to what
   dropped it there.
"""

from __future__ import annotations

import re
import sys
from dataclasses import asdict, dataclass, field

from lab.runtime import gateway, ovs
from lab.core import naming, plugs
from lab.tools import flows, packets, trace_dvr
from lab.tools.checks import Capture, new_probe, probe_icmp, probe_tcp
from lab.tools.packets import Packet, Probe
from lab.errors import LabStateError
from lab.core.plan import NodePlan, Plan
from lab.core.scenario import Check


UNPROVEN_SEEN = "not seen, unproven"   # a hop whose capture could not watch (did not start, lost packets)


@dataclass
class Hop:
    where: str                       # what a person calls this hop
    kind: str                        # nic | iptables | ovs | wire | nat | route (DVR: policy routing, no capture)
    expected: str                    # the packet we expect there
    netns: str = ""
    iface: str | None = None         # where tcpdump watches (nic and wire hops)
    src: str = ""                    # the address pair expected at this hop (NAT changes it)
    dst: str = ""
    seen: str = ""
    explain: list[str] = field(default_factory=list)
    ok: bool | None = None           # None: nothing to observe directly (explained only)


@dataclass
class Endpoint:
    name: str
    kind: str                        # instance | external-host
    netns: str
    ip: str
    mac: str
    node: NodePlan | None = None     # instances only
    port: object = None              # InstancePort
    network: str = ""


@dataclass
class Trace:
    src: str
    dst: str
    proto: str
    hops: list[Hop]
    reached: bool
    probe: str
    verdict: str
    ovs_traces: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"from": self.src, "to": self.dst, "proto": self.proto, "reached": self.reached,
                "probe": self.probe, "verdict": self.verdict, "hops": [asdict(h) for h in self.hops]}


# --------------------------------------------------------------------------- the expected path

class PathBuilder:
    def __init__(self, plan: Plan):
        self.plan = plan
        self.hops: list[Hop] = []
        self.src_ip = ""
        self.dst_ip = ""
        self.ovs_entries: list[tuple[NodePlan, str, dict]] = []   # (node, bridge, flow fields)
        self.chains: dict[int, tuple[str, ...]] = {}              # id(iptables hop) -> its chains

    def add(self, where: str, kind: str, netns: str = "", iface: str | None = None, note: str = "") -> None:
        expected = f"{self.src_ip} > {self.dst_ip}" + (f" ({note})" if note else "")
        self.hops.append(Hop(where, kind, expected, netns, iface, self.src_ip, self.dst_ip))

    def segment_note(self, network: str) -> str:
        net = next(n for n in self.plan_networks() if n[0] == network)
        _, ntype, seg = net
        return {"vlan": f"VLAN {seg}", "flat": "untagged", "vxlan": f"VXLAN VNI {seg}",
                "gre": f"GRE key {seg}"}[ntype]

    def plan_networks(self):
        out = {}
        for n in self.plan.nodes:
            for p in n.ports:
                out[p.network] = (p.network, p.network_type, p.segmentation_id)
            for tn in n.tunnel_networks:
                out[tn.network] = (tn.network, tn.type, tn.segmentation_id)
            for b in n.physical_bridges:
                for net, _, seg in b.vlan_translations:
                    out.setdefault(net, (net, "vlan" if seg is not None else "flat", seg))
        return list(out.values())

    def lvid(self, node: NodePlan, network: str) -> int | None:
        return dict(node.local_vlans).get(network)

    def plug_hops(self, e: Endpoint, direction: str) -> None:
        """The hops between the instance's eth0 and br-int, as its firewall driver plugs it."""
        for h in plugs.driver(e.port.plug.driver).trace_hops(e.port, direction):
            self.add(f"{e.node.name} {h.label}", h.kind, h.netns, h.iface,
                     note=f"chain {h.chains[0]}" if h.chains else "")
            if h.chains:
                self.chains[id(self.hops[-1])] = h.chains

    def instance_out(self, e: Endpoint, dl_dst: str) -> None:
        p, n = e.port, e.node
        self.add(f"{e.name} eth0", "nic", e.netns, "eth0")
        self.plug_hops(e, "egress")
        self.add(f"{n.name} br-int", "ovs", n.netns, note=f"local VLAN {p.local_vlan}")
        self.ovs_entries.append((n, "br-int", {"in_port": p.ovs_port, "dl_src": p.mac, "dl_dst": dl_dst}))

    def instance_in(self, e: Endpoint) -> None:
        self.plug_hops(e, "ingress")
        self.add(f"{e.name} eth0", "nic", e.netns, "eth0")

    def into_br_int(self, node: NodePlan, port, dl_dst: str) -> None:
        """A frame to DL_DST from an agent's port (qr-, qg-, sg-, fg-: its tap on NODE's br-int)."""
        self.ovs_entries.append((node, "br-int", {"in_port": port.ovs_dev, "dl_src": port.mac, "dl_dst": dl_dst}))
        self.add(f"{node.name} br-int", "ovs", node.netns, note=f"local VLAN {port.local_vlan}")

    def after_dnat(self, router, x: NodePlan, dst: Endpoint, nat: str):
        """DNAT in ROUTER (on node X; NAT: how the hop reads) to DST, out of its qr- on DST's
        network into br-int; that qr- port."""
        self.add(f"{router.name} NAT", "nat", router.netns, note=nat)
        self.dst_ip = dst.ip
        qr_out = next(i for i in router.interfaces if i.network == dst.network)
        self.add(f"{router.name} {qr_out.ns_dev}", "nic", router.netns, qr_out.ns_dev, note="after DNAT")
        self.into_br_int(x, qr_out, dst.mac)
        return qr_out

    def external_in(self, src: Endpoint, x: NodePlan, gw) -> None:
        """From external host SRC over its wire into node X's physical bridge and br-int, to
        GW (the qg- or fg- port that answers for the floating IP)."""
        plan = self.plan
        self.add(f"{src.name} eth0", "nic", src.netns, "eth0")
        ext_wire = plan.wire(next(h.wire for h in plan.external_hosts if h.name == src.name))
        member = next(m for m in ext_wire.members if m.name == src.name)
        self.add(f"wire {ext_wire.name} (from {src.name})", "wire", ext_wire.netns, member.wire_ifname)
        pb = next(p for p in x.physical_bridges if p.physical_network == ext_wire.name)
        self.add(f"{x.name} {pb.nic}", "nic", x.netns, pb.nic)
        self.add(f"{x.name} {pb.bridge} -> br-int", "ovs", x.netns, note=f"local VLAN {gw.local_vlan}")
        self.ovs_entries.append((x, pb.bridge, {"in_port": pb.nic, "dl_src": src.mac, "dl_dst": gw.mac}))

    def external_out(self, x: NodePlan, gw, dst: Endpoint) -> None:
        """From GW (qg- or fg-) on node X through br-int, the physical bridge and the external
        wire, to DST (an external host, or an address beyond the wire)."""
        self.into_br_int(x, gw, dst.mac if dst.kind == "external-host" else "")
        pb = next(p for p in x.physical_bridges for net, _, _ in p.vlan_translations if net == gw.network)
        self.add(f"{x.name} {pb.bridge}", "ovs", x.netns, note="untagged" if dict(
            (n, s) for n, _, s in pb.vlan_translations).get(gw.network) is None else "")
        self.add(f"{x.name} {pb.nic}", "nic", x.netns, pb.nic)
        wire = self.plan.wire(pb.physical_network)
        member = next(m for m in wire.members if m.name == x.name)
        self.add(f"wire {wire.name} (from {x.name})", "wire", wire.netns, member.wire_ifname)
        if dst.kind == "external-host":
            self.add(f"{dst.name} eth0", "nic", dst.netns, "eth0")

    def node_to_node(self, a: NodePlan, b: NodePlan, network: str, dl_src: str, dl_dst: str,
                     dvr: tuple[str, str] = ("", "")) -> None:
        """From br-int of A over the network's wire to br-int of B. DVR: what A's bridge and
        B's br-int do to the source MAC (notes on those hops)."""
        note = self.segment_note(network) + (f"; {dvr[0]}" if dvr[0] else "")
        tunnel = next((tn for tn in a.tunnel_networks if tn.network == network), None)
        if tunnel:
            wire, nic_a, bridge = a.tunnel.wire, a.tunnel.nic, "br-tun"
            nic_b = b.tunnel.nic
            port_in = next(p.name for p in b.tunnel.ports if p.remote_node == a.name and p.type == tunnel.type)
            entry = {"in_port": port_in, "tun_id": hex(tunnel.segmentation_id), "dl_src": dl_src, "dl_dst": dl_dst}
        else:
            pb = next(pb for pb in a.physical_bridges for net, _, _ in pb.vlan_translations if net == network)
            pb_b = next(x for x in b.physical_bridges if x.physical_network == pb.physical_network)
            wire, nic_a, bridge, nic_b = pb.physical_network, pb.nic, pb.bridge, pb_b.nic
            seg = next(seg for net, _, seg in pb.vlan_translations if net == network)
            entry = {"in_port": nic_b, "dl_src": dl_src, "dl_dst": dl_dst}
            if seg is not None:
                entry["dl_vlan"] = str(seg)
        self.add(f"{a.name} {bridge}", "ovs", a.netns, note=note)
        self.add(f"{a.name} {nic_a}", "nic", a.netns, nic_a, note=note)
        wire_plan = self.plan.wire(wire)
        member = next(m for m in wire_plan.members if m.name == a.name)
        self.add(f"wire {wire} (from {a.name})", "wire", wire_plan.netns, member.wire_ifname, note=note)
        self.add(f"{b.name} {nic_b}", "nic", b.netns, nic_b, note=note)
        self.add(f"{b.name} {bridge} -> br-int", "ovs", b.netns,
                 note=dvr[1] or f"local VLAN {self.lvid(b, network)}")
        self.ovs_entries.append((b, bridge, entry))


def endpoint(plan: Plan, name: str) -> Endpoint:
    for n in plan.nodes:
        for p in n.ports:
            if p.instance == name:
                return Endpoint(name, "instance", p.netns, p.ip, p.mac, n, p, p.network)
    for h in plan.external_hosts:
        if h.name == name:
            return Endpoint(name, "external-host", h.netns, h.ip, h.mac, network=h.network)
    raise LabStateError(f"lab {plan.lab} has no instance or external host {name!r}")


def build_path(plan: Plan, src_name: str, dst_spec: str) -> tuple[PathBuilder, Endpoint, str]:
    """The hops a packet from SRC_NAME to DST_SPEC (an instance, an external host, or an
    address: an instance's, an external host's, a floating IP) should take; the destination
    endpoint and the address the probe is sent to."""
    src = endpoint(plan, src_name)
    dst, dst_ip, via_fip = _destination(plan, src, dst_spec)
    b = PathBuilder(plan)
    b.src_ip, b.dst_ip = src.ip, dst_ip
    if src.kind == "instance" and dst.kind == "instance" and src.network == dst.network and not via_fip:
        _same_network(b, src, dst)
    elif src.kind == "instance":
        _routed(b, src, dst, dst_spec, via_fip)
    else:
        _in_through_floating_ip(b, src, dst, dst_spec, via_fip)
        return b, dst, via_fip
    return b, dst, dst_ip


def _destination(plan: Plan, src: Endpoint, dst_spec: str) -> tuple[Endpoint, str, str | None]:
    """(endpoint, address, floating IP or None) of DST_SPEC: an endpoint's name, or an address
    (an instance's on the sender's network, a floating IP, an external host's)."""
    dst, dst_ip, via_fip = None, dst_spec, None
    if dst_spec in plan.targets():
        dst = endpoint(plan, dst_spec)
        dst_ip = dst.ip
    else:
        for p in plan.ports:
            if dst_spec == p.ip and (src.kind != "instance" or p.network == src.network):
                dst = endpoint(plan, p.instance)
            if dst_spec == p.floating_ip:
                dst, via_fip = endpoint(plan, p.instance), p.floating_ip
        for h in plan.external_hosts:
            if dst_spec == h.ip:
                dst = endpoint(plan, h.name)
    if dst is None:
        raise LabStateError(f"nothing in lab {plan.lab} answers at {dst_spec}")
    return dst, dst_ip, via_fip


def _routers_by_network(plan: Plan) -> dict:
    """The router of each network; the instance of it that routes a packet is the one serving
    the sender's node (legacy: its only instance)."""
    return {i.network: r for r in plan.routers for inst in r.instances for i in inst.interfaces}


def _same_network(b: PathBuilder, src: Endpoint, dst: Endpoint) -> None:
    b.instance_out(src, dst.mac)
    if src.node.name != dst.node.name:
        b.node_to_node(src.node, dst.node, src.network, src.mac, dst.mac)
    b.instance_in(dst)


def _routed(b: PathBuilder, src: Endpoint, dst: Endpoint, dst_spec: str, via_fip: str | None) -> None:
    """From instance SRC into its network's router, then to an instance on another network, or
    out to the external network (SNAT to the floating IP, or to the router's gateway address)."""
    plan, router_of = b.plan, _routers_by_network(b.plan)
    if src.network not in router_of:
        raise LabStateError(f"{src.name}'s network {src.network} has no router: {dst_spec} is unreachable")
    router = router_of[src.network].serving(src.node.name)
    x = plan.node(router.node)
    qr_in = next(i for i in router.interfaces if i.network == src.network)
    b.instance_out(src, qr_in.mac)
    if x.name != src.node.name:     # DVR: the router is on the sender's own node
        b.node_to_node(src.node, x, src.network, src.mac, qr_in.mac)
    b.add(f"{router.name} {qr_in.ns_dev}", "nic", router.netns, qr_in.ns_dev)
    if dst.kind == "instance" and not via_fip:
        _between_networks(b, router, x, qr_in, dst)
    elif router.role == "dvr_local":      # DVR: through this node's fip-, or the network node's snat-
        trace_dvr.out(b, plan, router, src, dst, x, qr_in)
    else:
        _snat_out(b, router, x, src, dst)


def _between_networks(b: PathBuilder, router, x: NodePlan, qr_in, dst: Endpoint) -> None:
    """ROUTER (on node X) routes from QR_IN out of its qr- on DST's network, no NAT."""
    qr_out = next((i for i in router.interfaces if i.network == dst.network), None)
    if qr_out is None:
        raise LabStateError(f"router {router.name} has no interface on {dst.network}")
    b.add(f"{router.name} routing {qr_in.ns_dev} -> {qr_out.ns_dev}", "nat", router.netns, note="no NAT")
    b.add(f"{router.name} {qr_out.ns_dev}", "nic", router.netns, qr_out.ns_dev)
    b.into_br_int(x, qr_out, dst.mac)
    if x.name != dst.node.name:
        wire_src, notes = _dvr_rewrite(x, dst.node, qr_out) if router.role == "dvr_local" \
            else (qr_out.mac, ("", ""))
        b.node_to_node(x, dst.node, dst.network, wire_src, dst.mac, notes)
    b.instance_in(dst)


def _snat_out(b: PathBuilder, router, x: NodePlan, src: Endpoint, dst: Endpoint) -> None:
    """A legacy ROUTER (on node X) sends SRC's packet out of qg-: SNAT to SRC's floating IP,
    or to the gateway address."""
    gw = router.gateway
    if gw is None:
        raise LabStateError(f"router {router.name} has no external gateway")
    b.add(f"{router.name} NAT", "nat", router.netns, note="SNAT")
    b.src_ip = src.port.floating_ip or gw.ip
    b.add(f"{router.name} {gw.ns_dev}", "nic", router.netns, gw.ns_dev, note="after SNAT")
    b.external_out(x, gw, dst)


def _in_through_floating_ip(b: PathBuilder, src: Endpoint, dst: Endpoint, dst_spec: str,
                            via_fip: str | None) -> None:
    """From external host SRC to DST's floating IP: into the router serving DST's node, DNAT."""
    if not via_fip:
        raise LabStateError(f"from {src.name}, only floating IPs are reachable (not {dst_spec})")
    plan = b.plan
    router = _routers_by_network(plan)[dst.network].serving(dst.node.name)
    x = plan.node(router.node)
    if router.role == "dvr_local":      # DVR: in through the instance's node's fip-
        trace_dvr.fip_in(b, plan, router, src, dst, x)
        return
    gw = router.gateway
    b.external_in(src, x, gw)
    b.add(f"{router.name} {gw.ns_dev}", "nic", router.netns, gw.ns_dev)
    qr_out = b.after_dnat(router, x, dst, "DNAT")
    b.node_to_node(x, dst.node, dst.network, qr_out.mac, dst.mac)
    b.instance_in(dst)


def _dvr_rewrite(x: NodePlan, y: NodePlan, qr) -> tuple[str, tuple[str, str]]:
    """DVR: the routed frame leaves X with X's DVR MAC (physical bridge table 1,
    DVR_PROCESS_PHYSICAL) and Y's br-int gives it the gateway MAC back (table 0 prio 4 ->
    table 2, DVR_TO_SRC_MAC_PHYSICAL -> table 60 straight to the port)."""
    return x.dvr_mac, (f"source {qr.mac} -> {x.name}'s DVR MAC {x.dvr_mac} (table 1)",
                       f"from DVR MAC {x.dvr_mac}: table 2 sets source {qr.mac} (gateway of {qr.network}), "
                       "table 60 outputs to the port")


# --------------------------------------------------------------------------- explanations

def ofproto_trace(node: NodePlan, bridge: str, fields: dict, proto: str, src_ip: str, dst_ip: str) -> str:
    flow = [f"in_port={fields['in_port']}"]
    if "tun_id" in fields:
        flow.append(f"tun_id={fields['tun_id']}")
    if fields.get("dl_vlan"):
        flow.append(f"dl_vlan={fields['dl_vlan']}")
    kind = {"icmp": "icmp", "tcp": "tcp", "udp": "udp"}[proto]
    flow.insert(0, kind)
    if fields.get("dl_src"):
        flow.append(f"dl_src={fields['dl_src']}")
    if fields.get("dl_dst"):
        flow.append(f"dl_dst={fields['dl_dst']}")
    flow += [f"nw_src={src_ip}", f"nw_dst={dst_ip}", "nw_ttl=64"]
    out = gateway.run(["ovs-appctl", "ofproto/trace", bridge, ",".join(flow)], env=ovs.env(node.rundir),
                      check=False)
    return out.stdout + out.stderr


def summarize_ofproto(text: str) -> list[str]:
    """'br-int: table 60 (transient) prio 100 [in_port=10] -> ... -> NORMAL' per bridge, then the
    datapath actions. Through ct() recirculation: the pipeline OVS resumes ("thaw") is named
    by the bridge whose ct() froze it, and a 'drop' that only ends a ct() action is left out,
    so the pass that decides (e.g. table 82 prio 40 -> table 93) is the one that says drop."""
    lines, current, steps, frozen = [], None, [], None

    def flush() -> None:
        if current and steps:
            lines.append(f"{current}: " + " -> ".join(steps))
    for raw in text.splitlines():
        m = re.match(r'^bridge\("([^"]+)"\)', raw)
        if m or "Resuming from table" in raw:
            flush()
            current, steps = (m.group(1) if m else frozen or current), []
            continue
        m = re.match(r"^\s*(\d+)\. (?:(.*?), )?priority (\d+)", raw)   # a flow may match on nothing
        if m and current:
            name = flows.table_name(current, int(m.group(1)))
            steps.append(f"table {m.group(1)}" + (f" ({name})" if name else "") + f" prio {m.group(3)}"
                         + (f" [{m.group(2)}]" if m.group(2) else ""))
            continue
        m = re.match(r"^\s+(NORMAL|drop|output:.*|set_field:\d+->vlan_vid|mod_vlan_vid:\d+|strip_vlan|pop_vlan|ct\(.*\))\s*$", raw)
        if m and current:
            if m.group(1) == "drop" and steps and steps[-1].startswith("ct("):
                continue        # the end of a ct() action, not a verdict
            if m.group(1).startswith("ct("):
                frozen = current
            steps.append(m.group(1))
            continue
        m = re.match(r"^\s+-> (.*)$", raw)
        if m and current and steps and not steps[-1].startswith("ct("):
            steps[-1] += f" ({m.group(1)})"
        if raw.startswith("Datapath actions:"):
            flush()
            current = None
            lines.append(raw.strip())
    flush()
    return lines


def _zero(netns: str, table: str, chains: list[str]) -> None:
    for chain in chains:
        gateway.run(["iptables", "-w", "5", "-t", table, "-Z", chain], netns=netns, check=False)


def _counted(netns: str, table: str, chain: str) -> list[str]:
    """The rules of CHAIN whose counters moved, as `iptables -S` writes them."""
    out = gateway.run(["iptables", "-w", "5", "-t", table, "-S", chain, "-v"], netns=netns, check=False).stdout
    hits = []
    for number, line in enumerate((ln for ln in out.splitlines() if ln.startswith("-A ")), start=1):
        m = re.search(r" -c (\d+) \d+", line)
        if m and int(m.group(1)) > 0:
            rule = re.sub(r" -c \d+ \d+", "", line)
            hits.append(f"{m.group(1)} pkts  rule {number}: {rule}")
    return hits


# --------------------------------------------------------------------------- running it

def trace(plan: Plan, src: str, dst: str, proto: str = "icmp") -> Trace:
    kind, _, port = proto.partition(":")
    if kind not in ("icmp", "tcp", "udp") or (kind != "icmp" and not port.isdigit()):
        raise LabStateError(f"--proto must be icmp, tcp:PORT or udp:PORT, not {proto!r}")
    builder, dst_ep, target_ip = build_path(plan, src, dst)
    hops = builder.hops
    src_ep = endpoint(plan, src)

    # iptables / NAT chains whose counters will tell which rule decided
    counters: list[tuple[Hop, str, str, list[str]]] = []
    for hop in hops:
        if hop.kind == "iptables":
            counters.append((hop, hop.netns, "filter", list(builder.chains.get(id(hop), ()))))
        elif hop.kind == "nat":
            counters.append((hop, hop.netns, "nat", [f"{naming.L3_WRAP}-{c}" for c in
                                                     ("PREROUTING", "OUTPUT", "float-snat", "snat")]))
    for _, netns, table, chains in counters:
        _zero(netns, table, chains)

    gateway.run(["ip", "neigh", "flush", "dev", "eth0"], netns=src_ep.netns, check=False)
    probe = new_probe(kind, int(port) if port else None)
    captures = [(h, Capture(h.where, h.netns, h.iface, inbound=False)) for h in hops if h.iface]
    started = []
    try:
        for _, cap in captures:
            started.append(cap)
            cap.start()              # one that does not start says so at its hop
        check = Check(f"trace {src} -> {dst}", src, target_ip, kind if kind != "udp" else "icmp",
                      int(port) if port else None, "reach", (), 0)
        if kind == "icmp":
            reached, probe_text = probe_icmp(plan, check, target_ip, probe)
        elif kind == "tcp":
            reached, probe_text = probe_tcp(plan, check, target_ip, probe)
        else:
            reached, probe_text = _probe_udp(src_ep, target_ip, probe)
        for cap in started:
            if cap.error is None:
                cap.settle()
    finally:
        for cap in started:
            cap.stop()

    for hop, cap in captures:
        observe(hop, cap.packets, cap.problem(), probe)
    for hop, netns, table, chains in counters:
        found = []
        for chain in chains:
            found += _counted(netns, table, chain)
        hop.explain += found or ["no rule counted a packet"]
        hop.seen = "rules matched" if found else "nothing matched"
    # OVS: explain the first OVS hop of each node entry with ofproto/trace
    ovs_texts = {}
    ovs_hops = [h for h in hops if h.kind == "ovs"]
    for (node, bridge, fields), hop in zip(builder.ovs_entries, _entry_hops(ovs_hops, builder.ovs_entries)):
        text = ofproto_trace(node, bridge, fields, kind, hop.src, hop.dst)
        ovs_texts[f"{node.name} {bridge} {fields['in_port']}"] = text
        hop.explain += summarize_ofproto(text)
        hop.seen = "traced"

    for hop in ovs_hops:
        if not hop.explain:
            hop.seen = "traced above"
    verdict = _verdict(hops, reached)
    return Trace(src, dst, proto, hops, reached, probe_text, verdict, ovs_texts)


def observe(hop: Hop, frames: list[Packet], problem: str | None, probe: Probe) -> None:
    """What a hop's capture saw: the probe's packets going from hop.src to hop.dst (the
    addresses NAT gives them there), in the frame itself or tunnelled in it."""
    flows = packets.learn_flows(frames, probe)

    def forward(layer: Packet) -> bool:
        return packets.is_probe(layer, probe, hop.src, hop.dst, both_ways=False, flows=flows)
    hits = [f for f in frames if packets.find_layer(f, forward)]
    hop.ok = bool(hits)
    if hits:
        hop.seen = f"{len(hits)} packet(s)"
        hop.explain.append(packets.summary(hits[0]))
    elif problem:
        hop.seen = UNPROVEN_SEEN
        hop.explain.append(f"unproven: {problem}")
    else:
        hop.seen = "not seen"


def _entry_hops(ovs_hops: list[Hop], entries: list) -> list[Hop]:
    """The OVS hop each ofproto/trace entry explains: the first OVS hop on that node after the
    previous entry's."""
    out, start = [], 0
    for node, _, _ in entries:
        for i in range(start, len(ovs_hops)):
            if ovs_hops[i].netns == node.netns:
                out.append(ovs_hops[i])
                start = i + 1
                break
        else:
            out.append(Hop("?", "ovs", ""))
    return out


def _verdict(hops: list[Hop], reached: bool) -> str:
    observed = [h for h in hops if h.ok is not None]
    if reached and all(h.ok for h in observed):
        return "delivered: every hop saw the packet"
    last = None
    for h in hops:
        if h.ok:
            last = h
        elif h.ok is False:
            break
    if last is None:
        return "not delivered: no hop saw the packet (is the source up?)"
    idx = hops.index(last)
    blame = []
    for h in hops[idx + 1:]:
        if h.kind == "iptables":
            drops = [e for e in h.explain if "-j DROP" in e]
            blame.append(f"{h.where}: " + ("; ".join(drops) if drops else "; ".join(h.explain)))
            break
        if h.kind == "ovs":
            drops = [e for e in h.explain if "drop" in e]
            blame.append(f"{h.where}: " + ("; ".join(drops) if drops else "; ".join(h.explain[-1:])))
            break
        if h.ok is False:
            break
    state = "delivered, but" if reached else "not delivered:"
    return f"{state} last seen at {last.where}" + (f"; dropped by {blame[0]}" if blame else "") \
        + _unwatched(hops[idx + 1:])


def _unwatched(after: list[Hop]) -> str:
    """Why the next hop's "not seen" proves nothing, when its capture could not watch."""
    nxt = next((h for h in after if h.ok is False), None)
    if nxt is None or nxt.seen != UNPROVEN_SEEN:
        return ""
    return f" (unproven: the capture at {nxt.where}: {nxt.explain[-1].removeprefix('unproven: ')})"


def _probe_udp(src: Endpoint, dst_ip: str, probe: Probe) -> tuple[bool, str]:
    out = gateway.run([sys.executable, "-m", "lab.tools.tcpprobe", "udp", "--host", dst_ip, "--port",
                       str(probe.dport), "--sport", str(probe.sport), "--token", probe.token.hex()],
                      netns=src.netns, check=False)
    return out.returncode == 0, (out.stdout.strip() or out.stderr.strip())[:200]


def render_table(t: Trace) -> str:
    rows = [("hop", "expected", "seen")] + [(h.where, h.expected, h.seen) for h in t.hops]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    out = [f"trace {t.src} -> {t.dst} ({t.proto}): {t.probe}", ""]
    out.append("  ".join(rows[0][i].ljust(widths[i]) for i in range(3)))
    out.append("  ".join("-" * w for w in widths))
    for h, row in zip(t.hops, rows[1:]):
        mark = {True: "", False: "  <-- not seen", None: ""}[h.ok]
        out.append("  ".join(row[i].ljust(widths[i]) for i in range(3)).rstrip() + mark)
        for e in h.explain:
            out.append(f"      {e}")
    out += ["", t.verdict]
    return "\n".join(out)
