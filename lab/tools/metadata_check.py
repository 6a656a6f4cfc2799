"""The ``metadata`` check: an instance fetches its own instance-id from
http://169.254.169.254/ and the answer is compared with the plan's; captures prove the way.

Evidence: the request (its client port and token) arrives on the router's qr- port, the
l3 agent's nat ``REDIRECT --to-ports 9697`` rule counted it, and no packet to 169.254.169.254
leaves through qg- (an absence: UNPROVEN when that capture did not start or lost packets).
"""

from __future__ import annotations

import json
import re
import sys

from lab.budget import budget
from lab.core import metadata, naming
from lab.core.plan import Plan
from lab.core.scenario import Check
from lab.runtime import gateway
from lab.tools import packets
from lab.tools.capture import Tcpdump
from lab.tools.checks import FAIL, PASS, UNPROVEN, Result, new_probe, _evidence

REDIRECT_RE = re.compile(r"^\s*(\d+)\s+\d+\s+REDIRECT\s.*169\.254\.169\.254\s.*redir ports 9697", re.M)


def fetch(plan: Plan, instance: str, path: str = "/latest/meta-data/instance-id", sport: int = 0,
          token: str = "", headers: tuple[str, ...] = ()) -> dict:
    """Run the probe client in INSTANCE's namespace: {status, body} or {error}."""
    argv = [sys.executable, "-m", "lab.tools.metadata_probe", "--path", path, "--sport", str(sport),
            "--token", token, "--timeout", str(budget(10))]
    for h in headers:
        argv += ["--header", h]
    out = gateway.run(argv, netns=plan.port(instance).netns, check=False, timeout=budget(10) + 10)
    try:
        return json.loads(out.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": f"probe client failed: {out.stderr.strip()[-300:]}"}


def redirect_count(netns: str) -> int:
    """Packets the qrouter-'s metadata REDIRECT rule has matched."""
    out = gateway.run(["iptables", "-w", "5", "-t", "nat", "-L", f"{naming.L3_WRAP}-PREROUTING", "-v", "-x", "-n"],
                      netns=netns, check=False).stdout
    return sum(int(m.group(1)) for m in REDIRECT_RE.finditer(out))


def run(plan: Plan, c: Check) -> Result:
    proxy = metadata.for_instance(plan, c.source)
    expected = metadata.ec2_id(plan, c.source)
    what = f"instance-id {expected} ({c.source} -> http://{metadata.METADATA_IP}/latest/meta-data/instance-id)"
    if proxy is None:
        return Result(c, what, "no metadata proxy serves this instance", False, [])
    caps, router = _capture_points(plan, proxy, plan.port(c.source).network)
    probe = new_probe("tcp", 80)
    before = redirect_count(router.netns) if router else 0
    try:
        for cap in caps:
            cap.start()
        answer = fetch(plan, c.source, sport=probe.sport, token=probe.token.hex())
        for cap in caps:
            if cap.error is None:
                cap.settle()
    finally:
        for cap in caps:
            cap.stop()
    judged = [_arrives(caps[0], plan.port(c.source).ip, probe)]
    if router:
        judged.append(_redirected(redirect_count(router.netns) - before, router.name))
    judged += [_never_leaves(cap) for cap in caps[1:]]
    seen = answer.get("error") or f"HTTP {answer['status']}: {answer['body'][:60]!r}"
    reached = answer.get("status") == 200 and answer.get("body") == expected
    evidence = [f"{s:<5}{t}" if s != UNPROVEN else f"{s} {t}" for s, t in judged]
    passed = reached and all(s == PASS for s, _ in judged)
    unproven = reached and not passed and all(s != FAIL for s, _ in judged)
    return Result(c, what, seen, passed, evidence, unproven)


def _capture_points(plan: Plan, proxy: metadata.Proxy, network: str):
    """(captures, router instance or None): the port the request arrives on (qr- of the
    instance's network, or the qdhcp- port of an isolated network), then qg- if any."""
    if proxy.resource == "Network":
        dhcp = next(d for d in plan.dhcp_servers if d.name == proxy.name)
        return [Tcpdump(f"{dhcp.name} {dhcp.port.ns_dev}", dhcp.netns, dhcp.port.ns_dev)], None
    router = next(r for r in plan.router_instances if r.name == proxy.name)
    qr = next(i for i in router.interfaces if i.network == network)
    caps = [Tcpdump(f"{router.name} {qr.ns_dev}", router.netns, qr.ns_dev)]
    if router.gateway:
        caps.append(Tcpdump(f"{router.name} {router.gateway.ns_dev}", router.netns, router.gateway.ns_dev,
                            inbound=False))
    return caps, router


def _arrives(cap: Tcpdump, src: str, probe) -> tuple[str, str]:
    token = probe.token.hex().encode()
    hits = [p for p in cap.packets if p.ip_src == src and p.ip_dst == metadata.METADATA_IP
            and p.sport == probe.sport and p.dport == 80]
    with_token = [p for p in hits if token in p.payload]
    what = f"the request (client port {probe.sport}) arrives on {cap.label} for {metadata.METADATA_IP}:80"
    if with_token:
        return PASS, f"{what}: {len(hits)} segments, e.g. {_evidence(cap.label, with_token[0])}"
    problem = cap.problem()
    return (UNPROVEN if problem else FAIL), f"{what}: not seen{'; ' + problem if problem else ''}"


def _redirected(counted: int, router: str) -> tuple[str, str]:
    what = f"{router}'s nat REDIRECT of {metadata.METADATA_IP}:80 to {metadata.METADATA_PORT} matched it"
    return (PASS, f"{what} ({counted} new connection(s) counted)") if counted > 0 else (FAIL, f"{what}: counter unchanged")


def _never_leaves(cap: Tcpdump) -> tuple[str, str]:
    leaked = [p for p in cap.packets for layer in p.layers() if layer.ip_dst == metadata.METADATA_IP]
    what = f"nothing for {metadata.METADATA_IP} leaves through {cap.label}"
    if leaked:
        return FAIL, f"{what}: {len(leaked)} seen, e.g. {_evidence(cap.label, leaked[0])}"
    problem = cap.problem()
    if problem:
        return UNPROVEN, f"{what}: not proven; {problem}"
    return PASS, f"{what}: none among the {len(cap.packets)} frames captured there"
