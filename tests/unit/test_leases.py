"""lab/tools/leases.py: a lease check passes only when the instance's DHCP client (its
DHCPACK), its eth0 and dnsmasq's lease file agree; each witness missing or disagreeing fails
it. No kernel: eth0 is what a stubbed `ip address show` prints."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from lab.core.plan import build_plan
from lab.core.scenario import load_scenario
from lab.tools import leases

AT = 1_800_000_000


@pytest.fixture
def lab(tmp_path, monkeypatch):
    plan = build_plan(load_scenario("classic-vlan"), state_root=str(tmp_path))
    port = plan.port("vm1")
    dhcp = next(d for d in plan.dhcp_servers if d.network == port.network)
    Path(dhcp.dir).mkdir(parents=True)
    record = tmp_path / plan.lab / "clients" / "vm1.lease"
    record.parent.mkdir(parents=True)
    eth0 = {"text": f"2: eth0    inet {port.ip}/{port.prefixlen} brd x scope global eth0\n"}
    monkeypatch.setattr(leases.gateway, "run", lambda argv, **kw: SimpleNamespace(stdout=eth0["text"]))

    def write(server=dhcp.port.ip, ip=port.ip, expiry=AT + 86400, file_ip=port.ip):
        record.write_text(f"lease ip={ip} mask={port.prefixlen} mtu=1500 router=192.168.1.1 server={server} "
                          f"seconds=86400 at={AT} staticroutes=169.254.169.254/32 192.168.1.1\n")
        Path(dhcp.dir, "leases").write_text(f"{expiry} {port.mac} {file_ip} host-x 01:{port.mac}\n")
    return SimpleNamespace(plan=plan, port=port, dhcp=dhcp, record=record, eth0=eth0, write=write)


def test_client_eth0_and_lease_file_agree(lab):
    lab.write()
    passed, seen, evidence = leases.prove(lab.plan, "vm1")
    assert passed, evidence
    assert seen == f"{lab.port.ip}/{lab.port.prefixlen} acked leased"
    assert f"DHCPACK from {lab.dhcp.port.ip} for {lab.port.ip}/{lab.port.prefixlen}, lease 86400 s" in evidence[0]
    assert evidence[2].endswith("= bound + 86400 s +0 s")


def failed(lab, *words):
    passed, _, evidence = leases.prove(lab.plan, "vm1")
    assert not passed and any(all(w in e for w in words) and e.startswith("FAIL") for e in evidence), evidence


def test_a_lease_removed_from_the_file_fails(lab):
    lab.write()
    Path(lab.dhcp.dir, "leases").write_text("")
    failed(lab, "has no lease for", lab.port.mac)


def test_an_instance_whose_client_never_got_an_ack_fails(lab):
    lab.write()
    lab.record.unlink()          # its address, if any, did not come from a DHCPACK
    failed(lab, "never reported a DHCPACK")


def test_a_lease_from_another_server_fails(lab):
    lab.write(server="192.168.1.99")
    failed(lab, "DHCPACK from 192.168.1.99")


def test_a_file_entry_from_another_exchange_fails(lab):
    lab.write(expiry=AT + 86400 - 600)
    failed(lab, "not the exchange the client reported")


def test_an_address_missing_from_eth0_fails(lab):
    lab.write()
    lab.eth0["text"] = ""
    failed(lab, "vm1 eth0: no IPv4 address")


def test_the_client_record_parses_what_the_script_prints():
    c = leases.ClientLease.parse("lease ip=10.0.0.5 mask=24 mtu= router= server=10.0.0.2 seconds=600 at=7 "
                                 "staticroutes=0.0.0.0/0 10.0.0.1")
    assert c == leases.ClientLease("10.0.0.5", 24, "10.0.0.2", 600, 7)
    assert leases.ClientLease.parse("garbage") is None
