"""Run inside an instance (``python -m lab.tools.metadata_probe``): one HTTP GET to the
metadata address from a chosen client port, carrying the probe's token in a header so its
packets can be recognised in captures; prints one JSON line {status, body} or {error}.
Extra ``--header 'Name: value'`` lines let a test send forged identity headers."""

from __future__ import annotations

import argparse
import http.client
import json
import sys

from lab.tools.tcpprobe import connect_from

TOKEN_HEADER = "X-Lab-Probe"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lab.tools.metadata_probe")
    ap.add_argument("--host", default="169.254.169.254")
    ap.add_argument("--port", type=int, default=80)
    ap.add_argument("--sport", type=int, default=0)
    ap.add_argument("--token", default="")
    ap.add_argument("--path", default="/latest/meta-data/instance-id")
    ap.add_argument("--header", action="append", default=[])
    ap.add_argument("--timeout", type=float, default=10.0)
    args = ap.parse_args(argv)
    conn = http.client.HTTPConnection(args.host, args.port, timeout=args.timeout)
    try:
        # from the chosen port even while an earlier probe's connection from it is in TIME_WAIT
        conn.sock = connect_from(args.sport, args.host, args.port, args.timeout)
        conn.putrequest("GET", args.path, skip_accept_encoding=True)
        if args.token:
            conn.putheader(TOKEN_HEADER, args.token)     # first, so a short capture holds it
        for h in args.header:
            name, _, value = h.partition(":")
            conn.putheader(name.strip(), value.strip())
        conn.endheaders()
        resp = conn.getresponse()
        body = resp.read().decode(errors="replace")
        print(json.dumps({"status": resp.status, "body": body}))
        return 0
    except OSError as exc:
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        return 1
    finally:
        conn.close()


if __name__ == "__main__":
    sys.exit(main())
