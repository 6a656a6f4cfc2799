"""Scenario -> Plan: every object `lab up` will make, named as Neutron names it. Pure.

The plan is the single source of names: runtime, checks, status and exec read names from the
plan (or from its JSON snapshot saved by `up`) and never derive them again.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import types
import typing
from dataclasses import asdict, dataclass

from lab.core import naming, plugs, routers
from lab.core.plugs import Plug
from lab.core.scenario import Network, Scenario

DATAPATHS = ("netdev", "system")


@dataclass(frozen=True)
class PortRule:
    """A security group rule of one port, remote group already expanded to addresses."""

    direction: str                  # ingress | egress
    protocol: str                   # any | icmp | tcp | udp
    port_min: int | None
    port_max: int | None
    remotes: tuple[str, ...]        # CIDRs
    remote_group: str | None = None # the group the remotes are the members of (None: a CIDR rule)
    remote_group_id: str | None = None  # that group's id (its ipset: naming.ipset_name)


@dataclass(frozen=True)
class InstancePort:
    """One instance's port. How it reaches br-int (its devices, its port on br-int) is the
    node's firewall driver's business: ``plug`` (lab/core/plugs/)."""

    instance: str
    node: str
    network: str
    project: str
    port_id: str
    netns: str
    ip: str
    prefixlen: int
    gateway: str
    mac: str
    mtu: int
    local_vlan: int
    segmentation_id: int | None
    network_type: str
    physical_network: str
    plug: Plug
    security_groups: tuple[str, ...]
    rules: tuple[PortRule, ...]
    address: str                    # dhcp | static
    floating_ip: str | None

    @property
    def ovs_port(self) -> str:
        """The port's row on br-int, as its plug names it."""
        return self.plug.ovs_port


@dataclass(frozen=True)
class NamespacePort:
    """A port of a router or DHCP server: a veth whose OVS end (tap...) sits on br-int with
    the network's local VLAN and whose other end (qr-/qg-/ns-...) is in the namespace
    (the OVS interface driver with ovs_use_veth = True)."""

    network: str
    port_id: str
    ovs_dev: str                    # tap... on br-int, in the node namespace
    ns_dev: str                     # qr-... / qg-... / ns-... in the router or DHCP namespace
    ip: str
    prefixlen: int
    mac: str
    mtu: int
    local_vlan: int
    device_owner: str               # network:router_interface / router_gateway / dhcp
    network_type: str = ""
    physical_network: str | None = None     # None on tunnelled networks
    segmentation_id: int | None = None


@dataclass(frozen=True)
class FloatingIP:
    address: str
    fixed_ip: str
    instance: str


@dataclass(frozen=True)
class Neighbour:
    """A permanent neighbour entry in a router namespace (ip neigh add ... nud permanent)."""

    dev: str
    ip: str
    mac: str


@dataclass(frozen=True)
class IpRule:
    """A policy routing rule in a router namespace (ip rule add from SOURCE lookup TABLE
    priority PRIORITY). DVR: the SNAT redirect of each qr- subnet."""

    priority: int
    table: int
    source: str                     # a CIDR


@dataclass(frozen=True)
class TableRoute:
    """A route in a routing table other than main (ip route add DESTINATION via VIA dev DEV
    table TABLE). DVR: the SNAT redirect's default route via the subnet's sg- address."""

    table: int
    destination: str
    via: str
    dev: str


@dataclass(frozen=True)
class RouterInstance:
    """One place a router lives: a namespace on a node with a role (lab/core/routers.py).
    Legacy: qrouter-<router uuid> on a network node, with every port of the router."""

    name: str                           # exec/capture target: router1, or router1@compute1 (several)
    router: str                         # the router's name
    node: str
    role: str                           # legacy, dvr_local, dvr_snat (lab/core/routers.py)
    netns: str
    interfaces: tuple[NamespacePort, ...]
    gateway: NamespacePort | None
    external_gateway_ip: str | None     # the external subnet's gateway: the default route
    floating_ips: tuple[FloatingIP, ...]
    neighbours: tuple[Neighbour, ...] = ()  # dvr_local: every non-router port of its subnets
    rules: tuple[IpRule, ...] = ()          # dvr_local with a gateway: the SNAT redirect
    routes: tuple[TableRoute, ...] = ()     # ... and its tables; with floating IPs, table 16
    fip_link: FipLink | None = None         # dvr_local on a host with an fg- port: rfp- to its fip-

    @property
    def ports(self) -> tuple[NamespacePort, ...]:
        return self.interfaces + ((self.gateway,) if self.gateway else ())


@dataclass(frozen=True)
class RouterPlan:
    """A Neutron router: its identity and its instances (one today: legacy)."""

    name: str
    router_id: str
    project: str
    external_network: str | None
    instances: tuple[RouterInstance, ...]

    def serving(self, node: str) -> RouterInstance:
        """The instance that routes what a port on NODE sends: DVR's instance on that node
        when there is one, else the legacy (centralized) instance."""
        local = next((i for i in self.instances if i.node == node and i.role == "dvr_local"), None)
        return local or next(i for i in self.instances if i.role == "legacy")


@dataclass(frozen=True)
class FipLink:
    """DVR: the veth between a router's qrouter- (rfp-) and its node's fip- (fpr-), a /31 of
    169.254.64.0/18 (rfp- the first address, fpr- the second), a permanent neighbour entry on
    each side; TABLE is the fip- table of this router (the fpr- address as an integer)."""

    router: str
    rfp_dev: str
    fpr_dev: str
    rfp_ip: str
    fpr_ip: str
    rfp_mac: str
    fpr_mac: str
    mtu: int
    table: int


@dataclass(frozen=True)
class FipRoute:
    """In fip-: a floating IP's /32 via the router's rfp- address, out of fpr-."""

    address: str
    via: str
    dev: str


@dataclass(frozen=True)
class FipNamespacePlan:
    """DVR: fip-<external network uuid> on one node, shared by the distributed routers with a
    gateway and a local copy there (floating IP or not): the fg- port on the external network (proxy ARP answers for the floating IPs),
    an rfp-/fpr- veth to each router's qrouter-, a /32 route per floating IP to its router and,
    per router, ``ip rule iif fpr- lookup <table>`` with a default route via the external
    subnet's gateway."""

    name: str                           # exec/capture target: fip-<network>@<node>
    node: str
    external_network: str
    netns: str
    gateway: NamespacePort
    external_gateway_ip: str | None
    links: tuple[FipLink, ...]
    routes: tuple[FipRoute, ...]

    @property
    def ports(self) -> tuple[NamespacePort, ...]:
        return (self.gateway,)


@dataclass(frozen=True)
class DhcpHost:
    mac: str
    hostname: str
    ip: str


@dataclass(frozen=True)
class DhcpPlan:
    """The dhcp agent's qdhcp-<network uuid> namespace and its dnsmasq."""

    name: str                       # <network>-dhcp, the exec target
    network: str
    network_id: str
    subnet_id: str
    node: str
    netns: str
    port: NamespacePort
    cidr: str
    gateway: str | None             # option router: the subnet's gateway, as the dhcp agent sends it
    mtu: int
    hosts: tuple[DhcpHost, ...]     # every port the dhcp agent lists: instances, router ports
    dir: str                        # where the hosts/opts/leases files live
    # options 121 and 249 as "destination,next hop" pairs, as the dhcp agent writes them for
    # a subnet a router is attached to: 169.254.169.254/32 and 0.0.0.0/0 via the gateway
    classless_routes: tuple[str, ...] = ()
    # the dhcp agent's enable_isolated_metadata: 169.254.169.254/32 on the port (whenever the
    # option is on), and a metadata proxy here when no router serves the network
    metadata_address: bool = False
    metadata_proxy: bool = False


@dataclass(frozen=True)
class PhysicalBridge:
    """br-vlan (or the mapped bridge) of one node: the NIC on the wire plus the patch to br-int."""

    bridge: str
    physical_network: str
    nic: str            # the node's interface on the wire, a port of this bridge
    int_patch: str      # int-<bridge> on br-int
    phy_patch: str      # phy-<bridge> on this bridge
    # (network, local VLAN, segmentation id or None for flat) for each network present here
    vlan_translations: tuple[tuple[str, int, int | None], ...]


@dataclass(frozen=True)
class TunnelPort:
    """vxlan-<remote ip in hex> / gre-<...> on br-tun: one per remote node and tunnel type."""

    name: str
    type: str                       # vxlan | gre
    remote_ip: str
    remote_node: str


@dataclass(frozen=True)
class TunnelEndpoint:
    """A node's end of the underlay. Userspace datapath: local_ip on the internal port of
    br-phy, an OVS bridge holding the NIC (OVS userspace tunnelling). Kernel datapath:
    local_ip on the NIC itself."""

    wire: str
    nic: str
    local_ip: str
    prefixlen: int
    bridge: str | None              # br-phy on the userspace datapath, None on the kernel one
    ports: tuple[TunnelPort, ...]


@dataclass(frozen=True)
class TunnelNetwork:
    """What br-tun of one node does for one tunnelled network present there."""

    network: str
    type: str
    segmentation_id: int
    local_vlan: int
    flood_ports: tuple[str, ...]                    # table 22: where broadcasts go
    unicast: tuple[tuple[str, str], ...] = ()       # l2pop: (remote MAC, tunnel port), table 20
    arp: tuple[tuple[str, str], ...] = ()           # arp_responder: (remote IP, MAC), table 21


@dataclass(frozen=True)
class DvrInterface:
    """A distributed router's qr- port bound on a node, as the OVS agent's DVR code programs
    it (_bind_distributed_router_interface_port): its subnet's gateway IP and MAC, its local
    VLAN and segment, and every DVR-serviced port of the subnet on this node (instances, the
    DHCP port), which get the DVR_TO_SRC_MAC rewrite back to the gateway MAC."""

    router: str
    network: str
    network_type: str
    bridge: str | None                  # the physical bridge carrying the network (vlan, flat)
    local_vlan: int
    segmentation_id: int | None
    gateway_ip: str
    gateway_mac: str
    ovs_port: str                       # the qr- port's OVS end (tap...)
    served: tuple[tuple[str, str], ...]  # (MAC, port on br-int) of each DVR-serviced port here


@dataclass(frozen=True)
class NodePlan:
    name: str
    role: str
    netns: str
    rundir: str
    physical_bridges: tuple[PhysicalBridge, ...]
    local_vlans: tuple[tuple[str, int], ...]    # (network, local VLAN) in allocation order
    ports: tuple[InstancePort, ...]
    firewall_driver: str = plugs.DEFAULT_DRIVER  # how its ports are plugged (lab/core/plugs/)
    dhcp_servers: tuple[DhcpPlan, ...] = ()
    tunnel: TunnelEndpoint | None = None
    tunnel_networks: tuple[TunnelNetwork, ...] = ()
    agent_mode: str | None = None       # the L3 agent's agent_mode (None: no L3 agent)
    dvr_mac: str | None = None          # this host's DVR MAC (OVS agent in DVR mode)
    dvr_interfaces: tuple[DvrInterface, ...] = ()
    enable_ipset: bool = True           # [securitygroup] enable_ipset: remote groups as ipsets (lab/core/ipsets.py)

    @property
    def nics(self) -> tuple[str, ...]:
        """The node's interfaces on the wires: provider bridges' NICs and the underlay's."""
        return tuple(b.nic for b in self.physical_bridges) + ((self.tunnel.nic,) if self.tunnel else ())


@dataclass(frozen=True)
class WireMember:
    name: str          # the node or external host
    wire_ifname: str   # the veth end on the wire's bridge (named after the member)
    peer_netns: str
    peer_ifname: str   # the node's NIC (eth1, eth2, ...) or the external host's eth0
    kind: str          # node | external-host


@dataclass(frozen=True)
class WirePlan:
    """A physical network: a namespace with one Linux bridge where every node's NIC lands."""

    name: str
    netns: str
    bridge: str
    members: tuple[WireMember, ...]


@dataclass(frozen=True)
class ExternalHostPlan:
    name: str
    netns: str
    wire: str
    network: str
    ip: str
    prefixlen: int
    mac: str
    mtu: int


@dataclass(frozen=True)
class Plan:
    lab: str
    scenario_file: str
    datapath: str
    cookie: str
    nodes: tuple[NodePlan, ...]
    wires: tuple[WirePlan, ...]
    external_hosts: tuple[ExternalHostPlan, ...] = ()
    l2_population: bool = False
    arp_responder: bool = False
    routers: tuple[RouterPlan, ...] = ()
    fip_namespaces: tuple[FipNamespacePlan, ...] = ()     # DVR: fip- per (node, external network)
    dvr_macs: tuple[tuple[str, str], ...] = ()            # (node, DVR MAC) of every node, DVR mode

    def mac_named(self, spec: str) -> str:
        """A MAC by name: dvr:<node> (its DVR MAC), gateway:<network> (its router port's MAC,
        the same on every host with DVR), an instance's name (its port's MAC), or a MAC itself."""
        if any(p.instance == spec for p in self.ports):
            return self.port(spec).mac
        kind, _, name = spec.partition(":")
        if kind == "dvr" and name in dict(self.dvr_macs):
            return dict(self.dvr_macs)[name]
        if kind == "gateway":
            for q in (q for i in self.router_instances for q in i.interfaces):
                if q.network == name:
                    return q.mac
        return spec

    def other_dvr_macs(self, node: str) -> tuple[str, ...]:
        """The DVR MACs of every other host (the OVS agent's dvr_mac_address_update)."""
        return tuple(mac for n, mac in self.dvr_macs if n != node)

    def node(self, name: str) -> NodePlan:
        return next(n for n in self.nodes if n.name == name)

    def wire(self, name: str) -> WirePlan:
        return next(w for w in self.wires if w.name == name)

    @property
    def ports(self) -> tuple[InstancePort, ...]:
        return tuple(p for n in self.nodes for p in n.ports)

    @property
    def router_instances(self) -> tuple[RouterInstance, ...]:
        return tuple(i for r in self.routers for i in r.instances)

    def routers_on(self, node: str) -> tuple[RouterInstance, ...]:
        """The router instances on NODE."""
        return tuple(i for i in self.router_instances if i.node == node)

    def router_instances_of(self, target: str) -> tuple[RouterInstance, ...]:
        """Every instance of the router named TARGET, or the one instance named TARGET."""
        for r in self.routers:
            if r.name == target:
                return r.instances
        return tuple(i for i in self.router_instances if i.name == target)

    @property
    def dhcp_servers(self) -> tuple[DhcpPlan, ...]:
        return tuple(d for n in self.nodes for d in n.dhcp_servers)

    def port(self, instance: str) -> InstancePort:
        return next(p for p in self.ports if p.instance == instance)

    def router(self, name: str) -> RouterPlan:
        return next(r for r in self.routers if r.name == name)

    def external_host(self, name: str) -> ExternalHostPlan:
        return next(h for h in self.external_hosts if h.name == name)

    def namespaces(self) -> list[str]:
        """Every namespace of the lab, in creation order."""
        return ([w.netns for w in self.wires] + [n.netns for n in self.nodes]
                + [p.netns for p in self.ports] + [h.netns for h in self.external_hosts]
                + [r.netns for r in self.router_instances] + [d.netns for d in self.dhcp_servers]
                + [f.netns for f in self.fip_namespaces])

    def targets(self) -> dict[str, tuple[str, str]]:
        """exec/capture target name -> (kind, netns)."""
        out: dict[str, tuple[str, str]] = {}
        for n in self.nodes:
            out[n.name] = ("node", n.netns)
        for w in self.wires:
            out[w.name] = ("wire", w.netns)
        for p in self.ports:
            out[p.instance] = ("instance", p.netns)
        for h in self.external_hosts:
            out[h.name] = ("external-host", h.netns)
        for r in self.router_instances:
            out[r.name] = ("router", r.netns)
        for d in self.dhcp_servers:
            out[d.name] = ("dhcp", d.netns)
        for f in self.fip_namespaces:
            out[f.name] = ("fip", f.netns)
        return out

    def fips_on(self, node: str) -> tuple[FipNamespacePlan, ...]:
        """The fip- namespaces on NODE."""
        return tuple(f for f in self.fip_namespaces if f.node == node)

    def endpoint_ip(self, name: str) -> str | None:
        """The address of an instance or external host (check endpoints)."""
        for p in self.ports:
            if p.instance == name:
                return p.ip
        for h in self.external_hosts:
            if h.name == name:
                return h.ip
        return None

    def to_json(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_json(data: dict) -> "Plan":
        return from_data(Plan, data)


def from_data(tp, value):
    """Rebuild frozen dataclasses (and their tuples) from asdict() output: plans and the
    scenario snapshot a running lab keeps."""
    if value is None:
        return None
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return from_data(args[0], value)
    if dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        return tp(**{f.name: from_data(hints[f.name], value[f.name])
                     for f in dataclasses.fields(tp) if f.name in value})
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(from_data(args[0], v) for v in value)
        return tuple(from_data(a, v) for a, v in zip(args, value))
    return value


def _group_members(scenario: Scenario) -> dict[tuple[str, str], tuple[str, ...]]:
    """(project, group) -> its members' /32s in address order. Made once per plan: every
    rule naming the group shares the one tuple (1,000 ports of one group: O(N), issue 14)."""
    networks = {n.name: n for n in scenario.networks}
    members: dict[tuple[str, str], set[str]] = {}
    for i in scenario.instances:
        for group in i.security_groups:
            members.setdefault((networks[i.network].project, group), set()).add(i.ip)
    return {k: tuple(f"{ip}/32" for ip in sorted(v, key=ipaddress.IPv4Address)) for k, v in members.items()}


def _port_rules(scenario: Scenario, inst, networks: dict[str, Network],
                members: dict[tuple[str, str], tuple[str, ...]]) -> tuple[PortRule, ...]:
    """Every rule of the port's groups. The default group: egress anywhere, ingress from its
    members. A remote-group rule lists the /32s of every member (the port's own included) and
    the group's id: its node renders it as an ipset or expanded (lab/core/ipsets.py)."""
    project = networks[inst.network].project
    rules: list[PortRule] = []

    def remotes_of(group: str) -> tuple[str, ...]:
        return members.get((project, group), ())

    for group in inst.security_groups:
        if group == "default":
            rules.append(PortRule("egress", "any", None, None, ("0.0.0.0/0",)))
            rules.append(PortRule("ingress", "any", None, None, remotes_of("default"), "default",
                                  naming.security_group_uuid(scenario.name, project, "default")))
            continue
        sg = scenario.security_group(project, group)
        for r in sg.rules:
            remotes = (r.remote_ip,) if r.remote_ip else remotes_of(r.remote_group)
            rules.append(PortRule(r.direction, r.protocol, r.port_min, r.port_max, remotes,
                                  None if r.remote_ip else r.remote_group,
                                  None if r.remote_ip else naming.security_group_uuid(scenario.name, project,
                                                                                     r.remote_group)))
    return tuple(dict.fromkeys(rules))  # same rule from two groups: once


def build_plan(scenario: Scenario, datapath: str = "netdev", state_root: str = "/run/neutron-lab") -> Plan:
    if datapath not in DATAPATHS:
        raise ValueError(f"datapath must be one of {DATAPATHS}, not {datapath!r}")
    lab = scenario.name
    wires, nic_of = _wires(scenario)
    networks = {n.name: n for n in scenario.networks}
    hosts = tuple(ExternalHostPlan(h.name, naming.netns_name(lab, h.name), networks[h.network].physical_network,
                                   h.network, h.ip, networks[h.network].prefixlen, h.mac, networks[h.network].mtu)
                  for h in scenario.external_hosts)
    placed = {r.name: routers.placements(scenario, r) for r in scenario.routers}
    nodes: list[NodePlan] = []
    instances: dict[str, list[RouterInstance]] = {r.name: [] for r in scenario.routers}
    fips: list[FipNamespacePlan] = []
    members = _group_members(scenario)
    for node in scenario.nodes:
        # Local VLANs: 1, 2, ... per node, in the order its ports are bound: DHCP ports (made
        # with the subnet), router ports, then instance ports.
        local_vlans: dict[str, int] = {}

        def lvid(network: str) -> int:
            if network not in local_vlans:
                local_vlans[network] = len(local_vlans) + 1
            return local_vlans[network]

        ns_port = _ns_port_maker(networks)
        dhcp_servers = _dhcp_servers(scenario, node.name, lvid, ns_port, state_root)
        for r in scenario.routers:
            for where, role in placed[r.name]:
                if where == node.name:
                    instances[r.name].append(routers.instance(lab, scenario, r, where, role,
                                                              routers.qrouter_count(placed[r.name]), lvid, ns_port))
        fips += routers.fip_namespaces(lab, scenario, node.name, instances, lvid, ns_port)
        plugger = plugs.driver(node.firewall_driver)
        node_netns = naming.netns_name(lab, node.name)
        ports = [_instance_port(scenario, inst, lvid(inst.network), plugger.plug(node_netns, inst.port_id), members)
                 for inst in scenario.instances if inst.node == node.name]
        nodes.append(NodePlan(name=node.name, role=node.role, netns=node_netns,
                              rundir=naming.node_rundir(state_root, lab, node.name),
                              physical_bridges=_physical_bridges(scenario, node.name, local_vlans, nic_of),
                              local_vlans=tuple(local_vlans.items()), ports=tuple(ports),
                              firewall_driver=plugger.name, dhcp_servers=tuple(dhcp_servers),
                              agent_mode=node.agent_mode, enable_ipset=node.enable_ipset))
    router_plans = tuple(RouterPlan(r.name, r.router_id, r.project, r.external_network,
                                    tuple(instances[r.name])) for r in scenario.routers)
    nodes = _with_tunnels(scenario, nodes, router_plans, nic_of, datapath)
    dvr_macs = _dvr_macs(scenario)
    nodes = [_with_dvr(n, dict(dvr_macs), router_plans) for n in nodes] if dvr_macs else nodes
    return Plan(lab=lab, scenario_file=scenario.source, datapath=datapath,
                cookie=naming.flow_cookie(lab), nodes=tuple(nodes), wires=tuple(wires),
                external_hosts=hosts, l2_population=scenario.l2_population,
                arp_responder=scenario.arp_responder, routers=router_plans, dvr_macs=dvr_macs,
                fip_namespaces=tuple(fips))


def _dvr_macs(scenario: Scenario) -> tuple[tuple[str, str], ...]:
    """One DVR MAC per node when the OVS agents run in DVR mode (the server hands them out,
    unique: a collision takes the next candidate, as _create_dvr_mac_address_retry does)."""
    if not scenario.distributed_routing:
        return ()
    taken: dict[str, str] = {}
    for node in scenario.nodes:
        attempt = 0
        while (mac := naming.dvr_mac(scenario.dvr_base_mac, scenario.name, node.name, attempt)) in taken.values():
            attempt += 1
        taken[node.name] = mac
    return tuple(taken.items())


def _with_dvr(node: NodePlan, macs: dict[str, str], router_plans: tuple[RouterPlan, ...]) -> NodePlan:
    """The node's DVR MAC and each distributed router interface bound here, with the ports of
    its subnet on this node (DVR-serviced: instances and DHCP ports)."""
    bridges = {b.physical_network: b.bridge for b in node.physical_bridges}
    here = [(p.network, p.mac, p.ovs_port) for p in node.ports]
    here += [(d.network, d.port.mac, d.port.ovs_dev) for d in node.dhcp_servers]
    # _bind_centralized_snat_port_on_dvr_subnet: sg- ports are DVR-serviced like instances
    here += [(p.network, p.mac, p.ovs_dev) for r in router_plans for i in r.instances
             if i.node == node.name and i.role == routers.DVR_SNAT for p in i.interfaces]
    bound = []
    for r in router_plans:
        for inst in r.instances:
            if inst.node != node.name or inst.role != routers.DVR_LOCAL:
                continue
            for q in inst.interfaces:
                bound.append(DvrInterface(
                    router=r.name, network=q.network, network_type=q.network_type,
                    bridge=bridges.get(q.physical_network) if q.physical_network else None,
                    local_vlan=q.local_vlan, segmentation_id=q.segmentation_id, gateway_ip=q.ip,
                    gateway_mac=q.mac, ovs_port=q.ovs_dev,
                    served=tuple((mac, port) for net, mac, port in here if net == q.network)))
    return dataclasses.replace(node, dvr_mac=macs[node.name], dvr_interfaces=tuple(bound))


def _wires(scenario: Scenario) -> tuple[list[WirePlan], dict[tuple[str, str], str]]:
    """Each physical network's wire; each attached node gets eth1, eth2...; external hosts
    plug their eth0 in directly. Also (node, physical network) -> the node's NIC there."""
    lab = scenario.name
    networks = {n.name: n for n in scenario.networks}
    wires: list[WirePlan] = []
    nic_of: dict[tuple[str, str], str] = {}
    nic_count: dict[str, int] = {}
    for physnet in scenario.physical_networks:
        wire_members = []
        for node in physnet.nodes:
            nic_count[node] = nic_count.get(node, 0) + 1
            nic = naming.node_nic(nic_count[node])
            nic_of[(node, physnet.name)] = nic
            wire_members.append(WireMember(node, node, naming.netns_name(lab, node), nic, "node"))
        for host in scenario.external_hosts:
            if networks[host.network].physical_network == physnet.name:
                wire_members.append(WireMember(host.name, host.name, naming.netns_name(lab, host.name),
                                               "eth0", "external-host"))
        wires.append(WirePlan(physnet.name, naming.netns_name(lab, physnet.name), physnet.name,
                              tuple(wire_members)))
    return wires, nic_of


def _ns_port_maker(networks: dict[str, Network]):
    """A function making a router's or DHCP server's NamespacePort, with its network's segment
    as the OVS agent records it."""
    def ns_port(network: str, port_id: str, prefix: str, ip: str, mac: str, local_vlan: int,
                owner: str) -> NamespacePort:
        net = networks[network]
        return NamespacePort(network, port_id, naming.port_device(naming.TAP, port_id),
                             naming.port_device(prefix, port_id), ip, net.prefixlen, mac, net.mtu, local_vlan,
                             owner, network_type=net.type,
                             physical_network=net.physical_network if net.type in ("vlan", "flat") else None,
                             segmentation_id=net.segmentation_id)
    return ns_port


def _dhcp_servers(scenario: Scenario, node: str, lvid, ns_port, state_root: str) -> list[DhcpPlan]:
    """The DHCP servers of NODE: it runs the one of each DHCP network whose physical network
    it is the first network node attached to."""
    lab = scenario.name
    out = []
    for net in scenario.networks:
        if not net.dhcp or scenario.dhcp_node(net.name) != node:
            continue
        port = ns_port(net.name, net.dhcp_port_id, naming.NS, net.dhcp_ip, naming.port_mac(net.dhcp_port_id),
                       lvid(net.name), "network:dhcp")
        router_ports = _router_ports_on(scenario, net.name)
        hosts = tuple(DhcpHost(mac, naming.dhcp_hostname(ip), ip)
                      for mac, ip in [(i.mac, i.ip) for i in scenario.instances if i.network == net.name]
                      + router_ports)
        out.append(DhcpPlan(
            name=naming.dhcp_server(net.name), network=net.name, network_id=net.network_id,
            subnet_id=naming.object_uuid(lab, "subnet", net.name), node=node,
            netns=naming.agent_netns(lab, node, naming.QDHCP, net.network_id), port=port,
            cidr=net.cidr, gateway=net.gateway, mtu=net.mtu, hosts=hosts,
            dir=naming.dhcp_dir(state_root, lab, net.network_id),
            classless_routes=_classless_routes(scenario, net),
            metadata_address=scenario.enable_isolated_metadata,
            metadata_proxy=scenario.enable_isolated_metadata and not _routed(scenario, net)))
    return out


def _routed(scenario: Scenario, net) -> bool:
    """Dnsmasq.get_isolated_subnets: a subnet is not isolated when a router interface holds
    its gateway address."""
    return any(i.network == net.name and i.ip == net.gateway for r in scenario.routers for i in r.interfaces)


def _router_ports_on(scenario: Scenario, network: str) -> list[tuple[str, str]]:
    """(MAC, IP) of the router ports on NETWORK, which the dhcp agent's hosts file lists
    (it leaves out only DHCP, floating-IP, HA and distributed router ports)."""
    out = [(i.mac, i.ip) for r in scenario.routers for i in r.interfaces
           if i.network == network]
    out += [(p.mac, p.ip) for r in scenario.routers for p in r.snat_ports if p.network == network]   # DVR sg-
    out += [(r.gateway_mac, r.gateway_ip) for r in scenario.routers
            if r.external_network == network and r.gateway_ip]
    return out


def _classless_routes(scenario: Scenario, net) -> tuple[str, ...]:
    """Neutron's Dnsmasq._generate_opts_per_subnet (no host routes on the subnet): a subnet
    with a router interface is not isolated, so it gets the metadata address and the default
    route via its gateway; with enable_isolated_metadata an isolated one gets the metadata
    address via the DHCP port (and the default route via its gateway, if it has one)."""
    attached = any(i.network == net.name for r in scenario.routers for i in r.interfaces)
    if scenario.enable_isolated_metadata and not _routed(scenario, net) and net.dhcp_ip:
        return (f"169.254.169.254/32,{net.dhcp_ip}",) + ((f"0.0.0.0/0,{net.gateway}",) if net.gateway else ())
    if not attached or not net.gateway:
        return ()
    return (f"169.254.169.254/32,{net.gateway}", f"0.0.0.0/0,{net.gateway}")


def _instance_port(scenario: Scenario, inst, local_vlan: int, plug: Plug,
                   members: dict[tuple[str, str], tuple[str, ...]] | None = None) -> InstancePort:
    networks = {n.name: n for n in scenario.networks}
    members = _group_members(scenario) if members is None else members
    net = networks[inst.network]
    return InstancePort(
        instance=inst.name, node=inst.node, network=net.name, project=net.project,
        port_id=inst.port_id, netns=naming.netns_name(scenario.name, inst.name), ip=inst.ip,
        prefixlen=net.prefixlen, gateway=net.gateway, mac=inst.mac, mtu=net.mtu,
        local_vlan=local_vlan, segmentation_id=net.segmentation_id,
        network_type=net.type, physical_network=net.physical_network, plug=plug,
        security_groups=inst.security_groups, rules=_port_rules(scenario, inst, networks, members),
        address=inst.address, floating_ip=inst.floating_ip)


def _physical_bridges(scenario: Scenario, node: str, local_vlans: dict[str, int],
                      nic_of: dict[tuple[str, str], str]) -> tuple[PhysicalBridge, ...]:
    """br-vlan/br-ex... of NODE (bridge_mappings), with the VLAN translation of each network
    present on the node."""
    networks = {n.name: n for n in scenario.networks}
    bridges = []
    for physnet in scenario.physical_networks:
        if node not in physnet.nodes or physnet.tunnels:
            continue
        int_patch, phy_patch = naming.patch_ports(physnet.bridge)
        translations = tuple((net_name, vlan, networks[net_name].segmentation_id)
                             for net_name, vlan in local_vlans.items()
                             if networks[net_name].physical_network == physnet.name)
        bridges.append(PhysicalBridge(physnet.bridge, physnet.name, nic_of[(node, physnet.name)],
                                      int_patch, phy_patch, translations))
    return tuple(bridges)


def _with_tunnels(scenario: Scenario, nodes: list[NodePlan], router_plans: tuple[RouterPlan, ...], nic_of: dict,
                  datapath: str) -> list[NodePlan]:
    """br-tun of every node on the underlay: a tunnel port to each other node for each type in
    use, and per local tunnelled network the flood list, l2pop unicast and ARP entries."""
    underlay = next((p for p in scenario.physical_networks if p.tunnels), None)
    networks = {n.name: n for n in scenario.networks}
    types = sorted({n.type for n in scenario.networks if n.type in ("vxlan", "gre")})
    if underlay is None or not types:
        return nodes
    local_ip = {n.name: n.local_ip for n in scenario.nodes}
    prefixlen = ipaddress.ip_network(underlay.cidr).prefixlen

    # every port of every tunnelled network, with the node that hosts it (for l2pop)
    hosted: dict[str, list[tuple[str, str, str]]] = {}   # network -> [(node, mac, ip)]
    for n in nodes:
        for p in n.ports:
            hosted.setdefault(p.network, []).append((n.name, p.mac, p.ip))
        router_ports = [q for r in router_plans for i in r.instances if i.node == n.name
                        and i.role != routers.DVR_LOCAL for q in i.ports]
        for port in [d.port for d in n.dhcp_servers] + router_ports:
            hosted.setdefault(port.network, []).append((n.name, port.mac, port.ip))
    # l2pop gives DVR router interfaces (the same MAC on every host) flooding entries only
    flood_only = {(i.node, q.network) for r in router_plans for i in r.instances
                  if i.role == routers.DVR_LOCAL for q in i.ports}

    out = []
    for n in nodes:
        if n.name not in underlay.nodes:
            out.append(n)
            continue
        remotes = [r for r in underlay.nodes if r != n.name]
        ports = tuple(TunnelPort(naming.tunnel_port(t, local_ip[r]), t, local_ip[r], r) for t in types for r in remotes)
        endpoint = TunnelEndpoint(underlay.name, nic_of[(n.name, underlay.name)], local_ip[n.name], prefixlen,
                                  naming.BR_PHY if datapath == "netdev" else None, ports)
        tunnelled = []
        for net_name, lvid in n.local_vlans:
            net = networks[net_name]
            if net.type not in ("vxlan", "gre"):
                continue
            by_node = {p.remote_node: p.name for p in ports if p.type == net.type}
            remote_ports = [h for h in hosted.get(net_name, []) if h[0] != n.name]
            if scenario.l2_population:
                dvr_hosts = [node for node, net in sorted(flood_only) if net == net_name and node != n.name]
                flood = tuple(dict.fromkeys([by_node[h[0]] for h in remote_ports]
                                            + [by_node[node] for node in dvr_hosts if node in by_node]))
                unicast = tuple((mac, by_node[node]) for node, mac, _ in remote_ports)
                arp = tuple((ip, mac) for _, mac, ip in remote_ports) if scenario.arp_responder else ()
            else:
                flood, unicast, arp = tuple(by_node.values()), (), ()
            tunnelled.append(TunnelNetwork(net_name, net.type, net.segmentation_id, lvid, flood, unicast, arp))
        out.append(dataclasses.replace(n, tunnel=endpoint, tunnel_networks=tuple(tunnelled)))
    return out
