"""Kernel objects through netlink, in the namespace the calling thread is in.

Use inside ``netns.entered(name)``. Changes are netlink requests sent in batches
(``nlbatch``, encoded as pyroute2 encodes them); reads (addresses, routes, neighbours) go
through a pyroute2 socket opened there on first use. Nothing here spawns a process; the one
ioctl (checksum offload) goes through a socket of that namespace.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import socket
import struct
from contextlib import contextmanager

from lab.runtime import nlbatch
from lab.runtime.nlbatch import Batch, KernelError

MAX_OPEN_NETNS = 128    # peer namespaces held open by one batch before it is sent
NUD_PERMANENT = 0x80
IFF_UP = 0x1
SIOCETHTOOL = 0x8946
ETHTOOL_STXCSUM = 0x00000017


class Links:
    """Links, addresses and routes of one namespace.

    Changes go out as batches (``nlbatch``: many requests to one ``sendto``). Outside ``batched()`` each call is a batch of its own; inside, requests are
    queued and sent when the block ends: new bridges first, then one RTM_GETLINK round for
    every device a later request needs by index (a master, an address's device), then the
    rest in the order given, then the checksum ioctls, once every device exists."""

    def __init__(self, where: str):
        self.where = where  # for error messages: the namespace name
        self._ipr = None
        self._index: dict[str, int] = {}
        self._queue: list[tuple] | None = None
        self._offload: list[str] = []      # checksum ioctls owed when the batch is sent

    @property
    def ipr(self):
        """A pyroute2 IPRoute for reads (dumps), opened on first use in the calling thread's
        namespace; imported then too (0.1 s), so `up` and `down` never pay for it."""
        if self._ipr is None:
            from pyroute2 import IPRoute
            self._ipr = IPRoute()
        return self._ipr

    def close(self) -> None:
        if self._ipr is not None:
            self._ipr.close()

    def __enter__(self) -> "Links":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _do(self, what: str, fn, *args, **kwargs):
        """A pyroute2 call (the rarer requests: policy rules, routes in other tables); its
        NetlinkError as a KernelError naming WHAT."""
        from pyroute2.netlink.exceptions import NetlinkError
        try:
            return fn(*args, **kwargs)
        except NetlinkError as exc:
            raise KernelError(f"{what} in netns {self.where}: {exc.args[-1] if exc.args else exc} "
                              f"(errno {exc.code})") from None

    def _request(self, what: str, build, *, needs: tuple[str, ...] = (), first: bool = False,
                 **kwargs) -> None:
        """One request: BUILD(**KWARGS) encodes it (nlbatch). NEEDS name the keywords given
        as a device name whose index replaces it when the request is encoded."""
        entry = (what, build, kwargs, needs, first)
        if self._queue is not None:
            self._queue.append(entry)
        else:
            self._send([entry])

    @contextmanager
    def batched(self):
        """Queue this block's changes and send them in a few batches when it ends."""
        self._queue = []
        try:
            yield self
            queue = self._queue
        finally:
            self._queue = None
        self._send([e for e in queue if e[4]] + [e for e in queue if not e[4]])
        offload, self._offload = self._offload, []
        self.tx_checksum_off(*offload)

    def _send(self, entries: list[tuple]) -> None:
        batch = Batch(self.where)
        fds: list[int] = []
        try:
            for i, (what, build, kwargs, needs, _) in enumerate(entries):
                if any(kwargs[k] not in self._index for k in needs) or len(fds) >= MAX_OPEN_NETNS:
                    batch.send()
                    _close(fds)
                    self._resolve(entries[i:])
                kwargs = {k: (self._index[v] if k in needs else v) for k, v in kwargs.items()}
                if kwargs.get("peer_netns"):
                    fds.append(_open_netns(kwargs["peer_netns"]))
                    kwargs["peer_netns"] = fds[-1]
                batch.add(what, build(**kwargs))
            batch.send()
        finally:
            _close(fds)

    def _resolve(self, entries: list[tuple]) -> None:
        """Find the index of every device ENTRIES need that exists now (those a later entry
        makes are found when their turn comes); the first entry's must be among them."""
        made = {e[2]["ifname"] for e in entries if e[1] in (_veth, _bridge)}
        first = {entries[0][2][k] for k in entries[0][3]} - set(self._index)
        later = {e[2][k] for e in entries for k in e[3]} - set(self._index) - made
        self._lookup(first | later)
        missing = sorted(n for n in first if n not in self._index)
        if missing:
            raise KernelError(f"no interface {', '.join(missing)} in netns {self.where}")

    def _lookup(self, names: set[str]) -> None:
        """Indexes of NAMES (one RTM_GETLINK each, one batch); a name not found stays out."""
        batch = Batch(self.where)
        seqs = {batch.add(f"finding interface {n}", nlbatch.link_get(n)): n for n in sorted(names)}
        for seq, reply in batch.send(check=False).items():
            self._index[seqs[seq]] = nlbatch.link_index(reply)

    def index(self, ifname: str) -> int:
        """Interface index by name: one RTM_GETLINK for that name (no dump), then cached."""
        if ifname not in self._index:
            self._lookup({ifname})
            if ifname not in self._index:
                raise KernelError(f"no interface {ifname} in netns {self.where}")
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
        self._request(f"creating veth {ifname} <-> {peer}", _veth, needs=("master",) if master else (),
                      ifname=ifname, peer=peer, peer_netns=peer_netns, peer_mac=peer_mac, mtu=mtu,
                      master=master, up=up, mac=mac)

    def bridge(self, ifname: str, mtu: int | None = None, up: bool = False) -> None:
        """A Linux bridge without STP or forwarding delay (a port plug's bridge, the wires)."""
        self._request(f"creating bridge {ifname}", _bridge, first=True, ifname=ifname, mtu=mtu, up=up)

    def delete(self, ifname: str) -> None:
        self._request(f"deleting {ifname}", nlbatch.link_del, needs=("index",), index=ifname)
        self._index.pop(ifname, None)

    def up(self, *ifnames: str) -> None:
        for ifname in ifnames:
            self._request(f"setting {ifname} up", nlbatch.link_up, ifname=ifname)

    def add_address(self, ifname: str, ip: str, prefixlen: int) -> None:
        self._request(f"adding {ip}/{prefixlen} to {ifname}", nlbatch.addr_add, needs=("index",),
                      index=ifname, ip=ip, prefixlen=prefixlen)

    def has_address(self, ifname: str, ip: str) -> bool:
        return any(a.get("address") == ip for a in self.ipr.get_addr(index=self.index(ifname)))

    def default_route(self, gateway: str, ifname: str) -> None:
        # on-link: the gateway may not answer yet (routers come later), the route still stands
        self._request(f"adding default route via {gateway}", nlbatch.default_route, needs=("oif",),
                      gateway=gateway, oif=ifname)

    def route(self, dst: str, gateway: str | None, ifname: str) -> None:
        """ip route replace DST [via GATEWAY] dev IFNAME (main table)."""
        self._request(f"adding route {dst} via {gateway or 'on-link'} on {ifname}", nlbatch.route_replace,
                      needs=("oif",), dst=dst, gateway=gateway, oif=ifname)

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
        self._request(f"adding neighbour {ip} {mac} on {ifname}", nlbatch.neigh_replace, needs=("index",),
                      index=ifname, ip=ip, mac=mac, state=NUD_PERMANENT)

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
        never fills in a checksum the sender left to 'hardware', so TCP would be dropped.
        Inside ``batched()`` it waits until the batch has made the devices."""
        if self._queue is not None:
            self._offload += ifnames
            return
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for ifname in ifnames:
                value = ctypes.create_string_buffer(struct.pack("II", ETHTOOL_STXCSUM, 0))
                ifreq = struct.pack("16sP", ifname.encode(), ctypes.addressof(value)).ljust(40, b"\0")
                try:
                    fcntl.ioctl(sock.fileno(), SIOCETHTOOL, ifreq)
                except OSError as exc:
                    raise KernelError(f"turning off tx checksum offload on {ifname} in netns "
                                      f"{self.where}: {exc.strerror}") from None


def _open_netns(name: str) -> int:
    try:
        return os.open(f"/run/netns/{name}", os.O_RDONLY)
    except FileNotFoundError:
        raise KernelError(f"namespace {name} does not exist") from None


def _close(fds: list[int]) -> None:
    while fds:
        os.close(fds.pop())


def _veth(*, ifname: str, peer: str, peer_netns: int | None, peer_mac: str | None, mtu: int | None,
          master: int | None, up: bool, mac: str | None) -> tuple[int, int, bytes]:
    data = nlbatch.veth_data(peer, netns_fd=peer_netns, mtu=mtu, mac=peer_mac)
    return nlbatch.link_add(ifname, "veth", up=up, master=master, mtu=mtu, mac=mac, data=data)


def _bridge(*, ifname: str, mtu: int | None, up: bool) -> tuple[int, int, bytes]:
    return nlbatch.link_add(ifname, "bridge", up=up, mtu=mtu, data=nlbatch.bridge_data())
