"""Reading routine files: safe YAML with the line and column of every node.

``load_routine`` reads YAML safely (no object construction) and keeps the line
and column of every node, so that every problem — YAML syntax, a duplicate key,
a field the format does not know — is reported where it is, all at once.

Files come from elsewhere, so reading is bounded before anything is built: at most
:data:`MAX_FILE_BYTES`, UTF-8, nesting at most :data:`MAX_DEPTH` deep and at most
:data:`MAX_NODES` nodes once aliases are expanded (a 400-byte "billion laughs"
file is refused, not expanded). A first pass over the parser's events (iterative:
no recursion, no objects) checks these; only then is the document composed.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from datetime import date, time
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ..errors import Problem, SpecError
from .format import Routine
from .references import MISSING

__all__ = ["SourceMap", "LoadedRoutine", "load_routine", "load_routine_text", "read_text",
           "routine_files", "routine_names", "files_named", "routines_by_name", "MAX_FILE_BYTES", "MAX_DEPTH",
           "check_bounds",
           "MAX_NODES", "ROUTINE_SUFFIXES"]

ROUTINE_SUFFIXES = (".yaml", ".yml")

MAX_FILE_BYTES = 1 << 20   # 1 MiB: a routine is a page or two
MAX_DEPTH = 64             # collections inside collections
MAX_NODES = 100_000        # nodes after expanding every alias


@dataclass
class SourceMap:
    """Line/column (1-based) of every mapping key and value, by path."""

    file: str
    positions: dict[tuple[Any, ...], tuple[int, int]] = field(default_factory=dict)
    # keys with no value inside a {...} mapping, and the key before them: the usual
    # sign of an unquoted comma (``{description: annual, sick, ...}``)
    bare_keys: dict[tuple[Any, ...], str] = field(default_factory=dict)
    # keys YAML reads as something other than text (``on:`` is True): what was written
    key_text: dict[tuple[Any, ...], str] = field(default_factory=dict)

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
    #: problems found while reading that did not stop it (an impossible date, kept as its
    #: text): ``check_routine`` reports them first, with everything else it finds
    problems: list[Problem] = field(default_factory=list)


_PLAIN_KEY_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("bool", "int", "float", "null")}
_TIMESTAMP = "tag:yaml.org,2002:timestamp"


@dataclass
class _Walk:
    """One pass over the composed nodes before anything is built: positions by path, and
    what construction would crash on or silently change, as problems at their place."""

    smap: SourceMap
    loader: yaml.SafeLoader
    dupes: list[tuple[tuple[Any, ...], str]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    soft: list[Problem] = field(default_factory=list)  # reading goes on past these

    def problem(self, node: yaml.Node, message: str, expected: str, soft: bool = False
                ) -> None:
        mark = node.start_mark
        (self.soft if soft else self.problems).append(Problem(
            self.smap.file, mark.line + 1, mark.column + 1, message, expected))

    def key(self, node: yaml.ScalarNode) -> Any:
        """The key as construction builds it (``on`` is True, ``1`` is 1), so positions
        match the data's paths."""
        if node.tag not in _PLAIN_KEY_TAGS and node.tag != _TIMESTAMP:
            return node.value
        try:
            return self.loader.construct_object(node)
        except ValueError:  # 2026-13-45: said where the value is checked
            return node.value

    def nodes(self, node: yaml.Node, path: tuple[Any, ...]) -> None:
        self.smap.positions.setdefault(path, (node.start_mark.line + 1,
                                              node.start_mark.column + 1))
        if isinstance(node, yaml.MappingNode):
            self.mapping(node, path)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self.nodes(item, (*path, index))
        elif node.tag == _TIMESTAMP:
            self.timestamp(node)
        elif node.tag in (_INT, _FLOAT) and node.style is None and _SURPRISING.match(node.value):
            number = self.loader.construct_object(node)
            self.problem(node, f"{node.value} reads as the number {number} (YAML 1.1: a leading "
                         "0 is octal, a:b is base 60), which is not what it says",
                         f"quotes for the text (\"{node.value}\"), or the number written "
                         "plainly", soft=True)

    def timestamp(self, node: yaml.ScalarNode) -> None:
        try:  # (PyYAML's own reading: _Loader keeps a bad date as its text)
            yaml.SafeLoader.construct_yaml_timestamp(self.loader, node)
        except ValueError as exc:
            self.problem(node, f"{node.value!r} reads as a date, and is not one: {exc}",
                         f"a real date, or quotes around the text (\"{node.value}\")",
                         soft=True)

    def mapping(self, node: yaml.MappingNode, path: tuple[Any, ...]) -> None:
        seen: dict[Any, str] = {}  # each key, as first written
        previous: Any = ""
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                self.complex_key(node, key_node, path)
                continue
            key = self.key(key_node)
            child = (*path, key)
            if key in seen and seen[key] != key_node.value:  # on: and yes: are both True
                self.problem(key_node, f"keys {seen[key]!r} and {key_node.value!r} are both "
                             f"read as {key!r}, so the second replaces the first",
                             f"quotes around each ('{seen[key]}': ..., '{key_node.value}': "
                             "...): unquoted, YAML reads on, off, yes, no, true and false as "
                             "booleans")
            elif key in seen:
                self.dupes.append((child, key))
            seen.setdefault(key, key_node.value)
            if not isinstance(key, str):
                self.smap.key_text[child] = key_node.value
            if node.flow_style and isinstance(value_node, yaml.ScalarNode) \
                    and value_node.value == "" and value_node.style is None and previous:
                self.smap.bare_keys[child] = previous
            else:
                previous = key
            self.smap.positions[child] = (key_node.start_mark.line + 1,
                                          key_node.start_mark.column + 1)
            self.nodes(value_node, child)

    def complex_key(self, node: yaml.MappingNode, key_node: yaml.Node,
                    path: tuple[Any, ...]) -> None:
        """A key that is a list or mapping: ``? [x, y]``, or an unquoted ``{{ ... }}``
        (YAML reads ``{{ inputs.name }}`` as a mapping whose key is a mapping)."""
        if node.flow_style and isinstance(key_node, yaml.MappingNode) \
                and key_node.start_mark.index == node.start_mark.index + 1:
            name = path[-1] if path else "message"
            self.problem(node, "a value that starts with '{{' without quotes: YAML reads it "
                         "as a mapping, not as a template",
                         f"quotes around a value that starts with '{{' ({name}: "
                         "\"{{ inputs.name }}\")")
            return
        kind = "mapping" if isinstance(key_node, yaml.MappingNode) else "list"
        self.problem(key_node, f"a key that is a {kind} ('? ...' or a bracket before ':')",
                     "text keys (name: value)")


def check_bounds(text: str, file: str) -> None:
    """Refuse YAML that nests deeper than MAX_DEPTH or expands past MAX_NODES nodes."""
    sizes: dict[str, int] = {}  # an anchor's expanded node count
    stack: list[list[Any]] = [[None, 0]]  # open collections: [anchor, expanded size so far]

    def refuse(event: Any, message: str, expected: str) -> None:
        mark = event.start_mark
        raise SpecError([Problem(file, mark.line + 1, mark.column + 1, message, expected)])

    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            if len(stack) > MAX_DEPTH:
                refuse(event, f"the YAML nests more than {MAX_DEPTH} levels deep",
                       f"at most {MAX_DEPTH} levels of lists and mappings")
            stack.append([event.anchor, 1])
            continue
        if isinstance(event, yaml.CollectionEndEvent):
            anchor, size = stack.pop()
            if anchor:
                sizes[anchor] = size
        elif isinstance(event, yaml.ScalarEvent):
            size = 1
            if event.anchor:
                sizes[event.anchor] = 1
        elif isinstance(event, yaml.AliasEvent):
            if any(anchor == event.anchor for anchor, _ in stack):
                refuse(event, f"the alias *{event.anchor} is inside the list or mapping "
                       f"&{event.anchor} it names: a structure that contains itself",
                       "an alias to a finished list or mapping, or the values written out")
            size = sizes.get(event.anchor, 1)
        else:
            continue
        stack[-1][1] += size
        if stack[-1][1] > MAX_NODES:
            refuse(event, f"the YAML expands to more than {MAX_NODES:,} nodes (aliases "
                   "repeat what they name)", f"at most {MAX_NODES:,} nodes once aliases "
                   "are expanded")


def read_text(path: str | Path) -> str:
    """A routine file's text: at most MAX_FILE_BYTES of UTF-8, else a SpecError saying where."""
    path = Path(path)
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode) and not stat.S_ISDIR(info.st_mode):
            raise SpecError([Problem(str(path), 1, 1, "not a regular file (a pipe, a device "
                                     "or a socket: reading it could wait forever)",
                                     "a routine YAML file")])
        size = info.st_size
        if size > MAX_FILE_BYTES:
            raise SpecError([Problem(str(path), 1, 1, f"the file has {size:,} bytes",
                                     f"at most {MAX_FILE_BYTES:,} bytes")])
        data = path.read_bytes()
    except OSError as exc:
        raise SpecError([Problem(str(path), 1, 1, f"cannot read the file: {exc.strerror or exc}",
                                 "a readable file")]) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[:exc.start]
        line = before.count(b"\n") + 1
        column = exc.start - (before.rfind(b"\n") + 1) + 1
        raise SpecError([Problem(str(path), line, column,
                                 f"byte 0x{data[exc.start]:02x} is not UTF-8",
                                 "a UTF-8 text file")]) from None


_INT, _FLOAT = "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"
# what YAML 1.1 reads as a number unlike its digits: 010 (octal 8), 1:30 (base 60: 90)
_SURPRISING = re.compile(r"^[-+]?(?:0[0-7_]+|[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?)$")


class _Loader(yaml.SafeLoader):
    """PyYAML's safe YAML 1.1 reading, plus YAML 1.2's exponent floats: ``1e-3`` and
    ``1E5`` are numbers (1.1 wants a dot, so they were text, and ``rate * 3`` repeated it).
    A value that reads as a date and is not one (2026-13-45) stays its text (the walk
    reports it, and reading goes on to find the file's other problems)."""

    def construct_yaml_timestamp(self, node: yaml.Node) -> Any:
        try:
            return super().construct_yaml_timestamp(node)
        except ValueError:
            return node.value


_Loader.add_constructor(_TIMESTAMP, _Loader.construct_yaml_timestamp)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"))


def load_routine_text(text: str, file: str = "<string>") -> LoadedRoutine:
    """Parse and type-check a routine from YAML text; raise SpecError with every problem."""
    if len(text) > MAX_FILE_BYTES:
        raise SpecError([Problem(file, 1, 1, f"the text has {len(text):,} characters",
                                 f"at most {MAX_FILE_BYTES:,}")])
    # and as a file's bytes: a drafted routine of non-ASCII text under the limit in
    # characters was said to be valid, and its file was then refused by validate
    if (size := len(text.encode("utf-8", "replace"))) > MAX_FILE_BYTES:
        raise SpecError([Problem(file, 1, 1, f"the text has {size:,} bytes as UTF-8",
                                 f"at most {MAX_FILE_BYTES:,} bytes")])
    smap = SourceMap(file)
    try:
        check_bounds(text, file)
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            walk = _Walk(smap, loader)
            if node is not None:  # positions first: construction rewrites merge keys in place
                walk.nodes(node, ())
            if walk.problems:
                raise SpecError(walk.problems)
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        if str(exc.problem).startswith("but found another document"):
            raise SpecError([Problem(file, line, col, "a second YAML document starts here "
                                     "('---' after the routine): a file holds one routine",
                                     "one routine per file (the next one in a file of its "
                                     "own)")]) from None
        raise SpecError([Problem(file, line, col, f"YAML syntax: {exc.problem or exc}",
                                 _yaml_hint(exc, text))]) from None
    except yaml.reader.ReaderError as exc:  # a control character (NUL, ESC, DEL, U+FFFE)
        before = text[:exc.position]
        line, col = before.count("\n") + 1, exc.position - (before.rfind("\n") + 1) + 1
        code = exc.character if isinstance(exc.character, int) else ord(exc.character[:1] or " ")
        raise SpecError([Problem(file, line, col, f"a control character (U+{code:04X}) YAML "
                                 "does not allow in a file",
                                 "printable text (tabs and line breaks are fine); write it "
                                 "as an escape inside double quotes (\"\\x1b\") if it is "
                                 "meant")]) from None
    if data is None:  # nothing, or only comments: not "not a mapping"
        raise SpecError([Problem(file, 1, 1, "the file is empty (no YAML in it, or only "
                                 "comments)", "a routine: a mapping with name, description, "
                                 "inputs and steps")])
    if not isinstance(data, dict):
        raise SpecError([Problem(file, 1, 1, "the file is not a YAML mapping",
                                 "a mapping with name, description, inputs and steps")])
    data = _dates_as_text(data)
    problems = [Problem(file, *smap.locate(p), f"duplicate key {k!r}", "each key once")
                for p, k in walk.dupes]
    try:
        routine = Routine.model_validate(data)
    except ValidationError as exc:
        problems += [_problem_from_error(err, smap, data)
                     for err in _one_branch(exc.errors(include_url=False), data)]
        raise SpecError(list(dict.fromkeys(walk.soft + problems))) from None
    if problems:
        raise SpecError(walk.soft + problems)
    return LoadedRoutine(routine, smap, problems=walk.soft)


def _dates_as_text(value: Any) -> Any:
    """``day: 2026-03-02`` unquoted is a date to YAML; a tool call is JSON, so every date,
    time and datetime becomes its ISO text here, once, as if it had been quoted."""
    if isinstance(value, (date, time)):  # datetime is a date
        return value.isoformat()
    if isinstance(value, dict):
        return {key: _dates_as_text(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_dates_as_text(item) for item in value]
    return value


def routine_files(folder: str | Path) -> list[Path]:
    """The routine files of a folder, its subfolders included (``.yaml`` and ``.yml``), in
    a stable order: what validate, routing, datasets and eval all read as "the routines"."""
    found, seen = [], set()
    # os.walk follows linked subfolders (a shared folder linked in; Path.rglob skips them
    # before Python 3.13), each real folder once, so a link back up is no loop
    for root, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        found += [Path(root, f) for f in files if Path(f).suffix in ROUTINE_SUFFIXES
                  and Path(root, f).is_file()]
    return sorted(found)


def load_routine(path: str | Path) -> LoadedRoutine:
    """Load a routine file (see :func:`load_routine_text`)."""
    path = Path(path)
    # a .py or .md read as YAML said "mapping values are not allowed": said what it is (a
    # routine written as JSON is YAML too; a file without a suffix, or a folder, is read)
    if path.suffix and path.suffix.lower() not in (*ROUTINE_SUFFIXES, ".json") \
            and not path.is_dir():
        raise SpecError([Problem(str(path), 1, 1, f"not a routine file (a {path.suffix} file): "
                                 "routines are YAML files", "a .yaml or .yml file, or a "
                                 "folder of them")])
    loaded = load_routine_text(read_text(path), str(path))
    loaded.path = path
    return loaded


def routine_names(files: list[Path]) -> dict[Path, str]:
    """Each routine file's ``name:`` ("" for a file that does not load)."""
    names = {}
    for file in files:
        try:
            names[file] = load_routine(file).routine.name
        except (SpecError, OSError):
            names[file] = ""
    return names


def routines_by_name(folders: list[Path]) -> dict[str, tuple[Path, LoadedRoutine]]:
    """The routines under ``folders`` (subfolders included) that load, by name: the first
    file of each name, in :func:`routine_files` order. What a hand-off may name."""
    found: dict[str, tuple[Path, LoadedRoutine]] = {}
    for folder in folders:
        for file in routine_files(folder):
            try:
                loaded = load_routine(file)
            except (SpecError, OSError):
                continue
            found.setdefault(loaded.routine.name, (file, loaded))
    return found


def files_named(wanted: str, names: dict[Path, str]) -> list[Path]:
    """The files of ``names`` (:func:`routine_names`) that hold the routine ``wanted``: those
    whose ``name:`` is it, else those named ``wanted.yaml``."""
    return [f for f, n in names.items() if n == wanted] or \
        [f for f in names if f.stem == wanted]


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
        if isinstance(current, dict) and _key_in(current, part) is not MISSING:
            part = _key_in(current, part)
            current = current[part]
        elif isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            current = current[part]
        elif index != len(loc) - 1:
            continue  # a tag pydantic adds, not a place in the file
        kept.append(part)
    return tuple(kept)


def value_at_path(data: Any, path: tuple[Any, ...]) -> Any:
    """The value at a located path of the loaded data (MISSING where there is none)."""
    for part in path:
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        else:
            return MISSING
    return data


def _key_in(mapping: dict[Any, Any], part: Any) -> Any:
    """The key of ``mapping`` that pydantic's location part names (it writes a key that is
    not text or a number as its repr: ``'datetime.date(2026, 3, 2)'``), else MISSING."""
    for key in mapping:  # ``1`` names a key ``True`` too: give the key itself
        if key == part or not isinstance(key, (str, int)) and part in (repr(key), str(key)):
            return key
    return MISSING


def _yaml_hint(exc: yaml.MarkedYAMLError, text: str) -> str:
    """What a YAML syntax error usually means in a hand-written routine, and the fix."""
    problem = str(exc.problem or "")
    mark = exc.problem_mark
    line = text.splitlines()[mark.line] if mark and mark.line < len(text.splitlines()) else ""
    if "\\t" in problem or "\t" in line[:len(line) - len(line.lstrip())]:
        return "spaces for indentation: YAML does not allow tabs there"
    if problem.startswith("mapping values are not allowed"):
        return ("quotes around a value that contains ': ' (description: \"Note: ...\"); "
                "unquoted, a colon followed by a space starts a new key")
    if problem.startswith("expected ',' or '}'") or problem.startswith("expected ',' or ']'"):
        return ("a closing bracket for every opening one, and quotes around text inside "
                "{...} or [...] that contains a comma, a colon or a bracket "
                "(description: \"annual, sick or unpaid\")")
    if "expected <block end>" in problem or "expected '-' indicator" in problem \
            or "did not find expected key" in problem:
        return ("consistent indentation: the keys of one mapping start in the same column, "
                "and a step's keys line up under its first key after '- '")
    if "could not find expected ':'" in problem:
        return ("'key: value' on every line of a mapping; a long text on several lines goes "
                "in quotes, or after '|' or '>'")
    return "valid YAML"


def _one_branch(errors: list[Any], data: Any) -> list[Any]:
    """pydantic's errors without those of a union's text branch where the value is a list
    or mapping that another branch's errors describe (``on_error: [...]`` with a mistake
    inside: "on_error.str: Input should be a valid string" is noise beside the real one)."""
    def branch_of(err: Any) -> tuple[Any, ...] | None:
        loc = tuple(err["loc"])
        if err["type"] == "string_type" and loc[-1:] == ("str",):
            return loc[:-1]
        return None

    others = [tuple(e["loc"]) for e in errors if branch_of(e) is None]
    out = []
    for err in errors:
        parent = branch_of(err)
        if parent is not None and any(loc[:len(parent)] == parent for loc in others) \
                and isinstance(value_at_path(data, _data_path(parent, data)), (list, dict)):
            continue
        out.append(err)
    return out


_EMPTY_AS_NULL = {  # `steps:` with nothing after it: what was expected there
    "list_type": "a list under the key (its items indented, each after '- ')",
    "dict_type": "a mapping under the key (its keys indented below it), or {} for none",
    "model_type": "a mapping (its keys indented below it)",
}


def _problem_from_error(err: Any, smap: SourceMap, data: Any) -> Any:
    loc = _data_path(tuple(err["loc"]), data)
    line, col = smap.locate(loc)
    where = ".".join(str(p) for p in loc) or "(top level)"
    if err["type"] == "extra_forbidden" and loc in smap.bare_keys:
        before = smap.bare_keys[loc]
        return Problem(smap.file, line, col,
                       f"unknown key {loc[-1]!r} at {where}: the text after a comma inside "
                       f"{{...}} was read as a new key",
                       f"quotes around a value that contains commas ({before}: \"..., "
                       f"{loc[-1]}, ...\")")
    if loc[-1:] == ("[key]",) and loc[:-1] in smap.key_text:
        return _key_problem(smap, loc[:-1])
    value = value_at_path(data, loc)
    if value is None and err["type"] in _EMPTY_AS_NULL:
        return Problem(smap.file, line, col, f"{where}: the value is empty, and YAML reads an "
                       "empty value as null", _EMPTY_AS_NULL[err["type"]])
    if err["type"] == "string_type" and (value is None or isinstance(value, (bool, int, float))):
        kind = "a boolean" if isinstance(value, bool) else "null" if value is None else \
            "a number"
        expected = "quotes around the value ('no', '1.0')"
        if isinstance(value, bool) or value is None:
            expected += (": unquoted, YAML reads yes, no, on, off, true and false as booleans"
                         " and an empty value or ~ as null")
        return Problem(smap.file, line, col, f"{where}: the unquoted value is read as {kind} "
                       f"({value!r}), not as text", expected)
    if err["type"] == "extra_forbidden":
        message = f"unknown key {loc[-1]!r} at {where}"
    elif err["type"] == "string_pattern_mismatch":
        pattern = (err.get("ctx") or {}).get("pattern", "")
        message = f"{where}: {value!r} does not match {pattern}"
        if pattern == "^[a-z][a-z0-9_]*$":
            return Problem(smap.file, line, col, message, "a lowercase ASCII name: a letter, "
                           "then letters, digits or _ (an id is used in ${steps.ID...}; "
                           "name: may say anything)")
    elif err["type"] == "missing":
        message = f"missing required key {where}"
    else:  # a check of our own says it in words: pydantic's "Value error, " is noise
        message = f"{where}: {err['msg'].removeprefix('Value error, ')}"
    expected = _FRIENDLY_EXPECTED.get(err["type"], "")
    return Problem(smap.file, line, col, message, expected)


def _key_problem(smap: SourceMap, path: tuple[Any, ...]) -> Problem:
    """A key YAML read as a boolean, number, date or null where a name was expected."""
    written, key = smap.key_text[path], path[-1]
    where = ".".join(str(p) for p in path[:-1]) or "(top level)"
    kind = "a boolean" if isinstance(key, bool) else "a number" if isinstance(
        key, (int, float)) else "a date" if isinstance(key, (date, time)) else "null"
    expected = f"quotes around the key ('{written}': ...)"
    if isinstance(key, bool):
        expected += ": unquoted, YAML reads on, off, yes, no, true and false as booleans"
    return Problem(smap.file, *smap.locate(path), f"key {written!r} at {where} is read as "
                   f"{kind} ({key!r}), not as a name", expected)
