"""The L3 agent's DVR router classes for the reference (imported by neutron-l3-agent).

On each node with a dvr_local instance of a distributed router: ``DvrLocalRouter`` (agent_mode
dvr), or on the router's gateway node ``DvrEdgeRouter`` (agent_mode dvr_snat), which makes
both that node's qrouter- and the router's snat-. Their real ``initialize()`` and
``process()`` run, fed the router dict ``sync_routers`` gives a DVR agent
(``_snat_router_interfaces``, ``gw_port_host``, ``_floatingips`` with their ``host``,
``_floatingip_agent_interfaces``); ``get_fip_ns`` makes Neutron's own ``FipNamespace`` (its
priority and link-local state files in a scratch state_path). What they do is recorded the
way the legacy router's is (ref_exec, ref_privileged) and split by namespace afterwards:
qrouter-, snat- and fip- each get their own iptables and calls.
"""

from __future__ import annotations

import tempfile

from oslo_config import cfg

from neutron.agent.l3 import dvr_edge_router, dvr_fip_ns, dvr_local_router

import nref_host


def _find(plan: dict, router_name: str, role: str, node: str | None = None) -> dict | None:
    return next((i for i in nref_host.router_instances(plan, node)
                 if i["router_name"] == router_name and i["role"] == role), None)


def dvr_router_dict(plan: dict, r: dict, base: dict, port) -> dict:
    """BASE (the legacy router dict of R's interfaces) made what a DVR agent on R's node gets."""
    router = dict(base, distributed=True)
    snat = _find(plan, r["router_name"], "dvr_snat")
    if snat is None:
        return router
    gw = snat["gateway"]
    router["gw_port"] = port(gw, snat["external_gateway_ip"])
    router["gw_port_id"] = gw["port_id"]
    router["gw_port_host"] = snat["node"]
    router["enable_snat"] = True
    router["external_gateway_info"] = {"network_id": gw["network"], "enable_snat": True}
    gateways = {q["network"]: q["ip"] for q in r["interfaces"]}
    router["_snat_router_interfaces"] = [port(p, gateways.get(p["network"])) for p in snat["interfaces"]]
    router["_floatingips"] = [
        {"id": f"fip-{f['address']}", "floating_ip_address": f["address"], "fixed_ip_address": f["fixed_ip"],
         "port_id": f"port-of-{f['instance']}", "floating_network_id": gw["network"], "status": "DOWN",
         "router_id": r["router_id"], "fixed_ip_address_scope": None, "host": r["node"],
         "dvr_snat_bound": False}
        for f in r["floating_ips"]]
    fips = [f for f in plan.get("fip_namespaces", []) if f["node"] == r["node"]]
    router["_floatingip_agent_interfaces"] = [
        dict(port(f["gateway"], f["external_gateway_ip"]), device_owner="network:floatingip_agent_gateway")
        for f in fips]
    return router


class DvrAgentParts:
    """What the DVR router classes read from L3NATAgent beyond the legacy FakeAgent's parts."""

    def __init__(self, agent, driver, node: str, plan: dict, port):
        agent.host = node
        agent.plugin_rpc.get_agent_gateway_port = agent_gateway_port(plan, port)
        agent.get_ports_by_subnet = ports_by_subnet(plan)
        agent._fip_namespaces = {}
        agent.driver = driver
        agent.use_ipv6 = False

        def get_fip_ns(ext_net_id):
            ext_net_id = str(ext_net_id)
            if ext_net_id not in agent._fip_namespaces:
                agent._fip_namespaces[ext_net_id] = dvr_fip_ns.FipNamespace(ext_net_id, cfg.CONF, driver, False)
            return agent._fip_namespaces[ext_net_id]
        agent.get_fip_ns = get_fip_ns


def agent_gateway_port(plan: dict, port):
    """The server's get_agent_gateway_port for a host that has no fg- port in the plan: Neutron
    makes one for every dvr/dvr_snat host of a router with a gateway. The lab's plan has them all
    since issue 12, so this stand-in only answers for a plan that lacks one: the external pool's
    lowest address no port of the plan holds."""
    import ipaddress
    made: dict[tuple[str, str], dict] = {}

    def get(context, network_id, host=None, **_kw):
        key = (network_id, host)
        if key not in made:
            ext = next(i["gateway"] for i in nref_host.router_instances(plan)
                       if i.get("gateway") and i["gateway"]["network"] == network_id)
            used = {i["gateway"]["ip"] for i in nref_host.router_instances(plan) if i.get("gateway")}
            used |= {f["address"] for i in nref_host.router_instances(plan) for f in i["floating_ips"]}
            used |= {f["gateway"]["ip"] for f in plan.get("fip_namespaces", [])}
            used |= {p["ip"] for p in made.values()}
            candidate = ipaddress.IPv4Address(ext["ip"])
            while str(candidate) in used:
                candidate += 1
            gw = next(f for f in plan["routers"] if f["external_network"] == network_id)
            ext_gw = next(i["external_gateway_ip"] for i in nref_host.router_instances(plan) if i.get("gateway"))
            made[key] = dict(port({**ext, "ip": str(candidate), "port_id": f"fg-port-{host}",
                                   "mac": "fa:16:3e:00:00:%02x" % len(made)}, ext_gw),
                             device_owner="network:floatingip_agent_gateway", ip=str(candidate))
            del gw
        return made[key]
    return get


def ports_by_subnet(plan: dict):
    """The server's get_ports_by_subnet, from the plan: instances, DHCP ports, the routers'
    interfaces and SNAT ports (the subnet id is the reference's subnet-<network>)."""
    ports = [(p["network"], p["ip"], p["mac"], "compute:nova") for n in plan["nodes"] for p in n["ports"]]
    ports += [(d["network"], d["port"]["ip"], d["port"]["mac"], "network:dhcp")
              for n in plan["nodes"] for d in n["dhcp_servers"]]
    seen = set()
    for i in nref_host.router_instances(plan):
        for q in i["interfaces"]:
            if (q["port_id"]) not in seen:
                seen.add(q["port_id"])
                ports.append((q["network"], q["ip"], q["mac"], q["device_owner"]))

    def get(subnet_id):
        return [{"device_owner": owner, "mac_address": mac, "allowed_address_pairs": [],
                 "fixed_ips": [{"subnet_id": f"subnet-{net}", "ip_address": ip}]}
                for net, ip, mac, owner in ports if f"subnet-{net}" == subnet_id]
    return get


def configure_node(mode: str) -> None:
    cfg.CONF.set_override("agent_mode", mode)
    cfg.CONF.set_override("state_path", tempfile.mkdtemp(prefix="nref-l3-state."))


def router_class(plan: dict, r: dict):
    """DvrEdgeRouter on the node that hosts the router's snat-, DvrLocalRouter elsewhere."""
    snat = _find(plan, r["router_name"], "dvr_snat")
    if snat is not None and snat["node"] == r["node"]:
        return dvr_edge_router.DvrEdgeRouter, "dvr_snat"
    return dvr_local_router.DvrLocalRouter, "dvr"


def split_by_namespace(calls_exec: list, calls_priv: list) -> dict[str, tuple[list, list]]:
    """{namespace prefix (qrouter-, snat-, fip-): (exec calls, privileged calls)} by the
    namespace each call names."""
    out: dict[str, tuple[list, list]] = {}
    for cmd, stdin in calls_exec:
        ns = next((c for c in cmd if c.startswith(("qrouter-", "snat-", "fip-"))), "")
        out.setdefault(ns.split("-", 1)[0] + "-" if ns else "", ([], []))[0].append((cmd, stdin))
    for name, args, kw in calls_priv:
        values = [str(a) for a in args] + [str(v) for v in kw.values()]
        ns = next((v for v in values if v.startswith(("qrouter-", "snat-", "fip-"))), "")
        out.setdefault(ns.split("-", 1)[0] + "-" if ns else "", ([], []))[1].append((name, args, kw))
    return out
