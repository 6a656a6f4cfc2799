"""Golden files: what `lab up` would program on each node, what `lab show` prints, and how
scenario errors read. Any change to them is a visible diff in tests/golden/.

Regenerate after an intended change, then review the diff:

    UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/unit/test_golden.py

Layout:
    tests/golden/<scenario>/show.txt                describe(plan)
    tests/golden/<scenario>/<node>/ovsdb.txt        the node's ovs-vsctl transaction, one command a line
    tests/golden/<scenario>/<node>/<bridge>.flows   ovs-ofctl replace-flows input, per bridge
    tests/golden/<scenario>/<node>/iptables.rules   iptables-restore input
    tests/golden/errors/<case>.yaml                 a bad scenario (hand-written input)
    tests/golden/errors/<case>.txt                  str(ScenarioError) for it
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import shlex
from pathlib import Path

import pytest

from lab.errors import ScenarioError
from lab.plan import build_plan
from lab.render import describe, render_plan
from lab.scenario import find_scenario, load_scenario, parse_scenario

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
REGENERATE = "UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/unit/test_golden.py"

SCENARIOS = ["classic-vlan"]


def check_golden(path: Path, actual: str) -> None:
    """Compare ``actual`` with the golden file, or (UPDATE_GOLDEN=1) write it."""
    rel = path.relative_to(GOLDEN.parent.parent)
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.is_file() or path.read_text() != actual:
            path.write_text(actual)
        return
    if not path.is_file():
        pytest.fail(f"golden file {rel} is missing; generate it with: {REGENERATE}", pytrace=False)
    expected = path.read_text()
    if actual != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(keepends=True),
                                            actual.splitlines(keepends=True),
                                            fromfile=f"{rel} (golden)", tofile=f"{rel} (now)"))
        pytest.fail(f"{rel} differs from what is rendered now; if the change is intended, "
                    f"regenerate with: {REGENERATE}\n{diff}", pytrace=False)


# --------------------------------------------------------------------------- rendered lab

def scenario_for_golden(name: str):
    """The built-in scenario with its source made relative, so no absolute path leaks."""
    scenario = load_scenario(name)
    return dataclasses.replace(scenario, source=f"scenarios/{find_scenario(name).name}")


def ovsdb_text(args: tuple[str, ...]) -> str:
    """One ovs-vsctl command a line (the transaction separates them with a bare "--")."""
    commands: list[list[str]] = [[]]
    for arg in args:
        if arg == "--":
            commands.append([])
        else:
            commands[-1].append(arg)
    return "".join(shlex.join(c) + "\n" for c in commands)


def rendered_files(name: str) -> dict[str, str]:
    """Relative golden path -> content, for every file of a scenario."""
    plan = build_plan(scenario_for_golden(name))
    files = {f"{name}/show.txt": describe(plan)}
    for node, r in render_plan(plan).items():
        files[f"{name}/{node}/ovsdb.txt"] = ovsdb_text(r.ovsdb)
        for bridge, text in r.flows.items():
            files[f"{name}/{node}/{bridge}.flows"] = text
        files[f"{name}/{node}/iptables.rules"] = r.iptables
    return files


RENDERED = {path: text for name in SCENARIOS for path, text in rendered_files(name).items()}


@pytest.mark.parametrize("path", sorted(RENDERED))
def test_rendered_golden(path):
    check_golden(GOLDEN / path, RENDERED[path])


@pytest.mark.parametrize("name", SCENARIOS)
def test_no_stale_golden_files(name):
    """Every file under tests/golden/<scenario>/ is still produced (a node or bridge that went
    away must take its golden file with it)."""
    present = {str(p.relative_to(GOLDEN)) for p in (GOLDEN / name).rglob("*") if p.is_file()}
    expected = {p for p in RENDERED if p.startswith(f"{name}/")}
    stale = present - expected
    if UPDATE:
        for p in stale:
            (GOLDEN / p).unlink()
        return
    assert not stale, f"stale golden files {sorted(stale)}; remove them or run: {REGENERATE}"


def test_golden_text_is_deterministic():
    assert rendered_files("classic-vlan") == rendered_files("classic-vlan")


def test_no_absolute_paths_leak():
    for path, text in RENDERED.items():
        assert "/work/" not in text and str(GOLDEN.parent.parent) not in text, path


# --------------------------------------------------------------------------- error messages

ERROR_CASES = sorted(p.stem for p in (GOLDEN / "errors").glob("*.yaml"))


def test_error_cases_exist():
    assert len(ERROR_CASES) >= 3, "tests/golden/errors/ should hold at least three bad scenarios"


@pytest.mark.parametrize("case", ERROR_CASES)
def test_error_golden(case):
    source = GOLDEN / "errors" / f"{case}.yaml"
    with pytest.raises(ScenarioError) as info:
        parse_scenario(source.read_text(), f"{case}.yaml", default_name=case)
    text = str(info.value) + "\n"
    assert all(p.file == f"{case}.yaml" for p in info.value.problems)
    check_golden(GOLDEN / "errors" / f"{case}.txt", text)


def test_no_orphan_error_goldens():
    """Every errors/<case>.txt still has its errors/<case>.yaml."""
    orphans = sorted(p.name for p in (GOLDEN / "errors").glob("*.txt") if p.stem not in ERROR_CASES)
    if UPDATE:
        for name in orphans:
            (GOLDEN / "errors" / name).unlink()
        return
    assert not orphans, f"golden files without a scenario: {orphans}; remove them or run: {REGENERATE}"
