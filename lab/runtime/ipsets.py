"""The remote groups' ipsets in a node namespace (lab/core/ipsets.py renders them).

ipsets belong to a network namespace: they are made in the node's namespace with one
``ipset restore -exist`` (through the gateway), before the iptables rules that match them, and
go away with that namespace (the kernel destroys a namespace's sets with it), so ``down``
needs no step of its own. The rendered input is kept as ``<node rundir>/ipset.restore``:
``status`` compares the sets the namespace holds now (``ipset save``) with what it says, set
by set and member by member, and ``up`` applies it again (``lifecycle._node_configure``)."""

from __future__ import annotations

from pathlib import Path

from lab.core import naming, plugs
from lab.core.ipsets import node_sets, parse_restore
from lab.core.plan import NodePlan, Plan
from lab.errors import LabError
from lab.runtime import gateway, netns
from lab.runtime.faults import Fault, unreadable


def needed(plan: Plan) -> bool:
    """Whether a node keeps remote groups in ipsets (then `up` needs the ipset program)."""
    return any(plugs.driver(n.firewall_driver).iptables and node_sets(n) for n in plan.nodes)


def apply(node: NodePlan, text: str) -> None:
    """Write NODE's ipset restore input beside its other files and apply it in its namespace."""
    path = Path(node.rundir) / naming.NODE_IPSET_FILE
    path.write_text(text)
    gateway.run(["ipset", "restore", "-exist", "-file", str(path)], netns=node.netns)


def sets_now(ns: str) -> dict[str, set[str]]:
    """The sets namespace NS holds, with their members."""
    return parse_restore(gateway.run(["ipset", "save"], netns=ns).stdout)


def node_fault(node: NodePlan, lab: str) -> Fault | None:
    """How NODE's sets differ from its ipset.restore (`missing`/`unexpected`: "SET" for a whole
    set, "SET MEMBER" for a member); None when they agree (or when the node has no sets, or its
    namespace is gone: that is a fault of its own)."""
    path = Path(node.rundir) / naming.NODE_IPSET_FILE
    if not path.is_file() or not netns.exists(node.netns):
        return None
    want = parse_restore(path.read_text())
    try:
        have = sets_now(node.netns)
    except LabError as exc:
        return unreadable(node.name, node.netns, "ipsets", exc, lab)
    missing, extra = _differences(want, have)
    if not missing and not extra:
        return None
    return Fault("ipset", node.name, node.netns, str(path), "the sets of ipset.restore",
                 "; ".join(_words(want, missing, extra)), f"`lab up {lab}` re-applies them",
                 missing=tuple(missing), unexpected=tuple(extra))


def _differences(want: dict[str, set[str]], have: dict[str, set[str]]) -> tuple[list[str], list[str]]:
    """("SET" or "SET MEMBER" missing, "SET MEMBER" unexpected), set by set in name order."""
    missing, extra = [], []
    for name, members in sorted(want.items()):
        if name not in have:
            missing.append(name)
            continue
        missing += [f"{name} {m}" for m in sorted(members - have[name])]
        extra += [f"{name} {m}" for m in sorted(have[name] - members)]
    return missing, extra


def _words(want: dict[str, set[str]], missing: list[str], extra: list[str]) -> list[str]:
    """Per set: missing, or how many members it lacks and has too many (the first three)."""
    def listed(entries, name):
        members = [e.split(" ", 1)[1] for e in entries if e.startswith(f"{name} ")]
        return len(members), f"{', '.join(members[:3])}{', ...' if len(members) > 3 else ''}"
    out = []
    for name in sorted(want):
        if name in missing:
            out.append(f"set {name} is missing")
            continue
        (lacks, first_lacks), (more, first_more) = listed(missing, name), listed(extra, name)
        if lacks:
            out.append(f"set {name} lacks {lacks} member(s) ({first_lacks})")
        if more:
            out.append(f"set {name} has {more} unexpected member(s) ({first_more})")
    return out


def faults(plan: Plan) -> list[Fault]:
    return [f for node in plan.nodes if (f := node_fault(node, plan.lab))]
