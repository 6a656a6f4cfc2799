"""Every address of the scenario, in the order Neutron would hand them out.

Explicit addresses first (instances, external hosts, router gateways, floating IPs; a
duplicate is a problem), then what Neutron allocates, in the order it would: DHCP ports (made
with the subnet), instances, router gateways, floating IPs. Allocation takes the lowest free
address of the pool (``ipam.Addresses``).
"""

from __future__ import annotations

import dataclasses

from lab.core import naming
from lab.core.scenario.checker import Checker
from lab.core.scenario.external_hosts import PendingHost
from lab.core.scenario.instances import PendingInstance, resolve_instances
from lab.core.scenario.ipam import Addresses, in_pool, pool_text
from lab.core.scenario.model import FipAgentPort, Instance, Network, Router
from lab.core.scenario.routers import PendingRouter, resolve_routers


def assign_addresses(c: Checker, lab: str, networks: list[Network], pending: list[PendingInstance],
                     hosts: list[PendingHost], routers: list[PendingRouter]
                     ) -> tuple[list[Network], list[Instance], list[Router]]:
    addresses = Addresses(c)
    for p in pending:
        if p.ip is not None:
            addresses.take(p.net.name, p.ip, p.name, p.body.line_of("ip"), f"instances.{p.name}.ip")
    for h in hosts:
        addresses.take(h.network.name, h.ip, h.name, h.ip_line, f"external_hosts.{h.name}.ip")
    for r in routers:
        if r.gateway_ip:
            addresses.take(r.external.name, r.gateway_ip, f"router {r.name}", r.gateway_line,
                           f"routers.{r.name}.gateway_ip")
    fip_owner = _floating_ips(c, pending, routers, addresses)
    networks = [_with_dhcp_port(lab, net, addresses) for net in networks]
    instances = resolve_instances(c, lab, pending, addresses)
    resolved_routers = resolve_routers(lab, routers, addresses)
    instances = _auto_floating_ips(instances, fip_owner, addresses)
    nets = {n.name: n for n in networks}
    fip_hosts = {r.name: r.fip_hosts for r in routers}
    return networks, instances, _with_fip_agent_ports(lab, resolved_routers, instances, addresses, nets, fip_hosts)


def _with_fip_agent_ports(lab: str, routers: list[Router], instances: list[Instance],
                          addresses: Addresses, networks: dict[str, Network],
                          fip_hosts: dict[str, tuple[str, ...]]) -> list[Router]:
    """DVR: the server makes a floating IP agent gateway port (fg-) for a (node, external
    network) when that node's L3 agent asks (get_agent_gateway_port, from
    DvrLocalRouter.process_external on every dvr/dvr_snat host of a router with a gateway;
    FIP_HOSTS: router -> those hosts). After the floating IPs have their addresses, in router
    order: first the nodes with a floating IP (instance order), then the others (node order)."""
    ports: dict[tuple[str, str], FipAgentPort] = {}
    out = []
    for r in routers:
        if not (r.distributed and r.external_network):
            out.append(r)
            continue
        served = {i.network for i in r.interfaces}
        mine: list[FipAgentPort] = []
        wanted = [(i.node, i.line, f"instances.{i.name}.floating_ip")
                  for i in instances if i.floating_ip and i.network in served]
        wanted += [(h, r.line, f"routers.{r.name}.external_gateway") for h in fip_hosts.get(r.name, ())]
        for node, line, where in wanted:
            key = (node, r.external_network)
            if key not in ports:
                ip = addresses.allocate(networks[r.external_network], f"floating IP agent gateway of {node}",
                                        line, where)
                pid = naming.object_uuid(lab, "fip-agent-gateway", f"{node}/{r.external_network}")
                ports[key] = FipAgentPort(node, r.external_network, pid, ip or "", naming.port_mac(pid))
            if ports[key] not in mine:
                mine.append(ports[key])
        out.append(dataclasses.replace(r, fip_agent_ports=tuple(mine)))
    return out


def _floating_ips(c: Checker, pending: list[PendingInstance], routers: list[PendingRouter],
                  addresses: Addresses) -> dict[str, Network]:
    """Take the explicit floating IPs; return instance -> the external network its floating
    IP comes from (that of the router on the instance's network)."""
    fip_owner: dict[str, Network] = {}
    router_of_network = {n.name: r for r in routers for n in r.interfaces}
    for p in pending:
        if p.fip is None:
            continue
        where = f"instances.{p.name}.floating_ip"
        r = router_of_network.get(p.net.name)
        if r is None or r.external is None:
            c.add(p.body.line_of("floating_ip"), where,
                  f"network {p.net.name} is not on a router with an external gateway, so no floating IP "
                  "can reach it")
            continue
        fip_owner[p.name] = r.external
        if p.fip != "auto":
            if not in_pool(r.external, p.fip):
                c.add(p.body.line_of("floating_ip"), where,
                      f"{p.fip} is outside the allocation pool of {r.external.name} ({pool_text(r.external)})")
                continue
            addresses.take(r.external.name, p.fip, f"floating IP of {p.name}", p.body.line_of("floating_ip"), where)
    return fip_owner


def _with_dhcp_port(lab: str, net: Network, addresses: Addresses) -> Network:
    if not net.dhcp:
        return net
    dhcp_ip = addresses.allocate(net, f"DHCP port of {net.name}", net.line, f"networks.{net.name}")
    return dataclasses.replace(net, dhcp_ip=dhcp_ip, dhcp_port_id=naming.object_uuid(lab, "dhcp-port", net.name))


def _auto_floating_ips(instances: list[Instance], fip_owner: dict[str, Network],
                       addresses: Addresses) -> list[Instance]:
    out = []
    for inst in instances:
        if inst.floating_ip == "auto" and inst.name in fip_owner:
            fip = addresses.allocate(fip_owner[inst.name], f"floating IP of {inst.name}", inst.line,
                                     f"instances.{inst.name}.floating_ip")
            inst = dataclasses.replace(inst, floating_ip=fip)
        elif inst.floating_ip == "auto":
            inst = dataclasses.replace(inst, floating_ip=None)
        out.append(inst)
    return out
