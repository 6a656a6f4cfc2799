"""The iptables_hybrid plug (OVSHybridIptablesFirewallDriver, ovs_hybrid_plug = True):

    eth0 (instance) = tap (node) -> qbr (Linux bridge, iptables) -> qvb = qvo -> br-int

Security groups are iptables chains in the node namespace, matched on the bridge ports with
physdev (br_netfilter), one conntrack zone per port. This is the only module that knows
qbr, qvb and qvo.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lab.core import ipsets, naming
from lab.core.plugs import NoFlowFirewall, Plug, PlugDevice, PlugHop

if TYPE_CHECKING:  # pragma: no cover
    from lab.core.plan import InstancePort, NodePlan, Plan

CONNTRACK_ZONE_BASE = 4096


class IptablesHybrid(NoFlowFirewall):
    name = "iptables_hybrid"
    hybrid_plug = True
    iptables = True

    def plug(self, node_netns: str, port_id: str) -> Plug:
        def dev(role: str, kind: str, firewall: str = "") -> PlugDevice:
            return PlugDevice(role, naming.port_device(role, port_id), kind, node_netns, firewall)
        return Plug(self.name, (dev("tap", "veth"), dev("qbr", "bridge", "iptables"), dev("qvb", "veth"),
                                dev("qvo", "veth")), naming.port_device("qvo", port_id))

    def firewall_rules(self, plan: "Plan", node: "NodePlan") -> str:
        """iptables-restore input of the node's security groups. iptables_hybrid keeps one
        conntrack zone per port (CONNTRACK_ZONE_PER_PORT), from 4097."""
        from lab.core.render import render_template
        ports = [{"port": p, "tap": p.plug.device("tap"), "qvb": p.plug.device("qvb"),
                  "i": naming.sg_chain("i", p.port_id), "o": naming.sg_chain("o", p.port_id),
                  "s": naming.sg_chain("s", p.port_id), "zone": CONNTRACK_ZONE_BASE + 1 + index}
                 for index, p in enumerate(node.ports)]
        return render_template("iptables-hybrid.rules.j2", lab=plan.lab, node=node, ports=ports,
                               wrap=naming.IPTABLES_WRAP, match_set=lambda r: ipsets.match_set(node, r),
                               expanded=lambda port, r: ipsets.expanded_remotes(node, port, r))

    def trace_hops(self, port: "InstancePort", direction: str) -> tuple[PlugHop, ...]:
        tap, qbr, qvb, qvo = (port.plug.device(r) for r in ("tap", "qbr", "qvb", "qvo"))
        ns = port.plug.devices[0].netns
        fallback = f"{naming.IPTABLES_WRAP}-sg-fallback"
        if direction == "egress":
            chains = (naming.sg_chain("o", port.port_id), fallback, naming.sg_chain("s", port.port_id))
            return (PlugHop(tap, "nic", ns, tap),
                    PlugHop(f"{qbr} (iptables egress)", "iptables", ns, chains=chains),
                    PlugHop(f"{qvb} -> {qvo}", "nic", ns, qvo))
        chains = (naming.sg_chain("i", port.port_id), fallback)
        return (PlugHop(f"{qvo} -> {qvb}", "nic", ns, qvb),
                PlugHop(f"{qbr} (iptables ingress)", "iptables", ns, chains=chains),
                PlugHop(tap, "nic", ns, tap))


DRIVER = IptablesHybrid()
