"""Reading a node's OVSDB with the `ovs` Python library (the IDL Neutron's ovsdbapp builds on).

Writes go through one batched ovs-vsctl transaction per node (lab/ovs.py): ovs-vsctl also
waits until ovs-vswitchd has applied it, which is what the flows that follow need. Reads for
`lab status` use the IDL here: one monitor round trip gives every bridge, port and interface
with their marks and OpenFlow port numbers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import ovs.db.idl
import ovs.poller

from lab.budget import budget
from lab.errors import LabError
from lab.runtime.ovs import schema_path


class OvsdbError(LabError):
    pass


@dataclass(frozen=True)
class PortRow:
    name: str
    bridge: str
    tag: int | None
    type: str
    ofport: int | None
    error: str | None
    external_ids: dict


def read_ports(rundir: str, timeout: float = 5.0) -> dict[str, PortRow]:
    """Every port of the node's OVS, by name (first interface of each port)."""
    remote = f"unix:{Path(rundir) / 'db.sock'}"
    helper = ovs.db.idl.SchemaHelper(location=schema_path())
    helper.register_columns("Bridge", ["name", "ports"])
    helper.register_columns("Port", ["name", "tag", "interfaces", "external_ids"])
    helper.register_columns("Interface", ["name", "type", "ofport", "error"])
    idl = ovs.db.idl.Idl(remote, helper)
    timeout = budget(timeout)
    try:
        deadline = time.monotonic() + timeout
        seqno = idl.change_seqno
        while True:
            idl.run()
            if idl.change_seqno != seqno and idl.has_ever_connected():
                break
            if time.monotonic() > deadline:
                raise OvsdbError(f"no answer from OVSDB at {remote} within {timeout:g}s")
            poller = ovs.poller.Poller()
            idl.wait(poller)
            poller.timer_wait(50)
            poller.block()
        out: dict[str, PortRow] = {}
        for bridge in idl.tables["Bridge"].rows.values():
            for port in bridge.ports:
                iface = port.interfaces[0] if port.interfaces else None
                out[port.name] = PortRow(
                    name=port.name, bridge=bridge.name, tag=port.tag[0] if port.tag else None,
                    type=iface.type if iface else "", ofport=(iface.ofport[0] if iface and iface.ofport else None),
                    error=(iface.error[0] if iface and iface.error else None),
                    external_ids=dict(port.external_ids))
        return out
    finally:
        idl.close()
