"""The metadata service of a running lab: files, processes, health and repair.

What runs where (lab/core/metadata.py computes it): the lab's metadata server in the root
namespace on a unix socket in the lab's state directory (it has no network listener), one
metadata agent per node that runs a proxy (in the node's namespace, on the node's
``metadata_proxy`` socket), one haproxy per router instance in its qrouter-. All are daemons
with a pid file; each is recorded in the ledger when started, found again by pid (and, for
haproxy, by the namespace it runs in), restarted by ``lab up`` when dead, and ended by
``lab down`` by pid like dnsmasq.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from pathlib import Path
from typing import Callable

import lab
from lab.core import metadata
from lab.core.plan import Plan
from lab.core.scenario import Scenario
from lab.errors import LabError
from lab.paths import STATE_ROOT
from lab.runtime import gateway, netns, processes, signals
from lab.runtime.faults import Fault

Record = Callable[..., None]        # record(daemon=..., pid=..., node=..., rundir=...)


def _env() -> dict[str, str]:
    """The services are modules of this package: let the child import it from here."""
    root = str(Path(lab.__file__).resolve().parent.parent)
    return {"PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}


def server_of(plan: Plan) -> metadata.Server:
    return metadata.server(plan, str(STATE_ROOT))


def write_files(plan: Plan, scenario: Scenario) -> metadata.Server:
    """The shared secret (made once per lab, kept across repairs), and the documents."""
    srv = server_of(plan)
    directory = Path(srv.socket).parent
    directory.mkdir(mode=0o700, exist_ok=True)
    secret = Path(srv.secret)
    if not secret.exists():
        fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
    Path(srv.ports).write_text(json.dumps(metadata.ports_document(plan, scenario), indent=1))
    Path(srv.instances).write_text(json.dumps(metadata.instances_document(plan, scenario), indent=1))
    return srv


def ensure(plan: Plan, scenario: Scenario, record: Record) -> list[str]:
    """Start whatever part of the metadata service is not running; what was started."""
    proxies = metadata.proxies(plan)
    if not proxies:
        return []
    gateway.require("haproxy")
    srv = write_files(plan, scenario)
    started = []
    # each start and its ledger entry under signals.held(): a signal waits until the daemon is
    # recorded, so a rollback stops it by pid (it cannot come up after the rollback's sweep)
    if not server_alive(srv):
        with signals.held():
            record(daemon="metadata-server", pid=_start_server(srv), node=None, rundir=str(Path(srv.socket).parent))
        started.append("metadata server")
    for a in metadata.agents(plan):
        if not agent_alive(a):
            with signals.held():
                record(daemon="metadata-agent", pid=_start_agent(a, srv), node=a.node, rundir=plan.node(a.node).rundir)
            started.append(f"metadata agent of {a.node}")
    for p in proxies:
        if not proxy_alive(p):
            with signals.held():
                record(daemon="haproxy", pid=_start_proxy(p), node=p.node, rundir=plan.node(p.node).rundir)
            started.append(f"metadata proxy of {p.name}")
    return started


def _start_server(srv: metadata.Server) -> int:
    _stop_stale(srv.pidfile, str(Path(srv.socket).parent))
    gateway.run([sys.executable, "-m", "lab.services.metadata_server", "--socket", srv.socket,
                 "--instances", srv.instances, "--secret-file", srv.secret, "--pidfile", srv.pidfile,
                 "--log", srv.log], env=_env())
    return _pid(srv.pidfile, "metadata server")


def _start_agent(a: metadata.Agent, srv: metadata.Server) -> int:
    _stop_stale(a.pidfile, a.socket)
    gateway.run([sys.executable, "-m", "lab.services.metadata_agent", "--socket", a.socket,
                 "--ports", srv.ports, "--server-socket", srv.socket, "--secret-file", srv.secret,
                 "--pidfile", a.pidfile, "--log", a.log], netns=a.netns, env=_env())
    return _pid(a.pidfile, f"metadata agent of {a.node}")


def _start_proxy(p: metadata.Proxy) -> int:
    """haproxy -f CONFIG in the proxy's namespace, as the metadata driver's ProcessManager
    starts it (it daemonizes once bound and writes its pid file)."""
    _stop_stale(p.pidfile, p.config)
    Path(p.config).parent.mkdir(parents=True, exist_ok=True)
    Path(p.config).write_text(metadata.haproxy_config(p))
    Path(p.pidfile).unlink(missing_ok=True)
    gateway.run(["haproxy", "-f", p.config], netns=p.netns)
    return _pid(p.pidfile, f"haproxy for {p.name}")


def _pid(pidfile: str, what: str) -> int:
    pid = processes.read_pidfile(pidfile)
    if pid is None:
        raise LabError(f"{what} started but wrote no pid file {pidfile}")
    return pid


def _stop_stale(pidfile: str, mark: str) -> None:
    """A predecessor still running where it should not (its namespace was deleted and made
    again): end it by pid before starting the new one."""
    pid = processes.read_pidfile(pidfile)
    if processes.alive(pid, mark):
        processes.stop(pid)


# --------------------------------------------------------------------------- health

def server_alive(srv: metadata.Server) -> bool:
    return processes.alive(processes.read_pidfile(srv.pidfile), str(Path(srv.socket).parent))


def agent_alive(a: metadata.Agent) -> bool:
    pid = processes.read_pidfile(a.pidfile)
    return processes.alive(pid, a.socket) and _in_netns(pid, a.netns)


def proxy_alive(p: metadata.Proxy) -> bool:
    pid = processes.read_pidfile(p.pidfile)
    return processes.alive(pid, p.config) and _in_netns(pid, p.netns)


def _in_netns(pid: int | None, name: str) -> bool:
    try:
        st = os.stat(f"/proc/{pid}/ns/net")
    except (OSError, TypeError):
        return False
    return (st.st_dev, st.st_ino) == netns.inode(name)


def faults(plan: Plan) -> list[Fault]:
    """The metadata service's processes that are not running (where they should run)."""
    proxies = metadata.proxies(plan)
    if not proxies:
        return []
    fix = f"`lab up {plan.lab}` starts it again"
    def fault(what, ns):
        return Fault("metadata", "", ns, what, "running", "not running", fix)
    out = [] if server_alive(server_of(plan)) else [fault(f"the metadata server of lab {plan.lab}", "")]
    out += [fault(f"the metadata agent of {a.node}", a.netns) for a in metadata.agents(plan) if not agent_alive(a)]
    out += [fault(f"the metadata proxy (haproxy) of {p.name}", p.netns) for p in proxies if not proxy_alive(p)]
    return out


def status(plan: Plan) -> list[dict]:
    """Each metadata process: what, where, pid, running."""
    srv = server_of(plan)
    if not metadata.proxies(plan):
        return []
    rows = [{"name": "metadata-server", "node": None, "socket": srv.socket,
             "pid": processes.read_pidfile(srv.pidfile), "running": server_alive(srv)}]
    rows += [{"name": f"metadata-agent {a.node}", "node": a.node, "socket": a.socket,
              "pid": processes.read_pidfile(a.pidfile), "running": agent_alive(a)} for a in metadata.agents(plan)]
    rows += [{"name": f"haproxy {p.name}", "node": p.node, "netns": p.netns, "listen": f"{p.bind}:{p.port}",
              "pid": processes.read_pidfile(p.pidfile), "running": proxy_alive(p)} for p in metadata.proxies(plan)]
    return rows
