"""Scenarios are read with libyaml's scanner and parser under the lab's own composer and
limits (lab/core/scenario/yamlsource.py `FastGuardedLoader`); a text libyaml refuses is read
again by PyYAML's pure-Python reader, so problems are said as before. Here: both readers give
the same node graph (tags, values, styles, lines) for every YAML file of the repository and
for texts that use YAML's corners, and every refused text gets PyYAML's words."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lab.core.scenario import yamlsource
from lab.core.scenario.yamlsource import GuardedLoader, compose

pytestmark = pytest.mark.skipif(yamlsource.FastGuardedLoader is None, reason="PyYAML without libyaml")

REPO = Path(__file__).resolve().parents[2]
FILES = sorted(p for d in ("scenarios", "tests") for p in (REPO / d).rglob("*.y*ml"))

CORNERS = {
    "flow": "a: {b: [1, 2, {c: d}], 'e f': \"g\\th\"}\n",
    "block scalars": "a: |\n  one\n  two\nb: >-\n  folded\n  text\n\nc: |+\n  kept\n\n",
    "multi-line plain": "a: this is\n  one plain\n  scalar\nb: x\n",
    "anchors": "a: &x {p: 1}\nb: *x\nc: [&y 2, *y]\n",
    "explicit key": "? a\n: 1\n? [x, y]\n: 2\n",
    "documents": "%YAML 1.1\n---\na: 1\n...\n",
    "implicit types": "a: [~, null, yes, No, on, 0x1F, 0o17, 017, 1_000, 1.5e3, .inf, -.NaN, 2026-12-06, "
                      "2026-12-06 20:00:00, '12', 12:30:00, 190:20:30]\n",
    "colons": "a: http://x/y\nb: [a:b, 'c:d']\nc: 'x: y'\n",
    "comments": "# top\na: 1 # after\n# between\nb:\n  # inside\n  - 2\n",
    "unicode": "a: café ☃ 𝄞\n\"b\\u00e9\": '\\x'\n",
    "empty": "a:\nb: ''\nc: []\nd: {}\n",
    "nested sequences": "- - - a\n    - b\n  - c\n- d\n",
    "crlf": "a: 1\r\nb:\r\n  - 2\r\n",
    "tabs in values": "a: 'x\ty'\nb: \"\\t\"\n",
    "bom": "\ufeffa: 1\n",
    "only a comment": "# nothing\n",
    "merge key": "a: &x {p: 1}\nb:\n  <<: *x\n",
}

REFUSED = {
    "tag": "a: !!python/object:os.system {}\n",
    "recursive alias": "a: &x [*x]\n",
    "undefined alias": "a: *nope\n",
    "duplicate anchor": "a: &p 1\nb: &p 2\n",
    "control character": "a: b\x07\n",
    "unclosed flow": "a: [1, 2\n",
    "bad indentation": "a:\n  b: 1\n c: 2\n",
    "two documents": "a: 1\n---\nb: 2\n",
    "tab indentation": "a:\n\tb: 1\n",
    "mapping in plain": "a: b: c\n",
}


def _shape(node):
    """A node graph as plain data: tag, value, style and line of every node."""
    if node is None:
        return None
    if isinstance(node, yaml.ScalarNode):
        return ("scalar", node.tag, node.value, node.style or None, node.start_mark.line)   # plain: None or ""
    if isinstance(node, yaml.SequenceNode):
        return ("seq", node.tag, node.start_mark.line, [_shape(n) for n in node.value])
    return ("map", node.tag, node.start_mark.line, [(_shape(k), _shape(v)) for k, v in node.value])


def _read(loader_class, text):
    """The shape of TEXT's node graph, or the exception type that refused it."""
    try:
        loader = loader_class(text)     # PyYAML's reader checks every character here
    except yaml.YAMLError as exc:
        return type(exc)
    try:
        return _shape(loader.get_single_node())
    except yaml.YAMLError as exc:
        return type(exc)
    finally:
        loader.dispose()


def _both(text):
    return _read(yamlsource.FastGuardedLoader, text), _read(GuardedLoader, text)


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_yaml_file_reads_the_same(path):
    """Or libyaml refuses it too (then PyYAML says why: the golden error files)."""
    fast, slow = _both(path.read_text())
    assert fast == slow or (isinstance(fast, type) and isinstance(slow, type))


@pytest.mark.parametrize("text", CORNERS.values(), ids=CORNERS.keys())
def test_yamls_corners_read_the_same(text):
    fast, slow = _both(text)
    assert fast == slow


@pytest.mark.parametrize("text", REFUSED.values(), ids=REFUSED.keys())
def test_a_refused_text_is_said_in_pyyamls_words(text):
    """Both refuse it; compose's problem is the one PyYAML's reader and the limits give."""
    assert all(isinstance(r, type) for r in _both(text))
    node, problems = compose(text, "f.yaml")
    assert node is None and len(problems) == 1
    assert problems == yamlsource._compose_slowly(text, "f.yaml")[1]


def test_a_text_that_reads_is_read_by_libyaml_only(monkeypatch):
    def slow(*args):
        raise AssertionError("read by PyYAML's reader")
    monkeypatch.setattr(yamlsource, "_compose_slowly", slow)
    node, problems = compose((REPO / "scenarios" / "classic-vlan.yaml").read_text(), "classic-vlan.yaml")
    assert problems == [] and isinstance(node, yaml.MappingNode)
