"""What lab/runtime/kernel.py relies on in pyroute2, pinned without root or netlink traffic.

kernel.py is the only module that imports pyroute2 (test_only_kernel_imports_pyroute2). It
passes keyword arguments that pyroute2 turns into netlink attributes through internals that
have changed between releases: the kind-specific names (br_stp_state), the veth peer as a
dict, a peer namespace given by NAME that pyroute2 opens under its netns directory, and
state="up" becoming IFF_UP. Each test below builds the request pyroute2 would send and
fails loudly, naming what changed, when an upgrade breaks that contract. pyproject.toml pins
pyroute2 to the range these tests ran on.
"""

from __future__ import annotations

import ast
import os
import re
import tomllib
from pathlib import Path

import pytest

pyroute2 = pytest.importorskip("pyroute2")
from pyroute2.iproute.linux import get_arguments_processor      # noqa: E402
from pyroute2.netlink.exceptions import NetlinkError              # noqa: E402
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg               # noqa: E402

from lab.runtime import netns                                     # noqa: E402

REPO = Path(__file__).resolve().parents[2]
IFF_UP = 1


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", text)[:3])


def _pin() -> tuple[str, str]:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    spec = next(d for d in deps if d.startswith("pyroute2"))
    low = re.search(r">=\s*([\d.]+)", spec)
    high = re.search(r"<\s*([\d.]+)", spec)
    assert low and high, f"pyroute2 must be pinned to a range (>=X,<Y) in pyproject.toml, not {spec!r}"
    return low.group(1), high.group(1)


def test_installed_pyroute2_is_in_the_pinned_range():
    low, high = _pin()
    have = pyroute2.__version__
    assert _version(low) <= _version(have) < _version(high), (
        f"pyroute2 {have} is outside the range the tests ran on ({low} <= v < {high}); run the "
        "unit and integration tests on it, then move the pin in pyproject.toml")


def test_only_kernel_imports_pyroute2():
    users = []
    for path in sorted((REPO / "lab").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            if any(n.split(".")[0] == "pyroute2" for n in names):
                users.append(str(path.relative_to(REPO)))
    assert sorted(set(users)) == ["lab/runtime/kernel.py"], (
        "pyroute2 internals must stay in one place (lab/runtime/kernel.py, pinned here)")


def _link_request(**kwargs) -> dict:
    return dict(get_arguments_processor("link", "add", kwargs))


def _linkinfo(request: dict) -> dict:
    info = request["IFLA_LINKINFO"]["attrs"]
    return {k: v for k, v in info}


def test_veth_with_peer_in_a_named_namespace():
    """Links.veth: peer as a dict with ifname, address, mtu and net_ns_fd=<namespace name>."""
    req = _link_request(ifname="tapx", kind="veth", mtu=1450, address="fe:16:3e:00:00:01", master=7, state="up",
                        peer={"ifname": "eth0", "net_ns_fd": "nlab.l.vm1", "address": "fa:16:3e:00:00:01",
                              "mtu": 1450})
    assert (req["ifname"], req["mtu"], req["master"], req["address"]) == ("tapx", 1450, 7, "fe:16:3e:00:00:01")
    assert req["flags"] & IFF_UP and req["change"] & IFF_UP, "state='up' no longer sets IFF_UP"
    info = _linkinfo(req)
    assert info["IFLA_INFO_KIND"] == "veth"
    peer = dict(dict(info["IFLA_INFO_DATA"]["attrs"])["VETH_INFO_PEER"]["attrs"])
    assert peer == {"IFLA_IFNAME": "eth0", "IFLA_NET_NS_FD": "nlab.l.vm1", "IFLA_ADDRESS": "fa:16:3e:00:00:01",
                    "IFLA_MTU": 1450}, "the veth peer dict is no longer mapped attribute by attribute"


def test_namespace_names_are_opened_where_netns_makes_them():
    """IFLA_NET_NS_FD given a name: pyroute2 opens <netns_run_dir>/<name>, which must be the
    directory lab/runtime/netns.py makes namespaces in."""
    nla = ifinfmsg.netns_fd
    assert dict(ifinfmsg.nla_map)["IFLA_NET_NS_FD"] == "netns_fd"
    assert os.path.realpath(nla.netns_run_dir) == os.path.realpath(netns.NETNS_DIR), (
        f"pyroute2 opens namespaces in {nla.netns_run_dir}, lab makes them in {netns.NETNS_DIR}")
    source = Path(pyroute2.__file__).parent / "netlink" / "rtnl" / "ifinfmsg" / "__init__.py"
    assert "self.netns_run_dir, self.value" in source.read_text(), \
        "pyroute2 no longer resolves a namespace name under netns_run_dir"


def test_bridge_without_stp_or_forward_delay():
    """Links.bridge: br_stp_state / br_forward_delay become IFLA_BR_* in IFLA_INFO_DATA."""
    req = _link_request(ifname="qbrx", kind="bridge", br_stp_state=0, br_forward_delay=0, mtu=1450, state="up")
    info = _linkinfo(req)
    assert info["IFLA_INFO_KIND"] == "bridge"
    data = dict(info["IFLA_INFO_DATA"]["attrs"])
    assert data == {"IFLA_BR_STP_STATE": 0, "IFLA_BR_FORWARD_DELAY": 0}, data


def test_requests_encode_and_decode():
    """The bridge request encodes into a netlink message and decodes back (the attribute
    types are still known to pyroute2's message classes)."""
    msg = ifinfmsg()
    for k, v in _link_request(ifname="qbrx", kind="bridge", br_stp_state=0, br_forward_delay=0, mtu=1450).items():
        if k in ("index", "flags", "change", "family", "ifi_type"):
            msg[k] = v
        else:
            msg["attrs"].append((ifinfmsg.name2nla(k), v))
    msg.encode()
    back = ifinfmsg(msg.data)
    back.decode()
    assert back.get_attr("IFLA_IFNAME") == "qbrx" and back.get_attr("IFLA_MTU") == 1450
    info = back.get_attr("IFLA_LINKINFO")
    assert info.get_attr("IFLA_INFO_KIND") == "bridge"
    data = info.get_attr("IFLA_INFO_DATA")
    assert data.get_attr("IFLA_BR_STP_STATE") == 0 and data.get_attr("IFLA_BR_FORWARD_DELAY") == 0


def test_set_address_and_route_arguments():
    """Links.up / add_address / default_route keyword arguments are still accepted."""
    up = dict(get_arguments_processor("link", "set", {"index": 3, "state": "up"}))
    assert up["index"] == 3 and up["flags"] & IFF_UP
    addr = dict(get_arguments_processor("addr", "add", {"index": 3, "address": "10.0.0.1", "prefixlen": 24}))
    assert (addr["index"], addr["address"], addr["prefixlen"]) == (3, "10.0.0.1", 24)
    route = dict(get_arguments_processor("route", "add", {"dst": "0.0.0.0/0", "gateway": "10.0.0.1", "oif": 3}))
    assert route["gateway"] == "10.0.0.1" and route["oif"] == 3


def test_netlink_error_carries_the_errno():
    """Links._do reads NetlinkError.code and args[-1] for its messages."""
    exc = NetlinkError(17, "File exists")
    assert exc.code == 17 and exc.args[-1] == "File exists"


def test_replies_read_by_short_names():
    """Links.index reads msg["index"] of a link reply, Links.has_address a.get("address") of
    an address reply."""
    from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
    link = ifinfmsg()
    link["index"] = 42
    link["attrs"].append(("IFLA_IFNAME", "eth0"))
    link.encode()
    back = ifinfmsg(link.data)
    back.decode()
    assert back["index"] == 42 and back.get("ifname") == "eth0"
    addr = ifaddrmsg()
    addr["index"] = 42
    addr["prefixlen"] = 24
    addr["family"] = 2
    addr["attrs"].append(("IFA_ADDRESS", "10.0.0.1"))
    addr.encode()
    back = ifaddrmsg(addr.data)
    back.decode()
    assert back.get("address") == "10.0.0.1"
