"""Netlink requests in batches: compiled by pyroute2's IPBatch (handed in by kernel.py), sent many to one ``sendto``
on a plain rtnetlink socket of the calling thread's namespace, every acknowledgement read.

This is what ``ip -batch`` does: the kernel takes the requests one after the other from one
buffer, so a hundred veths cost one system call and no Python per reply beyond reading a
16-byte header. pyroute2 still encodes every request (``IPBatch`` is its request compiler),
so the messages are exactly the ones ``IPRoute`` sends; only the round trips are saved.

A failed request raises ``KernelError`` naming what it was for and the kernel's reason
(extended ACK message when the kernel gives one). The kernel goes on with the requests after
a failed one in the same buffer: whatever they made lives in the lab's namespaces and goes
with them on rollback.
"""

from __future__ import annotations

import os
import socket
import struct

from lab.errors import LabError

NETLINK_ROUTE = 0
SOL_NETLINK = 270
NETLINK_CAP_ACK = 10
NETLINK_EXT_ACK = 11
NLMSG_ERROR = 2
RTM_NEWLINK = 16
NLMSGERR_ATTR_MSG = 1
HEADER = struct.Struct("=LHHLL")     # nlmsghdr: length, type, flags, seq, pid
CHUNK = 48 * 1024                    # bytes per sendto: the ACKs must fit the receive buffer


class KernelError(LabError):
    pass


class Batch:
    """Requests of one namespace, compiled as they are added and sent by ``send()``."""

    def __init__(self, where: str, compiler):
        self.where = where
        self._ipb = compiler        # pyroute2's IPBatch (kernel.py is what imports pyroute2)
        self._what: dict[int, str] = {}     # seq -> what the request was for (error messages)
        self._bounds: list[int] = [0]       # where each message ends in the buffer

    def __len__(self) -> int:
        return len(self._what)

    def add(self, what: str, method: str, *args, **kwargs) -> int:
        """Compile one request (``method`` as on IPRoute: link, addr, route, neigh); its seq."""
        buf = self._ipb.asyncore.batch
        start = len(buf)
        getattr(self._ipb, method)(*args, **kwargs)
        seq = HEADER.unpack_from(buf, start)[3]
        self._what[seq] = what
        self._bounds.append(len(buf))
        return seq

    def send(self, check: bool = True) -> dict[int, bytes]:
        """Send every request, read every ACK (CHECK: raise on the first failure); return
        the replies that carry data (a RTM_GETLINK's RTM_NEWLINK) by seq. The batch is empty
        afterwards."""
        data = bytes(self._ipb.asyncore.batch)
        bounds, what = self._bounds, self._what
        self._ipb.reset()
        self._what, self._bounds = {}, [0]
        if not what:
            return {}
        replies: dict[int, bytes] = {}
        with _socket() as sock:
            start = 0
            while start < len(data):
                end = max((b for b in bounds if b - start <= CHUNK), default=start)
                if end <= start:      # one message larger than a chunk
                    end = next(b for b in bounds if b > start)
                expected = {HEADER.unpack_from(data, off)[3]
                            for off in bounds if start <= off < end}
                sock.sendto(data[start:end], (0, 0))
                self._read_acks(sock, expected, what, replies, check)
                start = end
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
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
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
