"""Hostile state on disk with real labs (issue 13 §4): a lab's state directory replaced by a
symlink to another lab's is never followed (`lab down` refuses, `lab cleanup` removes the link
and only its own lab), a corrupt plan.json is a clear error with exit 3 and the lab can still
be taken down, an unusable state root creates nothing. No traceback reaches the user."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lab.paths import STATE_ROOT
from lab.runtime import lifecycle, netns

from . import hoststate
from .conftest import PREFIX, REPO, lab, remove_ours


@pytest.fixture
def clean_host(host_before):
    moved: list[Path] = []
    yield moved
    for m in moved:
        shutil.rmtree(m, ignore_errors=True)
    labs, _ = lifecycle.leftovers()
    remove_ours(*(item.lab for item in labs if item.lab.startswith(PREFIX)))
    hoststate.assert_unchanged(host_before, PREFIX)


def _ours(name: str) -> list[str]:
    return [ns for ns in netns.list_ours() if ns.startswith(f"nlab.{name}.")]


def test_a_symlink_to_another_labs_state_destroys_nothing(clean_host):
    mine, other = PREFIX + "mine", PREFIX + "other"
    lab("up", "classic-vlan", "--name", mine)
    lab("up", "classic-vlan", "--name", other)
    other_namespaces = _ours(other)
    moved = STATE_ROOT / f"{mine}.moved"
    clean_host.append(moved)
    os.rename(STATE_ROOT / mine, moved)
    os.symlink(STATE_ROOT / other, STATE_ROOT / mine)

    down = lab("down", mine, check=False)
    assert down.returncode == 3, down.stderr
    assert "is a symlink" in down.stderr and f"lab cleanup {mine}" in down.stderr
    assert "Traceback" not in down.stderr
    status = lab("status", mine, check=False)
    assert status.returncode == 3 and "never follows it" in status.stderr
    up = lab("up", "classic-vlan", "--name", mine, check=False)
    assert up.returncode == 3 and "is a symlink" in up.stderr

    lab("cleanup", mine)
    assert not os.path.lexists(STATE_ROOT / mine)
    assert not _ours(mine)
    assert not [p for p in hoststate.live_lab_processes(PREFIX) if f"/{mine}/" in p]
    # the other lab: untouched and healthy
    assert _ours(other) == other_namespaces
    assert lab("status", other).returncode == 0
    lab("down", other)


def test_a_corrupt_plan_is_an_error_and_down_still_works(clean_host):
    name = PREFIX + "corrupt"
    lab("up", "classic-vlan", "--name", name)
    plan = STATE_ROOT / name / "plan.json"
    for text, why in [("{cut", "cannot be read"),
                      (json.dumps({"state_version": 99}), "state version 99"),
                      (json.dumps({"lab": name}), "not a plan of this version")]:
        plan.write_text(text)
        for args in (["status", name], ["up", "classic-vlan", "--name", name], ["check", name]):
            out = lab(*args, check=False)
            assert out.returncode == 3, (args, out.stderr)
            assert why in out.stderr and f"lab down {name}" in out.stderr, out.stderr
            assert "Traceback" not in out.stderr
    everything = lab("status", check=False)     # every lab: the bad one is named, not fatal
    assert "Traceback" not in everything.stderr and f"lab {name} (None datapath): DAMAGED" in everything.stdout
    lab("down", name)
    assert not _ours(name) and not (STATE_ROOT / name).exists()


def test_an_unusable_state_root_creates_nothing(clean_host, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    name = PREFIX + "noroot"
    env = {**os.environ, "LAB_STATE_DIR": str(blocker / "state")}
    out = subprocess.run([sys.executable, "-m", "lab.cli", "up", "classic-vlan", "--name", name],
                         capture_output=True, text=True, cwd=REPO, env=env, timeout=60)
    assert out.returncode == 3, out.stderr
    assert "LAB_STATE_DIR" in out.stderr and "Traceback" not in out.stderr
    assert not _ours(name)
