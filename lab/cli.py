"""The `lab` command. The only place that prints for the user and chooses exit codes.

Exit codes: 0 success, 1 a check failed or the lab is not as asked, 2 bad input (scenario,
arguments), 3 the system refused (not root, missing program, a command failed).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from lab import __version__
from lab.errors import (ApplyError, CommandError, LabError, LabStateError, MissingProgram, NotRoot,
                     ScenarioError, ScenarioNotFound)


def _progress(msg: str) -> None:
    print(f"  {msg}", file=sys.stderr, flush=True)


def cmd_list(args) -> int:
    from lab.core.scenario import builtin_scenarios, load_scenario
    paths = [str(p) for p in builtin_scenarios()] + list(args.paths)
    for p in paths:
        try:
            s = load_scenario(p)
            first = s.description.split(". ")[0].split(": ")[0].strip().rstrip(".")
            first = first if len(first) <= 90 else first[:87] + "..."
            print(f"{s.name:<20} {len(s.nodes)} nodes, {len(s.instances)} instances, "
                  f"{len(s.checks)} checks  {first}")
        except ScenarioError as exc:
            print(f"{p:<20} INVALID ({len(exc.problems)} problems; `lab show {p}` lists them)")
    return 0


def cmd_show(args) -> int:
    from lab.core.plan import build_plan
    from lab.core.render import describe, render_plan
    from lab.core.scenario import load_scenario
    scenario = load_scenario(args.scenario)
    from lab.runtime.ovs import detect_datapath
    plan = build_plan(scenario, datapath=args.datapath or detect_datapath())
    if args.json:
        print(json.dumps(plan.to_json(), indent=1))
        return 0
    print(describe(plan), end="")
    if args.render:
        for node, r in render_plan(plan).items():
            print(f"\n### {node}: ovs-vsctl {' '.join(r.ovsdb)}")
            for bridge, text in r.flows.items():
                print(f"\n### {node}: flows of {bridge}\n{text}", end="")
            print(f"\n### {node}: iptables-restore\n{r.iptables}", end="")
            for router, rules in r.routers.items():
                print(f"\n### {node}: {router} iptables-restore\n{rules}", end="")
            for name, d in r.dhcp.items():
                print(f"\n### {node}: {name}: {' '.join(d.argv)}")
                for fname, text in d.files.items():
                    if text:
                        print(f"# {fname}\n{text}", end="")
    if scenario.checks:
        print("\nchecks")
        for c in scenario.checks:
            what = c.proto if c.port is None else f"{c.proto}:{c.port}"
            print(f"  {c.name}: {c.source} -> {c.destination} {what}, expect {c.expect}")
            for a in c.path:
                print(f"      {a.describe()}")
    return 0


def cmd_up(args) -> int:
    from lab.runtime import lifecycle
    print(f"lab up {args.scenario}", file=sys.stderr)
    result = lifecycle.up(args.scenario, datapath=args.datapath, progress=_progress)
    if result.already_up:
        print(f"lab {result.lab} is already up and healthy; nothing to do "
              f"(`lab down {result.lab}` to remove it)")
        return 0
    if result.repaired:
        print(f"lab {result.lab} was up but damaged; repaired in {result.elapsed:.2f} s: "
              + "; ".join(result.repaired))
        return _run_checks(result.lab, as_json=False) if args.check else 0
    phases = ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in result.phases.items())
    print(f"lab {result.lab} is up in {result.elapsed:.2f} s ({phases})")
    if result.missing_leases:
        print(f"lab {result.lab}: {len(result.missing_leases)} instance(s) without their DHCP lease:")
        for line in result.missing_leases:
            print(f"  {line}")
        return 1
    if args.check:
        return _run_checks(result.lab, as_json=False)
    return 0


def cmd_down(args) -> int:
    from lab.runtime import lifecycle
    elapsed = lifecycle.down(args.lab, progress=_progress)
    print(f"lab {args.lab} is down in {elapsed:.2f} s")
    return 0


def cmd_cleanup(args) -> int:
    from lab.runtime import lifecycle
    labs = lifecycle.cleanup(progress=_progress)
    print(f"removed leftovers of: {', '.join(labs)}" if labs else "nothing to clean up")
    return 0


def cmd_status(args) -> int:
    from lab.runtime import lifecycle
    lifecycle.require_root()   # the nodes' OVSDB sockets are root's
    labs = lifecycle.status(args.lab)
    if args.json:
        print(json.dumps(labs[0] if args.lab else {"labs": labs}, indent=1))
        return 0 if all(not lab["problems"] for lab in labs) else 1
    if not labs:
        print("no lab is up")
        return 0
    for lab in labs:
        state = "healthy" if not lab["problems"] else "DAMAGED: " + "; ".join(lab["problems"])
        print(f"lab {lab['lab']} ({lab['datapath']} datapath): {state}")
        for n in lab["nodes"]:
            pids = "/".join(str(p) for p in n["pids"].values())
            dvr = f"  DVR MAC {n['dvr_mac']}" if n.get("dvr_mac") else ""
            print(f"  node {n['name']:<10} {n['role']:<8} netns {n['netns']}  OVS {n['ovs_rundir']} (pids {pids}){dvr}")
        for w in lab["wires"]:
            print(f"  wire {w['name']:<10} netns {w['netns']}  bridge {w['bridge']}")
        for i in lab["instances"]:
            fip = f", floating IP {i['floating_ip']}" if i["floating_ip"] else ""
            print(f"  instance {i['name']:<8} {i['ip']:<15} {i['mac']}  on {i['node']}, network "
                  f"{i['network']} (local VLAN {i['local_vlan']}, {i['address']}{fip})  netns {i['netns']}")
        for r in lab["routers"]:
            ifs = ", ".join(f"{i['device']} {i['ip']}" for i in r["interfaces"])
            print(f"  router {r['name']:<10} on {r['node']}: {ifs}  netns {r['netns']}")
        for d in lab["dhcp"]:
            print(f"  dhcp {d['name']:<12} {d['ip']:<15} on {d['node']} (dnsmasq pid {d['pid']})  netns {d['netns']}")
        for h in lab["external_hosts"]:
            print(f"  external host {h['name']:<6} {h['ip']:<15} on wire {h['wire']}  netns {h['netns']}")
    return 0 if all(not lab["problems"] for lab in labs) else 1


def cmd_exec(args) -> int:
    from lab.runtime import gateway, lifecycle
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise LabStateError("nothing to run: lab exec LAB TARGET -- COMMAND...")
    lifecycle.require_root()
    _, ns, env = lifecycle.resolve_target(args.lab, args.target)
    gateway.exec_replace(command, netns=ns, env=env)
    return 0  # not reached


def cmd_capture(args) -> int:
    from lab.tools import capture
    from lab.runtime import lifecycle
    lifecycle.require_root()
    state = lifecycle.load_state(args.lab)
    # -w / -c may also come after the target (argparse hands them over with the filter)
    expression, words = [], list(args.filter)
    while words:
        word = words.pop(0)
        if word in ("-w", "-c") and words:
            value = words.pop(0)
            if word == "-w":
                args.write = value
            elif not value.isdigit():
                raise LabStateError(f"-c needs a number of packets, not {value!r}")
            else:
                args.count = int(value)
        else:
            expression.append(word)
    return capture.capture(state.plan, args.target, args.write, args.count, expression)


def cmd_trace(args) -> int:
    from lab.runtime import lifecycle
    from lab.tools import trace
    lifecycle.require_root()
    state = lifecycle.load_state(args.lab)
    result = trace.trace(state.plan, args.source, args.destination, args.proto)
    if args.json:
        print(json.dumps(result.to_json(), indent=1))
    else:
        print(trace.render_table(result))
    return 0 if result.reached else 1


def cmd_graph(args) -> int:
    from lab.runtime import gateway, lifecycle
    from lab.tools import graph
    from lab.runtime.ovsdb import OvsdbError, read_ports
    lifecycle.require_root()
    state = lifecycle.load_state(args.lab)
    live = {}
    for node in state.plan.nodes:
        try:
            live[node.name] = read_ports(node.rundir)
        except OvsdbError:
            live[node.name] = {}
    g = graph.build(state.plan, live)
    if args.output:
        suffix = args.output.rsplit(".", 1)[-1].lower()
        if suffix in ("svg", "png"):
            gateway.require("dot")
            gateway.run(["dot", f"-T{suffix}", "-o", args.output], input=graph.to_dot(g))
        elif suffix in ("dot", "gv"):
            with open(args.output, "w") as f:
                f.write(graph.to_dot(g))
        elif suffix in ("mmd", "mermaid"):
            with open(args.output, "w") as f:
                f.write(graph.to_mermaid(g))
        else:
            raise LabStateError(f"cannot tell the format of {args.output}: use .svg, .png, .dot or .mmd")
        print(f"wrote {args.output}")
        return 0
    fmt = args.format or "text"
    print({"text": graph.to_text, "mermaid": graph.to_mermaid, "dot": graph.to_dot}[fmt](g), end="")
    return 0


def cmd_flows(args) -> int:
    from lab.tools import flows
    from lab.runtime import lifecycle
    lifecycle.require_root()
    state = lifecycle.load_state(args.lab)
    if args.node not in {n.name for n in state.plan.nodes}:
        raise LabStateError(f"lab {args.lab} has no node {args.node!r} (nodes: "
                            f"{', '.join(n.name for n in state.plan.nodes)})")
    try:
        print(flows.show(state.plan, state.directory, args.node, args.bridge, args.diff))
    except ValueError as exc:
        raise LabStateError(str(exc)) from None
    return 0


def cmd_check(args) -> int:
    return _run_checks(args.lab, as_json=args.json)


def _run_checks(lab: str, as_json: bool) -> int:
    from lab.tools import checks
    from lab.runtime import lifecycle
    lifecycle.require_root()
    state = lifecycle.load_state(lab)
    scenario = state.scenario()
    started = time.monotonic()
    results = checks.run_checks(state.plan, scenario, progress=None if as_json else _progress)
    if as_json:
        print(json.dumps({"lab": lab, "passed": all(r.passed for r in results),
                          "results": [r.to_json() for r in results]}, indent=1))
    else:
        print(checks.table(results))
        failed = [r for r in results if not r.passed]
        print(f"{len(results) - len(failed)} passed, {len(failed)} failed "
              f"({time.monotonic() - started:.1f} s)")
    return 0 if all(r.passed for r in results) else 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lab", description="Real Neutron/Open vSwitch dataplanes "
                                "on one Linux machine, proved with packets.")
    p.add_argument("--version", action="version", version=f"neutron-lab {__version__}")
    sub = p.add_subparsers(dest="verb", required=True, metavar="COMMAND")

    s = sub.add_parser("list", help="scenarios (built-in, and any paths given)")
    s.add_argument("paths", nargs="*")
    s.set_defaults(fn=cmd_list)

    s = sub.add_parser("show", help="what `up` would build (no root needed)")
    s.add_argument("scenario", help="built-in scenario name or path to a YAML file")
    s.add_argument("--render", action="store_true", help="also print OVSDB transactions, flows and iptables rules")
    s.add_argument("--json", action="store_true", help="the plan as JSON")
    s.add_argument("--datapath", choices=("netdev", "system"))
    s.set_defaults(fn=cmd_show)

    s = sub.add_parser("up", help="build a lab")
    s.add_argument("scenario", help="built-in scenario name or path to a YAML file")
    s.add_argument("--datapath", choices=("netdev", "system"),
                   help="OVS datapath (default: system if the kernel has openvswitch, else netdev)")
    s.add_argument("--check", action="store_true", help="run the scenario's checks once it is up")
    s.set_defaults(fn=cmd_up)

    s = sub.add_parser("down", help="remove everything a lab made")
    s.add_argument("lab")
    s.set_defaults(fn=cmd_down)

    s = sub.add_parser("status", help="what is up")
    s.add_argument("lab", nargs="?")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_status)

    s = sub.add_parser("exec", help="run a command at a target (instance, node, wire, router, DHCP server, external host)",
                       usage="lab exec LAB TARGET -- COMMAND...")
    s.add_argument("lab")
    s.add_argument("target", help="instance, node, wire (physical network), router, <network>-dhcp or external host")
    s.add_argument("command", nargs=argparse.REMAINDER)
    s.set_defaults(fn=cmd_exec)

    s = sub.add_parser("check", help="run the scenario's checks against the live lab")
    s.add_argument("lab")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_check)

    s = sub.add_parser("capture", help="tcpdump at a target, live or into a pcap file",
                       usage="lab capture LAB TARGET[:IFACE] [-w FILE.pcap] [-c N] [FILTER...]")
    s.add_argument("lab")
    s.add_argument("target", help="instance, node, wire, router, DHCP server or external host, "
                                  "optionally :IFACE (default: eth0, the DHCP port, every port of a wire)")
    s.add_argument("-w", dest="write", metavar="FILE.pcap", help="write a pcap file instead of decoding")
    s.add_argument("-c", dest="count", type=int, metavar="N", help="stop after N packets")
    s.add_argument("filter", nargs=argparse.REMAINDER, help="a tcpdump (pcap-filter) expression")
    s.set_defaults(fn=cmd_capture)

    s = sub.add_parser("trace", help="the hop-by-hop path of a packet: expected, explained and seen")
    s.add_argument("lab")
    s.add_argument("source", help="instance or external host")
    s.add_argument("destination", help="instance, external host or address (e.g. a floating IP)")
    s.add_argument("--proto", default="icmp", help="icmp (default), tcp:PORT or udp:PORT")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_trace)

    s = sub.add_parser("graph", help="a picture of the running lab (Graphviz, Mermaid or text)")
    s.add_argument("lab")
    s.add_argument("-o", dest="output", metavar="FILE", help="write FILE.svg, FILE.png (Graphviz) or FILE.dot")
    s.add_argument("--format", choices=("text", "mermaid", "dot"),
                   help="print this format (default: text, or what -o's suffix says)")
    s.set_defaults(fn=cmd_graph)

    s = sub.add_parser("flows", help="a node's flow tables in Neutron's words, with packet counters")
    s.add_argument("lab")
    s.add_argument("node")
    s.add_argument("bridge", nargs="?", help="br-int, br-tun, br-vlan... (default: all of the node's)")
    s.add_argument("--diff", action="store_true", help="only what changed since the previous call")
    s.set_defaults(fn=cmd_flows)

    s = sub.add_parser("cleanup", help="remove whatever any lab left behind, and nothing else")
    s.set_defaults(fn=cmd_cleanup)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except (ScenarioError, ScenarioNotFound) as exc:
        print(f"lab: {exc}", file=sys.stderr)
        return 2
    except (NotRoot, MissingProgram, CommandError) as exc:
        print(f"lab: {exc}", file=sys.stderr)
        return 3
    except ApplyError as exc:
        print(f"lab: {exc}", file=sys.stderr)
        return 3
    except LabStateError as exc:
        print(f"lab: {exc}", file=sys.stderr)
        return 1
    except LabError as exc:
        print(f"lab: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print("lab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `lab status | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
