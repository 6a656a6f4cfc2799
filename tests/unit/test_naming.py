"""Names and identifiers derived the way Neutron derives them."""

from __future__ import annotations

import re
import uuid

import pytest

from lab.core import naming

PORT_ID = naming.object_uuid("classic-vlan", "port", "vm1")


PREFIXES = ["tap", "qbr", "qvb", "qvo", "qr-", "qg-"]


@pytest.mark.parametrize("prefix", PREFIXES)
def test_port_device_fits_an_interface_name(prefix):
    name = naming.port_device(prefix, PORT_ID)
    assert name.startswith(prefix + PORT_ID[:11])
    assert len(name) <= naming.IFNAMSIZ == 15
    assert name == naming.port_device(prefix, PORT_ID)


def test_port_device_is_prefix_plus_11_uuid_chars():
    for prefix in PREFIXES:
        name = naming.port_device(prefix, PORT_ID)
        assert name == prefix + PORT_ID[:11]
        assert len(name) == 14


def test_port_device_rejects_bad_prefix():
    with pytest.raises(AssertionError):
        naming.port_device("tapx", PORT_ID)


def test_object_uuid_is_stable_and_scoped():
    a = naming.object_uuid("lab-a", "port", "vm1")
    assert a == naming.object_uuid("lab-a", "port", "vm1")
    assert uuid.UUID(a).version == 5
    assert a != naming.object_uuid("lab-b", "port", "vm1")
    assert a != naming.object_uuid("lab-a", "network", "vm1")
    assert a != naming.object_uuid("lab-a", "port", "vm2")


def test_object_uuid_pinned():
    # uuid5 of the lab namespace: changing it renames every device of every lab (the golden
    # files and tests/data/flows/ hold these names), so the value itself is pinned.
    assert naming.object_uuid("classic-vlan", "port", "vm1") == "5dda57d2-c7ef-5ac1-8646-907e820854aa"
    assert naming.object_uuid("classic-vlan", "port", "vm1") == str(
        uuid.uuid5(naming.LAB_UUID_NAMESPACE, "classic-vlan/port/vm1"))


def test_port_mac_is_neutron_style_and_deterministic():
    mac = naming.port_mac(PORT_ID)
    assert mac.startswith("fa:16:3e:")
    assert re.fullmatch(r"fa:16:3e(:[0-9a-f]{2}){3}", mac)
    assert mac == naming.port_mac(PORT_ID)
    assert mac != naming.port_mac(naming.object_uuid("classic-vlan", "port", "vm2"))


@pytest.mark.parametrize("direction", ["i", "o", "s"])
def test_sg_chain(direction):
    chain = naming.sg_chain(direction, PORT_ID)
    assert chain == f"neutron-openvswi-{direction}{PORT_ID[:10]}"
    assert len(chain) == len("neutron-openvswi-i") + 10 == 28
    assert len(chain) <= 28  # iptables chain names: 28 characters at most


def test_sg_chain_rejects_bad_direction():
    with pytest.raises(AssertionError):
        naming.sg_chain("x", PORT_ID)


def test_netns_name_round_trip():
    name = naming.netns_name("classic-vlan", "compute1")
    assert name == "nlab.classic-vlan.compute1"
    assert naming.split_netns(name) == ("classic-vlan", "compute1")


@pytest.mark.parametrize("foreign", ["qrouter-1234", "nlab", "nlab.", "nlab.lab", "nlab.lab.",
                                     "nlab..target", "other.lab.x", "ovnmeta-abc"])
def test_split_netns_foreign_names(foreign):
    assert naming.split_netns(foreign) is None


def test_patch_ports():
    assert naming.patch_ports("br-vlan") == ("int-br-vlan", "phy-br-vlan")
    assert all(len(p) <= naming.IFNAMSIZ for p in naming.patch_ports("br-abcdefgh"))


def test_flow_cookie():
    cookie = naming.flow_cookie("classic-vlan")
    assert re.fullmatch(r"0x[0-9a-f]{16}", cookie)
    assert cookie == naming.flow_cookie("classic-vlan") != naming.flow_cookie("other")
    assert cookie == "0xd3554110c109b317"       # pinned: recorded dumps in tests/data/flows/ carry it


def test_tunnel_port_is_type_and_remote_ip_in_hex():
    assert naming.tunnel_port("vxlan", "198.51.100.11") == "vxlan-c633640b"
    assert naming.tunnel_port("gre", "10.0.0.1") == "gre-0a000001"
    assert len(naming.tunnel_port("vxlan", "255.255.255.255")) <= naming.IFNAMSIZ


def test_agent_file_and_target_names():
    assert naming.dhcp_server("net1") == "net1-dhcp"
    assert naming.dhcp_hostname("192.168.1.11") == "host-192-168-1-11"
    assert naming.node_rundir("/run/neutron-lab", "lab", "compute1") == "/run/neutron-lab/lab/nodes/compute1"
    assert naming.dhcp_dir("/s", "lab", "abc") == "/s/lab/dhcp/abc"
    assert naming.router_rules_file("router1@compute1") == "routers/router1@compute1.rules"
    assert naming.flow_file("br-int") == "br-int.flows"
    assert naming.node_nic(2) == "eth2"
    # DVR's prefixes are 3 characters like every device prefix (port_device checks it)
    for prefix in (naming.TAP, naming.QR, naming.QG, naming.NS, naming.SG, naming.FG):
        assert len(naming.port_device(prefix, PORT_ID)) == naming.DEVICE_NAME_LEN
    assert (naming.RFP, naming.FPR) == ("rfp-", "fpr-")
