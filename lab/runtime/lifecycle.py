"""Bring a plan to life and take it away again.

``up`` applies a Plan in phases (namespaces, wires, then every node in parallel: links, OVS,
flows, iptables) and records each object it makes in a ledger under the lab's state
directory, before it moves on. If anything fails half-way, the ledger is replayed backwards
and nothing is left. ``down`` replays the ledger of a lab that is up; ``cleanup`` removes what
any lab left behind, even without a ledger, by our marks only (namespace prefix, state dir).
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from lab.runtime import agents, gateway, locks, netns, ovs, plugs, processes, signals, statedir
from lab.runtime import fip as fips_rt
from lab.runtime import health as more_health
from lab.runtime import inventory, ipsets
from lab.runtime.faults import Fault, unreadable
from lab.runtime import metadata as metadata_service
from lab.core import naming
from lab.core import plugs as core_plugs
from lab.errors import ApplyError, LabError, LabStateError, NotRoot, StateDirError, UsageError
from lab.runtime.kernel import Links
from lab.paths import LAB_NAME, STATE_MARK, STATE_ROOT, check_lab_name, lab_dir, remove_lab_dir
from lab.core.plan import NodePlan, Plan, build_plan, from_data
from lab.core.render import NodeRender, render_plan
from lab.core.scenario import Scenario, load_scenario

Progress = Callable[[str], None]
REQUIRED_PROGRAMS = ("ip", "ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovs-ofctl",
                     "iptables-restore")


def _quiet(_: str) -> None:
    pass


def require_root() -> None:
    if os.geteuid() != 0:
        raise NotRoot("this command builds kernel objects and needs root: run it with sudo")


# --------------------------------------------------------------------------- state on disk

class Ledger:
    """Append-only record of what `up` made, one JSON object a line, written before moving on."""

    def __init__(self, directory: Path):
        self.path = directory / "ledger.jsonl"
        self._lock = threading.Lock()

    def record(self, kind: str, **data) -> None:
        line = json.dumps({"kind": kind, **data}, sort_keys=True)
        with self._lock, open(self.path, "a") as f:
            f.write(line + "\n")

    def entries(self) -> list[dict]:
        try:
            text = statedir.read_text(self.path)
        except FileNotFoundError:
            return []
        except (OSError, StateDirError):
            return []   # unreadable: the sweep by marks in _teardown still covers the lab
        out = []
        for line in text.splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a line cut short by a crash: the sweep in down() still covers it
            if isinstance(entry, dict):
                out.append(entry)
        return out


@dataclass
class LabState:
    lab: str
    directory: Path
    plan: Plan
    ledger: Ledger

    def scenario(self) -> Scenario:
        """The scenario as it was when the lab came up (checks included): later edits of the
        file or of what it includes do not change a running lab."""
        return from_data(Scenario, json.loads((self.directory / "scenario.json").read_text()))


def load_state(lab: str) -> LabState:
    d = lab_dir(lab)
    data = statedir.read_plan(lab)
    if data is None:
        up_labs = ", ".join(list_labs()) or "none"
        raise LabStateError(f"lab {lab} is not up (labs up: {up_labs})")
    try:
        plan = Plan.from_json(data)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise StateDirError(statedir.unreadable(lab, d / statedir.PLAN_FILE,
                                                f"not a plan of this version ({type(exc).__name__}: {exc})")) from None
    return LabState(lab, d, plan, Ledger(d))


def list_labs() -> list[str]:
    """Labs that are up: a state directory (never a symlink) with plan.json."""
    try:
        return sorted(p.name for p in STATE_ROOT.iterdir()
                      if LAB_NAME.match(p.name) and not p.is_symlink() and (p / "plan.json").is_file())
    except OSError:   # no state root yet, or one we cannot read: no lab is up
        return []


# --------------------------------------------------------------------------- up

@dataclass
class UpResult:
    lab: str
    elapsed: float
    already_up: bool = False
    repaired: list[str] = field(default_factory=list)
    missing_leases: list[str] = field(default_factory=list)   # "vm1: why" for each
    phases: dict[str, float] = field(default_factory=dict)


def up(name_or_path: str | Scenario, datapath: str | None = None, progress: Progress = _quiet,
       name: str | None = None, lock_timeout: float | None = None) -> UpResult:
    """Bring lab NAME (default: the scenario's name) up, or find it up and repair it, holding
    the lab's lock throughout (a second `up` of it waits and then finds it up)."""
    if name is not None:
        check_lab_name(name)
    if isinstance(name_or_path, Scenario):      # validated when parsed; named then too
        if name is not None and name != name_or_path.name:
            raise UsageError("give the lab name when loading the scenario (load_scenario(path, lab_name=...))")
        scenario, what = name_or_path, f"lab up {name_or_path.source}"
    else:
        scenario = load_scenario(name_or_path, lab_name=name)   # every scenario error first
        what = f"lab up {name_or_path}"
    require_root()
    with signals.as_interrupt(), locks.lab_lock(scenario.name, what, lock_timeout, progress):
        return _up(scenario, datapath, progress)


def _up(scenario: Scenario, datapath: str | None, progress: Progress) -> UpResult:
    plan, renders = _plan_and_render(scenario, datapath)
    if statedir.read_plan(plan.lab) is not None:
        state = load_state(plan.lab)
        if state.plan == plan:
            return _reconcile(state, renders, progress)
        raise LabStateError(f"lab {plan.lab} is already up with a different plan; "
                            f"run `lab down {plan.lab}` first")
    _sweep_interrupted(plan.lab, progress)

    directory = statedir.make(plan.lab)
    ledger = Ledger(directory)
    ledger.record("statedir", path=str(directory))
    started = time.monotonic()
    steps = _Steps()
    try:
        missing = _bring_up(plan, scenario, renders, ledger, directory, steps, progress)
    except BaseException as exc:
        _roll_back(plan.lab, ledger, f"{signals.describe(exc) or 'failed'} while {steps.now}", progress)
        if isinstance(exc, KeyboardInterrupt):
            raise
        if isinstance(exc, LabError):
            raise ApplyError(f"lab up {plan.lab} failed while {steps.now}: {exc}\n"
                             "everything it had made has been removed") from exc
        raise
    return UpResult(plan.lab, time.monotonic() - started, phases=steps.phases, missing_leases=missing)


def _plan_and_render(scenario: Scenario, datapath: str | None) -> tuple[Plan, dict[str, NodeRender]]:
    """The programs checked, the datapath chosen (LAB_DATAPATH, or the one a lab that is up
    has, or detected), the plan built, the kernel checked, every node's files rendered."""
    gateway.require(*REQUIRED_PROGRAMS)
    chosen = datapath or os.environ.get("LAB_DATAPATH")
    if chosen is None and statedir.read_plan(scenario.name) is not None:
        chosen = load_state(scenario.name).plan.datapath     # `up` again: the datapath it has
    chosen = ovs.check_datapath(chosen or ovs.detect_datapath())
    plan = build_plan(scenario, datapath=chosen, state_root=str(STATE_ROOT))
    check_kernel(plan)
    if ipsets.needed(plan):
        gateway.require("ipset")
    if plan.dhcp_servers:
        gateway.require("dnsmasq", "busybox")
    return plan, render_plan(plan)


@dataclass
class _Steps:
    """Where a bring-up is (`now`, named when it fails) and how long each timed phase took."""

    now: str = "preparing"
    phases: dict[str, float] = field(default_factory=dict)
    began: float = 0.0

    def begin(self, step: str) -> None:
        self.now, self.began = step, time.monotonic()

    def took(self, phase: str) -> None:
        self.phases[phase] = time.monotonic() - self.began


def _bring_up(plan: Plan, scenario: Scenario, renders: dict[str, NodeRender], ledger: Ledger, directory: Path,
              steps: _Steps, progress: Progress) -> list[str]:
    """Everything `up` makes, in order (every object in the ledger as soon as it exists);
    plan.json last. The instances that got no lease."""
    (directory / "scenario.json").write_text(json.dumps(dataclasses.asdict(scenario), indent=1))
    steps.begin("creating namespaces")
    progress(f"{steps.now} ({len(plan.namespaces())})")
    _create_namespaces(plan, ledger)
    steps.took("namespaces")

    steps.begin("wiring physical networks")
    progress(f"{steps.now} ({', '.join(w.name for w in plan.wires)})")
    for wire in plan.wires:
        _wire_up(plan, wire)
    steps.took("wires")

    steps.begin("bringing up nodes")
    progress(f"{steps.now} ({', '.join(n.name for n in plan.nodes)}) in parallel")
    _nodes_up(plan, renders, ledger, progress)
    steps.took("nodes")

    steps.begin("configuring external hosts")
    for host in plan.external_hosts:
        _external_host_up(host)

    steps.begin("starting the metadata service")
    if metadata_service.ensure(plan, scenario, lambda **e: ledger.record("process", **e)):
        steps.took("metadata")

    missing = _wait_for_leases(plan, directory, steps, progress)
    # written last: a lab with plan.json is a lab that came up completely
    (directory / statedir.PLAN_FILE).write_text(statedir.plan_document(plan.to_json()))
    signals.settle()    # the lab is complete: a signal now must not undo it
    return missing


def _nodes_up(plan: Plan, renders: dict[str, NodeRender], ledger: Ledger, progress: Progress) -> None:
    """Every node at once, one thread each; every node's failure collected, the first raised."""
    with ThreadPoolExecutor(max_workers=max(1, len(plan.nodes))) as pool:
        futures = [pool.submit(_node_up, plan, node, renders[node.name], ledger, progress)
                   for node in plan.nodes]
        errors = []
        for f in futures:
            try:
                f.result()
            except BaseException as exc:  # collect every node's failure, keep the first
                errors.append(exc)
        if errors:
            raise errors[0]


def _wait_for_leases(plan: Plan, directory: Path, steps: _Steps, progress: Progress) -> list[str]:
    """Every DHCP instance's client at once; the instances that got no lease."""
    steps.begin("waiting for DHCP leases")
    dhcp_ports = [p for p in plan.ports if p.address == "dhcp"]
    if not dhcp_ports:
        return []
    replies = ", broadcast replies" if agents.broadcast_replies(len(dhcp_ports)) else ""
    progress(f"{steps.now} ({len(dhcp_ports)} instances{replies})")
    missing = agents.dhcp_leases(plan, dhcp_ports, directory)
    steps.took("dhcp")
    return missing


def _roll_back(lab: str, ledger: Ledger, why: str, progress: Progress) -> None:
    """A failed or interrupted `up`: remove what the ledger says it made (a second signal
    cannot cut that short), or say the sweep is owed."""
    progress(f"{why}: removing what was made")
    try:
        with signals.deferred(raise_after=False):    # a second signal must not cut the rollback short
            _teardown(lab, ledger.entries(), progress=_quiet)
    except BaseException as cleanup_exc:  # keep the first error; say the sweep is owed
        progress(f"removing failed too ({cleanup_exc}); run `lab cleanup {lab}`")


def _sweep_interrupted(lab: str, progress: Progress) -> None:
    """What a command on LAB that died (kill -9, power cut of the terminal) left: we hold the
    lab's lock, so no live command owns it any more; remove it by its marks before `up`."""
    leftovers = _lab_namespaces(lab)
    has_dir = statedir.inspect(lab)     # a symlink or a file there: refused, with what to do
    if not leftovers and not has_dir and not processes.daemons_under(f"{lab_dir(lab)}/"):
        return
    progress(f"lab {lab} was left half-made by a command that was killed: removing that first")
    with signals.deferred():
        _teardown(lab, Ledger(lab_dir(lab)).entries(), progress)


def _reconcile(state: LabState, renders: dict[str, NodeRender], progress: Progress) -> UpResult:
    """`up` on a lab that is up: nothing to do if healthy. Wire, instance, router and DHCP
    namespaces that vanished are rebuilt, a node's dead or restarted Open vSwitch started
    again, dnsmasq restarted, OVS rows, flows and iptables rules re-applied, instances' eth0
    brought back (lab/runtime/health.py). A missing node or external host namespace needs
    down + up."""
    started = time.monotonic()
    problems = health(state)
    if not problems:
        return UpResult(state.lab, 0.0, already_up=True)
    plan = state.plan
    remade = _rebuildable(plan)
    fatal = [f"namespace {ns} is missing (a node or external host cannot be rebuilt in place: "
             f"what ran in it is gone with it)" for ns in plan.namespaces()
             if ns not in remade and not netns.exists(ns)]
    if fatal:
        raise LabStateError(f"lab {state.lab} is up but damaged beyond repair in place "
                            f"({'; '.join(fatal)}); run `lab down {state.lab}` and `lab up` again")
    for p in problems:
        progress(f"repairing: {p}")
    record = lambda ns: state.ledger.record("netns", name=ns)   # noqa: E731
    new_nics = more_health.recreate_wires(plan, record, lambda ns: _prepare_namespace(ns, False), _wire_up)
    for host in plan.external_hosts:
        if any(m.name == host.name for w in plan.wires for m in w.members) and _needs_address(host):
            _external_host_up(host)
    for node in plan.nodes:
        _repair_node(state, node, renders[node.name], new_nics.get(node.name, []), record)
    metadata_service.ensure(plan, state.scenario(), lambda **e: state.ledger.record("process", **e))
    relearn = inventory.repair(plan)     # links up, addresses, routes, neighbours, sysctls
    missing = agents.dhcp_leases(plan, relearn, state.directory) if relearn else []
    left = health(state)
    if left:
        raise LabStateError(f"lab {state.lab} could not be repaired: {'; '.join(left)}")
    return UpResult(state.lab, time.monotonic() - started, repaired=problems, missing_leases=missing)


def _repair_node(state: LabState, node: NodePlan, render: NodeRender, new_nics: list[str], record) -> None:
    """One node of a lab that is up: its Open vSwitch if dead, vanished instance, agent and
    L3 namespaces remade, dnsmasq restarted; the new veths re-opened by OVS; rows, flows and
    iptables re-applied."""
    plan = state.plan
    if more_health.ovs_state(node) == "dead":
        more_health.restart_ovs(node, plan.datapath, lambda daemon, pid: state.ledger.record(
            "process", pid=pid, daemon=daemon, node=node.name, rundir=node.rundir))
    rebuilt = more_health.recreate_instances(plan, node, record, lambda ns: _prepare_namespace(ns, False))
    rebuilt += new_nics + more_health.recreate_agent_ports(plan, node)
    rebuilt += _repair_l3(plan, node, render, state.ledger)
    rebuilt += _repair_dhcp(plan, node, render, state.ledger)
    if rebuilt:
        # the veths are new: make OVS open them again
        args: list[str] = []
        for dev in rebuilt:
            args += (["--"] if args else []) + ["--if-exists", "del-port", dev]   # on any bridge
        ovs.vsctl(node.rundir, args)
    _node_configure(node, render)
    if node.tunnel:
        _tunnel_endpoint(node)


def _repair_dhcp(plan: Plan, node: NodePlan, render: NodeRender, ledger: Ledger) -> list[str]:
    """Each DHCP server of NODE whose dnsmasq is dead or whose namespace vanished: the
    namespace and its port remade, dnsmasq started again. The OVS devices made anew."""
    rebuilt = []
    for d in node.dhcp_servers:
        pid = agents.dnsmasq_pid(d)
        if netns.exists(d.netns) and processes.alive(pid, d.dir):
            continue
        if processes.alive(pid, d.dir):
            processes.stop(pid)   # its namespace is gone from /run/netns: free it
        if not netns.exists(d.netns):
            _agent_namespace(plan, node, d.netns, (d.port,), ledger)
            agents.dhcp_links(d)
            rebuilt.append(d.port.ovs_dev)
        with signals.held():    # recorded before a signal stops `up` (signals.held)
            pid = agents.dnsmasq_start(d, render.dhcp[d.name])
            ledger.record("process", pid=pid, daemon="dnsmasq", node=node.name, rundir=d.dir)
    return rebuilt


def _repair_l3(plan: Plan, node: NodePlan, render: NodeRender, ledger: Ledger) -> list[str]:
    """The L3 agent's namespaces of NODE (qrouter-, snat-, fip-): the missing ones remade with
    their ports' veths, then (every one, idempotent) DVR's rfp-/fpr- links, addresses, routes,
    rules, neighbours and iptables. Returns the br-int devices that are new."""
    rebuilt, remade = [], set()
    for owner in [*plan.routers_on(node.name), *plan.fips_on(node.name)]:
        if not netns.exists(owner.netns):
            _agent_namespace(plan, node, owner.netns, owner.ports, ledger)
            rebuilt += [p.ovs_dev for p in owner.ports]
            remade.add(owner.netns)
    for f in plan.fips_on(node.name):
        fips_rt.link_up(plan, f)
    for r in plan.routers_on(node.name):
        if r.netns in remade:
            agents.router_links(r)
        agents.router_neighbours(r)
        agents.router_policy_routes(r)
        agents.router_rules(plan, r, render.routers[r.name])
    for f in plan.fips_on(node.name):
        fips_rt.namespace_up(f)
        fips_rt.rules(plan, f, render.fips[f.name])
    return rebuilt


def _rebuildable(plan: Plan) -> set[str]:
    """Namespaces `up` rebuilds in place: routers', DHCP servers', instances', wires', fip-."""
    return ({r.netns for r in plan.router_instances} | {d.netns for d in plan.dhcp_servers}
            | {p.netns for p in plan.ports} | {w.netns for w in plan.wires} | {f.netns for f in plan.fip_namespaces})


def _needs_address(host) -> bool:
    with netns.entered(host.netns), Links(host.netns) as links:
        return links.has("eth0") and not links.has_address("eth0", host.ip)


def _agent_namespace(plan: Plan, node: NodePlan, name: str, ports, ledger: Ledger) -> None:
    """(Re)make a router or DHCP namespace and the veths of its ports."""
    netns.create(name)
    ledger.record("netns", name=name)
    _prepare_namespace(name, bridged_iptables=False)
    with netns.entered(node.netns), Links(node.netns) as links:
        for port in ports:
            if links.has(port.ovs_dev):
                links.delete(port.ovs_dev)
            links.veth(port.ovs_dev, port.ns_dev, peer_netns=name, peer_mac=port.mac, mtu=port.mtu, up=True)
            links.tx_checksum_off(port.ovs_dev)


def _bridged_iptables(plan: Plan) -> set[str]:
    """Namespaces of the nodes whose firewall driver filters bridged traffic with iptables."""
    return {n.netns for n in plan.nodes if core_plugs.driver(n.firewall_driver).iptables}


def check_kernel(plan: Plan) -> None:
    """What the host's kernel must offer before anything is made: br_netfilter (iptables on
    bridged traffic), when a node's firewall driver needs it (iptables_hybrid).
    provision.sh loads it; we never load modules."""
    if _bridged_iptables(plan) and not Path("/proc/sys/net/bridge").is_dir():
        raise LabError("the kernel's br_netfilter is not loaded, and the iptables_hybrid firewall "
                       "needs it: run `modprobe br_netfilter` (vagrant/provision.sh does)")


def _create_namespaces(plan: Plan, ledger: Ledger) -> None:
    """Every namespace from one thread (netns.create_many), each in the ledger as it exists."""
    bridged = _bridged_iptables(plan)
    netns.create_many(plan.namespaces(), made=lambda name: ledger.record("netns", name=name),
                      prepare=lambda name: _prepare_here(name, bridged_iptables=name in bridged))


def _prepare_namespace(name: str, bridged_iptables: bool) -> None:
    with netns.entered(name):
        _prepare_here(name, bridged_iptables)


def _prepare_here(name: str, bridged_iptables: bool) -> None:
    """Sysctls and lo of namespace NAME, which the calling thread is in."""
    # IPv4 lab: no IPv6 autoconfiguration chatter in the captures (if the kernel has IPv6)
    if Path("/proc/sys/net/ipv6").is_dir():
        netns.write_sysctl("net.ipv6.conf.default.disable_ipv6", "1")
        netns.write_sysctl("net.ipv6.conf.all.disable_ipv6", "1")
    if bridged_iptables:
        # iptables_hybrid needs bridged traffic to traverse iptables (per namespace)
        netns.write_sysctl("net.bridge.bridge-nf-call-iptables", "1")
        netns.write_sysctl("net.bridge.bridge-nf-call-ip6tables", "1")
    with Links(name) as links:
        links.up("lo")


def _wire_up(plan: Plan, wire) -> None:
    macs = {h.name: h.mac for h in plan.external_hosts}
    with netns.entered(wire.netns), Links(wire.netns) as links, links.batched():
        links.bridge(wire.bridge)
        for m in wire.members:
            links.veth(m.wire_ifname, m.peer_ifname, peer_netns=m.peer_netns, peer_mac=macs.get(m.name),
                       master=wire.bridge, up=True)
            links.tx_checksum_off(m.wire_ifname)
        links.up(wire.bridge)


def _external_host_up(host) -> None:
    with netns.entered(host.netns), Links(host.netns) as links:
        links.tx_checksum_off("eth0")
        links.add_address("eth0", host.ip, host.prefixlen)
        links.up("eth0")


def _node_up(plan: Plan, node: NodePlan, render: NodeRender, ledger: Ledger, progress: Progress) -> None:
    t0 = time.monotonic()
    Path(node.rundir).mkdir(parents=True, exist_ok=True)
    # the node's ovsdb-server starts while the kernel plumbing is made (it waits on I/O);
    # ovs-vswitchd once the node namespace's links exist (it re-reads them after each change)
    links_made = threading.Event()
    # leaving the `with` waits for both threads: what they started is in the ledger before a
    # rollback reads it, whatever failed
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix=f"node-{node.name}") as background:
        daemons = background.submit(_node_ovs, plan, node, ledger, links_made.wait, t0)
        try:
            # 0. the firewall before the ports exist: iptables-restore resolves every port number
            # through getaddrinfo, which dumps each address of the namespace (seconds at 500 ports)
            timings = _node_firewall(node, render)
            # 1. kernel plumbing: NICs, plugs and the agents' ports in the node namespace, then
            # the namespaces at their other ends
            _node_namespace_links(plan, node)
            links_made.set()
            timings["node links"] = time.monotonic() - t0
            _owner_links(plan, node)
            timings["links"] = time.monotonic() - t0
        finally:
            links_made.set()
        timings["ovs daemons"] = daemons.result()
        # 2. one OVSDB transaction, one flow bundle per bridge; meanwhile 3. the agents'
        # namespaces (l3 agent rules, dnsmasq), which need their links, not OVS
        agents_done = background.submit(_node_agents, plan, node, render, ledger)
        timings.update(_node_configure(node, render, firewall=False))
        if node.tunnel:
            _tunnel_endpoint(node)
        timings.update(agents_done.result())
    progress(f"  {node.name}: {len(node.ports)} instance port(s), {len(render.flows)} bridges up in "
             f"{time.monotonic() - t0:.2f} s (" + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in timings.items()) + ")")


def _node_ovs(plan: Plan, node: NodePlan, ledger: Ledger, before_vswitchd: Callable[[], object],
              t0: float) -> float:
    """NODE's ovsdb-server, then (once BEFORE_VSWITCHD returns) ovs-vswitchd, each recorded in
    the ledger; seconds since T0 when both run."""
    for daemon, pid in zip(ovs.DAEMONS, ovs.start(node.netns, node.rundir, plan.datapath,
                                                  before_vswitchd=before_vswitchd)):
        ledger.record("process", pid=pid, daemon=daemon, node=node.name, rundir=node.rundir)
    return time.monotonic() - t0


def _node_namespace_links(plan: Plan, node: NodePlan) -> None:
    """In the node namespace, one batch: NICs up, each instance plugged by the node's firewall
    driver, and a veth for each router, DHCP and fip- port (tap... on br-int, qr-/qg-/ns-/fg-
    in their namespace: ovs_use_veth = True)."""
    plug = plugs.driver(node.firewall_driver)
    owned = [(r.netns, r.ports) for r in plan.routers_on(node.name)]
    owned += [(d.netns, (d.port,)) for d in node.dhcp_servers]
    owned += [(f.netns, f.ports) for f in plan.fips_on(node.name)]     # DVR: fg-
    with netns.entered(node.netns), Links(node.netns) as links, links.batched():
        if node.nics:
            links.tx_checksum_off(*node.nics)
            links.up(*node.nics)
        for p in node.ports:
            plug.make(links, p)
        for owner_netns, ports in owned:
            for port in ports:
                links.veth(port.ovs_dev, port.ns_dev, peer_netns=owner_netns, peer_mac=port.mac,
                           mtu=port.mtu, up=True)
                links.tx_checksum_off(port.ovs_dev)


def _owner_links(plan: Plan, node: NodePlan) -> None:
    """The other ends: each instance's eth0 (and its static address and route), the fip-
    namespaces, routers and DHCP servers of NODE."""
    for p in node.ports:
        with netns.entered(p.netns), Links(p.netns) as links, links.batched():
            links.tx_checksum_off("eth0")
            if p.address == "static":
                links.add_address("eth0", p.ip, p.prefixlen)
            links.up("eth0")
            if p.address == "static":
                links.default_route(p.gateway, "eth0")
    for f in plan.fips_on(node.name):
        fips_rt.link_up(plan, f)    # rfp-/fpr- first: qrouter-'s table 16 routes through rfp-
    for r in plan.routers_on(node.name):
        agents.router_links(r)
    for f in plan.fips_on(node.name):
        fips_rt.namespace_up(f)
    for d in node.dhcp_servers:
        agents.dhcp_links(d)


def _node_agents(plan: Plan, node: NodePlan, render: NodeRender, ledger: Ledger) -> dict[str, float]:
    """The l3 agent's rules in each router and fip- namespace; dnsmasq of each DHCP server.
    Its timing, if NODE has any."""
    t = time.monotonic()
    routers = plan.routers_on(node.name)
    for r in routers:
        agents.router_rules(plan, r, render.routers[r.name])
    for f in plan.fips_on(node.name):
        fips_rt.rules(plan, f, render.fips[f.name])
    for d in node.dhcp_servers:
        pid = agents.dnsmasq_start(d, render.dhcp[d.name])
        ledger.record("process", pid=pid, daemon="dnsmasq", node=node.name, rundir=d.dir)
    return {"agents": time.monotonic() - t} if routers or node.dhcp_servers else {}


def _tunnel_endpoint(node: NodePlan) -> None:
    """local_ip on br-phy's internal port (userspace: OVS made it in the node namespace and
    routes tunnels through it) or on the underlay NIC (kernel datapath)."""
    t = node.tunnel
    device = t.bridge or t.nic
    with netns.entered(node.netns), Links(node.netns) as links:
        if not links.has_address(device, t.local_ip):
            links.add_address(device, t.local_ip, t.prefixlen)
        links.up(device)


def _node_configure(node: NodePlan, render: NodeRender, firewall: bool = True) -> dict[str, float]:
    """The node's OVSDB rows, flows and (FIREWALL) iptables rules. Idempotent: `up` re-runs it
    to repair a lab whose OVS ports, flows or rules were changed behind its back."""
    rundir = Path(node.rundir)
    timings = {}
    t = time.monotonic()
    ovs.vsctl(node.rundir, render.ovsdb)
    timings["ovsdb"] = time.monotonic() - t
    t = time.monotonic()
    for bridge, text in render.flows.items():
        flow_file = rundir / naming.flow_file(bridge)
        flow_file.write_text(text)
        ovs.replace_flows(node.rundir, bridge, str(flow_file))
    timings["flows"] = time.monotonic() - t
    if firewall:
        timings.update(_node_firewall(node, render))
    return timings


def _node_firewall(node: NodePlan, render: NodeRender) -> dict[str, float]:
    """The node's remote-group sets and iptables rules (what `status` compares is recorded)."""
    timings = {}
    if render.ipset:        # the remote groups' sets, before the rules that match them
        t = time.monotonic()
        ipsets.apply(node, render.ipset)
        timings["ipset"] = time.monotonic() - t
    if render.iptables:     # a firewall driver without iptables (noop) has no rules
        t = time.monotonic()
        rules = Path(node.rundir) / naming.NODE_IPTABLES_FILE
        rules.write_text(render.iptables)
        gateway.run(["iptables-restore", "-w", "5", str(rules)], netns=node.netns)
        more_health.record_iptables(rules, node.netns)   # what `status` compares with
        timings["iptables"] = time.monotonic() - t
    return timings


# --------------------------------------------------------------------------- down / cleanup

def down(lab: str, progress: Progress = _quiet, lock_timeout: float | None = None) -> float:
    check_lab_name(lab)
    require_root()
    started = time.monotonic()
    with locks.lab_lock(lab, f"lab down {lab}", lock_timeout, progress), signals.deferred():
        directory = lab_dir(lab)
        if not statedir.inspect(lab) and not _lab_namespaces(lab):
            raise LabStateError(f"lab {lab} is not up (labs up: {', '.join(list_labs()) or 'none'})")
        _teardown(lab, Ledger(directory).entries(), progress)
    return time.monotonic() - started


def _lab_namespaces(lab: str) -> list[str]:
    prefix = naming.netns_name(lab, "")
    return [ns for ns in netns.list_ours() if ns.startswith(prefix)]


def _teardown(lab: str, entries: list[dict], progress: Progress) -> None:
    """Replay the ledger backwards, then sweep by our marks whatever the ledger missed. Only
    entries that carry LAB's marks are used; a symlink where the state directory should be is
    removed (the link), never followed."""
    directory = lab_dir(lab)
    if statedir.is_symlink(lab):
        statedir.unlink_symlink(lab)
        entries = []
    entries = statedir.owned_entries(lab, entries)
    # processes first (they hold sockets and devices), the ledger's, then any in our namespaces
    victims: list[int] = []
    for e in reversed(entries):
        if e["kind"] == "process" and processes.is_ours(e["pid"], e["rundir"]):
            victims.append(e["pid"])
    names = list(dict.fromkeys(e["name"] for e in reversed(entries) if e["kind"] == "netns"))
    names += [ns for ns in _lab_namespaces(lab) if ns not in names]
    inodes = {i for i in (netns.inode(n) for n in names) if i}
    stopped = _stop_marked(victims, inodes, f"{directory}/")
    if stopped:
        progress(f"stopped {stopped} process(es)")
    for name in names:
        netns.delete(name)
    if names:
        progress(f"deleted {len(names)} namespace(s)")
    remove_lab_dir(lab)


SWEEPS = 3     # a process forked while a sweep ran is found by the next one


def _stop_marked(victims: list[int], inodes: set[tuple[int, int]], directory: str) -> int:
    """Stop VICTIMS (the ledger's, by pid), then every process in the lab's namespaces
    (INODES) or whose command line names DIRECTORY, sweeping again while a sweep finds one
    (a process half-way through a fork or `ip netns exec` when the first sweep read /proc);
    how many were stopped."""
    done: set[int] = set()
    for _ in range(SWEEPS):
        victims = list(dict.fromkeys(victims + processes.in_namespaces(inodes) + processes.daemons_under(directory)))
        victims = [p for p in victims if p not in done]
        if not victims:
            break
        for pid in victims:
            processes.stop(pid)
        done.update(victims)
        victims = []
    return len(done)


@dataclass
class Leftover:
    """A lab `cleanup` would remove: up (it has plan.json) or left behind half-made."""

    lab: str
    up: bool
    namespaces: list[str]
    state_dir: str | None

    def describe(self) -> str:
        what = "up" if self.up else "left behind"
        state = f", state {self.state_dir}" if self.state_dir else ""
        return f"lab {self.lab} ({what}: {len(self.namespaces)} namespace(s){state})"


def _known_labs() -> set[str]:
    labs = set()
    try:
        labs |= {p.name for p in STATE_ROOT.iterdir() if LAB_NAME.match(p.name)
                 and (p.is_symlink() or (p / STATE_MARK).exists())}
    except OSError:
        pass
    for ns in netns.list_ours():
        parts = naming.split_netns(ns)
        if parts and LAB_NAME.match(parts[0]):
            labs.add(parts[0])
    return labs


def _stray_namespaces() -> list[str]:
    """Namespaces with our prefix whose lab part is no lab name (nlab.x, nlab..y)."""
    return [ns for ns in netns.list_ours()
            if not (parts := naming.split_netns(ns)) or not LAB_NAME.match(parts[0])]


def leftovers() -> tuple[list[Leftover], list[str]]:
    """What `cleanup` of every lab would remove: each lab, and stray namespaces."""
    require_root()
    labs = []
    for lab in sorted(_known_labs()):
        d = lab_dir(lab)
        labs.append(Leftover(lab, (d / "plan.json").exists(), _lab_namespaces(lab),
                             str(d) if d.exists() else None))
    return labs, _stray_namespaces()


def cleanup(lab: str | None = None, progress: Progress = _quiet,
            lock_timeout: float | None = None) -> list[str]:
    """Remove lab LAB (up or left behind, even after kill -9) by its marks, holding its lock;
    without LAB, every lab and every stray namespace of ours. Returns the labs removed."""
    if lab is not None:
        check_lab_name(lab)
    require_root()
    if lab is not None:
        return _cleanup_one(lab, progress, lock_timeout)
    removed = []
    for name in sorted(_known_labs()):
        removed += _cleanup_one(name, progress, lock_timeout)
    stray = _stray_namespaces()
    if stray:
        inodes = {i for i in (netns.inode(n) for n in stray) if i}
        for pid in processes.in_namespaces(inodes):
            processes.stop(pid)
        for ns in stray:
            netns.delete(ns)
    return removed


def _cleanup_one(lab: str, progress: Progress, lock_timeout: float | None) -> list[str]:
    with locks.lab_lock(lab, f"lab cleanup {lab}", lock_timeout, progress), signals.deferred():
        directory = lab_dir(lab)
        has_dir = statedir.is_symlink(lab) or statedir.inspect(lab)
        if not has_dir and not _lab_namespaces(lab) and not processes.daemons_under(f"{directory}/"):
            return []
        progress(f"removing lab {lab}")
        _teardown(lab, Ledger(directory).entries(), progress)
    return [lab]


# --------------------------------------------------------------------------- status

def health(state: LabState) -> list[str]:
    return health_report(state)[0]


def health_report(state: LabState) -> tuple[list[str], list[Fault]]:
    """What is wrong with a lab that is up: each fault (lab/runtime/faults.py) and its sentence."""
    faults = lab_faults(state.plan)
    return [f.text() for f in faults], faults


def lab_faults(plan: Plan) -> list[Fault]:
    """Every fault, source by source: the lab's namespaces and daemons, each node's
    (`_node_faults`), each namespace's kernel state (links, addresses, routes, neighbours,
    sysctls), iptables, the metadata service."""
    dead = inventory.daemon_faults(plan)
    faults = _namespace_faults(plan) + dead
    for node in plan.nodes:
        faults += _node_faults(plan, node, ovs_dead=any(f.what in _ovs_daemons(node) for f in dead))
    for source in (inventory.kernel_faults, more_health.iptables_faults, metadata_service.faults):
        faults += source(plan)
    return faults


def _node_faults(plan: Plan, node: NodePlan, ovs_dead: bool) -> list[Fault]:
    """NODE's faults from each node source; those that ask its Open vSwitch only while both
    daemons run (a dead one explains them)."""
    sources = _NODE_SOURCES if ovs_dead else _NODE_OVS_SOURCES + _NODE_SOURCES
    return [f for source in sources for f in source(plan, node)]


def _ovs_daemons(node: NodePlan) -> set[str]:
    return {f"{d} of {node.name}" for d in ovs.DAEMONS}     # as inventory.daemons names them


def _flow_faults(plan: Plan, node: NodePlan) -> list[Fault]:
    return inventory.flow_faults(node, plan.cookie, plan.lab)


def _ovs_restarted(plan: Plan, node: NodePlan) -> list[Fault]:
    return [f for f in [more_health.ovs_fault(node, plan.lab)] if f]


def _router_faults(plan: Plan, node: NodePlan) -> list[Fault]:
    return [f for r in plan.routers_on(node.name) for f in agents.router_faults(r, plan.lab)]


def _fip_faults(plan: Plan, node: NodePlan) -> list[Fault]:
    return [f for x in plan.fips_on(node.name) for f in fips_rt.faults(x, plan.lab)]


def _ipset_faults(plan: Plan, node: NodePlan) -> list[Fault]:
    return [f for f in [ipsets.node_fault(node, plan.lab)] if f]


def _namespace_faults(plan: Plan) -> list[Fault]:
    rebuilt = _rebuildable(plan)
    return [Fault("namespace-missing", "", ns, ns, "present", "missing",
                  f"`lab up {plan.lab}` rebuilds it" if ns in rebuilt else
                  f"it cannot be rebuilt in place: `lab down {plan.lab}`, then `lab up`")
            for ns in plan.namespaces() if not netns.exists(ns)]


def _expected_ports(plan: Plan, node: NodePlan) -> dict[str, tuple[str, int | None]]:
    """NODE's OVS ports: name -> (bridge, tag)."""
    expected = {b.nic: (b.bridge, None) for b in node.physical_bridges}
    expected |= {b.int_patch: (naming.BR_INT, None) for b in node.physical_bridges}
    expected |= {b.phy_patch: (b.bridge, None) for b in node.physical_bridges}
    expected |= {p.ovs_port: (naming.BR_INT, p.local_vlan) for p in node.ports}
    if node.tunnel:
        expected |= {naming.PATCH_TUN: (naming.BR_INT, None), naming.PATCH_INT: (naming.BR_TUN, None)}
        expected |= {p.name: (naming.BR_TUN, None) for p in node.tunnel.ports}
    expected |= {p.ovs_dev: (naming.BR_INT, p.local_vlan)
                 for p in [d.port for d in node.dhcp_servers]
                 + [q for r in plan.routers_on(node.name) for q in r.ports]
                 + [f.gateway for f in plan.fips_on(node.name)]}
    return expected


def _port_faults(plan: Plan, node: NodePlan) -> list[Fault]:
    """NODE's OVS ports (read from its OVSDB through the IDL): missing, on the wrong bridge
    or tag, without an OpenFlow port."""
    from lab.runtime.ovsdb import OvsdbError, read_ports
    try:
        ports = read_ports(node.rundir)
    except OvsdbError as exc:
        return [unreadable(node.name, node.netns, "OVSDB", exc, plan.lab)]
    again = f"`lab up {plan.lab}` applies the node's OVSDB transaction again"
    out = []
    for name, (bridge, tag) in _expected_ports(plan, node).items():
        row, want = ports.get(name), f"{bridge} tag {tag}"
        if row is None:
            out.append(Fault("port-missing", node.name, node.netns, name, want, "missing", again))
        elif row.bridge != bridge or row.tag != tag:
            out.append(Fault("port-misplaced", node.name, node.netns, name, want, f"{row.bridge} tag {row.tag}", again))
        elif row.error or row.ofport in (None, -1):
            out.append(Fault("port-no-ofport", node.name, node.netns, name, "an OpenFlow port",
                             row.error or "ofport -1", again + " and re-adds the ports whose devices it makes again"))
    return out


def _plug_faults(plan: Plan, node: NodePlan) -> list[Fault]:
    """Devices of the instances' plugs that the node namespace lacks (`up` makes a plug again
    only with its instance's namespace)."""
    if not node.ports or not netns.exists(node.netns):
        return []
    plug, lab = plugs.driver(node.firewall_driver), plan.lab
    with netns.entered(node.netns), Links(node.netns) as links:
        return [Fault("plug-device-missing", node.name, node.netns, f"{p.instance}'s {dev}", "present", "missing",
                      f"`lab up {lab}` cannot make it alone: run `lab down {lab}` and `lab up` again")
                for p in node.ports for dev in plug.missing(links, p)]


# each node's fault sources, in the order status names them
_NODE_OVS_SOURCES = (_port_faults, _flow_faults, _ovs_restarted)     # ask the node's Open vSwitch
_NODE_SOURCES = (_plug_faults, _router_faults, _fip_faults, _ipset_faults)


def status(lab: str | None = None) -> list[dict]:
    labs = [lab] if lab else list_labs()
    out = []
    for name in labs:
        try:
            state = load_state(name)
        except StateDirError as exc:
            if lab:
                raise
            out.append(_unreadable_status(name, exc))   # one bad lab does not hide the others
            continue
        plan = state.plan
        problems, faults = health_report(state)
        out.append({
            "lab": name,
            "scenario": plan.scenario_file,
            "datapath": plan.datapath,
            "problems": problems,
            "faults": [f.to_json() for f in faults],
            "nodes": [{"name": n.name, "netns": n.netns, "role": n.role, "ovs_rundir": n.rundir,
                       "up": netns.exists(n.netns),
                       "pids": {d: ovs.read_pid(n.rundir, d) for d in ovs.DAEMONS},
                       "bridges": [naming.BR_INT] + [b.bridge for b in n.physical_bridges],
                       "local_vlans": dict(n.local_vlans), "agent_mode": n.agent_mode,
                       "dvr_mac": n.dvr_mac} for n in plan.nodes],
            "instances": [{"name": p.instance, "netns": p.netns, "node": p.node, "network": p.network,
                           "ip": p.ip, "mac": p.mac, "port_id": p.port_id, "local_vlan": p.local_vlan,
                           "address": p.address, "floating_ip": p.floating_ip,
                           "firewall_driver": p.plug.driver, "ovs_port": p.ovs_port,
                           "devices": {d.role: d.name for d in p.plug.devices},
                           "up": netns.exists(p.netns)} for p in plan.ports],
            "wires": [{"name": w.name, "netns": w.netns, "bridge": w.bridge,
                       "members": [{"name": m.name, "kind": m.kind, "port": m.wire_ifname, "nic": m.peer_ifname}
                                   for m in w.members], "up": netns.exists(w.netns)}
                      for w in plan.wires],
            "routers": [{"name": r.name, "router": r.router, "router_id": plan.router(r.router).router_id,
                         "role": r.role, "node": r.node, "netns": r.netns,
                         "interfaces": [{"network": i.network, "device": i.ns_dev, "ip": i.ip, "mac": i.mac,
                                         "ovs_port": i.ovs_dev, "local_vlan": i.local_vlan} for i in r.ports],
                         "floating_ips": [{"address": f.address, "fixed_ip": f.fixed_ip, "instance": f.instance}
                                          for f in r.floating_ips],
                         "up": netns.exists(r.netns)} for r in plan.router_instances],
            "dhcp": [{"name": d.name, "network": d.network, "node": d.node, "netns": d.netns,
                      "ip": d.port.ip, "device": d.port.ns_dev, "ovs_port": d.port.ovs_dev,
                      "pid": agents.dnsmasq_pid(d), "up": netns.exists(d.netns)}
                     for d in plan.dhcp_servers],
            "metadata": metadata_service.status(plan),
            "external_hosts": [{"name": h.name, "netns": h.netns, "network": h.network, "ip": h.ip,
                                "mac": h.mac, "wire": h.wire, "up": netns.exists(h.netns)}
                               for h in plan.external_hosts],
        })
    return out


def _unreadable_status(lab: str, exc: StateDirError) -> dict:
    return {"lab": lab, "scenario": None, "datapath": None, "problems": [str(exc)], "faults": [], "nodes": [],
            "instances": [], "wires": [], "routers": [], "dhcp": [], "external_hosts": [],
            "metadata": []}


# --------------------------------------------------------------------------- exec

def resolve_target(lab: str, target: str) -> tuple[str, str, dict[str, str]]:
    """(kind, netns, environment) of an exec/capture target."""
    state = load_state(lab)
    targets = state.plan.targets()
    if target not in targets:
        raise LabStateError(f"lab {lab} has no target {target!r} (its targets: "
                            f"{', '.join(sorted(targets))})")
    kind, ns = targets[target]
    env = ovs.env(state.plan.node(target).rundir) if kind == "node" else {}
    return kind, ns, env
