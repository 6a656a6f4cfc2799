"""Names and identifiers, derived the way Neutron derives them. Pure functions.

Neutron names a port's devices with a 3-character prefix and the first 11 characters of the
port UUID (15 characters in all, the IFNAMSIZ leaves 15). Our UUIDs are uuid5 of the
scenario objects, so the same scenario always gives the same names.
"""

from __future__ import annotations

import hashlib
import uuid

IFNAMSIZ = 15
DEVICE_NAME_LEN = 14   # Neutron/Nova cut port device names to 14 (prefix + 11 of the UUID)
NETNS_PREFIX = "nlab."          # every namespace the lab makes starts with this
LAB_UUID_NAMESPACE = uuid.UUID("6f1c3c3e-8a52-5b7e-9a52-6e6575747231")
EXTERNAL_ID_KEY = "neutron-lab"  # OVS external_ids key that marks our rows
IPTABLES_WRAP = "neutron-openvswi"  # binary name "neutron-openvswitch-agent" cut to 16
L3_WRAP = "neutron-l3-agent"        # the l3 agent's chain prefix in its namespaces
NEUTRON_MAC_PREFIX = "fa:16:3e"


def object_uuid(scenario: str, kind: str, name: str) -> str:
    """Stable UUID of a scenario object (port, network, router...)."""
    return str(uuid.uuid5(LAB_UUID_NAMESPACE, f"{scenario}/{kind}/{name}"))


def port_device(prefix: str, port_id: str) -> str:
    """A port's device: a 3-character prefix (tap, qr-, qg-, ns-, a plug's own...) + the
    first 11 characters of the port UUID."""
    assert len(prefix) == 3, prefix
    return (prefix + port_id)[:DEVICE_NAME_LEN]


def port_mac(port_id: str) -> str:
    """A Neutron-style MAC (fa:16:3e:xx:xx:xx) derived from the port UUID."""
    digest = hashlib.sha256(port_id.encode()).digest()
    return NEUTRON_MAC_PREFIX + "".join(f":{b:02x}" for b in digest[:3])


def dvr_mac(base: str, lab: str, node: str, attempt: int = 0) -> str:
    """A node's DVR MAC, as neutron-lib's get_random_mac(dvr_base_mac) fills it: the first
    three octets of the base, the fourth too when it is not 00, the rest from the node's
    stable UUID (ATTEMPT > 0: the next candidate after a collision)."""
    octets = base.lower().split(":")
    keep = octets[:4] if octets[3] != "00" else octets[:3]
    digest = hashlib.sha256(object_uuid(lab, "dvr-mac", f"{node}#{attempt}" if attempt else node).encode()).digest()
    return ":".join(keep + [f"{b:02x}" for b in digest[:6 - len(keep)]])


def sg_chain(direction: str, port_id: str) -> str:
    """iptables_hybrid per-port chain: neutron-openvswi-<i|o|s><port_id[:10]>."""
    assert direction in ("i", "o", "s"), direction
    return f"{IPTABLES_WRAP}-{direction}{port_id[:10]}"


def security_group_uuid(lab: str, project: str, group: str) -> str:
    """A security group's id (groups are per project: each project has its own default)."""
    return object_uuid(lab, "security-group", f"{project}/{group}")


IPSET_NAME_MAX = 29     # ipset_manager.IPSET_NAME_MAX_LENGTH: 31 less the swap suffix "-n"


def ipset_name(group_id: str, ethertype: str = "IPv4") -> str:
    """ipset_manager.get_name: N<ethertype><remote group id>, cut to 29 characters."""
    return ("N" + ethertype + group_id)[:IPSET_NAME_MAX]


def netns_name(lab: str, target: str) -> str:
    """Namespace of a lab object: nlab.<lab>.<target>. The dots cannot occur in our names."""
    return f"{NETNS_PREFIX}{lab}.{target}"


def split_netns(name: str) -> tuple[str, str] | None:
    """Inverse of netns_name: (lab, target), or None when the namespace is not ours."""
    if not name.startswith(NETNS_PREFIX):
        return None
    rest = name[len(NETNS_PREFIX):]
    lab, dot, target = rest.partition(".")
    if not dot or not lab or not target:
        return None
    return lab, target


def patch_ports(bridge: str) -> tuple[str, str]:
    """(port on br-int, port on the physical bridge): int-<bridge> / phy-<bridge>."""
    return (f"int-{bridge}"[:IFNAMSIZ], f"phy-{bridge}"[:IFNAMSIZ])


def flow_cookie(lab: str) -> str:
    """The cookie stamped on every flow of a lab (Neutron stamps its agent's cookie)."""
    return "0x" + hashlib.sha256(f"neutron-lab/{lab}".encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- bridges
BR_INT = "br-int"           # integration bridge
BR_TUN = "br-tun"           # tunnel bridge
BR_PHY = "br-phy"           # userspace datapath: the bridge holding the underlay NIC and local_ip
PATCH_TUN = "patch-tun"     # br-int's end of the br-int <-> br-tun patch
PATCH_INT = "patch-int"     # br-tun's end


def node_nic(index: int) -> str:
    """A node's index-th interface on the wires (eth1, eth2...: eth0 is not used on nodes)."""
    return f"eth{index}"


# --------------------------------------------------------------------------- device prefixes
# Neutron's interface prefixes (3 characters each; port_device adds 11 of the port UUID).
TAP = "tap"      # an instance's tap; a router/DHCP port's OVS end (ovs_use_veth)
QR = "qr-"       # router interface (in qrouter-)
QG = "qg-"       # router gateway (in qrouter-, or snat- with DVR)
NS = "ns-"       # DHCP port (in qdhcp-)
SG = "sg-"       # DVR: a router interface's SNAT port (in snat-)
FG = "fg-"       # DVR: the floating IP agent gateway port (in fip-)
RFP = "rfp-"     # DVR: qrouter- end of the qrouter- <-> fip- veth
FPR = "fpr-"     # DVR: fip- end of that veth

# --------------------------------------------------------------------------- agent namespaces
QROUTER = "qrouter-"    # a router (legacy; DVR on computes and on the dvr_snat node)
SNAT = "snat-"          # DVR: the centralized SNAT part of a router on the dvr_snat node
FIP = "fip-"            # DVR: one per (node, external network), shared by routers
QDHCP = "qdhcp-"        # a DHCP server


def agent_netns(lab: str, node: str, prefix: str, object_id: str) -> str:
    """An agent's namespace on a node: nlab.<lab>.<node>.<qrouter-|snat-|fip-|qdhcp-><uuid>
    (Neutron's build_ns_name, under the node's name)."""
    assert prefix in (QROUTER, SNAT, FIP, QDHCP), prefix
    return netns_name(lab, f"{node}.{prefix}{object_id}")


def agent_ns_label(netns: str) -> str:
    """What a person calls an agent namespace: qrouter-1234abcd… (prefix, 8 of the uuid)."""
    short = netns.rsplit(".", 1)[-1]
    prefix, _, rest = short.partition("-")
    return f"{prefix}-{rest[:8]}…"


def router_target(router: str, node: str, instances: int) -> str:
    """The exec/capture target of a router instance: the router's name when it has one
    instance (legacy), <router>@<node> when it has several (DVR: one per node)."""
    return router if instances == 1 else f"{router}@{node}"


def fip_link_device(prefix: str, router_id: str) -> str:
    """DVR's router <-> fip- veth: rfp-<router uuid> (in qrouter-) / fpr-<router uuid> (in fip-),
    cut to 14 like every device (dvr_fip_ns.get_rtr_ext_device_name / get_int_device_name)."""
    assert prefix in (RFP, FPR), prefix
    return (prefix + router_id)[:DEVICE_NAME_LEN]


def fip_target(external_network: str, node: str) -> str:
    """The exec/capture target of a node's fip-<external network uuid>: fip-<network>@<node>."""
    return f"fip-{external_network}@{node}"


def snat_target(router: str) -> str:
    """The exec/capture target of a distributed router's snat- namespace: <router>.snat (a
    dot, which no scenario name may hold, so it never clashes with a router or node)."""
    return f"{router}.snat"


def dhcp_server(network: str) -> str:
    """The DHCP server of a network, as an exec target: <network>-dhcp."""
    return f"{network}-dhcp"


def dhcp_hostname(ip: str) -> str:
    """The host name the dhcp agent gives a port: host-<ip with dashes>."""
    return "host-" + ip.replace(".", "-")


def tunnel_port(tunnel_type: str, remote_ip: str) -> str:
    """vxlan-<remote ip in hex> / gre-<...>, as the OVS agent names br-tun ports."""
    return f"{tunnel_type}-" + "".join(f"{int(b):02x}" for b in remote_ip.split("."))


# --------------------------------------------------------------------------- files
def node_rundir(state_root: str, lab: str, node: str) -> str:
    """A node's OVS run directory (db, sockets, pid files, logs, flow files)."""
    return f"{state_root}/{lab}/nodes/{node}"


def dhcp_dir(state_root: str, lab: str, network_id: str) -> str:
    """Where a DHCP server's files live (hosts, opts, leases, pid)."""
    return f"{state_root}/{lab}/dhcp/{network_id}"


def router_rules_file(target: str) -> str:
    """A router instance's iptables-restore input, relative to the lab's state directory."""
    return f"routers/{target}.rules"


NODE_IPTABLES_FILE = "iptables.rules"           # in the node's run directory
NODE_IPSET_FILE = "ipset.restore"               # ditto: the remote groups' sets (ipset restore input)
DHCP_PIDFILE = "pid"                            # dnsmasq's pid file, in the DHCP server's directory


def flow_file(bridge: str) -> str:
    """A bridge's flows as last applied, in the node's run directory."""
    return f"{bridge}.flows"
