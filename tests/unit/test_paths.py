"""Lab names from the command line become paths: they are checked first, and only a lab's own
state directory is ever deleted."""

from __future__ import annotations

import pytest

from lab import paths
from lab.errors import LabStateError, UsageError


@pytest.mark.parametrize("bad", ["..", "", "a/b", "/etc", "Classic", "-x", "x" * 41, "lab.1", "../etc", None])
def test_bad_lab_names_never_become_paths(bad):
    with pytest.raises(UsageError, match="is not a lab name"):
        paths.lab_dir(bad)
    with pytest.raises(UsageError, match="is not a lab name"):
        paths.lock_path(bad)


def test_good_lab_name():
    assert paths.lab_dir("classic-vlan") == paths.STATE_ROOT / "classic-vlan"


def test_only_a_state_directory_is_removed(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "STATE_ROOT", tmp_path)
    (tmp_path / "notalab").mkdir()
    (tmp_path / "notalab" / "keep.txt").write_text("user data")
    with pytest.raises(LabStateError, match="not a lab state directory"):
        paths.remove_lab_dir("notalab")
    assert (tmp_path / "notalab" / "keep.txt").exists()
    (tmp_path / "lab1").mkdir()
    (tmp_path / "lab1" / paths.STATE_MARK).write_text("")
    paths.remove_lab_dir("lab1")
    assert not (tmp_path / "lab1").exists()
    paths.remove_lab_dir("gone")   # already gone: nothing to do
