"""The checker every section validator reports through, and small helpers they share.

``Checker.add`` records a problem at a line (a ``SourceLine`` knows its file, so problems in
included files name that file). After ``MAX_PROBLEMS`` it raises ``TooManyProblems``: a file
with thousands of mistakes gets the first fifty, fast.
"""

from __future__ import annotations

import re
from typing import Any

from lab.core import naming
from lab.core.scenario.model import NAME_RE
from lab.core.scenario.yamlsource import LineDict
from lab.errors import Problem

MAX_PROBLEMS = 50
MAX_WHERE = 100        # characters of a problem's dotted path
MAX_MESSAGE = 600      # characters of a problem's message


class TooManyProblems(Exception):
    """Raised by Checker.add when MAX_PROBLEMS are collected; parse_scenario stops there."""


class Checker:
    """Collects problems; every accessor reports with the line of what it looked at."""

    def __init__(self, filename: str):
        self.filename = filename
        self.problems: list[Problem] = []
        self.included = False

    def at(self, line: int) -> str:
        """How a message refers to another line: 'line N', or 'FILE:N' once files are included
        (the message may stand in one file and refer to the other)."""
        if not self.included:
            return f"line {int(line)}"
        return f"{getattr(line, 'file', self.filename)}:{int(line)}"

    def add(self, line: int, where: str, message: str) -> None:
        # lines from an included file know their file (SourceLine); a 200 KiB key is not
        # quoted whole
        where = where if len(where) <= MAX_WHERE else where[:MAX_WHERE] + "..."
        message = message if len(message) <= MAX_MESSAGE else message[:MAX_MESSAGE] + "..."
        self.record(Problem(getattr(line, "file", self.filename), int(line), where, message))

    def record(self, problem: Problem) -> None:
        self.problems.append(problem)
        if len(self.problems) >= MAX_PROBLEMS:
            raise TooManyProblems()

    def extend(self, problems: list[Problem]) -> None:
        for problem in problems:
            self.record(problem)

    def mapping(self, parent: LineDict, key: str, where: str, required: bool = False) -> LineDict | None:
        value = parent.get(key)
        if value is None:
            if required:
                self.add(parent.line_of(key), where, "is required")
            return None
        if not isinstance(value, LineDict):
            self.add(parent.line_of(key), where, f"must be a mapping, not {kind(value)}")
            return None
        return value

    def known_keys(self, d: LineDict, allowed: tuple[str, ...], where: str) -> None:
        for key in d:
            if key not in allowed:
                self.add(d.line_of(key), f"{where}.{key}" if where else key,
                         f"unknown key (expected one of: {', '.join(allowed)})")

    def name(self, name: str, line: int, where: str, maxlen: int) -> bool:
        if not NAME_RE.match(name):
            self.add(line, where, f"name {shown(name)} must start with a lowercase letter and hold only "
                                  "lowercase letters, digits and '-'")
            return False
        if len(name) > maxlen:
            self.add(line, where, f"name {shown(name)} is {len(name)} characters; at most {maxlen} "
                                  f"(it becomes a Linux interface name, {naming.IFNAMSIZ} max)")
            return False
        return True

    def string(self, d: LineDict, key: str, where: str, required: bool = True,
               choices: tuple[str, ...] | None = None) -> str | None:
        value = d.get(key)
        if value is None:
            if required:
                self.add(d.line_of(key), where, "is required")
            return None
        if not isinstance(value, str):
            self.add(d.line_of(key), where, f"must be a string, not {kind(value)}")
            return None
        if choices and value not in choices:
            self.add(d.line_of(key), where, f"{value!r} is not one of: {', '.join(choices)}")
            return None
        return value

    def project(self, d: LineDict, where: str, projects: list[str]) -> str | None:
        """The required 'project' key, naming one of the scenario's projects."""
        project = self.string(d, "project", where)
        if project is not None and project not in projects:
            self.add(d.line_of("project"), where, f"unknown project {project!r}")
            return None
        return project

    def mac(self, d: LineDict, where: str) -> str | None:
        """An optional unicast MAC address under key 'mac'."""
        if "mac" not in d:
            return None
        mac = str(d["mac"]).lower()
        if not re.fullmatch(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}", mac):
            self.add(d.line_of("mac"), where, f"{d['mac']!r} is not a MAC address")
            return None
        if int(mac[:2], 16) & 1:
            self.add(d.line_of("mac"), where, f"{mac} is a multicast address")
            return None
        return mac

    def boolean(self, d: LineDict, key: str, where: str, default: bool) -> bool:
        value = d.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.add(d.line_of(key), where, f"must be true or false, not {kind(value)}")
            return default
        return value

    def integer(self, d: LineDict, key: str, where: str, required: bool = True) -> int | None:
        value = d.get(key)
        if value is None:
            if required:
                self.add(d.line_of(key), where, "is required")
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.add(d.line_of(key), where, f"must be an integer, not {kind(value)}")
            return None
        return value


def kind(value: Any) -> str:
    """How a message names a value of the wrong type."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "empty"
    return f"{type(value).__name__} {shown(value)}"


def shown(value: Any, limit: int = 60) -> str:
    """repr(VALUE) for a message, cut short: a message never quotes a whole file."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def items(c: Checker, root: LineDict, key: str, required: bool = True) -> list[tuple[str, LineDict, int]]:
    """(name, body, line) for each entry of a top-level mapping section."""
    section = c.mapping(root, key, key, required=required)
    if section is None:
        return []
    out = []
    for name, body in section.items():
        line = section.line_of(name)
        if body is None:
            body = empty_at(line)
        if not isinstance(body, LineDict):
            c.add(line, f"{key}.{name}", f"must be a mapping, not {kind(body)}")
            continue
        out.append((str(name), body, line))
    return out


def empty_at(line: int) -> LineDict:
    """An empty mapping that reports its keys as missing at LINE."""
    body = LineDict()
    body.line, body.key_lines = line, {}
    return body


class Claims:
    """The one name space of exec targets: nodes, instances, physical networks, routers,
    external hosts and DHCP servers (<network>-dhcp)."""

    def __init__(self, c: Checker):
        self.c = c
        self.targets: dict[str, tuple[str, int]] = {}   # name -> (kind, line)

    def __call__(self, what: str, name: str, line: int, where: str) -> None:
        if name in self.targets:
            other, oline = self.targets[name]
            self.c.add(line, where, f"name {name!r} is already used by {other} at {self.c.at(oline)}; "
                                    "nodes, instances, physical networks, routers, external hosts and "
                                    "DHCP servers (<network>-dhcp) share one name space")
        else:
            self.targets[name] = (what, line)

    def of_kind(self, what: str) -> set[str]:
        return {name for name, (k, _) in self.targets.items() if k == what}
