"""openvswitch (the OVS native firewall) in the kernel: as noop, one veth, tap in the node
namespace (a port of br-int with an ofport_request, from the OVSDB transaction) and eth0 in
the instance namespace. The security groups are br-int flows; nothing else in the kernel."""

from __future__ import annotations

import re

from lab.core import naming
from lab.core.plan import InstancePort, Plan
from lab.core.plugs import openvswitch as ovsfw
from lab.runtime import gateway, ovs
from lab.runtime.plugs.noop import Noop

DECIDING_TABLES = (72, 82)      # rules egress, rules ingress: where a packet is accepted or dropped
FLOW = re.compile(r"table=(\d+), n_packets=(\d+), .*?priority=(\d+),?(\S*?) actions=(\S+)")


class OvsFirewall(Noop):
    """The same devices as noop (make, missing); the firewall's per-port flow counters."""

    name = "openvswitch"

    def counters(self, plan: Plan, port: InstancePort) -> dict[tuple[int, int, str, str], int]:
        """n_packets of the port's flows (reg5 = its ofport) in tables 72 and 82. The
        revalidators hand datapath statistics to the flows about once a second; waiting for
        a full pass first makes the counters current."""
        node = plan.node(port.node)
        reg5 = f"reg5={ovsfw.ofports(plan, node)[port.ovs_port]:#x}"
        env = ovs.env(node.rundir)
        gateway.run(["ovs-appctl", "revalidator/wait"], env=env, check=False)
        out = gateway.run(["ovs-ofctl", "dump-flows", "--names", naming.BR_INT, reg5], env=env, check=False).stdout
        found = {}
        for m in FLOW.finditer(out):
            if int(m.group(1)) in DECIDING_TABLES:
                match, actions = (g.replace('"', "") for g in m.group(4, 5))     # OVS quotes port names
                found[(int(m.group(1)), int(m.group(3)), match, actions)] = int(m.group(2))
        return found


DRIVER = OvsFirewall()
