"""The lab on Open vSwitch's kernel datapath, inside the VM (run by tests/vm/suite through
run-in-vm): every shipped scenario's ``lab up`` + ``lab status`` + ``lab check`` + ``lab down``
through the real command line, plus what the kernel datapath does differently:

- ``lab status`` says ``system``; each node's ``ovs-vswitchd`` made its kernel datapath
  (``system@ovs-system``) in the node's own namespace, holding the bridges' ports;
- tunnels: the kernel's ``vxlan_sys_4789`` / ``gre_sys`` port in that datapath and ``local_ip``
  on the underlay NIC itself (no ``br-phy``, which only the userspace datapath needs);
- after ``down``: none of the lab's namespaces, processes or state left, and no kernel datapath
  in the VM's own namespace.

Results go to OUT/results.json (per scenario: the times of up, check and down, checks passed
and failed, and every failed expectation); a table goes to stdout. Exit 0 only when all passed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
STATE_ROOT = Path(os.environ.get("LAB_STATE_DIR", "/run/neutron-lab"))
TUNNEL_PORTS = {"vxlan": "vxlan_sys_4789", "gre": "gre_sys"}


def lab(*args: str, timeout: float = 1800) -> tuple[int, str, float]:
    """Run `lab ARGS` (this interpreter, this checkout); its return code, output and seconds."""
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "lab.cli", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)
    return proc.returncode, proc.stdout + proc.stderr, time.monotonic() - started


def shipped_scenarios() -> list[str]:
    return sorted(p.stem for p in (REPO / "scenarios").glob("*.yaml"))


class Scenario:
    """One scenario's run; every failed expectation lands in self.failures."""

    def __init__(self, name: str, datapath: str = "system"):
        self.name = name
        self.want = datapath
        self.times: dict[str, float] = {}
        self.failures: list[str] = []
        self.checks = {"passed": 0, "failed": 0}
        self.datapath = None
        self.tcp_seconds: float | None = None     # the 1 MiB echo of "TCP across hosts"

    def expect(self, ok: bool, what: str) -> bool:
        if not ok:
            self.failures.append(what)
            print(f"  FAIL {self.name}: {what}", flush=True)
        return ok

    def run(self) -> None:
        rc, out, self.times["up"] = lab("up", self.name, "--datapath", self.want)
        print(out, end="", flush=True)
        if not self.expect(rc == 0, f"lab up exited {rc}"):
            self.down(was_up=False)     # a failed up removes what it made: nothing may be left
            return
        try:
            self.status()
            if self.want == "system":
                self.kernel_datapath()
            self.check()
            if self.want == "system":
                self.conntrack_zones()
        finally:
            self.down()

    def status(self) -> None:
        rc, out, _ = lab("status", self.name, "--json")
        if not self.expect(rc == 0, f"lab status exited {rc}: {out[-500:]}"):
            return
        info = json.loads(out)
        self.datapath = info.get("datapath")
        self.expect(self.datapath == self.want, f"lab status says datapath {self.datapath!r}, not {self.want!r}")
        self.expect(not info.get("problems"), f"lab status reports problems: {info.get('problems')}")

    def kernel_datapath(self) -> None:
        plan = json.loads((STATE_ROOT / self.name / "plan.json").read_text())
        for node in plan["nodes"]:
            rc, dp, _ = lab("exec", self.name, node["name"], "--", "ovs-dpctl", "show")
            if not self.expect(rc == 0 and "system@ovs-system" in dp,
                               f"{node['name']}: no kernel datapath in its namespace: {dp.strip()[-300:]}"):
                continue
            for bridge in ["br-int"] + [b["bridge"] for b in node["physical_bridges"]]:
                self.expect(f": {bridge} (internal)" in dp, f"{node['name']}: {bridge} not in the kernel datapath")
            tunnel = node.get("tunnel")
            if tunnel:
                self.tunnel(node["name"], tunnel, dp)

    def tunnel(self, node: str, tunnel: dict, dp: str) -> None:
        for kind in sorted({p["type"] for p in tunnel["ports"]}):
            self.expect(TUNNEL_PORTS[kind] in dp, f"{node}: no {TUNNEL_PORTS[kind]} port in the kernel datapath")
        self.expect(tunnel.get("bridge") is None, f"{node}: plan puts local_ip on {tunnel.get('bridge')}, not the NIC")
        rc, addrs, _ = lab("exec", self.name, node, "--", "ip", "-4", "-o", "address", "show", "dev", tunnel["nic"])
        self.expect(rc == 0 and f"inet {tunnel['local_ip']}/" in addrs,
                    f"{node}: local_ip {tunnel['local_ip']} is not on {tunnel['nic']}: {addrs.strip()}")

    def conntrack_zones(self) -> None:
        """The probes' connections were tracked in the firewall's zones of the compute nodes'
        kernel conntrack: the hybrid firewall's per-port zones (raw table `CT --zone`, from
        4097); the OVS firewall's per-network zones (`ct(zone=reg6)` = the node's local VLANs)."""
        plan = json.loads((STATE_ROOT / self.name / "plan.json").read_text())
        hybrid: set[int] | None = None
        for node in plan["nodes"]:
            if not node["ports"]:
                continue
            rc, table, _ = lab("exec", self.name, node["name"], "--", "cat", "/proc/net/nf_conntrack")
            zones = {int(z) for z in re.findall(r"\bzone=(\d+)", table)} if rc == 0 else set()
            if node.get("firewall_driver") == "openvswitch":
                vlans = {lvid for _, lvid in node["local_vlans"]}
                self.expect(bool(zones) and zones <= vlans,
                            f"{node['name']}: OVS firewall conntrack zones {sorted(zones)}, local VLANs {sorted(vlans)}")
            elif node.get("firewall_driver", "iptables_hybrid") == "iptables_hybrid":
                hybrid = (hybrid or set()) | zones
        if hybrid is not None:
            self.expect(any(z > 4096 for z in hybrid),
                        f"no conntrack entry in a per-port zone (>4096) on the compute nodes: zones {sorted(hybrid)}")

    def check(self) -> None:
        rc, out, self.times["check"] = lab("check", self.name, "--json")
        try:
            report = json.loads(out[out.index("{"):])
        except ValueError:
            self.expect(False, f"lab check printed no JSON (exit {rc}): {out[-800:]}")
            return
        for r in report["results"]:
            self.checks["passed" if r["passed"] else "failed"] += 1
            status = "PASS" if r["passed"] else "FAIL"
            print(f"  {status}  {r['name']}: expected {r['expected']}, seen {r['seen']}", flush=True)
            m = re.search(r"bytes echoed intact, MSS \d+, ([\d.]+) s", r["seen"])
            if m and r["name"].startswith("TCP across hosts"):
                self.tcp_seconds = float(m.group(1))
            if not r["passed"]:
                self.expect(False, f"check {r['name']!r}: expected {r['expected']}, seen {r['seen']}; "
                                   + " | ".join(r["evidence"])[:600])
        self.expect(rc == 0, f"lab check exited {rc}")

    def down(self, was_up: bool = True) -> None:
        if was_up:
            rc, out, self.times["down"] = lab("down", self.name)
            print(out, end="", flush=True)
            self.expect(rc == 0, f"lab down exited {rc}")
        left = [n for n in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
                if n.startswith(f"nlab.{self.name}.")]
        self.expect(not left, f"namespaces left after down: {left}")
        self.expect(not (STATE_ROOT / self.name).exists(), f"state directory {STATE_ROOT / self.name} left")
        mine = f"{STATE_ROOT / self.name}/"
        procs = [p for p in Path("/proc").glob("[0-9]*") if mine in _cmdline(p)]
        self.expect(not procs, f"processes left after down: {[p.name for p in procs]}")
        dps = subprocess.run(["ovs-dpctl", "dump-dps"], capture_output=True, text=True).stdout.strip()
        self.expect(not dps, f"a kernel datapath appeared in the VM's own namespace: {dps}")

    def to_json(self) -> dict:
        return {"scenario": self.name, "datapath": self.datapath or self.want, "passed": not self.failures,
                "seconds": {k: round(v, 1) for k, v in self.times.items()}, "checks": self.checks,
                "tcp_1mib_echo_seconds": self.tcp_seconds, "failures": self.failures}


def _cmdline(proc: Path) -> str:
    try:
        return (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("scenarios", nargs="*", help="default: every scenario in scenarios/")
    p.add_argument("--out", type=Path, default=Path("/vm-out"))
    p.add_argument("--pytest", action="append", default=[], metavar="PATH",
                   help="also run these integration tests (datapath-specific ones)")
    p.add_argument("--bench", action="store_true",
                   help="each scenario on both datapaths in this run, for docs/benchmarks.md")
    args = p.parse_args(argv)
    names = args.scenarios or shipped_scenarios()
    print(f"kernel datapath suite: {', '.join(names)} (LAB_TIME_SCALE={os.environ.get('LAB_TIME_SCALE', '1')})",
          flush=True)
    results, started = [], time.monotonic()
    for name in names:
        for datapath in ("system", "netdev") if args.bench else ("system",):
            print(f"=== {name} ({datapath} datapath)", flush=True)
            s = Scenario(name, datapath)
            s.run()
            results.append(s.to_json())
            write(args.out, results, started)
    ok = all(r["passed"] for r in results)
    if args.pytest:
        ok = run_pytest(args.pytest, results, args.out, started) and ok
    print_table(results)
    if args.bench:
        print_bench(results)
    return 0 if ok else 1


def run_pytest(paths: list[str], results: list[dict], out: Path, started: float) -> bool:
    print(f"=== pytest {' '.join(paths)}", flush=True)
    t = time.monotonic()
    env = dict(os.environ, LAB_REQUIRE_INTEGRATION="1")
    rc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *paths],
                        cwd=REPO, env=env).returncode
    results.append({"scenario": "pytest " + " ".join(paths), "passed": rc == 0,
                    "seconds": {"tests": round(time.monotonic() - t, 1)}, "failures": [] if rc == 0 else [f"exit {rc}"]})
    write(out, results, started)
    return rc == 0


def write(out: Path, results: list[dict], started: float) -> None:
    if out.is_dir():
        doc = {"kernel": os.uname().release, "time_scale": os.environ.get("LAB_TIME_SCALE"),
               "seconds": round(time.monotonic() - started, 1), "results": results}
        (out / "results.json").write_text(json.dumps(doc, indent=1) + "\n")


def print_table(results: list[dict]) -> None:
    print(f"\n{'':4} {'scenario':40} {'datapath':8} {'up':>6} {'check':>6} {'down':>6}  checks")
    for r in results:
        sec, checks = r["seconds"], r.get("checks")
        cells = " ".join(f"{sec[k]:6.1f}" if k in sec else f"{'-':>6}" for k in ("up", "check", "down"))
        if checks is None:   # a pytest run
            cells = f"{sec.get('tests', 0):6.1f} s"
        said = f"{checks['passed']} passed, {checks['failed']} failed" if checks else ""
        print(f"{'PASS' if r['passed'] else 'FAIL':4} {r['scenario']:40} {r.get('datapath') or '-':8} {cells}  {said}")


def print_bench(results: list[dict]) -> None:
    """docs/benchmarks.md's table: per scenario, each datapath's times and the kernel/userspace ratio."""
    by = {(r["scenario"], r.get("datapath")): r for r in results if "checks" in r}
    print("\n| scenario | datapath | up (s) | check (s) | down (s) | TCP 1 MiB echo, 2 nodes (s) |")
    print("|---|---|---:|---:|---:|---:|")
    for (name, dp), r in sorted(by.items()):
        sec = r["seconds"]
        tcp = r.get("tcp_1mib_echo_seconds")
        print(f"| {name} | {dp} | {sec.get('up', 0):.1f} | {sec.get('check', 0):.1f} | {sec.get('down', 0):.1f} "
              f"| {tcp if tcp is not None else '-'} |")
    for name in sorted({n for n, _ in by}):
        k, u = by.get((name, "system")), by.get((name, "netdev"))
        if k and u and k.get("tcp_1mib_echo_seconds") and u.get("tcp_1mib_echo_seconds"):
            ratio = u["tcp_1mib_echo_seconds"] / k["tcp_1mib_echo_seconds"]
            print(f"{name}: TCP through two nodes, kernel datapath {ratio:.1f}x the userspace one's rate")


if __name__ == "__main__":
    sys.exit(main())
