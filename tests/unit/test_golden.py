"""Golden files: what `lab up` would program on each node, what `lab show` prints, and how
scenario errors read. Any change to them is a visible diff in tests/golden/.

Regenerate after an intended change, then review the diff:

    UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/unit/test_golden.py

Layout:
    tests/golden/<scenario>/show.txt                describe(plan)
    tests/golden/<scenario>/<node>/ovsdb.txt        the node's ovs-vsctl transaction, one command a line
    tests/golden/<scenario>/<node>/<bridge>.flows   ovs-ofctl replace-flows input, per bridge
    tests/golden/<scenario>/<node>/iptables.rules   iptables-restore input (security groups)
    tests/golden/<scenario>/<node>/router-<name>.rules
                                                    iptables-restore input of the router's
                                                    qrouter- namespace (l3 agent NAT chains)
    tests/golden/<scenario>/<node>/dhcp-<name>/{host,opts,addn_hosts}
                                                    the dnsmasq files of a DHCP server
    tests/golden/<scenario>/<node>/dhcp-<name>/argv.txt
                                                    its dnsmasq command, one argument a line
    tests/golden/errors/<case>.yaml                 a bad scenario (hand-written input)
    tests/golden/errors/<case>.txt                  str(ScenarioError) for it
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import shlex
from pathlib import Path

import pytest

from lab.errors import ScenarioError
from lab.plan import build_plan
from lab.render import describe, render_plan
from lab.scenario import find_scenario, load_scenario, parse_scenario

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
REGENERATE = "UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/unit/test_golden.py"

SCENARIOS = ["classic-vlan"]


def check_golden(path: Path, actual: str) -> None:
    """Compare ``actual`` with the golden file, or (UPDATE_GOLDEN=1) write it."""
    rel = path.relative_to(GOLDEN.parent.parent)
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.is_file() or path.read_text() != actual:
            path.write_text(actual)
        return
    if not path.is_file():
        pytest.fail(f"golden file {rel} is missing; generate it with: {REGENERATE}", pytrace=False)
    expected = path.read_text()
    if actual != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(keepends=True),
                                            actual.splitlines(keepends=True),
                                            fromfile=f"{rel} (golden)", tofile=f"{rel} (now)"))
        pytest.fail(f"{rel} differs from what is rendered now; if the change is intended, "
                    f"regenerate with: {REGENERATE}\n{diff}", pytrace=False)


# --------------------------------------------------------------------------- rendered lab

def scenario_for_golden(name: str):
    """The built-in scenario with its source made relative, so no absolute path leaks."""
    scenario = load_scenario(name)
    return dataclasses.replace(scenario, source=f"scenarios/{find_scenario(name).name}")


def ovsdb_text(args: tuple[str, ...]) -> str:
    """One ovs-vsctl command a line (the transaction separates them with a bare "--")."""
    commands: list[list[str]] = [[]]
    for arg in args:
        if arg == "--":
            commands.append([])
        else:
            commands[-1].append(arg)
    return "".join(shlex.join(c) + "\n" for c in commands)


def rendered_files(name: str) -> dict[str, str]:
    """Relative golden path -> content, for every file of a scenario."""
    plan = build_plan(scenario_for_golden(name))
    files = {f"{name}/show.txt": describe(plan)}
    for node, r in render_plan(plan).items():
        files[f"{name}/{node}/ovsdb.txt"] = ovsdb_text(r.ovsdb)
        for bridge, text in r.flows.items():
            files[f"{name}/{node}/{bridge}.flows"] = text
        files[f"{name}/{node}/iptables.rules"] = r.iptables
        for router, text in r.routers.items():
            files[f"{name}/{node}/router-{router}.rules"] = text
        for server, d in r.dhcp.items():
            for fname in DHCP_GOLDEN_FILES:
                files[f"{name}/{node}/dhcp-{server}/{fname}"] = d.files[fname]
            files[f"{name}/{node}/dhcp-{server}/argv.txt"] = "".join(f"{a}\n" for a in d.argv)
    return files


# the files dnsmasq reads; "leases" is its own (written empty, see test_dhcp_files_are_pinned)
DHCP_GOLDEN_FILES = ("host", "opts", "addn_hosts")


RENDERED = {path: text for name in SCENARIOS for path, text in rendered_files(name).items()}


@pytest.mark.parametrize("path", sorted(RENDERED))
def test_rendered_golden(path):
    check_golden(GOLDEN / path, RENDERED[path])


@pytest.mark.parametrize("name", SCENARIOS)
def test_no_stale_golden_files(name):
    """Every file under tests/golden/<scenario>/ is still produced (a node or bridge that went
    away must take its golden file with it)."""
    present = {str(p.relative_to(GOLDEN)) for p in (GOLDEN / name).rglob("*") if p.is_file()}
    expected = {p for p in RENDERED if p.startswith(f"{name}/")}
    stale = present - expected
    if UPDATE:
        for p in stale:
            (GOLDEN / p).unlink()
        return
    assert not stale, f"stale golden files {sorted(stale)}; remove them or run: {REGENERATE}"


def test_every_router_and_dhcp_server_has_golden_files():
    plan = build_plan(scenario_for_golden("classic-vlan"))
    for r in plan.routers:
        assert f"classic-vlan/{r.node}/router-{r.name}.rules" in RENDERED
    for d in plan.dhcp_servers:
        for fname in DHCP_GOLDEN_FILES + ("argv.txt",):
            assert f"classic-vlan/{d.node}/dhcp-{d.name}/{fname}" in RENDERED
    assert len([p for p in RENDERED if "/router-" in p]) == len(plan.routers) == 1
    assert len([p for p in RENDERED if p.endswith("/argv.txt")]) == len(plan.dhcp_servers) == 3


def test_dhcp_files_are_pinned():
    """Every file the DHCP server gets is in the golden set, except the (empty) lease file."""
    plan = build_plan(scenario_for_golden("classic-vlan"))
    for node, r in render_plan(plan).items():
        for server, d in r.dhcp.items():
            assert set(d.files) == set(DHCP_GOLDEN_FILES) | {"leases"}, server
            assert d.files["leases"] == "", server


def test_golden_text_is_deterministic():
    assert rendered_files("classic-vlan") == rendered_files("classic-vlan")


def test_no_absolute_paths_leak():
    for path, text in RENDERED.items():
        assert "/work/" not in text and str(GOLDEN.parent.parent) not in text, path


# --------------------------------------------------------------------------- error messages

ERROR_CASES = sorted(p.stem for p in (GOLDEN / "errors").glob("*.yaml"))


def test_error_cases_exist():
    assert len(ERROR_CASES) >= 3, "tests/golden/errors/ should hold at least three bad scenarios"


@pytest.mark.parametrize("case", ERROR_CASES)
def test_error_golden(case):
    source = GOLDEN / "errors" / f"{case}.yaml"
    with pytest.raises(ScenarioError) as info:
        parse_scenario(source.read_text(), f"{case}.yaml", default_name=case)
    text = str(info.value) + "\n"
    assert all(p.file == f"{case}.yaml" for p in info.value.problems)
    check_golden(GOLDEN / "errors" / f"{case}.txt", text)


def test_no_orphan_error_goldens():
    """Every errors/<case>.txt still has its errors/<case>.yaml."""
    orphans = sorted(p.name for p in (GOLDEN / "errors").glob("*.txt") if p.stem not in ERROR_CASES)
    if UPDATE:
        for name in orphans:
            (GOLDEN / "errors" / name).unlink()
        return
    assert not orphans, f"golden files without a scenario: {orphans}; remove them or run: {REGENERATE}"


# --------------------------------------------------------------------------- what the golden files must say

L3 = "neutron-l3-agent"


def golden_plan():
    return build_plan(scenario_for_golden("classic-vlan"))


def test_router_rules_nat_floating_ip_and_snat():
    """Independent of the golden file: the NAT chains that make the floating IP and SNAT work."""
    r = golden_plan().router("router1")
    qg = r.gateway.ns_dev
    lines = RENDERED["classic-vlan/network1/router-router1.rules"].splitlines()
    assert [x for x in lines if x.startswith("*")] == ["*raw", "*mangle", "*nat", "*filter"]
    assert lines.count("COMMIT") == 4
    nat = lines[lines.index("*nat"):lines.index("*filter")]
    for rule in (f"-A {L3}-PREROUTING -d 203.0.113.102/32 -j DNAT --to-destination 192.168.1.11",
                 f"-A {L3}-OUTPUT -d 203.0.113.102/32 -j DNAT --to-destination 192.168.1.11",
                 f"-A {L3}-float-snat -s 192.168.1.11/32 -j SNAT --to-source 203.0.113.102 --random-fully",
                 f"-A {L3}-snat -j {L3}-float-snat",
                 f"-A {L3}-snat -o {qg} -j SNAT --to-source 203.0.113.101 --random-fully",
                 f"-A neutron-postrouting-bottom -m comment --comment \"Perform source NAT on outgoing "
                 f"traffic.\" -j {L3}-snat"):
        assert rule in nat, rule
    # floating IP SNAT comes before the router-wide SNAT
    assert nat.index(f"-A {L3}-snat -j {L3}-float-snat") < nat.index(
        f"-A {L3}-snat -o {qg} -j SNAT --to-source 203.0.113.101 --random-fully")
    assert f"-A {L3}-mark -i {qg} -j MARK --set-xmark 0x2/0xffff" in lines
    assert qg.startswith("qg-") and len(qg) == 14


def test_router_without_gateway_has_no_nat():
    from lab.render import router_rules
    plan = golden_plan()
    bare = dataclasses.replace(plan.router("router1"), gateway=None, external_gateway_ip=None, floating_ips=())
    text = router_rules(plan, bare)
    assert "SNAT" not in text and "DNAT" not in text and "MARK --set-xmark" not in text
    assert [x for x in text.splitlines() if x.startswith("*")] == ["*raw", "*mangle", "*nat", "*filter"]


def test_dnsmasq_files_and_argv():
    plan = golden_plan()
    net1 = next(d for d in plan.dhcp_servers if d.name == "net1-dhcp")
    host = RENDERED["classic-vlan/network1/dhcp-net1-dhcp/host"].splitlines()
    assert f"{plan.port('vm1').mac},host-192-168-1-11.openstacklocal,192.168.1.11" in host
    assert len(host) == len(net1.hosts) == 4
    opts = RENDERED["classic-vlan/network1/dhcp-net1-dhcp/opts"].splitlines()
    assert opts == [f"tag:subnet-{net1.subnet_id},option:router,192.168.1.1",
                    f"tag:subnet-{net1.subnet_id},option:dns-server,192.168.1.2"]
    # the subnet's gateway is the router option even where no router serves it (dhcp agent)
    alt = next(d for d in plan.dhcp_servers if d.name == "alt-net-dhcp")
    assert RENDERED["classic-vlan/network1/dhcp-alt-net-dhcp/opts"].splitlines()[0] == \
        f"tag:subnet-{alt.subnet_id},option:router,192.168.1.1"
    argv = RENDERED["classic-vlan/network1/dhcp-net1-dhcp/argv.txt"].splitlines()
    assert argv[0] == "dnsmasq"
    for arg in ("--dhcp-option-force=option:mtu,1500", f"--interface={net1.port.ns_dev}",
                f"--dhcp-hostsfile={net1.dir}/host", f"--dhcp-optsfile={net1.dir}/opts",
                f"--addn-hosts={net1.dir}/addn_hosts", f"--dhcp-leasefile={net1.dir}/leases",
                f"--dhcp-range=set:subnet-{net1.subnet_id},192.168.1.0,static,255.255.255.0,86400s"):
        assert arg in argv, arg
    assert net1.dir.startswith("/run/neutron-lab/classic-vlan/dhcp/")
    paths = [a.split("=", 1)[1] for a in argv if "=/" in a]
    assert len(paths) == 7 and all(x.startswith(net1.dir + "/") or x == "/dev/null" for x in paths), paths


def test_security_group_rules_in_iptables():
    text = RENDERED["classic-vlan/compute1/iptables.rules"].splitlines()
    vm1 = golden_plan().port("vm1")
    chain = f"neutron-openvswi-i{vm1.port_id[:10]}"
    for rule in (f"-A {chain} -p icmp -j RETURN", f"-A {chain} -p tcp -m tcp --dport 5001 -j RETURN",
                 f"-A {chain} -s 192.168.2.11/32 -j RETURN"):
        assert rule in text, rule
    vm4 = golden_plan().port("vm4")
    chain4 = f"neutron-openvswi-i{vm4.port_id[:10]}"
    rules4 = [x for x in RENDERED["classic-vlan/compute2/iptables.rules"].splitlines() if x.startswith(f"-A {chain4} ")]
    assert not any(" -s " in x for x in rules4)     # no group: nothing let in but DHCP replies


def test_udhcpc_script():
    from lab.render import udhcpc_script
    text = udhcpc_script()
    assert text.startswith("#!/bin/sh\n")
    assert 'ip link set "$interface" mtu "$mtu"' in text
    assert "echo \"lease ip=$ip" in text
