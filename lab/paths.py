"""Where things live: the project's data (templates, scenarios) and the labs' run state."""

from __future__ import annotations

import os
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


def lab_dir(lab: str) -> Path:
    return STATE_ROOT / lab
