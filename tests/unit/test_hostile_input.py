"""Hostile and broken scenario files: each is one clear problem at its file:line, never a
traceback, a hang, or a lab built from something the user did not mean (issue 9, section 2).

Each case is a mutation of test_validation's BASE (a valid scenario), so a case that were
not rejected would parse. The CLI cases check what a user sees: `lab show FILE` prints
`file:line: where: message`, exits 2, and prints no traceback.
"""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

import pytest

from helpers import line_of, parse, problems_of
from lab import cli
from lab.core.scenario import (MAX_BYTES, MAX_DEPTH, MAX_NODES, MAX_PROBLEMS, load_scenario,
                               parse_scenario)
from lab.core.scenario.includes import MAX_INCLUDES
from lab.core.scenario.ml2 import first_free
from lab.errors import ScenarioError
from test_validation import BASE, TUN, mutate, tunnel_net, with_ml2, with_network

TAG_REFUSED = "is not allowed: a scenario holds only plain strings, numbers, booleans, lists and mappings"


def one(text: str):
    problems = problems_of(text)
    assert len(problems) == 1, "expected one problem, got:\n" + "\n".join(map(str, problems))
    return problems[0]


def billion_laughs(levels: int = 9) -> str:
    lines = ['lol0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels + 1):
        lines.append(f"lol{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


# (id, text, snippet on the line the problem must point at, where, phrase in the message)
CASES = [
    ("python-object-apply", mutate("description: two", 'description: !!python/object/apply:os.system ["true"]\n'
                                   "x: two"), "!!python/object/apply", "description",
     f"YAML tag !!python/object/apply:os.system {TAG_REFUSED}"),
    ("python-name-on-a-key", mutate("name: unit\n", "name: unit\n!!python/name:os.system x: 1\n"),
     "!!python/name", "(file)", "YAML tag !!python/name:os.system is not allowed"),
    ("str-tag-on-a-value", mutate("    ip: 10.0.0.11", "    ip: !!str 10.0.0.11"), "!!str 10.0.0.11",
     "instances.vm1.ip", f"YAML tag !!str {TAG_REFUSED}"),
    ("custom-tag-on-a-list", mutate("nodes: [network1, compute1, compute2]", "nodes: !custom [network1, compute1, compute2]"),
     "!custom", "physical_networks.physnet1.nodes", f"YAML tag !custom {TAG_REFUSED}"),
    ("custom-tag-on-a-mapping", mutate("  vm1:\n", "  vm1: !custom\n"), "vm1: !custom", "instances.vm1",
     f"YAML tag !custom {TAG_REFUSED}"),
    ("custom-tag-on-a-list-item", mutate("      - crosses: physnet1", "      - !custom\n        crosses: physnet1"),
     "!custom", "checks[0].path[0]", "YAML tag !custom"),
    ("non-specific-tag", mutate("    gateway: 10.0.0.1", "    gateway: ! 10.0.0.1"), "gateway: !",
     "networks.net1.gateway", "YAML tag ! is not allowed"),
    ("set-tag", mutate("projects: [demo]", "projects: !!set {demo: null}"), "!!set", "projects", "YAML tag !!set"),
    ("binary-tag", mutate("description: two", "description: !!binary aGVsbG8=\nx: two"), "!!binary",
     "description", "YAML tag !!binary"),
    ("recursive-alias", mutate("projects: [demo]", "projects: &x [demo, *x]"), "projects: &x", "projects[1]",
     "alias *x is inside the node &x it names (a recursive alias has no end)"),
    ("recursive-alias-in-a-mapping", mutate("  vm2:\n", "  vm2: &v\n    again: *v\n"), "again: *v",
     "instances.vm2.again", "alias *v is inside the node &v it names"),
    ("alias-bomb", BASE + billion_laughs(), "lol4: &l4", "lol4[1]",
     f"holds more than {MAX_NODES} YAML nodes, each alias counted as the nodes it repeats"),
    ("nesting-1000-deep-flow", BASE + "deep: " + "[" * 1000 + "]" * 1000 + "\n", "deep: [[[", ("deep" + "[0]" * 40)[:60] + "...",
     f"nests deeper than {MAX_DEPTH} levels"),
    ("nesting-deep-block", BASE + "".join(f"{'  ' * i}d{i}:\n" for i in range(200)) + "  " * 200 + "x: 1\n",
     f"d{MAX_DEPTH - 1}:", ".".join(f"d{i}" for i in range(40))[:60] + "...",
     f"nests deeper than {MAX_DEPTH} levels"),
    ("merge-key", mutate("  vm2:\n", "  vm2:\n    <<: {node: compute2}\n"), "<<:", "instances.vm2",
     "YAML merge keys (<<) are not supported"),
    ("integer-with-5000-digits", mutate("        vlan: 101", "        vlan: " + "1" * 5000), "vlan: 111",
     "checks[0].path[0].vlan", "must be an integer, not str '" + "1" * 59 + "..."),
    ("control-character", mutate("description: two", "description: two\x07"), "description: two", "(file)",
     "not valid YAML: character U+0007 is not allowed"),
    ("duplicate-anchor", mutate("projects: [demo]", "projects: [&p demo, &p demo]"), "&p demo", "(file)",
     "not valid YAML: anchor &p is defined twice (first at line"),
    ("undefined-alias", mutate("projects: [demo]", "projects: [*nope]"), "*nope", "(file)",
     "not valid YAML: found undefined alias 'nope'"),
    ("list-as-a-key", mutate("projects: [demo]", "projects: [demo]\n? [a, b]\n: c"), "? [a, b]", "(file)",
     "a key must be a plain name, not a list or a mapping"),
]


@pytest.mark.parametrize("text, at, where, phrase", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_hostile_yaml_is_one_problem_at_its_line(text, at, where, phrase):
    p = one(text)
    assert (p.file, p.line, p.where) == ("unit.yaml", line_of(text, at), where), str(p)
    assert phrase in p.message, str(p)


def test_alias_bomb_is_refused_before_it_is_expanded():
    """10**9 'lol's from 700 bytes: refused while composing (no expansion happens), so this
    returns at once and the problem is the same every time."""
    text = BASE + billion_laughs(levels=9)
    assert len(text) < 2000
    tracemalloc.start()
    try:
        first, second = one(text), one(text)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert first == second
    assert peak < 20 * 1024 * 1024, f"peak {peak} bytes"


def test_aliases_that_stay_small_are_fine():
    text = mutate("projects: [demo]", "projects: &p [demo]\nextra: *p")
    assert [p.where for p in problems_of(text)] == ["extra"]     # only the unknown key, no refusal
    shared = mutate("    node: compute2\n", "    node: *c1\n", mutate("    node: compute1\n", "    node: &c1 compute1\n"))
    assert parse(shared).instance("vm2").node == "compute1"


def test_text_over_the_size_limit():
    text = BASE + "#" * MAX_BYTES + "\n"
    p = one(text)
    assert (p.line, p.where) == (1, "(file)")
    assert p.message == f"is larger than {MAX_BYTES // 1024} KiB; a scenario is far smaller"


def test_validation_stops_after_max_problems():
    text = BASE + "".join(f"unknown{i}: 1\n" for i in range(500))
    with pytest.raises(ScenarioError) as info:
        parse(text)
    assert len(info.value.problems) == MAX_PROBLEMS == 50
    assert str(info.value).endswith(f"\n  (stopped after {MAX_PROBLEMS} problems)")
    assert info.value.problems[0].where == "unknown0"


def test_duplicate_keys_count_towards_the_limit():
    text = mutate("projects: [demo]", "projects: [demo]\n" + "dup: 1\n" * 300)
    with pytest.raises(ScenarioError) as info:
        parse(text)
    assert len(info.value.problems) == MAX_PROBLEMS and info.value.stopped_after == MAX_PROBLEMS


def test_fewer_problems_than_the_limit_say_nothing_about_stopping():
    with pytest.raises(ScenarioError) as info:
        parse(BASE + "unknown: 1\n")
    assert info.value.stopped_after is None and "stopped after" not in str(info.value)


# --------------------------------------------------------------------------- files

def write_bytes(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def load_problems(path) -> list:
    with pytest.raises(ScenarioError) as info:
        load_scenario(str(path))
    return info.value.problems


def test_latin1_file_names_the_line_of_the_first_bad_byte(tmp_path):
    text = mutate("description: two", "description: caf\xe9 and two")
    path = write_bytes(tmp_path, "latin1.yaml", text.encode("latin-1"))
    (p,) = load_problems(path)
    line = line_of(text, "caf\xe9")
    assert (p.file, p.line, p.where) == (str(path), line, "(file)")
    assert p.message == f"is not UTF-8 text (byte 0xe9 at line {line}, column 17); save it as UTF-8"


def test_file_over_the_size_limit_is_not_read(tmp_path):
    path = write_bytes(tmp_path, "big.yaml", BASE.encode() + b"#" * MAX_BYTES)
    (p,) = load_problems(path)
    assert (p.file, p.line, p.where) == (str(path), 1, "(file)")
    assert p.message.startswith(f"is larger than {MAX_BYTES // 1024} KiB (")


def test_a_character_device_is_not_a_scenario():
    (p,) = load_problems("/dev/zero")
    assert (p.file, p.line, p.where, p.message) == ("/dev/zero", 1, "(file)",
                                                    "is a character device, not a regular file")


def test_a_directory_is_not_a_scenario(tmp_path):
    (tmp_path / "d.yaml").mkdir()
    (p,) = load_problems(tmp_path / "d.yaml")
    assert p.message == "is a directory, not a regular file"


def main_including(tmp_path: Path, target: str) -> tuple[Path, str]:
    text = mutate("name: unit\n", f"name: unit\ninclude: {target}\n")
    return write_bytes(tmp_path, "main.yaml", text.encode()), text


@pytest.mark.parametrize("make, what", [
    (lambda d: "/dev/zero", "is a character device, not a regular file"),
    (lambda d: (os.symlink("/dev/zero", d / "zero.yaml"), "zero.yaml")[1], "is a character device, not a regular file"),
    (lambda d: ((d / "adir").mkdir(), "adir")[1], "is a directory, not a regular file"),
    (lambda d: (os.mkfifo(d / "fifo.yaml"), "fifo.yaml")[1], "is a FIFO, not a regular file"),
    (lambda d: "nope.yaml", "No such file or directory"),
], ids=["dev-zero", "symlink-to-dev-zero", "directory", "fifo", "missing"])
def test_include_that_is_not_a_regular_file(tmp_path, make, what):
    target = make(tmp_path)
    path, text = main_including(tmp_path, target)
    problems = load_problems(path)
    resolved = target if target.startswith("/") else str(tmp_path / target)
    assert [(p.file, p.line, p.where, p.message) for p in problems] == [
        (str(path), line_of(text, "include:"), "include", f"cannot read {resolved}: {what}")]


def test_include_in_latin1_and_too_big(tmp_path):
    write_bytes(tmp_path, "latin.yaml", b"description: caf\xe9\n")
    write_bytes(tmp_path, "big.yaml", b"#" * (MAX_BYTES + 1))
    text = mutate("name: unit\n", "name: unit\ninclude: [latin.yaml, big.yaml]\n")
    path = write_bytes(tmp_path, "main.yaml", text.encode())
    messages = sorted(p.message for p in load_problems(path))
    assert messages == [
        f"cannot read {tmp_path / 'big.yaml'}: is larger than {MAX_BYTES // 1024} KiB ({MAX_BYTES + 1} bytes "
        "or more); a scenario is far smaller",
        f"cannot read {tmp_path / 'latin.yaml'}: is not UTF-8 text (byte 0xe9 at line 1, column 17); "
        "save it as UTF-8"]


def test_tag_inside_an_included_file_names_that_file(tmp_path):
    write_bytes(tmp_path, "frag.yaml", b"agent:\n  l2_population: !!python/object:os.system {}\n")
    path, _ = main_including(tmp_path, "frag.yaml")
    (p,) = load_problems(path)
    assert (p.file, p.line, p.where) == (str(tmp_path / "frag.yaml"), 2, "agent.l2_population")
    assert "YAML tag !!python/object:os.system is not allowed" in p.message


def test_too_many_includes(tmp_path):
    names = [f"f{i}.yaml" for i in range(MAX_INCLUDES + 1)]
    path, text = main_including(tmp_path, "[" + ", ".join(names) + "]")
    (p,) = load_problems(path)
    assert (p.line, p.where, p.message) == (line_of(text, "include:"), "include",
                                             f"names {MAX_INCLUDES + 1} files; at most {MAX_INCLUDES}")


# --------------------------------------------------------------------------- ranges

def test_tunnel_id_range_of_four_billion_is_not_expanded():
    """tunnel_id_ranges: ["1:4294967295"] once ended in MemoryError. Ids 1 and 2 are taken,
    the allocated network gets 3, and the highest id is valid."""
    text = with_ml2('  tunnel_id_ranges: ["1:4294967295"]\n', TUN)
    text = tunnel_net("net2", "gre", segmentation_id="1", text=text)
    text = tunnel_net("net3", "gre", cidr="10.3.0.0/24", segmentation_id="2", text=text)
    text = tunnel_net("net4", "gre", cidr="10.4.0.0/24", text=text)
    text = tunnel_net("net5", "gre", cidr="10.5.0.0/24", segmentation_id="4294967295", text=text)
    tracemalloc.start()
    try:
        s = parse(text)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [(n.name, n.segmentation_id) for n in s.networks] == [
        ("net1", 101), ("net2", 1), ("net3", 2), ("net4", 3), ("net5", 4294967295)]
    assert peak < 20 * 1024 * 1024, f"peak {peak} bytes"


def test_vni_range_of_sixteen_million():
    text = with_ml2('  vni_ranges: ["1:16777215"]\n', TUN)
    text = tunnel_net("net2", segmentation_id="1", text=text)
    text = tunnel_net("net3", cidr="10.3.0.0/24", text=text)
    assert [n.segmentation_id for n in parse(text).networks] == [101, 1, 2]


def test_vlan_range_of_every_vlan():
    text = mutate("vlan_ranges: ['101:199']", "vlan_ranges: ['1:4094']")
    text = with_network("net3", cidr="10.3.0.0/24", segmentation_id=None, text=with_network(segmentation_id="1", text=text))
    assert [(n.name, n.segmentation_id) for n in parse(text).networks] == [("net1", 101), ("net2", 1), ("net3", 2)]


def test_range_with_a_huge_number_is_malformed_not_a_crash():
    p = one(with_ml2('  tunnel_id_ranges: ["1:' + "9" * 5000 + '"]\n', TUN))
    assert p.where == "ml2.tunnel_id_ranges" and "is not a range like '101:199'" in p.message


@pytest.mark.parametrize("ranges, used, expected", [
    (((1, 4294967295),), set(), 1),
    (((1, 4294967295),), {1, 2, 4}, 3),
    (((9, 9), (2, 3)), {9}, 2),
    (((5, 6),), {5, 6}, None),
    (((4294967290, 4294967295),), set(range(4294967290, 4294967295)), 4294967295),
])
def test_first_free_walks_ranges_and_skips_used_ids(ranges, used, expected):
    assert first_free(ranges, used) == expected


def test_address_allocation_in_a_slash_8_pool_is_bounded():
    """A /8 with its pool at the end: the allocator starts at the pool, not at the subnet."""
    text = mutate("    cidr: 10.0.0.0/24\n    gateway: 10.0.0.1\n",
                  "    cidr: 10.0.0.0/8\n    gateway: 10.0.0.1\n    allocation_pool: 10.255.255.200-10.255.255.250\n")
    text = mutate("    ip: 10.0.0.12\n", "")
    text = mutate("    cidr: 10.0.0.0/24\n    gateway: 10.0.0.1\n",
                  "    cidr: 10.0.0.0/8\n    gateway: 10.0.0.1\n    allocation_pool: 10.255.255.200-10.255.255.250\n",
                  text)
    s = parse(text)
    assert s.network("net1").dhcp_ip == "10.255.255.200"
    assert s.instance("vm2").ip == "10.255.255.201"


# --------------------------------------------------------------------------- the CLI

CLI_CASES = [c for c in CASES if c[0] in ("python-object-apply", "str-tag-on-a-value", "custom-tag-on-a-list",
                                            "custom-tag-on-a-mapping", "recursive-alias", "alias-bomb",
                                            "nesting-1000-deep-flow")]


@pytest.mark.parametrize("text, at, where, phrase", [c[1:] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES])
def test_cli_show_prints_file_line_and_exits_2(tmp_path, capsys, text, at, where, phrase):
    path = write_bytes(tmp_path, "hostile.yaml", text.encode())
    assert cli.main(["show", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert f"  {path}:{line_of(text, at)}: {where}: " in err and phrase in err
    assert "Traceback" not in err


@pytest.mark.parametrize("name, data, message", [
    ("latin1.yaml", "name: caf\xe9\n".encode("latin-1"), "{path}:1: (file): is not UTF-8 text (byte 0xe9"),
    ("big.yaml", b"#" * (MAX_BYTES + 1), "{path}:1: (file): is larger than 256 KiB"),
    ("inc.yaml", b"name: inc\ninclude: /dev/zero\n",
     "{path}:2: include: cannot read /dev/zero: is a character device, not a regular file"),
    ("tunnels.yaml", b"ml2:\n  tunnel_id_ranges: ['1:4294967296']\n",
     "{path}:2: ml2.tunnel_id_ranges: range 1:4294967296 must satisfy 1 <= first <= last <= 4294967295"),
])
def test_cli_show_bad_files(tmp_path, capsys, name, data, message):
    path = write_bytes(tmp_path, name, data)
    assert cli.main(["show", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and message.format(path=path) in err and "Traceback" not in err


def test_cli_show_dev_zero(capsys):
    assert cli.main(["show", "/dev/zero"]) == 2
    _, err = capsys.readouterr()
    assert "/dev/zero:1: (file): is a character device, not a regular file" in err


def test_cli_show_stops_after_max_problems(tmp_path, capsys):
    path = write_bytes(tmp_path, "many.yaml", (BASE + "".join(f"k{i}: 1\n" for i in range(200))).encode())
    assert cli.main(["show", str(path)]) == 2
    _, err = capsys.readouterr()
    assert err.rstrip().endswith(f"(stopped after {MAX_PROBLEMS} problems)")
    assert err.count(f"{path}:") == MAX_PROBLEMS


def test_parse_scenario_of_a_valid_scenario_still_works():
    assert parse_scenario(BASE, "unit.yaml", default_name="unit").name == "unit"


def test_impossible_date_is_text():
    """YAML would make 2026-12-24 a date and fail on 2026-13-45: that stays what was written."""
    s = parse(mutate("description: two computes and a network node on one VLAN physical network",
                     "description: 2026-13-45"))
    assert s.description == "2026-13-45"
    text = mutate("    gateway: 10.0.0.1", "    gateway: 2026-13-45")
    p = problems_of(text)[0]
    assert (p.line, p.where, p.message) == (line_of(text, "2026-13-45"), "networks.net1.gateway",
                                             "'2026-13-45' is not an IPv4 address")


def test_a_huge_key_is_not_quoted_whole():
    text = mutate("  vm2:\n", "  ? " + "v" * 100_000 + "\n  : {node: compute2, network: net1}\n  vm2:\n")
    problems = problems_of(text)
    assert problems and all(len(p.where) <= 103 and len(p.message) <= 603 for p in problems)
    assert problems[0].where.startswith("instances.vvvv") and problems[0].where.endswith("...")
