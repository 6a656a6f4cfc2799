"""The TCP/UDP probe's identity (lab/tools/tcpprobe.py): it leaves from the client port it is
given and its payload starts with the token, which is how captures recognise it. Runs on
127.0.0.1 only."""

from __future__ import annotations

import hashlib
import json
import socket
import struct
import threading

from lab.tools import tcpprobe


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_send_uses_the_given_port_and_token(capsys):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    seen = {}

    def serve():
        conn, peer = srv.accept()
        with conn:
            size = struct.unpack("!Q", tcpprobe._recv_exact(conn, 8))[0]
            data = tcpprobe._recv_exact(conn, size)
            seen.update(port=peer[1], head=data[:16], size=size)
            conn.sendall(hashlib.sha256(data).digest())
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    sport, token = _free_port(), b"0123456789abcdef"
    rc = tcpprobe.main(["send", "--host", "127.0.0.1", "--port", str(srv.getsockname()[1]), "--bytes", "4096",
                        "--sport", str(sport), "--token", token.hex(), "--timeout", "5"])
    t.join(5)
    srv.close()
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc == 0 and result["ok"] and seen == {"port": sport, "head": token, "size": 4096}


def test_udp_datagrams_carry_the_token(capsys, monkeypatch):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(5)
        sport = _free_port()
        monkeypatch.setattr(tcpprobe, "UDP_PACING", 0)
        assert tcpprobe.main(["udp", "--host", "127.0.0.1", "--port", str(rx.getsockname()[1]), "--count", "2",
                              "--sport", str(sport), "--token", "aabb"]) == 0
        for i in range(2):
            data, peer = rx.recvfrom(100)
            assert data == b"\xaa\xbb" + f"neutron-lab trace {i}".encode() and peer[1] == sport


def test_a_refused_connection_is_reported(capsys):
    port = _free_port()
    assert tcpprobe.main(["send", "--host", "127.0.0.1", "--port", str(port), "--timeout", "2"]) == 1
    assert json.loads(capsys.readouterr().out)["ok"] is False


def test_the_metadata_probe_reuses_a_client_port_in_time_wait(capsys):
    """A check draws its client port at random: a draw that an earlier probe's connection
    still holds in TIME_WAIT must not fail the check with EADDRINUSE."""
    import http.server

    from lab.tools import metadata_probe

    class Answer(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=server.handle_request, daemon=True).start()
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    sport = _free_port()
    first = tcpprobe.connect_from(sport, "127.0.0.1", holder.getsockname()[1], 5)
    accepted, _ = holder.accept()
    first.close()          # the client closes first: its port stays in TIME_WAIT
    accepted.close()
    holder.close()
    code = metadata_probe.main(["--host", "127.0.0.1", "--port", str(server.server_address[1]),
                                "--sport", str(sport), "--timeout", "5"])
    server.server_close()
    assert json.loads(capsys.readouterr().out) == {"status": 200, "body": "ok"} and code == 0
