"""Router placement: where a router's instances go and what each one has. Pure.

A router (``RouterPlan``) is a set of router instances (``RouterInstance``), each a
namespace on a node with a role:

- ``legacy``: the l3 agent's centralized router, ``qrouter-<router uuid>`` on the router's
  network node, holding every ``qr-`` interface, the ``qg-`` gateway, SNAT and floating IPs.
- ``dvr_local`` and ``dvr_snat`` are reserved for DVR (not built yet): the same ``qr-``
  ports in a ``qrouter-`` on every compute with a port of the router's networks and on the
  ``dvr_snat`` node, a ``snat-<router uuid>`` namespace (``sg-`` ports, ``qg-``) on the
  ``dvr_snat`` node, and ``fip-<external network uuid>`` namespaces (``FipNamespacePlan``)
  that belong to a (node, external network) pair and are shared by the routers of that node.

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
ROLES = (LEGACY,)               # the roles built today
RESERVED_ROLES = (DVR_LOCAL, DVR_SNAT)
NAMESPACE_PREFIX = {LEGACY: naming.QROUTER, DVR_LOCAL: naming.QROUTER, DVR_SNAT: naming.SNAT}


def placements(scenario: "Scenario", router: "Router") -> tuple[tuple[str, str], ...]:
    """(node, role) of every instance of ROUTER, in node order. Legacy: one, on its node."""
    return ((router.node, LEGACY),)


def instance(lab: str, scenario: "Scenario", router: "Router", node: str, role: str, count: int,
             lvid: Callable[[str], int], ns_port) -> "RouterInstance":
    """The instance of ROUTER on NODE with ROLE (one of COUNT instances). LVID allocates the
    node's local VLAN of a network; NS_PORT(network, port id, prefix, ip, mac, local VLAN,
    device owner) makes a NamespacePort."""
    from lab.core.plan import FloatingIP, RouterInstance
    if role not in ROLES:
        raise ValueError(f"router role {role!r} is not built yet (built: {', '.join(ROLES)})")
    ifaces = tuple(ns_port(i.network, i.port_id, naming.QR, i.ip, i.mac, lvid(i.network),
                           "network:router_interface") for i in router.interfaces)
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
