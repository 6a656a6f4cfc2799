"""The layout is the pipeline: lab/core (pure) imports nothing from lab/runtime or lab/tools and
nothing that touches the system; lab/runtime imports nothing from lab/tools."""

import ast
from pathlib import Path

import pytest

LAB = Path(__file__).resolve().parents[2] / "lab"
SYSTEM_MODULES = {"subprocess", "pyroute2", "ovs", "socket", "ctypes", "fcntl", "signal", "threading"}


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


def _modules(package: str) -> list[Path]:
    return sorted((LAB / package).rglob("*.py"))


@pytest.mark.parametrize("path", _modules("core"), ids=lambda p: str(p.relative_to(LAB)))
def test_core_is_pure(path):
    imports = _imports(path)
    bad = {i for i in imports if i.startswith(("lab.runtime", "lab.tools", "lab.cli", "lab.api"))}
    bad |= {i for i in imports if i.split(".")[0] in SYSTEM_MODULES}
    assert not bad, f"{path.relative_to(LAB)} imports {sorted(bad)}"


@pytest.mark.parametrize("path", _modules("runtime"), ids=lambda p: str(p.relative_to(LAB)))
def test_runtime_does_not_import_tools(path):
    bad = {i for i in _imports(path) if i.startswith(("lab.tools", "lab.cli"))}
    assert not bad, f"{path.relative_to(LAB)} imports {sorted(bad)}"
