"""iptables_hybrid in the kernel: qbr (a Linux bridge), tap (veth to the instance's eth0)
and qvb (veth to qvo, which the OVSDB transaction puts on br-int), both in qbr."""

from __future__ import annotations

from lab.core.plan import InstancePort, Plan
from lab.runtime.kernel import Links
from lab.runtime.plugs import libvirt_mac, missing_devices


class IptablesHybrid:
    name = "iptables_hybrid"

    def make(self, links: Links, port: InstancePort) -> None:
        # six netlink requests: qbr, tap (in qbr, up; eth0 made in the instance namespace),
        # qvb (in qbr, up) with its peer qvo, then qvo up
        tap, qbr, qvb, qvo = (port.plug.device(r) for r in ("tap", "qbr", "qvb", "qvo"))
        links.bridge(qbr, mtu=port.mtu, up=True)
        links.veth(tap, "eth0", peer_netns=port.netns, peer_mac=port.mac, mtu=port.mtu,
                   master=qbr, up=True, mac=libvirt_mac(port.mac))
        links.veth(qvb, qvo, mtu=port.mtu, master=qbr, up=True)
        links.tx_checksum_off(tap, qvb, qvo)
        links.up(qvo)

    def missing(self, links: Links, port: InstancePort) -> list[str]:
        return missing_devices(links, port)

    def counters(self, plan: Plan, port: InstancePort) -> dict[tuple[int, int, str, str], int]:
        return {}       # no per-port flow rules (hybrid: `lab trace` reads the iptables counters)


DRIVER = IptablesHybrid()
