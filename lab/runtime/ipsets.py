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


def node_problem(node: NodePlan, lab: str) -> str | None:
    """How NODE's sets differ from its ipset.restore, in words; None when they agree (or when
    the node has no sets, or its namespace is gone: that is reported on its own)."""
    path = Path(node.rundir) / naming.NODE_IPSET_FILE
    if not path.is_file() or not netns.exists(node.netns):
        return None
    want = parse_restore(path.read_text())
    try:
        have = sets_now(node.netns)
    except LabError as exc:
        return f"{node.name}: cannot read its ipsets ({exc})"
    wrong = []
    for name, members in sorted(want.items()):
        if name not in have:
            wrong.append(f"set {name} is missing")
            continue
        missing, extra = sorted(members - have[name]), sorted(have[name] - members)
        if missing:
            wrong.append(f"set {name} lacks {len(missing)} member(s) ({', '.join(missing[:3])}"
                         f"{', ...' if len(missing) > 3 else ''})")
        if extra:
            wrong.append(f"set {name} has {len(extra)} unexpected member(s) ({', '.join(extra[:3])}"
                         f"{', ...' if len(extra) > 3 else ''})")
    if not wrong:
        return None
    return f"{node.name}: its remote-group ipsets differ from the plan: {'; '.join(wrong)}; `lab up {lab}` re-applies them"


def problems(plan: Plan) -> list[str]:
    return [p for node in plan.nodes if (p := node_problem(node, plan.lab))]
