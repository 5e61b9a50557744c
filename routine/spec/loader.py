"""Reading routine files: safe YAML with the line and column of every node.

``load_routine`` reads YAML safely (no object construction) and keeps the line
and column of every node, so that every problem — YAML syntax, a duplicate key,
a field the format does not know — is reported where it is, all at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ..errors import Problem, SpecError
from .format import Routine

__all__ = ["SourceMap", "LoadedRoutine", "load_routine", "load_routine_text"]


@dataclass
class SourceMap:
    """Line/column (1-based) of every mapping key and value, by path."""

    file: str
    positions: dict[tuple[Any, ...], tuple[int, int]] = field(default_factory=dict)

    def locate(self, path: tuple[Any, ...]) -> tuple[int, int]:
        """Position of ``path`` or of its nearest known ancestor."""
        path = tuple(path)
        while path:
            if path in self.positions:
                return self.positions[path]
            path = path[:-1]
        return self.positions.get((), (1, 1))


@dataclass
class LoadedRoutine:
    """A routine with where it came from."""

    routine: Routine
    source: SourceMap
    path: Path | None = None


def _walk_nodes(node: yaml.Node, path: tuple[Any, ...], smap: SourceMap,
                dupes: list[tuple[tuple[Any, ...], str]]) -> None:
    smap.positions.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = key_node.value
            child = (*path, key)
            if key in seen:
                dupes.append((child, key))
            seen.add(key)
            smap.positions[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            _walk_nodes(value_node, child, smap, dupes)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk_nodes(item, (*path, index), smap, dupes)


def load_routine_text(text: str, file: str = "<string>") -> LoadedRoutine:
    """Parse and type-check a routine from YAML text; raise SpecError with every problem."""
    smap = SourceMap(file)
    dupes: list[tuple[tuple[Any, ...], str]] = []
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            if node is not None:  # positions first: construction rewrites merge keys in place
                _walk_nodes(node, (), smap, dupes)
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise SpecError([Problem(file, line, col, f"YAML syntax: {exc.problem or exc}",
                                 "valid YAML")]) from None
    if not isinstance(data, dict):
        raise SpecError([Problem(file, 1, 1, "the file is not a YAML mapping",
                                 "a mapping with name, description, inputs and steps")])
    problems = [Problem(file, *smap.locate(p), f"duplicate key {k!r}", "each key once")
                for p, k in dupes]
    try:
        routine = Routine.model_validate(data)
    except ValidationError as exc:
        problems += [_problem_from_error(err, smap, data)
                     for err in exc.errors(include_url=False)]
        raise SpecError(problems) from None
    if problems:
        raise SpecError(problems)
    return LoadedRoutine(routine, smap)


def load_routine(path: str | Path) -> LoadedRoutine:
    """Load a routine file (see :func:`load_routine_text`)."""
    path = Path(path)
    loaded = load_routine_text(path.read_text(encoding="utf-8"), str(path))
    loaded.path = path
    return loaded


_FRIENDLY_EXPECTED = {
    "extra_forbidden": "one of the documented keys (see routines/routine.schema.json)",
    "missing": "this field to be present",
}


def _data_path(loc: tuple[Any, ...], data: Any) -> tuple[Any, ...]:
    """pydantic's error location with its union-member tags (``str``, ``ToolsetSource``...)
    removed: keep the parts that exist in the data, and the last part (a missing key)."""
    kept: list[Any] = []
    current = data
    for index, part in enumerate(loc):
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            current = current[part]
        elif index != len(loc) - 1:
            continue  # a tag pydantic adds, not a place in the file
        kept.append(part)
    return tuple(kept)


def _problem_from_error(err: Any, smap: SourceMap, data: Any) -> Any:
    loc = _data_path(tuple(err["loc"]), data)
    line, col = smap.locate(loc)
    where = ".".join(str(p) for p in loc) or "(top level)"
    if err["type"] == "extra_forbidden":
        message = f"unknown key {loc[-1]!r} at {where}"
    elif err["type"] == "missing":
        message = f"missing required key {where}"
    else:
        message = f"{where}: {err['msg']}"
    expected = _FRIENDLY_EXPECTED.get(err["type"], "")
    return Problem(smap.file, line, col, message, expected)
