"""A lab's state on disk, read and made without ever trusting it blindly.

The state directory STATE_ROOT/<lab>/ decides what `down` and `cleanup` end, so it is never
followed through a symlink (a symlink to another lab's directory would make `down` destroy
that lab), never taken from a regular file, and a plan.json or ledger that cannot be read is a
clear error (StateDirError, exit status 3) that names the path and the command that helps,
never a traceback. Ledger entries are used only when they carry the lab's own marks.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path

from lab import paths
from lab.core import naming
from lab.errors import StateDirError

PLAN_FILE = "plan.json"
STATE_VERSION = 1          # of plan.json; a plan.json without it is read if it parses


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateDirError(f"cannot read {path}: {exc.strerror}") from None


def inspect(lab: str) -> bool:
    """True when LAB has a state directory, False when it has none. A symlink (even a dangling
    one) or anything else that is not a directory there is refused: never followed."""
    directory = paths.lab_dir(lab)
    st = _lstat(directory)
    if st is None:
        return False
    if stat.S_ISLNK(st.st_mode):
        raise StateDirError(f"{directory} is a symlink, not lab {lab}'s state directory: neutron-lab "
                            f"never follows it; `lab cleanup {lab}` removes the link (not what it "
                            f"points to) and what lab {lab} left")
    if not stat.S_ISDIR(st.st_mode):
        raise StateDirError(f"{directory} is not a directory, so it is not lab {lab}'s state: "
                            f"move it away (`mv {directory} /tmp/`), then run `lab cleanup {lab}`")
    return True


def is_symlink(lab: str) -> bool:
    st = _lstat(paths.lab_dir(lab))
    return st is not None and stat.S_ISLNK(st.st_mode)


def unlink_symlink(lab: str) -> None:
    """Remove a symlink standing where LAB's state directory should be: the link, never its target."""
    if is_symlink(lab):
        os.unlink(paths.lab_dir(lab))


def ensure_root() -> None:
    """Make STATE_ROOT (and its parents) or say why it cannot be made or written."""
    root = paths.STATE_ROOT
    try:
        root.mkdir(parents=True, exist_ok=True)
        if not root.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "not a directory")
        if not os.access(root, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, "not writable")
    except OSError as exc:
        raise StateDirError(root_problem(root, exc)) from None


def root_problem(root: Path, exc: OSError) -> str:
    return (f"cannot use the state directory {root}: {exc.strerror or exc}; make it a writable "
            "directory, or point LAB_STATE_DIR at one")


def make(lab: str) -> Path:
    """Create LAB's state directory; it must not exist (a dangling symlink counts as existing)."""
    ensure_root()
    directory = paths.lab_dir(lab)
    try:
        os.mkdir(directory, 0o755)
    except FileExistsError:
        inspect(lab)   # names a symlink or a file
        raise StateDirError(f"{directory} already exists: run `lab cleanup {lab}`") from None
    except OSError as exc:
        raise StateDirError(root_problem(paths.STATE_ROOT, exc)) from None
    return directory


def read_text(path: Path) -> str:
    """A state file's text, refusing to follow a symlink in the file's own name."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise StateDirError(f"{path} is a symlink: neutron-lab never follows it") from None
        raise
    with os.fdopen(fd) as f:
        return f.read()


def read_plan(lab: str) -> dict | None:
    """plan.json of LAB as a dict, None when the lab has none (not up); StateDirError when it
    cannot be read or is not a plan of this version."""
    if not inspect(lab):
        return None
    path = paths.lab_dir(lab) / PLAN_FILE
    try:
        data = json.loads(read_text(path))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise StateDirError(unreadable(lab, path, str(exc))) from None
    if not isinstance(data, dict):
        raise StateDirError(unreadable(lab, path, "not a JSON object"))
    version = data.pop("state_version", None)
    if version is not None and version != STATE_VERSION:
        raise StateDirError(unreadable(lab, path, f"state version {version!r}, this neutron-lab "
                                       f"reads version {STATE_VERSION}"))
    return data


def unreadable(lab: str, path: Path, why: str) -> str:
    return (f"the state of lab {lab} cannot be read ({path}: {why}); `lab down {lab}` or "
            f"`lab cleanup {lab}` removes the lab by its marks")


def plan_document(plan_json: dict) -> str:
    return json.dumps({"state_version": STATE_VERSION, **plan_json}, indent=1)


def owned_entries(lab: str, entries: list) -> list[dict]:
    """The ledger entries that name objects carrying LAB's marks (a namespace with its prefix,
    a process whose mark is inside its state directory); anything else is ignored."""
    prefix = naming.netns_name(lab, "")
    directory = f"{paths.lab_dir(lab)}/"
    out = []
    for e in entries:
        if not isinstance(e, dict):
            continue
        kind = e.get("kind")
        if kind == "netns" and isinstance(e.get("name"), str) and e["name"].startswith(prefix) \
                and "/" not in e["name"]:
            out.append(e)
        elif kind == "process" and isinstance(e.get("pid"), int) and e["pid"] > 1 \
                and isinstance(e.get("rundir"), str) and _inside(e["rundir"], directory):
            out.append(e)
        elif kind not in ("netns", "process"):
            out.append(e)
    return out


def _inside(path: str, directory: str) -> bool:
    return os.path.normpath(path).startswith(directory) and ".." not in Path(path).parts
