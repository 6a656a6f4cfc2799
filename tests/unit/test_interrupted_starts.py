"""A signal to `lab up` while it starts a daemon (lab/runtime/signals.py `held`): the daemon is
in the ledger before `up` stops, so the rollback ends it by pid; the rollback's sweep looks
again for processes forked while it read /proc; DHCP clients running when `up` is stopped are
ended by the command that started them. Nothing here starts a program or sends a signal to
anything but this test's own process. The kernel side is tests/integration/test_signals.py."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from lab.core.plan import build_plan
from lab.core.scenario import load_scenario
from lab.runtime import agents, gateway, lifecycle, processes, signals
from lab.runtime import metadata as metadata_service


def _signal_myself(signum: int) -> None:
    os.kill(os.getpid(), signum)
    for _ in range(1000):        # the handler runs between bytecodes: here, mid-start
        pass


@pytest.fixture
def plan(tmp_path):
    return build_plan(load_scenario("classic-vlan"), state_root=str(tmp_path))


def _daemons_start(plan, monkeypatch, during=lambda: None):
    """ensure's starters replaced: each writes its pid file (101, 102, ...) and none runs a
    program; DURING runs while they start."""
    monkeypatch.setattr(gateway, "require", lambda *programs: None)
    monkeypatch.setattr(metadata_service, "write_files", lambda plan, scenario: metadata_service.server_of(plan))
    for alive in ("server_alive", "agent_alive", "proxy_alive"):
        monkeypatch.setattr(metadata_service, alive, lambda *args: False)
    monkeypatch.setattr(metadata_service, "_stop_stale", lambda pidfile, mark: None)

    def run_together(commands, timeout=gateway.DEFAULT_TIMEOUT):
        during()
        return [subprocess.CompletedProcess(c.argv, 0, "", "") for c in commands]
    monkeypatch.setattr(gateway, "run_together", run_together)
    pids = iter(range(101, 200))
    monkeypatch.setattr(processes, "read_pidfile", lambda path: next(pids))


def test_a_signal_while_the_metadata_service_starts_finds_every_daemon_in_the_ledger(plan, monkeypatch):
    """The flaky test_signals[27-1]: SIGHUP while the metadata service's starters run. Every
    daemon that came up must be recorded before Terminated reaches `up`."""
    recorded: list[tuple[str, int]] = []
    _daemons_start(plan, monkeypatch, during=lambda: _signal_myself(signal.SIGHUP))
    with pytest.raises(signals.Terminated) as info:
        with signals.as_interrupt():
            metadata_service.ensure(plan, None, lambda **e: recorded.append((e["daemon"], e["pid"])))
    assert info.value.signum == signal.SIGHUP
    assert recorded == [("metadata-server", 101), ("metadata-agent", 102), ("haproxy", 103), ("haproxy", 104)]


def test_the_sweep_looks_again_for_what_was_forked_meanwhile(monkeypatch):
    """A starter half-way through its fork when /proc was read: its child is found next time."""
    scans = iter([[11, 12], [12, 13], [13], []])
    stopped: list[int] = []
    monkeypatch.setattr(processes, "in_namespaces", lambda inodes: next(scans))
    monkeypatch.setattr(processes, "daemons_under", lambda directory: [])
    monkeypatch.setattr(processes, "stop", stopped.append)
    assert lifecycle._stop_marked([10], {(1, 2)}, "/run/neutron-lab/x/") == 4
    assert stopped == [10, 11, 12, 13]


def test_the_sweep_gives_up_after_a_bounded_number_of_looks(monkeypatch):
    pids = iter(range(100, 200))
    stopped: list[int] = []
    monkeypatch.setattr(processes, "in_namespaces", lambda inodes: [next(pids)])
    monkeypatch.setattr(processes, "daemons_under", lambda directory: [])
    monkeypatch.setattr(processes, "stop", stopped.append)
    assert lifecycle._stop_marked([], set(), "/x/") == lifecycle.SWEEPS
    assert len(stopped) == lifecycle.SWEEPS


class _Client:
    """A DHCP client that never finishes (a Popen's poll/kill/wait/communicate)."""

    def __init__(self, pid: int):
        self.pid, self.killed, self.reaped = pid, False, False

    def poll(self):
        return -9 if self.killed else None

    def kill(self):
        self.killed = True

    def wait(self, timeout=None):
        self.reaped = True
        return -9

    def communicate(self, timeout=None):
        return "", ""


def test_dhcp_clients_are_ended_when_up_is_stopped(plan, tmp_path, monkeypatch):
    clients: list[_Client] = []

    def spawn(argv, netns=None, **kwargs):
        clients.append(_Client(1000 + len(clients)))
        if len(clients) == 2:
            _signal_myself(signal.SIGTERM)    # the signal lands while the second one starts
        return clients[-1]
    monkeypatch.setattr(gateway, "require", lambda *programs: None)
    monkeypatch.setattr(gateway, "spawn", spawn)
    ports = [p for p in plan.ports if p.address == "dhcp"]
    assert len(ports) >= 3
    with pytest.raises(signals.Terminated):
        with signals.as_interrupt():
            agents.dhcp_leases(plan, ports, Path(tmp_path))
    assert len(clients) == 2                      # none started after the signal
    assert all(c.killed and c.reaped for c in clients)
