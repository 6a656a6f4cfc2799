"""Hostile YAML in a scenario that would otherwise build a lab: `lab up` refuses it with
file:line and exit status 2, and creates nothing (no namespace, no state directory, no OVS).
Before the guarded loader, tags on lists and mappings were accepted and the lab was built."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from lab.paths import STATE_ROOT
from lab.runtime import netns

from . import hoststate
from .conftest import PREFIX, REPO, lab, test_name

CLASSIC = (REPO / "scenarios" / "classic-vlan.yaml").read_text()
NAME = test_name("hostile")

MUTATIONS = [
    ("tag-on-a-list", 'vlan_ranges: ["101:199"]', 'vlan_ranges: !custom ["101:199"]', "YAML tag !custom"),
    ("tag-on-a-mapping", "  physnet1:\n", "  physnet1: !custom\n", "YAML tag !custom"),
    ("tag-on-a-value", "    bridge: br-vlan ", "    bridge: !!str br-vlan ", "YAML tag !!str"),
    ("python-tag", "    bridge: br-vlan ", '    bridge: !!python/object/apply:os.system ["true"] ', "YAML tag !!python"),
    ("recursive-alias", "nodes: [network1, compute1, compute2]", "nodes: &n [network1, *n]", "recursive alias"),
]


@pytest.fixture
def clean_host(host_before):
    yield host_before
    lab("cleanup", NAME, check=False)
    hoststate.assert_unchanged(host_before, PREFIX)


@pytest.mark.parametrize("old, new, phrase", [m[1:] for m in MUTATIONS], ids=[m[0] for m in MUTATIONS])
def test_hostile_scenario_is_refused_and_nothing_is_created(tmp_path: Path, clean_host, old, new, phrase):
    shutil.copytree(REPO / "scenarios" / "include", tmp_path / "include")
    text = re.sub(r"^name: .*$", f"name: {NAME}", CLASSIC, count=1, flags=re.M)
    assert text.count(old) == 1
    text = text.replace(old, new)
    path = tmp_path / f"{NAME}.yaml"
    path.write_text(text)
    line = next(i for i, x in enumerate(text.splitlines(), start=1) if new.strip() in x)
    out = lab("up", str(path), check=False)
    assert out.returncode == 2, out.stderr
    assert f"{path}:{line}: " in out.stderr and phrase in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    assert not [ns for ns in netns.list_ours() if ns.startswith(f"nlab.{NAME}.")]
    assert not (STATE_ROOT / NAME).exists()
