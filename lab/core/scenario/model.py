"""The scenario model: frozen dataclasses that plan, render and the tools read, and the
constants of the format. Pure data: no validation here (see the section modules)."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from lab.core.plugs import DRIVERS

NAME_RE = re.compile(r"^[a-z][a-z0-9-]*$")
ROLES = ("network", "compute")
# the L3 agent's agent_mode (l3_agent.ini): which a node of each role may run (Neutron's admin
# guide: dvr_snat is not supported on computes, bug #1934666)
AGENT_MODES = ("legacy", "dvr", "dvr_snat", "dvr_no_external")
DVR_AGENT_MODES = ("dvr", "dvr_snat", "dvr_no_external")
AGENT_MODES_OF_ROLE = {"network": ("legacy", "dvr_snat"), "compute": ("dvr", "dvr_no_external")}
DVR_BASE_MAC = "fa:16:3f:00:00:00"   # neutron.conf dvr_base_mac default
# the OVS agent's [securitygroup] firewall_driver: built now, and known but not built yet
FIREWALL_DRIVERS_NOW = DRIVERS           # the plug registry (lab/core/plugs) says what is built
FIREWALL_DRIVERS_LATER: tuple[str, ...] = ()
NETWORK_TYPES_NOW = ("vlan", "flat", "vxlan", "gre")
NETWORK_TYPES_LATER = ("geneve", "local")
TUNNEL_TYPES = ("vxlan", "gre")
TUNNEL_ID_MAX = {"vxlan": 2 ** 24 - 1, "gre": 2 ** 32 - 1}
# Neutron's encapsulation overheads (IPv4 underlay): VXLAN 50, GRE 42 bytes
DEFAULT_MTU_UNDERLAY = 1500
RESERVED_BRIDGES = ("br-int", "br-tun")
PROTOS = ("icmp", "tcp")
EXPECTS = ("reach", "blocked")
PACKET_KINDS = ("ip", "arp")
PATH_KINDS = ("crosses", "never_on", "never_reaches", "reaches", "passes", "never_passes")
DEFAULT_TCP_PORT = 5001
DEFAULT_MTU = {"vlan": 1500, "flat": 1500, "vxlan": 1450, "gre": 1458}


@dataclass(frozen=True)
class Node:
    name: str
    role: str
    line: int
    local_ip: str | None = None     # tunnel endpoint on the underlay
    firewall_driver: str = "iptables_hybrid"    # the OVS agent's [securitygroup] firewall_driver
    agent_mode: str | None = None   # the L3 agent's agent_mode; None: no L3 agent (a compute without DVR)
    enable_ipset: bool = True       # the OVS agent's [securitygroup] enable_ipset


@dataclass(frozen=True)
class PhysicalNetwork:
    name: str
    bridge: str
    vlan_ranges: tuple[tuple[int, int], ...]
    nodes: tuple[str, ...]
    line: int
    tunnels: bool = False           # the tunnel underlay (VXLAN/GRE endpoints), not a provider network
    cidr: str | None = None         # the underlay's addresses


@dataclass(frozen=True)
class Network:
    name: str
    project: str
    type: str
    physical_network: str
    segmentation_id: int | None
    cidr: str
    gateway: str
    mtu: int
    line: int
    external: bool = False
    allocation_pool: tuple[str, str] | None = None   # (first, last); None: the whole subnet
    dhcp: bool = False
    dhcp_ip: str | None = None                       # the DHCP port's address, when dhcp
    dhcp_port_id: str | None = None
    network_id: str = ""

    @property
    def prefixlen(self) -> int:
        return ipaddress.ip_network(self.cidr).prefixlen


@dataclass(frozen=True)
class Rule:
    """One security group rule, as Neutron stores it."""

    direction: str                 # ingress | egress
    protocol: str                  # any | icmp | tcp | udp
    port_min: int | None
    port_max: int | None
    remote_ip: str | None          # a CIDR, or None with remote_group
    remote_group: str | None
    line: int


@dataclass(frozen=True)
class SecurityGroup:
    name: str
    project: str
    rules: tuple[Rule, ...]
    line: int


@dataclass(frozen=True)
class Instance:
    name: str
    node: str
    network: str
    ip: str
    mac: str
    port_id: str
    security_groups: tuple[str, ...]
    line: int
    address: str = "static"        # dhcp | static: how eth0 gets its address
    floating_ip: str | None = None
    user_data: str | None = None                        # served as metadata user-data
    public_keys: tuple[tuple[str, str], ...] = ()       # (key name, OpenSSH public key), metadata public-keys


@dataclass(frozen=True)
class RouterInterface:
    network: str
    port_id: str
    ip: str
    mac: str


@dataclass(frozen=True)
class FipAgentPort:
    """DVR: a node's port on an external network (device_owner network:floatingip_agent_gateway)."""

    node: str
    network: str
    port_id: str
    ip: str
    mac: str


@dataclass(frozen=True)
class Router:
    name: str
    project: str
    node: str
    router_id: str
    interfaces: tuple[RouterInterface, ...]
    external_network: str | None
    gateway_port_id: str | None
    gateway_ip: str | None
    gateway_mac: str | None
    line: int
    distributed: bool = False       # DVR: a qrouter- on every host with a port on its networks
    # DVR with an external gateway: one centralized SNAT port (sg-, in snat-) per interface,
    # its own address and MAC on the interface's subnet (device_owner network:router_centralized_snat)
    snat_ports: tuple[RouterInterface, ...] = ()
    # DVR floating IPs: the server's floating IP agent gateway ports (fg-, in fip-), one per
    # (node, external network) with a floating IP of this router; shared with other routers
    fip_agent_ports: tuple[FipAgentPort, ...] = ()


@dataclass(frozen=True)
class ExternalHost:
    """A namespace on an external network's wire that stands for the outside world."""

    name: str
    network: str
    ip: str
    mac: str
    line: int


@dataclass(frozen=True)
class PathAssertion:
    kind: str              # crosses | never_on | never_reaches | reaches | passes
    target: str            # physical network, instance, node, external host or router
    vlan: int | None       # crosses only: the 802.1Q id seen on the wire
    packets: str           # ip (the probe's own packets) | arp (ARP for the destination)
    line: int
    source: str | None = None       # the address pair to look for there, when NAT changed it
    destination: str | None = None
    vni: int | None = None          # crosses only: VXLAN network identifier seen on the underlay
    key: int | None = None          # crosses only: GRE key seen on the underlay
    source_mac: str | None = None   # the frames' Ethernet source: a MAC, an instance, dvr:<node>, gateway:<network>

    def describe(self) -> str:
        what = "ARP requests for the destination" if self.packets == "arp" else "probe packets"
        pair = ""
        if self.source or self.destination:
            pair = f" ({self.source or 'source'} <-> {self.destination or 'destination'})"
        if self.source_mac:
            pair += f" from MAC {self.source_mac}"
        if self.kind == "crosses":
            tag = f" tagged VLAN {self.vlan}" if self.vlan is not None else ""
            tag += f" in VXLAN VNI {self.vni}" if self.vni is not None else ""
            tag += f" in GRE key {self.key}" if self.key is not None else ""
            return f"{what}{pair} cross {self.target}{tag}"
        if self.kind == "never_on":
            return f"{what}{pair} never appear on {self.target}"
        if self.kind == "reaches":
            return f"{what}{pair} reach {self.target}"
        if self.kind == "passes":
            return f"{what}{pair} pass through router {self.target}"
        if self.kind == "never_passes":
            return f"{what}{pair} never pass through router {self.target}"
        return f"{what}{pair} never reach {self.target}"


@dataclass(frozen=True)
class Check:
    name: str
    source: str            # instance or external host; for a lease check, the instance
    destination: str       # instance, external host or IPv4 address; "" for a lease check
    proto: str             # icmp | tcp | lease
    port: int | None
    expect: str            # reach | blocked
    path: tuple[PathAssertion, ...]
    line: int


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    source: str
    nodes: tuple[Node, ...]
    physical_networks: tuple[PhysicalNetwork, ...]
    projects: tuple[str, ...]
    networks: tuple[Network, ...]
    instances: tuple[Instance, ...]
    checks: tuple[Check, ...]
    security_groups: tuple[SecurityGroup, ...] = ()
    routers: tuple[Router, ...] = ()
    external_hosts: tuple[ExternalHost, ...] = ()
    l2_population: bool = False
    arp_responder: bool = False
    distributed_routing: bool = False     # the OVS agent's [agent] enable_distributed_routing
    dvr_base_mac: str = DVR_BASE_MAC
    enable_isolated_metadata: bool = False  # the dhcp agent's option: metadata proxies in qdhcp- of networks without a router

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def network(self, name: str) -> Network:
        return next(n for n in self.networks if n.name == name)

    def dhcp_node(self, network: str) -> str | None:
        """The node running NETWORK's DHCP server: the first network node attached to its
        physical network (None without DHCP)."""
        net = self.network(network)
        if not net.dhcp:
            return None
        physnet = self.physical_network(net.physical_network)
        return next((n.name for n in self.nodes if n.role == "network" and n.name in physnet.nodes), None)

    def physical_network(self, name: str) -> PhysicalNetwork:
        return next(p for p in self.physical_networks if p.name == name)

    def instance(self, name: str) -> Instance:
        return next(i for i in self.instances if i.name == name)

    def security_group(self, project: str, name: str) -> SecurityGroup | None:
        return next((g for g in self.security_groups if g.project == project and g.name == name), None)
