"""neutron-lab: real Neutron/Open vSwitch dataplanes on one Linux machine.

Pure core (no root, no I/O beyond reading files): ``scenario`` -> ``plan`` -> ``render``.
Runtime (root): ``runtime`` applies a plan through ``gateway`` (programs), ``netns`` and
``kernel`` (pyroute2) and ``ovs``; ``checks`` proves the result with real packets.
See docs/architecture.md.
"""

__version__ = "0.1.0"
