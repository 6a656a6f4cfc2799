"""noop in the kernel: one veth, tap in the node namespace (a port of br-int, from the
OVSDB transaction) and eth0 in the instance namespace."""

from __future__ import annotations

from lab.core.plan import InstancePort, Plan
from lab.runtime.kernel import Links
from lab.runtime.plugs import libvirt_mac, missing_devices


class Noop:
    name = "noop"

    def make(self, links: Links, port: InstancePort) -> None:
        tap = port.plug.device("tap")
        links.veth(tap, "eth0", peer_netns=port.netns, peer_mac=port.mac, mtu=port.mtu, up=True,
                   mac=libvirt_mac(port.mac))
        links.tx_checksum_off(tap)

    def missing(self, links: Links, port: InstancePort) -> list[str]:
        return missing_devices(links, port)

    def counters(self, plan: Plan, port: InstancePort) -> dict[tuple[int, int, str, str], int]:
        return {}       # no per-port flow rules (hybrid: `lab trace` reads the iptables counters)


DRIVER = Noop()
