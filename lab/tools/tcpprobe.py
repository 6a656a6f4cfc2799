"""A TCP probe run inside instance namespaces: `python -m lab.tools.tcpprobe serve|send ...`.

The server accepts one connection, reads the announced number of bytes, and answers with their
SHA-256; the client sends random bytes and compares. A megabyte is hundreds of full-size
segments, so a broken MTU or checksum offload shows up as a failure, not as a lucky ping.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import struct
import sys
import time


def serve(port: int, timeout: float) -> int:
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", port))
    srv.listen(1)
    srv.settimeout(timeout)
    print("listening", flush=True)
    try:
        conn, peer = srv.accept()
    except socket.timeout:
        print(json.dumps({"error": "no connection"}), flush=True)
        return 1
    with conn:
        conn.settimeout(timeout)
        size = struct.unpack("!Q", _recv_exact(conn, 8))[0]
        digest = hashlib.sha256()
        remaining = size
        while remaining:
            chunk = conn.recv(min(65536, remaining))
            if not chunk:
                break
            digest.update(chunk)
            remaining -= len(chunk)
        conn.sendall(digest.digest())
        print(json.dumps({"peer": peer[0], "received": size - remaining}), flush=True)
    return 0


def send(host: str, port: int, size: int, timeout: float, sport: int = 0, token: bytes = b"") -> int:
    # the token first: captures recognise the connection by it, even after NAT changed its ports
    payload = token + os.urandom(max(0, size - len(token)))
    started = time.monotonic()
    result = {"host": host, "port": port, "bytes": size}
    try:
        with connect_from(sport, host, port, timeout) as conn:
            result["mss"] = conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG)
            conn.sendall(struct.pack("!Q", size) + payload)
            answer = _recv_exact(conn, 32)
    except OSError as exc:
        result.update(ok=False, error=f"{type(exc).__name__}: {exc}")
        print(json.dumps(result), flush=True)
        return 1
    result["seconds"] = round(time.monotonic() - started, 4)
    result["ok"] = answer == hashlib.sha256(payload).digest()
    if not result["ok"]:
        result["error"] = "the server received different bytes"
    print(json.dumps(result), flush=True)
    return 0 if result["ok"] else 1


def connect_from(sport: int, host: str, port: int, timeout: float) -> socket.socket:
    """A connection from a known client port (--sport), so captures can tell this probe's
    segments from any other; SO_REUSEADDR lets a port in TIME_WAIT be used again (a check
    run twice within a minute may draw the same port). Also the metadata probe's."""
    conn = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        conn.bind(("", sport))
        conn.settimeout(timeout)
        conn.connect((host, port))
    except OSError:
        conn.close()
        raise
    return conn


UDP_PACING = 0.1   # seconds between datagrams, so each shows up on its own in captures


def send_udp(host: str, port: int, count: int, sport: int = 0, token: bytes = b"") -> int:
    """A few datagrams, for `lab trace --proto udp:PORT`: there is no answer to wait for."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("", sport))
        for i in range(count):
            sock.sendto(token + f"neutron-lab trace {i}".encode(), (host, port))
            time.sleep(UDP_PACING)
    print(json.dumps({"host": host, "port": port, "sent": count}), flush=True)
    return 0


def _recv_exact(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionError(f"connection closed after {len(data)} of {n} bytes")
        data += chunk
    return data


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lab.tools.tcpprobe")
    sub = p.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--timeout", type=float, default=10)
    c = sub.add_parser("send")
    c.add_argument("--host", required=True)
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--bytes", type=int, default=1 << 20)
    c.add_argument("--timeout", type=float, default=5)
    c.add_argument("--sport", type=int, default=0, help="the client's port (0: any)")
    c.add_argument("--token", type=bytes.fromhex, default=b"", help="hex bytes the payload starts with")
    u = sub.add_parser("udp")
    u.add_argument("--host", required=True)
    u.add_argument("--port", type=int, required=True)
    u.add_argument("--count", type=int, default=3)
    u.add_argument("--sport", type=int, default=0, help="the sender's port (0: any)")
    u.add_argument("--token", type=bytes.fromhex, default=b"", help="hex bytes each datagram starts with")
    args = p.parse_args(argv)
    if args.mode == "udp":
        return send_udp(args.host, args.port, args.count, args.sport, args.token)
    if args.mode == "serve":
        return serve(args.port, args.timeout)
    return send(args.host, args.port, args.bytes, args.timeout, args.sport, args.token)


if __name__ == "__main__":
    sys.exit(main())
