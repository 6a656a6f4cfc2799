"""The physical floor of a lab (bench_scale.py): the lab's own kernel objects and OVS rows,
made the cheapest way there is, with no Python per object while the clock runs.

From the lab's plan and renders (computed before timing) this writes a directory of
``ip -batch`` files and one shell script. The script makes every namespace with one
``ip -batch`` (``netns add``), each wire and each node with one ``ip -n NS -batch`` (bridges,
veths straight into their namespaces, addresses), each instance/router/DHCP namespace with
one ``ip -n NS -batch``, starts each node's ovsdb-server + ovs-vswitchd, applies the node's
OVSDB transaction with one ``ovs-vsctl``, one ``ovs-ofctl --bundle replace-flows`` per bridge,
one ``iptables-restore`` per namespace with rules, starts dnsmasq, and runs the same DHCP
clients as `lab up` (busybox udhcpc, with its options), nodes in parallel. The lab's
per-namespace sysctls take one `sysctl` process per namespace (no batch tool writes them; left
out, every veth's IPv6 chatter floods the tunnels). The veths' TX checksum offload (an ioctl
each in the lab) is left out but on the DHCP packets' senders (instances' eth0, dnsmasq's
port: one `ethtool` each), without which no client gets a lease: the userspace datapath never
completes a checksum left to the offload. So the floor is a little lower than what the lab
has to do.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from lab.core.plan import Plan
from lab.core.render import NodeRender, udhcpc_script
from lab.runtime import ovs
from lab.runtime import netns
from lab.runtime.agents import DHCP_WINDOW, udhcpc_argv


def _veth(name: str, peer: str, peer_ns: str | None, *, mtu: int | None = None, master: str | None = None,
          mac: str | None = None, peer_mac: str | None = None, up: bool = True) -> str:
    line = f"link add {name}"
    if mtu:
        line += f" mtu {mtu}"
    if mac:
        line += f" address {mac}"
    if master:
        line += f" master {master}"
    if up:
        line += " up"
    line += f" type veth peer name {peer}"
    if mtu:
        line += f" mtu {mtu}"
    if peer_mac:
        line += f" address {peer_mac}"
    if peer_ns:
        line += f" netns {peer_ns}"
    return line


def _bridge(name: str, mtu: int | None = None) -> str:
    return f"link add {name}" + (f" mtu {mtu}" if mtu else "") + " up type bridge stp_state 0 forward_delay 0"


def _node_lines(plan: Plan, node) -> list[str]:
    lines = ["link set lo up"] + [f"link set {nic} up" for nic in node.nics]
    for p in node.ports:
        mac = "fe" + p.mac[2:]
        if p.plug.driver == "iptables_hybrid":
            tap, qbr, qvb, qvo = (p.plug.device(r) for r in ("tap", "qbr", "qvb", "qvo"))
            lines += [_bridge(qbr, p.mtu),
                      _veth(tap, "eth0", p.netns, mtu=p.mtu, master=qbr, mac=mac, peer_mac=p.mac),
                      _veth(qvb, qvo, None, mtu=p.mtu, master=qbr), f"link set {qvo} up"]
        else:
            lines.append(_veth(p.plug.device("tap"), "eth0", p.netns, mtu=p.mtu, mac=mac, peer_mac=p.mac))
    owned = [(r.netns, r.ports) for r in plan.routers_on(node.name)] + \
        [(d.netns, (d.port,)) for d in node.dhcp_servers]
    for ns, ports in owned:
        lines += [_veth(q.ovs_dev, q.ns_dev, ns, mtu=q.mtu, peer_mac=q.mac) for q in ports]
    return lines


def _instance_lines(p) -> list[str]:
    lines = ["link set lo up", "link set eth0 up"]
    if p.address == "static":
        lines += [f"addr add {p.ip}/{p.prefixlen} dev eth0",
                  f"route add default via {p.gateway} dev eth0 onlink"]
    return lines


def _router_lines(r) -> list[str]:
    lines = ["link set lo up"]
    for q in r.ports:
        lines += [f"addr add {q.ip}/{q.prefixlen} dev {q.ns_dev}", f"link set {q.ns_dev} up"]
    if r.gateway:
        lines += [f"addr add {f.address}/32 dev {r.gateway.ns_dev}" for f in r.floating_ips]
        if r.external_gateway_ip:
            lines.append(f"route add default via {r.external_gateway_ip} dev {r.gateway.ns_dev} onlink")
    return lines


def write(plan: Plan, renders: dict[str, NodeRender], out: Path) -> Path:
    """Write the floor's batch files and script for PLAN under OUT; return the script."""
    out.mkdir(parents=True, exist_ok=True)
    q = shlex.quote
    files: dict[str, list[str]] = {"netns": [f"netns add {ns}" for ns in plan.namespaces()]}
    sh = ["#!/bin/bash", "set -e", f"cd {q(str(out))}", "ip -batch netns.batch"]
    # the lab's sysctls, before any link exists: IPv6 off everywhere (or every veth's router
    # solicitations and MLD reports flood the tunnels), bridged iptables in hybrid nodes
    (out / "sysctl.list").write_text("".join(f"{netns.path(ns)}\n" for ns in plan.namespaces()))
    (out / "nodes.list").write_text("".join(f"{netns.path(n.netns)}\n" for n in plan.nodes))
    sh.append("xargs -P 2 -I NS nsenter --net=NS sysctl -q -e -w net.ipv6.conf.default.disable_ipv6=1 "
              "net.ipv6.conf.all.disable_ipv6=1 < sysctl.list")
    sh.append("xargs -P 2 -I NS nsenter --net=NS sysctl -q -e -w net.bridge.bridge-nf-call-iptables=1 "
              "net.bridge.bridge-nf-call-ip6tables=1 < nodes.list")
    for w in plan.wires:
        macs = {h.name: h.mac for h in plan.external_hosts}
        files[f"wire-{w.name}"] = ["link set lo up", _bridge(w.bridge)] + [
            _veth(m.wire_ifname, m.peer_ifname, m.peer_netns, master=w.bridge, peer_mac=macs.get(m.name), up=True)
            for m in w.members]
        sh.append(f"ip -n {w.netns} -batch wire-{w.name}.batch")
    sh.append("node_up() {")
    sh.append('  local ns=$1 run=$2 name=$3')
    sh.append('  mkdir -p $run; ovsdb-tool create $run/conf.db ' + q(ovs.schema_path()))
    sh.append('  export OVS_RUNDIR=$run OVS_DBDIR=$run OVS_LOGDIR=$run')
    sh.append('  ip netns exec $ns ovsdb-server $run/conf.db --remote=punix:$run/db.sock '
              '--pidfile=$run/ovsdb-server.pid --log-file=$run/ovsdb-server.log --detach --no-chdir')
    # the firewall before the ports (iptables-restore's getaddrinfo per port number dumps every
    # address of the namespace), the links before ovs-vswitchd (it re-reads them all per change)
    sh.append('  if [ -s node-$name.ipset ]; then ip netns exec $ns ipset restore -exist -file node-$name.ipset; fi')
    sh.append('  if [ -s node-$name.iptables ]; then ip netns exec $ns iptables-restore -w 5 node-$name.iptables; fi')
    sh.append('  ip -n $ns -batch node-$name.batch')
    sh.append('  ip netns exec $ns ovs-vswitchd unix:$run/db.sock --pidfile=$run/ovs-vswitchd.pid '
              f'--log-file=$run/ovs-vswitchd.log --detach --no-chdir {"--disable-system" if plan.datapath == "netdev" else ""}')
    sh.append('  . ./node-$name.vsctl')
    sh.append('  if [ -s node-$name.tunnel ]; then ip -n $ns -batch node-$name.tunnel; fi')
    sh.append('  for f in node-$name.*.flows; do b=${f#node-$name.}; '
              'ovs-ofctl -O OpenFlow14 --bundle replace-flows ${b%.flows} $f; done')
    sh.append("}")
    for node in plan.nodes:
        render = renders[node.name]
        files[f"node-{node.name}"] = _node_lines(plan, node)
        (out / f"node-{node.name}.vsctl").write_text(
            "ovs-vsctl --db=unix:$run/db.sock --timeout=20 " + " ".join(q(a) for a in render.ovsdb) + "\n")
        for bridge, text in render.flows.items():
            (out / f"node-{node.name}.{bridge}.flows").write_text(text)
        (out / f"node-{node.name}.iptables").write_text(render.iptables or "")
        (out / f"node-{node.name}.ipset").write_text(render.ipset or "")
        t = node.tunnel
        (out / f"node-{node.name}.tunnel").write_text(
            f"addr add {t.local_ip}/{t.prefixlen} dev {t.bridge or t.nic}\nlink set {t.bridge or t.nic} up\n" if t else "")
        sh.append(f"node_up {node.netns} {q(str(out / 'run' / node.name))} {node.name} & pids+=($!)")
    for p in plan.ports:
        files[f"ns-{p.instance}"] = _instance_lines(p)
    for r in plan.router_instances:
        files[f"ns-{r.name}"] = _router_lines(r)
    for d in plan.dhcp_servers:
        files[f"ns-{d.name}"] = ["link set lo up", f"addr add {d.port.ip}/{d.port.prefixlen} dev {d.port.ns_dev}",
                                 f"link set {d.port.ns_dev} up"]
    for h in plan.external_hosts:
        files[f"ns-{h.name}"] = ["link set lo up", f"addr add {h.ip}/{h.prefixlen} dev eth0", "link set eth0 up"]
    sh.append('for p in "${pids[@]}"; do wait $p; done    # set -e: a node that failed fails the floor')
    names = {**{f"ns-{p.instance}": p.netns for p in plan.ports},
             **{f"ns-{r.name}": r.netns for r in plan.router_instances},
             **{f"ns-{d.name}": d.netns for d in plan.dhcp_servers},
             **{f"ns-{h.name}": h.netns for h in plan.external_hosts}}
    (out / "namespaces.list").write_text("".join(f"{ns} {f}.batch\n" for f, ns in names.items()))
    sh.append("xargs -P 2 -L 1 sh -c 'ip -n $0 -batch $1' < namespaces.list")
    sh += _agents(plan, renders, out)
    sh += _dhcp_clients(plan, out)
    for name, lines in files.items():
        (out / f"{name}.batch").write_text("\n".join(lines) + "\n")
    script = out / "floor.sh"
    script.write_text("\n".join(sh) + "\n")
    return script


def _agents(plan: Plan, renders: dict[str, NodeRender], out: Path) -> list[str]:
    sh = []
    for r in plan.router_instances:
        (out / f"router-{r.name}.iptables").write_text(renders[r.node].routers[r.name])
        sh.append(f"ip netns exec {r.netns} iptables-restore -w 5 router-{r.name}.iptables")
    for d in plan.dhcp_servers:
        # dnsmasq's argv names files under the lab's state directory: written there
        directory = Path(d.dir)
        sh.append(f"mkdir -p {shlex.quote(str(directory))}")
        for name, text in renders[d.node].dhcp[d.name].files.items():
            (out / f"dhcp-{d.name}.{name}").write_text(text)
            sh.append(f"cp dhcp-{d.name}.{name} {shlex.quote(str(directory / name))}")
        sh.append(f"ip netns exec {d.netns} " + " ".join(shlex.quote(a) for a in renders[d.node].dhcp[d.name].argv))
    return sh


LEASES = "leases.out"      # the clients' `lease ...` lines: bench_scale counts them


def leases(out: Path) -> int:
    """How many DHCP clients of the floor's run got a lease."""
    path = out / LEASES
    return path.read_text().count("lease ip=") if path.exists() else 0


def _dhcp_clients(plan: Plan, out: Path) -> list[str]:
    ports = [p for p in plan.ports if p.address == "dhcp"]
    if not ports:
        return []
    script = out / "udhcpc.script"
    script.write_text(udhcpc_script())
    script.chmod(0o755)
    (out / "dhcp.list").write_text("".join(f"{netns.path(p.netns)}\n" for p in ports))
    # the DHCP packets' senders must not leave checksums to an offload that the userspace
    # datapath never completes (dnsmasq and udhcpc drop them): one ethtool each, as lab up's ioctl
    senders = [(p.netns, "eth0") for p in ports] + [(d.netns, d.port.ns_dev) for d in plan.dhcp_servers]
    (out / "offload.list").write_text("".join(f"{netns.path(ns)} {dev}\n" for ns, dev in senders))
    offload = "xargs -P 2 -L 1 sh -c 'nsenter --net=$0 ethtool -K $1 tx off' < offload.list > /dev/null"
    # the client lab up runs, with its options (broadcast replies at scale), as many at once
    # (agents.DHCP_WINDOW), each entered into its namespace by nsenter (no mount namespace)
    argv = " ".join(shlex.quote(a) for a in udhcpc_argv(script, len(ports)))
    return [offload, f"xargs -P {DHCP_WINDOW} -I NS nsenter --net=NS {argv} < dhcp.list > {shlex.quote(str(out / LEASES))}"]


