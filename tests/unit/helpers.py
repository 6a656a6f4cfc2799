"""Helpers shared by the unit tests (imported as `helpers`; conftest.py puts this directory on
sys.path). Pure: no root, no namespaces."""

from __future__ import annotations

import pytest

from lab.errors import Problem, ScenarioError
from lab.core.scenario import Scenario, parse_scenario


def line_of(text: str, snippet: str, occurrence: int | None = None) -> int:
    """1-based line of the line holding ``snippet``; it must be unique unless ``occurrence``
    (an index into all the matching lines, -1 for the last) is given."""
    hits = [i for i, line in enumerate(text.splitlines(), start=1) if snippet in line]
    if occurrence is None:
        assert len(hits) == 1, f"snippet {snippet!r} is on lines {hits}, expected exactly one"
        return hits[0]
    return hits[occurrence]


def parse(text: str, filename: str = "unit.yaml") -> Scenario:
    return parse_scenario(text, filename, default_name="unit")


def problems_of(text: str, filename: str = "unit.yaml") -> list[Problem]:
    with pytest.raises(ScenarioError) as info:
        parse(text, filename)
    return info.value.problems


def only_problem(text: str) -> Problem:
    problems = problems_of(text)
    assert len(problems) == 1, "expected one problem, got:\n" + "\n".join(map(str, problems))
    return problems[0]
