"""DVR floating IPs on a compute: the fip-<external network uuid> namespace the L3 agent (agent_mode
dvr, dvr_snat) makes on every host of a distributed router with a gateway, floating IP or
not (lab/core/routers.py plans it). Its fg- port's veth is
made with the node's other agent ports (lifecycle); here: the rfp-/fpr- veth to each router's
qrouter-, addresses, the FipNamespace sysctls (proxy ARP on fg-), the /32 route of each
floating IP to its router, each router's `ip rule iif fpr- lookup <table>` and that table's
default route, permanent neighbours across the veth, and the fip- iptables. Called by
lifecycle.py, which owns ordering, the ledger and rollback."""

from __future__ import annotations

from lab.core import naming, routers
from lab.core.expect import Route
from lab.core.plan import FipNamespacePlan, Plan
from lab.errors import LabError
from lab.paths import lab_dir
from lab.runtime import gateway, netns
from lab.runtime.faults import Fault
from lab.runtime.inventory import route_words
from lab.runtime.kernel import Links


def link_up(plan: Plan, fip: FipNamespacePlan) -> None:
    """The rfp-/fpr- veth of each router with a local copy here (create_rtr_2_fip_link), made
    from the router's qrouter- with its peer straight in fip-; kept if it is there."""
    for link in fip.links:
        qrouter = next(r for r in plan.routers_on(fip.node) if r.fip_link == link)
        with netns.entered(qrouter.netns), Links(qrouter.netns) as links:
            missing = not links.has(link.rfp_dev)
        if missing:
            _drop_stale_peer(fip.netns, link.fpr_dev)
        with netns.entered(qrouter.netns), Links(qrouter.netns) as links:
            if missing:
                links.veth(link.rfp_dev, link.fpr_dev, peer_netns=fip.netns, peer_mac=link.fpr_mac,
                           mac=link.rfp_mac, mtu=link.mtu, up=True)
            links.tx_checksum_off(link.rfp_dev)
            if not links.has_address(link.rfp_dev, link.rfp_ip):
                links.add_address(link.rfp_dev, link.rfp_ip, 31)
            links.permanent_neighbour(link.rfp_dev, link.fpr_ip, link.fpr_mac)


def _drop_stale_peer(fip_netns: str, fpr_dev: str) -> None:
    """A deleted qrouter- takes its rfp- with it, but the kernel tears the old namespace down
    asynchronously, so the fpr- peer may still hold its name in fip-: remove it (the lab's own
    device in the lab's own namespace) before the link is made again."""
    try:
        with netns.entered(fip_netns), Links(fip_netns) as links:
            if links.has(fpr_dev):
                links.delete(fpr_dev)
    except LabError as exc:
        if "(errno 19)" not in str(exc):     # ENODEV: the kernel was quicker
            raise


def namespace_up(fip: FipNamespacePlan) -> None:
    """fip-'s own side: fg- with its address, the sysctls, fpr- addresses and neighbours,
    the floating IPs' /32 routes and, per router, the rule and table out through fg-."""
    fg = fip.gateway
    with netns.entered(fip.netns):
        with Links(fip.netns) as links:
            links.tx_checksum_off(fg.ns_dev)
            if not links.has_address(fg.ns_dev, fg.ip):
                links.add_address(fg.ns_dev, fg.ip, fg.prefixlen)
            links.up(fg.ns_dev)
            for link in fip.links:
                links.tx_checksum_off(link.fpr_dev)
                if not links.has_address(link.fpr_dev, link.fpr_ip):
                    links.add_address(link.fpr_dev, link.fpr_ip, 31)
                links.up(link.fpr_dev)
                links.permanent_neighbour(link.fpr_dev, link.rfp_ip, link.rfp_mac)
                if fip.external_gateway_ip:
                    links.table_route("0.0.0.0/0", fip.external_gateway_ip, fg.ns_dev, link.table)
                links.iif_rule(link.table, link.table, link.fpr_dev)
            for route in fip.routes:
                links.route_via(f"{route.address}/32", route.via, route.dev)
        for key, value in routers.fip_sysctls(fg.ns_dev):
            netns.write_sysctl(key, value)


def rules(plan: Plan, fip: FipNamespacePlan, text: str) -> None:
    """The fip- iptables (raw: no conntrack), applied and recorded like a router's."""
    rules_file = lab_dir(plan.lab) / naming.router_rules_file(fip.name)
    rules_file.parent.mkdir(parents=True, exist_ok=True)
    rules_file.write_text(text)
    gateway.run(["iptables-restore", "-w", "5", str(rules_file)], netns=fip.netns)
    from lab.runtime.health import record_iptables
    record_iptables(rules_file, fip.netns)


def faults(fip: FipNamespacePlan, lab: str) -> list[Fault]:
    """What an existing fip- lacks beyond what lab/runtime/inventory.py compares (its links,
    addresses, sysctls): each router's `ip rule iif fpr-`, the floating IPs' /32 routes (read
    once every fpr- is there: a missing one takes its routes with it)."""
    if not netns.exists(fip.netns):
        return []
    again = f"`lab up {lab}` puts it back"
    with netns.entered(fip.netns), Links(fip.netns) as links:
        have = links.iif_rules()
        out = [Fault("ip-rule", fip.name, fip.netns, f"rule iif {x.fpr_dev} lookup {x.table}", "present", "absent",
                     again) for x in fip.links if (x.table, x.table, x.fpr_dev) not in have]
        if any(not links.has(x.fpr_dev) for x in fip.links):
            return out
        routes = links.routes_via()
        out += [Fault("route", fip.name, fip.netns, route_words(Route(f"{r.address}/32", r.via, r.dev)),
                      "present", "absent", again)
                for r in fip.routes if (f"{r.address}/32", r.via) not in routes]
    return out
