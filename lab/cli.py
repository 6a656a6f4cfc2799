"""The `lab` command: a thin layer over lab.api. The only place that prints for the user and
chooses exit codes (EXIT_STATUS below, documented in the README and `lab --help`).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys

from lab import __version__, api
from lab.errors import LabError, LabStateError, ScenarioError, ScenarioNotFound, UsageError

EXIT_STATUS = """exit status:
  0  success
  1  a check failed, or the lab is not healthy or not in the state the command needs
  2  bad usage: a bad scenario, an unknown scenario, a bad lab name or argument
  3  the environment refused: not root, a missing program, a command that failed, a lab's
     state on disk that cannot be used (a symlink, a corrupt plan.json, an unwritable
     state directory), or the lab busy with another command beyond LAB_LOCK_TIMEOUT
     seconds (default 60)
  128+N  stopped by signal N (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP): what `up` had made
     was removed; `down` and `cleanup` finish first"""


def exit_status(exc: BaseException) -> int:
    """The exit status of an error (see EXIT_STATUS)."""
    if isinstance(exc, (ScenarioError, ScenarioNotFound, UsageError)):
        return 2
    if isinstance(exc, LabStateError):
        return 1
    return 3


def _progress(msg: str) -> None:
    try:
        print(f"  {msg}", file=sys.stderr, flush=True)
    except OSError:   # the terminal is gone (SIGHUP): the command still finishes its work
        pass


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
    from lab.core.render import describe, render_plan
    scenario = api.load(args.scenario)
    plan = api.plan(args.scenario, datapath=args.datapath)
    if args.json:
        print(json.dumps({"schema_version": api.SCHEMA_VERSION, **plan.to_json()}, indent=1))
        return 0
    print(describe(plan), end="")
    if args.render:
        for node, r in render_plan(plan).items():
            print(f"\n### {node}: ovs-vsctl {' '.join(r.ovsdb)}")
            for bridge, text in r.flows.items():
                print(f"\n### {node}: flows of {bridge}\n{text}", end="")
            if r.ipset:
                print(f"\n### {node}: ipset restore -exist\n{r.ipset}", end="")
            print(f"\n### {node}: iptables-restore\n{r.iptables}", end="")
            for router, rules in r.routers.items():
                print(f"\n### {node}: {router} iptables-restore\n{rules}", end="")
            for fip, rules in r.fips.items():
                print(f"\n### {node}: {fip} iptables-restore\n{rules}", end="")
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
    print(f"lab up {args.scenario}" + (f" --name {args.name}" if args.name else ""), file=sys.stderr)
    result = api.up(args.scenario, name=args.name, datapath=args.datapath, progress=_progress)
    if result.already_up:
        print(f"lab {result.lab} is already up and healthy; nothing to do "
              f"(`lab down {result.lab}` to remove it)")
        return 0
    if result.repaired:
        print(f"lab {result.lab} was up but damaged; repaired in {result.elapsed:.2f} s: "
              + "; ".join(result.repaired))
        return _run_checks(result.lab, as_json=False, junit=None) if args.check else 0
    phases = ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in result.phases.items())
    print(f"lab {result.lab} is up in {result.elapsed:.2f} s ({phases})")
    if result.missing_leases:
        print(f"lab {result.lab}: {len(result.missing_leases)} instance(s) without their DHCP lease:")
        for line in result.missing_leases:
            print(f"  {line}")
        return 1
    if args.check:
        return _run_checks(result.lab, as_json=False, junit=None)
    return 0


def cmd_down(args) -> int:
    result = api.down(args.lab, progress=_progress)
    print(f"lab {result.lab} is down in {result.elapsed:.2f} s")
    return 0


def cmd_cleanup(args) -> int:
    if args.lab:
        removed = api.cleanup(args.lab, progress=_progress)
        print(f"removed lab {args.lab}" if removed else f"lab {args.lab}: nothing to clean up")
        return 0
    labs, stray = api.leftovers()
    if not labs and not stray:
        print("nothing to clean up")
        return 0
    print("`lab cleanup` removes every lab:")
    for item in labs:
        print(f"  {item.describe()}")
    if stray:
        print(f"  {len(stray)} namespace(s) of ours without a lab: {', '.join(stray[:5])}"
              f"{' ...' if len(stray) > 5 else ''}")
    if not args.yes:
        if not (sys.stdin.isatty() and sys.stdout.isatty()):
            print("lab: nothing removed: add --yes to remove all of the above, or name one lab "
                  "(`lab cleanup LAB`; `lab down LAB` for a lab that is up)", file=sys.stderr)
            return 2
        if input("remove all of them? [y/N] ").strip().lower() not in ("y", "yes"):
            print("nothing removed")
            return 0
    removed = api.cleanup(progress=_progress)
    print(f"removed: {', '.join(removed)}" if removed else "removed stray namespaces")
    return 0


def cmd_status(args) -> int:
    found = api.status(args.lab)
    labs = [s.details for s in found]
    if args.json:
        doc = found[0].to_json() if args.lab else {"schema_version": api.SCHEMA_VERSION, "labs": labs}
        print(json.dumps(doc, indent=1))
        return 0 if all(s.healthy for s in found) else 1
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
        for m in lab.get("metadata", []):
            where = m.get("netns") or m.get("socket")
            print(f"  metadata {m['name']:<20} pid {m['pid']} {'running' if m['running'] else 'NOT RUNNING'}  {where}")
    return 0 if all(not lab["problems"] for lab in labs) else 1


def cmd_exec(args) -> int:
    from lab.runtime import gateway
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise LabStateError("nothing to run: lab exec LAB TARGET -- COMMAND...")
    where = api.target(args.lab, args.target)
    gateway.exec_replace(command, netns=where.netns, env=where.env)
    return 0  # not reached


def cmd_capture(args) -> int:
    from lab.tools import capture
    state = api.state(args.lab)
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
    from lab.tools import trace
    state = api.state(args.lab)
    result = trace.trace(state.plan, args.source, args.destination, args.proto)
    if args.json:
        print(json.dumps({"schema_version": api.SCHEMA_VERSION, **result.to_json()}, indent=1))
    else:
        print(trace.render_table(result))
    return 0 if result.reached else 1


def cmd_graph(args) -> int:
    from lab.runtime import gateway
    from lab.tools import graph
    from lab.runtime.ovsdb import OvsdbError, read_ports
    state = api.state(args.lab)
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
    state = api.state(args.lab)
    if args.node not in {n.name for n in state.plan.nodes}:
        raise LabStateError(f"lab {args.lab} has no node {args.node!r} (nodes: "
                            f"{', '.join(n.name for n in state.plan.nodes)})")
    try:
        print(flows.show(state.plan, state.directory, args.node, args.bridge, args.diff))
    except ValueError as exc:
        raise LabStateError(str(exc)) from None
    return 0


def cmd_check(args) -> int:
    return _run_checks(args.lab, as_json=args.json, junit=args.junit)


def _run_checks(lab: str, as_json: bool, junit: str | None) -> int:
    from lab.tools import checks
    report = api.check(lab, progress=None if as_json else _progress)
    if junit:
        with open(junit, "w") as f:
            f.write(report.to_junit())
    if as_json:
        print(json.dumps(report.to_json(), indent=1))
    else:
        print(checks.table(report.results))
        print(f"{len(report.results) - len(report.failed)} passed, {len(report.failed)} failed "
              f"({report.elapsed:.1f} s)" + (f"; JUnit XML in {junit}" if junit else ""))
    return 0 if report.passed else 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lab", description="Real Neutron/Open vSwitch dataplanes "
                                "on one Linux machine, proved with packets.", epilog=EXIT_STATUS,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"neutron-lab {__version__}")
    sub = p.add_subparsers(dest="verb", required=True, metavar="COMMAND")
    _lifecycle_commands(sub)
    _inspection_commands(sub)
    s = sub.add_parser("cleanup", help="remove one lab whatever its state (even after kill -9); "
                       "without LAB, list every lab and remove them with --yes")
    s.add_argument("lab", nargs="?")
    s.add_argument("-y", "--yes", action="store_true", help="remove every lab without asking")
    s.set_defaults(fn=cmd_cleanup)
    return p


def _lifecycle_commands(sub) -> None:
    """list, show, up, down, status."""
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
    s.add_argument("--name", metavar="LAB", help="the lab's name (default: the scenario's): "
                   "a second copy of a scenario, e.g. for tests")
    s.set_defaults(fn=cmd_up)

    s = sub.add_parser("down", help="remove everything a lab made")
    s.add_argument("lab")
    s.set_defaults(fn=cmd_down)

    s = sub.add_parser("status", help="what is up")
    s.add_argument("lab", nargs="?")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_status)


def _inspection_commands(sub) -> None:
    """exec, check, capture, trace, graph, flows: what looks at a lab that is up."""
    s = sub.add_parser("exec", help="run a command at a target (instance, node, wire, router, DHCP server, external host)",
                       usage="lab exec LAB TARGET -- COMMAND...")
    s.add_argument("lab")
    s.add_argument("target", help="instance, node, wire (physical network), router, <network>-dhcp or external host")
    s.add_argument("command", nargs=argparse.REMAINDER)
    s.set_defaults(fn=cmd_exec)

    s = sub.add_parser("check", help="run the scenario's checks against the live lab")
    s.add_argument("lab")
    s.add_argument("--json", action="store_true")
    s.add_argument("--junit", metavar="FILE", help="also write the results as JUnit XML (one testcase per check)")
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


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:   # --help, --version (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return args.fn(args)
    except LabError as exc:
        print(f"lab: {exc}", file=sys.stderr)
        return exit_status(exc)
    except KeyboardInterrupt as exc:   # Ctrl-C, or SIGTERM/SIGHUP (lab.runtime.signals)
        signum = getattr(exc, "signum", 2)
        _say("lab: interrupted" if signum == 2 else f"lab: stopped by {signal.Signals(signum).name}")
        # A signal can land inside an object's constructor (pyroute2's asyncio loop); its
        # __del__ then fails while the process ends. What `up` made is rolled back already:
        # keep that noise (an "Exception ignored ... Traceback") off the user's screen.
        sys.unraisablehook = lambda _unraisable: None
        return 128 + signum
    except BrokenPipeError:  # e.g. `lab status | head`
        sys.stderr.close()
        return 0
    except OSError as exc:   # a file the command needed could not be used: say which, no traceback
        _say(f"lab: {exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""))
        return 3


def _say(text: str) -> None:
    try:
        print(text, file=sys.stderr)
    except OSError:
        pass


if __name__ == "__main__":
    sys.exit(main())
