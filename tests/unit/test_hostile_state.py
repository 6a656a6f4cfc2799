"""Hostile state on disk (issue 13 §4): an unwritable state root, a lab's state directory
replaced by a symlink (never followed) or a file, a corrupt or foreign plan.json or ledger.
Each is a StateDirError (exit status 3) that names the path and `lab down/cleanup NAME`,
never a traceback, and a ledger only ever names objects with the lab's own marks."""

from __future__ import annotations

import json

import pytest

from lab import cli, paths
from lab.errors import StateDirError
from lab.runtime import lifecycle, locks, statedir


@pytest.fixture
def root(tmp_path, monkeypatch):
    state = tmp_path / "state"
    state.mkdir()
    monkeypatch.setattr(paths, "STATE_ROOT", state)
    monkeypatch.setattr(lifecycle, "STATE_ROOT", state)
    return state


def _lab_dir(root, name, plan: str | None = None):
    d = root / name
    d.mkdir()
    (d / paths.STATE_MARK).write_text(json.dumps({"kind": "netns", "name": f"nlab.{name}.vm1"}) + "\n")
    if plan is not None:
        (d / "plan.json").write_text(plan)
    return d


def test_a_symlink_to_another_labs_directory_is_never_followed(root):
    other = _lab_dir(root, "other", plan="{}")
    (root / "mine").symlink_to(other)
    with pytest.raises(StateDirError, match=r"is a symlink.*never follows it.*lab cleanup mine"):
        statedir.inspect("mine")
    with pytest.raises(StateDirError, match="symlink"):
        lifecycle.load_state("mine")
    assert lifecycle.list_labs() == ["other"]    # "mine" is a link: not listed
    # even read through the link, the other lab's objects are not this lab's
    entries = lifecycle.Ledger(root / "mine").entries()
    assert entries and statedir.owned_entries("mine", entries) == []
    statedir.unlink_symlink("mine")
    assert not (root / "mine").exists() and (other / "plan.json").exists()


def test_a_dangling_symlink_or_a_file_where_the_directory_goes(root):
    (root / "dangling").symlink_to(root / "nowhere")
    with pytest.raises(StateDirError, match="symlink"):
        statedir.make("dangling")
    assert not (root / "nowhere").exists()
    (root / "afile").write_text("user data")
    with pytest.raises(StateDirError, match=r"not a directory.*lab cleanup afile"):
        statedir.make("afile")
    with pytest.raises(StateDirError, match="not a directory"):
        lifecycle.load_state("afile")
    assert (root / "afile").read_text() == "user data"


def test_an_unusable_state_root(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setattr(paths, "STATE_ROOT", blocker / "state")
    monkeypatch.setattr(lifecycle, "STATE_ROOT", blocker / "state")
    with pytest.raises(StateDirError, match="LAB_STATE_DIR"):
        statedir.make("lab1")
    with pytest.raises(StateDirError, match="LAB_STATE_DIR"):
        with locks.lab_lock("lab1", "test", timeout=0):
            pass
    assert lifecycle.list_labs() == []


@pytest.mark.parametrize("text, why", [
    ("{not json", "Expecting property name"),
    ("[]", "not a JSON object"),
    (json.dumps({"state_version": 99, "lab": "lab1"}), "state version 99"),
    (json.dumps({"lab": "lab1"}), "not a plan of this version"),          # an old layout
    (json.dumps({"state_version": 1, "lab": "lab1", "nodes": 3}), "not a plan of this version"),
    ("\xff", "codec|Expecting"),
])
def test_a_corrupt_or_foreign_plan(root, text, why):
    d = _lab_dir(root, "lab1")
    (d / "plan.json").write_bytes(text.encode("latin-1"))
    with pytest.raises(StateDirError, match=why) as info:
        lifecycle.load_state("lab1")
    assert "lab down lab1" in str(info.value) and "lab cleanup lab1" in str(info.value)
    assert cli.exit_status(info.value) == 3


def test_a_plan_json_that_is_a_symlink(root, tmp_path):
    d = _lab_dir(root, "lab1")
    (tmp_path / "elsewhere.json").write_text("{}")
    (d / "plan.json").symlink_to(tmp_path / "elsewhere.json")
    with pytest.raises(StateDirError, match="symlink"):
        lifecycle.load_state("lab1")


def test_a_corrupt_ledger_keeps_only_what_it_can_trust(root, tmp_path):
    d = root / "lab1"
    d.mkdir()
    lines = [
        {"kind": "netns", "name": "nlab.lab1.vm1"},                 # ours
        {"kind": "netns", "name": "nlab.lab10.vm1"},                # another lab's
        {"kind": "netns", "name": "nlab.lab1.x/../../etc"},         # not a namespace name
        {"kind": "process", "pid": 1, "rundir": f"{d}/nodes/n1"},   # init
        {"kind": "process", "pid": 4242, "rundir": f"{d}/nodes/n1"},  # ours
        {"kind": "process", "pid": 4243, "rundir": f"{root}/other/nodes/n1"},
        {"kind": "process", "pid": 4244, "rundir": f"{d}/../other/nodes/n1"},
        {"kind": "process", "pid": "4245", "rundir": f"{d}/nodes/n1"},
        {"kind": "netns"},
    ]
    text = "\n".join(json.dumps(x) for x in lines) + "\n[1, 2]\n\"text\"\n{cut short"
    (d / paths.STATE_MARK).write_text(text)
    entries = lifecycle.Ledger(d).entries()
    assert len(entries) == len(lines)          # JSON objects only, the rest skipped
    kept = statedir.owned_entries("lab1", entries)
    assert kept == [lines[0], lines[4]]
    (d / paths.STATE_MARK).unlink()
    (tmp_path / "forged").write_text(json.dumps(lines[0]) + "\n")
    (d / paths.STATE_MARK).symlink_to(tmp_path / "forged")
    assert lifecycle.Ledger(d).entries() == []   # a symlinked ledger is not read


def test_the_plan_file_carries_its_version(root):
    doc = json.loads(statedir.plan_document({"lab": "x"}))
    assert doc == {"state_version": statedir.STATE_VERSION, "lab": "x"}
    d = _lab_dir(root, "lab1", plan=statedir.plan_document({"lab": "lab1"}))
    assert statedir.read_plan("lab1") == {"lab": "lab1"}
    assert lifecycle.list_labs() == ["lab1"]
    assert d.is_dir()


def test_os_errors_reach_the_user_without_a_traceback(monkeypatch, capsys):
    def boom(args):
        raise PermissionError(13, "Permission denied", "/run/neutron-lab/x")
    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    args = parser.parse_args(["list"])
    monkeypatch.setattr(parser, "parse_args", lambda argv=None: args)
    monkeypatch.setattr(args, "fn", boom)
    assert cli.main(["list"]) == 3
    assert capsys.readouterr().err == "lab: Permission denied: /run/neutron-lab/x\n"
