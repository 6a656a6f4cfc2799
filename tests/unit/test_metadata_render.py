"""The metadata service's pure side (lab/core/metadata.py): haproxy's configuration as
Neutron's metadata driver writes it, where each proxy and agent lives, and the documents the
agent and server read. Golden files in tests/golden/metadata/<scenario>/ (UPDATE_GOLDEN=1)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from lab.core import metadata, naming
from lab.core.plan import build_plan
from lab.core.scenario import load_scenario

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "metadata"
SCENARIOS = ("classic-vlan", "dvr-vlan")


def rendered(name: str) -> dict[str, str]:
    scenario = load_scenario(name)
    plan = build_plan(scenario)
    out = {f"haproxy-{p.name}.conf": metadata.haproxy_config(p) for p in metadata.proxies(plan)}
    out["ports.json"] = json.dumps(metadata.ports_document(plan, scenario), indent=1, sort_keys=True) + "\n"
    out["instances.json"] = json.dumps(metadata.instances_document(plan, scenario), indent=1, sort_keys=True) + "\n"
    out["processes.txt"] = "".join(f"{x}\n" for x in (*metadata.proxies(plan), *metadata.agents(plan),
                                                       metadata.server(plan, "/run/neutron-lab")))
    return out


@pytest.mark.parametrize("name", SCENARIOS)
def test_golden(name):
    for file, text in rendered(name).items():
        path = GOLDEN / name / file
        if os.environ.get("UPDATE_GOLDEN"):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        assert path.read_text() == text, f"{path} differs (UPDATE_GOLDEN=1 regenerates it)"


def test_haproxy_config_is_neutrons():
    plan = build_plan(load_scenario("classic-vlan"))
    proxy = metadata.proxies(plan)[0]
    text = metadata.haproxy_config(proxy)
    router_id = plan.router("router1").router_id
    assert "    bind 0.0.0.0:9697\n" in text
    assert f"    server metadata {plan.node('network1').rundir}/metadata_proxy\n" in text
    assert text.endswith("    http-request del-header X-Neutron-Network-ID\n"
                         f"    http-request set-header X-Neutron-Router-ID {router_id}\n")
    assert "    option forwardfor\n" in text and f"    pidfile     {proxy.pidfile}\n" in text


def test_every_dvr_host_serves_metadata():
    """DVR: every host's qrouter- gets a proxy (after_router_added spawns one for every
    router that is not HA), and an instance is served by its own host's."""
    plan = build_plan(load_scenario("dvr-vlan"))
    assert {p.node for p in metadata.proxies(plan)} == {r.node for r in plan.router_instances}
    assert {a.node for a in metadata.agents(plan)} == {r.node for r in plan.router_instances}
    for port in plan.ports:
        proxy = metadata.for_instance(plan, port.instance)
        if proxy is not None:
            assert proxy.node == port.node


def test_documents():
    scenario = load_scenario("classic-vlan")
    plan = build_plan(scenario)
    vm1 = naming.object_uuid(plan.lab, "instance", "vm1")
    inst = metadata.instances_document(plan, scenario)["instances"][vm1]
    assert inst["public_ipv4"] == "203.0.113.102" and inst["local_ipv4"] == "192.168.1.11"
    assert inst["user_data"].startswith("#!/bin/sh") and "demo-key" in inst["public_keys"]
    assert inst["ec2_id"] == metadata.ec2_id(plan, "vm1") and len(inst["project_id"]) == 32
    router_ports = [p for p in metadata.ports_document(plan, scenario)["ports"]
                    if p["device_id"] == plan.router("router1").router_id]
    assert {p["device_owner"] for p in router_ports} == {"network:router_interface"}
    # alt-net has no router: with enable_isolated_metadata its qdhcp- serves it on 169.254.169.254:80
    isolated = metadata.for_instance(plan, "alt-vm1")
    assert (isolated.name, isolated.resource, isolated.bind, isolated.port) == ("alt-net-dhcp", "Network",
                                                                                "169.254.169.254", 80)
    text = metadata.haproxy_config(isolated)
    assert text.endswith("    http-request del-header X-Neutron-Router-ID\n"
                         f"    http-request set-header X-Neutron-Network-ID {isolated.resource_id}\n")
    assert metadata.for_instance(build_plan(load_scenario("classic-vxlan")), "alt-vm1") is None   # option off
