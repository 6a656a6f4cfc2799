"""The metadata service on a real lab (issue 10 §3): an instance reads its own metadata
through 169.254.169.254 (the `metadata` check, and wget as a user would), forged identity
headers change nothing, the server answers a wrong signature with 403 and listens on no
TCP port, a killed haproxy/agent/server is named by `lab status` and restarted by `lab up`,
and `lab down` ends every one of them by pid."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from lab.core import metadata, naming
from lab.runtime import metadata as metadata_runtime
from lab.runtime import processes
from lab.services import metadata_server, unixhttp
from lab.tools import metadata_check

from .conftest import lab, lab_up, running, test_name

NAME = test_name("classic-vlan")


@pytest.fixture(scope="module")
def state(host_before):
    with running(host_before, "classic-vlan") as labs:
        yield labs["classic-vlan"]


def test_metadata_check_passes(state):
    out = lab("check", NAME, "--json", check=False, timeout=300)
    results = {c["name"]: c for c in json.loads(out.stdout)["results"]}
    md = results["vm1 reads its own metadata"]
    assert md["passed"], md
    assert any("REDIRECT" in e for e in md["evidence"]) and any("leaves through" in e for e in md["evidence"])


def test_wget_in_the_instance_prints_its_id(state):
    for vm in ("vm1", "vm2"):
        out = lab("exec", NAME, vm, "--", "wget", "-qO-", "-T", "10",
                  f"http://{metadata.METADATA_IP}/latest/meta-data/instance-id")
        assert out.stdout == metadata.ec2_id(state.plan, vm)
    md = json.loads(lab("exec", NAME, "vm2", "--", "wget", "-qO-", "-T", "10",
                        f"http://{metadata.METADATA_IP}/openstack/latest/meta_data.json").stdout)
    assert md["uuid"] == naming.object_uuid(NAME, "instance", "vm2") and md["name"] == "vm2"
    assert lab("exec", NAME, "vm1", "--", "wget", "-qO-", "-T", "10",
               f"http://{metadata.METADATA_IP}/latest/user-data").stdout.startswith("#!/bin/sh")


def test_isolated_network_is_served_by_its_qdhcp(state):
    """alt-net has no router; classic-vlan sets enable_isolated_metadata: the DHCP port holds
    169.254.169.254/32, option 121 routes the address there, haproxy in qdhcp- answers."""
    routes = lab("exec", NAME, "alt-vm1", "--", "ip", "-4", "route").stdout
    dhcp = next(d for d in state.plan.dhcp_servers if d.network == "alt-net")
    assert f"169.254.169.254 via {dhcp.port.ip} dev eth0" in routes, routes
    out = lab("exec", NAME, "alt-vm1", "--", "wget", "-qO-", "-T", "10",
              f"http://{metadata.METADATA_IP}/latest/meta-data/local-ipv4")
    assert out.stdout == state.plan.port("alt-vm1").ip
    proxy = metadata.for_instance(state.plan, "alt-vm1")
    assert proxy.netns == dhcp.netns and metadata_runtime.proxy_alive(proxy)


def test_forged_identity_headers_get_the_instances_own_data(state):
    vm3 = naming.object_uuid(NAME, "instance", "vm3")
    forged = (f"X-Instance-ID: {vm3}", f"X-Instance-ID-Signature: {metadata_server.sign(b'guess', vm3)}",
              "X-Tenant-ID: someone-else", f"X-Forwarded-For: {state.plan.port('vm3').ip}",
              "X-Neutron-Router-ID: 00000000-0000-0000-0000-000000000000",
              "X-Neutron-Network-ID: 00000000-0000-0000-0000-000000000000")
    answer = metadata_check.fetch(state.plan, "vm1", headers=forged)
    assert answer == {"status": 200, "body": metadata.ec2_id(state.plan, "vm1")}
    answer = metadata_check.fetch(state.plan, "vm1", "/latest/meta-data/local-ipv4", headers=forged)
    assert answer["body"] == state.plan.port("vm1").ip


def test_server_checks_the_signature_and_has_no_tcp_listener(state):
    srv = metadata_runtime.server_of(state.plan)
    secret = Path(srv.secret).read_bytes().strip()
    vm1 = naming.object_uuid(NAME, "instance", "vm1")
    project = metadata.project_id(NAME, state.plan.port("vm1").project)
    good = {"X-Instance-ID": vm1, "X-Tenant-ID": project, "X-Instance-ID-Signature": metadata_server.sign(secret, vm1)}
    path = "/latest/meta-data/instance-id"
    assert unixhttp.request(srv.socket, "GET", path, good)[:3:2] == (200, metadata.ec2_id(state.plan, "vm1").encode())
    wrong = {**good, "X-Instance-ID-Signature": metadata_server.sign(b"not-the-secret", vm1)}
    assert unixhttp.request(srv.socket, "GET", path, wrong)[0] == 403
    assert unixhttp.request(srv.socket, "GET", path, {k: v for k, v in good.items()
                                                      if k != "X-Instance-ID-Signature"})[0] == 403
    assert oct(os.stat(srv.secret).st_mode & 0o777) == "0o600"
    pid = processes.read_pidfile(srv.pidfile)
    assert _tcp_sockets(pid) == set(), "the metadata server must listen on its unix socket only"


def _tcp_sockets(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(fd)
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    tcp = set()
    for table in ("tcp", "tcp6", "udp", "udp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                tcp.add(f"{table} {fields[1]}")
    return tcp


@pytest.mark.parametrize("what", ["haproxy", "agent", "server"])
def test_killed_process_is_reported_and_restarted(state, what):
    plan = state.plan
    proxy = metadata.proxies(plan)[0]       # router1's
    pidfile = {"haproxy": proxy.pidfile, "agent": metadata.agents(plan)[0].pidfile,
               "server": metadata_runtime.server_of(plan).pidfile}[what]
    words = {"haproxy": "metadata proxy (haproxy) of router1", "agent": "metadata agent of network1",
             "server": "metadata server"}[what]
    pid = processes.read_pidfile(pidfile)
    os.kill(pid, signal.SIGKILL)        # the lab started it: ended by its pid
    assert processes.wait_gone(pid, 5)
    status = lab("status", NAME, check=False)
    assert status.returncode == 1 and words in status.stdout and f"lab up {NAME}" in status.stdout
    up = lab_up("classic-vlan")
    assert "repaired" in up.stdout and words in up.stdout, up.stdout
    assert lab("status", NAME).returncode == 0
    assert metadata_check.fetch(plan, "vm1")["body"] == metadata.ec2_id(plan, "vm1")


def test_down_ends_every_metadata_process(state):
    rows = json.loads(lab("status", NAME, "--json").stdout)["metadata"]
    pids = [r["pid"] for r in rows]
    plan = state.plan
    assert len(pids) == 1 + len(metadata.agents(plan)) + len(metadata.proxies(plan)) == 4   # server, agent, 2 haproxy
    assert all(r["running"] for r in rows)
    lab("down", NAME)
    for pid in pids:
        assert processes.wait_gone(pid, 5), f"pid {pid} outlived `lab down`"
    assert not Path(metadata_runtime.server_of(state.plan).socket).exists()
