"""Kernel objects through netlink (pyroute2), in the namespace the calling thread is in.

Use inside ``netns.entered(name)``: ``Links()`` opens a pyroute2 socket there. Nothing here
spawns a process; the one ioctl (checksum offload) goes through a socket of that namespace.
"""

from __future__ import annotations

import ctypes
import fcntl
import socket
import struct

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from lab.errors import LabError

NUD_PERMANENT = 0x80
IFF_UP = 0x1
SIOCETHTOOL = 0x8946
ETHTOOL_STXCSUM = 0x00000017


class KernelError(LabError):
    pass


class Links:
    """Links, addresses and routes of one namespace."""

    def __init__(self, where: str):
        self.where = where  # for error messages: the namespace name
        self.ipr = IPRoute()
        self._index: dict[str, int] = {}

    def close(self) -> None:
        self.ipr.close()

    def __enter__(self) -> "Links":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _do(self, what: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except NetlinkError as exc:
            raise KernelError(f"{what} in netns {self.where}: {exc.args[-1] if exc.args else exc} "
                              f"(errno {exc.code})") from None

    def index(self, ifname: str) -> int:
        """Interface index by name: one RTM_GETLINK for that name (no dump), then cached."""
        if ifname not in self._index:
            try:
                self._index[ifname] = self.ipr.link("get", ifname=ifname)[0]["index"]
            except NetlinkError:
                raise KernelError(f"no interface {ifname} in netns {self.where}") from None
        return self._index[ifname]

    def has(self, ifname: str) -> bool:
        try:
            self.index(ifname)
        except KernelError:
            return False
        return True

    def veth(self, ifname: str, peer: str, *, peer_netns: str | None = None,
             peer_mac: str | None = None, mtu: int | None = None, master: str | None = None,
             up: bool = False, mac: str | None = None) -> None:
        """A veth pair: IFNAME here (optionally already in bridge MASTER and up, in the same
        request), PEER here or straight in PEER_NETNS. The peer starts down."""
        peer_spec: dict = {"ifname": peer}
        if peer_netns:
            peer_spec["net_ns_fd"] = peer_netns
        if peer_mac:
            peer_spec["address"] = peer_mac
        if mtu:
            peer_spec["mtu"] = mtu
        spec: dict = {"ifname": ifname, "kind": "veth", "peer": peer_spec}
        if mtu:
            spec["mtu"] = mtu
        if mac:
            spec["address"] = mac
        if master:
            spec["master"] = self.index(master)
        if up:
            spec["state"] = "up"
        self._do(f"creating veth {ifname} <-> {peer}", self.ipr.link, "add", **spec)

    def bridge(self, ifname: str, mtu: int | None = None, up: bool = False) -> None:
        """A Linux bridge without STP or forwarding delay (a port plug's bridge, the wires)."""
        spec: dict = {"ifname": ifname, "kind": "bridge", "br_stp_state": 0, "br_forward_delay": 0}
        if mtu:
            spec["mtu"] = mtu
        if up:
            spec["state"] = "up"
        self._do(f"creating bridge {ifname}", self.ipr.link, "add", **spec)

    def delete(self, ifname: str) -> None:
        self._do(f"deleting {ifname}", self.ipr.link, "del", index=self.index(ifname))
        self._index.pop(ifname, None)

    def up(self, *ifnames: str) -> None:
        for ifname in ifnames:
            self._do(f"setting {ifname} up", self.ipr.link, "set", index=self.index(ifname), state="up")

    def add_address(self, ifname: str, ip: str, prefixlen: int) -> None:
        self._do(f"adding {ip}/{prefixlen} to {ifname}", self.ipr.addr, "add",
                 index=self.index(ifname), address=ip, prefixlen=prefixlen)

    def has_address(self, ifname: str, ip: str) -> bool:
        return any(a.get("address") == ip for a in self.ipr.get_addr(index=self.index(ifname)))

    def default_route(self, gateway: str, ifname: str) -> None:
        # on-link: the gateway may not answer yet (routers come later), the route still stands
        self._do(f"adding default route via {gateway}", self.ipr.route, "add", dst="0.0.0.0/0",
                 gateway=gateway, oif=self.index(ifname))

    def route(self, dst: str, gateway: str | None, ifname: str) -> None:
        """ip route replace DST [via GATEWAY] dev IFNAME (main table)."""
        spec: dict = {"dst": dst, "oif": self.index(ifname)}
        if gateway:
            spec["gateway"] = gateway
        self._do(f"adding route {dst} via {gateway or 'on-link'} on {ifname}", self.ipr.route, "replace", **spec)

    def table_route(self, destination: str, gateway: str, ifname: str, table: int) -> None:
        """ip route replace DESTINATION via GATEWAY dev IFNAME table TABLE (idempotent)."""
        self._do(f"adding route {destination} via {gateway} table {table}", self.ipr.route, "replace",
                 dst=destination, gateway=gateway, oif=self.index(ifname), table=table)

    def rules(self) -> set[tuple[int, int, str]]:
        """(priority, table, source CIDR) of every IPv4 policy rule with a source."""
        out = set()
        for r in self.ipr.get_rules(family=socket.AF_INET):
            src = r.get_attr("FRA_SRC")
            if src:
                out.add((r.get_attr("FRA_PRIORITY"), r.get_attr("FRA_TABLE") or r["table"],
                         f"{src}/{r['src_len']}"))
        return out

    def rule(self, priority: int, table: int, source: str) -> None:
        """ip rule add from SOURCE lookup TABLE priority PRIORITY, unless it is there."""
        if (priority, table, source) in self.rules():
            return
        ip, _, plen = source.partition("/")
        self._do(f"adding rule from {source} lookup {table} priority {priority}", self.ipr.rule, "add",
                 family=socket.AF_INET, priority=priority, table=table, src=ip, src_len=int(plen))

    def iif_rules(self) -> set[tuple[int, int, str]]:
        """(priority, table, input device) of every IPv4 rule with an input device."""
        out = set()
        for r in self.ipr.get_rules(family=socket.AF_INET):
            iif = r.get_attr("FRA_IIFNAME")
            if iif:
                out.add((r.get_attr("FRA_PRIORITY"), r.get_attr("FRA_TABLE") or r["table"], iif))
        return out

    def iif_rule(self, priority: int, table: int, iifname: str) -> None:
        """ip rule add iif IIFNAME lookup TABLE priority PRIORITY, unless it is there."""
        if (priority, table, iifname) in self.iif_rules():
            return
        self._do(f"adding rule iif {iifname} lookup {table} priority {priority}", self.ipr.rule, "add",
                 family=socket.AF_INET, priority=priority, table=table, iifname=iifname)

    def route_via(self, destination: str, gateway: str, ifname: str) -> None:
        """ip route replace DESTINATION via GATEWAY dev IFNAME (main table, idempotent)."""
        self._do(f"adding route {destination} via {gateway}", self.ipr.route, "replace",
                 dst=destination, gateway=gateway, oif=self.index(ifname))

    def routes_via(self) -> set[tuple[str, str]]:
        """(destination/prefix, gateway) of the main table's IPv4 routes with a gateway."""
        out = set()
        for r in self.ipr.get_routes(family=socket.AF_INET, table=254):
            gw = r.get_attr("RTA_GATEWAY")
            if gw:
                out.add((f"{r.get_attr('RTA_DST') or '0.0.0.0'}/{r['dst_len']}", gw))
        return out

    def permanent_neighbour(self, ifname: str, ip: str, mac: str) -> None:
        """ip neigh replace IP lladdr MAC nud permanent dev IFNAME (the DVR L3 agent's entries)."""
        self._do(f"adding neighbour {ip} {mac} on {ifname}", self.ipr.neigh, "replace", dst=ip, lladdr=mac,
                 ifindex=self.index(ifname), state=NUD_PERMANENT)

    def neighbours(self, ifname: str) -> dict[str, tuple[str, int]]:
        """IP -> (MAC, NUD state) of IFNAME's neighbour table."""
        out = {}
        for n in self.ipr.get_neighbours(ifindex=self.index(ifname)):
            ip, mac = n.get_attr("NDA_DST"), n.get_attr("NDA_LLADDR")
            if ip and mac:
                out[ip] = (mac, n["state"])
        return out

    def dump(self, routes: bool = True, neighbours: bool = True) -> dict:
        """The namespace's IPv4 state in one dump per kind: {"links": {name: up},
        "addresses": {(dev, ip, prefixlen)}, "routes": {(dst/len, gateway, dev)} (main table),
        "neighbours": {(dev, ip): (mac, NUD state)}}; ROUTES/NEIGHBOURS False skip those dumps."""
        names, up = {}, {}
        for link in self.ipr.get_links():
            names[link["index"]] = name = link.get_attr("IFLA_IFNAME")
            up[name] = bool(link["flags"] & IFF_UP)
        out: dict = {"links": up, "routes": set(), "neighbours": {},
                     "addresses": {(names.get(a["index"], "?"), a.get_attr("IFA_ADDRESS"), a["prefixlen"])
                                   for a in self.ipr.get_addr(family=socket.AF_INET)}}
        for r in self.ipr.get_routes(family=socket.AF_INET, table=254) if routes else ():
            out["routes"].add((f"{r.get_attr('RTA_DST') or '0.0.0.0'}/{r['dst_len']}", r.get_attr("RTA_GATEWAY"),
                               names.get(r.get_attr("RTA_OIF"), "?")))
        for n in self.ipr.get_neighbours(family=socket.AF_INET) if neighbours else ():
            if n.get_attr("NDA_DST") and n.get_attr("NDA_LLADDR"):
                out["neighbours"][(names.get(n["ifindex"], "?"), n.get_attr("NDA_DST"))] = \
                    (n.get_attr("NDA_LLADDR"), n["state"])
        return out

    def tx_checksum_off(self, *ifnames: str) -> None:
        """ethtool -K IF tx off: OVS's userspace datapath reads veths through AF_PACKET and
        never fills in a checksum the sender left to 'hardware', so TCP would be dropped."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for ifname in ifnames:
                value = ctypes.create_string_buffer(struct.pack("II", ETHTOOL_STXCSUM, 0))
                ifreq = struct.pack("16sP", ifname.encode(), ctypes.addressof(value)).ljust(40, b"\0")
                try:
                    fcntl.ioctl(sock.fileno(), SIOCETHTOOL, ifreq)
                except OSError as exc:
                    raise KernelError(f"turning off tx checksum offload on {ifname} in netns "
                                      f"{self.where}: {exc.strerror}") from None
