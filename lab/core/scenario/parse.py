"""``parse_scenario``: YAML text -> a validated, fully resolved ``Scenario`` (every instance has
its IP and MAC), or ``ScenarioError`` listing every problem with its file:line (at most
``MAX_PROBLEMS``). The sections are validated in the order they depend on each other; each
has its own module."""

from __future__ import annotations

import re

from lab.core.scenario.addresses import assign_addresses
from lab.core.scenario.checker import MAX_PROBLEMS, Checker, Claims, TooManyProblems, shown
from lab.core.scenario.checks import parse_checks
from lab.core.scenario.external_hosts import parse_external_hosts, resolve_external_hosts
from lab.core.scenario.includes import include
from lab.core.scenario.instances import parse_instances
from lab.core.scenario.loader import Unreadable, find_scenario, read_source
from lab.core.scenario.ml2 import parse_ml2
from lab.core.naming import NEUTRON_MAC_PREFIX
from lab.core.scenario.model import DVR_BASE_MAC, NAME_RE, Scenario
from lab.core.scenario.networks import parse_networks
from lab.core.scenario.nodes import dvr_agents, parse_nodes, tunnel_endpoints
from lab.core.scenario.physical import parse_physical_networks, parse_projects
from lab.core.scenario.routers import parse_routers
from lab.core.scenario.security_groups import parse_security_groups
from lab.core.scenario.yamlsource import LineDict, load_yaml
from lab.errors import Problem, ScenarioError

SECTIONS = ("name", "description", "include", "ml2", "agent", "nodes", "physical_networks", "projects",
            "networks", "security_groups", "instances", "routers", "external_hosts", "checks")


def load_scenario(name_or_path: str, lab_name: str | None = None) -> Scenario:
    """A built-in scenario by name, or a scenario file by path. LAB_NAME, when given, replaces
    the file's `name:` (`lab up X --name Y`): the lab and everything derived from its name
    (namespaces, UUIDs, MACs, flow cookie) are Y's."""
    path = find_scenario(name_or_path)
    try:
        text = read_source(path)
    except Unreadable as exc:
        raise ScenarioError([Problem(str(path), exc.line, "(file)", exc.reason)]) from None
    return parse_scenario(text, str(path), default_name=path.stem, lab_name=lab_name)


def parse_scenario(text: str, filename: str, default_name: str = "scenario",
                   lab_name: str | None = None) -> Scenario:
    c = Checker(filename)
    try:
        override = lab_name is not None
        scenario = _parse(c, text, filename, lab_name if override else default_name, override)
    except TooManyProblems:
        raise ScenarioError(c.problems, stopped_after=MAX_PROBLEMS) from None
    if c.problems:
        raise ScenarioError(c.problems)
    return scenario


def _root(c: Checker, text: str, filename: str) -> LineDict | None:
    data, problems = load_yaml(text, filename)
    c.extend(problems)
    if data is None and not problems:
        c.add(1, "(file)", "is empty")
    if data is not None and not isinstance(data, LineDict):
        c.add(getattr(data, "line", 1), "(file)", "must be a mapping at the top level")
        return None
    return data


def _name(c: Checker, data: LineDict, default_name: str, override: bool) -> str:
    name = default_name if override else data.get("name", default_name)
    if not isinstance(name, str) or not NAME_RE.match(name) or len(name) > 40:
        c.add(data.line_of("name"), "name", f"lab name {shown(name)} must be lowercase letters, digits "
                                           "and '-', starting with a letter, at most 40 characters")
        return "invalid"
    return name


def _parse(c: Checker, text: str, filename: str, default_name: str, override: bool) -> Scenario | None:
    data = _root(c, text, filename)
    if data is None:
        return None
    include(c, data, filename)
    c.known_keys(data, SECTIONS, "")
    name = _name(c, data, default_name, override)
    description = str(data.get("description", "")).strip()
    claim = Claims(c)
    nodes = parse_nodes(c, data, claim)
    physnets = parse_physical_networks(c, data, nodes, claim)
    physnet_by_name = {p.name: p for p in physnets}
    nodes = tunnel_endpoints(c, data, nodes, next((p for p in physnets if p.tunnels), None))
    projects = parse_projects(c, data)
    ml2 = parse_ml2(c, data)
    l2pop, arp_responder, dvr, dvr_base_mac = _agent(c, data)
    dvr_agents(c, data, nodes, dvr)
    _dvr_tunnels(c, data, physnets, dvr, l2pop)
    networks = parse_networks(c, data, name, projects, ml2, nodes, physnets, claim)
    net_by_name = {n.name: n for n in networks}
    groups = parse_security_groups(c, data, projects)
    pending = parse_instances(c, data, nodes, physnet_by_name, net_by_name, groups, claim)
    routers_raw = parse_routers(c, data, projects, nodes, physnet_by_name, net_by_name, claim,
                                dvr=dvr, instances=pending)
    hosts_raw = parse_external_hosts(c, data, net_by_name, claim)
    networks, instances, routers = assign_addresses(c, name, networks, pending, hosts_raw, routers_raw)
    hosts = resolve_external_hosts(name, hosts_raw)
    isolated_metadata = _isolated_metadata(c, data)
    checks = parse_checks(c, data, {i.name: i for i in instances}, set(claim.targets), physnet_by_name,
                          claim.of_kind("an instance"), {h.name: h for h in hosts},
                          router_targets(nodes, physnets, networks, instances, routers),
                          {f"dvr:{n.name}" for n in nodes if dvr}
                          | {f"gateway:{i.network}" for r in routers for i in r.interfaces},
                          metadata_networks={i.network for r in routers for i in r.interfaces}
                          | ({n.name for n in networks if n.dhcp} if isolated_metadata else set()))
    # DVR with tunnels forces the ARP responder on (ovs_neutron_agent)
    arp_responder = arp_responder or (dvr and any(p.tunnels for p in physnets))
    return Scenario(name, description, filename, tuple(nodes), tuple(physnets), tuple(projects),
                    tuple(networks), tuple(instances), tuple(checks), tuple(groups),
                    tuple(routers), tuple(hosts), l2pop, arp_responder, dvr, dvr_base_mac,
                    enable_isolated_metadata=isolated_metadata)


def _isolated_metadata(c: Checker, data: LineDict) -> bool:
    """agent.enable_isolated_metadata: the dhcp agent's option (dhcp_agent.ini): a metadata
    proxy in the qdhcp- of each network no router serves."""
    agent = data.get("agent")
    if not isinstance(agent, LineDict):
        return False
    return c.boolean(agent, "enable_isolated_metadata", "agent.enable_isolated_metadata", default=False)


def router_targets(nodes, physnets, networks, instances, routers) -> set[str]:
    """What a check may name as a router: each router, and each instance of a distributed
    router (router1@compute1)."""
    from lab.core import naming, routers as placement
    out = {r.name for r in routers}
    for r in routers:
        ports = [(i.node, i.network) for i in instances]
        hosts = set(placement.dvr_hosts(nodes, physnets, networks, ports, r.interfaces)) if r.distributed else set()
        if r.distributed and r.external_network:
            hosts.add(r.node)       # DvrEdgeRouter: qrouter- and snat- on the dvr_snat node
            out.add(naming.snat_target(r.name))
            out |= {naming.fip_target(p.network, p.node) for p in r.fip_agent_ports}    # fip- (checks: passes)
        out |= {naming.router_target(r.name, h, len(hosts)) for h in hosts}
    return out


def _agent(c: Checker, data: LineDict) -> tuple[bool, bool, bool, str]:
    """agent: {l2_population: false, arp_responder: false, enable_distributed_routing: false,
    dvr_base_mac: fa:16:3f:00:00:00}: the OVS agent's options (and the server's DVR MAC base)."""
    agent = c.mapping(data, "agent", "agent")
    if agent is None:
        return False, False, False, DVR_BASE_MAC
    c.known_keys(agent, ("l2_population", "arp_responder", "enable_distributed_routing", "dvr_base_mac",
                         "enable_isolated_metadata"), "agent")
    l2pop = c.boolean(agent, "l2_population", "agent.l2_population", default=False)
    arp = c.boolean(agent, "arp_responder", "agent.arp_responder", default=False)
    dvr = c.boolean(agent, "enable_distributed_routing", "agent.enable_distributed_routing", default=False)
    if arp and not l2pop:
        c.add(agent.line_of("arp_responder"), "agent.arp_responder",
              "the ARP responder answers from l2_population's entries: set l2_population: true too")
    return l2pop, arp, dvr, _dvr_base_mac(c, agent)


def _dvr_tunnels(c: Checker, data: LineDict, physnets, dvr: bool, l2pop: bool) -> None:
    """The OVS agent in DVR mode with tunnels refuses to start without l2population."""
    if not dvr or not any(p.tunnels for p in physnets):
        return
    agent = data.get("agent")
    line = agent.line_of("enable_distributed_routing") if isinstance(agent, LineDict) else 1
    if not l2pop:
        c.add(line, "agent.enable_distributed_routing",
              "DVR deployments for VXLAN/GRE/Geneve underlays require L2-pop to be enabled, in both the "
              "Agent and Server side: set agent: {l2_population: true}")


def _dvr_base_mac(c: Checker, agent: LineDict) -> str:
    """dvr_base_mac: a unicast MAC, not Neutron's port base MAC fa:16:3e (the server refuses
    that: DVR MACs would collide with port MACs)."""
    if "dvr_base_mac" not in agent:
        return DVR_BASE_MAC
    mac = str(agent["dvr_base_mac"]).lower()
    line, where = agent.line_of("dvr_base_mac"), "agent.dvr_base_mac"
    if not re.fullmatch(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}", mac):
        c.add(line, where, f"{shown(agent['dvr_base_mac'])} is not a MAC address")
    elif int(mac[:2], 16) & 1:
        c.add(line, where, f"{mac} is a multicast address")
    elif mac[:8] == NEUTRON_MAC_PREFIX:
        c.add(line, where, f"{mac} starts like Neutron's base_mac {NEUTRON_MAC_PREFIX}: DVR MACs would "
                           "collide with port MACs")
    else:
        return mac
    return DVR_BASE_MAC
