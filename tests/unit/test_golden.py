"""Golden files: what `lab up` would program on each node, what `lab show` prints, and how
scenario errors read. Any change to them is a visible diff in tests/golden/.

Regenerate after an intended change, then review the diff:

    UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/unit/test_golden.py

Layout:
    tests/golden/<scenario>/show.txt                describe(plan)
    tests/golden/<scenario>/expected.txt            what `status` expects of each namespace
                                                    (lab/core/expect.py), one field a line
    tests/golden/<scenario>/<node>/ovsdb.txt        the node's ovs-vsctl transaction, one command a line
    tests/golden/<scenario>/<node>/<bridge>.flows   ovs-ofctl replace-flows input, per bridge
    tests/golden/<scenario>/<node>/iptables.rules   iptables-restore input (security groups)
    tests/golden/<scenario>/<node>/ipset.restore    ipset restore input (remote groups' sets), if any
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
import ipaddress
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from lab.errors import ScenarioError
from lab.core import expect, naming
from lab.core.plan import build_plan
from lab.core.render import describe, render_plan
from lab.core.scenario import find_scenario, load_scenario, parse_scenario

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
REGENERATE = "UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/unit/test_golden.py"

SCENARIOS = ["classic-vlan", "classic-vxlan", "classic-gre", "dvr-vlan", "dvr-vxlan", "classic-ovsfw", "remote-groups"]


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


def expected_text(plan) -> str:
    """expect.expected(plan): each namespace, then each of its non-empty fields on a line."""
    out = []
    for e in expect.expected(plan):
        out.append(f"{e.netns} ({e.who})\n")
        out += [f"  {f.name}: {getattr(e, f.name)!r}\n" for f in dataclasses.fields(e)[2:] if getattr(e, f.name)]
    return "".join(out)


def rendered_files(name: str) -> dict[str, str]:
    """Relative golden path -> content, for every file of a scenario."""
    plan = build_plan(scenario_for_golden(name))
    files = {f"{name}/show.txt": describe(plan), f"{name}/expected.txt": expected_text(plan)}
    for node, r in render_plan(plan).items():
        files[f"{name}/{node}/ovsdb.txt"] = ovsdb_text(r.ovsdb)
        for bridge, text in r.flows.items():
            files[f"{name}/{node}/{bridge}.flows"] = text
        files[f"{name}/{node}/iptables.rules"] = r.iptables
        if r.ipset:
            files[f"{name}/{node}/ipset.restore"] = r.ipset
        for router, text in r.routers.items():
            files[f"{name}/{node}/router-{router}.rules"] = text
        for fip, text in r.fips.items():
            files[f"{name}/{node}/{fip}.rules"] = text
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


@pytest.mark.parametrize("name", SCENARIOS)
def test_every_router_and_dhcp_server_has_golden_files(name):
    plan = build_plan(scenario_for_golden(name))
    mine = [p for p in RENDERED if p.startswith(f"{name}/")]
    for r in plan.router_instances:
        assert f"{name}/{r.node}/router-{r.name}.rules" in mine
    for d in plan.dhcp_servers:
        for fname in DHCP_GOLDEN_FILES + ("argv.txt",):
            assert f"{name}/{d.node}/dhcp-{d.name}/{fname}" in mine
    assert len([p for p in mine if "/router-" in p]) == len(plan.router_instances)
    assert len([p for p in mine if p.endswith("/argv.txt")]) == len(plan.dhcp_servers)
    if name == "remote-groups":         # one network, no router: a security-group scenario
        assert (len(plan.routers), len(plan.dhcp_servers)) == (0, 1)
        return
    assert len(plan.routers) == 1 and len(plan.router_instances) == (4 if name.startswith("dvr-") else 1)   # dvr: 3 qrouter- + snat-
    assert len(plan.dhcp_servers) == (2 if name.startswith("dvr-") else 3)


@pytest.mark.parametrize("name", SCENARIOS)
def test_every_bridge_has_golden_flows(name):
    """br-int and each physical bridge everywhere; br-tun on every node of a tunnel scenario."""
    plan = build_plan(scenario_for_golden(name))
    flows = {p for p in RENDERED if p.startswith(f"{name}/") and p.endswith(".flows")}
    expected = set()
    for n in plan.nodes:
        expected.add(f"{name}/{n.name}/br-int.flows")
        expected |= {f"{name}/{n.name}/{b.bridge}.flows" for b in n.physical_bridges}
        if n.tunnel:
            expected.add(f"{name}/{n.name}/br-tun.flows")
    assert flows == expected
    tunnels = not name.endswith("-vlan") and name not in ("classic-ovsfw", "remote-groups")
    assert all((plan.node(n).tunnel is not None) == tunnels for n in ("network1", "compute1", "compute2"))
    assert len([p for p in flows if p.endswith("/br-tun.flows")]) == (3 if tunnels else 0)


@pytest.mark.parametrize("name", SCENARIOS)
def test_dhcp_files_are_pinned(name):
    """Every file the DHCP server gets is in the golden set, except the (empty) lease file."""
    plan = build_plan(scenario_for_golden(name))
    for node, r in render_plan(plan).items():
        for server, d in r.dhcp.items():
            assert set(d.files) == set(DHCP_GOLDEN_FILES) | {"leases"}, server
            assert d.files["leases"] == "", server


def test_golden_text_is_deterministic():
    """The same files whatever the hash seed (set and dict order of str keys differs between
    processes, not within one): render in two processes with different PYTHONHASHSEEDs."""
    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); import test_golden as t; "
            "print(json.dumps({n: t.rendered_files(n) for n in t.SCENARIOS}))")
    outs = [subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent)], capture_output=True, text=True,
                           check=True, env={**os.environ, "PYTHONHASHSEED": seed}).stdout for seed in ("1", "2")]
    assert json.loads(outs[0]) == json.loads(outs[1]) == {n: rendered_files(n) for n in SCENARIOS}


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
    (r,) = golden_plan().router("router1").instances
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
    from lab.core.render import router_rules
    plan = golden_plan()
    bare = dataclasses.replace(plan.router("router1").instances[0], gateway=None, external_gateway_ip=None, floating_ips=())
    text = router_rules(plan, bare)
    assert "SNAT" not in text and "DNAT" not in text and "MARK --set-xmark 0x2/" not in text
    # the metadata redirect does not need a gateway: it serves the qr- side
    assert "-i qr-+ -p tcp -m tcp --dport 80 -j REDIRECT --to-ports 9697" in text
    assert [x for x in text.splitlines() if x.startswith("*")] == ["*raw", "*mangle", "*nat", "*filter"]


def test_dnsmasq_files_and_argv():
    plan = golden_plan()
    net1 = next(d for d in plan.dhcp_servers if d.name == "net1-dhcp")
    host = RENDERED["classic-vlan/network1/dhcp-net1-dhcp/host"].splitlines()
    assert f"{plan.port('vm1').mac},host-192-168-1-11.openstacklocal,192.168.1.11" in host
    assert len(host) == len(net1.hosts) == 5
    assert any(h.endswith(",host-192-168-1-1.openstacklocal,192.168.1.1") for h in host)  # the qr- port
    opts = RENDERED["classic-vlan/network1/dhcp-net1-dhcp/opts"].splitlines()
    routes = "169.254.169.254/32,192.168.1.1,0.0.0.0/0,192.168.1.1"
    assert opts == [f"tag:subnet-{net1.subnet_id},option:classless-static-route,{routes}",
                    f"tag:subnet-{net1.subnet_id},249,{routes}",
                    f"tag:subnet-{net1.subnet_id},option:router,192.168.1.1"]   # no dns-server
    # the subnet's gateway is the router option even where no router serves it (dhcp agent)
    alt = next(d for d in plan.dhcp_servers if d.name == "alt-net-dhcp")
    routes = "169.254.169.254/32,192.168.1.2,0.0.0.0/0,192.168.1.1"    # isolated: metadata via the DHCP port
    assert RENDERED["classic-vlan/network1/dhcp-alt-net-dhcp/opts"].splitlines() == \
        [f"tag:subnet-{alt.subnet_id},option:classless-static-route,{routes}",
         f"tag:subnet-{alt.subnet_id},249,{routes}", f"tag:subnet-{alt.subnet_id},option:router,192.168.1.1"]
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
    default_set = naming.ipset_name(naming.security_group_uuid("classic-vlan", "demo", "default"))
    for rule in (f"-A {chain} -p icmp -j RETURN", f"-A {chain} -p tcp -m tcp --dport 5001 -j RETURN",
                 f"-A {chain} -m set --match-set {default_set} src -j RETURN"):
        assert rule in text, rule
    assert not any(x.startswith(f"-A {chain} -s ") for x in text)     # enable_ipset: members are in the set
    assert "add " + default_set + "-n 192.168.2.11/32" in RENDERED["classic-vlan/compute1/ipset.restore"]
    vm4 = golden_plan().port("vm4")
    chain4 = f"neutron-openvswi-i{vm4.port_id[:10]}"
    rules4 = [x for x in RENDERED["classic-vlan/compute2/iptables.rules"].splitlines() if x.startswith(f"-A {chain4} ")]
    assert not any(" -s " in x for x in rules4)     # no group: nothing let in but DHCP replies


def test_udhcpc_script():
    from lab.core.render import udhcpc_script
    text = udhcpc_script()
    assert text.startswith("#!/bin/sh\n")
    assert 'echo "link set $interface mtu $mtu"' in text and "| ip -4 -force -batch -" in text
    assert "echo \"lease ip=$ip" in text


# --------------------------------------------------------------------------- br-tun: what Neutron's OVS agent programs

def tun_flows(name: str, node: str) -> list[str]:
    """The node's br-tun flows without their cookie (checked once, in test_br_tun_cookie)."""
    lines = RENDERED[f"{name}/{node}/br-tun.flows"].splitlines()
    cookie = f"cookie={build_plan(scenario_for_golden(name)).cookie},"
    assert all(x.startswith(cookie) for x in lines), name
    return [x[len(cookie):] for x in lines]


def table(flows: list[str], n: int) -> list[str]:
    return [f for f in flows if f.startswith(f"table={n},")]


@pytest.mark.parametrize("name", ["classic-vxlan", "classic-gre"])
def test_br_tun_cookie_and_tables(name):
    for node in ("network1", "compute1", "compute2"):
        flows = tun_flows(name, node)
        tables = {int(f.split(",")[0][len("table="):]) for f in flows}
        # 21 (ARP responder) is only needed with arp_responder (classic-vxlan)
        assert {0, 2, 3, 4, 6, 10, 20, 22} <= tables <= {0, 2, 3, 4, 6, 10, 20, 21, 22}
        if name == "classic-vxlan":
            assert 21 in tables
        # every table ends in a catch-all
        assert "table=0,priority=0,actions=drop" in flows
        assert "table=6,priority=0,actions=drop" in flows
        assert "table=20,priority=0,actions=resubmit(,22)" in flows
        assert "table=22,priority=0,actions=drop" in flows


@pytest.mark.parametrize("name, ntype, table_id", [("classic-vxlan", "vxlan", 4), ("classic-gre", "gre", 3)])
def test_br_tun_table_0_from_br_int_and_from_the_tunnels(name, ntype, table_id):
    remotes = {"network1": ("c633640c", "c633640d"), "compute1": ("c633640b", "c633640d"),
               "compute2": ("c633640b", "c633640c")}
    for node, hexes in remotes.items():
        assert table(tun_flows(name, node), 0) == [
            "table=0,priority=1,in_port=patch-int,actions=resubmit(,2)",
            *(f"table=0,priority=1,in_port={ntype}-{h},actions=resubmit(,{table_id})" for h in hexes),
            "table=0,priority=0,actions=drop"]


def test_br_tun_table_2_unicast_multicast_and_arp():
    unicast = "table=2,priority=0,dl_dst=00:00:00:00:00:00/01:00:00:00:00:00,actions=resubmit(,20)"
    multicast = "table=2,priority=0,dl_dst=01:00:00:00:00:00/01:00:00:00:00:00,actions=resubmit(,22)"
    arp = "table=2,priority=1,arp,dl_dst=ff:ff:ff:ff:ff:ff,actions=resubmit(,21)"
    for node in ("network1", "compute1", "compute2"):
        assert table(tun_flows("classic-vxlan", node), 2) == [arp, unicast, multicast]
        assert table(tun_flows("classic-gre", node), 2) == [unicast, multicast]    # no ARP responder


def test_br_tun_tunnel_id_to_local_vlan():
    # classic-vxlan: VNI 1001 (0x3e9) is net1, 1002 net2, 1003 alt-net; local VLANs per node
    assert table(tun_flows("classic-vxlan", "compute1"), 4) == [
        "table=4,priority=1,tun_id=0x3e9,actions=mod_vlan_vid:1,resubmit(,10)",
        "table=4,priority=0,actions=drop"]
    assert table(tun_flows("classic-vxlan", "compute2"), 4) == [
        "table=4,priority=1,tun_id=0x3eb,actions=mod_vlan_vid:1,resubmit(,10)",
        "table=4,priority=1,tun_id=0x3e9,actions=mod_vlan_vid:2,resubmit(,10)",
        "table=4,priority=1,tun_id=0x3ea,actions=mod_vlan_vid:3,resubmit(,10)",
        "table=4,priority=0,actions=drop"]
    assert table(tun_flows("classic-vxlan", "compute1"), 3) == ["table=3,priority=0,actions=drop"]
    # classic-gre: keys 1, 2, 3 in table 3 (GRE), table 4 only drops
    assert table(tun_flows("classic-gre", "network1"), 3) == [
        "table=3,priority=1,tun_id=0x1,actions=mod_vlan_vid:1,resubmit(,10)",
        "table=3,priority=1,tun_id=0x2,actions=mod_vlan_vid:2,resubmit(,10)",
        "table=3,priority=1,tun_id=0x3,actions=mod_vlan_vid:3,resubmit(,10)",
        "table=3,priority=0,actions=drop"]
    assert table(tun_flows("classic-gre", "network1"), 4) == ["table=4,priority=0,actions=drop"]


@pytest.mark.parametrize("name", ["classic-vxlan", "classic-gre"])
def test_br_tun_table_10_learns_and_outputs_to_br_int(name):
    cookie = build_plan(scenario_for_golden(name)).cookie
    assert table(tun_flows(name, "compute1"), 10) == [
        "table=10,priority=1,actions=learn(table=20,hard_timeout=300,priority=1,"
        f"cookie={cookie},NXM_OF_VLAN_TCI[0..11],NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],"
        "load:0->NXM_OF_VLAN_TCI[],load:NXM_NX_TUN_ID[]->NXM_NX_TUN_ID[],output:OXM_OF_IN_PORT[]),"
        "output:patch-int"]


def test_br_tun_l2pop_unicast_entries():
    plan = build_plan(scenario_for_golden("classic-vxlan"))
    macs = {p.instance: p.mac for p in plan.ports}
    dhcp = {d.network: d.port.mac for d in plan.dhcp_servers}
    qr = {i.network: i.mac for i in plan.router("router1").instances[0].interfaces}
    out = "actions=strip_vlan,load:0x3e9->NXM_NX_TUN_ID[],output:"
    assert table(tun_flows("classic-vxlan", "compute1"), 20) == [
        f"table=20,priority=2,dl_vlan=1,dl_dst={dhcp['net1']},{out}vxlan-c633640b",
        f"table=20,priority=2,dl_vlan=1,dl_dst={qr['net1']},{out}vxlan-c633640b",
        f"table=20,priority=2,dl_vlan=1,dl_dst={macs['vm2']},{out}vxlan-c633640d",
        f"table=20,priority=2,dl_vlan=1,dl_dst={macs['vm4']},{out}vxlan-c633640d",
        "table=20,priority=0,actions=resubmit(,22)"]
    # remote ports only: compute1's own vm1 and vm3 never appear on compute1
    text = RENDERED["classic-vxlan/compute1/br-tun.flows"]
    assert macs["vm1"] not in text and macs["vm3"] not in text
    # without l2_population nothing but the learned flows (made at run time) and the default
    for node in ("network1", "compute1", "compute2"):
        assert table(tun_flows("classic-gre", node), 20) == ["table=20,priority=0,actions=resubmit(,22)"]


def arp_flow(vlan: int, ip: str, mac: str) -> str:
    return (f"table=21,priority=1,arp,dl_vlan={vlan},arp_tpa={ip},actions=move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],"
            f"mod_dl_src:{mac},load:0x2->NXM_OF_ARP_OP[],move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[],"
            f"move:NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[],load:0x{mac.replace(':', '')}->NXM_NX_ARP_SHA[],"
            f"load:{int(ipaddress.IPv4Address(ip)):#x}->NXM_OF_ARP_SPA[],in_port")


def test_br_tun_arp_responder_for_remote_ports_only():
    plan = build_plan(scenario_for_golden("classic-vxlan"))
    p = plan.port
    dhcp = {d.network: d.port for d in plan.dhcp_servers}
    qr = {i.network: i for i in plan.router("router1").instances[0].interfaces}
    assert table(tun_flows("classic-vxlan", "compute1"), 21) == [
        arp_flow(1, "192.168.1.2", dhcp["net1"].mac), arp_flow(1, "192.168.1.1", qr["net1"].mac),
        arp_flow(1, "192.168.1.12", p("vm2").mac), arp_flow(1, "192.168.1.14", p("vm4").mac),
        "table=21,priority=0,actions=resubmit(,22)"]
    assert arp_flow(1, "192.168.1.12", "fa:16:3e:46:e8:73").endswith(
        "load:0xfa163e46e873->NXM_NX_ARP_SHA[],load:0xc0a8010c->NXM_OF_ARP_SPA[],in_port")
    # compute2: alt-net (local VLAN 1) answers for its DHCP port only, not for net1's
    # 192.168.1.2 on the same address; its own instances (alt-vm1, vm2, vm4, vm5) never
    flows = table(tun_flows("classic-vxlan", "compute2"), 21)
    assert flows[0] == arp_flow(1, "192.168.1.2", dhcp["alt-net"].mac)
    assert arp_flow(2, "192.168.1.2", dhcp["net1"].mac) in flows
    for vm in ("alt-vm1", "vm2", "vm4", "vm5"):
        assert not [f for f in flows if f"arp_tpa={p(vm).ip}," in f and f"mod_dl_src:{p(vm).mac}," in f], vm
    assert len(flows) == 1 + 4 + 2 + 1       # alt-net: DHCP; net1: DHCP, qr, vm1, vm3; net2: DHCP, qr
    # network1 hosts no instance: it answers for every instance, none of its own ports
    flows = table(tun_flows("classic-vxlan", "network1"), 21)
    assert len(flows) == 6 + 1
    assert all(f"mod_dl_src:{d.port.mac}," not in "".join(flows) for d in plan.dhcp_servers)


def test_br_tun_flood_lists():
    head = "table=22,priority=1,dl_vlan="
    # classic-vxlan (l2_population): only to the nodes that host the network
    assert table(tun_flows("classic-vxlan", "compute1"), 22) == [
        f"{head}1,actions=strip_vlan,load:0x3e9->NXM_NX_TUN_ID[],output:vxlan-c633640b,output:vxlan-c633640d",
        "table=22,priority=0,actions=drop"]
    assert table(tun_flows("classic-vxlan", "compute2"), 22) == [
        f"{head}1,actions=strip_vlan,load:0x3eb->NXM_NX_TUN_ID[],output:vxlan-c633640b",     # alt-net
        f"{head}2,actions=strip_vlan,load:0x3e9->NXM_NX_TUN_ID[],output:vxlan-c633640b,output:vxlan-c633640c",
        f"{head}3,actions=strip_vlan,load:0x3ea->NXM_NX_TUN_ID[],output:vxlan-c633640b",     # net2
        "table=22,priority=0,actions=drop"]
    assert table(tun_flows("classic-vxlan", "network1"), 22) == [
        f"{head}1,actions=strip_vlan,load:0x3e9->NXM_NX_TUN_ID[],output:vxlan-c633640c,output:vxlan-c633640d",
        f"{head}2,actions=strip_vlan,load:0x3ea->NXM_NX_TUN_ID[],output:vxlan-c633640d",
        f"{head}3,actions=strip_vlan,load:0x3eb->NXM_NX_TUN_ID[],output:vxlan-c633640d",     # alt-net: compute2 only
        "table=22,priority=0,actions=drop"]
    # classic-gre (no l2_population): to every other node
    assert table(tun_flows("classic-gre", "compute2"), 22) == [
        f"{head}1,actions=strip_vlan,load:0x3->NXM_NX_TUN_ID[],output:gre-c633640b,output:gre-c633640c",
        f"{head}2,actions=strip_vlan,load:0x1->NXM_NX_TUN_ID[],output:gre-c633640b,output:gre-c633640c",
        f"{head}3,actions=strip_vlan,load:0x2->NXM_NX_TUN_ID[],output:gre-c633640b,output:gre-c633640c",
        "table=22,priority=0,actions=drop"]


def ovsdb_commands(name: str, node: str) -> list[str]:
    return RENDERED[f"{name}/{node}/ovsdb.txt"].splitlines()


@pytest.mark.parametrize("name, ntype", [("classic-vxlan", "vxlan"), ("classic-gre", "gre")])
def test_ovsdb_br_tun_patch_and_tunnel_ports(name, ntype):
    mark = f"external_ids:neutron-lab={name}"
    lines = ovsdb_commands(name, "compute1")
    for cmd in ("--may-exist add-br br-tun",
                f"set Bridge br-tun datapath_type=netdev fail_mode=secure protocols=OpenFlow10,OpenFlow13,"
                f"OpenFlow14 other_config:disable-in-band=true {mark}",
                "--may-exist add-port br-int patch-tun",
                "set Interface patch-tun type=patch options:peer=patch-int",
                "--may-exist add-port br-tun patch-int",
                "set Interface patch-int type=patch options:peer=patch-tun",
                f"--may-exist add-port br-tun {ntype}-c633640b",
                f"set Interface {ntype}-c633640b type={ntype} options:remote_ip=198.51.100.11 "
                "options:local_ip=198.51.100.12 options:in_key=flow options:out_key=flow "
                "options:df_default=true options:egress_pkt_mark=0",
                f"set Port {ntype}-c633640d {mark}",
                # userspace tunnelling: br-phy holds the NIC, local_ip lives on its internal port
                "--may-exist add-br br-phy",
                f"set Bridge br-phy datapath_type=netdev other_config:disable-in-band=true {mark}",
                "--may-exist add-port br-phy eth1"):
        assert cmd in lines, cmd
    # no provider bridge for the underlay
    assert not [x for x in lines if "br-vlan" in x or "int-br-" in x]
    assert lines.index("--may-exist add-br br-int") < lines.index("--may-exist add-br br-tun")


def test_ovsdb_kernel_datapath_has_no_br_phy():
    plan = build_plan(scenario_for_golden("classic-vxlan"), datapath="system")
    text = ovsdb_text(render_plan(plan)["compute1"].ovsdb)
    assert "br-phy" not in text
    assert "set Bridge br-tun datapath_type=system " in text
    assert "set Interface vxlan-c633640b type=vxlan options:remote_ip=198.51.100.11 options:local_ip=198.51.100.12" in text


@pytest.mark.parametrize("name, ntype, seg", [("classic-vxlan", "vxlan", 1001), ("classic-gre", "gre", 1)])
def test_ovsdb_instance_port_of_a_tunnel_network(name, ntype, seg):
    vm1 = build_plan(scenario_for_golden(name)).port("vm1")
    (line,) = [x for x in ovsdb_commands(name, "compute1") if x.startswith(f"set Port {vm1.ovs_port} ")]
    assert f" other_config:network_type={ntype} " in line
    assert f" other_config:segmentation_id={seg} " in line
    assert line.startswith(f"set Port {vm1.ovs_port} tag=1 ")


def test_ovsdb_tunnel_port_has_no_physical_network():
    vm1 = build_plan(scenario_for_golden("classic-vxlan")).port("vm1")
    (line,) = [x for x in ovsdb_commands("classic-vxlan", "compute1") if x.startswith(f"set Port {vm1.ovs_port} ")]
    assert " other_config:physical_network=None " in line


def test_show_tunnel_lines():
    show = RENDERED["classic-vxlan/show.txt"].splitlines()
    for line in ("  br-tun  (local_ip = 198.51.100.12 on br-phy, which holds eth1)",
                 "    vxlan-c633640b  vxlan to network1 (198.51.100.11)",
                 "    local VLAN 1 <-> vxlan id 1001  (network net1; floods to vxlan-c633640b, vxlan-c633640d)",
                 "    local VLAN 3 <-> vxlan id 1003  (network alt-net; floods to vxlan-c633640d)"):
        assert line in show, line
    assert any(" mtu 1450 " in x for x in show if x.startswith("  vm1: "))
    gre = RENDERED["classic-gre/show.txt"].splitlines()
    assert "    local VLAN 1 <-> gre id 3  (network alt-net; floods to gre-c633640b, gre-c633640c)" in gre
    assert any(" mtu 1458 " in x for x in gre if x.startswith("  vm1: "))
