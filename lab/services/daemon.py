"""Running a unix-socket server as a daemon the lab can find and end by pid.

``run`` forks twice (the caller's command returns once the server listens, like dnsmasq
and haproxy do), names the process (``comm``, which lab/runtime/processes.py knows), binds the
socket, writes the pid file, and serves until SIGTERM, then removes its socket and pid file.
A failure to bind is printed by the command that started it, which exits 1.

``main`` is the command line the metadata agent and server share: their socket, their own
data files, the shared secret, pid file and log, then ``run``.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import signal
import sys
from pathlib import Path
from typing import Callable, Sequence

from lab.services import unixhttp

PR_SET_NAME = 15


def set_comm(name: str) -> None:
    """The process's name in /proc/PID/comm (15 bytes at most)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_NAME, name.encode()[:15], 0, 0, 0)
    except (OSError, AttributeError):
        pass


def main(prog: str, comm: str, options: Sequence[str], handler: Callable[[argparse.Namespace, bytes], Callable],
         argv: list[str] | None = None) -> None:
    """Parse ``--socket S OPTIONS… --secret-file F --pidfile F --log F [--foreground]`` (every
    option but --foreground required), read the secret, and serve a unix-socket HTTP server as
    the daemon COMM. HANDLER(args, secret) is called before the daemon forks (it reads the
    service's files there, so a bad one fails the starting command); what it returns is called
    with the opened log file and gives the request handler class."""
    ap = argparse.ArgumentParser(prog=prog)
    for option in ("--socket", *options, "--secret-file", "--pidfile", "--log"):
        ap.add_argument(option, required=True)
    ap.add_argument("--foreground", action="store_true")
    args = ap.parse_args(argv)
    secret = Path(args.secret_file).read_bytes().strip()
    handler_for_log = handler(args, secret)

    def make():
        log_file = open(args.log, "a")
        return unixhttp.UnixHTTPServer(args.socket, handler_for_log(log_file))

    run(comm, args.socket, args.pidfile, args.log, make, args.foreground)


def read_json(path: str, key: str):
    """KEY of the JSON document in PATH (the services' ports and instances files)."""
    return json.loads(Path(path).read_text())[key]


def run(comm: str, socket_path: str, pidfile: str, log: str, make_server: Callable[[], object],
        foreground: bool = False) -> None:
    """Serve MAKE_SERVER()'s server (bound to SOCKET_PATH) as a daemon named COMM."""
    if foreground:
        _serve(comm, socket_path, pidfile, log, make_server, None)
        return
    read_end, write_end = os.pipe()
    if os.fork():
        os.close(write_end)
        said = os.read(read_end, 4096).decode(errors="replace")
        if said != "ok":
            print(said or "the daemon died before it listened", file=sys.stderr)
            sys.exit(1)
        sys.exit(0)
    os.close(read_end)
    os.setsid()
    if os.fork():
        os._exit(0)
    _serve(comm, socket_path, pidfile, log, make_server, write_end)


def _serve(comm, socket_path, pidfile, log, make_server, ready_fd) -> None:
    set_comm(comm)
    try:
        Path(socket_path).unlink(missing_ok=True)      # a socket left by a killed predecessor
        server = make_server()
        os.chmod(socket_path, 0o600)
        Path(pidfile).write_text(f"{os.getpid()}\n")
    except Exception as exc:  # told to the starting command
        if ready_fd is not None:
            os.write(ready_fd, f"{comm}: {exc}".encode())
            os._exit(1)
        raise
    if ready_fd is not None:
        _detach(log)
        os.write(ready_fd, b"ok")
        os.close(ready_fd)

    def stop(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever()
    finally:
        Path(socket_path).unlink(missing_ok=True)
        if Path(pidfile).read_text().strip() == str(os.getpid()):
            Path(pidfile).unlink(missing_ok=True)


def _detach(log: str) -> None:
    """stdin from /dev/null, stdout and stderr to LOG."""
    null = os.open(os.devnull, os.O_RDONLY)
    out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(null, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.close(null)
    os.close(out)
