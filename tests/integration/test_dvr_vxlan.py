"""dvr-vxlan for real: the distributed router over VXLAN, the DVR MAC inside the VNI, br-tun's
DVR tables (1, 9, 22), ARP for a qr- address kept off the underlay, trace through tables 9
and 1; the host unchanged afterwards. (Its own module: each module's labs are checked
against the host as it was, so two modules' labs must not overlap.)"""

from __future__ import annotations

import json
import re

import pytest

from .conftest import lab, running, test_name

VXLAN = "dvr-vxlan"


@pytest.fixture(scope="module")
def live_vxlan(host_before):
    with running(host_before, VXLAN) as labs:
        yield labs[VXLAN]


def test_vxlan_checks_pass_with_the_dvr_mac_inside_the_vni(live_vxlan):
    name = test_name(VXLAN)
    report = json.loads(lab("check", name, "--json").stdout)
    assert report["passed"], json.dumps(report, indent=1)
    results = {r["name"]: r for r in report["results"]}
    d1 = live_vxlan.plan.node("compute1").dvr_mac
    ew = results["east-west is routed on compute1"]["evidence"]
    assert "VXLAN, vni 1002" in ew[1] and f"| {d1} > " in ew[1]
    arp = results["ARP for the gateway never crosses the underlay"]["evidence"]
    assert "Reply 192.168.1.1 is-at" in arp[0]


def test_vxlan_br_tun_has_the_dvr_tables(live_vxlan):
    name = test_name(VXLAN)
    d1 = live_vxlan.plan.node("compute1").dvr_mac
    out = lab("exec", name, "compute1", "--", "ovs-ofctl", "dump-flows", "br-tun").stdout
    assert f"actions=mod_dl_src:{d1},resubmit(,2)" in out                  # table 1
    assert "arp_tpa=192.168.1.1 actions=drop" in out                        # table 22
    for mac in live_vxlan.plan.other_dvr_macs("compute1"):
        assert f"dl_src={mac} actions=output:" in out                       # table 9
    assert "actions=mod_vlan_vid:1,resubmit(,9)" in out                     # table 4 -> 9
    flows = lab("flows", name, "compute2", "br-int").stdout
    assert "table 1 — DVR to src MAC" in flows and "DVR MAC of compute1" in flows


def test_vxlan_trace_walks_the_distributed_path(live_vxlan):
    t = json.loads(lab("trace", test_name(VXLAN), "vm1", "vm4", "--json").stdout)
    assert t["reached"], json.dumps(t, indent=1)
    assert not any("network1" in h["where"] for h in t["hops"])
    explain = " ".join(e for h in t["hops"] for e in h["explain"])
    # lab trace names the tables: "table 1 (DVR process) prio 20" (br-tun), "table 9 (...)"
    assert "table 9" in explain and re.search(r"table 1 (\([^)]*\) )?prio 20", explain), explain
