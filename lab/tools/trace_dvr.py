"""`lab trace` for DVR north-south (lab/tools/trace.py calls these for a dvr_local router):
out through the compute's fip- (an instance with a floating IP), out through the network
node's snat- (SNAT redirect), and in from the outside through the compute's fip-."""

from __future__ import annotations

from lab.core.plan import Plan


def out(b, plan: Plan, router, src, dst, x, qr_in) -> None:
    """From ROUTER (the sender's local qrouter- on node X) to the external network."""
    fip = next((f for f in plan.fips_on(x.name) if router.fip_link in f.links), None)
    if src.port.floating_ip and fip is not None:
        link = router.fip_link
        rule = next(r for r in router.rules if r.source == f"{src.ip}/32")
        b.add(f"{router.name} routing", "route", router.netns,
              note=f"rule {rule.priority} from {src.ip} lookup {rule.table}: via {link.fpr_ip} dev {link.rfp_dev}")
        b.add(f"{router.name} NAT", "nat", router.netns, note="SNAT to the floating IP (float-snat)")
        b.src_ip = src.port.floating_ip
        b.add(f"{router.name} {link.rfp_dev}", "nic", router.netns, link.rfp_dev, note="after SNAT")
        b.add(f"{fip.name} {link.fpr_dev}", "nic", fip.netns, link.fpr_dev)
        gw = fip.gateway
        b.add(f"{fip.name} {gw.ns_dev}", "nic", fip.netns, gw.ns_dev, note="out of fg-")
        b.external_out(x, gw, dst)
        return
    snat = next(i for i in plan.router_instances_of(router.router) if i.role == "dvr_snat")
    sg = next(p for p in snat.interfaces if p.network == src.network)
    rule = next(r for r in router.rules if r.table != 16 and any(
        t.table == r.table and t.dev == qr_in.ns_dev for t in router.routes))
    b.add(f"{router.name} routing", "route", router.netns,
          note=f"SNAT redirect: rule {rule.priority} from {rule.source} lookup {rule.table}: via {sg.ip} "
               f"({snat.name}'s {sg.ns_dev})")
    b.add(f"{router.name} {qr_in.ns_dev}", "nic", router.netns, qr_in.ns_dev, note=f"back out, to {sg.ip}")
    b.into_br_int(x, qr_in, sg.mac)
    y = plan.node(snat.node)
    if y.name != x.name:
        b.node_to_node(x, y, src.network, x.dvr_mac, sg.mac,
                       (f"source {qr_in.mac} -> {x.name}'s DVR MAC {x.dvr_mac} (table 1)",
                        f"from DVR MAC {x.dvr_mac}: {sg.ns_dev} is DVR-serviced, the gateway MAC goes back"))
    b.add(f"{snat.name} {sg.ns_dev}", "nic", snat.netns, sg.ns_dev)
    b.add(f"{snat.name} NAT", "nat", snat.netns, note="SNAT to the gateway address")
    b.src_ip = snat.gateway.ip
    gw = snat.gateway
    b.add(f"{snat.name} {gw.ns_dev}", "nic", snat.netns, gw.ns_dev, note="after SNAT")
    b.external_out(y, gw, dst)


def fip_in(b, plan: Plan, router, src, dst, x) -> None:
    """From an external host to DST's floating IP: X's fip- (fg- answers ARP for it), rfp-,
    DNAT in X's qrouter-, out of qr- to DST."""
    fip = next(f for f in plan.fips_on(x.name) if router.fip_link in f.links)
    link, gw = router.fip_link, fip.gateway
    b.external_in(src, x, gw)
    b.add(f"{fip.name} {gw.ns_dev}", "nic", fip.netns, gw.ns_dev, note="fg- answered ARP for it (proxy ARP)")
    b.add(f"{fip.name} {link.fpr_dev}", "nic", fip.netns, link.fpr_dev, note=f"route via {link.rfp_ip}")
    b.add(f"{router.name} {link.rfp_dev}", "nic", router.netns, link.rfp_dev)
    b.after_dnat(router, x, dst, "DNAT (-i rfp-)")
    b.instance_in(dst)
