"""The `security_groups:` section: groups and their rules, as Neutron stores them. The
`default` group is implicit in every project."""

from __future__ import annotations

import ipaddress
import re

from lab.core.scenario.checker import Checker, items, shown
from lab.core.scenario.model import NAME_RE, Rule, SecurityGroup
from lab.core.scenario.yamlsource import LineDict, LineList


def parse_security_groups(c: Checker, data: LineDict, projects: list[str]) -> list[SecurityGroup]:
    groups: list[SecurityGroup] = []
    raw = items(c, data, "security_groups", required=False)
    known = {(nm, str(body.get("project"))) for nm, body, _ in raw}
    for nm, body, line in raw:
        where = f"security_groups.{nm}"
        c.known_keys(body, ("project", "rules"), where)
        if nm == "default":
            c.add(line, where, "the default group exists in every project already (egress to "
                               "anywhere, ingress from its members); give yours another name")
            continue
        if not NAME_RE.match(nm):
            c.add(line, where, f"name {shown(nm)} must be lowercase letters, digits and '-'")
            continue
        project = c.project(body, f"{where}.project", projects)
        rules_raw = body.get("rules", LineList())
        if not isinstance(rules_raw, LineList):
            c.add(body.line_of("rules"), f"{where}.rules", "must be a list of rules")
            continue
        rules = []
        for i, r in enumerate(rules_raw):
            rule = _rule(c, r, rules_raw.line_of(i), f"{where}.rules[{i}]", project, known)
            if rule is not None:
                rules.append(rule)
        if project is not None:
            groups.append(SecurityGroup(nm, project, tuple(rules), line))
    return groups


def _rule(c: Checker, r, rline: int, rwhere: str, project: str | None, known: set) -> Rule | None:
    if not isinstance(r, LineDict):
        c.add(rline, rwhere, "must be a mapping like {direction: ingress, protocol: tcp, port: 22}")
        return None
    c.known_keys(r, ("direction", "protocol", "port", "remote_ip", "remote_group"), rwhere)
    direction = c.string(r, "direction", f"{rwhere}.direction", choices=("ingress", "egress"))
    protocol = c.string(r, "protocol", f"{rwhere}.protocol", required=False,
                        choices=("any", "icmp", "tcp", "udp")) or "any"
    port_min, port_max = _ports(c, r, rwhere, protocol)
    remote_ip = remote_group = None
    if "remote_ip" in r and "remote_group" in r:
        c.add(rline, rwhere, "give remote_ip or remote_group, not both")
    elif "remote_group" in r:
        remote_group = str(r["remote_group"])
        if remote_group != "default" and (remote_group, str(project)) not in known:
            c.add(r.line_of("remote_group"), f"{rwhere}.remote_group",
                  f"unknown security group {shown(remote_group)} in project {project}")
    else:
        try:
            remote_ip = str(ipaddress.IPv4Network(str(r.get("remote_ip", "0.0.0.0/0")), strict=True))
        except ValueError as exc:
            c.add(r.line_of("remote_ip"), f"{rwhere}.remote_ip",
                  f"{shown(r.get('remote_ip'))} is not an IPv4 CIDR: {exc}")
    if direction is None:
        return None
    return Rule(direction, protocol, port_min, port_max, remote_ip, remote_group, rline)


def _ports(c: Checker, r: LineDict, rwhere: str, protocol: str) -> tuple[int | None, int | None]:
    """port: N or N-M, for tcp and udp."""
    if "port" not in r:
        return None, None
    m = re.fullmatch(r"(\d{1,5})(?:-(\d{1,5}))?", str(r["port"]))
    if protocol not in ("tcp", "udp"):
        c.add(r.line_of("port"), f"{rwhere}.port", "a port needs protocol tcp or udp")
    elif not m or not 1 <= int(m.group(1)) <= int(m.group(2) or m.group(1)) <= 65535:
        c.add(r.line_of("port"), f"{rwhere}.port", f"{shown(r['port'])} must be a port or a range like 8000-8080")
    else:
        return int(m.group(1)), int(m.group(2) or m.group(1))
    return None, None
