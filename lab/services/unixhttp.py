"""HTTP over unix sockets with the standard library: a threading server and a client
connection, shared by the metadata agent and server."""

from __future__ import annotations

import http.client
import http.server
import socket
import socketserver


class UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    request_queue_size = 128


class Handler(http.server.BaseHTTPRequestHandler):
    """A request handler whose client has no address (a unix socket) and that logs to the
    server's log file, if any."""

    protocol_version = "HTTP/1.0"
    server_version = "neutron-lab"
    log_file = None     # set per server class

    def address_string(self) -> str:
        return "unix"

    def log_message(self, format: str, *args) -> None:   # noqa: A002 (the base class's name)
        if self.log_file is not None:
            self.log_file.write("%s %s\n" % (self.log_date_time_string(), format % args))
            self.log_file.flush()

    def reply(self, status: int, body: bytes | str, content_type: str = "text/plain; charset=UTF-8") -> None:
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client to a server on a unix socket."""

    def __init__(self, path: str, timeout: float = 10.0):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def request(path: str, method: str, url: str, headers: dict[str, str], timeout: float = 10.0
            ) -> tuple[int, str, bytes]:
    """(status, content type, body) of one request to the server on unix socket PATH."""
    conn = UnixHTTPConnection(path, timeout)
    try:
        conn.request(method, url, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type", "text/plain"), resp.read()
    finally:
        conn.close()
