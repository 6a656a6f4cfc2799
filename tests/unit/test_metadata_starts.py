"""Starting the metadata service all at once (lab/runtime/metadata.py `ensure`, and
gateway.run_together under it): every starter runs before any is waited for, each failure is
named, every daemon that runs is recorded even when another failed, repair starts only what is
dead. The signal path is in test_interrupted_starts.py; the kernel side in
tests/integration/test_metadata.py and test_signals.py."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from lab.core.plan import build_plan
from lab.core.scenario import load_scenario
from lab.errors import CommandError, LabError, MissingProgram
from lab.runtime import gateway, processes
from lab.runtime import metadata as metadata_service

# --------------------------------------------------------------------------- gateway.run_together


def test_every_command_starts_before_any_is_waited_for(tmp_path):
    """The first waits for a file only the second makes: one after the other, it times out."""
    flag = tmp_path / "flag"
    waits = f"while [ ! -e {flag} ]; do sleep 0.01; done; echo seen"
    results = gateway.run_together([gateway.Command(["sh", "-c", waits]),
                                    gateway.Command(["sh", "-c", f"touch {flag}"])], timeout=10)
    assert [type(r) for r in results] == [subprocess.CompletedProcess] * 2
    assert results[0].stdout == "seen\n"


def test_each_failure_is_returned_and_the_others_still_run(tmp_path):
    results = gateway.run_together([
        gateway.Command(["sh", "-c", "echo broken >&2; exit 3"]),
        gateway.Command(["/nonexistent/nlab-no-such-program"]),
        gateway.Command(["sh", "-c", 'echo "$NLAB_X"'], env={"NLAB_X": "from env"}),
    ])
    assert isinstance(results[0], CommandError) and results[0].returncode == 3
    assert "broken" in str(results[0])
    assert isinstance(results[1], MissingProgram) and "nlab-no-such-program" in str(results[1])
    assert results[2].stdout == "from env\n"


def test_a_command_past_the_deadline_is_killed(tmp_path):
    pidfile = tmp_path / "pid"
    [result] = gateway.run_together([gateway.Command(["sh", "-c", f"echo $$ > {pidfile}; exec sleep 30"])],
                                    timeout=0.5)
    assert isinstance(result, CommandError) and "timed out" in str(result)
    pid = int(pidfile.read_text())
    assert not Path(f"/proc/{pid}").exists()      # killed and reaped


# --------------------------------------------------------------------------- ensure


@pytest.fixture
def plan(tmp_path):
    return build_plan(load_scenario("classic-vlan"), state_root=str(tmp_path))


@pytest.fixture
def starters(plan, monkeypatch):
    """ensure with its starters faked: each writes its daemon's pid file (pids from 101), a
    start named in `fail` exits 1 instead (and writes one anyway if in `runs_anyway`);
    `alive` holds what runs before; `seen` what each call was given."""
    state = {"fail": set(), "runs_anyway": set(), "alive": set(), "seen": [], "stale": []}
    monkeypatch.setattr(gateway, "require", lambda *programs: None)
    monkeypatch.setattr(metadata_service, "write_files", lambda plan, scenario: metadata_service.server_of(plan))
    monkeypatch.setattr(metadata_service, "server_alive", lambda srv: "server" in state["alive"])
    monkeypatch.setattr(metadata_service, "agent_alive", lambda a: a.node in state["alive"])
    monkeypatch.setattr(metadata_service, "proxy_alive", lambda p: p.name in state["alive"])
    monkeypatch.setattr(metadata_service, "_stop_stale", lambda pidfile, mark: state["stale"].append(mark))
    monkeypatch.setattr(processes, "alive", lambda pid, mark: pid is not None)

    def run_together(commands, timeout=gateway.DEFAULT_TIMEOUT):
        state["seen"].append([list(c.argv) for c in commands])
        results = []
        for n, c in enumerate(commands):
            pidfile = Path(c.argv[c.argv.index("--pidfile") + 1]) if "--pidfile" in c.argv else \
                Path(c.argv[-1]).with_suffix(".pid")           # haproxy -f CONFIG: pidfile beside it
            which = c.argv[2] if c.argv[0] != "haproxy" else Path(c.argv[-1]).stem
            pidfile.parent.mkdir(parents=True, exist_ok=True)
            if any(f in which for f in state["fail"]):
                if any(f in which for f in state["runs_anyway"]):
                    pidfile.write_text(f"{101 + n}\n")
                results.append(CommandError(list(c.argv), 1, "", "bind failed", c.netns))
                continue
            pidfile.write_text(f"{101 + n}\n")
            results.append(subprocess.CompletedProcess(c.argv, 0, "", ""))
        return results
    monkeypatch.setattr(gateway, "run_together", run_together)
    return state


def _ensure(plan):
    recorded: list[tuple[str, int, str | None]] = []
    started = metadata_service.ensure(plan, None, lambda **e: recorded.append((e["daemon"], e["pid"], e["node"])))
    return started, recorded


def test_every_daemon_starts_in_one_go_and_is_recorded(plan, starters):
    started, recorded = _ensure(plan)
    assert len(starters["seen"]) == 1 and len(starters["seen"][0]) == 4      # one call, all four
    assert started == ["metadata server", "metadata agent of network1", "metadata proxy of router1",
                       "metadata proxy of alt-net-dhcp"]
    assert recorded == [("metadata-server", 101, None), ("metadata-agent", 102, "network1"),
                        ("haproxy", 103, "network1"), ("haproxy", 104, "network1")]
    for p in metadata_service.metadata.proxies(plan):   # each config written before its haproxy starts
        assert Path(p.config).read_text() == metadata_service.metadata.haproxy_config(p)


def test_one_that_fails_is_named_and_the_others_are_still_recorded(plan, starters):
    router = metadata_service.metadata.proxies(plan)[0]
    starters["fail"] = {router.resource_id}
    recorded = []
    with pytest.raises(LabError) as info:
        metadata_service.ensure(plan, None, lambda **e: recorded.append(e["daemon"]))
    message = str(info.value)
    assert message.startswith("the metadata service did not start: metadata proxy of router1: ")
    assert "bind failed" in message and "alt-net" not in message
    assert recorded == ["metadata-server", "metadata-agent", "haproxy"]       # the rollback stops them


def test_a_failed_start_whose_daemon_runs_anyway_is_recorded(plan, starters):
    starters["fail"] = starters["runs_anyway"] = {"lab.services.metadata_agent"}
    recorded = []
    with pytest.raises(LabError, match="metadata agent of network1: command in netns nlab.classic-vlan.network1"):
        metadata_service.ensure(plan, None, lambda **e: recorded.append((e["daemon"], e["pid"])))
    assert ("metadata-agent", 102) in recorded and len(recorded) == 4


def test_a_start_without_a_pid_file_is_an_error(plan, starters, monkeypatch):
    monkeypatch.setattr(processes, "read_pidfile",
                        lambda path: None if "metadata-agent" in str(path) else 7)
    recorded = []
    with pytest.raises(LabError, match="metadata agent of network1: started but wrote no pid file .*metadata-agent.pid"):
        metadata_service.ensure(plan, None, lambda **e: recorded.append(e["daemon"]))
    assert recorded == ["metadata-server", "haproxy", "haproxy"]


def test_repair_starts_only_what_is_dead(plan, starters):
    starters["alive"] = {"server", "alt-net-dhcp"}
    started, recorded = _ensure(plan)
    assert started == ["metadata agent of network1", "metadata proxy of router1"]
    assert [d for d, _, _ in recorded] == ["metadata-agent", "haproxy"]
    assert len(starters["stale"]) == 2        # a predecessor of each is ended first


def test_nothing_dead_nothing_started(plan, starters):
    starters["alive"] = {"server", "network1", "router1", "alt-net-dhcp"}
    assert _ensure(plan) == ([], [])
    assert starters["seen"] == []
