"""The L3 and DHCP agents' part of a node: router namespaces (addresses, forwarding,
floating IPs, the l3 agent's iptables), DHCP namespaces (dnsmasq) and the instances' DHCP
clients. Called by lifecycle.py, which owns ordering, the ledger and rollback."""

from __future__ import annotations

import math
import os
import re
import select
import time
from pathlib import Path

from lab.budget import budget
from lab.runtime import gateway, netns, processes, signals
from lab.runtime.faults import Fault
from lab.errors import LabError
from lab.runtime.kernel import Links
from lab.paths import lab_dir
from lab.core import naming, routers
from lab.core.plan import DhcpPlan, Plan, RouterInstance
from lab.core.render import DhcpRender


def router_links(r: RouterInstance) -> None:
    """A router instance's namespace (qrouter-, or DVR's snat-): the l3 agent's sysctls
    (routers.sysctls: forwarding, arp_ignore/announce, conntrack be_liberal,
    promote_secondaries; snat-: also ip_nonlocal_bind, tcp_loose), addresses on qr-/sg- and
    qg-, floating IPs as /32 on qg-, default route. DVR (dvr_local): a permanent neighbour
    entry for every port of its subnets, and the SNAT redirect's rules and tables."""
    with netns.entered(r.netns):
        with Links(r.netns) as links:
            for port in r.ports:
                links.tx_checksum_off(port.ns_dev)
                links.add_address(port.ns_dev, port.ip, port.prefixlen)
                links.up(port.ns_dev)
            if r.gateway:
                for f in r.floating_ips:
                    links.add_address(r.gateway.ns_dev, f.address, 32)
                if r.external_gateway_ip:
                    links.default_route(r.external_gateway_ip, r.gateway.ns_dev)
        for key, value in routers.sysctls(r):      # after the links: some name a qr- device
            netns.write_sysctl(key, value)
    router_neighbours(r)
    router_policy_routes(r)


def router_policy_routes(r: RouterInstance) -> None:
    """DVR: the SNAT redirect of a local router (tables first, then the rules; idempotent)."""
    if not r.rules and not r.routes:
        return
    with netns.entered(r.netns), Links(r.netns) as links:
        for route in r.routes:
            links.table_route(route.destination, route.via, route.dev, route.table)
        for rule in r.rules:
            links.rule(rule.priority, rule.table, rule.source)


def router_neighbours(r: RouterInstance) -> None:
    """DVR: the permanent neighbour entries of a router instance (replaced: idempotent)."""
    if not r.neighbours:
        return
    with netns.entered(r.netns), Links(r.netns) as links:
        for n in r.neighbours:
            links.permanent_neighbour(n.dev, n.ip, n.mac)


def router_faults(r: RouterInstance, lab: str) -> list[Fault]:
    """What a router instance that exists lacks of DVR's SNAT redirect rules (its permanent
    neighbour entries are compared by lab/runtime/inventory.py)."""
    if not r.rules or not netns.exists(r.netns):
        return []
    with netns.entered(r.netns), Links(r.netns) as links:
        have = links.rules()
    return [Fault("ip-rule", r.name, r.netns, f"rule from {x.source} lookup {x.table} priority {x.priority}",
                  "present", "absent", f"`lab up {lab}` puts it back")
            for x in r.rules if (x.priority, x.table, x.source) not in have]


def router_rules(plan: Plan, r: RouterInstance, rules: str) -> None:
    rules_file = lab_dir(plan.lab) / naming.router_rules_file(r.name)
    rules_file.parent.mkdir(parents=True, exist_ok=True)
    rules_file.write_text(rules)
    gateway.run(["iptables-restore", "-w", "5", str(rules_file)], netns=r.netns)
    from lab.runtime.health import record_iptables
    record_iptables(rules_file, r.netns)     # what `status` compares with


def dhcp_links(d: DhcpPlan) -> None:
    with netns.entered(d.netns), Links(d.netns) as links:
        links.tx_checksum_off(d.port.ns_dev)
        links.add_address(d.port.ns_dev, d.port.ip, d.port.prefixlen)
        if d.metadata_address:      # enable_isolated_metadata (DeviceManager.setup)
            links.add_address(d.port.ns_dev, "169.254.169.254", 32)
        links.up(d.port.ns_dev)


def dnsmasq_start(d: DhcpPlan, render: DhcpRender) -> int:
    """dnsmasq in qdhcp-, as the dhcp agent runs it; it daemonizes once it has bound."""
    directory = Path(d.dir)
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in render.files.items():
        if name == "leases" and (directory / name).exists():
            continue    # a restart keeps the leases it had handed out, as the dhcp agent does
        (directory / name).write_text(text)
    gateway.run(list(render.argv), netns=d.netns)
    pid = dnsmasq_pid(d)
    if pid is None:
        raise LabError(f"dnsmasq for {d.network} did not write {directory / naming.DHCP_PIDFILE}")
    return pid


def dnsmasq_pid(d: DhcpPlan) -> int | None:
    """dnsmasq's pid from its pid file (check it with processes.alive(pid, d.dir))."""
    return processes.read_pidfile(Path(d.dir) / naming.DHCP_PIDFILE)


DHCP_WINDOW = 64     # DHCP clients running at once
NEIGH_GC_THRESH3 = Path("/proc/sys/net/ipv4/neigh/default/gc_thresh3")


def _wait_any(procs: list, timeout: float) -> None:
    """Block until one of PROCS has exited or TIMEOUT seconds have passed (pidfds, no polling)."""
    fds = [os.pidfd_open(p.pid) for p in procs]
    try:
        select.select(fds, [], [], max(0.0, timeout))
    finally:
        for fd in fds:
            os.close(fd)


def broadcast_replies(clients: int) -> bool:
    """Whether CLIENTS DHCP clients must ask for broadcast replies (RFC 2131's BROADCAST bit).
    dnsmasq answers a client without the bit by unicast, after injecting an ARP entry for the
    offered address into its namespace; every namespace on the machine shares the kernel's one
    IPv4 neighbour table (gc_thresh3 entries, 1,024 by default, settable only in the host's
    namespace, which the lab never changes), so once the clients approach half of it,
    injections fail ("neighbor table overflow!") and offers are lost. Broadcast replies need
    no injection."""
    try:
        limit = int(NEIGH_GC_THRESH3.read_text())
    except (OSError, ValueError):
        limit = 1024
    return clients >= limit // 2


def udhcpc_argv(script: Path, clients: int) -> list[str]:
    tries = str(max(8, math.ceil(budget(8))))   # one DISCOVER a second, for the budget
    argv = ["busybox", "udhcpc", "-i", "eth0", "-f", "-q", "-n", "-t", tries, "-T", "1", "-O", "mtu",
            "-O", "staticroutes", "-s", str(script)]
    return argv + ["-B"] if broadcast_replies(clients) else argv


def dhcp_leases(plan: Plan, ports, directory: Path, timeout: float = 20.0) -> list[str]:
    """Run a real DHCP client (busybox udhcpc) in every DHCP instance, DHCP_WINDOW at a time; return
    "instance: why" for each one that did not get the address the plan expects."""
    from lab.core.render import udhcpc_script
    script = directory / "udhcpc.script"
    script.write_text(udhcpc_script())
    script.chmod(0o755)
    gateway.require("busybox")
    argv = udhcpc_argv(script, len(ports))
    for p in ports:
        client_record(directory, p.instance).unlink(missing_ok=True)   # a new exchange, or none
    running: dict = {}
    try:
        outputs = _run_clients(argv, list(ports), running, timeout)
    except BaseException:       # interrupted (a signal to `up`): end the clients we started
        for _, proc, _ in running.values():
            proc.kill()
            proc.wait()
        raise
    return _leases_missing(ports, outputs, directory)


def _run_clients(argv: list[str], waiting: list, running: dict, timeout: float) -> dict:
    """Each port's client, DHCP_WINDOW at a time (RUNNING: the ones running now); what each
    printed (stdout, stderr) by instance."""
    outputs: dict = {}
    deadline = time.monotonic() + budget(timeout) * max(1, math.ceil(len(waiting) / DHCP_WINDOW))
    while waiting or running:
        # at most DHCP_WINDOW clients at once: the exchanges are bound by the CPU the userspace
        # datapath forwards them with; 200 or 1,000 at once only queue longer (measured)
        while waiting and len(running) < DHCP_WINDOW:
            p = waiting.pop(0)
            with signals.held():     # in RUNNING before a signal can stop `up`: ended below
                running[p.instance] = (p, gateway.spawn(argv, netns=p.netns, entered=True), time.monotonic())
        for name, (p, proc, started) in list(running.items()):
            late = time.monotonic() > min(deadline, started + budget(timeout))
            if proc.poll() is None and not late:
                continue
            if proc.poll() is None:
                proc.kill()
            outputs[name] = proc.communicate()
            del running[name]
        if running:
            _wait_any([proc for _, proc, _ in running.values()],
                      min(min(deadline, started + budget(timeout)) for _, _, started in running.values())
                      - time.monotonic())
    return outputs


def _leases_missing(ports, outputs: dict, directory: Path) -> list[str]:
    """ "instance: why" for each port whose client got no lease or another address; the
    lease of each that got one recorded (client_record)."""
    missing = []
    for p in ports:
        out, err = outputs[p.instance]
        lease = re.search(r"lease ip=(\S+) mask=(\d+) mtu=(\S*)", out or "")
        if lease is None:
            said = (err or out or "").strip().splitlines()
            missing.append(f"{p.instance}: no lease ({said[-1] if said else 'no answer from the client'})")
        elif lease.group(1) != p.ip:
            missing.append(f"{p.instance}: leased {lease.group(1)}, expected {p.ip}")
        if lease is not None:
            record = client_record(directory, p.instance)
            record.parent.mkdir(exist_ok=True)
            record.write_text(lease.string[lease.start():].splitlines()[0] + "\n")
    return missing


def client_record(directory: Path, instance: str) -> Path:
    """What an instance's DHCP client said when it was bound (the udhcpc script's `lease ...`
    line, printed only after a DHCPACK): lab/tools/leases.py reads it."""
    return Path(directory) / "clients" / f"{instance}.lease"
