"""The lab's metadata server: what Nova's metadata API answers behind neutron-metadata-agent.

It listens on a unix socket in the lab's state directory only (no TCP listener anywhere, so
no instance can reach it but through its node's metadata agent), and checks each request the
way Nova's metadata handler does (nova/api/metadata/handler.py,
``_handle_instance_id_request``): ``X-Instance-ID`` and ``X-Tenant-ID`` must be there (400),
``X-Instance-ID-Signature`` must be HMAC-SHA256 of the instance id with the shared secret
(403), the instance must exist and belong to that project (404). It answers the EC2 tree
(``/latest/meta-data/...``, ``/latest/user-data``) and the OpenStack tree
(``/openstack/latest/meta_data.json``, ``user_data``) from the instances file
(lab/core/metadata.py ``instances_document``).

    python -m lab.services.metadata_server --socket S --instances F --secret-file F --pidfile F --log F
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json

from lab.services import daemon, unixhttp

COMM = "nlab-md-server"
EC2_VERSIONS = ("1.0", "2007-01-19", "2007-03-01", "2007-08-29", "2007-10-10", "2007-12-15",
                "2008-02-01", "2008-09-01", "2009-04-04", "latest")
OPENSTACK_VERSIONS = ("2012-08-10", "2013-04-04", "2013-10-17", "latest")


def sign(secret: bytes, instance_id: str) -> str:
    """neutron.common.utils.sign_instance_id / Nova's expected signature."""
    return hmac.new(secret, instance_id.encode(), hashlib.sha256).hexdigest()


def authorize(headers, secret: bytes, instances: dict) -> tuple[int, str, dict | None]:
    """(status, why, instance) for a request's identity headers, as Nova judges them."""
    instance_id = headers.get("X-Instance-ID")
    tenant_id = headers.get("X-Tenant-ID")
    signature = headers.get("X-Instance-ID-Signature") or ""
    if instance_id is None:
        return 400, "X-Instance-ID header is missing from request.", None
    if tenant_id is None:
        return 400, "X-Tenant-ID header is missing from request.", None
    if not hmac.compare_digest(sign(secret, instance_id), signature):
        return 403, "Invalid proxy request signature.", None
    instance = instances.get(instance_id)
    if instance is None or instance["project_id"] != tenant_id:
        return 404, "Instance not found (or not of that project).", None
    return 200, "", instance


def ec2_meta_data(instance: dict) -> dict:
    data = {"hostname": instance["hostname"], "instance-id": instance["ec2_id"],
            "local-hostname": instance["hostname"], "local-ipv4": instance["local_ipv4"]}
    if instance.get("public_ipv4"):
        data["public-ipv4"] = instance["public_ipv4"]
    return data


def openstack_meta_data(instance: dict) -> dict:
    keys = instance.get("public_keys") or {}
    data = {"uuid": instance["uuid"], "name": instance["name"], "hostname": instance["hostname"],
            "project_id": instance["project_id"], "availability_zone": "nova", "launch_index": 0,
            "meta": {}, "devices": []}
    if keys:
        data["public_keys"] = dict(keys)
        data["keys"] = [{"name": k, "type": "ssh", "data": v} for k, v in keys.items()]
    return data


def answer(instance: dict, path: str) -> tuple[int, str, str]:
    """(status, content type, body) for PATH of INSTANCE's trees."""
    text = "text/plain; charset=UTF-8"
    parts = [p for p in path.split("?", 1)[0].split("/") if p]
    if not parts:
        return 200, text, "\n".join(EC2_VERSIONS)
    if parts[0] == "openstack":
        return _openstack(instance, parts[1:])
    if parts[0] not in EC2_VERSIONS:
        return 404, text, "Not Found"
    rest = parts[1:]
    if not rest:
        return 200, text, "meta-data/\n" + ("user-data" if instance.get("user_data") is not None else "")
    if rest == ["user-data"]:
        ud = instance.get("user_data")
        return (200, "application/octet-stream", ud) if ud is not None else (404, text, "Not Found")
    if rest[0] != "meta-data":
        return 404, text, "Not Found"
    return _ec2_meta(instance, rest[1:])


def _ec2_meta(instance: dict, rest: list[str]) -> tuple[int, str, str]:
    text = "text/plain; charset=UTF-8"
    data = ec2_meta_data(instance)
    keys = list((instance.get("public_keys") or {}).items())
    if not rest:
        return 200, text, "\n".join(list(data) + (["public-keys/"] if keys else []))
    if rest[0] == "public-keys" and keys:
        if len(rest) == 1:
            return 200, text, "\n".join(f"{i}={name}" for i, (name, _) in enumerate(keys))
        if rest[1].isdigit() and int(rest[1]) < len(keys):
            key = keys[int(rest[1])][1]
            if len(rest) == 2:
                return 200, text, "openssh-key"
            if rest[2:] == ["openssh-key"]:
                return 200, text, key
    if len(rest) == 1 and rest[0] in data:
        return 200, text, data[rest[0]]
    return 404, text, "Not Found"


def _openstack(instance: dict, rest: list[str]) -> tuple[int, str, str]:
    text = "text/plain; charset=UTF-8"
    if not rest:
        return 200, text, "\n".join(OPENSTACK_VERSIONS)
    if rest[0] not in OPENSTACK_VERSIONS:
        return 404, text, "Not Found"
    if len(rest) == 1:
        return 200, text, "meta_data.json\n" + ("user_data" if instance.get("user_data") is not None else "")
    if rest[1:] == ["meta_data.json"]:
        return 200, "application/json", json.dumps(openstack_meta_data(instance))
    if rest[1:] == ["user_data"] and instance.get("user_data") is not None:
        return 200, "application/octet-stream", instance["user_data"]
    return 404, text, "Not Found"


def make_handler(secret: bytes, instances: dict, log_file=None):
    class MetadataHandler(unixhttp.Handler):
        def do_GET(self) -> None:   # noqa: N802 (http.server's name)
            status, why, instance = authorize(self.headers, secret, instances)
            if instance is None:
                self.reply(status, why)
                return
            status, ctype, body = answer(instance, self.path)
            self.reply(status, body, ctype)

        do_HEAD = do_GET

    MetadataHandler.log_file = log_file
    return MetadataHandler


def main(argv: list[str] | None = None) -> None:
    daemon.main("python -m lab.services.metadata_server", COMM, ("--instances",),
                lambda args, secret: functools.partial(make_handler, secret,
                                                       daemon.read_json(args.instances, "instances")), argv)


if __name__ == "__main__":
    main()
