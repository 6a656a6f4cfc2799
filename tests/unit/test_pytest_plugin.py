"""The pytest plugin's pure parts: test lab names, the prerequisite check that skips (or,
under LAB_REQUIRE_INTEGRATION=1, fails)."""

from __future__ import annotations

import pytest

from lab import pytest_plugin as plugin
from lab.paths import LAB_NAME


@pytest.fixture
def prefix(monkeypatch):
    monkeypatch.setattr(plugin, "_prefix", None)
    monkeypatch.setenv("LAB_TEST_PREFIX", "t0f0f-")
    return "t0f0f-"


def test_run_prefix_is_random_and_stable(monkeypatch):
    monkeypatch.setattr(plugin, "_prefix", None)
    monkeypatch.delenv("LAB_TEST_PREFIX", raising=False)
    first = plugin.run_prefix()
    assert plugin.TEST_PREFIX.match(first) and plugin.run_prefix() == first


@pytest.mark.parametrize("scenario,name", [
    ("classic-vlan", "t0f0f-classic-vlan"),
    ("/some/where/My_Lab.yaml", "t0f0f-my-lab"),
    ("a" * 60, "t0f0f-" + "a" * 34),
])
def test_test_lab_names_are_lab_names(prefix, scenario, name):
    assert plugin.test_lab_name(scenario) == name
    assert LAB_NAME.match(name)


def test_bad_prefix_is_refused(monkeypatch):
    monkeypatch.setattr(plugin, "_prefix", None)
    monkeypatch.setenv("LAB_TEST_PREFIX", "classic-")
    with pytest.raises(pytest.UsageError, match="LAB_TEST_PREFIX"):
        plugin.run_prefix()


def test_not_root_skips_with_the_reason(monkeypatch):
    monkeypatch.setattr(plugin.os, "geteuid", lambda: 1000)
    monkeypatch.delenv("LAB_REQUIRE_INTEGRATION", raising=False)
    with pytest.raises(pytest.skip.Exception, match="need root"):
        plugin.require_labs()


def test_not_root_fails_when_integration_is_required(monkeypatch):
    monkeypatch.setattr(plugin.os, "geteuid", lambda: 1000)
    monkeypatch.setenv("LAB_REQUIRE_INTEGRATION", "1")
    with pytest.raises(pytest.fail.Exception, match="LAB_REQUIRE_INTEGRATION=1 but lab tests need root"):
        plugin.require_labs()


def test_a_missing_program_is_named(monkeypatch):
    monkeypatch.setattr(plugin.os, "geteuid", lambda: 0)
    monkeypatch.setattr(plugin.shutil, "which", lambda p: None if p == "tcpdump" else "/bin/" + p)
    assert plugin.missing_prerequisite() == "lab tests need these programs: tcpdump"
