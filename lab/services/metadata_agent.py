"""The lab's metadata agent: what neutron-metadata-agent does on a node
(neutron/agent/metadata/agent.py, proxy_base.py).

haproxy in a qrouter- (or qdhcp-) forwards an instance's request here over a unix socket,
having set ``X-Neutron-Router-ID`` (or ``X-Neutron-Network-ID``) and appended the client's
address to ``X-Forwarded-For``. The agent finds the instance the way Neutron's does: the
networks of the router's interfaces (ports with that device_id and a router-interface owner)
or the one network, then the one port on them with the source address; its device_id and
project are the instance and project. It then asks the metadata server with only the headers
it builds itself (``X-Forwarded-For``, ``X-Instance-ID``, ``X-Tenant-ID``,
``X-Instance-ID-Signature``): whatever identity headers the instance sent are dropped.

One deliberate difference: when the instance sent its own ``X-Forwarded-For``, haproxy's
``option forwardfor`` appends a second one; Neutron then fails to parse the joined value
(500), the lab takes the last one, which haproxy wrote, so a forged header changes nothing.

    python -m lab.services.metadata_agent --socket S --ports F --server-socket S --secret-file F --pidfile F --log F
"""

from __future__ import annotations

import functools
import ipaddress

from lab.services import daemon, unixhttp
from lab.services.metadata_server import sign

COMM = "nlab-md-agent"
ROUTER_INTERFACE_OWNERS = ("network:router_interface", "network:ha_router_replicated_interface",
                           "network:router_interface_distributed")


def client_address(headers) -> str | None:
    """The address haproxy appended to X-Forwarded-For: the last value of the last header."""
    values = headers.get_all("X-Forwarded-For") or []
    if not values:
        return None
    last = values[-1].split(",")[-1].strip()
    try:
        return str(ipaddress.ip_address(last))
    except ValueError:
        return None


def find_instance(ports: list[dict], address: str, router_id: str | None, network_id: str | None
                  ) -> tuple[str, str] | None:
    """(instance id, project id) of the one port with ADDRESS on the router's networks (or on
    NETWORK_ID); None when there is not exactly one (MetadataProxyHandler.get_port)."""
    if bool(router_id) == bool(network_id):
        return None     # neither, or both: "only a single one of the two is allowed"
    if router_id:
        networks = {p["network_id"] for p in ports
                    if p["device_id"] == router_id and p["device_owner"] in ROUTER_INTERFACE_OWNERS}
    else:
        networks = {network_id}
    found = [p for p in ports if p["network_id"] in networks
             and any(ip["ip_address"] == address for ip in p["fixed_ips"])]
    if len(found) != 1:
        return None
    return found[0]["device_id"], found[0]["project_id"]


def make_handler(ports: list[dict], server_socket: str, secret: bytes, log_file=None):
    class AgentHandler(unixhttp.Handler):
        def do_GET(self) -> None:   # noqa: N802
            address = client_address(self.headers)
            found = address and find_instance(ports, address, self.headers.get("X-Neutron-Router-ID"),
                                              self.headers.get("X-Neutron-Network-ID"))
            if not found:
                self.reply(404, "Not Found")
                return
            instance_id, project_id = found
            headers = {"X-Forwarded-For": address, "X-Instance-ID": instance_id, "X-Tenant-ID": project_id,
                       "X-Instance-ID-Signature": sign(secret, instance_id)}
            try:
                status, ctype, body = unixhttp.request(server_socket, "GET", self.path, headers)
            except OSError as exc:
                self.reply(500, f"metadata server unreachable: {exc}")
                return
            self.reply(status, body, ctype)

        do_HEAD = do_GET

    AgentHandler.log_file = log_file
    return AgentHandler


def main(argv: list[str] | None = None) -> None:
    daemon.main("python -m lab.services.metadata_agent", COMM, ("--ports", "--server-socket"),
                lambda args, secret: functools.partial(make_handler, daemon.read_json(args.ports, "ports"),
                                                       args.server_socket, secret), argv)


if __name__ == "__main__":
    main()
