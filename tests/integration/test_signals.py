"""Every way a command can stop leaves the host clean (issue 13 §3).

SIGTERM (and SIGHUP) to `lab up` at instants spread over its phases, chosen by watching the
ledger grow (after N entries: the state directory, namespaces, wires and nodes, OVS daemons,
dnsmasq), not by random sleeps: each one rolls back like Ctrl-C (exit 143/129, nothing left)
and the next `up` works. After kill -9, `lab up` and `lab down` recover by themselves, without
a `lab cleanup` first. SIGTERM to `lab down` lets the teardown finish."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lab.paths import STATE_ROOT
from lab.runtime import lifecycle, netns

from . import hoststate
from .conftest import PREFIX, REPO, lab, remove_ours

# of classic-vlan's ledger: 1 state dir, 16 namespaces, 6 OVS daemons, 3 dnsmasq, then the
# metadata server, network1's metadata agent and 2 haproxy (router1, alt-net's qdhcp-)
LEDGER_ENTRIES = 30


@pytest.fixture
def clean_host(host_before):
    yield host_before
    labs, _ = lifecycle.leftovers()
    remove_ours(*(item.lab for item in labs if item.lab.startswith(PREFIX)))
    hoststate.assert_unchanged(host_before, PREFIX)


def _start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "lab.cli", *args], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _ledger_lines(name: str) -> int:
    try:
        return (STATE_ROOT / name / "ledger.jsonl").read_bytes().count(b"\n")
    except OSError:
        return 0


def _up_until(name: str, entries: int) -> subprocess.Popen:
    """`lab up classic-vlan` stopped (not yet signalled) once its ledger holds ENTRIES lines."""
    proc = _start("up", "classic-vlan", "--name", name)
    deadline = time.monotonic() + 30
    while _ledger_lines(name) < entries:
        assert proc.poll() is None, f"up ended before {entries} ledger entries:\n{proc.stderr.read()}"
        assert time.monotonic() < deadline, f"the ledger never reached {entries} entries"
        time.sleep(0.001)
    return proc


def _assert_nothing_left(name: str) -> None:
    assert not [ns for ns in netns.list_ours() if ns.startswith(f"nlab.{name}.")]
    assert not (STATE_ROOT / name).exists()
    assert not (STATE_ROOT / ".locks" / f"{name}.lock").exists()
    assert not [p for p in hoststate.live_lab_processes(PREFIX) if name in p]


def test_classic_vlan_ledger_size_is_known(clean_host):
    """The instants below are counted in ledger entries: check the count they assume."""
    name = PREFIX + "sigcount"
    lab("up", "classic-vlan", "--name", name)
    try:
        assert _ledger_lines(name) == LEDGER_ENTRIES
    finally:
        lab("down", name)


@pytest.mark.parametrize("entries, signum", [
    (1, signal.SIGTERM),    # the state directory exists, nothing else
    (5, signal.SIGTERM),    # namespaces being made
    (14, signal.SIGHUP),    # the agents' namespaces
    (17, signal.SIGTERM),   # wires, nodes' links
    (19, signal.SIGTERM),   # OVS daemons starting
    (23, signal.SIGHUP),    # every OVS daemon up: rows, flows, iptables
    (24, signal.SIGTERM),   # dnsmasq starting
    (26, signal.SIGTERM),   # every dnsmasq up: the metadata service's starters running together
    (27, signal.SIGHUP),    # the metadata service's daemons being recorded
    (LEDGER_ENTRIES, signal.SIGTERM),   # waiting for DHCP leases
])
def test_a_signal_during_up_rolls_back(clean_host, entries, signum):
    name = PREFIX + "sig"
    proc = _up_until(name, entries)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    if proc.returncode in (0, -signum):   # the last instant raced the end of `up`: it came up whole
        assert entries == LEDGER_ENTRIES, err
        assert lab("status", name).returncode == 0
        lab("down", name)
        pytest.skip("up had finished before the signal arrived")
    assert proc.returncode == 128 + signum, err
    assert f"stopped by {signal.Signals(signum).name}" in err
    assert "Traceback" not in err
    _assert_nothing_left(name)


def test_the_next_up_after_signals_works(clean_host):
    name = PREFIX + "sig"
    proc = _up_until(name, 19)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    _assert_nothing_left(name)
    lab("up", "classic-vlan", "--name", name)
    try:
        assert lab("status", name).returncode == 0
        assert lab("check", name, timeout=300).returncode == 0
    finally:
        lab("down", name)
    _assert_nothing_left(name)


@pytest.mark.parametrize("then", ["up", "down"])
def test_after_kill_9_up_and_down_recover_without_cleanup(clean_host, then):
    name = PREFIX + "k9"
    proc = _up_until(name, 21)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert [ns for ns in netns.list_ours() if ns.startswith(f"nlab.{name}.")], "the kill left nothing to recover"
    if then == "up":
        out = lab("up", "classic-vlan", "--name", name)
        assert "left half-made by a command that was killed" in out.stderr
        assert lab("status", name).returncode == 0
        lab("down", name)
    else:
        lab("down", name)
    _assert_nothing_left(name)


def test_sigterm_to_down_lets_the_teardown_finish(clean_host):
    name = PREFIX + "sigdown"
    lab("up", "classic-vlan", "--name", name)
    first = lifecycle.load_state(name).ledger.entries()[-1]["pid"]   # down stops it first
    proc = _start("down", name)
    deadline = time.monotonic() + 30
    while Path(f"/proc/{first}").exists() and proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.0005)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    # the signal lands during the teardown (143, after finishing it) or just after it (0 / -15)
    assert proc.returncode in (0, 143, -signal.SIGTERM), err
    assert "Traceback" not in err
    _assert_nothing_left(name)



