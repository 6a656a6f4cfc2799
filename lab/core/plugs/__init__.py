"""Port plugs: how an instance's port reaches br-int, one strategy per firewall driver. Pure.

Neutron's OVS agent picks its firewall with ``[securitygroup] firewall_driver``, and the
driver decides how Nova plugs the VM (``ovs_hybrid_plug``): through a Linux bridge
(``iptables_hybrid``: tap -> qbr -> qvb = qvo -> br-int) or straight onto br-int (``noop``,
``openvswitch``). Each driver is one module here with one class:

- ``plug(node_netns, port_id)``: the devices the port has, in order from the
  instance to br-int, and the port on br-int (a ``Plug``, saved in the plan's JSON);
- ``firewall_rules(plan, node)``: what the node's firewall is given (iptables-restore
  input for ``iptables_hybrid``; empty when the driver keeps no iptables);
- ``br_int_flows(plan, node)``: flow lines the driver adds to br-int after Neutron's base
  tables (empty for iptables_hybrid and noop; the OVS firewall's tables 60 and 71-94);
- ``interface_columns(plan, node, device)``: extra ``Interface`` columns of a br-int port in
  the node's OVSDB transaction (the OVS firewall's ``ofport_request``, so flows can name
  ofports);
- ``flow_notes(plan, node)``: (table, priority, match) of the driver's flows -> the
  security-group rule each comes from (``lab flows`` shows it beside the flow);
- ``provides_arp_spoofing_protection``: as Neutron's attribute: True leaves br-int's own
  ARP/MAC anti-spoofing (tables 24/25) out, because the driver's flows do it;
- ``trace_hops(port, direction)``: the hops ``lab trace`` expects between eth0 and br-int.

Nothing outside a driver module knows its device roles (qbr, qvb, qvo): the plan, render,
checks, trace, graph and status read ``Plug`` and the hops. The kernel side (making and
deleting the devices) is ``lab/runtime/plugs/``, keyed the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # pragma: no cover
    from lab.core.plan import InstancePort, NodePlan, Plan

DEFAULT_DRIVER = "iptables_hybrid"


@dataclass(frozen=True)
class PlugDevice:
    """One host-side device of a port. ROLE is the driver's own word for it (tap, qbr...)."""

    role: str
    name: str
    kind: str               # veth (one end of a pair) | bridge (a Linux bridge)
    netns: str              # the node's namespace
    firewall: str = ""      # "iptables" where the driver filters the port's traffic


@dataclass(frozen=True)
class Plug:
    """How one port is plugged: the driver and its devices, from the instance to br-int."""

    driver: str
    devices: tuple[PlugDevice, ...]
    ovs_port: str           # the device that is the port's row on br-int

    def device(self, role: str) -> str:
        """The name of the device with ROLE (tap, qbr...); KeyError when the driver has none."""
        for d in self.devices:
            if d.role == role:
                return d.name
        raise KeyError(f"a {self.driver} plug has no {role} device")

    @property
    def host_device(self) -> str:
        """The device facing the instance (libvirt's tap): the first one."""
        return self.devices[0].name


@dataclass(frozen=True)
class PlugHop:
    """A hop of `lab trace` between an instance's eth0 and br-int."""

    label: str              # what a person calls it, without the node's name
    kind: str               # nic (watched with tcpdump) | iptables (explained by counters)
    netns: str
    iface: str | None = None                 # nic hops: where tcpdump watches
    chains: tuple[str, ...] = ()             # iptables hops: filter chains whose counters explain it


class NoFlowFirewall:
    """What a driver whose security groups are not OpenFlow (iptables_hybrid, noop) answers
    for the br-int parts of the protocol: no flows, no extra interface columns, no notes."""

    provides_arp_spoofing_protection = False    # br-int's tables 24/25 stay

    def br_int_flows(self, plan: "Plan", node: "NodePlan") -> str:
        return ""       # table 60 stays NORMAL

    def interface_columns(self, plan: "Plan", node: "NodePlan", device: str) -> tuple[str, ...]:
        return ()

    def flow_notes(self, plan: "Plan", node: "NodePlan") -> dict[tuple[int, int, str], str]:
        return {}


class PortPlugDriver(Protocol):
    name: str
    hybrid_plug: bool                        # Neutron's OVS_HYBRID_PLUG_REQUIRED
    iptables: bool                           # the node's security groups live in iptables
    provides_arp_spoofing_protection: bool   # the driver's flows replace br-int's tables 24/25

    def plug(self, node_netns: str, port_id: str) -> Plug: ...

    def firewall_rules(self, plan: "Plan", node: "NodePlan") -> str: ...

    def br_int_flows(self, plan: "Plan", node: "NodePlan") -> str: ...

    def interface_columns(self, plan: "Plan", node: "NodePlan", device: str) -> tuple[str, ...]: ...

    def flow_notes(self, plan: "Plan", node: "NodePlan") -> dict[tuple[int, int, str], str]: ...

    def trace_hops(self, port: "InstancePort", direction: str) -> tuple[PlugHop, ...]: ...


def _registry() -> dict[str, PortPlugDriver]:
    from lab.core.plugs import hybrid, noop, openvswitch
    return {d.name: d for d in (hybrid.DRIVER, noop.DRIVER, openvswitch.DRIVER)}


DRIVERS = ("iptables_hybrid", "noop", "openvswitch")        # what `firewall_driver` may be (kept equal to the registry)


def driver(name: str) -> PortPlugDriver:
    """The plug strategy for a firewall driver name."""
    drivers = _registry()
    if name not in drivers:
        raise ValueError(f"firewall_driver {name!r} is not one of: {', '.join(drivers)}")
    return drivers[name]
