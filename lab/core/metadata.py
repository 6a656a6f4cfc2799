"""The metadata service's pure side: constants, where each process and file lives, haproxy's
configuration and the documents the metadata agent and server read. Pure (no I/O):
lab/runtime/metadata.py writes the files and starts the processes.

As Neutron's L3 agent does it (neutron/agent/metadata/driver.py, driver_base.py,
neutron/common/metadata.py, neutron/agent/l3/router_info.py): every router instance's
qrouter- (legacy, and each host's qrouter- of a distributed router: ``after_router_added``
spawns the proxy for every router that is not HA) marks TCP to 169.254.169.254:80 arriving
on qr-, REDIRECTs it to haproxy on 9697 (templates/l3-agent.rules.j2), and haproxy sets
``X-Neutron-Router-ID`` and forwards to the node's metadata agent over a unix socket
(``$state_path/metadata_proxy``). The agent (lab/services/metadata_agent.py) finds the
instance from router id + source address, signs its id (HMAC-SHA256, the lab's shared
secret) and asks the lab's metadata server (lab/services/metadata_server.py, Nova's
stand-in), which listens on a unix socket in the lab's state directory only.
"""

from __future__ import annotations

from dataclasses import dataclass

from lab.core import routers

METADATA_IP = "169.254.169.254"     # neutron-lib METADATA_V4_IP
METADATA_CIDR = METADATA_IP + "/32"
METADATA_PORT = 9697                # the l3 agent's metadata_port default
METADATA_MARK = "0x1"               # the l3 agent's metadata_access_mark default (mask ROUTER_MARK_MASK 0xffff)
PROXY_CONFIG_DIR = "ns-metadata-proxy"      # HaproxyConfigurator.PROXY_CONFIG_DIR
AGENT_SOCKET = "metadata_proxy"             # neutron-metadata-agent's metadata_proxy_socket, in $state_path
# [metadata_haproxy] defaults (neutron/conf/agent/metadata/config.py)
HAPROXY_TIMEOUTS = {"timeout_http_request": 30, "timeout_connect": 30, "timeout_client": 32,
                    "timeout_server": 32, "timeout_http_keep_alive": 30}
ROUTER_INTERFACE_OWNERS = ("network:router_interface", "network:ha_router_replicated_interface",
                           "network:router_interface_distributed")     # neutron-lib constants


@dataclass(frozen=True)
class Proxy:
    """One haproxy metadata proxy: in a qrouter- (router id header) or a qdhcp- (network id)."""

    name: str               # the router instance or DHCP server it serves (exec target name)
    node: str
    netns: str
    resource: str           # "Router" | "Network": the X-Neutron-<resource>-ID header
    resource_id: str
    bind: str               # address haproxy binds
    port: int
    config: str             # its configuration file
    pidfile: str
    socket: str             # the node's metadata agent


@dataclass(frozen=True)
class Agent:
    """One node's metadata agent (neutron-metadata-agent) on its unix socket."""

    node: str
    netns: str
    socket: str
    pidfile: str
    log: str


@dataclass(frozen=True)
class Server:
    """The lab's metadata server (Nova's metadata API), reachable only on its unix socket."""

    socket: str
    pidfile: str
    log: str
    secret: str             # the shared secret's file (0600), made at `up`
    ports: str              # what the agents look ports up in (neutron-server's answer)
    instances: str          # what the server answers from (Nova's instances)


def lab_dir(plan, state_root: str) -> str:
    return f"{state_root}/{plan.lab}"


def server(plan, state_root: str) -> Server:
    d = f"{lab_dir(plan, state_root)}/metadata"
    return Server(socket=f"{d}/server.sock", pidfile=f"{d}/server.pid", log=f"{d}/server.log",
                  secret=f"{d}/secret", ports=f"{d}/ports.json", instances=f"{d}/instances.json")


def agents(plan) -> tuple[Agent, ...]:
    """A metadata agent on every node that runs a proxy (routers, or DHCP serving metadata)."""
    nodes = {p.node for p in proxies(plan)}
    return tuple(Agent(n.name, n.netns, f"{n.rundir}/{AGENT_SOCKET}", f"{n.rundir}/metadata-agent.pid",
                       f"{n.rundir}/metadata-agent.log") for n in plan.nodes if n.name in nodes)


def proxies(plan) -> tuple[Proxy, ...]:
    """haproxy in every router instance's qrouter- (bound to 0.0.0.0:9697, behind the
    REDIRECT), and with enable_isolated_metadata in the qdhcp- of every network no router
    serves (bound to 169.254.169.254:80 on the DHCP port: the dhcp agent's
    enable_isolated_metadata_proxy)."""
    out = []
    for r in plan.router_instances:
        if r.role == routers.DVR_SNAT:      # the proxy runs in qrouter-, never in snat-
            continue
        node = plan.node(r.node)
        router_id = plan.router(r.router).router_id
        d = f"{node.rundir}/{PROXY_CONFIG_DIR}"
        out.append(Proxy(r.name, r.node, r.netns, "Router", router_id, "0.0.0.0", METADATA_PORT,
                         f"{d}/{router_id}.conf", f"{d}/{router_id}.pid", f"{node.rundir}/{AGENT_SOCKET}"))
    for dhcp in plan.dhcp_servers:
        if dhcp.metadata_proxy:
            node = plan.node(dhcp.node)
            d = f"{node.rundir}/{PROXY_CONFIG_DIR}"
            out.append(Proxy(dhcp.name, dhcp.node, dhcp.netns, "Network", dhcp.network_id, METADATA_IP, 80,
                             f"{d}/{dhcp.network_id}.conf", f"{d}/{dhcp.network_id}.pid",
                             f"{node.rundir}/{AGENT_SOCKET}"))
    return tuple(out)


def haproxy_config(proxy: Proxy) -> str:
    """The configuration Neutron's metadata driver writes (HaproxyConfiguratorBase with the
    default [metadata_haproxy] timeouts, no rate limiting), for a lab running as root."""
    from lab.core.render import render_template
    other = "Network" if proxy.resource == "Router" else "Router"
    return render_template("haproxy-metadata.cfg.j2", p=proxy, other=other, user="root", group="root",
                           log_tag=f"haproxy-metadata-proxy-{proxy.resource_id}", **HAPROXY_TIMEOUTS)


def for_instance(plan, instance: str) -> Proxy | None:
    """The proxy an instance's metadata request reaches: the qrouter- of the router on its
    network (on its own node for a distributed router), else its network's qdhcp- proxy."""
    port = plan.port(instance)
    by_name = {p.name: p for p in proxies(plan)}
    for r in plan.router_instances:
        if any(i.network == port.network for i in r.interfaces):
            if len(plan.router(r.router).instances) == 1 or r.node == port.node:
                return by_name[r.name]
    dhcp = next((d for d in plan.dhcp_servers if d.network == port.network and d.metadata_proxy), None)
    return by_name[dhcp.name] if dhcp else None


def ports_document(plan, scenario) -> dict:
    """Neutron's ports as neutron-metadata-agent would get them from neutron-server: every
    instance port (device_id: its instance's uuid) and router interface (device_id: the
    router's id), with network id, owner, project and fixed IPs."""
    from lab.core import naming
    ports = []
    for p in plan.ports:
        ports.append({"id": p.port_id, "network_id": naming.object_uuid(plan.lab, "network", p.network),
                      "device_id": naming.object_uuid(plan.lab, "instance", p.instance),
                      "device_owner": "compute:nova", "project_id": project_id(plan.lab, p.project),
                      "fixed_ips": [{"ip_address": p.ip}]})
    for r in scenario.routers:
        for i in r.interfaces:
            owner = ROUTER_INTERFACE_OWNERS[2] if r.distributed else ROUTER_INTERFACE_OWNERS[0]
            ports.append({"id": i.port_id, "network_id": scenario.network(i.network).network_id,
                          "device_id": r.router_id, "device_owner": owner,
                          "project_id": project_id(plan.lab, r.project), "fixed_ips": [{"ip_address": i.ip}]})
    return {"ports": ports}


def instances_document(plan, scenario) -> dict:
    """What Nova's metadata API knows of each instance, by instance uuid."""
    from lab.core import naming
    out = {}
    for p in plan.ports:
        inst = scenario.instance(p.instance)
        uuid = naming.object_uuid(plan.lab, "instance", p.instance)
        out[uuid] = {"uuid": uuid, "ec2_id": ec2_id(plan, p.instance), "name": p.instance, "hostname": p.instance,
                     "project_id": project_id(plan.lab, p.project), "local_ipv4": p.ip,
                     "public_ipv4": p.floating_ip, "public_keys": dict(inst.public_keys),
                     "user_data": inst.user_data}
    return {"instances": out}


def ec2_id(plan, instance: str) -> str:
    """The EC2 instance-id Nova serves: ``i-%08x`` of the instance's database id (here its
    1-based position among the plan's instance ports)."""
    index = next(i for i, p in enumerate(plan.ports) if p.instance == instance)
    return "i-%08x" % (index + 1)


def project_id(lab: str, project: str) -> str:
    """A project's id as Keystone writes them: 32 hex digits."""
    from lab.core import naming
    return naming.object_uuid(lab, "project", project).replace("-", "")
