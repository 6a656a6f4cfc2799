"""Plan -> the files and transactions each node gets. Pure (jinja2 templates in templates/).

Per node: one OVSDB transaction (as ovs-vsctl arguments), one flow file per bridge (for
``ovs-ofctl --bundle replace-flows``) and one iptables-restore file. The golden-file tests pin
all of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import ipaddress

import jinja2

from lab.core import ipsets, metadata, naming, plugs
from lab.paths import data_dir
from lab.core.plan import DhcpPlan, InstancePort, NamespacePort, NodePlan, Plan, RouterInstance

@dataclass(frozen=True)
class DhcpRender:
    files: dict[str, str]           # file name (in DhcpPlan.dir) -> content
    argv: tuple[str, ...]           # the dnsmasq command, as the dhcp agent runs it


@dataclass(frozen=True)
class NodeRender:
    node: str
    ovsdb: tuple[str, ...]          # ovs-vsctl arguments of the node's one transaction
    flows: dict[str, str]           # bridge -> flow file text
    iptables: str                   # iptables-restore input
    ipset: str = ""                 # ipset restore input, applied before iptables (lab/core/ipsets.py)
    routers: dict[str, str] = field(default_factory=dict)          # router instance -> iptables-restore input
    dhcp: dict[str, DhcpRender] = field(default_factory=dict)      # DHCP server -> files and argv
    fips: dict[str, str] = field(default_factory=dict)             # DVR fip- namespace -> iptables-restore input


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

    bridge(naming.BR_INT)
    if node.tunnel:
        t = node.tunnel
        bridge(naming.BR_TUN)
        cmd("--may-exist", "add-port", naming.BR_INT, naming.PATCH_TUN)
        cmd("set", "Interface", naming.PATCH_TUN, "type=patch", f"options:peer={naming.PATCH_INT}")
        cmd("set", "Port", naming.PATCH_TUN, mark)
        cmd("--may-exist", "add-port", naming.BR_TUN, naming.PATCH_INT)
        cmd("set", "Interface", naming.PATCH_INT, "type=patch", f"options:peer={naming.PATCH_TUN}")
        cmd("set", "Port", naming.PATCH_INT, mark)
        for p in t.ports:
            cmd("--may-exist", "add-port", naming.BR_TUN, p.name)
            cmd("set", "Interface", p.name, f"type={p.type}", f"options:remote_ip={p.remote_ip}",
                f"options:local_ip={t.local_ip}", "options:in_key=flow", "options:out_key=flow",
                "options:df_default=true", "options:egress_pkt_mark=0")
            cmd("set", "Port", p.name, mark)
        if t.bridge:
            # userspace tunnelling: the endpoint address lives on this bridge's internal port
            cmd("--may-exist", "add-br", t.bridge)
            cmd("set", "Bridge", t.bridge, f"datapath_type={plan.datapath}", "other_config:disable-in-band=true", mark)
            cmd("--may-exist", "add-port", t.bridge, t.nic)
            cmd("set", "Port", t.nic, mark)
    for b in node.physical_bridges:
        bridge(b.bridge)
        cmd("--may-exist", "add-port", b.bridge, b.nic)
        cmd("set", "Port", b.nic, mark)
        cmd("--may-exist", "add-port", naming.BR_INT, b.int_patch)
        cmd("set", "Interface", b.int_patch, "type=patch", f"options:peer={b.phy_patch}")
        cmd("set", "Port", b.int_patch, mark)
        cmd("--may-exist", "add-port", b.bridge, b.phy_patch)
        cmd("set", "Interface", b.phy_patch, "type=patch", f"options:peer={b.int_patch}")
        cmd("set", "Port", b.phy_patch, mark)
    plug = plugs.driver(node.firewall_driver)
    for port in _namespace_ports(plan, node):
        cmd("--may-exist", "add-port", naming.BR_INT, port.ovs_dev)
        cmd("set", "Port", port.ovs_dev, f"tag={port.local_vlan}", mark,
            f"other_config:net_uuid={naming.object_uuid(plan.lab, 'network', port.network)}",
            f"other_config:network_type={port.network_type}",
            f"other_config:physical_network={port.physical_network or 'None'}",
            f"other_config:segmentation_id={'None' if port.segmentation_id is None else port.segmentation_id}",
            f"other_config:tag={port.local_vlan}")
        cmd("set", "Interface", port.ovs_dev, f"external_ids:iface-id={port.port_id}",
            "external_ids:iface-status=active", f'external_ids:attached-mac="{port.mac}"',
            *plug.interface_columns(plan, node, port.ovs_dev))
    for p in node.ports:
        net_uuid = naming.object_uuid(plan.lab, "network", p.network)
        vm_uuid = naming.object_uuid(plan.lab, "instance", p.instance)
        seg = "None" if p.segmentation_id is None else str(p.segmentation_id)
        cmd("--may-exist", "add-port", naming.BR_INT, p.ovs_port)
        cmd("set", "Port", p.ovs_port, f"tag={p.local_vlan}", mark,
            f"other_config:net_uuid={net_uuid}", f"other_config:network_type={p.network_type}",
            f"other_config:physical_network={p.physical_network if p.network_type in ('vlan', 'flat') else 'None'}",
            f"other_config:segmentation_id={seg}", f"other_config:tag={p.local_vlan}")
        cmd("set", "Interface", p.ovs_port, f"external_ids:iface-id={p.port_id}",
            "external_ids:iface-status=active", f'external_ids:attached-mac="{p.mac}"',
            f"external_ids:vm-uuid={vm_uuid}", *plug.interface_columns(plan, node, p.ovs_port))
    return tuple(args)


def _namespace_ports(plan: Plan, node: NodePlan) -> list[NamespacePort]:
    """Ports of the node's DHCP servers and router instances, in the order their VLANs were
    allocated."""
    return ([d.port for d in node.dhcp_servers] + [p for r in plan.routers_on(node.name) for p in r.ports]
            + [f.gateway for f in plan.fips_on(node.name)])


def router_rules(plan: Plan, router: RouterInstance) -> str:
    """The l3 agent's iptables of one router instance (legacy: NAT and floating IPs)."""
    template = "dvr-snat.rules.j2" if router.role == "dvr_snat" else "l3-agent.rules.j2"
    return render_template(template, lab=plan.lab, router=router,
                           router_id=plan.router(router.router).router_id, wrap=naming.L3_WRAP,
                           qr_any=naming.QR + "+", metadata_port=metadata.METADATA_PORT,
                           metadata_mark=metadata.METADATA_MARK)


DHCP_LEASE_SECONDS = 86400


def dhcp_files(dhcp: DhcpPlan) -> dict[str, str]:
    return {"host": render_template("dnsmasq-hosts.j2", dhcp=dhcp),
            "opts": render_template("dnsmasq-opts.j2", dhcp=dhcp),
            "addn_hosts": "".join(f"{h.ip}\t{h.hostname}.openstacklocal {h.hostname}\n" for h in dhcp.hosts),
            "leases": ""}


def dnsmasq_argv(dhcp: DhcpPlan) -> tuple[str, ...]:
    """dnsmasq as the dhcp agent starts it (static leases only: hosts outside the file get
    nothing), with the MTU option Neutron adds for the network."""
    net = ipaddress.ip_network(dhcp.cidr)
    d = dhcp.dir
    return ("dnsmasq", "--no-hosts", "--no-resolv", "--except-interface=lo",
            f"--pid-file={d}/{naming.DHCP_PIDFILE}", f"--dhcp-hostsfile={d}/host", f"--addn-hosts={d}/addn_hosts",
            f"--dhcp-optsfile={d}/opts", f"--dhcp-leasefile={d}/leases", "--dhcp-match=set:ipxe,175",
            "--local-service", "--bind-dynamic", f"--interface={dhcp.port.ns_dev}",
            f"--dhcp-range=set:subnet-{dhcp.subnet_id},{net.network_address},static,{net.netmask},"
            f"{DHCP_LEASE_SECONDS}s",
            f"--dhcp-option-force=option:mtu,{dhcp.mtu}", f"--dhcp-lease-max={net.num_addresses}",
            "--conf-file=/dev/null", "--domain=openstacklocal", "--user=root", "--group=root",
            f"--log-facility={d}/dnsmasq.log", "--log-dhcp")


def udhcpc_script() -> str:
    return render_template("udhcpc.script.j2")


def iptables_rules(plan: Plan, node: NodePlan) -> str:
    """The node's firewall rules, from its firewall driver ("" when it keeps none)."""
    return plugs.driver(node.firewall_driver).firewall_rules(plan, node)


def render_node(plan: Plan, node: NodePlan) -> NodeRender:
    plug = plugs.driver(node.firewall_driver)
    others = plan.other_dvr_macs(node.name)
    flows = {naming.BR_INT: render_template("br-int.flows.j2", node=node, cookie=plan.cookie, other_dvr_macs=others,
                                            antispoof=not plug.provides_arp_spoofing_protection)
             + plug.br_int_flows(plan, node)}
    for b in node.physical_bridges:
        flows[b.bridge] = render_template(
            "physical-bridge.flows.j2", bridge=b, cookie=plan.cookie, dvr_mac=node.dvr_mac, other_dvr_macs=others,
            interfaces=[q for q in node.dvr_interfaces if q.bridge == b.bridge])
    if node.tunnel:
        flows[naming.BR_TUN] = render_template(
            "br-tun.flows.j2", tunnel=node.tunnel, networks=node.tunnel_networks, cookie=plan.cookie,
            arp_responder=plan.arp_responder, dvr_mac=node.dvr_mac, other_dvr_macs=others,
            interfaces=[q for q in node.dvr_interfaces if q.network_type not in ("vlan", "flat")],
            hexmac=lambda mac: "0x" + mac.replace(":", ""),
            hexip=lambda ip: "%#x" % int(ipaddress.IPv4Address(ip)))
    return NodeRender(node=node.name, ovsdb=ovsdb_transaction(plan, node), flows=flows,
                      iptables=iptables_rules(plan, node), ipset=ipsets.restore_input(node, plug.iptables),
                      routers={r.name: router_rules(plan, r) for r in plan.routers_on(node.name)},
                      dhcp={d.name: DhcpRender(dhcp_files(d), dnsmasq_argv(d)) for d in node.dhcp_servers},
                      fips={f.name: render_template("dvr-fip.rules.j2", lab=plan.lab, fip=f, wrap=naming.L3_WRAP)
                            for f in plan.fips_on(node.name)})


def render_plan(plan: Plan) -> dict[str, NodeRender]:
    return {n.name: render_node(plan, n) for n in plan.nodes}


def _plug_bridges(p: InstancePort) -> list[str]:
    """A line for each Linux bridge of a port's plug, with the devices on either side of it."""
    devices = p.plug.devices
    lines = []
    for i, d in enumerate(devices):
        if d.kind != "bridge":
            continue
        members = [x.name for x in (devices[i - 1] if i else None, devices[i + 1] if i + 1 < len(devices) else None)
                   if x is not None]
        lines.append(f"  {d.name}  Linux bridge: {', '.join(members)}  (security groups: "
                     f"{', '.join(p.security_groups) or 'none'})")
    return lines


def describe(plan: Plan) -> str:
    """What `lab show` prints: the objects `up` would make, by namespace."""
    lines = [f"lab {plan.lab}  (scenario {plan.scenario_file}, datapath {plan.datapath}, "
             f"flow cookie {plan.cookie})", ""]
    for w in plan.wires:
        lines.append(f"wire {w.name}: netns {w.netns}, Linux bridge {w.bridge}")
        for m in w.members:
            lines.append(f"  {m.wire_ifname} <-> {m.name}:{m.peer_ifname}")
    lines.append("")
    for n in plan.nodes:
        fw = f", firewall_driver {n.firewall_driver}" if n.firewall_driver != plugs.DEFAULT_DRIVER else ""
        lines.append(f"node {n.name} ({n.role}{fw}): netns {n.netns}, OVS run directory {n.rundir}")
        if n.dvr_mac:
            lines.append(f"  DVR MAC {n.dvr_mac}  (OVS agent enable_distributed_routing; "
                         f"L3 agent_mode {n.agent_mode or 'none: no L3 agent'})")
        lines.append("  br-int")
        for p in n.ports:
            lines.append(f"    {p.ovs_port}  tag={p.local_vlan}  ({p.instance}, network {p.network})")
        for b in n.physical_bridges:
            lines.append(f"    {b.int_patch}  patch <-> {b.bridge}:{b.phy_patch}")
        if n.tunnel:
            t = n.tunnel
            lines.append("    patch-tun  patch <-> br-tun:patch-int")
            lines.append(f"  br-tun  (local_ip = {t.local_ip}"
                         + (f" on {t.bridge}, which holds {t.nic})" if t.bridge else f" on {t.nic})"))
            for p in t.ports:
                lines.append(f"    {p.name}  {p.type} to {p.remote_node} ({p.remote_ip})")
            for tn in n.tunnel_networks:
                flood = ", ".join(tn.flood_ports) or "nowhere"
                lines.append(f"    local VLAN {tn.local_vlan} <-> {tn.type} id {tn.segmentation_id}  "
                             f"(network {tn.network}; floods to {flood})")
        for b in n.physical_bridges:
            lines.append(f"  {b.bridge}  (bridge_mappings = {b.physical_network}:{b.bridge})")
            lines.append(f"    {b.nic}  -> wire {b.physical_network}")
            for network, lvid, seg in b.vlan_translations:
                to = f"VLAN {seg}" if seg is not None else "untagged (flat)"
                lines.append(f"    local VLAN {lvid} <-> {to}  (network {network})")
        for p in n.ports:
            lines += _plug_bridges(p)
        for d in n.dhcp_servers:
            lines.append(f"  {d.netns}  ({d.name}): {d.port.ns_dev} {d.port.ip}/{d.port.prefixlen}, "
                         f"dnsmasq for {len(d.hosts)} host(s); {d.port.ovs_dev} on br-int tag={d.port.local_vlan}")
        for r in plan.routers_on(n.name):
            lines.append(f"  {r.netns}  ({r.name})")
            for i in r.ports:
                lines.append(f"    {i.ns_dev} {i.ip}/{i.prefixlen} {i.mac}  network {i.network}; "
                             f"{i.ovs_dev} on br-int tag={i.local_vlan}")
            for f in r.floating_ips:
                lines.append(f"    floating IP {f.address} -> {f.fixed_ip} ({f.instance})")
            if r.neighbours:
                lines.append(f"    {len(r.neighbours)} permanent neighbour entries: "
                             + ", ".join(f"{x.ip} {x.mac} dev {x.dev}" for x in r.neighbours))
            lines += [f"    rule from {x.source} lookup {x.table} priority {x.priority}" for x in r.rules]
            lines += [f"    route {x.destination} via {x.via} dev {x.dev} table {x.table}" for x in r.routes]
            if r.role == "dvr_snat":
                lines.append(f"    route default via {r.external_gateway_ip} dev {r.gateway.ns_dev}")
        for f in plan.fips_on(n.name):
            g = f.gateway
            lines.append(f"  {f.netns}  ({f.name})")
            lines.append(f"    {g.ns_dev} {g.ip}/{g.prefixlen} {g.mac}  network {g.network} (proxy ARP); "
                         f"{g.ovs_dev} on br-int tag={g.local_vlan}")
            for x in f.links:
                lines.append(f"    {x.fpr_dev} {x.fpr_ip}/31 <-> {x.rfp_dev} {x.rfp_ip}/31 in router {x.router}'s "
                             f"qrouter-; rule iif {x.fpr_dev} lookup {x.table}: default via {f.external_gateway_ip}")
            lines += [f"    route {x.address}/32 via {x.via} dev {x.dev}" for x in f.routes]
        lines.append("")
    lines.append("instances")
    for p in plan.ports:
        fip = f", floating IP {p.floating_ip}" if p.floating_ip else ""
        lines.append(f"  {p.instance}: netns {p.netns}, eth0 {p.mac} {p.ip}/{p.prefixlen} mtu {p.mtu} "
                     f"gw {p.gateway} ({p.address}{fip}); on {p.node} via {p.plug.host_device}; port {p.port_id}")
    if plan.external_hosts:
        lines.append("")
        lines.append("external hosts")
        for h in plan.external_hosts:
            lines.append(f"  {h.name}: netns {h.netns}, eth0 {h.mac} {h.ip}/{h.prefixlen} on wire {h.wire}")
    return "\n".join(lines) + "\n"
