"""Remote security groups on iptables nodes: one ipset per remote group, or expanded rules.

The OVS agent's ``[securitygroup] enable_ipset`` (default True) decides how the iptables
firewall (``neutron/agent/linux/iptables_firewall.py``) writes a rule whose remote is a
security group:

- ``enable_ipset = True``: one rule ``<protocol/port> -m set --match-set NIPv4<group id> src
  -j RETURN`` (``dst`` for egress: ``IPSET_DIRECTION``), from ``_generate_ipset_rule_args``,
  and one set per remote group and IP version, ``hash:net family inet``, holding every
  member's address, the port's own included (the set is shared by every port of the node).
  ``ipset_manager.IpsetManager`` names it ``N`` + ethertype + group id cut to 29 characters
  and fills it as ``_refresh_set`` does: ``create -exist``, a restore into ``<name>-n``,
  ``swap``, ``destroy`` of the ``-n`` set. This module renders the node's sets as one
  ``ipset restore -exist`` input doing the same steps (``restore_input``).
- ``enable_ipset = False``: ``_expand_sg_rule_with_remote_ips`` makes one rule per member
  address, skipping the port's own fixed IPs (``if ip not in port_ips``).

The lab's scenarios are IPv4 only, so only ``IPv4`` sets exist: the server sends a remote
group's members for the ethertypes of the rules that name it
(``SecurityGroupInfoAPIMixin.security_group_info_for_ports``). Pure: no I/O.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lab.core import naming

if TYPE_CHECKING:  # pragma: no cover
    from lab.core.plan import InstancePort, NodePlan, PortRule

ETHERTYPE = "IPv4"
SET_TYPE = "hash:net"
FAMILY = "inet"
SWAP_SUFFIX = "-n"
IPSET_DIRECTION = {"ingress": "src", "egress": "dst"}


def uses_ipset(node: "NodePlan", rule: "PortRule") -> bool:
    return node.enable_ipset and rule.remote_group_id is not None


def match_set(node: "NodePlan", rule: "PortRule") -> str | None:
    """``-m set --match-set NAME src|dst`` of a remote-group rule on an ipset node, else None."""
    if not uses_ipset(node, rule):
        return None
    return f"-m set --match-set {naming.ipset_name(rule.remote_group_id, ETHERTYPE)} {IPSET_DIRECTION[rule.direction]}"


def expanded_remotes(node: "NodePlan", port: "InstancePort", rule: "PortRule") -> tuple[str, ...]:
    """The CIDRs a rule is written out for: none on an ipset node's remote-group rule; the
    members less the port's own address on a node without ipset; the rule's CIDR otherwise."""
    if uses_ipset(node, rule):
        return ()
    if rule.remote_group_id is None:
        return rule.remotes
    own = f"{port.ip}/32"
    return tuple(r for r in rule.remotes if r != own)


def node_sets(node: "NodePlan") -> dict[str, tuple[str, ...]]:
    """Set name -> members (CIDRs, in the plan's order) of every remote group a port of NODE
    names in a rule, in the order the ports' rules first name them. Empty without ipset."""
    sets: dict[str, tuple[str, ...]] = {}
    if not node.enable_ipset:
        return sets
    for port in node.ports:
        for rule in port.rules:
            if rule.remote_group_id is not None:
                sets.setdefault(naming.ipset_name(rule.remote_group_id, ETHERTYPE), rule.remotes)
    return sets


def restore_input(node: "NodePlan", iptables: bool = True) -> str:
    """``ipset restore -exist`` input for NODE's sets ("" when it has none, or when its firewall
    driver keeps no iptables): per set, IpsetManager's create/refresh/swap/destroy."""
    if not iptables:
        return ""
    lines: list[str] = []
    for name, members in node_sets(node).items():
        new = name + SWAP_SUFFIX
        lines += [f"create {name} {SET_TYPE} family {FAMILY}",
                  f"create {new} {SET_TYPE} family {FAMILY}",
                  f"flush {new}"]           # a -n set left by an interrupted run starts empty
        lines += [f"add {new} {m}" for m in members]
        lines += [f"swap {new} {name}", f"destroy {new}"]
    return "".join(line + "\n" for line in lines)


def rule_count(node: "NodePlan") -> int:
    """Security-group rules of remote groups the node's iptables hold (issue 14: linear)."""
    return sum(1 if uses_ipset(node, r) else len(expanded_remotes(node, p, r))
               for p in node.ports for r in p.rules if r.remote_group_id is not None)


def parse_restore(text: str) -> dict[str, set[str]]:
    """The sets (name -> members) an ``ipset restore`` input, or ``ipset save`` output, leaves
    behind: create, add, del, flush, swap and destroy are played in order."""
    sets: dict[str, set[str]] = {}
    for line in text.splitlines():
        words = [w for w in line.split() if w != "-exist"]
        if words[:1] == ["ipset"]:
            words = words[1:]
        if len(words) < 2:
            continue
        verb, name, rest = words[0], words[1], words[2:]
        if verb == "create":
            sets.setdefault(name, set())
        elif verb == "add" and rest:
            sets.setdefault(name, set()).add(_cidr(rest[0]))
        elif verb == "del" and rest:
            sets.get(name, set()).discard(_cidr(rest[0]))
        elif verb == "flush":
            sets[name] = set()
        elif verb == "swap" and rest:
            sets[name], sets[rest[0]] = sets.get(rest[0], set()), sets.get(name, set())
        elif verb == "destroy":
            sets.pop(name, None)
    return sets


def _cidr(entry: str) -> str:
    """``ipset save`` prints a /32 of hash:net as a bare address."""
    return entry if "/" in entry else f"{entry}/32"
