"""Read YAML while remembering the line of every mapping key and sequence item, and refuse
YAML that is hostile or just not a scenario.

PyYAML's safe loader forgets where things came from and silently keeps the last of two
duplicate keys. Scenario errors must say file:line, and duplicate keys are errors, so we
compose the node graph ourselves and build plain containers that also carry line numbers.
The events come from libyaml's scanner and parser when PyYAML has it (`FastGuardedLoader`, 7
times faster than PyYAML's pure-Python reader); a text it refuses is read again by the pure
Python one (`GuardedLoader`), so every problem is worded as PyYAML words it.

``GuardedLoader`` composes with limits, so every one of these is one problem at its line
instead of a traceback, a hang or a lab built from something the user did not mean:

- any explicit tag (``!!python/object/apply:os.system``, ``!!str``, ``!custom``): a scenario
  holds only what YAML's implicit typing gives (strings, numbers, booleans, null, lists,
  mappings);
- an alias inside the node it names (``a: &x [*x]``), which has no finite value;
- more than ``MAX_NODES`` nodes once aliases are expanded (the "billion laughs" alias bomb
  expands to 10**9 nodes from a few hundred bytes); counted while composing, before anything
  is expanded;
- nesting deeper than ``MAX_DEPTH``;
- text longer than ``MAX_BYTES``, and characters YAML does not allow.
"""

from __future__ import annotations

from typing import Any

import yaml

from lab.errors import Problem

try:
    from yaml._yaml import CParser as _CParser     # libyaml's scanner and parser
except ImportError:
    _CParser = None

MAX_BYTES = 256 * 1024      # the largest built-in scenario is 4 KiB
MAX_NODES = 20_000          # after alias expansion; the largest built-in scenario has 280
MAX_DEPTH = 32              # a scenario nests 6 deep (checks[].path[].crosses)

YAML_TAG = "tag:yaml.org,2002:"
MERGE_TAG = YAML_TAG + "merge"
VALUE_TAG = YAML_TAG + "value"


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


class Refused(yaml.MarkedYAMLError):
    """YAML that parses but that a scenario may not hold (a tag, a recursive alias, too much)."""

    def __init__(self, message: str, mark, where: str):
        super().__init__(problem=message, problem_mark=mark)
        self.where = where


def _shown_tag(tag: str) -> str:
    return "!!" + tag[len(YAML_TAG):] if tag.startswith(YAML_TAG) else tag


class _Guards:
    """Composing with the limits above (see the module docstring), over a loader's events."""

    def _start_guards(self) -> None:
        self._depth = 0
        self._expanded = 0                  # nodes so far, each alias counting what it repeats
        self._sizes: dict[str, int] = {}    # anchor -> expanded size of its node
        self._open: set[str] = set()        # anchors whose node is being composed
        self._path: list[str] = []

    def _where(self) -> str:
        where = ".".join(p for p in self._path if p).replace(".[", "[") or "(file)"
        return where if len(where) <= 60 else where[:60] + "..."

    def _count(self, amount: int, mark) -> None:
        self._expanded += amount
        if self._expanded > MAX_NODES:
            raise Refused(f"holds more than {MAX_NODES} YAML nodes, each alias counted as the nodes it "
                          "repeats (a scenario has a few hundred; an alias bomb has billions)", mark,
                          self._where())

    def compose_node(self, parent, index):
        if isinstance(index, yaml.ScalarNode):
            step = str(index.value)
        else:
            step = f"[{index}]" if isinstance(index, int) else ""
        self._path.append(step)
        try:
            event = self.peek_event()
            if isinstance(event, yaml.AliasEvent):
                return self._alias(event, parent, index)
            return self._guarded(event, parent, index)
        finally:
            self._path.pop()

    def _alias(self, event, parent, index):
        if event.anchor in self._open:
            raise Refused(f"alias *{event.anchor} is inside the node &{event.anchor} it names "
                          "(a recursive alias has no end)", event.start_mark, self._where())
        node = super().compose_node(parent, index)      # an undefined alias is a ComposerError
        self._count(self._sizes.get(event.anchor, 1), event.start_mark)
        return node

    def _guarded(self, event, parent, index):
        if event.tag is not None:
            raise Refused(f"YAML tag {_shown_tag(event.tag)} is not allowed: a scenario holds only "
                          "plain strings, numbers, booleans, lists and mappings", event.start_mark,
                          self._where())
        if self._depth >= MAX_DEPTH:
            raise Refused(f"nests deeper than {MAX_DEPTH} levels; a scenario needs 6",
                          event.start_mark, self._where())
        before = self._expanded
        self._count(1, event.start_mark)
        anchor = event.anchor
        if anchor is not None:
            self._open.add(anchor)
        self._depth += 1
        node = super().compose_node(parent, index)
        self._depth -= 1
        if anchor is not None:
            self._open.discard(anchor)
            self._sizes[anchor] = self._expanded - before
        return node


class GuardedLoader(_Guards, yaml.SafeLoader):
    """PyYAML's safe loader (pure Python), composing with the limits."""

    def __init__(self, text: str):
        super().__init__(text)
        self._start_guards()


if _CParser is not None:
    class FastGuardedLoader(_Guards, yaml.composer.Composer, _CParser, yaml.resolver.Resolver):
        """The same composer and limits over libyaml's scanner and parser (7 times faster; the
        same events, lines and values for every file that reads, tests/unit/test_yaml_fast.py)."""

        def __init__(self, text: str):
            _CParser.__init__(self, text)
            yaml.composer.Composer.__init__(self)
            yaml.resolver.Resolver.__init__(self)
            self._start_guards()
else:       # PyYAML built without libyaml
    FastGuardedLoader = None


def compose(text: str, filename: str) -> tuple[yaml.Node | None, list[Problem]]:
    """The node graph of TEXT, or the one problem that stops reading it. Read with libyaml
    when there is one; a text it refuses, for whatever reason, is read again by PyYAML's own
    reader, so every problem is said exactly as PyYAML and the limits say it."""
    if len(text) > MAX_BYTES:
        return None, [Problem(filename, 1, "(file)", f"is larger than {MAX_BYTES // 1024} KiB; "
                                                     "a scenario is far smaller")]
    node = _compose_quickly(text) if FastGuardedLoader is not None else None
    if node is not None:
        return node, []
    return _compose_slowly(text, filename)


def _compose_quickly(text: str) -> yaml.Node | None:
    """TEXT's node graph read by libyaml; None when it refuses it (or the text is empty)."""
    try:
        loader = FastGuardedLoader(text)
    except (yaml.YAMLError, ValueError):
        return None
    try:
        return loader.get_single_node()
    except (yaml.YAMLError, ValueError):
        return None                     # said again by PyYAML's reader, in its words
    finally:
        loader.dispose()


def _compose_slowly(text: str, filename: str) -> tuple[yaml.Node | None, list[Problem]]:
    loader = None
    try:
        loader = GuardedLoader(text)    # the reader checks every character here
        return loader.get_single_node(), []
    except Refused as exc:
        return None, [Problem(filename, exc.problem_mark.line + 1, exc.where, exc.problem)]
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        return None, [Problem(filename, line, "(file)", f"not valid YAML: character U+{exc.character:04X} "
                                                        "is not allowed (control characters never are)")]
    except yaml.YAMLError as exc:
        return None, [_syntax_problem(exc, filename)]
    finally:
        if loader is not None:
            loader.dispose()


def _syntax_problem(exc: yaml.YAMLError, filename: str) -> Problem:
    mark = getattr(exc, "problem_mark", None)
    line = mark.line + 1 if mark else 1
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None) or ""
    if context.startswith("found duplicate anchor"):
        first = exc.context_mark.line + 1
        problem = f"anchor &{context.split(chr(39))[1]} is defined twice (first at line {first})"
    return Problem(filename, line, "(file)", f"not valid YAML: {problem}")


class _Builder:
    """Plain containers with lines from a composed (bounded, acyclic) node graph."""

    def __init__(self, filename: str):
        self.filename = filename
        self.problems: list[Problem] = []
        self.constructor = yaml.SafeLoader("")

    def line(self, n: yaml.Node) -> SourceLine:
        return SourceLine(n.start_mark.line + 1, self.filename)

    def build(self, n: yaml.Node, path: str) -> Any:
        if isinstance(n, yaml.MappingNode):
            return self.mapping(n, path)
        if isinstance(n, yaml.SequenceNode):
            lst = LineList()
            lst.line = self.line(n)
            for i, item in enumerate(n.value):
                lst.item_lines.append(self.line(item))
                lst.append(self.build(item, f"{path.rstrip('.')}[{i}]."))
            return lst
        return self.scalar(n, path.rstrip(".") or "(file)")

    def mapping(self, n: yaml.MappingNode, path: str) -> LineDict:
        d = LineDict()
        d.line = self.line(n)
        d.key_lines = {}
        for knode, vnode in n.value:
            kline = self.line(knode)
            key = self.key(knode, path)
            if key is None:
                continue
            if key in d:
                self.problems.append(Problem(self.filename, kline, f"{path}{key}",
                                             f"duplicate key (first at line {d.key_lines[key]})"))
                continue
            d.key_lines[key] = kline
            d[key] = self.build(vnode, f"{path}{key}.")
        return d

    def key(self, knode: yaml.Node, path: str) -> str | None:
        where = path.rstrip(".") or "(file)"
        if not isinstance(knode, yaml.ScalarNode):
            self.problems.append(Problem(self.filename, self.line(knode), where,
                                         "a key must be a plain name, not a list or a mapping"))
            return None
        if knode.tag == MERGE_TAG:
            self.problems.append(Problem(self.filename, self.line(knode), where,
                                         "YAML merge keys (<<) are not supported: write the keys "
                                         "out, or share a fragment with include"))
            return None
        key = self.scalar(knode, where)
        return key if isinstance(key, str) else str(key)

    def scalar(self, n: yaml.ScalarNode, where: str) -> Any:
        """The value YAML's implicit typing gives, or the text itself where that fails (an
        impossible date like 2026-13-45, an integer of 5000 digits): a string the
        validators then judge like any other."""
        if n.tag == VALUE_TAG:
            return n.value
        try:
            return self.constructor.construct_object(n, deep=True)
        except (yaml.YAMLError, ValueError, OverflowError):
            return n.value


def load_yaml(text: str, filename: str) -> tuple[Any, list[Problem]]:
    """Return (data, problems). Syntax errors, refused YAML and duplicate keys are problems;
    data is None when the text could not be read at all."""
    node, problems = compose(text, filename)
    if node is None:
        return None, problems
    builder = _Builder(filename)
    data = builder.build(node, "")
    return data, builder.problems
