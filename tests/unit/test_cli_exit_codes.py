"""Exit statuses through lab.cli.main, for what needs no root: 2 for bad usage (a lab name
that is no name, an unknown scenario, an unknown option), 0 for --help, which lists them all;
and the mapping of every typed error."""

from __future__ import annotations

import json

import pytest

from lab import api, cli
from lab.errors import (ApplyError, CommandError, LabBusy, LabError, LabStateError, MissingProgram,
                        NotRoot, ScenarioError, ScenarioNotFound, UsageError)


@pytest.mark.parametrize("argv", [
    ["down", "../etc"], ["down", "/etc"], ["cleanup", "../etc"], ["status", "a/b"], ["check", ".."],
    ["exec", "../etc", "vm1", "--", "true"], ["up", "classic-vlan", "--name", "../etc"],
    ["up", "classic-vlan", "--name", "Big"], ["trace", "x" * 41, "vm1", "vm2"],
])
def test_bad_lab_name_is_2_with_a_clear_message(argv, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "is not a lab name" in err and "Traceback" not in err


def test_unknown_scenario_is_2(capsys):
    assert cli.main(["up", "no-such-scenario"]) == 2
    assert "no scenario named 'no-such-scenario'" in capsys.readouterr().err
    assert cli.main(["show", "/nonexistent/x.yaml"]) == 2


def test_bad_usage_is_2(capsys):
    assert cli.main(["frobnicate"]) == 2
    assert cli.main(["up"]) == 2
    assert cli.main(["check", "x", "--no-such-option"]) == 2


def test_help_lists_the_exit_statuses(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for line in ("0  success", "1  a check failed", "2  bad usage", "3  the environment refused"):
        assert line in out


@pytest.mark.parametrize("exc,status", [
    (ScenarioError([]), 2), (ScenarioNotFound("x"), 2), (UsageError("x"), 2),
    (LabStateError("x"), 1),
    (NotRoot("x"), 3), (MissingProgram("x"), 3), (CommandError(["false"], 1, "", ""), 3),
    (ApplyError("x"), 3), (LabBusy("x", 1), 3), (LabError("x"), 3),
])
def test_every_error_has_its_status(exc, status):
    assert cli.exit_status(exc) == status


def test_show_json_carries_the_schema_version(capsys):
    assert cli.main(["show", "classic-vlan", "--json", "--datapath", "netdev"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema_version"] == api.SCHEMA_VERSION == 1
    assert doc["lab"] == "classic-vlan"


def test_an_error_inside_a_command_keeps_its_status(monkeypatch, capsys):
    def busy(*a, **k):
        raise LabBusy("lab x is busy: pid 1 (lab up x) holds its lock", 1)
    monkeypatch.setattr(api, "down", busy)
    assert cli.main(["down", "x"]) == 3
    assert "pid 1 (lab up x)" in capsys.readouterr().err


def _leftovers(monkeypatch, labs, stray=()):
    from lab.runtime.lifecycle import Leftover
    items = [Leftover(name, True, [f"nlab.{name}.vm1"], f"/run/neutron-lab/{name}") for name in labs]
    monkeypatch.setattr(api, "leftovers", lambda: (items, list(stray)))
    calls = []
    monkeypatch.setattr(api, "cleanup", lambda lab=None, **k: calls.append(lab) or list(labs))
    return calls


def test_cleanup_of_everything_lists_and_needs_yes_off_a_terminal(monkeypatch, capsys):
    calls = _leftovers(monkeypatch, ["classic-vlan", "t1a2b-x"], ["nlab.stray"])
    monkeypatch.setattr("sys.stdin.isatty", lambda: False, raising=False)
    assert cli.main(["cleanup"]) == 2
    out, err = capsys.readouterr()
    assert "lab classic-vlan (up: 1 namespace(s), state /run/neutron-lab/classic-vlan)" in out
    assert "nlab.stray" in out and "--yes" in err and "lab cleanup LAB" in err
    assert calls == []                                  # nothing removed
    assert cli.main(["cleanup", "--yes"]) == 0
    assert calls == [None]
    assert "removed: classic-vlan, t1a2b-x" in capsys.readouterr().out


def test_cleanup_of_one_lab_or_of_nothing(monkeypatch, capsys):
    calls = _leftovers(monkeypatch, [])
    assert cli.main(["cleanup"]) == 0
    assert "nothing to clean up" in capsys.readouterr().out and calls == []
    assert cli.main(["cleanup", "t1a2b-x"]) == 0
    assert calls == ["t1a2b-x"]
