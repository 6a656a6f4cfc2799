"""Intercept Neutron's privileged ip_lib layer (pyroute2 through privsep): record, touch nothing.

Every public function of ``neutron.privileged.agent.linux.ip_lib`` is replaced by a recorder.
Queries answer "nothing there" (no devices, addresses, routes, rules, neighbours: a fresh
namespace); changes (add_ip_address, add_ip_route, add_ip_rule, set_link_attribute, ...)
are recorded with their arguments, which is how the reference learns the addresses, routes
and link settings a router would get.
"""

from __future__ import annotations

import functools
import inspect

QUERY_EMPTY_LIST = ("get_", "list_", "dump_")


class PrivRecorder:
    def __init__(self):
        self.calls: list[tuple[str, tuple, dict]] = []
        self.devices: dict[str, dict] = {}     # devices the interface driver "plugged"
        self.plugged_exist = False    # DVR runs: interface_exists answers yes for a plugged device

    def add_device(self, name: str, mac: str, mtu: int | None) -> None:
        self.devices[name] = {"link/ether": mac, "mtu": mtu, "name": name, "state": "UP",
                              "index": 100 + len(self.devices)}

    def make(self, name: str):
        def fake(*args, **kwargs):
            if name == "interface_exists" and self.plugged_exist:
                return bool(args) and args[0] in self.devices
            if name in ("path_exists", "interface_exists"):
                return False
            if name.startswith(QUERY_EMPTY_LIST):
                dev = self.devices.get(args[0]) if args and isinstance(args[0], str) else None
                if name in ("get_link_id", "privileged_get_link_id"):
                    return dev["index"] if dev else None
                if name == "get_link_attributes":
                    return dict(dev) if dev else {}
                return []
            self.calls.append((name, args, kwargs))
            return None
        return fake


def _origin(fn):
    """The function under privsep's partial(_wrap, fn) and tenacity's/functools' wrappers."""
    for _ in range(10):
        if isinstance(fn, functools.partial) and fn.args:
            fn = fn.args[-1]
        elif hasattr(fn, "__wrapped__"):
            fn = fn.__wrapped__
        else:
            break
    return fn


def _no_daemon(self, *args, **kwargs):
    raise RuntimeError("the reference must not start a privsep daemon: a privileged call "
                       "was not intercepted")


def install() -> PrivRecorder:
    """Patch the privileged modules the agents use; a privsep daemon start becomes an error."""
    from oslo_privsep import priv_context
    from neutron.privileged.agent.linux import dhcp, ethtool, ip_lib, tc_lib, utils
    priv_context.PrivContext.start = _no_daemon
    rec = PrivRecorder()
    for module in (ip_lib, utils, dhcp, ethtool, tc_lib):
        for name, fn in list(vars(module).items()):
            if name.startswith("_") or not callable(fn) or inspect.isclass(fn):
                continue
            if getattr(_origin(fn), "__module__", "") != module.__name__:
                continue     # imported helpers; the privsep entrypoints are partials of _wrap
            setattr(module, name, rec.make(name))
    return rec
