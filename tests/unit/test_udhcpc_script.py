"""The instances' DHCP client script (templates/udhcpc.script.j2), run by /bin/sh with a
recording `ip` first on PATH: no root, no namespace. RFC 3442: a client that gets option 121
installs those routes and ignores the router option (3)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from lab.core.render import udhcpc_script


def run_script(tmp_path: Path, **env: str) -> tuple[list[str], str]:
    script = tmp_path / "udhcpc.script"
    script.write_text(udhcpc_script())
    script.chmod(0o755)
    log = tmp_path / "ip.log"
    fake = tmp_path / "bin" / "ip"
    fake.parent.mkdir()
    # the script hands each event's changes to one `ip -4 -force -batch -`: log its lines
    fake.write_text(f'#!/bin/sh\nif [ "$*" = "-4 -force -batch -" ]; then\n'
                    f'  while read -r line; do echo "ip $line" >> {log}; done\n'
                    f'else echo "ip $*" >> {log}; fi\n')
    fake.chmod(0o755)
    base = {"PATH": f"{fake.parent}:{os.environ['PATH']}", "interface": "eth0",
            "ip": "192.168.1.11", "mask": "24", "mtu": "1450", "router": "192.168.1.1"}
    out = subprocess.run([str(script), "bound"], env=base | env, capture_output=True, text=True,
                         check=True, timeout=10).stdout
    return log.read_text().splitlines(), out


def test_option_121_routes_replace_the_router_option(tmp_path):
    calls, out = run_script(tmp_path, staticroutes="169.254.169.254/32 192.168.1.1 0.0.0.0/0 192.168.1.1")
    routes = [c for c in calls if c.startswith("ip route")]
    assert routes == ["ip route replace 169.254.169.254/32 via 192.168.1.1 dev eth0",
                      "ip route replace 0.0.0.0/0 via 192.168.1.1 dev eth0"]
    assert "ip addr add 192.168.1.11/24 dev eth0" in calls
    assert "lease ip=192.168.1.11 mask=24 mtu=1450" in out
    assert " server= seconds= at=" in out and out.split(" at=")[1].split()[0].isdigit()   # bound when
    assert "staticroutes=169.254.169.254/32 192.168.1.1 0.0.0.0/0 192.168.1.1" in out


def test_an_on_link_121_route_has_no_next_hop(tmp_path):
    calls, _ = run_script(tmp_path, staticroutes="10.0.0.0/8 0.0.0.0 0.0.0.0/0 192.168.1.1")
    assert [c for c in calls if c.startswith("ip route")] == [
        "ip route replace 10.0.0.0/8 dev eth0", "ip route replace 0.0.0.0/0 via 192.168.1.1 dev eth0"]


def test_without_121_the_router_option_is_the_default_route(tmp_path):
    calls, _ = run_script(tmp_path, router="192.168.1.1 192.168.1.254")
    assert [c for c in calls if c.startswith("ip route")] == ["ip route replace default via 192.168.1.1 dev eth0"]


def test_deconfig_changes_nothing(tmp_path):
    """The client's start (deconfig) runs no `ip`: lab up brought eth0 up and bound flushes
    whatever address it held (a thousand clients: a thousand `ip` processes fewer)."""
    script = tmp_path / "udhcpc.script"
    script.write_text(udhcpc_script())
    script.chmod(0o755)
    fake = tmp_path / "bin" / "ip"
    fake.parent.mkdir()
    fake.write_text(f"#!/bin/sh\necho called >> {tmp_path / 'ip.log'}\n")
    fake.chmod(0o755)
    env = {"PATH": f"{fake.parent}:{os.environ['PATH']}", "interface": "eth0"}
    out = subprocess.run([str(script), "deconfig"], env=env, capture_output=True, text=True, check=True).stdout
    assert out == "" and not (tmp_path / "ip.log").exists()
