"""The kernel side of port plugs, keyed by firewall driver like lab/core/plugs/.

Each driver module has one class with:

- ``make(links, port)``: create the port's devices in the node namespace (``links`` is a
  ``kernel.Links`` of that namespace, the calling thread is in it) and the instance's eth0
  in the instance namespace. The OVS row of ``port.ovs_port`` comes with the node's OVSDB
  transaction, the firewall rules with its iptables-restore.
- ``missing(links, port)``: the devices of the port that are not there (for `lab status`).
- ``counters(plan, port)``: packet counters of the rules that decide the port's traffic,
  keyed (table, priority, match, actions) (the OVS firewall's br-int flows of the port in
  tables 72 and 82; empty for drivers without such rules). `lab check` reads them before and
  after its probe and names the rules that counted it.

Devices die with the node namespace, so `down` needs nothing from a driver.
"""

from __future__ import annotations

from typing import Protocol

from lab.core.plan import InstancePort, Plan
from lab.runtime.kernel import Links


class KernelPlug(Protocol):
    name: str

    def make(self, links: Links, port: InstancePort) -> None: ...

    def missing(self, links: Links, port: InstancePort) -> list[str]: ...

    def counters(self, plan: Plan, port: InstancePort) -> dict[tuple[int, int, str, str], int]: ...


def driver(name: str) -> KernelPlug:
    from lab.runtime.plugs import hybrid, noop, openvswitch
    drivers = {d.name: d for d in (hybrid.DRIVER, noop.DRIVER, openvswitch.DRIVER)}
    if name not in drivers:
        raise ValueError(f"no kernel plug for firewall_driver {name!r} (known: {', '.join(drivers)})")
    return drivers[name]


def missing_devices(links: Links, port: InstancePort) -> list[str]:
    """Every device of the plug that the node namespace lacks (shared by the drivers)."""
    return [d.name for d in port.plug.devices if not links.has(d.name)]


def libvirt_mac(mac: str) -> str:
    """libvirt gives the host side of a VM's NIC the guest MAC with fe: first."""
    return "fe" + mac[2:]
