"""Unit tests: pure and fast (no root, no namespaces, no Open vSwitch)."""

import sys
from pathlib import Path

# `import helpers` must work whatever pytest's --import-mode is.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)


import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _private_state_root(tmp_path_factory, monkeypatch):
    """No unit test writes under the real state root (/run/neutron-lab, where labs that are up
    keep their state): every module that holds STATE_ROOT sees a directory of the test's own.
    A plan still names /run/neutron-lab unless the test gives build_plan a state_root."""
    from lab import paths
    from lab.runtime import lifecycle, metadata
    root = tmp_path_factory.mktemp("state-root")
    for module in (paths, lifecycle, metadata):
        monkeypatch.setattr(module, "STATE_ROOT", root)
