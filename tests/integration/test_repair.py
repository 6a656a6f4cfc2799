"""Faults injected into a running lab, one at a time (issue 13 §1-2): `lab status` names each
in words a person can act on and `--json` lists it, `lab up` repairs it in place, then
`lab status` is healthy and `lab check` passes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from lab.runtime import agents

from .conftest import lab, lab_up, running, test_name

NAME = test_name("classic-vlan")


@pytest.fixture(scope="module")
def state(host_before):
    with running(host_before, "classic-vlan") as labs:
        yield labs["classic-vlan"]


def in_ns(ns: str, *argv: str) -> str:
    return subprocess.run(["ip", "netns", "exec", ns, *argv], check=True, capture_output=True, text=True).stdout


def _status_names(*words: str) -> list[str]:
    out = lab("status", NAME, check=False)
    assert out.returncode == 1, out.stdout
    assert all(w in out.stdout for w in words), out.stdout
    doc = json.loads(lab("status", NAME, "--json", check=False).stdout)
    problems = doc["problems"]
    assert any(all(w in p for w in words) for p in problems), problems
    assert problems == [f["text"] for f in doc["faults"]], doc["faults"]     # every problem is a fault
    return problems


def _repair_and_check(*words: str) -> None:
    out = lab_up("classic-vlan")
    assert "repaired" in out.stdout and all(w in out.stdout for w in words), out.stdout
    assert lab("status", NAME).returncode == 0
    checks = lab("check", NAME, check=False, timeout=300)
    assert checks.returncode == 0, checks.stdout


def test_iptables_flushed_in_a_compute_node(state):
    node = state.plan.node("compute1")
    in_ns(node.netns, "iptables", "-F")
    _status_names("compute1", "iptables rules differ", "missing", f"lab up {NAME}")
    _repair_and_check("compute1", "iptables")
    assert "neutron-openvswi-FORWARD" in in_ns(node.netns, "iptables-save")


def test_router_nat_rules_flushed(state):
    router = state.plan.router_instances[0]
    in_ns(router.netns, "iptables", "-t", "nat", "-F")
    _status_names(f"router {router.name}", "iptables rules differ")
    _repair_and_check(f"router {router.name}")


def test_instance_eth0_set_down(state):
    vm = next(p for p in state.plan.ports if p.address == "dhcp")
    in_ns(vm.netns, "ip", "link", "set", "eth0", "down")
    _status_names(f"instance {vm.instance}", "eth0 is down")
    _repair_and_check(vm.instance)
    assert "default via" in in_ns(vm.netns, "ip", "route")


def test_instance_lost_its_address(state):
    vm = next(p for p in state.plan.ports if p.address == "dhcp")
    in_ns(vm.netns, "ip", "addr", "flush", "dev", "eth0")
    _status_names(f"instance {vm.instance}", f"lacks its address {vm.ip}")
    _repair_and_check(vm.instance)     # a real DHCP client asked dnsmasq again


def test_dnsmasq_killed_keeps_its_leases(state):
    d = state.plan.dhcp_servers[0]
    leases = Path(d.dir, "leases")
    before = leases.read_text()
    assert before.strip(), "dnsmasq handed out no lease"
    os.kill(agents.dnsmasq_pid(d), signal.SIGKILL)
    _status_names(f"dnsmasq of {d.name} is not running")
    _repair_and_check(f"dnsmasq of {d.name}")
    assert leases.read_text() == before
    # the kept file still agrees with what each client was acked (expiry = bound + lease time)
    vm = next(state.plan.port(c.source) for c in state.scenario().checks
              if c.proto == "lease" and state.plan.port(c.source).network == d.network)
    result = _lease_check(state, vm.instance)
    assert result.passed and "DHCPACK from" in result.evidence[0], result.evidence
    assert "= bound + 86400 s" in result.evidence[2], result.evidence


def test_a_router_gateway_port_deleted(state):
    """Deleting qg- deletes its veth pair (the tap on br-int too), its addresses, the
    floating IP and the default route: `up` makes the pair again and puts back the rest."""
    r = _router(state)
    in_ns(r.netns, "ip", "link", "del", r.gateway.ns_dev)
    _status_names(f"router {r.name}: {r.gateway.ns_dev} is missing", "makes its veth pair again")
    _repair_and_check(f"router {r.name}")
    assert r.floating_ips[0].address in in_ns(r.netns, "ip", "-4", "addr", "show", r.gateway.ns_dev)


def _lease_check(state, instance: str):
    from lab.tools import checks
    c = next(c for c in state.scenario().checks if c.proto == "lease" and c.source == instance)
    return checks.run_check(state.plan, c)


def test_the_lease_check_can_fail(state):
    """A lease gone from dnsmasq's file, or an instance whose client never reported a DHCPACK
    (its address put back by hand), fails the check; put back, it passes."""
    vm = state.plan.port("vm1")
    d = next(d for d in state.plan.dhcp_servers if d.network == vm.network)
    leases = Path(d.dir, "leases")
    record = Path(state.directory, "clients", "vm1.lease")
    before, acked = leases.read_text(), record.read_text()
    try:
        leases.write_text("".join(line for line in before.splitlines(True) if vm.mac not in line))
        result = _lease_check(state, "vm1")
        assert not result.passed and f"has no lease for {vm.mac}" in "\n".join(result.evidence), result.evidence
        leases.write_text(before)
        record.unlink()
        in_ns(vm.netns, "ip", "addr", "flush", "dev", "eth0")
        in_ns(vm.netns, "ip", "addr", "add", f"{vm.ip}/{vm.prefixlen}", "dev", "eth0")
        result = _lease_check(state, "vm1")
        assert not result.passed and "never reported a DHCPACK" in result.evidence[0], result.evidence
        assert result.evidence[1].startswith("ok")     # the address alone does not pass it
    finally:
        leases.write_text(before)
        record.write_text(acked)
    assert _lease_check(state, "vm1").passed
    _repair_and_check("instance vm1")     # the routes flushed with the address come back


@pytest.mark.parametrize("daemon, node", [("ovs-vswitchd", "compute1"), ("ovsdb-server", "network1")])
def test_an_ovs_daemon_killed(state, daemon, node):
    rundir = state.plan.node(node).rundir
    pid = int(Path(rundir, f"{daemon}.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    _status_names(f"{daemon} of {node} is not running", f"lab up {NAME}")
    _repair_and_check(f"{daemon} of {node}")
    assert int(Path(rundir, f"{daemon}.pid").read_text()) != pid
    assert not Path(rundir, f"{daemon}.{pid}.ctl").exists()


def test_ovs_restarted_is_seen_by_its_canary_flow(state):
    """What the OVS agent sees after Open vSwitch restarts: br-int table 23 without its canary."""
    node = state.plan.node("compute2")
    subprocess.run(["ovs-ofctl", "del-flows", "br-int"], check=True, env={**os.environ, "OVS_RUNDIR": node.rundir})
    _status_names("compute2: Open vSwitch was restarted", "canary flow in br-int table 23")
    _repair_and_check("compute2")


def _router(state):
    return state.plan.router_instances[0]


def _qr(state):
    return next(p for p in _router(state).ports if p.device_owner == "network:router_interface")


def _break_router_address(state):
    r, qr = _router(state), _qr(state)
    in_ns(r.netns, "ip", "addr", "del", f"{qr.ip}/{qr.prefixlen}", "dev", qr.ns_dev)
    return f"router {r.name}", f"{qr.ns_dev} lacks its address {qr.ip}/{qr.prefixlen}"


def _break_router_route(state):
    r = _router(state)
    in_ns(r.netns, "ip", "route", "del", "default")
    return f"router {r.name}", f"no default route via {r.external_gateway_ip} on {r.gateway.ns_dev}"


def _break_router_gateway_link(state):
    r = _router(state)
    in_ns(r.netns, "ip", "link", "set", r.gateway.ns_dev, "down")
    return f"router {r.name}", f"{r.gateway.ns_dev} is down"


def _break_router_sysctl(state):
    r = _router(state)
    in_ns(r.netns, "sysctl", "-qw", "net.ipv4.ip_forward=0")
    return f"router {r.name}", "sysctl net.ipv4.ip_forward is 0, expected 1"


def _break_dhcp_port_link(state):
    d = state.plan.dhcp_servers[0]
    in_ns(d.netns, "ip", "link", "set", d.port.ns_dev, "down")
    return f"DHCP server {d.name}", f"{d.port.ns_dev} is down"


def _break_node_nic(state):
    node = state.plan.node("compute1")
    in_ns(node.netns, "ip", "link", "set", node.nics[0], "down")
    return "compute1", f"{node.nics[0]} is down"


def _break_wire_port(state):
    wire = state.plan.wires[0]
    member = wire.members[-1]
    in_ns(wire.netns, "ip", "link", "set", member.wire_ifname, "down")
    return f"wire {wire.name}", f"{member.wire_ifname} is down"


def _break_instance_metadata_route(state):
    vm = state.plan.port("vm1")
    in_ns(vm.netns, "ip", "route", "del", "169.254.169.254/32")
    return "instance vm1", "no route to 169.254.169.254/32 via"


def _break_flow_table(state):
    node = state.plan.node("compute1")
    subprocess.run(["ovs-ofctl", "del-flows", "br-int", "table=60"], check=True,
                   env={**os.environ, "OVS_RUNDIR": node.rundir})
    return "compute1", "br-int table 60 has 0 of the lab's"


def _break_foreign_flow(state):
    node = state.plan.node("compute2")
    subprocess.run(["ovs-ofctl", "add-flow", "br-int", "table=0,priority=100,ip,nw_dst=192.168.1.12,actions=drop"],
                   check=True, env={**os.environ, "OVS_RUNDIR": node.rundir})
    return "compute2", "br-int table 0 has 1 flow(s) the lab did not install"


@pytest.mark.parametrize("inject", [_break_foreign_flow, _break_router_address, _break_router_route, _break_router_gateway_link,
                                    _break_router_sysctl, _break_dhcp_port_link, _break_node_nic,
                                    _break_wire_port, _break_instance_metadata_route, _break_flow_table],
                         ids=lambda f: f.__name__[len("_break_"):])
def test_kernel_and_flow_faults(state, inject):
    """What the plan says each namespace holds (lab/core/expect.py) and each bridge table's
    flows: one fault of each kind, named by `status` (and in `--json` faults), put back by `up`."""
    who, words = inject(state)
    problems = _status_names(who, words)
    faults = json.loads(lab("status", NAME, "--json", check=False).stdout)["faults"]
    assert any(words in f["text"] for f in faults), faults
    assert len(problems) == 1, problems       # one fault, not the ones it explains
    _repair_and_check(who)


def test_an_instance_namespace_deleted(state):
    """The instance comes back: namespace, plug, and a DHCP lease obtained again."""
    vm = next(p for p in state.plan.ports if p.address == "dhcp")
    subprocess.run(["ip", "netns", "delete", vm.netns], check=True)
    _status_names(f"namespace {vm.netns} is missing", f"lab up {NAME}` rebuilds it")
    _repair_and_check(vm.netns)
    assert vm.ip in in_ns(vm.netns, "ip", "-4", "addr", "show", "eth0")


def test_a_wire_namespace_deleted(state):
    """The physical network comes back and every node's NIC is attached to it again."""
    wire = state.plan.wires[0]
    subprocess.run(["ip", "netns", "delete", wire.netns], check=True)
    _status_names(f"namespace {wire.netns} is missing", "rebuilds it")
    _repair_and_check(wire.netns)


def test_a_node_namespace_deleted_asks_for_down_and_up(state):
    """What cannot be repaired in place is refused with the reason, and nothing else is touched."""
    node = state.plan.node("compute2")
    subprocess.run(["ip", "netns", "delete", node.netns], check=True)
    _status_names(f"namespace {node.netns} is missing", f"lab down {NAME}")
    out = lab_up("classic-vlan", check=False)
    assert out.returncode == 1 and "cannot be rebuilt in place" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    # the module's lab is now beyond repair: take it down and up again for nothing else follows
    lab("down", NAME)
    lab_up("classic-vlan")
    assert lab("status", NAME).returncode == 0
