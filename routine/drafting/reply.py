"""A model's reply read as a routine, and the routine written as YAML.

A guided reply is one JSON object; a free one may wrap it in prose or a code fence, or
write YAML. :func:`routine_yaml` takes the fenced block with the routine's ``steps`` (else
the first block, else the whole text), reads
it with YAML's safe loader (JSON is YAML), appends its top-level ``finish`` object as the
last step (the answer), sets the routine's ``name`` and ``toolsets`` to
the ones asked for, drops null values (a branch option's ``when: null`` means
"otherwise"), and writes the routine as block-style YAML in the format's key order: the
file ``validate`` checks and the user reviews.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from ..errors import SpecError
from ..models.parsing import CallParseError
from ..spec.loader import check_bounds

__all__ = ["routine_yaml", "routine_data", "printable"]

_FENCE = re.compile(r"```[a-zA-Z]*\s*\n(.*?)```", re.S)
# the format's key order (routine.spec.format), for a file a person reads top down
_TOP = ("name", "description", "version", "toolsets", "inputs", "constants", "steps")
_STEP = ("id", "name", "description", "tool", "args", "branch", "finish", "condition", "when",
         "steps", "next")


def _clean(value: Any, order: tuple[str, ...] = ()) -> Any:
    """``value`` without null entries; a mapping's keys in ``order`` first; step lists
    (``steps``, ``branch``) in the step key order."""
    if isinstance(value, list):
        return [_clean(item, order) for item in value]
    if not isinstance(value, dict):
        return value
    keys = [k for k in order if k in value] + [k for k in value if k not in order]
    return {k: _clean(value[k], _STEP if k in ("steps", "branch") else ())
            for k in keys if value[k] is not None}


def routine_data(text: str) -> dict[str, Any]:
    """The mapping a reply holds (the first fenced block, else the whole text); a reply
    that holds none raises :class:`~routine.models.parsing.CallParseError` (the model's
    mistake: it goes back to the model)."""
    fenced = _FENCE.findall(text)
    # a free reply may show an example or a tool's output in a block before the routine:
    # the block that has the routine's steps, else the first
    body = next((b for b in fenced if re.search(r"(^|[{,\s])[\"']?steps[\"']?\s*:", b)),
                fenced[0]) if fenced else text.strip()
    try:
        _bounded(body)
        data = yaml.safe_load(body)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise CallParseError(f"the reply cannot be read as JSON or YAML{where}: {problem}"
                              + (" (cut off: it may have run out of tokens)"
                                 if body.count("{") > body.count("}") else "")) from None
    if not isinstance(data, dict):
        raise CallParseError(f"the reply is {type(data).__name__ if data is not None else 'empty'}"
                              ", not one routine object")
    return data


def _bounded(body: str) -> None:
    """Refuse, from the event stream (no value is built), what ``safe_load`` cannot take:
    aliases (a reply of a few hundred bytes whose aliases name aliases expands to gigabytes)
    and what a routine file may not be (nested past MAX_DEPTH: a reply stuck repeating
    ``[`` raised a RecursionError out of the drafting loop instead of going back to the
    model)."""
    if any(isinstance(event, yaml.AliasEvent) for event in yaml.parse(body, yaml.SafeLoader)):
        raise CallParseError("the reply uses YAML aliases (*name): write the routine out "
                             "without anchors and aliases")
    try:
        check_bounds(body, "<reply>")
    except SpecError as exc:
        problem = exc.problems[0]
        raise CallParseError(f"{problem.message} (line {problem.line})") from None


def printable(line: str) -> str:
    """A comment line YAML reads back: a character it refuses (controls, lone surrogates
    of an undecodable file name, other line breaks) written out as an escape."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode()
                   for c in line)


def routine_yaml(text: str, name: str | None, toolsets: list[str],
                 header: str = "") -> str:
    """The reply's routine as YAML text (``header``: comment lines to start the file)."""
    data = routine_data(text)
    final = data.pop("finish", None)  # the reply's closing answer step (see draft_schema)
    if isinstance(final, dict) and isinstance(data.get("steps"), list):
        data["steps"].append({**final, "finish": True})
    if name:
        data["name"] = name
    data["toolsets"] = list(toolsets)
    cleaned = _clean(data, _TOP)
    body = yaml.safe_dump(cleaned, sort_keys=False, allow_unicode=True, width=100,
                          default_flow_style=False)
    lines = [f"# {printable(line)}" if line else "#" for line in header.split("\n")]
    return "\n".join([*lines, body]) if lines else body
