"""Inputs first: one turn that reads the routine's declared inputs from the request.

Before the first step (``RunSettings.inputs_first``), the model is asked once for the
value of every declared input the caller did not give, as JSON ``{name: value or
null}`` — constrained to :func:`routine.models.guided.inputs_schema` (types, enums;
null for "not stated") under guided decoding. Values it states become known inputs:
later steps see them as values, not as instructions to copy. An input that is
required, has no default and was not stated is where the agent asks back instead of
guessing: the run ends with that question as its answer (``trace.asked``).
"""

from __future__ import annotations

import json
import re
import time
from decimal import Decimal
from typing import Any

from ..errors import ModelRequestsForbidden, RoutineError
from ..models.base import Model, TurnGuide
from ..models.guided import inputs_schema
from ..models.messages import (
    AssistantMessage,
    SystemMessage,
    UserMessage,
    inert_markup,
    utf8_data,
)
from ..models.parsing import CallParseError, parse_reply, split_reasoning
from . import telemetry
from .coercion import coerce_inputs
from .trace import TurnRecord
from .turn import MODEL_FAILURES, request_failure

__all__ = ["coerce_inputs", "extract_inputs", "grounded", "missing_question"]

def _instruction(specs: dict[str, Any]) -> str:
    lines = [f"- {name} ({spec.type}): {spec.description}"
             + (f"; one of {', '.join(map(str, spec.enum))}" if spec.enum else "")
             for name, spec in specs.items()]
    return ("Before any tool call, read these values from the user's words above. Reply with "
            "one JSON object mapping each name to its value, or null if the user does not "
            "state it (do not guess):\n" + "\n".join(lines))


def _read(content: str, tool_calls: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The JSON object of the reply (bare, fenced, or a call's arguments), or ``name: value``
    lines (small models write those). A reasoning model's thinking is left out first."""
    content = split_reasoning(content)[1]
    text = content.strip()
    start, end = text.find("{"), text.rfind("}")
    if start != -1 and end > start:
        try:
            value = json.loads(text[start:end + 1])
            if isinstance(value, dict):
                inner = value.get("arguments")  # a reply shaped like a call
                return inner if isinstance(inner, dict) and "name" in value else value
        except (ValueError, RecursionError):  # (not JSON, nested too deeply, an integer
            pass  # past Python's 4300 digits)
    try:
        parsed = parse_reply(content, tool_calls)
    except CallParseError:
        parsed = None
    if parsed is not None and parsed.calls:
        return parsed.calls[0].arguments
    pairs = dict(re.findall(r"^\s*[-*]?\s*([A-Za-z_][A-Za-z0-9_]*)\s*[:=]\s*(.+?)\s*,?$", text,
                            re.M))
    return {k: _scalar(v) for k, v in pairs.items()} or None


_DATE_WORDS = re.compile(
    r"\b(today|tonight|tomorrow|yesterday|days?|weeks?|weekends?|fortnight|months?|years?|"
    r"noon|midnight|morning|afternoon|evening|am|pm|o'clock|"
    r"mon|tue|tues|wed|thu|thur|thurs|fri|"
    r"mondays?|tuesdays?|wednesdays?|thursdays?|fridays?|saturdays?|sundays?|"
    r"jan|feb|apr|jun|jul|aug|sep|sept|oct|nov|january|february|march|april|june|july|"
    r"august|september|october|november|december|christmas|easter)\b|(?-i:\bMay\b|\bDec\b)", re.I)
_NUMBER_WORDS = re.compile(
    r"\b(zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|"
    r"fourteen|fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|"
    r"sixty|seventy|eighty|ninety|hundred|thousand|million|dozen|half|couple|"
    r"first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|twelfth|"
    r"twentieth|thirtieth)\b", re.I)
_DATE_LIKE = re.compile(r"\d{4}-\d{1,2}-\d{1,2}|\d{1,2}[:/.]\d{1,2}|\d{1,2}-\d{1,2}-\d{2,4}")


def _words(text: str) -> set[str]:
    """The words of ``text`` of three letters or more, cut to their first five letters
    (so "damaged" meets "damage" and "books" meets "book")."""
    return {w[:5] for w in re.findall(r"[^\W\d_]{3,}", text.casefold())}


def _digits(text: str) -> set[str]:
    return {run.lstrip("0") or "0" for run in re.findall(r"\d+", text)}


def grounded(value: Any, text: str) -> bool:
    """Whether a value read from ``text`` has anything in it to be read from. A small model
    asked for a date the request does not give writes one anyway ("2023-10-01" for "Please
    request annual leave for Kofi Dubois"), or a reason no one gave ("The order number is
    not on their account." for "it's order 40134"): such a value is not stated, and the
    routine asks for it or takes its default. A number needs one of its digit runs in the
    text, or a number word; a date or time, a digit run or a date or number word ("from
    tomorrow", "on the twenty-second"); other text, at least half of its words (as the
    end-state check reads free text) and, if it has digits, one of them. Booleans, and
    values with neither digits nor words, are taken as read."""
    if isinstance(value, bool) or value is None:
        return True
    if isinstance(value, (list, dict)):
        parts = value.values() if isinstance(value, dict) else value
        return all(grounded(part, text) for part in parts)
    written = format(value, "f") if isinstance(value, Decimal) else str(value)
    digits, words = _digits(written), _words(written)
    said_digits = bool(digits & _digits(text))
    if isinstance(value, (int, float, Decimal)):
        return said_digits or bool(_NUMBER_WORDS.search(text))
    if _DATE_LIKE.search(written):
        return said_digits or bool(_DATE_WORDS.search(text) or _NUMBER_WORDS.search(text))
    if not digits and not words:
        return True
    words_ok = 2 * len(words & _words(text)) >= len(words)
    digits_ok = not digits or said_digits or bool(_NUMBER_WORDS.search(text))
    return words_ok and digits_ok


def _scalar(text: str) -> Any:
    """A value written after ``name:`` — JSON if it parses (7, "x", null), else the text."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # (an integer past 4300 digits is a ValueError)
        return text.strip("\"'")


async def extract_inputs(state: Any, model: Model, names: list[str] | None = None,
                         said: list[str] | None = None, asked: str | None = None) -> list[str]:
    """Ask for the undeclared inputs (or only ``names``) once, reading the request (or
    ``said``: what the user said, e.g. the replies to a question); put the stated ones into
    the run's inputs and return the names of the ones still missing (of ``names``; else
    the required ones without a default). ``asked``: the question those words answer."""
    routine, tracker = state.routine, state.tracker
    wanted = {n: s for n, s in routine.inputs.items() if n not in state.trace.inputs
              and (names is None or n in names)}
    if not wanted:
        return []
    started = time.perf_counter()
    schema = inputs_schema({n: {"type": s.type, "enum": s.enum} for n, s in wanted.items()})
    guide = TurnGuide(None, "inputs", (), constrain=state.settings.decoding == "guided",
                      schema=schema)
    text = "\n".join(said) if said is not None else state.trace.query or ""
    messages = [state.history[0], *([AssistantMessage(content=inert_markup(asked))] if asked else []),
                UserMessage(content=text), SystemMessage(content=_instruction(wanted))]
    try:
        with telemetry.model_span(state, model, messages) as span:
            reply = span.reply(await model.complete(messages, [], guide=guide,
                                                    **state.settings.sampling()))
    except ModelRequestsForbidden:
        raise
    except MODEL_FAILURES as exc:  # the endpoint failed: the run ends (kept as a turn)
        state.fatal = request_failure(exc)
        state.trace.turns.append(TurnRecord(
            index=len(state.trace.turns), kind="inputs", model_text="",
            duration_s=time.perf_counter() - started,
            feedback=f"not read: {state.fatal.reason}"))
        return _missing(state, names, wanted, {})
    values = utf8_data(_read(reply.content, reply.tool_calls) or {})  # (JSON's \ud83d...)
    known: dict[str, Any] = {}
    unsupported: dict[str, Any] = {}
    for name, value in values.items():
        if name not in wanted or value is None or value == "":
            continue
        if wanted[name].enum is None and not grounded(value, text):
            unsupported[name] = value  # not in the user's words: not stated (asked for)
            continue
        if wanted[name].type == "string" and not isinstance(value, (str, dict, list)):
            value = str(value)
        try:
            known |= coerce_inputs(routine, {name: value})
        except RoutineError:  # the wrong type, or outside its enum: left unknown
            continue
    state.trace.inputs.update(known)
    if tracker is not None:
        tracker.inputs.update(known)
        if names is None:  # the whole request was read: unstated inputs take defaults
            tracker.use_defaults = True
    state.trace.turns.append(TurnRecord(
        index=len(state.trace.turns), kind="inputs", model_text=reply.content,
        usage=reply.usage, decoding=reply.decoding, duration_s=time.perf_counter() - started,
        feedback=json.dumps(known, ensure_ascii=False, default=str) + (
            "; not in the user's words, so not stated: "
            + json.dumps(unsupported, ensure_ascii=False, default=str) if unsupported else "")))
    state.trace.usage = state.trace.usage + reply.usage
    return _missing(state, names, wanted, known)


def _missing(state: Any, names: list[str] | None, wanted: dict[str, Any],
             known: dict[str, Any]) -> list[str]:
    """What :func:`extract_inputs` returns: of ``names``, those still unknown; else the
    required inputs without a default it did not read."""
    if names is not None:
        return [n for n in names if n not in state.trace.inputs]
    return [n for n, s in wanted.items() if s.required and s.default is None and n not in known]


def missing_question(state: Any, missing: list[str]) -> str:
    """What to ask the user when required inputs were not stated."""
    specs = state.routine.inputs
    wanted = "; ".join(f"{specs[n].description} ({n})" for n in missing)
    return f"To go on I need more from you: {wanted}. Could you tell me?"
