"""The `lab` command through `lab.cli.main([...])`, as a user sees it: what it prints, on which
stream, and its exit status (0 success, 1 not as asked, 2 bad input, 3 the system refused).

Nothing here needs root or touches the system: verbs that need root are run with the root check
answering "not root" (os.geteuid patched), under a guard that fails the test if anything tries
to start a program or change a namespace anyway; `graph` and `flows` run against a plan.json in a
temporary state directory with the live OVS reads faked.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from pathlib import Path

import pytest

from lab import __version__, cli, paths
from lab.core import naming
from lab.core.plan import Plan, build_plan
from lab.core.render import describe, render_plan
from lab.core.scenario import builtin_scenarios, load_scenario

VERBS = ("list", "show", "up", "down", "status", "exec", "check", "capture", "trace", "graph", "flows", "cleanup")


def run(capsys, *argv: str) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of `lab ARGV...`; argparse's own exits count as statuses."""
    try:
        status = cli.main(list(argv))
    except SystemExit as exc:        # --help, --version and usage errors exit from argparse
        status = exc.code if isinstance(exc.code, int) else 2
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture
def no_system(monkeypatch):
    """Fail the test if the CLI starts a program or touches namespaces or processes."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"a unit test tried to touch the system: {args!r}")

    class NoPopen:
        def __init__(self, *args, **kwargs):
            refuse(*args)
    monkeypatch.setattr(subprocess, "Popen", NoPopen)
    from lab.runtime import gateway, netns, ovs
    for module, names in ((gateway, ("run", "exec_replace", "spawn")), (netns, ("create", "delete")),
                          (ovs, ("stop_pid", "start"))):
        for name in names:
            monkeypatch.setattr(module, name, refuse, raising=False)
    for name in ("setns", "unshare", "kill", "execvp", "execvpe"):
        monkeypatch.setattr(os, name, refuse, raising=False)


@pytest.fixture
def not_root(monkeypatch, no_system):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)


# --------------------------------------------------------------------------- --version, --help, usage

def test_version(capsys):
    status, out, _ = run(capsys, "--version")
    assert (status, out) == (0, f"neutron-lab {__version__}\n")


def test_help_lists_every_verb(capsys):
    status, out, _ = run(capsys, "--help")
    assert status == 0 and out.startswith("usage: lab ")
    for verb in VERBS:
        assert f"\n    {verb} " in out or f"\n    {verb}\n" in out, verb


@pytest.mark.parametrize("verb", VERBS)
def test_help_of_each_verb(capsys, verb):
    status, out, _ = run(capsys, verb, "--help")
    assert status == 0 and out.startswith(f"usage: lab {verb}")


@pytest.mark.parametrize("argv", [(), ("frobnicate",), ("show",), ("show", "classic-vlan", "--datapath", "dpdk"),
                                  ("flows", "classic-vlan"), ("graph", "classic-vlan", "--format", "png")])
def test_usage_errors_exit_2(capsys, argv):
    status, out, err = run(capsys, *argv)
    assert (status, out) == (2, "")
    assert err.startswith("usage: lab") and "error:" in err and "Traceback" not in err


# --------------------------------------------------------------------------- list

def test_list_builtin_scenarios(capsys):
    status, out, err = run(capsys, "list")
    assert status == 0 and err == ""
    lines = out.splitlines()
    assert len(lines) == len(builtin_scenarios()) >= 3
    for path, line in zip(builtin_scenarios(), lines):
        s = load_scenario(str(path))
        assert line.startswith(f"{s.name:<20} {len(s.nodes)} nodes, {len(s.instances)} instances, "
                               f"{len(s.checks)} checks  ")
        summary = line.split(" checks  ", 1)[1]
        assert 0 < len(summary) <= 90
        assert summary.removesuffix("...") in " ".join(s.description.split())


def test_list_paths_valid_and_invalid(capsys, tmp_path):
    good = tmp_path / "mine.yaml"
    good.write_text(GOOD)
    bad = tmp_path / "broken.yaml"
    bad.write_text(GOOD.replace("ip: 10.0.0.11", "ip: 10.9.0.11").replace("node: compute2", "node: nowhere"))
    status, out, _ = run(capsys, "list", str(good), str(bad))
    assert status == 0
    lines = out.splitlines()[len(builtin_scenarios()):]
    assert lines[0].startswith(f"{'unit':<20} 2 nodes, 2 instances, 1 checks  two computes on one VLAN")
    assert lines[1] == f"{str(bad):<20} INVALID (2 problems; `lab show {bad}` lists them)"


def test_list_of_a_missing_file(capsys, tmp_path):
    status, out, err = run(capsys, "list", str(tmp_path / "nope.yaml"))
    assert status == 2 and "no scenario file at" in err and "Traceback" not in err


# --------------------------------------------------------------------------- show

GOOD = """\
name: unit
description: two computes on one VLAN physical network. More words here.
nodes:
  compute1:
    role: compute
  compute2:
    role: compute
physical_networks:
  physnet1:
    bridge: br-vlan
    vlan_ranges: ['101:199']
    nodes: [compute1, compute2]
projects: [demo]
networks:
  net1:
    project: demo
    type: vlan
    physical_network: physnet1
    segmentation_id: 101
    cidr: 10.0.0.0/24
    gateway: 10.0.0.1
    dhcp: false
instances:
  vm1:
    node: compute1
    network: net1
    ip: 10.0.0.11
  vm2:
    node: compute2
    network: net1
    ip: 10.0.0.12
checks:
  - name: vm1 to vm2
    from: vm1
    to: vm2
    expect: reach
    path:
      - crosses: physnet1
        vlan: 101
"""


def plan_of(name: str, datapath: str = "netdev") -> Plan:
    return build_plan(load_scenario(name), datapath=datapath)


@pytest.mark.parametrize("name", ["classic-vlan", "classic-vxlan"])
def test_show_describes_the_plan_then_the_checks(capsys, name):
    status, out, err = run(capsys, "show", name, "--datapath", "netdev")
    assert status == 0 and err == ""
    described = describe(plan_of(name))
    assert out.startswith(described)
    checks = out[len(described):].splitlines()
    scenario = load_scenario(name)
    assert checks[:2] == ["", "checks"]
    names = [x.split(":")[0].strip() for x in checks[2:] if not x.startswith("      ")]
    assert names == [c.name for c in scenario.checks]
    c = scenario.checks[0]
    assert checks[2].startswith(f"  {c.name}: {c.source} -> {c.destination} ") and checks[2].endswith(f"expect {c.expect}")
    assert checks[3:3 + len(c.path)] == [f"      {a.describe()}" for a in c.path]


def test_show_datapath_changes_the_plan(capsys):
    _, netdev, _ = run(capsys, "show", "classic-vxlan", "--datapath", "netdev")
    _, system, _ = run(capsys, "show", "classic-vxlan", "--datapath", "system")
    assert "br-phy" in netdev and "br-phy" not in system
    assert system.startswith(describe(plan_of("classic-vxlan", "system")))


def test_show_json_is_the_plan(capsys):
    status, out, _ = run(capsys, "show", "classic-vlan", "--json", "--datapath", "system")
    assert status == 0
    data = json.loads(out)
    data.pop("schema_version", None)
    assert Plan.from_json(data) == plan_of("classic-vlan", "system")
    assert data["datapath"] == "system"


@pytest.mark.parametrize("scenario", ["classic-vlan", "dvr-vlan"])
def test_show_render_prints_every_file_of_every_node(capsys, scenario):
    status, out, _ = run(capsys, "show", scenario, "--render", "--datapath", "netdev")
    assert status == 0
    renders = render_plan(plan_of(scenario))
    for node, r in renders.items():
        assert f"\n### {node}: ovs-vsctl {' '.join(r.ovsdb)}\n" in out
        for bridge, text in r.flows.items():
            assert f"\n### {node}: flows of {bridge}\n{text}" in out
        assert f"\n### {node}: iptables-restore\n{r.iptables}" in out
        if r.ipset:
            assert f"\n### {node}: ipset restore -exist\n{r.ipset}" in out
        for router, rules in r.routers.items():
            assert f"\n### {node}: {router} iptables-restore\n{rules}" in out
        for fip, rules in r.fips.items():      # DVR: fip-<external network> on every host of the router
            assert f"\n### {node}: {fip} iptables-restore\n{rules}" in out
        for name, d in r.dhcp.items():
            assert f"\n### {node}: {name}: {' '.join(d.argv)}\n" in out
            assert f"# host\n{d.files['host']}" in out
    assert out.count("\n### ") == sum(2 + bool(r.ipset) + len(r.flows) + len(r.routers) + len(r.dhcp) + len(r.fips)
                                      for r in renders.values())
    assert sum(bool(r.ipset) for r in renders.values()) == 2      # compute1, compute2
    assert sum(len(r.fips) for r in renders.values()) == (3 if scenario == "dvr-vlan" else 0)
    assert out.index("### network1: ovs-vsctl") < out.index("\nchecks\n")


def test_show_a_scenario_file(capsys, tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(GOOD)
    status, out, _ = run(capsys, "show", str(path), "--datapath", "netdev")
    assert status == 0 and "compute1" in out and "\nchecks\n  vm1 to vm2: vm1 -> vm2 " in out


# --------------------------------------------------------------------------- bad input: 2, file:line, no traceback

def line_of(text: str, snippet: str) -> int:
    (n,) = [i for i, line in enumerate(text.splitlines(), 1) if snippet in line]
    return n


@pytest.mark.parametrize("verb", ["show", "up"])
def test_bad_scenario_exits_2_with_file_and_line(capsys, tmp_path, verb, not_root):
    text = GOOD.replace("ip: 10.0.0.12", "ip: 10.9.0.12").replace("segmentation_id: 101", "segmentation_id: 99")
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    status, out, err = run(capsys, verb, str(path))
    assert (status, out) == (2, "")
    err = err.removeprefix(f"lab up {path}\n")                  # `up` says what it starts
    assert err.startswith("lab: scenario has 2 problems:\n")
    assert f"  {path}:{line_of(text, 'ip: 10.9.0.12')}: instances.vm2.ip: " in err
    assert f"  {path}:{line_of(text, 'segmentation_id: 99')}: networks.net1.segmentation_id: " in err
    assert "Traceback" not in err


def test_yaml_syntax_error_exits_2_with_file_and_line(capsys, tmp_path):
    text = GOOD.replace("nodes: [compute1, compute2]", "nodes: [compute1, compute2")
    path = tmp_path / "syntax.yaml"
    path.write_text(text)
    status, out, err = run(capsys, "show", str(path))
    assert (status, out) == (2, "")
    assert f"{path}:" in err and "Traceback" not in err
    line = int(err.split(f"{path}:", 1)[1].split(":", 1)[0])
    assert abs(line - line_of(text, "nodes: [compute1, compute2")) <= 2


@pytest.mark.parametrize("name", ["no-such-scenario", "missing/file.yaml"])
def test_unknown_scenario_exits_2(capsys, name):
    status, out, err = run(capsys, "show", name)
    assert (status, out) == (2, "")
    assert err.startswith("lab: no scenario") and "Traceback" not in err
    if "/" not in name:
        assert all(p.stem in err for p in builtin_scenarios())      # says which exist


# --------------------------------------------------------------------------- root

ROOT_VERBS = [("up", "classic-vlan"), ("down", "classic-vlan"), ("cleanup",), ("status",),
              ("status", "classic-vlan"), ("exec", "classic-vlan", "vm1", "--", "true"), ("check", "classic-vlan"),
              ("capture", "classic-vlan", "vm1"), ("trace", "classic-vlan", "vm1", "vm2"),
              ("graph", "classic-vlan"), ("flows", "classic-vlan", "compute1")]


@pytest.mark.parametrize("argv", ROOT_VERBS, ids=lambda a: " ".join(a))
def test_root_verbs_refuse_without_root(capsys, argv, not_root):
    status, out, err = run(capsys, *argv)
    assert (status, out) == (3, "")
    err = err.removeprefix(f"lab up {argv[-1]}\n")              # `up` says what it starts
    assert err.startswith("lab: ") and "root" in err and "sudo" in err and "Traceback" not in err
    assert err.count("\n") == 1


def test_show_and_list_need_no_root(capsys, not_root):
    assert run(capsys, "show", "classic-vlan", "--datapath", "netdev")[0] == 0
    assert run(capsys, "list")[0] == 0


def test_exec_without_a_command(capsys, no_system):
    status, out, err = run(capsys, "exec", "classic-vlan", "vm1", "--")
    assert (status, out) == (1, "")
    assert err == "lab: nothing to run: lab exec LAB TARGET -- COMMAND...\n"


# --------------------------------------------------------------------------- a lab that is up (faked state)

@pytest.fixture
def state_root(tmp_path, monkeypatch, no_system):
    """Root, a temporary state directory, and no lab up in it."""
    from lab.runtime import lifecycle
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(paths, "STATE_ROOT", tmp_path)
    monkeypatch.setattr(lifecycle, "STATE_ROOT", tmp_path, raising=False)
    return tmp_path


LAB = "unit-cli-lab"     # no real lab has this name, so no real namespace answers for it


def qvo(port) -> str:
    return naming.port_device("qvo", port.port_id)


@pytest.fixture
def up_lab(state_root, monkeypatch):
    """classic-vlan "up" as LAB: its plan.json where `up` writes it; each node's OVSDB read is
    faked (compute2's OVS lacks vm2's qvo, network1's does not answer)."""
    from lab.runtime import ovsdb
    scenario = dataclasses.replace(load_scenario("classic-vlan"), name=LAB)
    plan = build_plan(scenario, datapath="netdev", state_root=str(state_root))
    directory = state_root / LAB
    directory.mkdir()
    (directory / "ledger.jsonl").write_text("")
    (directory / "plan.json").write_text(json.dumps(plan.to_json()))
    (directory / "scenario.json").write_text(json.dumps(dataclasses.asdict(scenario)))
    vm2 = plan.port("vm2")

    def read_ports(rundir, timeout=5.0):
        node = Path(rundir).name
        if node == "network1":
            raise ovsdb.OvsdbError("no answer")
        n = plan.node(node)
        ports = [qvo(p) for p in n.ports if p is not vm2] + [b.int_patch for b in n.physical_bridges]
        ports += [b.nic for b in n.physical_bridges]
        return {name: None for name in ports}
    monkeypatch.setattr(ovsdb, "read_ports", read_ports)
    return plan


@pytest.mark.parametrize("argv", [("flows", "classic-vlan", "compute1"), ("graph", "classic-vlan"),
                                  ("trace", "classic-vlan", "vm1", "vm2"), ("check", "classic-vlan")])
def test_a_lab_that_is_not_up_exits_1(capsys, state_root, argv):
    status, out, err = run(capsys, *argv)
    assert (status, out) == (1, "")
    assert err == "lab: lab classic-vlan is not up (labs up: none)\n"


def test_graph_text_of_a_lab_marks_what_ovs_lacks(capsys, up_lab):
    status, out, err = run(capsys, "graph", LAB)
    assert status == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == f"lab {LAB}"
    vm1, vm2 = up_lab.port("vm1"), up_lab.port("vm2")
    for vm, mark in ((vm2, " (MISSING)"), (vm1, "")):
        qvb = naming.port_device("qvb", vm.port_id)
        assert f"    -- {qvb} = {qvo(vm)} tag {vm.local_vlan}{mark} (net1) --> br-int" in lines
    # network1's OVSDB did not answer: every port the plan puts there is marked
    n1 = up_lab.node("network1")
    routers = getattr(up_lab, "router_instances", up_lab.routers)     # where each router lives
    agent_ports = len(n1.dhcp_servers) + sum(len(r.ports) for r in routers if r.node == "network1")
    assert out.count("(MISSING)") == 1 + 2 * len(n1.physical_bridges) + agent_ports == 11


@pytest.mark.parametrize("fmt, first", [("mermaid", "flowchart LR"), ("dot", f'digraph "{LAB}" {{')])
def test_graph_formats(capsys, up_lab, fmt, first):
    status, out, _ = run(capsys, "graph", LAB, "--format", fmt)
    assert status == 0 and out.splitlines()[0] == first


@pytest.mark.parametrize("suffix, first", [("dot", "digraph"), ("gv", "digraph"), ("mmd", "flowchart LR")])
def test_graph_to_a_file(capsys, up_lab, tmp_path, suffix, first):
    target = tmp_path / f"lab.{suffix}"
    status, out, _ = run(capsys, "graph", LAB, "-o", str(target))
    assert (status, out) == (0, f"wrote {target}\n")
    assert target.read_text().startswith(first)


def test_graph_to_a_file_of_unknown_format(capsys, up_lab, tmp_path):
    status, _, err = run(capsys, "graph", LAB, "-o", str(tmp_path / "lab.txt"))
    assert status == 1 and "cannot tell the format of" in err and ".svg, .png, .dot or .mmd" in err


def test_flows_of_an_unknown_node_or_bridge(capsys, up_lab):
    status, _, err = run(capsys, "flows", LAB, "compute9")
    assert status == 1
    assert err == f"lab: lab {LAB} has no node 'compute9' (nodes: network1, compute1, compute2)\n"
    status, _, err = run(capsys, "flows", LAB, "compute1", "br-tun")
    assert status == 1
    assert err == "lab: compute1 has no bridge br-tun (its bridges: br-int, br-vlan)\n"


def test_flows_of_a_lab(capsys, up_lab, monkeypatch):
    from lab.tools import flows
    data = Path(__file__).resolve().parent.parent / "data" / "flows"
    monkeypatch.setattr(flows, "dump", lambda node, bridge: flows.parse_flows(
        (data / f"classic-vlan-{node.name}-{bridge}.txt").read_text()))
    status, out, err = run(capsys, "flows", LAB, "compute1", "br-vlan")
    assert status == 0 and err == ""
    assert out.splitlines()[0] == f"compute1 br-vlan  (cookie {up_lab.cookie}; packets counted since the flow was installed)"
    assert "leaves with VLAN 101 (net1)" in out
    status, out, _ = run(capsys, "flows", LAB, "compute1", "br-vlan", "--diff")
    assert status == 0 and out.endswith("no flow counted a packet since the previous call\n")


# --------------------------------------------------------------------------- status, exec, capture on the faked lab

def test_status_of_a_lab_whose_namespaces_are_gone(capsys, up_lab):
    status, out, err = run(capsys, "status")
    assert status == 1 and err == ""
    lines = out.splitlines()
    head = f"lab {LAB} (netdev datapath): DAMAGED: "
    assert lines[0].startswith(head)
    problems = lines[0][len(head):].split("; ")
    assert [p for p in problems if p.endswith(" is missing")] == [
        f"namespace {ns} is missing" for ns in up_lab.namespaces()]
    assert "ovsdb-server of compute1 is not running" in problems
    body = lines[1:]
    assert [x.split()[:2] for x in body if x.startswith("  node ")] == [["node", n.name] for n in up_lab.nodes]
    vm1 = up_lab.port("vm1")
    assert (f"  instance vm1      {vm1.ip:<15} {vm1.mac}  on compute1, network net1 (local VLAN 1, dhcp, "
            f"floating IP {vm1.floating_ip})  netns {vm1.netns}") in body
    assert len([x for x in body if x.startswith("  instance ")]) == len(up_lab.ports)
    assert len([x for x in body if x.startswith("  dhcp ")]) == len(up_lab.dhcp_servers)
    assert [x for x in body if x.startswith("  router ")][0].startswith("  router router1    on network1: qr-")
    assert [x for x in body if x.startswith("  external host ")] == [
        f"  external host ext1   203.0.113.50    on wire external  netns nlab.{LAB}.ext1"]


def test_status_json(capsys, up_lab):
    status, out, _ = run(capsys, "status", LAB, "--json")
    assert status == 1
    doc = json.loads(out)
    assert doc["lab"] == LAB and doc["datapath"] == "netdev" and doc["problems"]
    assert [i["name"] for i in doc["instances"]] == [p.instance for p in up_lab.ports]
    assert not any(i["up"] for i in doc["instances"])
    status, out, _ = run(capsys, "status", "--json")
    assert status == 1 and [x["lab"] for x in json.loads(out)["labs"]] == [LAB]


def test_status_json_problems_are_the_faults_texts(capsys, up_lab):
    """A damaged lab (every namespace gone, every daemon dead): each problem is a fault."""
    _, out, _ = run(capsys, "status", LAB, "--json")
    doc = json.loads(out)
    assert doc["problems"] == [f["text"] for f in doc["faults"]] and doc["problems"]
    kinds = [f["kind"] for f in doc["faults"]]
    assert kinds.count("namespace-missing") == len(up_lab.namespaces())
    assert kinds.count("daemon") == 2 * len(up_lab.nodes) + len(up_lab.dhcp_servers)
    gone = next(f for f in doc["faults"] if f["kind"] == "namespace-missing")
    assert gone["netns"] == gone["what"] == up_lab.namespaces()[0] and gone["found"] == "missing"


def test_status_with_no_lab_up(capsys, state_root):
    assert run(capsys, "status") == (0, "no lab is up\n", "")
    status, out, _ = run(capsys, "status", "--json")
    assert status == 0 and json.loads(out)["labs"] == []


def test_exec_at_an_unknown_target(capsys, up_lab):
    status, out, err = run(capsys, "exec", LAB, "vm9", "--", "true")
    assert (status, out) == (1, "")
    assert err.startswith(f"lab: lab {LAB} has no target 'vm9' (its targets: ")
    assert all(t in err for t in up_lab.targets())


@pytest.fixture
def captured(up_lab, monkeypatch):
    from lab.tools import capture
    calls = []

    def fake(plan, target, write, count, expression):
        calls.append((plan.lab, target, write, count, list(expression)))
        return 0
    monkeypatch.setattr(capture, "capture", fake)
    return calls


@pytest.mark.parametrize("argv, expected", [
    (["vm1"], ("vm1", None, None, [])),
    (["vm1", "-c", "3", "icmp"], ("vm1", None, 3, ["icmp"])),
    (["-w", "x.pcap", "physnet1", "icmp", "and", "host", "192.168.1.11"],
     ("physnet1", "x.pcap", None, ["icmp", "and", "host", "192.168.1.11"])),
    (["vm1:eth0", "icmp", "-w", "y.pcap", "-c", "2"], ("vm1:eth0", "y.pcap", 2, ["icmp"])),
])
def test_capture_arguments_before_or_after_the_target(capsys, captured, argv, expected):
    assert run(capsys, "capture", LAB, *argv)[0] == 0
    assert captured == [(LAB, *expected)]


def test_capture_count_must_be_a_number(capsys, captured):
    status, _, err = run(capsys, "capture", LAB, "vm1", "icmp", "-c", "many")
    assert status in (1, 2) and "-c needs a number of packets, not 'many'" in err
    assert captured == []


# --------------------------------------------------------------------------- up and down, as printed

@pytest.fixture
def fake_lifecycle(monkeypatch, no_system):
    """lifecycle.up/down answer with RESULT (an UpResult, a float, or an exception to raise)."""
    from lab.runtime import lifecycle
    answer = {}

    def respond(*args, **kwargs):
        kwargs.get("progress", lambda m: None)("made a thing")
        if isinstance(answer["result"], BaseException):
            raise answer["result"]
        return answer["result"]
    monkeypatch.setattr(lifecycle, "up", respond)
    monkeypatch.setattr(lifecycle, "down", respond)
    return answer


def test_up_prints_phases(capsys, fake_lifecycle):
    from lab.runtime.lifecycle import UpResult
    fake_lifecycle["result"] = UpResult("classic-vlan", 1.234, phases={"namespaces": 0.012, "nodes": 0.3456})
    status, out, err = run(capsys, "up", "classic-vlan")
    assert status == 0
    assert out == "lab classic-vlan is up in 1.23 s (namespaces 12 ms, nodes 346 ms)\n"
    assert "  made a thing\n" in err


def test_up_names_instances_without_their_lease(capsys, fake_lifecycle):
    from lab.runtime.lifecycle import UpResult
    fake_lifecycle["result"] = UpResult("classic-vlan", 2.0, missing_leases=["vm1: no DHCPACK", "vm2: timeout"])
    status, out, _ = run(capsys, "up", "classic-vlan")
    assert status == 1
    assert out.splitlines()[1:] == ["lab classic-vlan: 2 instance(s) without their DHCP lease:",
                                     "  vm1: no DHCPACK", "  vm2: timeout"]


def test_up_of_a_lab_already_up(capsys, fake_lifecycle):
    from lab.runtime.lifecycle import UpResult
    fake_lifecycle["result"] = UpResult("classic-vlan", 0.1, already_up=True)
    assert run(capsys, "up", "classic-vlan")[:2] == (0, "lab classic-vlan is already up and healthy; nothing "
                                                        "to do (`lab down classic-vlan` to remove it)\n")
    fake_lifecycle["result"] = UpResult("classic-vlan", 0.5, repaired=["dnsmasq of net1-dhcp", "flows of br-int"])
    assert run(capsys, "up", "classic-vlan")[:2] == (0, "lab classic-vlan was up but damaged; repaired in "
                                                        "0.50 s: dnsmasq of net1-dhcp; flows of br-int\n")


@pytest.mark.parametrize("error, status", [("ApplyError", 3), ("CommandError", 3), ("MissingProgram", 3),
                                           ("LabStateError", 1), ("KeyboardInterrupt", 130)])
def test_up_failures_and_their_exit_status(capsys, fake_lifecycle, error, status):
    from lab import errors
    exc = {"ApplyError": errors.ApplyError("bring-up failed at wires: physnet1; the partial lab was removed"),
           "CommandError": errors.CommandError(["ovs-vsctl", "add-br", "br-int"], 1, "", "boom"),
           "MissingProgram": errors.MissingProgram("program not found: ovs-vswitchd"),
           "LabStateError": errors.LabStateError("lab classic-vlan is busy"),
           "KeyboardInterrupt": KeyboardInterrupt()}[error]
    fake_lifecycle["result"] = exc
    got, out, err = run(capsys, "up", "classic-vlan")
    assert (got, out) == (status, "")
    last = err.splitlines()[-1] if error != "CommandError" else err.splitlines()[-2]
    assert last == ("lab: interrupted" if error == "KeyboardInterrupt" else f"lab: {str(exc).splitlines()[0]}")
    assert "Traceback" not in err


def test_down(capsys, fake_lifecycle):
    fake_lifecycle["result"] = 0.254
    assert run(capsys, "down", "classic-vlan") == (0, "lab classic-vlan is down in 0.25 s\n", "  made a thing\n")
