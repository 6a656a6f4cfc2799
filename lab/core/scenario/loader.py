"""Finding and reading scenario files, refusing what is not one: anything but a regular file
(``/dev/zero``, a FIFO, a directory), a file over ``MAX_BYTES`` and text that is not UTF-8.
The file is checked before it is read and read at most ``MAX_BYTES`` + 1 bytes, so
``include: /dev/zero`` or a file that grows while it is read cannot exhaust memory."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from lab.core.scenario.yamlsource import MAX_BYTES
from lab.errors import ScenarioNotFound

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"))


class Unreadable(Exception):
    """A scenario file that cannot be read as one: REASON, at LINE of that file."""

    def __init__(self, reason: str, line: int = 1):
        super().__init__(reason)
        self.reason = reason
        self.line = line


def scenarios_dir() -> Path:
    from lab.paths import data_dir
    return data_dir("scenarios")


def builtin_scenarios() -> list[Path]:
    return sorted(scenarios_dir().glob("*.yaml"))


def find_scenario(name_or_path: str) -> Path:
    """A built-in scenario name (``classic-vlan``) or a path to a YAML file."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or "/" in name_or_path:
        if not path.exists():
            raise ScenarioNotFound(f"no scenario file at {path}")
        return path     # read_source says what is wrong with one that is not a regular file
    candidate = scenarios_dir() / f"{name_or_path}.yaml"
    if candidate.is_file():
        return candidate
    known = ", ".join(p.stem for p in builtin_scenarios()) or "none"
    raise ScenarioNotFound(f"no scenario named {name_or_path!r} (built-in: {known}); "
                           "give a path to a .yaml file to use your own")


def _regular(mode: int) -> None:
    if stat.S_ISREG(mode):
        return
    what = next((name for test, name in _KINDS if test(mode)), "not a file")
    raise Unreadable(f"is {what}, not a regular file")


def _too_big(size: int) -> Unreadable:
    return Unreadable(f"is larger than {MAX_BYTES // 1024} KiB ({size} bytes or more); "
                      "a scenario is far smaller")


def read_source(path: Path) -> str:
    """The text of the scenario file at PATH, or Unreadable saying why not."""
    try:
        _regular(os.stat(path).st_mode)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)   # never blocks, even if it became a FIFO
    except OSError as exc:
        raise Unreadable(exc.strerror or str(exc)) from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        _regular(st.st_mode)
        if st.st_size > MAX_BYTES:
            raise _too_big(st.st_size)
        data = f.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise _too_big(len(data))
    return decode(data)


def decode(data: bytes) -> str:
    """DATA as UTF-8, or Unreadable at the line of the first byte that is not."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise Unreadable(f"is not UTF-8 text (byte 0x{data[exc.start]:02x} at line {line}, column {column}); "
                         "save it as UTF-8", line) from None
