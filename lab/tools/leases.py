"""`lease:` checks: proof that an instance obtained its lease from the lab's dnsmasq, not
only that a file lists it (issue 13 §2).

Three witnesses must agree:

1. the instance's DHCP client: the udhcpc script prints its `lease ...` line only when the
   client is bound, i.e. after a DHCPACK; `up` keeps that line (agents.client_record) with
   the server that acked, the lease time and the instant it was bound;
2. the kernel: the instance's eth0 holds that address with that prefix;
3. dnsmasq: its lease file has the instance's MAC with that address, expiring the lease time
   after the client was bound (dnsmasq writes `expiry = ACK time + lease time`), so the entry
   is the one this exchange made, not an older one.

A dnsmasq restarted by `up` keeps its lease file, so the check still passes afterwards; a
lease removed from the file, an instance whose client never reported a DHCPACK (its address
put on eth0 by hand, say), a lease from another server or a file entry from another exchange
fail it.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

from lab.core.plan import DhcpPlan, InstancePort, Plan
from lab.runtime import gateway
from lab.runtime.agents import client_record

EXPIRY_SLACK = 3      # seconds between dnsmasq's ACK and the client script's clock reading


@dataclass(frozen=True)
class ClientLease:
    ip: str
    mask: int
    server: str
    seconds: int | None
    at: int | None

    @staticmethod
    def parse(line: str) -> "ClientLease | None":
        fields = dict(re.findall(r"(\w+)=(\S*)", line.split(" staticroutes=")[0]))
        try:
            return ClientLease(fields["ip"], int(fields["mask"]), fields.get("server", ""),
                               int(fields["seconds"]) if fields.get("seconds") else None,
                               int(fields["at"]) if fields.get("at") else None)
        except (KeyError, ValueError):
            return None


def file_lease(dhcp: DhcpPlan, mac: str) -> tuple[int, str] | None:
    """(expiry, ip) of MAC in dnsmasq's lease file ("expiry mac ip hostname client-id")."""
    try:
        lines = Path(dhcp.dir, "leases").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split()
        if len(parts) >= 3 and parts[1].lower() == mac.lower():
            return int(parts[0]), parts[2]
    return None


def eth0_addresses(port: InstancePort) -> list[tuple[str, str]]:
    out = gateway.run(["ip", "-4", "-o", "address", "show", "dev", "eth0"], netns=port.netns).stdout
    return re.findall(r"inet (\d+\.\d+\.\d+\.\d+)/(\d+)", out)


def _ok(good: bool, text: str) -> str:
    return ("ok   " if good else "FAIL ") + text


def client_evidence(port: InstancePort, dhcp: DhcpPlan, record: Path) -> tuple[str, ClientLease | None]:
    try:
        client = ClientLease.parse(record.read_text())
    except OSError:
        return _ok(False, f"{port.instance}'s DHCP client never reported a DHCPACK (no {record.name} "
                          f"from `up`'s udhcpc)"), None
    if client is None:
        return _ok(False, f"{port.instance}'s DHCP client record is unreadable: {record}"), None
    bound = time.strftime("%H:%M:%S UTC", time.gmtime(client.at)) if client.at else "at an unknown time"
    good = (client.ip, client.mask, client.server) == (port.ip, port.prefixlen, dhcp.port.ip)
    return _ok(good, f"{port.instance}'s DHCP client: DHCPACK from {client.server or '?'} for "
                     f"{client.ip}/{client.mask}, lease {client.seconds} s, bound at {bound}"), client


def file_evidence(port: InstancePort, dhcp: DhcpPlan, client: ClientLease | None) -> str:
    entry = file_lease(dhcp, port.mac)
    if entry is None:
        return _ok(False, f"{dhcp.name} has no lease for {port.mac} in its lease file")
    expiry, ip = entry
    text = f"{dhcp.name} lease file: {port.mac} {ip} expires {expiry}"
    if ip != port.ip:
        return _ok(False, text)
    if client is None or client.at is None or client.seconds is None:
        return _ok(client is not None, text)
    drift = expiry - (client.at + client.seconds)
    return _ok(abs(drift) <= EXPIRY_SLACK,
               f"{text} = bound + {client.seconds} s {'' if drift < 0 else '+'}{drift} s"
               + ("" if abs(drift) <= EXPIRY_SLACK else " (not the exchange the client reported)"))


def prove(plan: Plan, instance: str) -> tuple[bool, str, list[str]]:
    """(passed, what was seen, evidence lines) for INSTANCE's lease."""
    port = plan.port(instance)
    dhcp = next(d for d in plan.dhcp_servers if d.network == port.network)
    lab_directory = Path(plan.node(port.node).rundir).parents[1]    # <state root>/<lab>/nodes/<node>
    client_line, client = client_evidence(port, dhcp, client_record(lab_directory, instance))
    has = eth0_addresses(port)
    evidence = [client_line,
                _ok((port.ip, str(port.prefixlen)) in has,
                    f"{instance} eth0: {', '.join('/'.join(a) for a in has) or 'no IPv4 address'}"),
                file_evidence(port, dhcp, client)]
    passed = all(e.startswith("ok") for e in evidence)
    seen = ("/".join(has[0]) if has else "no address") + (" acked" if client else "") \
        + (" leased" if file_lease(dhcp, port.mac) else "")
    return passed, seen, evidence
