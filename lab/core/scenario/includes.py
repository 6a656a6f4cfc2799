"""`include: FILE` (or a list): fragments shared by several scenarios, e.g. the logical
topology of the classic scenarios. Paths are relative to the including file; a fragment may
not set `name` or include other files; at most ``MAX_INCLUDES`` files."""

from __future__ import annotations

from pathlib import Path

from lab.core.scenario.checker import Checker
from lab.core.scenario.loader import Unreadable, read_source
from lab.core.scenario.yamlsource import LineDict, LineList, load_yaml
from lab.errors import Problem

MAX_INCLUDES = 8


def include(c: Checker, data: LineDict, filename: str) -> None:
    """Merge every fragment DATA includes into DATA."""
    raw = data.get("include")
    if raw is None:
        return
    names = [raw] if isinstance(raw, str) else raw
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        c.add(data.line_of("include"), "include", "must be a file name or a list of them")
        return
    if len(names) > MAX_INCLUDES:
        c.add(data.line_of("include"), "include", f"names {len(names)} files; at most {MAX_INCLUDES}")
        return
    base = Path(filename).parent
    for i, name in enumerate(names):
        line = data.line_of("include") if isinstance(raw, str) else raw.line_of(i)
        fragment = _fragment(c, base / name, line)
        if fragment is not None:
            merge_included(data, fragment, c)
            c.included = True


def _fragment(c: Checker, path: Path, line: int) -> LineDict | None:
    """The included file at PATH, read and checked; problems about it are reported at LINE
    (the include) or inside it."""
    try:
        text = read_source(path)
    except Unreadable as exc:
        c.add(line, "include", f"cannot read {path}: {exc.reason}")
        return None
    fragment, problems = load_yaml(text, str(path))
    c.extend(problems)
    if fragment is None:
        return None
    if not isinstance(fragment, LineDict):
        c.add(line, "include", f"{path} must hold a mapping")
        return None
    if "include" in fragment or "name" in fragment:
        c.add(fragment.line_of("include" if "include" in fragment else "name"), "include",
              f"{path} is a fragment: it may not set name or include other files")
        return None
    return fragment


def merge_included(main: LineDict, included: LineDict, c: Checker | list[Problem]) -> None:
    """Fold an included scenario fragment into MAIN: sections the main file lacks are taken
    whole, named entries of mapping sections are added (a name in both is a problem), lists
    are concatenated (the fragment's first), and the main file's scalars win. C: the checker
    (or a plain list) that collects problems."""
    report = c.record if isinstance(c, Checker) else c.append
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
                    report(Problem(getattr(here, "file", "?"), int(here), f"{key}.{name}",
                                   f"is also defined in {kline.file}:{int(value.line_of(name))}"))
                    continue
                ours[name] = body
                ours.key_lines[name] = value.line_of(name)
        elif isinstance(ours, LineList) and isinstance(value, LineList):
            merged = LineList(list(value) + list(ours))
            merged.line = value.line
            merged.item_lines = list(value.item_lines) + list(ours.item_lines)
            main[key] = merged
