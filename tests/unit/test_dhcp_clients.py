"""How lab up runs its DHCP clients (lab/runtime/agents.py), without root: the client's argv,
and when it asks for broadcast replies (the kernel's shared neighbour table)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.runtime import agents


@pytest.fixture
def gc_thresh3(tmp_path, monkeypatch):
    def set_to(value: str) -> None:
        path = tmp_path / "gc_thresh3"
        path.write_text(value + "\n")
        monkeypatch.setattr(agents, "NEIGH_GC_THRESH3", path)
    return set_to


@pytest.mark.parametrize("clients, limit, broadcast", [
    (6, "1024", False), (511, "1024", False), (512, "1024", True), (1000, "1024", True),
    (1000, "4096", False), (2048, "4096", True)])
def test_broadcast_replies_once_the_clients_reach_half_the_neighbour_table(gc_thresh3, clients, limit, broadcast):
    gc_thresh3(limit)
    assert agents.broadcast_replies(clients) is broadcast
    argv = agents.udhcpc_argv(Path("/x/udhcpc.script"), clients)
    assert ("-B" in argv) is broadcast
    assert argv[:3] == ["busybox", "udhcpc", "-i"] and argv[argv.index("-s") + 1] == "/x/udhcpc.script"


def test_an_unreadable_limit_counts_as_the_kernel_default(tmp_path, monkeypatch):
    monkeypatch.setattr(agents, "NEIGH_GC_THRESH3", tmp_path / "missing")
    assert agents.broadcast_replies(511) is False and agents.broadcast_replies(512) is True
