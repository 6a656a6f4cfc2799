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
    missing, extra, words = _differences(want, have)
    if not words:
        return None
    return Fault("ipset", node.name, node.netns, str(path), "the sets of ipset.restore", "; ".join(words),
                 f"`lab up {lab}` re-applies them", missing=tuple(missing), unexpected=tuple(extra))


def _differences(want: dict[str, set[str]], have: dict[str, set[str]]) -> tuple[list[str], list[str], list[str]]:
    """Set by set in name order: "SET" or "SET MEMBER" missing, "SET MEMBER" unexpected, and
    the same in words (a set missing, or how many members it lacks and has too many, the
    first three of each)."""
    missing, extra, words = [], [], []
    for name, members in sorted(want.items()):
        if name not in have:
            missing.append(name)
            words.append(f"set {name} is missing")
            continue
        for wrong, entries, said in ((sorted(members - have[name]), missing, "lacks {} member(s)"),
                                     (sorted(have[name] - members), extra, "has {} unexpected member(s)")):
            if wrong:
                entries += [f"{name} {m}" for m in wrong]
                words.append(f"set {name} {said.format(len(wrong))} ({', '.join(wrong[:3])}"
                             f"{', ...' if len(wrong) > 3 else ''})")
    return missing, extra, words
