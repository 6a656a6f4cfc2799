"""Unit tests: pure and fast (no root, no namespaces, no Open vSwitch)."""

import sys
from pathlib import Path

# `import helpers` must work whatever pytest's --import-mode is.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
