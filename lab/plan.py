"""Scenario -> Plan: every object `lab up` will make, named as Neutron names it. Pure.

The plan is the single source of names: runtime, checks, status and exec read names from the
plan (or from its JSON snapshot saved by `up`) and never derive them again.
"""

from __future__ import annotations

import ipaddress
from dataclasses import asdict, dataclass, field

from . import naming
from .scenario import Scenario

DATAPATHS = ("netdev", "system")


@dataclass(frozen=True)
class InstancePort:
    """One instance plugged the iptables_hybrid way:
    eth0 (instance netns) = tap (node) -> qbr (Linux bridge) -> qvb = qvo -> br-int."""

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
    tap: str
    qbr: str
    qvb: str
    qvo: str
    security_groups: tuple[str, ...]
    remote_group_ips: tuple[str, ...]   # members of the port's groups (default: same project)


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
class NodePlan:
    name: str
    role: str
    netns: str
    rundir: str
    physical_bridges: tuple[PhysicalBridge, ...]
    local_vlans: tuple[tuple[str, int], ...]    # (network, local VLAN) in allocation order
    ports: tuple[InstancePort, ...]


@dataclass(frozen=True)
class WireMember:
    node: str
    wire_ifname: str   # the veth end on the wire's bridge (named after the node)
    node_ifname: str   # the node's NIC (eth1, eth2, ...)


@dataclass(frozen=True)
class WirePlan:
    """A physical network: a namespace with one Linux bridge where every node's NIC lands."""

    name: str
    netns: str
    bridge: str
    members: tuple[WireMember, ...]


@dataclass(frozen=True)
class Plan:
    lab: str
    scenario_file: str
    datapath: str
    cookie: str
    nodes: tuple[NodePlan, ...]
    wires: tuple[WirePlan, ...]

    def node(self, name: str) -> NodePlan:
        return next(n for n in self.nodes if n.name == name)

    def wire(self, name: str) -> WirePlan:
        return next(w for w in self.wires if w.name == name)

    @property
    def ports(self) -> tuple[InstancePort, ...]:
        return tuple(p for n in self.nodes for p in n.ports)

    def port(self, instance: str) -> InstancePort:
        return next(p for p in self.ports if p.instance == instance)

    def namespaces(self) -> list[str]:
        """Every namespace of the lab, in creation order."""
        return ([w.netns for w in self.wires] + [n.netns for n in self.nodes]
                + [p.netns for p in self.ports])

    def targets(self) -> dict[str, tuple[str, str]]:
        """exec/capture target name -> (kind, netns)."""
        out: dict[str, tuple[str, str]] = {}
        for n in self.nodes:
            out[n.name] = ("node", n.netns)
        for w in self.wires:
            out[w.name] = ("wire", w.netns)
        for p in self.ports:
            out[p.instance] = ("instance", p.netns)
        return out

    def to_json(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_json(data: dict) -> "Plan":
        def port(d):
            return InstancePort(**{**d, "security_groups": tuple(d["security_groups"]),
                                   "remote_group_ips": tuple(d["remote_group_ips"])})

        def phys(d):
            return PhysicalBridge(**{**d, "vlan_translations": tuple(tuple(t) for t in d["vlan_translations"])})

        nodes = tuple(NodePlan(name=n["name"], role=n["role"], netns=n["netns"], rundir=n["rundir"],
                               physical_bridges=tuple(phys(b) for b in n["physical_bridges"]),
                               local_vlans=tuple(tuple(x) for x in n["local_vlans"]),
                               ports=tuple(port(p) for p in n["ports"])) for n in data["nodes"])
        wires = tuple(WirePlan(name=w["name"], netns=w["netns"], bridge=w["bridge"],
                               members=tuple(WireMember(**m) for m in w["members"])) for w in data["wires"])
        return Plan(lab=data["lab"], scenario_file=data["scenario_file"], datapath=data["datapath"],
                    cookie=data["cookie"], nodes=nodes, wires=wires)


def build_plan(scenario: Scenario, datapath: str = "netdev", state_root: str = "/run/neutron-lab") -> Plan:
    if datapath not in DATAPATHS:
        raise ValueError(f"datapath must be one of {DATAPATHS}, not {datapath!r}")
    lab = scenario.name
    networks = {n.name: n for n in scenario.networks}

    # members of each project's default group, for the remote-group ingress rule
    group_members: dict[tuple[str, str], list[str]] = {}
    for inst in scenario.instances:
        project = networks[inst.network].project
        for group in inst.security_groups:
            group_members.setdefault((project, group), []).append(inst.ip)

    # wires and the NIC each node has on them
    wires: list[WirePlan] = []
    nic_of: dict[tuple[str, str], str] = {}   # (node, physnet) -> eth<N>
    nic_count: dict[str, int] = {}
    for physnet in scenario.physical_networks:
        members = []
        for node in physnet.nodes:
            nic_count[node] = nic_count.get(node, 0) + 1
            nic = f"eth{nic_count[node]}"
            nic_of[(node, physnet.name)] = nic
            members.append(WireMember(node=node, wire_ifname=node, node_ifname=nic))
        wires.append(WirePlan(name=physnet.name, netns=naming.netns_name(lab, physnet.name),
                              bridge=physnet.name, members=tuple(members)))

    nodes: list[NodePlan] = []
    for node in scenario.nodes:
        # Local VLANs: 1, 2, ... per node, in the order the node's ports appear (the agent
        # allocates one when it binds the first port of a network).
        local_vlans: dict[str, int] = {}
        for inst in scenario.instances:
            if inst.node == node.name and inst.network not in local_vlans:
                local_vlans[inst.network] = len(local_vlans) + 1
        ports = []
        for inst in scenario.instances:
            if inst.node != node.name:
                continue
            net = networks[inst.network]
            members = sorted({ip for g in inst.security_groups
                              for ip in group_members.get((net.project, g), [])},
                             key=ipaddress.IPv4Address)
            ports.append(InstancePort(
                instance=inst.name, node=node.name, network=net.name, project=net.project,
                port_id=inst.port_id, netns=naming.netns_name(lab, inst.name), ip=inst.ip,
                prefixlen=net.prefixlen, gateway=net.gateway, mac=inst.mac, mtu=net.mtu,
                local_vlan=local_vlans[net.name], segmentation_id=net.segmentation_id,
                network_type=net.type, physical_network=net.physical_network,
                tap=naming.port_device("tap", inst.port_id), qbr=naming.port_device("qbr", inst.port_id),
                qvb=naming.port_device("qvb", inst.port_id), qvo=naming.port_device("qvo", inst.port_id),
                security_groups=inst.security_groups, remote_group_ips=tuple(members)))
        bridges = []
        for physnet in scenario.physical_networks:
            if node.name not in physnet.nodes:
                continue
            int_patch, phy_patch = naming.patch_ports(physnet.bridge)
            translations = tuple((net_name, lvid, networks[net_name].segmentation_id)
                                 for net_name, lvid in local_vlans.items()
                                 if networks[net_name].physical_network == physnet.name)
            bridges.append(PhysicalBridge(bridge=physnet.bridge, physical_network=physnet.name,
                                          nic=nic_of[(node.name, physnet.name)], int_patch=int_patch,
                                          phy_patch=phy_patch, vlan_translations=translations))
        nodes.append(NodePlan(name=node.name, role=node.role, netns=naming.netns_name(lab, node.name),
                              rundir=f"{state_root}/{lab}/nodes/{node.name}",
                              physical_bridges=tuple(bridges), local_vlans=tuple(local_vlans.items()),
                              ports=tuple(ports)))
    return Plan(lab=lab, scenario_file=scenario.source, datapath=datapath,
                cookie=naming.flow_cookie(lab), nodes=tuple(nodes), wires=tuple(wires))
