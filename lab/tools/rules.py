"""Which firewall rule counted a check's packets: the packet counters of the rules that
decide each instance port of the check (source, destination, the instance behind a floating
IP), read through its plug (``lab/runtime/plugs``: the OVS firewall's br-int flows in tables
72 and 82) before and after the probe. Evidence, not a verdict: the capture judges."""

from __future__ import annotations

from lab.core import naming
from lab.core.plan import InstancePort, Plan
from lab.errors import LabError
from lab.runtime import plugs
from lab.tools import flows

Counters = dict[tuple[int, int, str, str], int]


class Counted:
    def __init__(self, plan: Plan, source: str, destination: str):
        self.plan = plan
        self.ports = [p for p in plan.ports if p.instance in (source, destination) or p.floating_ip == destination]
        self.before = {p.instance: self._read(p) for p in self.ports}

    def _read(self, port: InstancePort) -> Counters:
        try:
            return plugs.driver(port.plug.driver).counters(self.plan, port)
        except LabError:        # a node that is gone: the capture verdicts say what is wrong
            return {}

    def moved(self) -> list[str]:
        """'rule  <node> br-int table 82 (rules ingress) prio 40 [match] -> actions: N packet(s) (vm4)'."""
        lines = []
        for p in self.ports:
            before = self.before[p.instance]
            for (table, prio, match, actions), n in self._read(p).items():
                if n > before.get((table, prio, match, actions), 0):
                    name = flows.table_name(naming.BR_INT, table)
                    lines.append(f"rule {p.node} {naming.BR_INT} table {table} ({name}) prio {prio} [{match}] "
                                 f"-> {actions}: {n - before.get((table, prio, match, actions), 0)} packet(s) "
                                 f"({p.instance})")
        return lines
