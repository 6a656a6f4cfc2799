"""Deliver recorded OpenFlow 1.3 messages to a real ovs-vswitchd over its management socket.

This is the transport os-ken would use (an OpenFlow channel), reduced to: HELLO, the
messages, a BARRIER; any OFPT_ERROR the switch sends back is an error here.
"""

from __future__ import annotations

import socket
import struct

OFP_VERSION = 4          # OpenFlow 1.3
OFPT_HELLO, OFPT_ERROR, OFPT_ECHO_REQUEST, OFPT_ECHO_REPLY = 0, 1, 2, 3
OFPT_BARRIER_REQUEST, OFPT_BARRIER_REPLY = 20, 21
BARRIER_XID = 0xFFFFFFF0


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise RuntimeError("switch closed the OpenFlow channel")
        buf += chunk
    return buf


def _recv_msg(sock: socket.socket) -> tuple[int, int, int, bytes]:
    header = _recv_exact(sock, 8)
    version, mtype, length, xid = struct.unpack("!BBHI", header)
    return version, mtype, xid, _recv_exact(sock, length - 8)


def deliver(mgmt_socket: str, messages: list[bytes], timeout: float = 20.0) -> None:
    """Send serialized messages; raise with the switch's errors if any message was refused."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.connect(mgmt_socket)
    try:
        sock.sendall(struct.pack("!BBHI", OFP_VERSION, OFPT_HELLO, 8, 1))
        _version, mtype, _xid, _body = _recv_msg(sock)
        if mtype != OFPT_HELLO:
            raise RuntimeError(f"expected HELLO from the switch, got type {mtype}")
        for m in messages:
            sock.sendall(m)
        sock.sendall(struct.pack("!BBHI", OFP_VERSION, OFPT_BARRIER_REQUEST, 8, BARRIER_XID))
        errors = []
        while True:
            version, mtype, xid, body = _recv_msg(sock)
            if mtype == OFPT_ERROR:
                etype, code = struct.unpack("!HH", body[:4])
                errors.append(f"xid {xid}: error type {etype} code {code}")
            elif mtype == OFPT_ECHO_REQUEST:
                sock.sendall(struct.pack("!BBHI", version, OFPT_ECHO_REPLY, 8 + len(body), xid) + body)
            elif mtype == OFPT_BARRIER_REPLY and xid == BARRIER_XID:
                break
        if errors:
            raise RuntimeError(f"{mgmt_socket}: the switch refused {len(errors)} message(s): "
                               + "; ".join(errors))
    finally:
        sock.close()
