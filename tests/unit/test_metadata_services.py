"""The metadata agent and server (lab/services/), run in-process on unix sockets in a
temporary directory: lookup by router/network + source address, headers rebuilt, the
signature checked (403), the EC2 and OpenStack trees."""

from __future__ import annotations

import json
import threading
from email.message import Message

import pytest

from lab.core import metadata
from lab.core.plan import build_plan
from lab.core.scenario import load_scenario
from lab.services import metadata_agent, metadata_server, unixhttp

SECRET = b"s3cret"


@pytest.fixture(scope="module")
def lab_docs():
    scenario = load_scenario("classic-vlan")
    plan = build_plan(scenario)
    return plan, scenario, metadata.ports_document(plan, scenario), metadata.instances_document(plan, scenario)


def _serve(path, handler):
    server = unixhttp.UnixHTTPServer(str(path), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture()
def services(tmp_path, lab_docs):
    plan, scenario, ports, instances = lab_docs
    srv = _serve(tmp_path / "server.sock", metadata_server.make_handler(SECRET, instances["instances"]))
    agent = _serve(tmp_path / "agent.sock", metadata_agent.make_handler(ports["ports"], str(tmp_path / "server.sock"),
                                                                        SECRET))
    yield tmp_path
    for s in (srv, agent):
        s.shutdown()
        s.server_close()


def _router_id(plan):
    return plan.router("router1").router_id


def via_agent(tmp, headers, path="/latest/meta-data/instance-id"):
    return unixhttp.request(str(tmp / "agent.sock"), "GET", path, headers)


def test_agent_finds_the_instance_by_router_and_address(services, lab_docs):
    plan, scenario, _, _ = lab_docs
    status, _, body = via_agent(services, {"X-Forwarded-For": plan.port("vm1").ip,
                                           "X-Neutron-Router-ID": _router_id(plan)})
    assert (status, body.decode()) == (200, metadata.ec2_id(plan, "vm1"))
    status, _, body = via_agent(services, {"X-Forwarded-For": plan.port("vm1").ip,
                                           "X-Neutron-Router-ID": _router_id(plan)},
                                "/openstack/latest/meta_data.json")
    assert json.loads(body)["uuid"] == plan_uuid(plan, "vm1") and json.loads(body)["name"] == "vm1"


def plan_uuid(plan, name):
    from lab.core import naming
    return naming.object_uuid(plan.lab, "instance", name)


def test_forged_identity_headers_are_ignored(services, lab_docs):
    """vm1 claims to be vm3 (X-Instance-ID, signature, tenant) and puts vm3's address in its
    own X-Forwarded-For; haproxy appends vm1's real address, which is what counts."""
    plan, scenario, _, _ = lab_docs
    vm3 = plan_uuid(plan, "vm3")
    raw = ("GET /latest/meta-data/instance-id HTTP/1.0\r\n"
           f"X-Instance-ID: {vm3}\r\nX-Instance-ID-Signature: {metadata_server.sign(SECRET, vm3)}\r\n"
           f"X-Tenant-ID: x\r\nX-Forwarded-For: {plan.port('vm3').ip}\r\n"
           f"X-Forwarded-For: {plan.port('vm1').ip}\r\nX-Neutron-Router-ID: {_router_id(plan)}\r\n\r\n")
    import socket
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(services / "agent.sock"))
        s.sendall(raw.encode())
        reply = b""
        while chunk := s.recv(4096):
            reply += chunk
    assert reply.split(b"\r\n")[0].endswith(b"200 OK")
    assert reply.rsplit(b"\r\n\r\n", 1)[1].decode() == metadata.ec2_id(plan, "vm1")


def test_unknown_address_or_both_ids_is_404(services, lab_docs):
    plan, _, _, _ = lab_docs
    rid, net = _router_id(plan), "whatever"
    assert via_agent(services, {"X-Forwarded-For": "192.168.1.99", "X-Neutron-Router-ID": rid})[0] == 404
    assert via_agent(services, {"X-Forwarded-For": plan.port("vm1").ip, "X-Neutron-Router-ID": rid,
                                "X-Neutron-Network-ID": net})[0] == 404
    # alt-vm1 is on a network router1 does not serve: not found through router1
    assert via_agent(services, {"X-Forwarded-For": plan.port("alt-vm1").ip, "X-Neutron-Router-ID": rid})[0] == 404


def test_lookup_by_network_id(lab_docs):
    plan, _, ports, _ = lab_docs
    from lab.core import naming
    net = naming.object_uuid(plan.lab, "network", plan.port("alt-vm1").network)
    found = metadata_agent.find_instance(ports["ports"], plan.port("alt-vm1").ip, None, net)
    assert found and found[0] == plan_uuid(plan, "alt-vm1")


def test_server_checks_the_signature(services, lab_docs):
    plan, _, _, instances = lab_docs
    vm1 = plan_uuid(plan, "vm1")
    project = instances["instances"][vm1]["project_id"]
    sock = str(services / "server.sock")
    good = {"X-Instance-ID": vm1, "X-Tenant-ID": project, "X-Instance-ID-Signature": metadata_server.sign(SECRET, vm1)}
    assert unixhttp.request(sock, "GET", "/latest/meta-data/instance-id", good)[0] == 200
    assert unixhttp.request(sock, "GET", "/latest/meta-data/instance-id",
                            {**good, "X-Instance-ID-Signature": metadata_server.sign(b"wrong", vm1)})[0] == 403
    no_sig = {k: v for k, v in good.items() if k != "X-Instance-ID-Signature"}
    assert unixhttp.request(sock, "GET", "/latest/meta-data/instance-id", no_sig)[0] == 403
    assert unixhttp.request(sock, "GET", "/latest/meta-data/instance-id", {**good, "X-Tenant-ID": "other"})[0] == 404
    assert unixhttp.request(sock, "GET", "/", {"X-Tenant-ID": project})[0] == 400


def _instance(**extra):
    base = {"uuid": "u", "ec2_id": "i-00000001", "name": "vm1", "hostname": "vm1", "project_id": "p",
            "local_ipv4": "192.168.1.11", "public_ipv4": "203.0.113.102", "public_keys": {}, "user_data": None}
    return base | extra


def test_trees():
    inst = _instance(public_keys={"mykey": "ssh-ed25519 AAAA me@x"}, user_data="#!/bin/sh\necho hi\n")
    answer = metadata_server.answer
    assert answer(inst, "/latest/meta-data/instance-id")[2] == "i-00000001"
    assert answer(inst, "/2009-04-04/meta-data/local-ipv4")[2] == "192.168.1.11"
    assert answer(inst, "/latest/meta-data/public-ipv4")[2] == "203.0.113.102"
    assert answer(inst, "/latest/meta-data/hostname")[2] == "vm1"
    assert answer(inst, "/latest/meta-data/public-keys")[2] == "0=mykey"
    assert answer(inst, "/latest/meta-data/public-keys/0/openssh-key")[2] == "ssh-ed25519 AAAA me@x"
    assert "public-keys/" in answer(inst, "/latest/meta-data/")[2].splitlines()
    assert answer(inst, "/latest/user-data")[2] == "#!/bin/sh\necho hi\n"
    md = json.loads(answer(inst, "/openstack/latest/meta_data.json")[2])
    assert md["uuid"] == "u" and md["public_keys"] == {"mykey": "ssh-ed25519 AAAA me@x"}
    assert answer(inst, "/openstack/latest/user_data")[2] == "#!/bin/sh\necho hi\n"
    assert answer(inst, "/latest/meta-data/nothing")[0] == 404


def test_trees_without_optional_data():
    inst = _instance(public_ipv4=None)
    answer = metadata_server.answer
    assert answer(inst, "/latest/user-data")[0] == 404
    assert answer(inst, "/latest/meta-data/public-ipv4")[0] == 404
    assert answer(inst, "/latest/meta-data/public-keys")[0] == 404
    assert "public_keys" not in json.loads(answer(inst, "/openstack/latest/meta_data.json")[2])


def test_client_address_takes_haproxys_value():
    m = Message()
    m["X-Forwarded-For"] = "10.0.0.1, 192.0.2.7"
    m["X-Forwarded-For"] = "192.168.1.11"
    assert metadata_agent.client_address(m) == "192.168.1.11"
    bad = Message()
    bad["X-Forwarded-For"] = "nonsense"
    assert metadata_agent.client_address(bad) is None
    assert metadata_agent.client_address(Message()) is None


def test_command_lines_start_both_services(tmp_path, lab_docs, monkeypatch):
    """Each main parses its own options plus daemon.main's shared ones, reads its files and the
    secret before forking, and hands daemon.run a server whose handler serves them: an agent
    and a server made that way answer vm1's request (daemon.run is replaced: no fork)."""
    from lab.services import daemon
    plan, _, ports, instances = lab_docs
    (tmp_path / "secret").write_bytes(SECRET + b"\n")
    (tmp_path / "ports.json").write_text(json.dumps(ports))
    (tmp_path / "instances.json").write_text(json.dumps(instances))
    started = {}
    monkeypatch.setattr(daemon, "run", lambda comm, sock, pidfile, log, make, foreground:
                        started.update({comm: (sock, pidfile, log, make, foreground)}))
    common = ["--secret-file", str(tmp_path / "secret"), "--pidfile", str(tmp_path / "pid"),
              "--log", str(tmp_path / "log")]
    metadata_server.main(["--socket", str(tmp_path / "server.sock"),
                          "--instances", str(tmp_path / "instances.json"), *common])
    metadata_agent.main(["--socket", str(tmp_path / "agent.sock"), "--ports", str(tmp_path / "ports.json"),
                         "--server-socket", str(tmp_path / "server.sock"), *common, "--foreground"])
    assert sorted(started) == [metadata_agent.COMM, metadata_server.COMM]
    assert started[metadata_server.COMM][:3] == (str(tmp_path / "server.sock"), str(tmp_path / "pid"),
                                                 str(tmp_path / "log"))
    assert (started[metadata_server.COMM][4], started[metadata_agent.COMM][4]) == (False, True)
    servers = [started[comm][3]() for comm in (metadata_server.COMM, metadata_agent.COMM)]
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    try:
        status, _, body = via_agent(tmp_path, {"X-Forwarded-For": plan.port("vm1").ip,
                                               "X-Neutron-Router-ID": _router_id(plan)})
    finally:
        for s in servers:
            s.shutdown()
            s.server_close()
            s.RequestHandlerClass.log_file.close()
    assert (status, body.decode()) == (200, metadata.ec2_id(plan, "vm1"))
    assert "GET /latest/meta-data/instance-id" in (tmp_path / "log").read_text()


@pytest.mark.parametrize("service, own, missing", [
    (metadata_server, ["--instances", "i"], "--instances"),
    (metadata_agent, ["--ports", "p", "--server-socket", "s"], "--server-socket"),
    (metadata_agent, ["--ports", "p", "--server-socket", "s"], "--secret-file")])
def test_command_line_needs_every_file(service, own, missing, capsys):
    argv = ["--socket", "sock", *own, "--secret-file", "f", "--pidfile", "p", "--log", "l"]
    at = argv.index(missing)
    with pytest.raises(SystemExit) as exc:
        service.main(argv[:at] + argv[at + 2:])
    assert exc.value.code == 2 and missing in capsys.readouterr().err
