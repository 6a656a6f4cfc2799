"""The iptables_hybrid firewall driver for one node, fed the dicts the OVS agent gets over RPC.

SecurityGroupAgentRpc (the OVS agent's security-group half) loads the driver by its name,
``iptables_hybrid``, and asks a plugin RPC for ``security_group_info_for_devices``; here that
RPC is a small class that answers from the lab's plan. The driver's iptables-restore and
ipset input is recorded by ref_exec, never applied.
"""

from __future__ import annotations

def _rule(sg_id: str, r: dict, remote: str | None) -> dict:
    rule = {"direction": r["direction"], "ethertype": "IPv4", "stateful": True}
    if r["protocol"] != "any":
        rule["protocol"] = r["protocol"]
    if r["port_min"] is not None:
        rule["port_range_min"], rule["port_range_max"] = r["port_min"], r["port_max"]
    if remote is not None:
        rule["remote_group_id"] = remote
    else:       # the server's DIRECTION_IP_PREFIX; a /0 becomes no match (_ip_prefix_arg)
        rule["source_ip_prefix" if r["direction"] == "ingress" else "dest_ip_prefix"] = r["remotes"][0]
    return rule


def port_security_info(port: dict) -> tuple[dict, dict, dict]:
    """(device dict, {sg_id: rules}, {remote_sg_id: {IPv4: members}}) for one instance port.

    The plan keeps a port's rules in the order of its groups; they become one group with the
    port's own id. A remote-group rule names the group by the plan's remote_group_id (its
    ipset is named after it) and its remotes are the group's members, the port's own
    address included, as the server sends them. Members go out for IPv4 only: the server
    sends a remote group's members for the ethertypes of the rules that name it
    (security_group_info_for_ports), and the lab's rules are IPv4."""
    sg_id = f"sg-{port['port_id']}"
    rules, members = [], {}
    for r in port["rules"]:
        gid = r.get("remote_group_id")
        if gid is None:
            rules.append(_rule(sg_id, r, None))
            continue
        members[gid] = {"IPv4": [(ip.split("/")[0], None) for ip in r["remotes"]]}
        rules.append(_rule(sg_id, r, gid))
    device = {"device": port["port_id"], "id": port["port_id"], "mac_address": port["mac"],
              "fixed_ips": [port["ip"]], "network_id": port["network"],
              "device_owner": "compute:nova", "port_security_enabled": True,
              "allowed_address_pairs": [],
              "security_groups": [sg_id] if port["security_groups"] else [],
              "security_group_source_groups": sorted(members) if port["security_groups"] else [],
              "security_group_remote_address_groups": [],
              "security_group_rules": []}
    return device, ({sg_id: rules} if port["security_groups"] else {}), members


class PlanRpc:
    """security_group_info_for_devices, answered from the plan's ports of one node; the
    server's own SecurityGroupInfoAPIMixin._apply_provider_rule adds the DHCP (and RA)
    provider rules to each device, as the server does."""

    def __init__(self, ports: list[dict]):
        self.ports = {p["port_id"]: p for p in ports}

    def security_group_info_for_devices(self, context, device_ids):
        info = {"devices": {}, "security_groups": {}, "sg_member_ips": {}}
        for device_id in device_ids:
            device, groups, members = port_security_info(self.ports[device_id])
            info["devices"][device_id] = device
            info["security_groups"].update(groups)
            info["sg_member_ips"].update(members)
        from neutron.db import securitygroups_rpc_base
        securitygroups_rpc_base.SecurityGroupInfoAPIMixin()._apply_provider_rule(context, info["devices"])
        return info


def node_firewall(node: dict, recorder) -> dict[str, str]:
    """Prepare every instance port of the node; return {'iptables': ..., 'ipset': ...}."""
    from neutron.agent import securitygroups_rpc
    recorder.calls.clear()
    sg_agent = securitygroups_rpc.SecurityGroupAgentRpc(None, PlanRpc(node["ports"]))
    sg_agent.prepare_devices_filter([p["port_id"] for p in node["ports"]])
    restores = [i for c, i in recorder.inputs_of("iptables-restore")]
    ipsets = [" ".join(c) + ("\n" + i if i else "") for c, i in recorder.calls
              if "ipset" in c]
    return {"iptables": "".join(restores), "ipset": "\n".join(ipsets)}
