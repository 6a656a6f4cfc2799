"""neutron-lab: real Neutron/Open vSwitch dataplanes on one Linux machine.

``lab.core`` is the pure pipeline (no root, no I/O beyond reading files): scenario -> plan ->
render. ``lab.runtime`` (root) applies a plan: namespaces, kernel links, OVS daemons, agents,
the ledger. ``lab.tools`` proves and explains a running lab: checks, capture, trace, flows,
graph. ``lab.cli`` is the command line. See docs/architecture.md.
"""

__version__ = "0.1.0"
