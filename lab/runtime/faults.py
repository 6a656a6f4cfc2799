"""What `lab status` says is wrong with a lab, as records (`Fault`): every problem it names
is one, and its sentence is `Fault.text()` (`problems` in `status --json` is exactly the
faults' texts). The kinds are listed once, in `PHRASES` (each kind's sentence); docs/api.md
has a table of them (kind, meaning, repair), which tests/unit/test_faults.py keeps equal to
this one.

Who finds which: lab/runtime/inventory.py (links, addresses, routes, neighbours, sysctls,
flows, daemons), lab/runtime/lifecycle.py (namespaces, OVS ports, plug devices),
lab/runtime/health.py (Open vSwitch restarted, iptables), lab/runtime/ipsets.py,
lab/runtime/agents.py (DVR's SNAT redirect rules), lab/runtime/fip.py (fip-'s rules and
routes), lab/runtime/metadata.py (the metadata service's processes).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Fault:
    kind: str        # a key of PHRASES
    who: str         # "instance vm1", "router router1", "compute1"; "" for the lab as a whole
    netns: str       # where the object is; "" for the root namespace (the metadata server) or none
    what: str        # the object: a device, an address, a route, a sysctl, a bridge table, a rules file
    expected: str
    found: str
    repair: str      # what `lab up` does about it, or what to run instead
    missing: tuple[str, ...] = ()      # iptables, ipset: every rule / set member that is missing
    unexpected: tuple[str, ...] = ()   # ... and every one that should not be there

    def text(self) -> str:
        return f"{self.who + ': ' if self.who else ''}{PHRASES[self.kind](self)}; {self.repair}"

    def to_json(self) -> dict:
        return asdict(self) | {"missing": list(self.missing), "unexpected": list(self.unexpected),
                               "text": self.text()}


def _iptables(f: Fault) -> str:
    if f.found == "reordered":
        return "its iptables rules are the ones `up` applied, in another order"
    example = (f"; first missing: `{f.missing[0]}`" if f.missing else
               f"; first unexpected: `{f.unexpected[0]}`" if f.unexpected else "")
    return (f"its iptables rules differ from what `up` applied ({len(f.missing)} rule(s) missing, "
            f"{len(f.unexpected)} unexpected{example})")


def _flows(f: Fault) -> str:
    if f.expected == "readable":
        return f"{f.what}'s flows are {f.found}"       # found: "unreadable (why)"
    return f"{f.what} has {f.found} of the lab's {f.expected} flows"


PHRASES = {
    # a namespace's kernel state (inventory.compare)
    "link-missing": lambda f: f"{f.what} is missing",
    "link-down": lambda f: f"{f.what} is down (it cannot send or receive)",
    "address": lambda f: f"{f.what.split(' on ')[1]} lacks its address {f.expected}",
    "route": lambda f: f"no {f.what}",
    "ip-rule": lambda f: f"no {f.what}",
    "neighbour": lambda f: f"no permanent neighbour entry {f.expected} on {f.what}",
    "sysctl": lambda f: f"sysctl {f.what} is {f.found}, expected {f.expected}",
    # namespaces, devices, processes
    "namespace-missing": lambda f: f"namespace {f.what} is missing",
    "plug-device-missing": lambda f: f"{f.what} is missing",
    "daemon": lambda f: f"{f.what} is not running",
    "metadata": lambda f: f"{f.what} is not running" + (f" in {f.netns}" if f.netns else ""),
    # Open vSwitch
    "port-missing": lambda f: f"port {f.what} is missing from {f.expected.split(' tag ')[0]}",
    "port-misplaced": lambda f: f"port {f.what} is on {f.found}, expected {f.expected}",
    "port-no-ofport": lambda f: f"port {f.what} has no OpenFlow port ({f.found})",
    "ovs-restarted": lambda f: (f"Open vSwitch was restarted (no canary flow in {f.what}) "
                                f"and lost the lab's flows"),
    "flows": _flows,
    "foreign-flows": lambda f: f"{f.what} has {f.found} flow(s) the lab did not install (another cookie)",
    # firewalls
    "iptables": _iptables,
    "ipset": lambda f: f"its remote-group ipsets differ from the plan: {f.found}",
    # what status could not read
    "unreadable": lambda f: f"cannot read its {f.what} ({f.found})",
}


def unreadable(who: str, netns: str, what: str, error: Exception, lab: str) -> Fault:
    """WHAT (OVSDB, iptables rules, ipsets) could not be read: status cannot tell what is wrong."""
    return Fault("unreadable", who, netns, what, "readable", str(error),
                 f"`lab up {lab}` cannot repair what status cannot read: find why, or run "
                 f"`lab down {lab}` and `lab up` again")
