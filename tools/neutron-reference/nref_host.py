"""Host side of the Neutron reference: a private OVS in a namespace of our own, and commands.

Everything here lives in network namespaces named ``nref.<lab>.<node>`` (never ``nlab.``) and
in a run directory under /run/neutron-reference; daemons are ended by the pid in their pid
file. Only the reference tool uses this module; it runs as root under
/tmp/nlab-integration.lock.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

RUN_ROOT = Path("/run/neutron-reference")
TIMEOUT = 30


def run(argv: list[str], *, env: dict | None = None, input_text: str | None = None) -> str:
    """Run one program (argv list, never a shell) and return its stdout; fail loudly."""
    proc = subprocess.run(argv, input=input_text, capture_output=True, text=True,
                          timeout=TIMEOUT, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout


def load_plan(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def router_instances(plan: dict, node: str | None = None) -> list[dict]:
    """The plan's router instances (on NODE, or all), each with its router's name and id."""
    out = []
    for r in plan["routers"]:
        for i in r["instances"]:
            if node is None or i["node"] == node:
                out.append(dict(i, router_id=r["router_id"], router_name=r["name"]))
    return out


class PrivateOVS:
    """ovsdb-server + ovs-vswitchd (userspace datapath) in namespace nref.<lab>.<node>."""

    def __init__(self, lab: str, node: str):
        self.netns = f"nref.{lab}.{node}"
        self.rundir = RUN_ROOT / lab / node
        self.db_sock = self.rundir / "db.sock"
        self.env = dict(os.environ, OVS_RUNDIR=str(self.rundir), OVS_LOGDIR=str(self.rundir),
                        OVS_DBDIR=str(self.rundir))

    def _in_ns(self, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.netns, *argv]

    def start(self) -> None:
        if self.rundir.exists():
            shutil.rmtree(self.rundir)
        self.rundir.mkdir(parents=True)
        run(["ip", "netns", "add", self.netns])
        db = self.rundir / "conf.db"
        run(["ovsdb-tool", "create", str(db), "/usr/share/openvswitch/vswitch.ovsschema"])
        run(self._in_ns("ovsdb-server", str(db), f"--remote=punix:{self.db_sock}",
                        f"--pidfile={self.rundir}/ovsdb-server.pid", "--detach",
                        f"--unixctl={self.rundir}/ovsdb-server.ctl",
                        f"--log-file={self.rundir}/ovsdb-server.log"), env=self.env)
        self.vsctl("--no-wait", "init")
        run(self._in_ns("ovs-vswitchd", f"unix:{self.db_sock}", "--disable-system",
                        f"--pidfile={self.rundir}/ovs-vswitchd.pid", "--detach",
                        f"--unixctl={self.rundir}/ovs-vswitchd.ctl",
                        f"--log-file={self.rundir}/ovs-vswitchd.log"), env=self.env)

    def vsctl(self, *args: str) -> str:
        return run(["ovs-vsctl", f"--db=unix:{self.db_sock}", "--timeout=20", *args], env=self.env)

    def ofctl(self, *args: str) -> str:
        return run(self._in_ns("ovs-ofctl", *args), env=self.env)

    def mgmt_socket(self, bridge: str) -> str:
        return str(self.rundir / f"{bridge}.mgmt")

    def ofport(self, port: str) -> int:
        for _ in range(100):
            value = self.vsctl("get", "Interface", port, "ofport").strip()
            if value not in ("[]", "-1"):
                return int(value)
            time.sleep(0.05)
        raise RuntimeError(f"port {port} got no ofport in {self.netns}")

    def stop(self) -> None:
        for name in ("ovs-vswitchd", "ovsdb-server"):
            pidfile = self.rundir / f"{name}.pid"
            if pidfile.exists():
                pid = int(pidfile.read_text().strip())
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
                for _ in range(100):
                    try:
                        os.kill(pid, 0)
                    except ProcessLookupError:
                        break
                    time.sleep(0.05)
        subprocess.run(["ip", "netns", "del", self.netns], capture_output=True, timeout=TIMEOUT)
        shutil.rmtree(self.rundir, ignore_errors=True)
        try:
            self.rundir.parent.rmdir()       # the lab's directory, once its last node is gone
        except OSError:
            pass
