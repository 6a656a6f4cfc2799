"""Router placement (lab/core/routers.py): a router is a set of router instances. Legacy
today (one qrouter- on the router's node); the DVR roles are reserved. A router with several
instances (built here by hand, as DVR will build it) is iterated by targets, namespaces,
checks and graph without any of them knowing the mode."""

from __future__ import annotations

import dataclasses

import pytest

from lab.core import naming, routers
from lab.core.plan import Plan, build_plan
from lab.core.scenario import PathAssertion, load_scenario
from lab.tools import graph
from lab.tools.checks import capture_points


@pytest.fixture(scope="module")
def scenario():
    return load_scenario("classic-vlan")


@pytest.fixture(scope="module")
def plan(scenario):
    return build_plan(scenario)


def test_roles():
    assert routers.ROLES == ("legacy", "dvr_local", "dvr_snat")
    assert routers.RESERVED_ROLES == ()
    assert routers.NAMESPACE_PREFIX == {"legacy": "qrouter-", "dvr_local": "qrouter-", "dvr_snat": "snat-"}


def test_legacy_placement_is_the_routers_node(scenario):
    (r,) = scenario.routers
    assert routers.placements(scenario, r) == (("network1", "legacy"),)


def test_unknown_roles_are_refused(scenario):
    (r,) = scenario.routers
    with pytest.raises(ValueError, match="router role 'ha' is not built yet"):
        routers.instance("lab", scenario, r, "network1", "ha", 2, lambda net: 1, None)


def test_target_names():
    assert naming.router_target("router1", "network1", 1) == "router1"
    assert naming.router_target("router1", "compute1", 3) == "router1@compute1"
    ns = naming.agent_netns("lab", "compute1", naming.QROUTER, "0123456789abcdef")
    assert ns == "nlab.lab.compute1.qrouter-0123456789abcdef"
    assert naming.agent_ns_label(ns) == "qrouter-01234567…"
    with pytest.raises(AssertionError):
        naming.agent_netns("lab", "compute1", "qfoo-", "x")


def two_instances(plan: Plan) -> Plan:
    """router1 with a second instance on compute1 (what DVR will place), named per node."""
    (router,) = plan.routers
    (legacy,) = router.instances
    a = dataclasses.replace(legacy, name=naming.router_target("router1", "network1", 2))
    b = dataclasses.replace(legacy, name=naming.router_target("router1", "compute1", 2), node="compute1",
                            role="dvr_local",
                            netns=naming.agent_netns(plan.lab, "compute1", naming.QROUTER, router.router_id))
    return dataclasses.replace(plan, routers=(dataclasses.replace(router, instances=(a, b)),))


def test_several_instances_are_iterated(plan):
    multi = two_instances(plan)
    targets = multi.targets()
    assert "router1" not in targets
    assert targets["router1@network1"] == ("router", multi.router_instances[0].netns)
    assert targets["router1@compute1"] == ("router", "nlab.classic-vlan.compute1.qrouter-"
                                           + multi.router("router1").router_id)
    assert [i.name for i in multi.router_instances_of("router1")] == ["router1@network1", "router1@compute1"]
    assert [i.name for i in multi.router_instances_of("router1@compute1")] == ["router1@compute1"]
    assert multi.router("router1").serving("compute1").name == "router1@compute1"
    assert multi.router("router1").serving("compute2").name == "router1@network1"
    assert [r.name for r in multi.routers_on("compute1")] == ["router1@compute1"]
    assert set(multi.namespaces()) - set(plan.namespaces()) == {multi.router_instances[1].netns}


def test_passes_watches_every_instance(plan):
    passes = PathAssertion("passes", "router1", None, "ip", 0)
    one = capture_points(plan, passes)
    assert [c.label for c in one] == [f"router1 {p.ns_dev}" for p in plan.router("router1").instances[0].ports]
    multi = two_instances(plan)
    labels = [c.label for c in capture_points(multi, passes)]
    assert len(labels) == 2 * len(one) and labels[0].startswith("router1@network1 ")
    assert labels[-1].startswith("router1@compute1 ")
    only = capture_points(multi, dataclasses.replace(passes, target="router1@compute1"))
    assert {c.netns for c in only} == {multi.router_instances[1].netns}


def test_graph_draws_each_instance_on_its_node(plan):
    g = graph.build(two_instances(plan))
    clusters = {c.id: c.parent for c in g.clusters if c.id.startswith("router")}
    assert clusters == {"router__router1_network1": "node__network1", "router__router1_compute1": "node__compute1"}
