"""The `routers:` section: legacy routers on a network node, their interfaces (one per
project network, holding its gateway address) and external gateway. ``parse_routers``
validates what is written; ``resolve_routers`` makes the ports once addresses are known."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from lab.core import naming, routers as placement
from lab.core.scenario.checker import Checker, Claims, items, shown
from lab.core.scenario.ipam import Addresses, in_pool, pool_text
from lab.core.scenario.model import Network, Node, PhysicalNetwork, Router, RouterInterface
from lab.core.scenario.yamlsource import LineDict, LineList

KEYS = ("project", "node", "interfaces", "external_gateway", "gateway_ip", "distributed")


@dataclass
class PendingRouter:
    """A router as written, before IPAM: gateway_ip None means 'allocate' (with external)."""

    name: str
    project: str
    node: str
    interfaces: list[Network]
    external: Network | None
    gateway_ip: str | None
    gateway_line: int
    line: int
    distributed: bool = False
    fip_hosts: tuple[str, ...] = ()     # DVR with a gateway: the nodes that get an fg- port


def parse_routers(c: Checker, data: LineDict, projects: list[str], nodes: list[Node],
                  physnets: dict[str, PhysicalNetwork], networks: dict[str, Network],
                  claim: Claims, dvr: bool = False, instances=()) -> list[PendingRouter]:
    out = []
    attached: dict[str, tuple[str, int]] = {}    # network -> (router, line)
    network_nodes = [n.name for n in nodes if n.role == "network"]
    for nm, body, line in items(c, data, "routers", required=False):
        where = f"routers.{nm}"
        c.known_keys(body, KEYS, where)
        if not c.name(nm, line, where, 32):
            continue
        claim("a router", nm, line, where)
        project = c.project(body, f"{where}.project", projects)
        distributed = c.boolean(body, "distributed", f"{where}.distributed", default=False)
        if distributed:
            node = _distributed(c, body, line, where, nodes, dvr)
        else:
            node = _node(c, body, line, where, network_nodes)
            if node is None:
                continue
        interfaces = _interfaces(c, body, nm, where, project, node, physnets, networks, attached)
        external = _external_gateway(c, body, where, node, physnets, networks)
        gateway_ip = _gateway_ip(c, body, where, external)
        fip_hosts: tuple[str, ...] = ()
        if distributed:
            _dvr_hosts_run_dvr(c, body, where, nodes, physnets, networks, instances, interfaces)
            _dvr_floating_ip_hosts(c, where, nodes, physnets, instances, interfaces, external)
            fip_hosts = _dvr_gateway_hosts(c, body, where, node, nodes, physnets, networks, instances,
                                           interfaces, external)
        if project is None:
            continue
        out.append(PendingRouter(nm, project, node or "", interfaces, external, gateway_ip,
                                 body.line_of("gateway_ip"), line, distributed, fip_hosts))
    return out


def _distributed(c: Checker, body: LineDict, line: int, where: str, nodes: list[Node], dvr: bool) -> str | None:
    """A distributed router: the OVS agents must run in DVR mode; its centralized part (the
    gateway's snat-) belongs on a dvr_snat node, and north-south is not built yet."""
    if not dvr:
        c.add(body.line_of("distributed"), f"{where}.distributed",
              "a distributed router needs the OVS agent's DVR mode: set agent: {enable_distributed_routing: true}")
    snat_nodes = [n.name for n in nodes if n.agent_mode == "dvr_snat"]
    node = body.get("node")
    if node is not None and node not in snat_nodes:
        c.add(body.line_of("node"), f"{where}.node", f"{shown(node)} does not run agent_mode dvr_snat "
                                                     f"(dvr_snat nodes: {', '.join(snat_nodes) or 'none'})")
        node = None
    elif node is None and len(snat_nodes) == 1:
        node = snat_nodes[0]
    if "external_gateway" in body:
        gline, gwhere = body.line_of("external_gateway"), f"{where}.external_gateway"
        if not snat_nodes:
            c.add(gline, gwhere, "a distributed router needs a node with agent_mode dvr_snat for its gateway")
        elif node is None:
            c.add(line, f"{where}.node", f"is required when the scenario has {len(snat_nodes)} dvr_snat nodes")
    return node


def _dvr_hosts_run_dvr(c: Checker, body: LineDict, where: str, nodes: list[Node],
                       physnets: dict[str, PhysicalNetwork], networks: dict[str, Network], instances,
                       interfaces: list[Network]) -> None:
    """Every node with a DVR-serviced port (instance, DHCP) on the router's networks gets a
    local qrouter-: it must run an L3 agent in a DVR mode."""
    ports = [(i.node, i.net.name) for i in instances if i.net is not None]
    hosts = placement.dvr_hosts(nodes, physnets.values(), networks.values(), ports, interfaces)
    modes = {n.name: n.agent_mode for n in nodes}
    for host in hosts:
        if modes.get(host) not in placement.DVR_AGENT_MODES:
            c.add(body.line_of("interfaces") if "interfaces" in body else body.line_of("distributed"),
                  f"{where}.interfaces", f"{host} has ports on this distributed router's networks but runs no "
                  f"L3 agent in a DVR mode (agent_mode: {modes.get(host) or 'none'}; needs dvr, "
                  "dvr_no_external or dvr_snat)")


def _dvr_floating_ip_hosts(c: Checker, where: str, nodes: list[Node], physnets: dict[str, PhysicalNetwork],
                           instances, interfaces: list[Network], external: Network | None) -> None:
    """A floating IP of a distributed router lives on its instance's node (fip-, fg-): that node
    runs the L3 agent in dvr or dvr_snat mode and is attached to the external network."""
    if external is None:
        return
    modes = {n.name: n.agent_mode for n in nodes}
    attached = physnets[external.physical_network].nodes
    served = {n.name for n in interfaces}
    for p in (i for i in instances if i.fip is not None and i.net is not None and i.net.name in served):
        line, fwhere = p.body.line_of("floating_ip"), f"instances.{p.name}.floating_ip"
        if modes.get(p.node) not in ("dvr", "dvr_snat"):
            c.add(line, fwhere, f"{p.node} runs no L3 agent in dvr or dvr_snat mode (agent_mode: "
                                f"{modes.get(p.node) or 'none'}), so it cannot host a floating IP of "
                                f"distributed router {where.split('.', 1)[1]} (centralized floating IPs for "
                                "dvr_no_external are not built)")
        elif p.node not in attached:
            c.add(line, fwhere, f"{p.node} is not attached to {external.physical_network}, which carries "
                                f"{external.name}: a distributed router's floating IP lives on its instance's node")


def _dvr_gateway_hosts(c: Checker, body: LineDict, where: str, node: str | None, nodes: list[Node],
                       physnets: dict[str, PhysicalNetwork], networks: dict[str, Network], instances,
                       interfaces: list[Network], external: Network | None) -> tuple[str, ...]:
    """DvrLocalRouter.process_external: every dvr/dvr_snat host of a router with a gateway asks
    the server for its fg- port and makes fip-<external network> with the rfp-/fpr- link,
    floating IP or not (dvr_no_external makes none): such a host must be attached to the
    external network. Returns those hosts, in node order."""
    if external is None:
        return ()
    ports = [(i.node, i.net.name) for i in instances if i.net is not None]
    hosts = set(placement.dvr_hosts(nodes, physnets.values(), networks.values(), ports, interfaces))
    hosts |= {node} if node else set()
    modes = {n.name: n.agent_mode for n in nodes}
    out = tuple(n.name for n in nodes if n.name in hosts and modes.get(n.name) in ("dvr", "dvr_snat"))
    attached = physnets[external.physical_network].nodes
    for host in (h for h in out if h not in attached):
        c.add(body.line_of("external_gateway"), f"{where}.external_gateway",
              f"{host} is not attached to {external.physical_network}, which carries {external.name}: it has "
              f"a local copy of this distributed router (agent_mode {modes[host]}), so its L3 agent makes "
              f"fip-{external.name} with an fg- port there (DvrLocalRouter.process_external)")
    return out


def _node(c: Checker, body: LineDict, line: int, where: str, network_nodes: list[str]) -> str | None:
    """The network node the router runs on (default: the only one)."""
    node = body.get("node")
    if node is None:
        if len(network_nodes) != 1:
            c.add(line, f"{where}.node", f"is required when the scenario has {len(network_nodes)} network nodes")
            return None
        return network_nodes[0]
    if node not in network_nodes:
        c.add(body.line_of("node"), f"{where}.node",
              f"{shown(node)} is not a network node (network nodes: {', '.join(network_nodes) or 'none'})")
        return None
    return node


def _interfaces(c: Checker, body: LineDict, nm: str, where: str, project: str | None, node: str | None,
                physnets: dict[str, PhysicalNetwork], networks: dict[str, Network],
                attached: dict[str, tuple[str, int]]) -> list[Network]:
    ifaces_raw = body.get("interfaces", LineList())
    interfaces: list[Network] = []
    if not isinstance(ifaces_raw, LineList):
        c.add(body.line_of("interfaces"), f"{where}.interfaces", "must be a list of network names")
        return interfaces
    for i, n in enumerate(ifaces_raw):
        iline, iwhere = ifaces_raw.line_of(i), f"{where}.interfaces[{i}]"
        net = networks.get(str(n))
        if net is None:
            c.add(iline, iwhere, f"unknown or invalid network {shown(n)}")
        elif net.external:
            c.add(iline, iwhere, f"{net.name} is external: give it as external_gateway")
        elif project is not None and net.project != project:
            c.add(iline, iwhere, f"network {net.name} belongs to project {net.project}, "
                                 f"not to the router's project {project}")
        elif net.name in attached:
            other, oline = attached[net.name]
            c.add(iline, iwhere, f"network {net.name} is already attached to router {other} "
                                 f"({c.at(oline)}); its gateway address can be on one router only")
        elif node and node not in physnets[net.physical_network].nodes:
            c.add(iline, iwhere, f"{node} is not attached to {net.physical_network}, which carries {net.name}")
        else:
            attached[net.name] = (nm, iline)
            interfaces.append(net)
    return interfaces


def _external_gateway(c: Checker, body: LineDict, where: str, node: str | None, physnets: dict[str, PhysicalNetwork],
                      networks: dict[str, Network]) -> Network | None:
    if "external_gateway" not in body:
        return None
    ext = networks.get(str(body["external_gateway"]))
    eline, ewhere = body.line_of("external_gateway"), f"{where}.external_gateway"
    if ext is None:
        c.add(eline, ewhere, f"unknown or invalid network {shown(body['external_gateway'])}")
    elif not ext.external:
        c.add(eline, ewhere, f"network {ext.name} is not external (set external: true on it)")
    elif node and node not in physnets[ext.physical_network].nodes:
        c.add(eline, ewhere, f"{node} is not attached to {ext.physical_network}, which carries {ext.name}")
    else:
        return ext
    return None


def _gateway_ip(c: Checker, body: LineDict, where: str, external: Network | None) -> str | None:
    if "gateway_ip" not in body:
        return None
    gline, gwhere = body.line_of("gateway_ip"), f"{where}.gateway_ip"
    if external is None:
        c.add(gline, gwhere, "a gateway address needs an external_gateway")
        return None
    try:
        gateway_ip = str(ipaddress.IPv4Address(str(body["gateway_ip"])))
    except ValueError:
        c.add(gline, gwhere, f"{shown(body['gateway_ip'])} is not an IPv4 address")
        return None
    if not in_pool(external, gateway_ip):
        c.add(gline, gwhere, f"{gateway_ip} is outside the allocation pool of "
                             f"{external.name} ({pool_text(external)})")
        return None
    return gateway_ip


def resolve_routers(lab: str, pending: list[PendingRouter], addresses: Addresses) -> list[Router]:
    """Routers with their ports: the gateway port (address allocated when none was given) and
    one interface per network, holding the network's gateway address."""
    routers: list[Router] = []
    for r in pending:
        gw_ip, gw_port, gw_mac = r.gateway_ip, None, None
        ext = r.external
        if ext is not None:
            if gw_ip is None:
                gw_ip = addresses.allocate(ext, f"router {r.name}", r.line, f"routers.{r.name}.external_gateway")
            gw_port = naming.object_uuid(lab, "router-gateway", r.name)
            gw_mac = naming.port_mac(gw_port)
        interfaces = []
        for n in r.interfaces:
            pid = naming.object_uuid(lab, "router-interface", f"{r.name}/{n.name}")
            interfaces.append(RouterInterface(n.name, pid, n.gateway, naming.port_mac(pid)))
        snat = _snat_ports(lab, r, addresses) if r.distributed and ext is not None else ()
        routers.append(Router(r.name, r.project, r.node, naming.object_uuid(lab, "router", r.name),
                              tuple(interfaces), ext.name if ext else None, gw_port, gw_ip, gw_mac, r.line,
                              distributed=r.distributed, snat_ports=snat))
    return routers


def _snat_ports(lab: str, r: PendingRouter, addresses: Addresses) -> tuple[RouterInterface, ...]:
    """DVR: the server's centralized SNAT ports (l3_dvr_db _create_snat_intf_ports_if_not_exists,
    made when the gateway is set): one per interface subnet, the lowest free address there."""
    out = []
    for n in r.interfaces:
        ip = addresses.allocate(n, f"SNAT port of router {r.name}", r.line, f"routers.{r.name}.external_gateway")
        pid = naming.object_uuid(lab, "router-snat", f"{r.name}/{n.name}")
        if ip is not None:
            out.append(RouterInterface(n.name, pid, ip, naming.port_mac(pid)))
    return tuple(out)
