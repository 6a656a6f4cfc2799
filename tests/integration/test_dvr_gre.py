"""DVR over GRE for real: scenarios/dvr-vxlan.yaml with `tenant_network_types: [gre]` (the same
tunnel ids through `tunnel_id_ranges`, every check's `vni:` turned into `key:`), written to a
temporary directory. Neutron's DVR is the same per tunnel type (the OVS agent requires l2pop
for "VXLAN/GRE/Geneve underlays"; br-tun's DVR tables hang off the tunnel type's own
table, 3 for GRE instead of 4). Every check passes, east-west and north-south, and the frames
the checks judge on the underlay are GRE with the network's key and the DVR MAC inside;
nothing crosses it as VXLAN. The host is unchanged afterwards."""

from __future__ import annotations

import json
import re

import pytest

from lab import api

from . import hoststate
from .conftest import PREFIX, REPO, lab, remove_ours, test_name

NAME = test_name("dvr-gre")
VXLAN_TEXT = (REPO / "scenarios" / "dvr-vxlan.yaml").read_text()


def gre_variant(text: str) -> str:
    """dvr-vxlan's text with GRE project networks; each change must apply (a renamed key in
    dvr-vxlan.yaml fails here, not silently as a VXLAN lab)."""
    changes = [(r"^name: dvr-vxlan$", "name: dvr-gre", 1),
               (r"^  tenant_network_types: \[vxlan\].*$", "  tenant_network_types: [gre]   # net1 -> key 1001, "
                                                          "net2 -> 1002", 1),
               (r"^  vni_ranges: ", "  tunnel_id_ranges: ", 1),
               (r"^(\s+)vni: (\d+)", r"\1key: \2", None)]
    for pattern, repl, count in changes:
        text, n = re.subn(pattern, repl, text, flags=re.M)
        assert n and (count is None or n == count), f"dvr-vxlan.yaml no longer has {pattern!r}"
    assert "vxlan" not in re.sub(r"#.*", "", text), "a VXLAN key is left in the GRE variant"
    return text


@pytest.fixture(scope="module")
def live_gre(host_before, tmp_path_factory):
    from lab.runtime import lifecycle
    path = tmp_path_factory.mktemp("dvr-gre") / "dvr-gre.yaml"
    path.write_text(gre_variant(VXLAN_TEXT))
    try:
        lab("up", str(path), "--name", NAME)
        yield lifecycle.load_state(NAME)
    finally:
        remove_ours(NAME)
        hoststate.assert_unchanged(host_before, PREFIX)


def test_the_plan_builds_gre_tunnels_with_dvr(live_gre):
    plan = live_gre.plan
    for node in plan.nodes:
        assert node.dvr_mac and node.tunnel
        assert {p.type for p in node.tunnel.ports} == {"gre"}
        assert {tn.segmentation_id for tn in node.tunnel_networks} == {1001, 1002}


def test_every_check_passes_with_gre_on_the_underlay(live_gre):
    """East-west (routed on the sending compute, the DVR MAC inside the GRE key of the
    destination network) and north-south (SNAT through snat-, floating IP through fip-)."""
    report = json.loads(lab("check", NAME, "--json", timeout=300).stdout)
    assert report["passed"], json.dumps(report, indent=1)
    results = {r["name"]: r["evidence"] for r in report["results"]}
    d1, d2 = (live_gre.plan.node(n).dvr_mac for n in ("compute1", "compute2"))
    ew = results["east-west is routed on compute1"]
    assert ": GRE, key=0x3ea | " in ew[1] and f"| {d1} > " in ew[1], ew     # the request, in net2's key
    assert ": GRE, key=0x3e9 | " in ew[3] and f"| {d2} > " in ew[3], ew     # the reply, in net1's key
    snat = results["SNAT through the network node's snat-"]
    assert ": GRE, key=0x3e9 | " in snat[1] and d2 in snat[1], snat          # to net1's sg- port
    assert "203.0.113.101 > 203.0.113.50" in snat[3], snat
    assert "Reply 192.168.1.1 is-at" in results["ARP for the gateway never crosses the underlay"][0]


def test_the_underlay_carries_gre_not_vxlan(live_gre):
    """A capture of the underlay wire itself (every node's port, each frame once) while vm1
    pings vm4: GRE with net2's key and compute1's DVR MAC inside, the reply in net1's key from
    compute2's DVR MAC, and no VXLAN (UDP 4789) at all."""
    plan = live_gre.plan
    vm1, vm4 = plan.port("vm1"), plan.port("vm4")
    with api.capture(NAME, "underlay") as wire:
        assert api.exec(NAME, "vm1", ["ping", "-c", "3", "-i", "0.2", "-W", "2", vm4.ip]).ok
    frames = wire.packets
    lines = "\n".join(wire.lines)
    assert frames and not [p for p in frames if p.tunnel == "vxlan" or p.dport == 4789], lines
    d1, d2 = (plan.node(n).dvr_mac for n in ("compute1", "compute2"))
    requests = [p for p in frames if p.tunnel == "gre" and p.tunnel_id == 1002 and p.inner
                and p.inner.src_mac == d1 and p.inner.dst_mac == vm4.mac and p.inner.ip_dst == vm4.ip]
    replies = [p for p in frames if p.tunnel == "gre" and p.tunnel_id == 1001 and p.inner
               and p.inner.src_mac == d2 and p.inner.dst_mac == vm1.mac and p.inner.ip_dst == vm1.ip]
    assert len(requests) >= 3 and len(replies) >= 3, lines


def test_br_tun_sends_gre_to_the_dvr_tables(live_gre):
    """Table 3 (GRE_TUN_TO_LV) sets the local VLAN and goes to 9 (DVR_NOT_LEARN), as table 4
    does for VXLAN; the gre- ports feed table 3."""
    out = lab("exec", NAME, "compute1", "--", "ovs-ofctl", "--names", "dump-flows", "br-tun").stdout
    assert re.search(r"table=3, .*tun_id=0x3ea actions=mod_vlan_vid:2,resubmit\(,9\)", out), out
    gre_ports = re.findall(r"table=0, .*in_port=\"?(gre-[0-9a-f]{8})\"? actions=resubmit\(,3\)", out)
    assert len(gre_ports) == 2 and not re.search(r"table=0, .*actions=resubmit\(,4\)", out), out
    for mac in live_gre.plan.other_dvr_macs("compute1"):
        assert re.search(rf"table=9, .*dl_src={mac} actions=output:\"?patch-int\"?\n", out), out   # not learned


def test_trace_walks_the_distributed_path_over_gre(live_gre):
    t = json.loads(lab("trace", NAME, "vm1", "vm4", "--json").stdout)
    assert t["reached"], json.dumps(t, indent=1)
    assert not any("network1" in h["where"] for h in t["hops"])
    explain = " ".join(e for h in t["hops"] for e in h["explain"])
    assert "table 9" in explain and "table 3" in explain, explain
