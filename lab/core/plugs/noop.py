"""The noop plug (firewall_driver = noop, ovs_hybrid_plug = False): no security groups, so
Nova plugs the VM's tap straight into br-int:

    eth0 (instance) = tap (node, a port of br-int)

No Linux bridge, no iptables rules for the port. br-int still does ARP and MAC anti-spoofing
(the noop driver does not provide it, so the OVS agent installs it), on the tap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lab.core import naming
from lab.core.plugs import NoFlowFirewall, Plug, PlugDevice, PlugHop

if TYPE_CHECKING:  # pragma: no cover
    from lab.core.plan import InstancePort, NodePlan, Plan


class Noop(NoFlowFirewall):
    name = "noop"
    hybrid_plug = False
    iptables = False

    def plug(self, node_netns: str, port_id: str) -> Plug:
        tap = naming.port_device("tap", port_id)
        return Plug(self.name, (PlugDevice("tap", tap, "veth", node_netns),), tap)

    def firewall_rules(self, plan: "Plan", node: "NodePlan") -> str:
        return ""

    def trace_hops(self, port: "InstancePort", direction: str) -> tuple[PlugHop, ...]:
        tap = port.plug.device("tap")
        return (PlugHop(tap, "nic", port.plug.devices[0].netns, tap),)


DRIVER = Noop()
