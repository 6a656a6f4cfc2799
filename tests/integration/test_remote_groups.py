"""Remote security groups on a real lab (scenarios/remote-groups.yaml, lab/core/ipsets.py):
compute1 keeps enable_ipset = True (the app group's members in an ipset of compute1's
namespace, one `-m set` rule), compute2 has enable_ipset: false (one rule per member).

The scenario's checks prove with captured packets that app members reach db1 and db2 and a
default-group instance that is not an app member is dropped at each db port. Then a fault:
the app set is flushed, or gains other1's address, in compute1's namespace; `lab status` names
the set and what it lacks or has too many; `lab up` re-applies the sets; the checks pass
again (which, with other1 in the set, means other1 is blocked once more)."""

from __future__ import annotations

import json
import subprocess

import pytest

from lab.core import naming

from .conftest import lab, lab_up, running, test_name

SCENARIO = "remote-groups"
NAME = test_name(SCENARIO)


@pytest.fixture(scope="module")
def state(host_before):
    with running(host_before, SCENARIO) as labs:
        yield labs[SCENARIO]


def in_ns(ns: str, *argv: str) -> str:
    return subprocess.run(["ip", "netns", "exec", ns, *argv], check=True, capture_output=True, text=True).stdout


def app_set(state) -> str:
    return naming.ipset_name(naming.security_group_uuid(NAME, "demo", "app"))


def checks_pass() -> str:
    out = lab("check", NAME, check=False, timeout=300)
    assert out.returncode == 0, out.stdout
    return out.stdout


def test_members_reach_non_members_are_dropped(state):
    out = checks_pass()
    for name in ("member to ipset node, across hosts", "non-member to ipset node is dropped there",
                 "member to expanded node, across hosts, TCP", "non-member to expanded node is dropped there"):
        assert f"PASS {name}" in out, out


def test_sets_live_in_the_ipset_node_only(state):
    c1, c2 = state.plan.node("compute1"), state.plan.node("compute2")
    members = in_ns(c1.netns, "ipset", "list", app_set(state))
    app = [p.ip for p in state.plan.ports if "app" in p.security_groups]
    assert all(f"{ip}\n" in members for ip in app) and state.plan.port("other1").ip not in members
    rules = in_ns(c1.netns, "iptables-save")
    assert f"--match-set {app_set(state)} src -j RETURN" in rules
    assert in_ns(c2.netns, "ipset", "list", "-n") == ""         # enable_ipset: false
    db2 = state.plan.port("db2")
    chain = naming.sg_chain("i", db2.port_id)
    expanded = [line for line in in_ns(c2.netns, "iptables-save").splitlines() if line.startswith(f"-A {chain} -s ")]
    assert len(expanded) == 2 * len(app)      # icmp and tcp 5001 from each app member


def _status_names(*words: str) -> None:
    out = lab("status", NAME, check=False)
    assert out.returncode == 1, out.stdout
    assert all(w in out.stdout for w in words), out.stdout
    doc = json.loads(lab("status", NAME, "--json", check=False).stdout)
    problems = doc["problems"]
    assert any(all(w in p for w in words) for p in problems), problems
    assert problems == [f["text"] for f in doc["faults"]], doc["faults"]


def _repair(*words: str) -> None:
    out = lab_up(SCENARIO)
    assert "repaired" in out.stdout and all(w in out.stdout for w in words), out.stdout
    assert lab("status", NAME).returncode == 0


def test_flushed_set_is_named_and_repaired(state):
    c1 = state.plan.node("compute1")
    in_ns(c1.netns, "ipset", "flush", app_set(state))
    blocked = lab("check", NAME, check=False, timeout=300)
    assert "FAIL member to ipset node, across hosts" in blocked.stdout, blocked.stdout   # the set is the rule
    _status_names("compute1", app_set(state), "lacks 2 member(s)", f"lab up {NAME}")
    _repair("compute1", "ipsets")
    checks_pass()


def test_foreign_member_is_named_and_removed(state):
    c1 = state.plan.node("compute1")
    other1 = state.plan.port("other1").ip
    in_ns(c1.netns, "ipset", "add", app_set(state), other1)
    _status_names("compute1", app_set(state), "1 unexpected member(s)", other1)
    _repair("compute1", "ipsets")
    assert other1 not in in_ns(c1.netns, "ipset", "list", app_set(state))
    checks_pass()       # other1 -> db1 is blocked again
