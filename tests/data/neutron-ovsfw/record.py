"""Feed Neutron's own OVSFirewallDriver the ports of a lab's node and write the flows it asks
its bridge for: the reference `tests/integration/test_ovsfw_reference.py` compares the lab's
render with (both normalised by `ovs-ofctl parse-flows`).

Neutron is not a dependency of the lab: run this in a separate venv that has it, e.g.

    python3 -m venv /tmp/nref && /tmp/nref/bin/pip install neutron==29.0.0
    .venv/bin/python -m lab.cli show classic-ovsfw --json > /tmp/plan.json
    /tmp/nref/bin/python tests/data/neutron-ovsfw/record.py /tmp/plan.json compute1 compute2

For each node, every instance port is given to the driver the way the OVS agent does it:
OVSDB answers (ofport as the lab requests it, other_config tag/segmentation_id/network_type/
physical_network), the port's security groups with the lab's (IPv4) rules, each remote
group's members, then `prepare_port_filter`, in the node's port order. Written:
<lab>-<node>.flows, one `ovs-ofctl add-flow` expression a line, as Neutron's ovs_lib builds it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from unittest import mock

from neutron_lib import constants as n_const
from oslo_config import cfg

from neutron.agent.common import ovs_lib
from neutron.agent.linux import ip_conntrack
from neutron.agent.linux.openvswitch_firewall import firewall as ovsfw
from neutron.conf.agent import securitygroups_rpc
from neutron.conf.plugins.ml2.drivers import ovs_conf

OFPORT_BASE = 10        # lab/core/plugs/openvswitch.py asks OVS for these (ofport_request)
HERE = Path(__file__).resolve().parent


class Bridge:
    """What the driver asks of br-int: OVSDB reads and add_flow, recorded."""

    def __init__(self, ports: list[dict]):
        self.br = self
        self.flows: list[dict] = []
        self.by_id = {p["port_id"]: p for p in ports}
        self.by_name = {p["ovs_port"]: p for p in ports}

    is_hw_offload_enabled = False

    def add_protocols(self, *protocols): pass
    def deferred(self, **kwargs): return self
    def get_port_name_list(self): return list(self.by_name)
    def dump_flows_for_table(self, table): return ""
    def request_cookie(self): return 0
    def unset_cookie(self, cookie): pass
    def add_flow(self, **kwargs): self.flows.append(dict(kwargs))

    def get_vif_port_by_id(self, port_id):
        p = self.by_id[port_id]
        return ovs_lib.VifPort(p["ovs_port"], p["ofport"], port_id, p["mac"], self)

    def db_get_val(self, table, name, column, **kwargs):
        p = self.by_name[name]
        seg = p["segmentation_id"]
        return {"tag": str(p["local_vlan"]), "segmentation_id": "None" if seg is None else str(seg),
                "network_type": p["network_type"], "physical_network": p["physical_network"] or "None"}


def neutron_rule(rule: dict, remote_key) -> dict:
    """A lab PortRule as the agent gets a security group rule (IPv4; the lab has no IPv6 rules)."""
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


def record(plan: dict, node_name: str) -> list[str]:
    node = next(n for n in plan["nodes"] if n["name"] == node_name)
    ports = [dict(p, ofport=OFPORT_BASE + i, ovs_port=p["plug"]["ovs_port"]) for i, p in enumerate(node["ports"])]
    ovsfw.ConjIdMap._instance = None        # one agent per node: a fresh ConjIdMap
    if hasattr(ovsfw.ConjIdMap, "_instance"):
        del ovsfw.ConjIdMap._instance
    bridge = Bridge(ports)
    with mock.patch.object(ip_conntrack.IpConntrackManager, "_process_queue_worker"):
        driver = ovsfw.OVSFirewallDriver(bridge)
    members = {(p["project"], r["remote_group"]): r["remotes"] for pp in plan["nodes"] for p in pp["ports"]
               for r in p["rules"] if r["remote_group"] is not None}
    mac_of = {q["ip"]: q["mac"] for n in plan["nodes"] for q in n["ports"]}
    for (project, group), remotes in members.items():
        driver.update_security_group_members(f"{project}/{group}", {n_const.IPv4: [
            (ip.removesuffix("/32"), mac_of.get(ip.removesuffix("/32"))) for ip in remotes]})
    for p in ports:
        # The plan merges a port's rules; Neutron gets them back as groups: the CIDR rules in
        # one group of the port, each remote-group rule in a group per (project, remote group,
        # direction), the granularity the lab gives conjunction ids.
        groups: dict[str, list[dict]] = {}
        for r in p["rules"]:
            key = f"cidr-{p['port_id']}" if r["remote_group"] is None else \
                f"{p['project']}:{r['remote_group']}:{r['direction']}"
            groups.setdefault(key, []).append(neutron_rule(r, f"{p['project']}/{r['remote_group']}"))
        for sg, rules in groups.items():
            driver.update_security_group_rules(sg, rules)
        driver.prepare_port_filter({"device": p["port_id"], "security_groups": list(groups),
                                    "fixed_ips": [p["ip"]], "mac_address": p["mac"], "allowed_address_pairs": [],
                                    "port_security_enabled": True})
    out = []
    for flow in bridge.flows:
        flow = dict(flow)
        flow.pop("flow_group_id", None)
        out.append(ovs_lib._build_flow_expr_str(flow, "add", False))
    return out


def main() -> None:
    ovs_conf.register_ovs_agent_opts(cfg=cfg.CONF)
    securitygroups_rpc.register_securitygroups_opts()
    cfg.CONF([], project="neutron")
    plan = json.loads(Path(sys.argv[1]).read_text())
    for node in sys.argv[2:]:
        lines = record(plan, node)
        (HERE / f"{plan['lab']}-{node}.flows").write_text("".join(f"{line}\n" for line in lines))
        print(f"{node}: {len(lines)} flows")


if __name__ == "__main__":
    main()
