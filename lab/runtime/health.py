"""What `status` sees beyond namespaces, daemons, OVS ports and flows, and how `up` repairs it
in place (issue 13 §1-2):

Each difference is a `Fault` (lab/runtime/faults.py).

- iptables: right after `up` applies a namespace's rules (a node's firewall, a router's l3
  agent rules, a DVR fip-'s) it saves `iptables-save` of that namespace without counters beside the rules
  file (`<file>.applied`); `status` compares the namespace's rules now with it, so an
  `iptables -F` is seen; `up` re-applies the rendered file.
- links, addresses, routes, neighbours and sysctls of every namespace (instances' eth0
  too): lab/runtime/inventory.py, from the table lab/core/expect.py makes of the plan.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from lab.budget import budget
from lab.core import naming
from lab.core.plan import Plan
from lab.errors import LabError
from lab.runtime import gateway, netns
from lab.runtime.faults import Fault, unreadable
from lab.runtime.kernel import Links

APPLIED = ".applied"
_COUNTERS = re.compile(r"\[\d+:\d+\]")

POLL_INTERVAL = 0.05     # between tries of a bounded wait


# --------------------------------------------------------------------------- iptables

def iptables_now(ns: str) -> list[str]:
    """The rules of namespace NS as iptables-save prints them, without comments and counters."""
    out = gateway.run(["iptables-save"], netns=ns).stdout
    return [_COUNTERS.sub("[0:0]", line) for line in out.splitlines() if line and not line.startswith("#")]


def record_iptables(rules_file: Path, ns: str) -> None:
    """Remember what the kernel holds right after RULES_FILE was applied in NS."""
    Path(str(rules_file) + APPLIED).write_text("\n".join(iptables_now(ns)) + "\n")


def iptables_fault(who: str, rules_file: Path, ns: str, lab: str) -> Fault | None:
    """How NS's rules differ from what was applied from RULES_FILE (every `-A` rule and every
    chain with its policy missing or unexpected; or the same, in another order); None when
    equal (or when nothing was recorded)."""
    applied_file = Path(str(rules_file) + APPLIED)
    if not applied_file.exists() or not netns.exists(ns):
        return None
    applied = applied_file.read_text().splitlines()
    try:
        now = iptables_now(ns)
    except LabError as exc:
        return unreadable(who, ns, "iptables rules", exc, lab)
    if now == applied:
        return None
    missing, extra = _unmatched(applied, now), _unmatched(now, applied)
    found = f"{len(missing)} missing, {len(extra)} unexpected" if missing or extra else "reordered"
    return Fault("iptables", who, ns, str(rules_file), "the rules `up` applied", found,
                 f"`lab up {lab}` re-applies them", missing=missing, unexpected=extra)


_COMPARED = ("-A ", ":")    # rules, and chains with their policies (":FORWARD DROP [0:0]")


def _unmatched(lines: list[str], others: list[str]) -> tuple[str, ...]:
    """The rules and chain lines of LINES that OTHERS lack, a repeated one counted each time
    (a rule added twice is one unexpected rule), in LINES' order."""
    left = Counter(r for r in others if r.startswith(_COMPARED))
    out = []
    for r in lines:
        if not r.startswith(_COMPARED):
            continue
        if left[r]:
            left[r] -= 1
        else:
            out.append(r)
    return tuple(out)


def iptables_faults(plan: Plan) -> list[Fault]:
    """Each namespace whose rules `up` applied and recorded: the nodes' firewalls, every router
    instance's l3 agent rules (a DVR qrouter-'s DNAT and float-snat, snat-'s SNAT) and each
    fip-'s (lab/runtime/fip.py: `rules`)."""
    from lab.paths import lab_dir
    owners = [(node.name, Path(node.rundir) / naming.NODE_IPTABLES_FILE, node.netns) for node in plan.nodes]
    owners += [(f"router {r.name}", lab_dir(plan.lab) / naming.router_rules_file(r.name), r.netns)
               for r in plan.router_instances]
    owners += [(f.name, lab_dir(plan.lab) / naming.router_rules_file(f.name), f.netns) for f in plan.fip_namespaces]
    return [f for who, rules_file, ns in owners if (f := iptables_fault(who, rules_file, ns, plan.lab))]


# --------------------------------------------------------------------------- a node's Open vSwitch

def ovs_state(node) -> str:
    """'normal', 'restarted' or 'dead', the way the OVS agent tells (check_ovs_status): a dead
    daemon, or br-int's table 23 that cannot be read, is dead; a readable table 23 without the
    canary flow (priority 0, drop: installed with br-int's flows) means Open vSwitch started
    again and forgot every flow."""
    from lab.runtime import ovs, processes, signals
    if not all(processes.alive(ovs.read_pid(node.rundir, d), node.rundir) for d in ovs.DAEMONS):
        return "dead"
    try:
        out = gateway.run(["ovs-ofctl", "dump-flows", naming.BR_INT, "table=23"], env=ovs.env(node.rundir),
                          timeout=10).stdout
    except LabError:
        return "dead"
    return "normal" if any("table=23" in line for line in out.splitlines()) else "restarted"


def ovs_fault(node, lab: str) -> Fault | None:
    """NODE's Open vSwitch runs but was restarted (a dead daemon is a `daemon` fault)."""
    if not netns.exists(node.netns) or ovs_state(node) != "restarted":
        return None
    return Fault("ovs-restarted", node.name, node.netns, f"{naming.BR_INT} table 23", "canary flow", "absent",
                 f"`lab up {lab}` re-applies its rows, flows and ports")


def restart_ovs(node, datapath: str, record) -> None:
    """Start NODE's ovsdb-server and ovs-vswitchd again in its namespace, on the database it
    kept (bridges, ports and their external_ids survive in conf.db); a daemon that survived is
    stopped first so both start together. RECORD(daemon, pid) notes each in the ledger. The
    caller re-applies rows, flows, iptables and the tunnel endpoint (lifecycle._node_configure)."""
    try:
        _restart(node, datapath, record)
    except LabError:     # seen once under load: the new ovs-vswitchd made no bridge; try once more
        _restart(node, datapath, record)


def _restart(node, datapath: str, record) -> None:
    from lab.runtime import ovs, processes, signals
    for daemon in reversed(ovs.DAEMONS):
        pid = ovs.read_pid(node.rundir, daemon)
        if processes.alive(pid, node.rundir):
            processes.stop(pid)
        if pid is not None:   # its control socket is named by its pid: do not let them pile up
            Path(node.rundir, f"{daemon}.{pid}.ctl").unlink(missing_ok=True)
    with signals.held():    # recorded before a signal stops `up` (signals.held)
        for daemon, pid in zip(ovs.DAEMONS, ovs.start(node.netns, node.rundir, datapath)):
            record(daemon, pid)
    _wait_bridges(node)


def _wait_bridges(node, timeout: float = 10.0) -> None:
    """Until the new ovs-vswitchd has made every bridge its database holds (an ovs-vsctl
    transaction that changes nothing does not wait for it, and flows need the bridges)."""
    import time
    from lab.runtime import ovs
    bridges = ovs.vsctl(node.rundir, ["list-br"]).split()
    deadline = time.monotonic() + budget(timeout)
    for bridge in bridges:
        while True:
            try:
                gateway.run(["ovs-ofctl", "show", bridge], env=ovs.env(node.rundir), timeout=5)
                break
            except LabError as exc:
                if time.monotonic() >= deadline:
                    log = Path(node.rundir, "ovs-vswitchd.log")
                    tail = log.read_text(errors="replace").splitlines()[-3:] if log.exists() else []
                    raise LabError(f"{node.name}: the restarted ovs-vswitchd did not make {bridge} "
                                   f"within {timeout:g} s ({exc}); its log ends: " + " | ".join(tail)) from None
                time.sleep(POLL_INTERVAL)


# --------------------------------------------------------------------------- deleted namespaces

def recreate_instances(plan: Plan, node, record_netns, prepare) -> list[str]:
    """Instances of NODE whose namespace is gone: the namespace again (PREPARE sets it up as
    `up` does), then the port plugged again by the node's driver, after deleting what is left
    of the old plug in the node namespace (a veth whose other end vanished with the namespace
    goes with it). Returns the br-int ports to re-add (OVS must open the new devices); the
    caller re-applies the OVSDB rows, and inventory.repair gives eth0 its address (static, or
    a real DHCP exchange)."""
    from lab.runtime import plugs
    gone = [p for p in node.ports if not netns.exists(p.netns)]
    if not gone:
        return []
    plug = plugs.driver(node.firewall_driver)
    for p in gone:
        netns.create(p.netns)
        record_netns(p.netns)
        prepare(p.netns)
    with netns.entered(node.netns), Links(node.netns) as links:
        for p in gone:
            for d in p.plug.devices:
                if links.has(d.name):
                    links.delete(d.name)
            plug.make(links, p)
    for p in gone:
        with netns.entered(p.netns), Links(p.netns) as links:
            links.tx_checksum_off("eth0")
    return [p.ovs_port for p in gone]


def recreate_agent_ports(plan: Plan, node) -> list[str]:
    """Router and DHCP ports of NODE whose veth pair is gone (deleting either end deletes
    both) while their namespace stands: the pair again, as `up` makes it. Returns the br-int
    ends, which the caller re-adds to OVS; inventory.repair gives the namespace end its
    address, routes and state."""
    owned = [(r.netns, p) for r in plan.routers_on(node.name) for p in r.ports]
    owned += [(d.netns, d.port) for d in node.dhcp_servers]
    rebuilt = []
    for ns, port in owned:
        if not netns.exists(ns):
            continue
        with netns.entered(ns), Links(ns) as links:
            if links.has(port.ns_dev):
                continue
        with netns.entered(node.netns), Links(node.netns) as links:
            if links.has(port.ovs_dev):
                links.delete(port.ovs_dev)
            links.veth(port.ovs_dev, port.ns_dev, peer_netns=ns, peer_mac=port.mac, mtu=port.mtu, up=True)
            links.tx_checksum_off(port.ovs_dev)
        with netns.entered(ns), Links(ns) as links:
            links.tx_checksum_off(port.ns_dev)
        rebuilt.append(port.ovs_dev)
    return rebuilt


def recreate_wires(plan: Plan, record_netns, prepare, wire_up) -> dict[str, list[str]]:
    """Wires whose namespace is gone: the namespace, its bridge and every member's veth again
    (WIRE_UP, as `up` makes them; the old veths went with the namespace, and with them the
    nodes' NICs and the external hosts' eth0). Returns {node: [its NICs that are new]}: the
    caller re-adds them to their OVS bridge and puts the tunnel endpoint back; external hosts
    get their address here."""
    renewed: dict[str, list[str]] = {}
    for wire in plan.wires:
        if netns.exists(wire.netns):
            continue
        netns.create(wire.netns)
        record_netns(wire.netns)
        prepare(wire.netns)
        for m in wire.members:     # an end that survived on the member's side blocks the new pair
            if netns.exists(m.peer_netns):
                with netns.entered(m.peer_netns), Links(m.peer_netns) as links:
                    if links.has(m.peer_ifname):
                        links.delete(m.peer_ifname)
        wire_up(plan, wire)
        for m in wire.members:
            if m.kind == "node":
                renewed.setdefault(m.name, []).append(m.peer_ifname)
    for node, nics in renewed.items():
        n = plan.node(node)
        with netns.entered(n.netns), Links(n.netns) as links:
            links.tx_checksum_off(*nics)
            links.up(*nics)
    return renewed
