"""Distributed routers (DVR), east-west on VLAN: the scenario keys and their validation, the
per-host DVR MAC, the dvr_local router instances (same qr- ports everywhere, permanent
neighbours), and the DVR flows of br-int and the physical bridges, read the way the OVS
agent's ovs_dvr_neutron_agent installs them. Pure."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from helpers import line_of, only_problem, parse, problems_of
from lab.core import naming, routers
from lab.core.plan import build_plan
from lab.core.render import render_plan
from lab.core.scenario import find_scenario, load_scenario

TEXT = Path(find_scenario("dvr-vlan")).read_text()


@pytest.fixture(scope="module")
def plan():
    return build_plan(load_scenario("dvr-vlan"))


@pytest.fixture(scope="module")
def renders(plan):
    return render_plan(plan)


def flows(renders, node: str, bridge: str) -> list[str]:
    return [re.sub(r"^cookie=0x[0-9a-f]+,", "", line) for line in renders[node].flows[bridge].splitlines()
            if line.startswith("cookie=")]


# --------------------------------------------------------------------------- DVR MAC

def test_dvr_mac_from_the_base_and_stable():
    # pinned by value: the lab's UUID namespace and hashing, not recomputed here
    assert naming.dvr_mac("fa:16:3f:00:00:00", "dvr-vlan", "compute1") == "fa:16:3f:aa:d3:0b"
    # a 4th octet other than 00 is kept (neutron-lib get_random_mac)
    assert naming.dvr_mac("fa:16:3f:42:00:00", "dvr-vlan", "compute1").startswith("fa:16:3f:42:")
    assert naming.dvr_mac("fa:16:3f:00:00:00", "dvr-vlan", "compute1", 1) != "fa:16:3f:aa:d3:0b"


def test_one_dvr_mac_per_node(plan):
    macs = dict(plan.dvr_macs)
    assert set(macs) == {"network1", "compute1", "compute2"}
    assert len(set(macs.values())) == 3
    assert all(m.startswith("fa:16:3f:") for m in macs.values())
    assert all(plan.node(n).dvr_mac == m for n, m in macs.items())
    assert plan.other_dvr_macs("compute1") == (macs["network1"], macs["compute2"])
    assert plan.mac_named("dvr:compute2") == macs["compute2"]


def test_no_dvr_mac_without_dvr():
    plan = build_plan(load_scenario("classic-vlan"))
    assert plan.dvr_macs == () and all(n.dvr_mac is None for n in plan.nodes)


def test_dvr_base_mac_is_used():
    s = parse(TEXT.replace("# dvr_base_mac: fa:16:3f:00:00:00", "dvr_base_mac: fa:16:3f:42:00:00"))
    assert all(mac.startswith("fa:16:3f:42:") for _, mac in build_plan(s).dvr_macs)


# --------------------------------------------------------------------------- router instances

def test_a_local_router_on_every_host_with_ports(plan):
    (router,) = plan.routers
    assert [(i.name, i.node, i.role) for i in router.instances] == [
        ("router1@network1", "network1", "dvr_local"),    # its DHCP and sg- ports are DVR-serviced
        ("router1.snat", "network1", "dvr_snat"),          # DvrEdgeRouter: the gateway's snat-
        ("router1@compute1", "compute1", "dvr_local"),
        ("router1@compute2", "compute2", "dvr_local")]
    assert {i.netns.rsplit(".", 1)[1] for i in local(plan)} == {f"qrouter-{router.router_id}"}
    assert plan.router_instances[1].netns.endswith(f".network1.snat-{router.router_id}")


def local(plan):
    return [i for i in plan.router_instances if i.role == "dvr_local"]


def test_same_qr_ports_everywhere(plan):
    ports = {tuple((q.ns_dev, q.ip, q.mac) for q in i.interfaces) for i in local(plan)}
    assert len(ports) == 1
    (only,) = ports
    assert [ip for _, ip, _ in only] == ["192.168.1.1", "192.168.2.1"]
    assert all(i.gateway is None for i in local(plan))
    assert [(i.name, f.address) for i in local(plan) for f in i.floating_ips] == [("router1@compute1", "203.0.113.102")]
    assert {q.device_owner for i in local(plan) for q in i.interfaces} == \
        {"network:router_interface_distributed"}


def test_permanent_neighbours_for_every_port_but_router_ports(plan):
    inst = local(plan)[1]
    qr1, qr2 = (q.ns_dev for q in inst.interfaces)
    got = {(n.dev, n.ip, n.mac) for n in inst.neighbours}
    want = {(qr1 if p.network == "net1" else qr2, p.ip, p.mac) for p in plan.ports}
    want |= {(qr1 if d.network == "net1" else qr2, d.port.ip, d.port.mac) for d in plan.dhcp_servers}
    snat = plan.router_instances_of("router1.snat")[0]
    want |= {(qr1 if p.network == "net1" else qr2, p.ip, p.mac) for p in snat.interfaces}    # sg- ports
    assert got == want
    assert not {n.ip for n in inst.neighbours} & {"192.168.1.1", "192.168.2.1"}


def test_check_targets_name_router_instances():
    s = load_scenario("dvr-vlan")
    kinds = {(a.kind, a.target) for c in s.checks for a in c.path}
    assert ("passes", "router1@compute1") in kinds and ("never_passes", "router1@network1") in kinds


def test_placement_helper_counts_dhcp_and_instances():
    s = load_scenario("dvr-vlan")
    (r,) = s.routers
    assert routers.placements(s, r) == (("network1", "dvr_local"), ("compute1", "dvr_local"),
                                        ("compute2", "dvr_local"), ("network1", "dvr_snat"))


# --------------------------------------------------------------------------- flows

def test_br_vlan_rewrites_to_this_hosts_dvr_mac(plan, renders):
    d1, g1, g2 = plan.node("compute1").dvr_mac, *(q.mac for q in plan.router_instances[0].interfaces)
    f = flows(renders, "compute1", "br-vlan")
    assert "table=0,priority=2,in_port=phy-br-vlan,actions=resubmit(,1)" in f
    assert "table=0,priority=1,actions=resubmit(,3)" in f
    assert f"table=1,priority=1,dl_vlan=1,dl_src={g1},actions=mod_dl_src:{d1},resubmit(,2)" in f
    assert f"table=1,priority=1,dl_vlan=2,dl_src={g2},actions=mod_dl_src:{d1},resubmit(,2)" in f
    assert f"table=1,priority=2,dl_vlan=1,dl_dst={g1},actions=drop" in f
    # local VLAN translation moves from table 0 to table 2
    assert "table=2,priority=4,in_port=phy-br-vlan,dl_vlan=2,actions=mod_vlan_vid:102,NORMAL" in f
    assert not [x for x in f if x.startswith("table=0,priority=4")]
    # other hosts' DVR MACs: straight to br-int, never learned
    for mac in plan.other_dvr_macs("compute1"):
        assert f"table=3,priority=2,dl_src={mac},actions=output:phy-br-vlan" in f
    assert f"table=3,priority=2,dl_src={d1},actions=output:phy-br-vlan" not in f
    # Neutron's ARP drop for the gateway IP sits in table 22, which no br-vlan flow reaches
    assert "table=22,priority=3,arp,dl_vlan=1,arp_tpa=192.168.1.1,actions=drop" in f
    assert not [x for x in f if "resubmit(,22)" in x]


def test_br_int_gives_the_gateway_mac_back(plan, renders):
    p = plan.port("vm4")
    g2 = plan.router_instances[2].interfaces[1].mac
    f = flows(renders, "compute2", "br-int")
    for mac in plan.other_dvr_macs("compute2"):
        assert f"table=0,priority=4,in_port=int-br-vlan,dl_src={mac},actions=resubmit(,2)" in f
    assert f"table=2,priority=20,dl_vlan=102,dl_dst={p.mac},actions=mod_dl_src:{g2},resubmit(,58)" in f
    assert f"table=60,priority=20,dl_vlan=102,dl_dst={p.mac},actions=strip_vlan,output:{p.ovs_port}" in f
    assert "table=1,priority=1,actions=drop" in f and "table=2,priority=1,actions=drop" in f
    d2 = plan.node("compute2").dvr_mac
    assert f"table=0,priority=5,in_port=int-br-vlan,dl_dst={d2},actions=resubmit(,4)" in f
    assert "table=58,priority=0,actions=resubmit(,59)" in f


def test_dhcp_ports_are_dvr_serviced(plan, renders):
    d = next(d for d in plan.dhcp_servers if d.network == "net1")
    f = flows(renders, "network1", "br-int")
    assert any(f"dl_vlan=101,dl_dst={d.port.mac},actions=mod_dl_src:" in x for x in f)


def test_legacy_renders_have_no_dvr_tables():
    f = render_plan(build_plan(load_scenario("classic-vlan")))["compute1"].flows
    assert not re.search(r"table=[1-4],", f["br-int"] + f["br-vlan"])


# --------------------------------------------------------------------------- validation

def problem(text: str, snippet: str, where: str, message: str, only: bool = True) -> None:
    """The scenario has this problem at the line of SNIPPET (ONLY: and no other)."""
    problems = [only_problem(text)] if only else problems_of(text)
    hits = [p for p in problems if p.where == where and message in p.message]
    assert len(hits) == 1, "\n".join(map(str, problems))
    assert hits[0].line == line_of(text, snippet), str(hits[0])


def test_distributed_needs_the_ovs_agents_dvr_mode():
    text = TEXT.replace("  enable_distributed_routing: true", "  enable_distributed_routing: false")
    for node in ("network1", "compute1", "compute2"):
        problem(text, f"  {node}: {{role", f"nodes.{node}.agent_mode", "needs the OVS agent's DVR mode", only=False)
    problem(text, "distributed: true", "routers.router1.distributed", "enable_distributed_routing: true", only=False)
    # without DVR there is no DVR MAC to name
    problem(text, "source_mac: dvr:compute1", "checks[4].path[1].source_mac", "is not a MAC address", only=False)


def test_agent_modes_per_role():
    problem(TEXT.replace("{role: compute, agent_mode: dvr}\n  compute2", "{role: compute, agent_mode: dvr_snat}\n  compute2"),
            "compute1: {role: compute, agent_mode: dvr_snat}", "nodes.compute1.agent_mode",
            "agent_mode dvr_snat is not for a compute node", only=False)
    problem(TEXT.replace("{role: compute, agent_mode: dvr}\n  compute2", "{role: compute, agent_mode: dvx}\n  compute2"),
            "agent_mode: dvx}", "nodes.compute1.agent_mode", "unknown agent_mode 'dvx'", only=False)


def test_a_host_without_a_dvr_l3_agent():
    text = TEXT.replace("compute2: {role: compute, agent_mode: dvr}", "compute2: {role: compute}")
    problem(text, "interfaces: [net1, net2]", "routers.router1.interfaces",
            "compute2 has ports on this distributed router's networks but runs no L3 agent in a DVR mode")


def test_dvr_no_external_is_accepted():
    s = parse(TEXT.replace("compute2: {role: compute, agent_mode: dvr}",
                           "compute2: {role: compute, agent_mode: dvr_no_external}"))
    assert s.node("compute2").agent_mode == "dvr_no_external"
    assert len(local(build_plan(s))) == 3


def test_a_gateway_needs_a_dvr_snat_node():
    text = TEXT.replace("{role: network, agent_mode: dvr_snat}", "{role: network}")
    problem(text, "external_gateway: ext-net", "routers.router1.external_gateway",
            "needs a node with agent_mode dvr_snat for its gateway", only=False)


def test_a_floating_ip_needs_a_dvr_host_on_the_external_network():
    text = TEXT.replace("    nodes: [network1, compute1, compute2]   #", "    nodes: [network1, compute2]   #")
    problem(text, "floating_ip: 203.0.113.102", "instances.vm1.floating_ip",
            "compute1 is not attached to external, which carries ext-net", only=False)
    text = TEXT.replace("  compute1: {role: compute, agent_mode: dvr}", "  compute1: {role: compute, agent_mode: dvr_no_external}")
    problem(text, "floating_ip: 203.0.113.102", "instances.vm1.floating_ip",
            "runs no L3 agent in dvr or dvr_snat mode", only=False)


def test_dvr_over_tunnels_needs_l2pop_and_forces_the_arp_responder():
    text = Path(find_scenario("dvr-vxlan")).read_text()
    s = parse(text)
    assert s.l2_population and s.arp_responder and s.distributed_routing
    problem(text.replace("l2_population: true ", "l2_population: false"), "enable_distributed_routing: true",
            "agent.enable_distributed_routing", "require L2-pop to be enabled")


def test_dvr_base_mac_must_not_be_neutrons_base_mac():
    text = TEXT.replace("# dvr_base_mac: fa:16:3f:00:00:00", "dvr_base_mac: fa:16:3e:00:00:00")
    problem(text, "dvr_base_mac: fa:16:3e", "agent.dvr_base_mac", "collide with port MACs")


def test_source_mac_names():
    text = TEXT.replace("source_mac: dvr:compute1 ", "source_mac: dvr:compute9 ")
    problem(text, "dvr:compute9", "checks[4].path[1].source_mac", "is not a MAC address, nor one of")
    text = TEXT.replace("      - never_passes: router1@network1\n", "      - never_passes: router1@compute9\n", 1)
    problem(text, "router1@compute9", "checks[0].path[4].never_passes", "unknown router 'router1@compute9'")


# --------------------------------------------------------------------------- source_mac in verdicts

def test_source_mac_selects_the_frames():
    from lab.core.scenario import PathAssertion
    from lab.tools import capture, checks, packets
    probe = packets.Probe("icmp", icmp_id=0x4242)
    frame = packets.Packet(point="physnet1 from compute1", src_mac="fa:16:3f:aa:d3:0b", dst_mac="fa:16:3e:30:7b:0e",
                           vlans=(102,), ethertype=0x0800, ip_src="192.168.1.11", ip_dst="192.168.2.14",
                           ip_proto=1, icmp_type=8, icmp_code=0, icmp_id=0x4242, icmp_seq=1)
    cap = checks.Capture("physnet1 from compute1", "nlab.unit.wire", "compute1")
    cap.packets, cap.seen = [frame], 1
    cap.report, cap.error = capture.Report(captured=1, received=1, dropped=0), None

    def verdict(kind, vlan, mac):
        a = PathAssertion(kind, "physnet1", vlan, "ip", 1, source_mac=mac)
        return checks.judge(a, [cap], "192.168.1.11", "192.168.2.14", probe)[0]

    assert verdict("crosses", 102, "fa:16:3f:aa:d3:0b") == checks.PASS
    assert verdict("crosses", 102, "fa:16:3e:a2:7a:f3") == checks.FAIL
    assert verdict("never_on", None, "fa:16:3f:aa:d3:0b") == checks.FAIL
    assert verdict("never_on", None, "fa:16:3e:a2:7a:f3") == checks.PASS


def test_source_mac_names_resolve_through_the_plan(plan):
    from lab.core.scenario import PathAssertion
    from lab.tools.checks import with_mac
    a = PathAssertion("crosses", "physnet1", 102, "ip", 1, source_mac="dvr:compute1")
    assert with_mac(plan, a).source_mac == plan.node("compute1").dvr_mac
    g = PathAssertion("reaches", "vm4", None, "ip", 1, source_mac="gateway:net2")
    assert with_mac(plan, g).source_mac == plan.router_instances[0].interfaces[1].mac


def test_no_local_router_where_the_router_has_no_ports():
    text = TEXT.replace("  vm2: {node: compute2, network: net1, ip: 192.168.1.12}\n", "").replace(
        "  vm4: {node: compute2, network: net2, ip: 192.168.2.14}\n", "")
    text = "\n".join(line for line in text.splitlines()
                     if "vm2" not in line and "vm4" not in line and "lease: vm4" not in line) + "\n"
    text = text[:text.index("checks:")] + "checks: []\n"
    plan = build_plan(parse(text))
    assert [i.node for i in local(plan)] == ["network1", "compute1"]
    assert plan.node("compute2").dvr_interfaces == () and plan.node("compute2").dvr_mac


# --------------------------------------------------------------------------- trace's expected path

@pytest.mark.parametrize("scenario", ["dvr-vlan", "dvr-vxlan"])
def test_trace_expects_the_distributed_path(scenario):
    from lab.tools.trace import build_path
    plan = build_plan(load_scenario(scenario))
    builder, dst, _ = build_path(plan, "vm1", "vm4")
    where = [h.where for h in builder.hops]
    assert dst.name == "vm4"
    assert any(w.startswith("router1@compute1 qr-") for w in where)
    assert not any("network1" in w or "compute2 qr-" in w for w in where)
    d1 = plan.node("compute1").dvr_mac
    wire = next(h for h in builder.hops if h.kind == "wire")
    assert f"compute1's DVR MAC {d1}" in wire.expected
    # the receiving side's ofproto/trace starts from the DVR MAC
    entry = next(fields for node, _, fields in builder.ovs_entries if node.name == "compute2")
    assert entry["dl_src"] == d1



# --------------------------------------------------------------------------- north-south

def test_snat_instance_and_its_redirect(plan):
    snat = plan.router_instances_of("router1.snat")[0]
    assert (snat.node, snat.role, snat.gateway.ip, snat.external_gateway_ip) == \
        ("network1", "dvr_snat", "203.0.113.101", "203.0.113.1")
    assert [(p.ns_dev[:3], p.ip, p.device_owner) for p in snat.interfaces] == [
        ("sg-", "192.168.1.3", "network:router_centralized_snat"),
        ("sg-", "192.168.2.3", "network:router_centralized_snat")]
    assert routers.sysctls(snat)[-2:] == (("net.ipv4.ip_nonlocal_bind", "1"),
                                          ("net.netfilter.nf_conntrack_tcp_loose", "0"))
    c2 = plan.router_instances_of("router1@compute2")[0]
    assert [(r.source, r.table, r.priority) for r in c2.rules] == [
        ("192.168.1.0/24", 3232235777, 3232235777), ("192.168.2.0/24", 3232236033, 3232236033)]
    assert [(r.table, r.via, r.dev) for r in c2.routes if r.table != 16] == [
        (3232235777, "192.168.1.3", c2.interfaces[0].ns_dev), (3232236033, "192.168.2.3", c2.interfaces[1].ns_dev)]
    assert ("net.ipv4.conf.all.send_redirects", "0") in routers.sysctls(c2)
    assert c2.fip_link is not None and not c2.floating_ips     # issue 12: the link, no floating IP


def test_sg_ports_are_dvr_serviced_on_the_snat_node(plan, renders):
    snat = plan.router_instances_of("router1.snat")[0]
    f = flows(renders, "network1", "br-int")
    for p in snat.interfaces:
        vlan = 101 if p.network == "net1" else 102
        assert f"table=60,priority=20,dl_vlan={vlan},dl_dst={p.mac},actions=strip_vlan,output:{p.ovs_dev}" in f


def test_snat_rules_render(plan, renders):
    snat = plan.router_instances_of("router1.snat")[0]
    text = renders["network1"].routers["router1.snat"]
    qg = snat.gateway.ns_dev
    assert f"-A neutron-l3-agent-snat -o {qg} -j SNAT --to-source 203.0.113.101 --random-fully" in text
    assert f"-A neutron-l3-agent-POSTROUTING ! -o {qg} -m conntrack ! --ctstate DNAT -j ACCEPT" in text
    assert "9697" not in text and "DNAT --to-destination" not in text     # no metadata, no floating IPs


def test_every_dvr_host_of_a_router_with_a_gateway_needs_the_external_network():
    """DvrLocalRouter.process_external makes fip- on every dvr/dvr_snat host of the router."""
    text = TEXT.replace("    nodes: [network1, compute1, compute2]   #", "    nodes: [network1, compute1]   #")
    problem(text, "external_gateway: ext-net", "routers.router1.external_gateway",
            "compute2 is not attached to external, which carries ext-net: it has a local copy of this "
            "distributed router (agent_mode dvr), so its L3 agent makes fip-ext-net", only=False)


def test_dvr_no_external_gets_no_fip_namespace():
    """process_external skips dvr_no_external: no fip-, no rfp- link, no external attachment needed."""
    text = TEXT.replace("    nodes: [network1, compute1, compute2]   #", "    nodes: [network1, compute1]   #")
    text = text.replace("  compute2: {role: compute, agent_mode: dvr}", "  compute2: {role: compute, agent_mode: dvr_no_external}")
    p = build_plan(parse(text))
    assert [f.name for f in p.fip_namespaces] == ["fip-ext-net@network1", "fip-ext-net@compute1"]
    c2 = p.router_instances_of("router1@compute2")[0]
    assert c2.fip_link is None and all(r.table != 16 for r in c2.routes)


def test_fip_namespace_on_every_dvr_host_of_the_router(plan):
    """fg- from the external pool (the floating IP's host first, then node order), the rfp-/fpr-
    link and table 16's default route on every host; the /32 routes and rules only where the
    floating IP is."""
    fips = {f.node: f for f in plan.fip_namespaces}
    assert [(f.name, f.gateway.ip) for f in plan.fip_namespaces] == [
        ("fip-ext-net@network1", "203.0.113.104"), ("fip-ext-net@compute1", "203.0.113.103"),
        ("fip-ext-net@compute2", "203.0.113.105")]
    assert len({f.gateway.ns_dev for f in plan.fip_namespaces}) == 3
    for i in local(plan):
        (link,) = fips[i.node].links
        assert i.fip_link == link and (link.rfp_ip, link.fpr_ip) == ("169.254.64.0", "169.254.64.1")
        assert [(r.table, r.via, r.dev) for r in i.routes if r.table == 16] == [(16, "169.254.64.1", link.rfp_dev)]
        assert [r.table for r in i.rules if r.table == 16] == ([16] if i.node == "compute1" else [])
        assert bool(fips[i.node].routes) == (i.node == "compute1")


def test_floating_ip_on_its_compute(plan, renders):
    fip = next(f for f in plan.fip_namespaces if f.node == "compute1")
    assert (fip.name, fip.node, fip.gateway.ip, fip.gateway.ns_dev[:3]) == \
        ("fip-ext-net@compute1", "compute1", "203.0.113.103", "fg-")
    (link,) = fip.links
    assert (link.rfp_ip, link.fpr_ip, link.table) == ("169.254.64.0", "169.254.64.1", 2852012033)
    assert [(r.address, r.via, r.dev) for r in fip.routes] == [("203.0.113.102", "169.254.64.0", link.fpr_dev)]
    c1 = plan.router_instances_of("router1@compute1")[0]
    assert c1.fip_link == link
    assert (c1.rules[0].source, c1.rules[0].table, c1.rules[0].priority) == ("192.168.1.11/32", 16, 32768)
    assert (c1.routes[0].table, c1.routes[0].via, c1.routes[0].dev) == (16, "169.254.64.1", link.rfp_dev)
    text = renders["compute1"].routers["router1@compute1"]
    assert f"-A neutron-l3-agent-PREROUTING -d 203.0.113.102/32 -i {link.rfp_dev} -j DNAT --to-destination " \
           "192.168.1.11" in text
    assert "-A neutron-l3-agent-OUTPUT -d 203.0.113.102/32" not in text    # the legacy router's, not DVR's
    assert "-A neutron-l3-agent-PREROUTING -j CT --notrack" in renders["compute1"].fips[fip.name]
    assert fip.gateway.ovs_dev in " ".join(renders["compute1"].ovsdb)
    assert ("net.ipv4.conf." + fip.gateway.ns_dev + ".proxy_arp", "1") in routers.fip_sysctls(fip.gateway.ns_dev)


def test_graph_draws_snat_and_fip(plan):
    from lab.tools import graph
    text = graph.to_text(graph.build(plan))
    assert "(router1.snat)" in text and "(fip-ext-net@compute1)" in text
    assert "fpr-20e473f8-3 169.254.64.1 = rfp-20e473f8-3 169.254.64.0" in text


@pytest.mark.parametrize("scenario", ["dvr-vlan", "dvr-vxlan"])
def test_trace_expects_the_north_south_paths(scenario):
    from lab.tools.trace import build_path
    plan = build_plan(load_scenario(scenario))
    where = lambda b: [h.where for h in b.hops]     # noqa: E731
    snat, _, _ = build_path(plan, "vm2", "ext1")     # no floating IP: SNAT on network1
    w = where(snat)
    assert w[w.index(next(x for x in w if x.startswith("router1@compute2 qr-"))) + 1] == "router1@compute2 routing"
    assert any(x.startswith("router1.snat sg-") for x in w) and any(x.startswith("router1.snat qg-") for x in w)
    assert w[-1] == "ext1 eth0" and "203.0.113.101 > 203.0.113.50" in snat.hops[-1].expected
    assert "SNAT redirect: rule 3232235777" in next(h.expected for h in snat.hops if h.where == "router1@compute2 routing")
    out, _, _ = build_path(plan, "vm1", "ext1")      # floating IP: out of compute1's fip-
    w = where(out)
    assert any(x.startswith("fip-ext-net@compute1 fg-") for x in w) and not any("network1" in x for x in w)
    assert "203.0.113.102 > 203.0.113.50" in out.hops[-1].expected
    inbound, dst, _ = build_path(plan, "ext1", "203.0.113.102")
    w = where(inbound)
    assert dst.name == "vm1" and w[0] == "ext1 eth0" and w[-1] == "vm1 eth0"
    assert any(x.startswith("fip-ext-net@compute1 fg-") for x in w) and not any("network1" in x for x in w)
    assert any(x.startswith("router1@compute1 rfp-") for x in w)


def test_dvr_over_gre_is_dvr_over_vxlan_entered_from_table_3():
    """Neutron's DVR is the same per tunnel type (provision_local_vlan goes from the tunnel
    type's table to DVR_NOT_LEARN): dvr-vxlan with GRE project networks renders every node's
    flows, iptables and router rules as dvr-vxlan does, but for br-tun's gre- ports feeding
    table 3 (GRE_TUN_TO_LV) instead of table 4. tests/integration/test_dvr_gre.py runs it."""
    vx_text = Path(find_scenario("dvr-vxlan")).read_text()
    gre_text = vx_text.replace("tenant_network_types: [vxlan]", "tenant_network_types: [gre]")
    gre_text = re.sub(r"^(\s+)vni: ", r"\1key: ", gre_text.replace("vni_ranges:", "tunnel_id_ranges:"), flags=re.M)
    vx, gre = (render_plan(build_plan(parse(t))) for t in (vx_text, gre_text))
    as_gre = {"in_port=vxlan-": "in_port=gre-", "output:vxlan-": "output:gre-",
              "actions=resubmit(,4)": "actions=resubmit(,3)", "table=4,priority=1,": "table=3,priority=1,"}
    moved = 0
    for node, r in vx.items():
        assert (gre[node].iptables, gre[node].routers) == (r.iptables, r.routers)
        assert set(gre[node].flows) == set(r.flows)
        for bridge, text in r.flows.items():
            expected = text
            if bridge == naming.BR_TUN:
                for old, new in as_gre.items():
                    moved += expected.count(old)
                    expected = expected.replace(old, new)
            assert sorted(gre[node].flows[bridge].splitlines()) == sorted(expected.splitlines()), (node, bridge)
    assert moved and "table=3,priority=1,tun_id=0x3ea,actions=mod_vlan_vid:2,resubmit(,9)" \
        in gre["compute1"].flows[naming.BR_TUN]
