"""openvswitch (the OVS native firewall) in the kernel: as noop, one veth, tap in the node
namespace (a port of br-int with an ofport_request, from the OVSDB transaction) and eth0 in
the instance namespace. The security groups are br-int flows; nothing else in the kernel."""

from __future__ import annotations

from lab.core.plan import InstancePort
from lab.runtime.kernel import Links
from lab.runtime.plugs import libvirt_mac, missing_devices


class OvsFirewall:
    name = "openvswitch"

    def make(self, links: Links, port: InstancePort) -> None:
        tap = port.plug.device("tap")
        links.veth(tap, "eth0", peer_netns=port.netns, peer_mac=port.mac, mtu=port.mtu, up=True,
                   mac=libvirt_mac(port.mac))
        links.tx_checksum_off(tap)

    def missing(self, links: Links, port: InstancePort) -> list[str]:
        return missing_devices(links, port)


DRIVER = OvsFirewall()
