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
- ``dvr_snat``: a distributed router with an external gateway also gets ``snat-<router uuid>``
  on its ``dvr_snat`` node (``DvrEdgeRouter``): one ``sg-`` port per internal subnet (the
  server's centralized SNAT port: its own address and MAC on the subnet) and the ``qg-``
  gateway, the gateway's SNAT rules and the SnatNamespace sysctls. Every ``dvr_local``
  instance of such a router then redirects what has no better route to the subnet's ``sg-``
  address (``DvrLocalRouter._snat_redirect_modify``: ``ip rule from <qr cidr> lookup <idx>
  priority <idx>``, ``default via <sg- ip> dev qr- table <idx>``, idx = the qr- address as
  an integer), and knows the ``sg-`` ports as permanent neighbours.
- ``fip-<external network uuid>`` namespaces (``FipNamespacePlan``, floating IPs on the
  compute) are reserved: a (node, external network) pair shared by the routers of that node.

To add a router mode: give ``placements`` the (node, role) pairs it has and ``instance``
the ports each role has; plan, runtime, checks, trace and graph iterate the instances.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Callable

from lab.core import naming

if TYPE_CHECKING:  # pragma: no cover
    from lab.core.plan import RouterInstance
    from lab.core.scenario import Network, Router, Scenario

LEGACY = "legacy"
DVR_LOCAL = "dvr_local"         # DVR's qrouter- on a compute (and on the dvr_snat node)
DVR_SNAT = "dvr_snat"           # DVR's snat- on the dvr_snat node

# The sysctls Neutron's l3 agent sets in every qrouter- (Neutron 29, as the reference in
# tests/golden/neutron/*/router-*.net records them): Namespace.create (arp_ignore=1,
# arp_announce=2, nf_conntrack_tcp_be_liberal=1), RouterNamespace/RouterInfo (ip_forward=1)
# and the interface driver's init_router_port (promote_secondaries=1). Applied in order by
# lab/runtime/agents.py (router_links).
QROUTER_SYSCTLS: tuple[tuple[str, str], ...] = (
    ("net.ipv4.conf.all.arp_ignore", "1"),
    ("net.ipv4.conf.all.arp_announce", "2"),
    ("net.netfilter.nf_conntrack_tcp_be_liberal", "1"),
    ("net.ipv4.conf.all.promote_secondaries", "1"),
    ("net.ipv4.ip_forward", "1"),
)
# SnatNamespace.create: Namespace.create's sysctls, ip_nonlocal_bind=1 and
# nf_conntrack_tcp_loose=0 (mid-stream TCP is not taken over by SNAT); promote_secondaries
# from the interface driver's init_router_port, as in qrouter-.
SNAT_SYSCTLS: tuple[tuple[str, str], ...] = QROUTER_SYSCTLS + (
    ("net.ipv4.ip_nonlocal_bind", "1"),
    ("net.netfilter.nf_conntrack_tcp_loose", "0"),
)
ROLES = (LEGACY, DVR_LOCAL, DVR_SNAT)     # the roles built today
RESERVED_ROLES: tuple[str, ...] = ()
DVR_AGENT_MODES = ("dvr", "dvr_snat", "dvr_no_external")    # L3 agents that host DVR local routers
NAMESPACE_PREFIX = {LEGACY: naming.QROUTER, DVR_LOCAL: naming.QROUTER, DVR_SNAT: naming.SNAT}


def placements(scenario: "Scenario", router: "Router") -> tuple[tuple[str, str], ...]:
    """(node, role) of every instance of ROUTER, in node order. Legacy: one, on its node.
    Distributed: a dvr_local instance on every DVR host of its networks."""
    if not router.distributed:
        return ((router.node, LEGACY),)
    hosts = dvr_hosts(scenario.nodes, scenario.physical_networks, scenario.networks,
                      [(i.node, i.network) for i in scenario.instances], router.interfaces)
    if not router.external_network:
        return tuple((h, DVR_LOCAL) for h in hosts)
    # DvrEdgeRouter on the gateway's dvr_snat node: its qrouter- (the sg- ports are DVR-serviced
    # there) and snat-
    hosts = tuple(n.name for n in scenario.nodes if n.name in set(hosts) | {router.node})
    return tuple((h, DVR_LOCAL) for h in hosts) + ((router.node, DVR_SNAT),)


def qrouter_count(placed: tuple[tuple[str, str], ...]) -> int:
    """How many qrouter- instances a router has (what its targets are named after)."""
    return sum(1 for _, role in placed if role != DVR_SNAT)


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
    if role == DVR_SNAT:
        return _snat_instance(lab, scenario, router, node, lvid, ns_port)
    owner = "network:router_interface_distributed" if role == DVR_LOCAL else "network:router_interface"
    ifaces = tuple(ns_port(i.network, i.port_id, naming.QR, i.ip, i.mac, lvid(i.network), owner)
                   for i in router.interfaces)
    if role == DVR_LOCAL:
        sg = {p.network: p for p in router.snat_ports}
        fips, link = _local_floating_ips(lab, scenario, router, node)
        return RouterInstance(name=naming.router_target(router.name, node, count), router=router.name,
                              node=node, role=role,
                              netns=naming.agent_netns(lab, node, naming.QROUTER, router.router_id),
                              interfaces=ifaces, gateway=None, external_gateway_ip=None, floating_ips=fips,
                              neighbours=_neighbours(scenario, ifaces, sg),
                              rules=_fip_rules(scenario, node, router, fips) + _snat_redirect_rules(ifaces, sg),
                              routes=_fip_routes(link) + _snat_redirect_routes(ifaces, sg), fip_link=link)
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


def _neighbours(scenario: "Scenario", ifaces, snat_ports) -> tuple:
    """DvrLocalRouter._set_subnet_arp_info: a permanent neighbour entry on each qr- for every
    port of its subnet that is not a router interface: instances, the DHCP port and the
    subnet's centralized SNAT (sg-) port (also what external_gateway_added adds)."""
    from lab.core.plan import Neighbour
    out = []
    for q in ifaces:
        net = scenario.network(q.network)
        if net.dhcp and net.dhcp_ip:
            out.append(Neighbour(q.ns_dev, net.dhcp_ip, naming.port_mac(net.dhcp_port_id)))
        out += [Neighbour(q.ns_dev, i.ip, i.mac) for i in scenario.instances if i.network == q.network]
        if q.network in snat_ports:
            out.append(Neighbour(q.ns_dev, snat_ports[q.network].ip, snat_ports[q.network].mac))
    return tuple(out)


def snat_index(ip: str) -> int:
    """DvrLocalRouter._get_snat_idx for IPv4: the qr- address (of <ip>/<prefixlen>) as an integer,
    both the table and the rule priority of that subnet's SNAT redirect."""
    return int(ipaddress.IPv4Address(ip))


def _snat_redirect_rules(ifaces, snat_ports) -> tuple:
    """ip rule add from <qr ip>/<prefixlen> lookup <idx> priority <idx> (the kernel keeps the
    network address of the prefix), for each qr- whose subnet has an sg- port."""
    from lab.core.plan import IpRule
    return tuple(IpRule(priority=snat_index(q.ip), table=snat_index(q.ip),
                        source=str(ipaddress.ip_interface(f"{q.ip}/{q.prefixlen}").network))
                 for q in ifaces if q.network in snat_ports)


def _snat_redirect_routes(ifaces, snat_ports) -> tuple:
    """ip route add default via <sg- ip> dev qr-... table <idx>."""
    from lab.core.plan import TableRoute
    return tuple(TableRoute(table=snat_index(q.ip), destination="0.0.0.0/0", via=snat_ports[q.network].ip,
                            dev=q.ns_dev)
                 for q in ifaces if q.network in snat_ports)


def _snat_instance(lab: str, scenario: "Scenario", router: "Router", node: str, lvid, ns_port) -> "RouterInstance":
    """DvrEdgeRouter's snat-<router uuid>: an sg- port per internal subnet and the qg- gateway
    with the default route via the external subnet's gateway; no floating IPs (they are on the
    computes' fip- namespaces)."""
    from lab.core.plan import RouterInstance
    ext: Network = scenario.network(router.external_network)
    sg = tuple(ns_port(p.network, p.port_id, naming.SG, p.ip, p.mac, lvid(p.network),
                       "network:router_centralized_snat") for p in router.snat_ports)
    gateway = ns_port(ext.name, router.gateway_port_id, naming.QG, router.gateway_ip, router.gateway_mac,
                      lvid(ext.name), "network:router_gateway")
    return RouterInstance(name=naming.snat_target(router.name), router=router.name, node=node, role=DVR_SNAT,
                          netns=naming.agent_netns(lab, node, naming.SNAT, router.router_id),
                          interfaces=sg, gateway=gateway, external_gateway_ip=ext.gateway, floating_ips=())


def sysctls(r: "RouterInstance") -> tuple[tuple[str, str], ...]:
    """The sysctls the L3 agent sets in a router instance's namespace, in order. A DVR local
    router with SNAT redirects also turns send_redirects off (external_gateway_added: all;
    _snat_redirect_modify: each redirecting qr-)."""
    if r.role == DVR_SNAT:
        return SNAT_SYSCTLS
    if not r.rules:
        return QROUTER_SYSCTLS
    redirecting = {route.dev for route in r.routes if route.table != FIP_RT_TBL}
    return QROUTER_SYSCTLS + (("net.ipv4.conf.all.send_redirects", "0"),) + tuple(
        (f"net.ipv4.conf.{dev}.send_redirects", "0") for dev in sorted(redirecting))



# --------------------------------------------------------------------------- floating IPs (fip-)

FIP_RT_TBL = 16                 # dvr_fip_ns: the qrouter- table of the way out through fip-
FIP_PR_START = 32768            # dvr_fip_ns: the first per-floating-IP rule priority
DVR_FIP_LL_CIDR = "169.254.64.0/18"     # neutron-lib: the rfp-/fpr- /31s
# FipNamespace.create (Namespace.create's sysctls, ip_nonlocal_bind=1), promote_secondaries
# from the interface driver's init_router_port of fg-; per fg- device: proxy_arp=1 and
# proxy_delay=1 (_create_gateway_port)
FIP_SYSCTLS: tuple[tuple[str, str], ...] = (
    ("net.ipv4.conf.all.arp_ignore", "1"),
    ("net.ipv4.conf.all.arp_announce", "2"),
    ("net.netfilter.nf_conntrack_tcp_be_liberal", "1"),
    ("net.ipv4.conf.all.promote_secondaries", "1"),
    ("net.ipv4.ip_forward", "1"),
    ("net.ipv4.ip_nonlocal_bind", "1"),
)


def fip_sysctls(fg_dev: str) -> tuple[tuple[str, str], ...]:
    return FIP_SYSCTLS + ((f"net.ipv4.neigh.{fg_dev}.proxy_delay", "1"), (f"net.ipv4.conf.{fg_dev}.proxy_arp", "1"))


def _fip_routers(scenario: "Scenario", node: str) -> list["Router"]:
    """The distributed routers with an fg- port on NODE (every dvr/dvr_snat host of a router with
    a gateway, DvrLocalRouter.process_external), in router order."""
    return [r for r in scenario.routers if r.distributed and r.external_network
            and any(p.node == node for p in r.fip_agent_ports)]


def _node_floating_ips(scenario: "Scenario", router: "Router", node: str) -> tuple:
    from lab.core.plan import FloatingIP
    served = {i.network for i in router.interfaces}
    return tuple(FloatingIP(i.floating_ip, i.ip, i.name) for i in scenario.instances
                 if i.floating_ip and i.network in served and i.node == node)


def _local_floating_ips(lab: str, scenario: "Scenario", router: "Router", node: str):
    """The floating IPs of ROUTER bound on NODE and its rfp-/fpr- link (connect_rtr_2_fip: on
    every host with an fg- port, floating IP or not): the link-local allocator's /31s taken in
    router order (Neutron pops an arbitrary free one and remembers it in
    fip-linklocal-networks; the lab takes them from the start)."""
    from lab.core.plan import FipLink
    fips = _node_floating_ips(scenario, router, node)
    if router.name not in [r.name for r in _fip_routers(scenario, node)]:
        return fips, None
    index = [r.name for r in _fip_routers(scenario, node)].index(router.name)
    rfp = ipaddress.IPv4Network(DVR_FIP_LL_CIDR).network_address + 2 * index
    ext: Network = scenario.network(router.external_network)
    ids = [naming.object_uuid(lab, kind, f"{router.name}/{node}") for kind in ("rfp", "fpr")]
    return fips, FipLink(router=router.name, rfp_dev=naming.fip_link_device(naming.RFP, router.router_id),
                         fpr_dev=naming.fip_link_device(naming.FPR, router.router_id), rfp_ip=str(rfp),
                         fpr_ip=str(rfp + 1), rfp_mac=naming.port_mac(ids[0]), fpr_mac=naming.port_mac(ids[1]),
                         mtu=ext.mtu, table=int(rfp + 1))


def _fip_rules(scenario: "Scenario", node: str, router: "Router", fips) -> tuple:
    """_add_floating_ip_rule: ip rule add from <fixed ip> lookup 16 priority <p>, p from 32768
    (FipRulePriorityAllocator, shared by the node's routers: taken in router, then instance order)."""
    from lab.core.plan import IpRule
    before = 0
    for r in _fip_routers(scenario, node):
        if r.name == router.name:
            break
        before += len(_node_floating_ips(scenario, r, node))
    return tuple(IpRule(priority=FIP_PR_START + before + n, table=FIP_RT_TBL, source=f"{f.fixed_ip}/32")
                 for n, f in enumerate(fips))


def _fip_routes(link) -> tuple:
    """create_rtr_2_fip_link: default via the fpr- address dev rfp- table 16."""
    from lab.core.plan import TableRoute
    if link is None:
        return ()
    return (TableRoute(table=FIP_RT_TBL, destination="0.0.0.0/0", via=link.fpr_ip, dev=link.rfp_dev),)


def fip_namespaces(lab: str, scenario: "Scenario", node: str, instances: dict, lvid, ns_port) -> list:
    """NODE's fip-<external network uuid> namespaces: one per external network of the distributed
    routers with an fg- port here, holding the fg- port, each router's fpr- and the floating
    IPs' /32 routes.
    INSTANCES: router name -> its router instances made so far (this node's included)."""
    from lab.core.plan import FipNamespacePlan, FipRoute
    out = []
    for ext in dict.fromkeys(r.external_network for r in _fip_routers(scenario, node)):
        net: Network = scenario.network(ext)
        fg = next(p for r in scenario.routers for p in r.fip_agent_ports if p.node == node and p.network == ext)
        locals_ = [i for r in _fip_routers(scenario, node) if r.external_network == ext
                   for i in instances[r.name] if i.node == node and i.role == DVR_LOCAL and i.fip_link]
        gateway = ns_port(ext, fg.port_id, naming.FG, fg.ip, fg.mac, lvid(ext), "network:floatingip_agent_gateway")
        out.append(FipNamespacePlan(
            name=naming.fip_target(ext, node), node=node, external_network=ext,
            netns=naming.agent_netns(lab, node, naming.FIP, net.network_id), gateway=gateway,
            external_gateway_ip=net.gateway, links=tuple(i.fip_link for i in locals_),
            routes=tuple(FipRoute(f.address, i.fip_link.rfp_ip, i.fip_link.fpr_dev)
                         for i in locals_ for f in i.floating_ips)))
    return out
