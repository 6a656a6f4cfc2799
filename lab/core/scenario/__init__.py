"""Scenario files: find, load, validate, resolve. Pure: reads files, imports nothing that
touches the system.

A scenario describes what Neutron would have been asked for (nodes, physical networks,
projects, networks, instances) and the checks that prove the dataplane. ``load_scenario``
returns an immutable, fully resolved ``Scenario`` (every instance has its IP and MAC) or raises
``ScenarioError`` listing every problem with its file:line.

Modules: ``model`` (the dataclasses), ``loader`` (finding and reading files), ``yamlsource``
(line-aware, guarded YAML), ``includes``, one validator per section (``nodes``, ``physical``,
``networks``, ``security_groups``, ``instances``, ``routers``, ``external_hosts``, ``checks``)
sharing ``checker``, ``ml2`` (segment ranges and allocation), ``ipam`` and ``addresses``
(pools and address allocation), ``parse`` (the order of it all). The format is documented in
docs/scenario-format.md.
"""

from lab.core.scenario.checker import MAX_PROBLEMS
from lab.core.scenario.includes import merge_included
from lab.core.scenario.loader import builtin_scenarios, find_scenario, read_source, scenarios_dir
from lab.core.scenario.model import (DEFAULT_MTU, DEFAULT_MTU_UNDERLAY, DEFAULT_TCP_PORT, EXPECTS,
                                     FIREWALL_DRIVERS_LATER, FIREWALL_DRIVERS_NOW, NAME_RE,
                                     NETWORK_TYPES_LATER, NETWORK_TYPES_NOW, PACKET_KINDS, PATH_KINDS,
                                     PROTOS, RESERVED_BRIDGES, ROLES, TUNNEL_ID_MAX, TUNNEL_TYPES, Check,
                                     ExternalHost, Instance, Network, Node, PathAssertion,
                                     PhysicalNetwork, Router, RouterInterface, Rule, Scenario,
                                     SecurityGroup)
from lab.core.scenario.parse import load_scenario, parse_scenario
from lab.core.scenario.yamlsource import (MAX_BYTES, MAX_DEPTH, MAX_NODES, LineDict, LineList,
                                          SourceLine, load_yaml)

__all__ = [
    "Check", "DEFAULT_MTU", "DEFAULT_MTU_UNDERLAY", "DEFAULT_TCP_PORT", "EXPECTS", "ExternalHost",
    "FIREWALL_DRIVERS_LATER", "FIREWALL_DRIVERS_NOW", "Instance", "LineDict", "LineList", "MAX_BYTES",
    "MAX_DEPTH", "MAX_NODES", "MAX_PROBLEMS", "NAME_RE", "NETWORK_TYPES_LATER", "NETWORK_TYPES_NOW",
    "Network", "Node", "PACKET_KINDS", "PATH_KINDS", "PROTOS", "PathAssertion", "PhysicalNetwork",
    "RESERVED_BRIDGES", "ROLES", "Router", "RouterInterface", "Rule", "Scenario", "SecurityGroup",
    "SourceLine", "TUNNEL_ID_MAX", "TUNNEL_TYPES", "builtin_scenarios", "find_scenario", "load_scenario",
    "load_yaml", "merge_included", "parse_scenario", "read_source", "scenarios_dir",
]
