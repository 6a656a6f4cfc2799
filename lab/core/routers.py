"""Router placement: where a router's instances go and what each one has. Pure.

A router (``RouterPlan``) is a set of router instances (``RouterInstance``), each a
namespace on a node with a role:

- ``legacy``: the l3 agent's centralized router, ``qrouter-<router uuid>`` on the router's
  network node, holding every ``qr-`` interface, the ``qg-`` gateway, SNAT and floating IPs.
- ``dvr_local``: a distributed router's ``qrouter-<router uuid>`` on every host whose L3
  agent runs in a DVR mode and that has a DVR-serviced port (instance, DHCP) on one of the
  router's networks: the **same** ``qr-`` ports (names, addresses, MACs) everywhere, and a
  permanent neighbour entry for every non-router port of its subnets
  (``DvrLocalRouter._set_subnet_arp_info``). East-west is routed here, on the sending host.
- ``dvr_snat`` is reserved (not built yet): a ``snat-<router uuid>`` namespace (``sg-`` ports,
  ``qg-``) on the ``dvr_snat`` node, and ``fip-<external network uuid>`` namespaces
  (``FipNamespacePlan``) that belong to a (node, external network) pair and are shared by
  the routers of that node.

To add a router mode: give ``placements`` the (node, role) pairs it has and ``instance``
the ports each role has; plan, runtime, checks, trace and graph iterate the instances.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from lab.core import naming

if TYPE_CHECKING:  # pragma: no cover
    from lab.core.plan import RouterInstance
    from lab.core.scenario import Network, Router, Scenario

LEGACY = "legacy"
DVR_LOCAL = "dvr_local"         # reserved: DVR's qrouter- on a compute (and on the dvr_snat node)
DVR_SNAT = "dvr_snat"           # reserved: DVR's snat- on the dvr_snat node
ROLES = (LEGACY, DVR_LOCAL)     # the roles built today
RESERVED_ROLES = (DVR_SNAT,)
DVR_AGENT_MODES = ("dvr", "dvr_snat", "dvr_no_external")    # L3 agents that host DVR local routers
NAMESPACE_PREFIX = {LEGACY: naming.QROUTER, DVR_LOCAL: naming.QROUTER, DVR_SNAT: naming.SNAT}


def placements(scenario: "Scenario", router: "Router") -> tuple[tuple[str, str], ...]:
    """(node, role) of every instance of ROUTER, in node order. Legacy: one, on its node.
    Distributed: a dvr_local instance on every DVR host of its networks."""
    if not router.distributed:
        return ((router.node, LEGACY),)
    hosts = dvr_hosts(scenario.nodes, scenario.physical_networks, scenario.networks,
                      [(i.node, i.network) for i in scenario.instances], router.interfaces)
    return tuple((h, DVR_LOCAL) for h in hosts)


def dvr_hosts(nodes, physnets, networks, ports, interfaces) -> tuple[str, ...]:
    """The nodes (in node order) with a DVR-serviced port on one of INTERFACES' networks:
    an instance (PORTS: (node, network name) pairs) or a DHCP server (neutron-lib
    is_dvr_serviced: compute:*, network:dhcp...)."""
    wanted = {getattr(i, "network", None) or i.name for i in interfaces}
    physnet_nodes = {p.name: p.nodes for p in physnets}
    network_nodes = [n.name for n in nodes if n.role == "network"]
    hosting = {node for node, net in ports if net in wanted}
    for net in networks:
        if net.name in wanted and net.dhcp:
            dhcp = next((n for n in network_nodes if n in physnet_nodes.get(net.physical_network, ())), None)
            hosting |= {dhcp} if dhcp else set()
    return tuple(n.name for n in nodes if n.name in hosting)


def instance(lab: str, scenario: "Scenario", router: "Router", node: str, role: str, count: int,
             lvid: Callable[[str], int], ns_port) -> "RouterInstance":
    """The instance of ROUTER on NODE with ROLE (one of COUNT instances). LVID allocates the
    node's local VLAN of a network; NS_PORT(network, port id, prefix, ip, mac, local VLAN,
    device owner) makes a NamespacePort."""
    from lab.core.plan import FloatingIP, RouterInstance
    if role not in ROLES:
        raise ValueError(f"router role {role!r} is not built yet (built: {', '.join(ROLES)})")
    owner = "network:router_interface_distributed" if role == DVR_LOCAL else "network:router_interface"
    ifaces = tuple(ns_port(i.network, i.port_id, naming.QR, i.ip, i.mac, lvid(i.network), owner)
                   for i in router.interfaces)
    if role == DVR_LOCAL:
        return RouterInstance(name=naming.router_target(router.name, node, count), router=router.name,
                              node=node, role=role,
                              netns=naming.agent_netns(lab, node, naming.QROUTER, router.router_id),
                              interfaces=ifaces, gateway=None, external_gateway_ip=None, floating_ips=(),
                              neighbours=_neighbours(scenario, ifaces))
    gateway, ext_gw, fips = None, None, ()
    if router.external_network:
        ext: Network = next(n for n in scenario.networks if n.name == router.external_network)
        gateway = ns_port(ext.name, router.gateway_port_id, naming.QG, router.gateway_ip, router.gateway_mac,
                          lvid(ext.name), "network:router_gateway")
        ext_gw = ext.gateway
        served = {i.network for i in router.interfaces}
        fips = tuple(FloatingIP(i.floating_ip, i.ip, i.name) for i in scenario.instances
                     if i.floating_ip and i.network in served)
    return RouterInstance(name=naming.router_target(router.name, node, count), router=router.name,
                          node=node, role=role,
                          netns=naming.agent_netns(lab, node, NAMESPACE_PREFIX[role], router.router_id),
                          interfaces=ifaces, gateway=gateway, external_gateway_ip=ext_gw, floating_ips=fips)


def _neighbours(scenario: "Scenario", ifaces) -> tuple:
    """DvrLocalRouter._set_subnet_arp_info: a permanent neighbour entry on each qr- for every
    port of its subnet that is not a router interface: instances and the DHCP port."""
    from lab.core.plan import Neighbour
    out = []
    for q in ifaces:
        net = scenario.network(q.network)
        if net.dhcp and net.dhcp_ip:
            out.append(Neighbour(q.ns_dev, net.dhcp_ip, naming.port_mac(net.dhcp_port_id)))
        out += [Neighbour(q.ns_dev, i.ip, i.mac) for i in scenario.instances if i.network == q.network]
    return tuple(out)
