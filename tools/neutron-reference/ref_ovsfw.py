"""The OVS native firewall of a node (firewall_driver = openvswitch), from Neutron's own
``OVSFirewallDriver``: used by ``neutron-openvswitch-agent`` for the nodes that have it.

The driver gets a recording bridge instead of br-int: it answers what the driver reads from
OVSDB (the port's ofport as the private OVS gave it, other_config tag / segmentation_id /
network_type / physical_network) and records every ``add_flow``. Each instance port of the
node is given to it the way the OVS agent does (``prepare_port_filter`` with the port's
security groups, after ``update_security_group_rules`` and ``..._members``), in the node's
port order; the router and DHCP ports go through ``process_trusted_ports``. The flows come
back as ``ovs-ofctl add-flow`` expressions built by Neutron's ovs_lib, for the caller to
apply to the private OVS before its dump.

The plan holds a port's rules merged; they go back to Neutron as security groups: a port's
CIDR rules in one group, each remote-group rule in a group per (project, remote group,
direction), the granularity at which the lab gives conjunction ids.
"""

from __future__ import annotations

from unittest import mock

from neutron_lib import constants as n_const
from oslo_config import cfg

from neutron.agent.common import ovs_lib
from neutron.agent.linux import ip_conntrack
from neutron.agent.linux.openvswitch_firewall import firewall as ovsfw
from neutron.conf.plugins.ml2.drivers import ovs_conf


class RecordingBridge:
    """What the driver asks of br-int: OVSDB reads answered from the plan, add_flow recorded."""

    is_hw_offload_enabled = False

    def __init__(self, ports: list[dict]):
        self.br = self
        self.flows: list[dict] = []
        self.by_id = {p["port_id"]: p for p in ports}
        self.by_name = {p["dev"]: p for p in ports}

    def add_protocols(self, *protocols): pass
    def deferred(self, **kwargs): return self
    def get_port_name_list(self): return list(self.by_name)
    def dump_flows_for_table(self, table): return ""
    def request_cookie(self): return 0
    def unset_cookie(self, cookie): pass
    def add_flow(self, **kwargs): self.flows.append(dict(kwargs))
    def get_vifs_by_ids(self, port_ids): return {i: self.get_vif_port_by_id(i) for i in port_ids}

    def get_vif_port_by_id(self, port_id):
        p = self.by_id[port_id]
        return ovs_lib.VifPort(p["dev"], p["ofport"], port_id, p["mac"], self)

    def db_get_val(self, table, name, column, **kwargs):
        p = self.by_name[name]
        seg = p.get("segmentation_id")
        return {"tag": str(p["local_vlan"]), "segmentation_id": "None" if seg is None else str(seg),
                "network_type": p.get("network_type") or "None",
                "physical_network": p.get("physical_network") or "None"}


def neutron_rule(rule: dict, remote_key: str) -> dict:
    """A lab PortRule as the agent gets a security group rule (IPv4: the lab has no IPv6 rules)."""
    r = {"ethertype": n_const.IPv4, "direction": rule["direction"]}
    if rule["protocol"] != "any":
        r["protocol"] = rule["protocol"]
    if rule["port_min"] is not None:
        r["port_range_min"], r["port_range_max"] = rule["port_min"], rule["port_max"]
    if rule["remote_group"] is not None:
        r["remote_group_id"] = remote_key
    else:
        (remote,) = rule["remotes"]
        r["source_ip_prefix" if rule["direction"] == "ingress" else "dest_ip_prefix"] = remote
    return r


def node_flows(plan: dict, node: dict, trusted: list[dict], ofport_of) -> list[str]:
    """Neutron's firewall flows for NODE's instance ports and TRUSTED (namespace) ports."""
    ports = [dict(p, dev=p["plug"]["ovs_port"], ofport=ofport_of(p["plug"]["ovs_port"])) for p in node["ports"]]
    ports += [dict(t, dev=t["ovs_dev"], ofport=ofport_of(t["ovs_dev"])) for t in trusted]
    try:
        ovs_conf.register_ovs_agent_opts(cfg=cfg.CONF)      # [AGENT] explicitly_egress_direct...
    except cfg.DuplicateOptError:
        pass
    if hasattr(ovsfw.ConjIdMap, "_instance"):
        del ovsfw.ConjIdMap._instance           # a singleton: one agent per node, a fresh map
    bridge = RecordingBridge(ports)
    with mock.patch.object(ip_conntrack.IpConntrackManager, "_process_queue_worker"):
        driver = ovsfw.OVSFirewallDriver(bridge)
    _members(driver, plan)
    for p in node["ports"]:
        groups: dict[str, list[dict]] = {}
        for r in p["rules"]:
            key = f"cidr-{p['port_id']}" if r["remote_group"] is None else \
                f"{p['project']}:{r['remote_group']}:{r['direction']}"
            groups.setdefault(key, []).append(neutron_rule(r, f"{p['project']}/{r['remote_group']}"))
        for sg, rules in groups.items():
            driver.update_security_group_rules(sg, rules)
        driver.prepare_port_filter({"device": p["port_id"], "security_groups": list(groups),
                                    "fixed_ips": [p["ip"]], "mac_address": p["mac"],
                                    "allowed_address_pairs": [], "port_security_enabled": True})
    if trusted:
        driver.process_trusted_ports([t["port_id"] for t in trusted])
    out = []
    for flow in bridge.flows:
        flow = dict(flow)
        flow.pop("flow_group_id", None)
        out.append(ovs_lib._build_flow_expr_str(flow, "add", False))
    return out


def _members(driver, plan: dict) -> None:
    """Each remote group's members (IPv4 address and MAC), lab-wide."""
    mac_of = {q["ip"]: q["mac"] for n in plan["nodes"] for q in n["ports"]}
    members: dict[str, list[str]] = {}
    for n in plan["nodes"]:
        for p in n["ports"]:
            for r in p["rules"]:
                if r["remote_group"] is not None:
                    members[f"{p['project']}/{r['remote_group']}"] = r["remotes"]
    for sg, remotes in members.items():
        driver.update_security_group_members(sg, {n_const.IPv4: [
            (ip.removesuffix("/32"), mac_of.get(ip.removesuffix("/32"))) for ip in remotes]})
