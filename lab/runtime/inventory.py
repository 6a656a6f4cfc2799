"""`status` compares each namespace's kernel state with what the plan says it holds
(lab/core/expect.py), and `up` repairs the differences in place (issue 13 §1-2).

Cheap: one netlink dump per kind (links, addresses, routes, neighbours) per namespace, not a
call per object, and one read per sysctl. Each difference is a `Fault` that says what is
wrong and what `lab up` does about it (lab/runtime/faults.py); `status --json` lists them
(`faults`).

Also here, as tables a new daemon or bridge adds one entry to: the lab's daemons (`daemons`)
and each bridge's flows counted per table (`flow_faults`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lab.core import naming
from lab.core.expect import Expected, Route, expected
from lab.core.plan import Plan
from lab.errors import LabError
from lab.runtime import gateway, netns, ovs, processes
from lab.runtime.faults import Fault
from lab.runtime.kernel import NUD_PERMANENT, Links


# --------------------------------------------------------------------------- reading a namespace

@dataclass
class Seen:
    """One namespace's kernel state, from one dump per kind."""

    links: dict[str, bool]                          # name -> up
    addresses: set[tuple[str, str, int]]            # (dev, ip, prefixlen)
    routes: set[tuple[str, str | None, str]]        # (dst, gateway, dev)
    neighbours: dict[tuple[str, str], tuple[str, int]]  # (dev, ip) -> (mac, state)
    sysctls: dict[str, str | None]


def read(e: Expected, links: Links) -> Seen:
    """What the namespace the caller entered holds of what E names."""
    d = links.dump(routes=bool(e.routes), neighbours=bool(e.neighbours))
    return Seen(d["links"], d["addresses"], d["routes"], d["neighbours"], {k: _sysctl(k) for k, _ in e.sysctls})


def _sysctl(key: str) -> str | None:
    """A net.* sysctl of the namespace the calling thread is in; None when the kernel lacks it."""
    try:
        return Path("/proc/sys", *key.split(".")).read_text().strip()
    except OSError:
        return None


# --------------------------------------------------------------------------- comparing

def compare(e: Expected, seen: Seen, lab: str) -> list[Fault]:
    """The differences, without the ones another explains: a missing or down link's
    addresses and routes, an address's routes."""
    def fault(kind, what, want, found, repair):
        return Fault(kind, e.who, e.netns, what, want, found, repair)
    again = f"`lab up {lab}` puts it back"
    out = []
    broken = set()
    for dev in e.links:
        if dev not in seen.links:
            out.append(fault("link-missing", dev, "present", "missing",
                             f"`lab up {lab}` makes its veth pair again" if dev in e.remade else
                             f"`lab up {lab}` cannot make it alone: run `lab down {lab}` and `lab up` again"))
            broken.add(dev)
        elif not seen.links[dev]:
            out.append(fault("link-down", dev, "up", "down", f"`lab up {lab}` brings it up"))
            broken.add(dev)
    unaddressed = set()
    for a in e.addresses:
        if a.dev not in broken and (a.dev, a.ip, a.prefixlen) not in seen.addresses:
            how = "a DHCP client asks for it again" if e.dhcp_client else "puts it back"
            out.append(fault("address", f"{a.ip}/{a.prefixlen} on {a.dev}", f"{a.ip}/{a.prefixlen}", "absent",
                             f"`lab up {lab}` {how}"))
            unaddressed.add(a.dev)
    for r in e.routes:
        if r.dev not in broken | unaddressed and (r.dst, r.gateway, r.dev) not in seen.routes:
            out.append(fault("route", route_words(r), "present", "absent", again))
    for n in e.neighbours:
        mac, state = seen.neighbours.get((n.dev, n.ip), (None, 0))
        if n.dev not in broken and (mac != n.mac or not state & NUD_PERMANENT):
            out.append(fault("neighbour", n.dev, f"{n.ip} {n.mac}", f"{mac or 'none'} state {state:#x}", again))
    for key, value in e.sysctls:
        now = seen.sysctls.get(key)
        if now is not None and now != value:
            out.append(fault("sysctl", key, value, now, f"`lab up {lab}` sets it again"))
    return out


def route_words(r: Route) -> str:
    dst = "default route" if r.dst == "0.0.0.0/0" else f"route to {r.dst}"
    return f"{dst} via {r.gateway} on {r.dev}" if r.gateway else f"{dst} on {r.dev} (on-link)"


def kernel_faults(plan: Plan) -> list[Fault]:
    """Every namespace that exists, compared with the plan (a missing namespace is named by
    lifecycle.health)."""
    out = []
    for e in expected(plan):
        if not netns.exists(e.netns):
            continue
        with netns.entered(e.netns), Links(e.netns) as links:
            out += compare(e, read(e, links), plan.lab)
    return out


# --------------------------------------------------------------------------- repairing

def repair(plan: Plan) -> list:
    """Put back what kernel_faults names: links up, addresses, routes, permanent neighbours,
    sysctls. Returns the DHCP instances' ports whose address must come from a lease again
    (the caller runs the client: agents.dhcp_leases)."""
    relearn = []
    ports = {p.netns: p for p in plan.ports}
    for e in expected(plan):
        if not netns.exists(e.netns):
            continue
        with netns.entered(e.netns), Links(e.netns) as links:
            faults = compare(e, read(e, links), plan.lab)
            if not faults:
                continue
            for f in (f for f in faults if f.kind == "link-down"):
                links.up(f.what)
            if e.dhcp_client and any(f.kind == "address" for f in compare(e, read(e, links), plan.lab)):
                relearn.append(ports[e.netns])
                continue
            _put_back(e, links, plan.lab)
    return relearn


def _put_back(e: Expected, links: Links, lab: str) -> None:
    """Addresses first (a route needs its subnet), then routes, neighbours and sysctls."""
    for f in compare(e, read(e, links), lab):
        if f.kind == "address":
            a = next(a for a in e.addresses if f"{a.ip}/{a.prefixlen} on {a.dev}" == f.what)
            links.add_address(a.dev, a.ip, a.prefixlen)
    for f in compare(e, read(e, links), lab):
        if f.kind == "route":
            r = next(r for r in e.routes if route_words(r) == f.what)
            links.route(r.dst, r.gateway, r.dev)
        elif f.kind == "neighbour":
            n = next(n for n in e.neighbours if n.dev == f.what and f"{n.ip} {n.mac}" == f.expected)
            links.permanent_neighbour(n.dev, n.ip, n.mac)
        elif f.kind == "sysctl":
            netns.write_sysctl(f.what, f.expected)


# --------------------------------------------------------------------------- daemons

@dataclass(frozen=True)
class Daemon:
    """A process the lab runs: found by its pid file, trusted while its command line names MARK."""

    name: str          # "ovs-vswitchd of compute1"
    node: str
    pidfile: str
    mark: str
    repair: str        # what `lab up` does when it is dead

    def alive(self) -> bool:
        return processes.alive(processes.read_pidfile(self.pidfile), self.mark)


def daemons(plan: Plan) -> list[Daemon]:
    """Every daemon of the lab, one entry each: a node's Open vSwitch, each DHCP server's dnsmasq."""
    lab = plan.lab
    out = [Daemon(f"{d} of {n.name}", n.name, str(ovs.pidfile(n.rundir, d)), n.rundir,
                  f"`lab up {lab}` starts it again and re-applies the node's rows, flows and ports")
           for n in plan.nodes for d in ovs.DAEMONS]
    out += [Daemon(f"dnsmasq of {d.name}", d.node, str(Path(d.dir) / naming.DHCP_PIDFILE), d.dir,
                   f"`lab up {lab}` restarts it, keeping its leases") for d in plan.dhcp_servers]
    return out


def daemon_faults(plan: Plan) -> list[Fault]:
    return [Fault("daemon", "", "", d.name, "running", "not running", d.repair)
            for d in daemons(plan) if not d.alive()]


# --------------------------------------------------------------------------- flows per table

def _tables(lines) -> dict[int, int]:
    """Flow count per table of ovs-ofctl flow lines (a flow without table= is in table 0)."""
    counts: dict[int, int] = {}
    for line in lines:
        match = line.split(" actions=")[0]
        table = next((int(f.split("=")[1]) for f in match.replace(",", " ").split() if f.startswith("table=")), 0)
        counts[table] = counts.get(table, 0) + 1
    return counts


def _cookie(line: str) -> int | None:
    field = next((f for f in line.replace(",", " ").split() if f.startswith("cookie=")), None)
    try:
        return int(field.split("=")[1], 16) if field else None
    except ValueError:
        return None


def flow_faults(node, cookie: str, lab: str) -> list[Fault]:
    """Each bridge's flows, per table, against the flows last applied (the bridge's flow
    file): the lab's cookie counted, any other cookie a foreign flow. One dump per bridge."""
    out = []
    for flow_file in sorted(Path(node.rundir).glob(naming.flow_file("*"))):
        bridge = flow_file.stem
        again = f"`lab up {lab}` re-applies {bridge}'s flows"
        want = _tables(line for line in flow_file.read_text().splitlines() if line.startswith("cookie="))
        try:
            dump = gateway.run(["ovs-ofctl", "dump-flows", bridge], env=ovs.env(node.rundir)).stdout
        except LabError as exc:
            out.append(Fault("flows", node.name, node.netns, bridge, "readable", f"unreadable ({exc})", again))
            continue
        # flows br-tun's learn action made carry the cookie too, with a hard_timeout of their own
        lines = [line for line in dump.splitlines()
                 if "cookie=" in line and "hard_timeout=" not in line.split(" actions=")[0]]
        ours = int(cookie, 16)
        have = _tables(line for line in lines if _cookie(line) == ours)
        foreign = _tables(line for line in lines if _cookie(line) != ours)
        for table in sorted(set(want) | set(have)):
            if want.get(table, 0) != have.get(table, 0):
                out.append(Fault("flows", node.name, node.netns, f"{bridge} table {table}",
                                 str(want.get(table, 0)), str(have.get(table, 0)), again))
        out += [Fault("foreign-flows", node.name, node.netns, f"{bridge} table {table}", "0", str(n),
                      f"`lab up {lab}` replaces {bridge}'s flows with the lab's")
                for table, n in sorted(foreign.items())]
    return out
