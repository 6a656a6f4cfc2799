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
from dataclasses import dataclass
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
    """Start whatever part of the metadata service is not running, all at once; what was
    started. When one does not come up: LabError naming it, the others recorded all the same."""
    proxies = metadata.proxies(plan)
    if not proxies:
        return []
    gateway.require("haproxy")
    srv = write_files(plan, scenario)
    starts = _dead(plan, srv, proxies)
    if not starts:
        return []
    # the starts and their ledger entries under signals.held(): a signal waits until every
    # daemon that came up is recorded, so a rollback stops it by pid (none comes up after the
    # rollback's sweep)
    with signals.held():
        failed = _start_together(starts, record)
    if failed:
        raise LabError("the metadata service did not start: " + "; ".join(failed))
    return [s.what for s in starts]


@dataclass(frozen=True)
class _Start:
    """One daemon to start: what it is (errors, `up`'s list), its ledger entry, its pid file
    and the mark that proves a pid is it, the files to prepare, its starting command."""

    what: str
    daemon: str
    node: str | None
    rundir: str
    pidfile: str
    mark: str
    command: gateway.Command
    config: tuple[str, str] | None = None       # (path, text) written before it starts


def _dead(plan: Plan, srv: metadata.Server, proxies: tuple[metadata.Proxy, ...]) -> list[_Start]:
    """The server, agents and haproxy that are not running, as starts."""
    starts = []
    if not server_alive(srv):
        starts.append(_server_start(srv))
    starts += [_agent_start(a, srv, plan.node(a.node).rundir) for a in metadata.agents(plan) if not agent_alive(a)]
    starts += [_proxy_start(p, plan.node(p.node).rundir) for p in proxies if not proxy_alive(p)]
    return starts


def _start_together(starts: list[_Start], record: Record) -> list[str]:
    """Every start's starter at once (each returns once its daemon listens and wrote its pid
    file: the agent needs the server's socket only when a request comes, haproxy the agent's
    only when it forwards one); each daemon that runs recorded. What failed, and why."""
    for s in starts:
        _stop_stale(s.pidfile, s.mark)
        Path(s.pidfile).unlink(missing_ok=True)
        if s.config:
            Path(s.config[0]).parent.mkdir(parents=True, exist_ok=True)
            Path(s.config[0]).write_text(s.config[1])
    failed = []
    for s, result in zip(starts, gateway.run_together([s.command for s in starts])):
        pid = processes.read_pidfile(s.pidfile)
        if isinstance(result, LabError) or pid is None:
            why = result if isinstance(result, LabError) else f"started but wrote no pid file {s.pidfile}"
            failed.append(f"{s.what}: {why}")
            if not processes.alive(pid, s.mark):
                continue        # a daemon that runs all the same is recorded, to be stopped
        record(daemon=s.daemon, pid=pid, node=s.node, rundir=s.rundir)
    return failed


def _server_start(srv: metadata.Server) -> _Start:
    rundir = str(Path(srv.socket).parent)
    return _Start("metadata server", "metadata-server", None, rundir, srv.pidfile, rundir, gateway.Command(
        [sys.executable, "-m", "lab.services.metadata_server", "--socket", srv.socket, "--instances", srv.instances,
         "--secret-file", srv.secret, "--pidfile", srv.pidfile, "--log", srv.log], env=_env()))


def _agent_start(a: metadata.Agent, srv: metadata.Server, rundir: str) -> _Start:
    return _Start(f"metadata agent of {a.node}", "metadata-agent", a.node, rundir, a.pidfile, a.socket, gateway.Command(
        [sys.executable, "-m", "lab.services.metadata_agent", "--socket", a.socket, "--ports", srv.ports,
         "--server-socket", srv.socket, "--secret-file", srv.secret, "--pidfile", a.pidfile, "--log", a.log],
        netns=a.netns, env=_env()))


def _proxy_start(p: metadata.Proxy, rundir: str) -> _Start:
    """haproxy -f CONFIG in the proxy's namespace, as the metadata driver's ProcessManager
    starts it (it daemonizes once bound and writes its pid file)."""
    return _Start(f"metadata proxy of {p.name}", "haproxy", p.node, rundir, p.pidfile, p.config,
                  gateway.Command(["haproxy", "-f", p.config], netns=p.netns),
                  config=(p.config, metadata.haproxy_config(p)))


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
