"""lab/budget.py: one scale factor for every wait, from LAB_TIME_SCALE or measured."""

import pytest

from lab import budget
from lab.errors import LabError


@pytest.fixture(autouse=True)
def fresh_scale():
    budget.scale.cache_clear()
    yield
    budget.scale.cache_clear()


@pytest.mark.parametrize("value, expected", [(None, 1.0), ("", 1.0), ("1", 1.0), ("20", 20.0),
                                             (" 2.5 ", 2.5), ("auto", None), ("AUTO", None)])
def test_parse_scale(value, expected):
    assert budget.parse_scale(value) == expected


@pytest.mark.parametrize("value", ["fast", "0.5", "0", "-3", "1e9", "nan"])
def test_bad_scale_is_a_clear_error(value):
    with pytest.raises(budget.BudgetError) as exc:
        budget.parse_scale(value)
    assert "LAB_TIME_SCALE" in str(exc.value) and repr(value) in str(exc.value)
    assert isinstance(exc.value, LabError)


def test_budget_scales_by_the_setting(monkeypatch):
    monkeypatch.setenv("LAB_TIME_SCALE", "20")
    assert budget.budget(5) == 100
    assert budget.budget(0.15) == pytest.approx(3.0)


def test_default_is_unscaled(monkeypatch):
    monkeypatch.delenv("LAB_TIME_SCALE", raising=False)
    assert budget.budget(5) == 5


def test_auto_measures_once(monkeypatch):
    calls = []
    monkeypatch.setenv("LAB_TIME_SCALE", "auto")
    monkeypatch.setattr(budget, "measure", lambda: calls.append(1) or 7.0)
    assert budget.budget(2) == 14.0
    assert budget.budget(3) == 21.0
    assert calls == [1]


def test_measure_is_a_bounded_ratio(monkeypatch):
    # a machine as quick as the reference (or quicker) scales by 1, never below
    assert 1.0 <= budget.measure(loops=20_000, rounds=1) <= budget.MAX_SCALE
    # a machine 30x slower than the reference: the loop takes 30x the reference time
    ticks = iter([0.0, budget.REFERENCE_SECONDS * 30])
    monkeypatch.setattr(budget.time, "perf_counter", lambda: next(ticks))
    assert budget.measure(rounds=1) == 30.0


def test_waits_use_the_budget(monkeypatch):
    """The runtime's waits are budgets: a lab under a scale of 50 waits 50x longer for OVSDB."""
    from lab.runtime import gateway
    seen = {}

    def fake_run(argv, **kw):
        seen["timeout"] = kw["timeout"]
        raise gateway.subprocess.TimeoutExpired(argv, kw["timeout"])

    monkeypatch.setenv("LAB_TIME_SCALE", "50")
    monkeypatch.setattr(gateway.subprocess, "run", fake_run)
    with pytest.raises(LabError) as exc:
        gateway.run(["true"], timeout=2)
    assert seen["timeout"] == 100
    assert "timed out after 100s" in str(exc.value)
