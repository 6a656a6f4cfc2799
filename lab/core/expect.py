"""What the plan says each namespace holds, as a table `status` compares the kernel with and
`up` repairs from (issue 13 §1): links present and up, addresses, routes, permanent
neighbour entries, sysctls. One `Expected` per namespace; each kind of namespace has one
function below, listed in `SOURCES`, so a new namespace kind (DVR's fip-/snat-, a metadata
proxy's address) is one more function there.

Pure: it reads the plan only. lab/runtime/inventory.py reads each namespace with one netlink
dump per kind and names the differences."""

from __future__ import annotations

from dataclasses import dataclass

from lab.core import plugs, routers
from lab.core.plan import Neighbour, Plan   # Neighbour: a router instance's permanent entry, as is

IPV6_OFF = (("net.ipv6.conf.default.disable_ipv6", "1"), ("net.ipv6.conf.all.disable_ipv6", "1"))
BRIDGED_IPTABLES = (("net.bridge.bridge-nf-call-iptables", "1"), ("net.bridge.bridge-nf-call-ip6tables", "1"))


@dataclass(frozen=True)
class Address:
    dev: str
    ip: str
    prefixlen: int


@dataclass(frozen=True)
class Route:
    dst: str            # "0.0.0.0/0" or a CIDR
    gateway: str | None  # None: on-link
    dev: str


@dataclass(frozen=True)
class Expected:
    """One namespace's kernel state that the plan calls for."""

    netns: str
    who: str                                # how a person calls it: "instance vm1", "router router1"
    links: tuple[str, ...] = ()             # present and up
    addresses: tuple[Address, ...] = ()
    routes: tuple[Route, ...] = ()          # main table
    neighbours: tuple[Neighbour, ...] = ()  # permanent entries
    sysctls: tuple[tuple[str, str], ...] = ()
    dhcp_client: bool = False               # eth0's address and routes come from a DHCP lease
    remade: tuple[str, ...] = ()            # links `up` makes again when they are missing


def _port_address(p) -> Address:
    """A plan port's address on its namespace side (qr-, qg-, sg-, ns-, fg-)."""
    return Address(p.ns_dev, p.ip, p.prefixlen)


def _with_ports(netns: str, who: str, ports, more_addresses=(), **more) -> Expected:
    """A namespace an agent plugs PORTS into (qrouter-, snat-, qdhcp-): each port's device
    present and up with its address, and made again by `up` when it is missing."""
    devs = tuple(p.ns_dev for p in ports)
    return Expected(netns, who, links=devs, addresses=(*map(_port_address, ports), *more_addresses),
                    remade=devs, **more)


def _one_eth0(netns: str, who: str, x, **more) -> Expected:
    """An instance's or external host's namespace: eth0, up, with X's address (ip, prefixlen)."""
    return Expected(netns, who, links=("eth0",), addresses=(Address("eth0", x.ip, x.prefixlen),),
                    sysctls=IPV6_OFF, **more)


def _wires(plan: Plan) -> list[Expected]:
    return [Expected(w.netns, f"wire {w.name}", links=(w.bridge, *(m.wire_ifname for m in w.members)),
                     sysctls=IPV6_OFF) for w in plan.wires]


def _nodes(plan: Plan) -> list[Expected]:
    out = []
    for n in plan.nodes:
        owned = [p.ovs_dev for r in plan.routers_on(n.name) for p in r.ports] + [d.port.ovs_dev for d in n.dhcp_servers]
        addresses: tuple[Address, ...] = ()
        links = [*n.nics, *owned]
        if n.tunnel:
            device = n.tunnel.bridge or n.tunnel.nic
            addresses = (Address(device, n.tunnel.local_ip, n.tunnel.prefixlen),)
            links.append(device)
        sysctls = IPV6_OFF + (BRIDGED_IPTABLES if plugs.driver(n.firewall_driver).iptables else ())
        out.append(Expected(n.netns, n.name, links=tuple(dict.fromkeys(links)), addresses=addresses,
                            sysctls=sysctls, remade=tuple(owned)))
    return out


def _instance_routes(plan: Plan, p) -> tuple[Route, ...]:
    if not p.gateway:
        return ()
    dhcp = next((d for d in plan.dhcp_servers if d.network == p.network), None)
    if p.address == "dhcp" and dhcp and dhcp.classless_routes:     # option 121, RFC 3442
        pairs = [r.split(",") for r in dhcp.classless_routes]
        return tuple(Route(dst, None if hop == "0.0.0.0" else hop, "eth0") for dst, hop in pairs)
    return (Route("0.0.0.0/0", p.gateway, "eth0"),)


def _instances(plan: Plan) -> list[Expected]:
    return [_one_eth0(p.netns, f"instance {p.instance}", p, routes=_instance_routes(plan, p),
                      dhcp_client=p.address == "dhcp") for p in plan.ports]


def _external_hosts(plan: Plan) -> list[Expected]:
    return [_one_eth0(h.netns, f"external host {h.name}", h) for h in plan.external_hosts]


def _routers(plan: Plan) -> list[Expected]:
    out = []
    for r in plan.router_instances:
        floating: list[Address] = []
        routes: tuple[Route, ...] = ()
        if r.gateway:
            floating = [Address(r.gateway.ns_dev, f.address, 32) for f in r.floating_ips]
            if r.external_gateway_ip:
                routes = (Route("0.0.0.0/0", r.external_gateway_ip, r.gateway.ns_dev),)
        out.append(_with_ports(r.netns, f"router {r.name}", r.ports, floating, routes=routes,
                               neighbours=tuple(r.neighbours), sysctls=IPV6_OFF + routers.sysctls(r)))
    return out


def _fips(plan: Plan) -> list[Expected]:
    """DVR's fip- namespaces: fg- with its address and proxy ARP, an fpr- per router link
    (both made again by `up`; proxy_delay is left out: this kernel reads it back as 0, as it would under Neutron)."""
    out = []
    for f in plan.fip_namespaces:
        g = f.gateway
        out.append(Expected(f.netns, f"floating IP namespace {f.name}",
                            links=(g.ns_dev, *(x.fpr_dev for x in f.links)),
                            addresses=(_port_address(g),
                                       *(Address(x.fpr_dev, x.fpr_ip, 31) for x in f.links)),
                            sysctls=IPV6_OFF + routers.FIP_SYSCTLS
                            + ((f"net.ipv4.conf.{g.ns_dev}.proxy_arp", "1"),),
                            remade=(g.ns_dev, *(x.fpr_dev for x in f.links))))   # fip.link_up
    return out


def _dhcp_servers(plan: Plan) -> list[Expected]:
    return [_with_ports(d.netns, f"DHCP server {d.name}", (d.port,), sysctls=IPV6_OFF) for d in plan.dhcp_servers]


SOURCES = (_wires, _nodes, _instances, _external_hosts, _routers, _fips, _dhcp_servers)


def expected(plan: Plan) -> list[Expected]:
    """Every namespace's expected kernel state, in the plan's namespace order."""
    by_ns = {e.netns: e for source in SOURCES for e in source(plan)}
    return [by_ns[ns] for ns in plan.namespaces() if ns in by_ns]
