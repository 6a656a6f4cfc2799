"""Where things live: the project's data (templates, scenarios) and the labs' run state."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent

# Run state of every lab: /run/neutron-lab/<lab>/ (tmpfs: a reboot forgets it, as it forgets
# the namespaces). LAB_STATE_DIR overrides it, e.g. for tests.
STATE_ROOT = Path(os.environ.get("LAB_STATE_DIR", "/run/neutron-lab"))


def data_dir(name: str) -> Path:
    """templates/ or scenarios/: beside the package in a checkout (or editable install),
    inside it (lab/_data/) in a wheel."""
    for candidate in (PACKAGE_DIR.parent / name, PACKAGE_DIR / "_data" / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"cannot find the {name}/ directory near {PACKAGE_DIR}")


LAB_NAME = re.compile(r"^[a-z][a-z0-9-]{0,39}$")   # what scenario.py accepts as a lab name
STATE_MARK = "ledger.jsonl"                       # every state directory `up` makes holds one


def check_lab_name(lab: str) -> str:
    """A lab name from the command line, before it becomes a path: never '..', '' or 'a/b'."""
    if not isinstance(lab, str) or not LAB_NAME.match(lab):
        from lab.errors import UsageError
        raise UsageError(f"{lab!r} is not a lab name (lowercase letters, digits and '-', "
                         "starting with a letter, at most 40 characters)")
    return lab


def lab_dir(lab: str) -> Path:
    return STATE_ROOT / check_lab_name(lab)


LOCK_DIR_NAME = ".locks"   # STATE_ROOT/.locks/<lab>.lock: outlives the lab's own directory


def lock_path(lab: str) -> Path:
    return STATE_ROOT / LOCK_DIR_NAME / f"{check_lab_name(lab)}.lock"


def remove_lab_dir(lab: str) -> None:
    """Delete a lab's state directory, and only that: a direct child of STATE_ROOT that `up`
    made (it holds the ledger)."""
    directory = lab_dir(lab)
    if not directory.exists():
        return
    if directory.resolve().parent != STATE_ROOT.resolve() or not (directory / STATE_MARK).exists():
        from lab.errors import LabStateError
        raise LabStateError(f"refusing to delete {directory}: not a lab state directory")
    shutil.rmtree(directory)
