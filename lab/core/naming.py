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
    """tap/qbr/qvb/qvo/qr-/qg-... + first 11 characters of the port UUID."""
    assert len(prefix) == 3, prefix
    return (prefix + port_id)[:DEVICE_NAME_LEN]


def port_mac(port_id: str) -> str:
    """A Neutron-style MAC (fa:16:3e:xx:xx:xx) derived from the port UUID."""
    digest = hashlib.sha256(port_id.encode()).digest()
    return NEUTRON_MAC_PREFIX + "".join(f":{b:02x}" for b in digest[:3])


def sg_chain(direction: str, port_id: str) -> str:
    """iptables_hybrid per-port chain: neutron-openvswi-<i|o|s><port_id[:10]>."""
    assert direction in ("i", "o", "s"), direction
    return f"{IPTABLES_WRAP}-{direction}{port_id[:10]}"


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
