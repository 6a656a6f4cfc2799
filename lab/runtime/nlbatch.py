"""Netlink requests in batches: encoded here, sent many to one ``sendto`` on a plain
rtnetlink socket of the calling thread's namespace, every acknowledgement read.

This is what ``ip -batch`` does: the kernel takes the requests one after the other from one
buffer, so a hundred veths cost one system call and a few microseconds of Python each.
The encoders below write the few requests the lab makes (link add/set/get/del, address,
default route, permanent neighbour) byte for byte as pyroute2's request compiler
(``IPBatch``) writes them for the same arguments: tests/unit/test_nlbatch.py holds them to
that, so pyroute2 stays the reference for what goes on the wire while the runtime pays
neither its request machinery (about 0.45 ms a request here) nor a round trip per object.

A failed request raises ``KernelError`` naming what it was for and the kernel's reason
(extended ACK message when the kernel gives one). The kernel goes on with the requests after
a failed one in the same buffer: whatever they made lives in the lab's namespaces and goes
with them on rollback.
"""

from __future__ import annotations

import itertools
import os
import socket
import struct

from lab.errors import LabError

NETLINK_ROUTE = 0
SO_RCVBUFFORCE = 33                  # asm-generic/socket.h (Python's socket module lacks it)
SOL_NETLINK = 270
NETLINK_CAP_ACK = 10
NETLINK_EXT_ACK = 11
NLMSG_ERROR = 2
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR, RTM_NEWROUTE, RTM_NEWNEIGH = 20, 24, 28
F_REQUEST, F_ACK, F_REPLACE, F_EXCL, F_CREATE = 0x1, 0x4, 0x100, 0x200, 0x400
CREATE = F_REQUEST | F_ACK | F_CREATE | F_EXCL
REPLACE = F_REQUEST | F_ACK | F_CREATE | F_REPLACE
REQUEST = F_REQUEST | F_ACK
IFF_UP = 1
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_MASTER, IFLA_LINKINFO, IFLA_NET_NS_FD = 1, 3, 4, 10, 18, 28
IFLA_INFO_KIND, IFLA_INFO_DATA, VETH_INFO_PEER = 1, 2, 1
IFLA_BR_FORWARD_DELAY, IFLA_BR_STP_STATE = 1, 5
NLMSGERR_ATTR_MSG = 1
HEADER = struct.Struct("=LHHLL")     # nlmsghdr: length, type, flags, seq, pid
IFINFO = struct.Struct("=BxHiII")    # ifinfomsg: family, type, index, flags, change
CHUNK = 32                           # requests per sendto (see Batch.send)
RCVBUF = 1 << 22                     # asked for with SO_RCVBUFFORCE (root), else rmem_max applies
_seq = itertools.count(1)


class KernelError(LabError):
    pass


# --------------------------------------------------------------------------- encoders

def _attr(kind: int, payload: bytes) -> bytes:
    size = 4 + len(payload)
    return struct.pack("=HH", size, kind) + payload + b"\0" * (-size % 4)


def _name(text: str) -> bytes:
    return text.encode() + b"\0"


def _u32(value: int) -> bytes:
    return struct.pack("=I", value)


def _mac(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def _link_attrs(ifname: str, master: int | None = None, mtu: int | None = None,
                mac: str | None = None, netns_fd: int | None = None) -> bytes:
    out = _attr(IFLA_IFNAME, _name(ifname))
    if master is not None:
        out += _attr(IFLA_MASTER, _u32(master))
    if netns_fd is not None:
        out += _attr(IFLA_NET_NS_FD, _u32(netns_fd))
    if mtu:
        out += _attr(IFLA_MTU, _u32(mtu))
    if mac:
        out += _attr(IFLA_ADDRESS, _mac(mac))
    return out


def _ifinfo(up: bool, index: int = 0) -> bytes:
    return IFINFO.pack(0, 0, index, IFF_UP if up else 0, IFF_UP if up else 0)


def link_add(ifname: str, kind: str, *, up: bool = False, master: int | None = None,
             mtu: int | None = None, mac: str | None = None, data: bytes = b"") -> tuple[int, int, bytes]:
    info = _attr(IFLA_INFO_KIND, _name(kind)) + (_attr(IFLA_INFO_DATA, data) if data else b"")
    return RTM_NEWLINK, CREATE, _ifinfo(up) + _link_attrs(ifname, master, mtu, mac) + _attr(IFLA_LINKINFO, info)


def bridge_data() -> bytes:
    """A bridge without STP and without forwarding delay."""
    return _attr(IFLA_BR_STP_STATE, _u32(0)) + _attr(IFLA_BR_FORWARD_DELAY, _u32(0))


def veth_data(peer: str, *, netns_fd: int | None = None, mtu: int | None = None,
              mac: str | None = None) -> bytes:
    """The peer of a veth: its name, namespace (an open fd), MTU and MAC; it starts down."""
    body = IFINFO.pack(0, 0, 0, 0, 0)
    body += _attr(IFLA_IFNAME, _name(peer))
    if netns_fd is not None:
        body += _attr(IFLA_NET_NS_FD, _u32(netns_fd))
    if mac:
        body += _attr(IFLA_ADDRESS, _mac(mac))
    if mtu:
        body += _attr(IFLA_MTU, _u32(mtu))
    return _attr(VETH_INFO_PEER, body)


def link_up(ifname: str) -> tuple[int, int, bytes]:
    return RTM_NEWLINK, REQUEST, _ifinfo(True) + _attr(IFLA_IFNAME, _name(ifname))


def link_get(ifname: str) -> tuple[int, int, bytes]:
    return RTM_GETLINK, REQUEST, _ifinfo(False) + _attr(IFLA_IFNAME, _name(ifname))


def link_del(index: int) -> tuple[int, int, bytes]:
    return RTM_DELLINK, REQUEST, _ifinfo(False, index)


def addr_add(index: int, ip: str, prefixlen: int) -> tuple[int, int, bytes]:
    raw = socket.inet_aton(ip)
    body = struct.pack("=BBBBi", socket.AF_INET, prefixlen, 0, 0, index)
    return RTM_NEWADDR, CREATE, body + _attr(1, raw) + _attr(2, raw)      # IFA_ADDRESS, IFA_LOCAL


def default_route(gateway: str, oif: int) -> tuple[int, int, bytes]:
    # rtmsg: IPv4, /0, main table, proto static, scope universe, unicast
    body = struct.pack("=BBBBBBBBI", socket.AF_INET, 0, 0, 0, 254, 4, 0, 1, 0)
    return RTM_NEWROUTE, CREATE, body + _attr(5, socket.inet_aton(gateway)) + _attr(4, _u32(oif))


def route_replace(dst: str, gateway: str | None, oif: int) -> tuple[int, int, bytes]:
    """ip route replace DST [via GATEWAY] dev OIF, main table (DST as a.b.c.d/len)."""
    net, _, length = dst.partition("/")
    prefixlen = int(length or 32)
    body = struct.pack("=BBBBBBBBI", socket.AF_INET, prefixlen, 0, 0, 254, 4, 0, 1, 0)
    if prefixlen:
        body += _attr(1, socket.inet_aton(net))                            # RTA_DST
    if gateway:
        body += _attr(5, socket.inet_aton(gateway))                        # RTA_GATEWAY
    return RTM_NEWROUTE, REPLACE, body + _attr(4, _u32(oif))              # RTA_OIF


def neigh_replace(index: int, ip: str, mac: str, state: int) -> tuple[int, int, bytes]:
    body = struct.pack("=BxxxiHBB", socket.AF_INET, index, state, 0, 0)
    return RTM_NEWNEIGH, REPLACE, body + _attr(1, socket.inet_aton(ip)) + _attr(2, _mac(mac))


# --------------------------------------------------------------------------- sending

class Batch:
    """Requests of one namespace, encoded as they are added and sent by ``send()``."""

    def __init__(self, where: str):
        self.where = where
        self._buf = bytearray()
        self._what: dict[int, str] = {}     # seq -> what the request was for (error messages)
        self._bounds: list[int] = [0]       # where each message ends in the buffer

    def __len__(self) -> int:
        return len(self._what)

    def add(self, what: str, request: tuple[int, int, bytes]) -> int:
        """Queue one request (type, flags, payload from an encoder above); return its seq."""
        kind, flags, payload = request
        seq = next(_seq) & 0xFFFFFFFF
        self._buf += HEADER.pack(HEADER.size + len(payload), kind, flags, seq, 0) + payload
        self._what[seq] = what
        self._bounds.append(len(self._buf))
        return seq

    def send(self, check: bool = True) -> dict[int, bytes]:
        """Send every request, read every ACK (CHECK: raise on the first failure); return
        the replies that carry data (a RTM_GETLINK's RTM_NEWLINK) by seq. The batch is empty
        afterwards."""
        data, bounds, what = bytes(self._buf), self._bounds, self._what
        self._buf, self._what, self._bounds = bytearray(), {}, [0]
        if not what:
            return {}
        replies: dict[int, bytes] = {}
        try:
            with _socket() as sock:
                # CHUNK requests a sendto: their ACKs (and a RTM_GETLINK's reply, a few kB of
                # kernel memory each) must fit the socket's receive buffer, or they are lost
                count = len(bounds) - 1
                for first in range(0, count, CHUNK):
                    last = min(first + CHUNK, count)
                    start, end = bounds[first], bounds[last]
                    expected = {HEADER.unpack_from(data, off)[3] for off in bounds[first:last]}
                    sock.sendto(data[start:end], (0, 0))
                    self._read_acks(sock, expected, what, replies, check)
        except OSError as exc:
            raise KernelError(f"netlink in netns {self.where}: {exc.strerror or exc}") from None
        return replies

    def _read_acks(self, sock: socket.socket, expected: set[int], what: dict[int, str],
                   replies: dict[int, bytes], check: bool) -> None:
        first_error: str | None = None
        while expected:
            buf = sock.recv(1 << 20)
            off = 0
            while off + HEADER.size <= len(buf):
                length, kind, _flags, seq, _pid = HEADER.unpack_from(buf, off)
                if length < HEADER.size:
                    break
                if kind == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", buf, off + HEADER.size)[0]
                    expected.discard(seq)
                    if code and first_error is None:
                        reason = _ext_message(buf[off:off + length]) or os.strerror(code)
                        first_error = (f"{what.get(seq, 'a request')} in netns {self.where}: "
                                       f"{reason} (errno {code})")
                elif kind == RTM_NEWLINK:
                    replies[seq] = buf[off:off + length]
                off += (length + 3) & ~3
        if first_error and check:
            raise KernelError(first_error)


def _socket() -> socket.socket:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
    for opt in (NETLINK_CAP_ACK, NETLINK_EXT_ACK):      # short ACKs, with the kernel's reason
        try:
            sock.setsockopt(SOL_NETLINK, opt, 1)
        except OSError:
            pass
    sock.bind((0, 0))
    return sock


def _ext_message(msg: bytes) -> str | None:
    """The NLMSGERR_ATTR_MSG of an error ACK (sent with NETLINK_CAP_ACK: the request's header
    only, then the extended-ACK attributes)."""
    off = HEADER.size + 4 + HEADER.size
    while off + 4 <= len(msg):
        alen, atype = struct.unpack_from("=HH", msg, off)
        if alen < 4:
            break
        if atype & 0x3FFF == NLMSGERR_ATTR_MSG:
            return msg[off + 4:off + alen].split(b"\0", 1)[0].decode(errors="replace")
        off += (alen + 3) & ~3
    return None


def link_index(reply: bytes) -> int:
    """ifi_index of a RTM_NEWLINK reply (struct ifinfomsg after the header)."""
    return struct.unpack_from("=i", reply, HEADER.size + 4)[0]
