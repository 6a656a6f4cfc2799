"""Load YAML while remembering the line of every mapping key and sequence item.

PyYAML's safe loader forgets where things came from and silently keeps the last of two
duplicate keys. Scenario errors must say file:line, and duplicate keys are errors, so we
compose the node graph ourselves and build plain containers that also carry line numbers.
"""

from __future__ import annotations

from typing import Any

import yaml

from lab.errors import Problem


class SourceLine(int):
    """A 1-based line number that also knows its file (scenarios can include other files)."""

    file: str

    def __new__(cls, value: int, file: str) -> "SourceLine":
        obj = super().__new__(cls, value)
        obj.file = file
        return obj

    def __reduce__(self):   # copy/deepcopy/pickle (dataclasses.asdict deep-copies fields)
        return (SourceLine, (int(self), self.file))


class LineDict(dict):
    """A dict that knows the line of each key (1-based) and of itself."""

    line: int = 0
    key_lines: dict

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, self.line)


class LineList(list):
    line: int = 0
    item_lines: list

    def __init__(self, *args):
        super().__init__(*args)
        self.item_lines = []

    def line_of(self, index: int) -> int:
        return self.item_lines[index] if index < len(self.item_lines) else self.line


def load_yaml(text: str, filename: str) -> tuple[Any, list[Problem]]:
    """Return (data, problems). Syntax errors and duplicate keys become problems."""
    problems: list[Problem] = []
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        problems.append(Problem(filename, line, "(file)", f"not valid YAML: {getattr(exc, 'problem', exc)}"))
        return None, problems
    if node is None:
        return None, problems
    constructor = yaml.SafeLoader("")

    def build(n: yaml.Node, path: str) -> Any:
        line = SourceLine(n.start_mark.line + 1, filename)
        if isinstance(n, yaml.MappingNode):
            d = LineDict()
            d.line = line
            d.key_lines = {}
            for knode, vnode in n.value:
                key = constructor.construct_object(knode, deep=True)
                if not isinstance(key, str):
                    key = str(key)
                kline = SourceLine(knode.start_mark.line + 1, filename)
                if key in d:
                    problems.append(Problem(filename, kline, f"{path}{key}",
                                            f"duplicate key (first at line {d.key_lines[key]})"))
                    continue
                d.key_lines[key] = kline
                d[key] = build(vnode, f"{path}{key}.")
            return d
        if isinstance(n, yaml.SequenceNode):
            lst = LineList()
            lst.line = line
            lst.item_lines = []
            for i, item in enumerate(n.value):
                lst.item_lines.append(SourceLine(item.start_mark.line + 1, filename))
                lst.append(build(item, f"{path.rstrip('.')}[{i}]."))
            return lst
        return constructor.construct_object(n, deep=True)

    return build(node, ""), problems


def merge_included(main: LineDict, included: LineDict, problems: list[Problem]) -> None:
    """Fold an included scenario fragment into MAIN: sections the main file lacks are taken
    whole, named entries of mapping sections are added (a name in both is a problem), lists
    are concatenated (the fragment's first), and the main file's scalars win."""
    for key, value in included.items():
        kline = included.line_of(key)
        if key not in main:
            main[key] = value
            main.key_lines[key] = kline
            continue
        ours = main[key]
        if isinstance(ours, LineDict) and isinstance(value, LineDict):
            for name, body in value.items():
                if name in ours:
                    here = ours.line_of(name)
                    problems.append(Problem(getattr(here, "file", "?"), int(here), f"{key}.{name}",
                                            f"is also defined in {kline.file}:{int(value.line_of(name))}"))
                    continue
                ours[name] = body
                ours.key_lines[name] = value.line_of(name)
        elif isinstance(ours, LineList) and isinstance(value, LineList):
            merged = LineList(list(value) + list(ours))
            merged.line = value.line
            merged.item_lines = list(value.item_lines) + list(ours.item_lines)
            main[key] = merged
