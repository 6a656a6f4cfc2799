"""One Open vSwitch per emulated node: its own ovsdb-server and ovs-vswitchd, started inside
the node's namespace with their own run directory, so bridge names repeat per node as in
Neutron and nothing touches a system Open vSwitch.

OVSDB changes go in one ovs-vsctl transaction per node per phase; flows go in one
``ovs-ofctl --bundle replace-flows`` per bridge (atomic, and a re-run replaces, so ``up``
can reconcile).
"""

from __future__ import annotations

import os
from typing import Callable
from pathlib import Path

from lab.budget import budget
from lab.runtime import gateway, processes
from lab.errors import LabError

SCHEMA_PATHS = ("/usr/share/openvswitch/vswitch.ovsschema",
                "/usr/local/share/openvswitch/vswitch.ovsschema")
DAEMONS = ("ovsdb-server", "ovs-vswitchd")


class OvsError(LabError):
    pass


def detect_datapath() -> str:
    """'system' when the kernel has the openvswitch module loaded, else 'netdev' (userspace)."""
    return "system" if Path("/sys/module/openvswitch").exists() else "netdev"


def check_datapath(datapath: str) -> str:
    """netdev, or system when the kernel can do it; anything else is a clear error."""
    from lab.core.plan import DATAPATHS
    if datapath not in DATAPATHS:
        raise OvsError(f"datapath {datapath!r} is not one of: {', '.join(DATAPATHS)} "
                       "(from --datapath or LAB_DATAPATH)")
    if datapath == "system" and not Path("/sys/module/openvswitch").exists():
        raise OvsError("the system (kernel) datapath needs the openvswitch kernel module: "
                       "`modprobe openvswitch`, or use --datapath netdev")
    return datapath


def schema_path() -> str:
    for p in SCHEMA_PATHS:
        if os.path.exists(p):
            return p
    raise OvsError("cannot find vswitch.ovsschema; is openvswitch-switch installed?")


def env(rundir: str) -> dict[str, str]:
    """What makes ovs-vsctl/ovs-ofctl/ovs-appctl talk to this node's OVS without flags."""
    return {"OVS_RUNDIR": rundir, "OVS_DBDIR": rundir, "OVS_LOGDIR": rundir}


def pidfile(rundir: str, daemon: str) -> Path:
    return Path(rundir) / f"{daemon}.pid"


def read_pid(rundir: str, daemon: str) -> int | None:
    return processes.read_pidfile(pidfile(rundir, daemon))


def start(netns: str, rundir: str, datapath: str, before_vswitchd: Callable[[], None] | None = None) -> list[int]:
    """Start ovsdb-server and ovs-vswitchd for one node; return their pids. BEFORE_VSWITCHD, if
    given, runs between the two: `up` waits there until the node's links exist, because a
    running ovs-vswitchd re-reads every link and address of its namespace after each change
    (on the userspace datapath O(links) per link made: seconds for a node with 100 ports)."""
    run = Path(rundir)
    run.mkdir(parents=True, exist_ok=True)
    db = run / "conf.db"
    e = env(rundir)
    if not db.exists():
        gateway.run(["ovsdb-tool", "create", str(db), schema_path()], env=e)
    sock = f"unix:{run / 'db.sock'}"
    gateway.run(["ovsdb-server", str(db), f"--remote=p{sock}", f"--pidfile={pidfile(rundir, 'ovsdb-server')}",
                 f"--log-file={run / 'ovsdb-server.log'}", "--detach", "--no-chdir"],
                netns=netns, env=e)
    if before_vswitchd is not None:
        before_vswitchd()
    vswitchd = ["ovs-vswitchd", sock, f"--pidfile={pidfile(rundir, 'ovs-vswitchd')}",
                f"--log-file={run / 'ovs-vswitchd.log'}", "--detach", "--no-chdir"]
    if datapath == "netdev":
        vswitchd.append("--disable-system")
    gateway.run(vswitchd, netns=netns, env=e)
    pids = [read_pid(rundir, d) for d in DAEMONS]
    if None in pids:
        raise OvsError(f"OVS daemons in {rundir} did not write their pid files")
    return [p for p in pids if p is not None]


def vsctl(rundir: str, args: list[str] | tuple[str, ...], timeout: float = 20) -> str:
    sock = f"unix:{Path(rundir) / 'db.sock'}"
    out = gateway.run(["ovs-vsctl", f"--db={sock}", f"--timeout={int(budget(timeout))}", *args],
                      env=env(rundir), timeout=timeout + 5)
    return out.stdout


def replace_flows(rundir: str, bridge: str, flow_file: str) -> None:
    gateway.run(["ovs-ofctl", "-O", "OpenFlow14", "--bundle", "replace-flows", bridge, flow_file],
                env=env(rundir))

