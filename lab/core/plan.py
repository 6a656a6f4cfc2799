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

from lab.core import naming, plugs
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
class RouterPlan:
    """A legacy (centralized) router: qrouter-<router uuid> on a network node."""

    name: str
    router_id: str
    node: str
    netns: str
    interfaces: tuple[NamespacePort, ...]
    gateway: NamespacePort | None
    external_gateway_ip: str | None     # the external subnet's gateway: the default route
    floating_ips: tuple[FloatingIP, ...]

    @property
    def ports(self) -> tuple[NamespacePort, ...]:
        return self.interfaces + ((self.gateway,) if self.gateway else ())


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
    hosts: tuple[DhcpHost, ...]
    dir: str                        # where the hosts/opts/leases files live


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
class NodePlan:
    name: str
    role: str
    netns: str
    rundir: str
    physical_bridges: tuple[PhysicalBridge, ...]
    local_vlans: tuple[tuple[str, int], ...]    # (network, local VLAN) in allocation order
    ports: tuple[InstancePort, ...]
    firewall_driver: str = plugs.DEFAULT_DRIVER  # how its ports are plugged (lab/core/plugs/)
    routers: tuple[RouterPlan, ...] = ()
    dhcp_servers: tuple[DhcpPlan, ...] = ()
    tunnel: TunnelEndpoint | None = None
    tunnel_networks: tuple[TunnelNetwork, ...] = ()

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

    def node(self, name: str) -> NodePlan:
        return next(n for n in self.nodes if n.name == name)

    def wire(self, name: str) -> WirePlan:
        return next(w for w in self.wires if w.name == name)

    @property
    def ports(self) -> tuple[InstancePort, ...]:
        return tuple(p for n in self.nodes for p in n.ports)

    @property
    def routers(self) -> tuple[RouterPlan, ...]:
        return tuple(r for n in self.nodes for r in n.routers)

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
                + [r.netns for r in self.routers] + [d.netns for d in self.dhcp_servers])

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
        for r in self.routers:
            out[r.name] = ("router", r.netns)
        for d in self.dhcp_servers:
            out[d.name] = ("dhcp", d.netns)
        return out

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


def _port_rules(scenario: Scenario, inst, networks: dict[str, Network],
                members: dict[tuple[str, str], list[str]]) -> tuple[PortRule, ...]:
    """Every rule of the port's groups. The default group: egress anywhere, ingress from its
    members. Remote groups become the /32s of their members, as with enable_ipset = False."""
    project = networks[inst.network].project
    rules: list[PortRule] = []

    def remotes_of(group: str) -> tuple[str, ...]:
        ips = sorted(set(members.get((project, group), [])), key=ipaddress.IPv4Address)
        return tuple(f"{ip}/32" for ip in ips)

    for group in inst.security_groups:
        if group == "default":
            rules.append(PortRule("egress", "any", None, None, ("0.0.0.0/0",)))
            rules.append(PortRule("ingress", "any", None, None, remotes_of("default")))
            continue
        sg = scenario.security_group(project, group)
        for r in sg.rules:
            remotes = (r.remote_ip,) if r.remote_ip else remotes_of(r.remote_group)
            rules.append(PortRule(r.direction, r.protocol, r.port_min, r.port_max, remotes))
    return tuple(dict.fromkeys(rules))  # same rule from two groups: once


def build_plan(scenario: Scenario, datapath: str = "netdev", state_root: str = "/run/neutron-lab") -> Plan:
    if datapath not in DATAPATHS:
        raise ValueError(f"datapath must be one of {DATAPATHS}, not {datapath!r}")
    lab = scenario.name
    networks = {n.name: n for n in scenario.networks}
    physnets = {p.name: p for p in scenario.physical_networks}

    members: dict[tuple[str, str], list[str]] = {}   # (project, group) -> member addresses
    for inst in scenario.instances:
        for group in inst.security_groups:
            members.setdefault((networks[inst.network].project, group), []).append(inst.ip)

    # wires: each attached node gets eth1, eth2...; external hosts plug their eth0 in directly
    wires: list[WirePlan] = []
    nic_of: dict[tuple[str, str], str] = {}
    nic_count: dict[str, int] = {}
    for physnet in scenario.physical_networks:
        wire_members = []
        for node in physnet.nodes:
            nic_count[node] = nic_count.get(node, 0) + 1
            nic = f"eth{nic_count[node]}"
            nic_of[(node, physnet.name)] = nic
            wire_members.append(WireMember(node, node, naming.netns_name(lab, node), nic, "node"))
        for host in scenario.external_hosts:
            if networks[host.network].physical_network == physnet.name:
                wire_members.append(WireMember(host.name, host.name, naming.netns_name(lab, host.name),
                                               "eth0", "external-host"))
        wires.append(WirePlan(physnet.name, naming.netns_name(lab, physnet.name), physnet.name,
                              tuple(wire_members)))
    hosts = tuple(ExternalHostPlan(h.name, naming.netns_name(lab, h.name), networks[h.network].physical_network,
                                   h.network, h.ip, networks[h.network].prefixlen, h.mac, networks[h.network].mtu)
                  for h in scenario.external_hosts)

    # DHCP runs on the first network node attached to the network's physical network
    def dhcp_node(net: Network) -> str | None:
        return next((n.name for n in scenario.nodes if n.role == "network"
                     and n.name in physnets[net.physical_network].nodes), None)

    nodes: list[NodePlan] = []
    for node in scenario.nodes:
        # Local VLANs: 1, 2, ... per node, in the order its ports are bound: DHCP ports (made
        # with the subnet), router ports, then instance ports.
        local_vlans: dict[str, int] = {}

        def lvid(network: str) -> int:
            if network not in local_vlans:
                local_vlans[network] = len(local_vlans) + 1
            return local_vlans[network]

        dhcp_servers = []
        for net in scenario.networks:
            if not net.dhcp or dhcp_node(net) != node.name:
                continue
            port = NamespacePort(net.name, net.dhcp_port_id, naming.port_device("tap", net.dhcp_port_id),
                                 naming.port_device("ns-", net.dhcp_port_id), net.dhcp_ip, net.prefixlen,
                                 naming.port_mac(net.dhcp_port_id), net.mtu, lvid(net.name), "network:dhcp")
            dhcp_hosts = tuple(DhcpHost(i.mac, f"host-{i.ip.replace('.', '-')}", i.ip)
                               for i in scenario.instances if i.network == net.name)
            dhcp_servers.append(DhcpPlan(
                name=f"{net.name}-dhcp", network=net.name, network_id=net.network_id,
                subnet_id=naming.object_uuid(lab, "subnet", net.name), node=node.name,
                netns=naming.netns_name(lab, f"{node.name}.qdhcp-{net.network_id}"), port=port,
                cidr=net.cidr, gateway=net.gateway, mtu=net.mtu,
                hosts=dhcp_hosts, dir=f"{state_root}/{lab}/dhcp/{net.network_id}"))
        routers = []
        for r in scenario.routers:
            if r.node != node.name:
                continue
            ifaces = tuple(NamespacePort(i.network, i.port_id, naming.port_device("tap", i.port_id),
                                         naming.port_device("qr-", i.port_id), i.ip, networks[i.network].prefixlen,
                                         i.mac, networks[i.network].mtu, lvid(i.network),
                                         "network:router_interface") for i in r.interfaces)
            gateway, ext_gw = None, None
            if r.external_network:
                ext = networks[r.external_network]
                gateway = NamespacePort(ext.name, r.gateway_port_id, naming.port_device("tap", r.gateway_port_id),
                                        naming.port_device("qg-", r.gateway_port_id), r.gateway_ip,
                                        ext.prefixlen, r.gateway_mac, ext.mtu, lvid(ext.name),
                                        "network:router_gateway")
                ext_gw = ext.gateway
            served = {i.network for i in r.interfaces}
            fips = tuple(FloatingIP(i.floating_ip, i.ip, i.name) for i in scenario.instances
                         if i.floating_ip and i.network in served and r.external_network)
            routers.append(RouterPlan(r.name, r.router_id, node.name,
                                      naming.netns_name(lab, f"{node.name}.qrouter-{r.router_id}"),
                                      ifaces, gateway, ext_gw, fips))
        ports = []
        plugger = plugs.driver(node.firewall_driver)
        node_netns = naming.netns_name(lab, node.name)
        for inst in scenario.instances:
            if inst.node != node.name:
                continue
            net = networks[inst.network]
            ports.append(InstancePort(
                instance=inst.name, node=node.name, network=net.name, project=net.project,
                port_id=inst.port_id, netns=naming.netns_name(lab, inst.name), ip=inst.ip,
                prefixlen=net.prefixlen, gateway=net.gateway, mac=inst.mac, mtu=net.mtu,
                local_vlan=lvid(net.name), segmentation_id=net.segmentation_id,
                network_type=net.type, physical_network=net.physical_network,
                plug=plugger.plug(node_netns, inst.port_id),
                security_groups=inst.security_groups, rules=_port_rules(scenario, inst, networks, members),
                address=inst.address, floating_ip=inst.floating_ip))
        bridges = []
        for physnet in scenario.physical_networks:
            if node.name not in physnet.nodes or physnet.tunnels:
                continue
            int_patch, phy_patch = naming.patch_ports(physnet.bridge)
            translations = tuple((net_name, vlan, networks[net_name].segmentation_id)
                                 for net_name, vlan in local_vlans.items()
                                 if networks[net_name].physical_network == physnet.name)
            bridges.append(PhysicalBridge(physnet.bridge, physnet.name, nic_of[(node.name, physnet.name)],
                                          int_patch, phy_patch, translations))
        nodes.append(NodePlan(name=node.name, role=node.role, netns=node_netns,
                              rundir=f"{state_root}/{lab}/nodes/{node.name}",
                              physical_bridges=tuple(bridges), local_vlans=tuple(local_vlans.items()),
                              ports=tuple(ports), firewall_driver=plugger.name,
                              routers=tuple(routers), dhcp_servers=tuple(dhcp_servers)))
    nodes = [_with_segments(n, networks) for n in nodes]
    nodes = _with_tunnels(scenario, nodes, nic_of, datapath)
    return Plan(lab=lab, scenario_file=scenario.source, datapath=datapath,
                cookie=naming.flow_cookie(lab), nodes=tuple(nodes), wires=tuple(wires),
                external_hosts=hosts, l2_population=scenario.l2_population,
                arp_responder=scenario.arp_responder)


def _with_segments(node: NodePlan, networks: dict[str, Network]) -> NodePlan:
    """Router and DHCP ports know their network's segment, as the OVS agent records it."""
    def seg(port: NamespacePort) -> NamespacePort:
        net = networks[port.network]
        physnet = net.physical_network if net.type in ("vlan", "flat") else None
        return dataclasses.replace(port, network_type=net.type, physical_network=physnet,
                                   segmentation_id=net.segmentation_id)
    routers = tuple(dataclasses.replace(r, interfaces=tuple(seg(i) for i in r.interfaces),
                                        gateway=seg(r.gateway) if r.gateway else None) for r in node.routers)
    dhcp = tuple(dataclasses.replace(d, port=seg(d.port)) for d in node.dhcp_servers)
    return dataclasses.replace(node, routers=routers, dhcp_servers=dhcp)


def _with_tunnels(scenario: Scenario, nodes: list[NodePlan], nic_of: dict, datapath: str) -> list[NodePlan]:
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
        for port in [d.port for d in n.dhcp_servers] + [q for r in n.routers for q in r.ports]:
            hosted.setdefault(port.network, []).append((n.name, port.mac, port.ip))

    def port_name(ntype: str, ip: str) -> str:
        return f"{ntype}-" + "".join(f"{int(b):02x}" for b in ip.split("."))

    out = []
    for n in nodes:
        if n.name not in underlay.nodes:
            out.append(n)
            continue
        remotes = [r for r in underlay.nodes if r != n.name]
        ports = tuple(TunnelPort(port_name(t, local_ip[r]), t, local_ip[r], r) for t in types for r in remotes)
        endpoint = TunnelEndpoint(underlay.name, nic_of[(n.name, underlay.name)], local_ip[n.name], prefixlen,
                                  "br-phy" if datapath == "netdev" else None, ports)
        tunnelled = []
        for net_name, lvid in n.local_vlans:
            net = networks[net_name]
            if net.type not in ("vxlan", "gre"):
                continue
            by_node = {p.remote_node: p.name for p in ports if p.type == net.type}
            remote_ports = [h for h in hosted.get(net_name, []) if h[0] != n.name]
            if scenario.l2_population:
                flood = tuple(dict.fromkeys(by_node[h[0]] for h in remote_ports))
                unicast = tuple((mac, by_node[node]) for node, mac, _ in remote_ports)
                arp = tuple((ip, mac) for _, mac, ip in remote_ports) if scenario.arp_responder else ()
            else:
                flood, unicast, arp = tuple(by_node.values()), (), ()
            tunnelled.append(TunnelNetwork(net_name, net.type, net.segmentation_id, lvid, flood, unicast, arp))
        out.append(dataclasses.replace(n, tunnel=endpoint, tunnel_networks=tuple(tunnelled)))
    return out
