"""Recover tool calls from a model reply.

Structured ``tool_calls`` are used when present. Small local models usually
write the call in the text instead; these forms are recovered:

* ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` (Qwen/Hermes);
* fenced JSON (```json ... ```), or bare JSON anywhere in the text;
* a list of calls; ``{"function": {...}}`` wrappers; ``parameters`` for ``arguments``;
* arguments given as a JSON *string*;
* the doubled braces of Qwen2.5-Coder's broken template (``{{"name": ...}}``);
* a reasoning model's thinking (``<think>...</think>``, or text before a lone ``</think>``
  whose opening tag the chat template wrote) is not part of the reply: see
  :func:`split_reasoning`; a call "considered" inside it is never run;
* bare or fenced JSON is a call only when it is shaped like one (an ``arguments`` key) or
  names an offered tool: an answer that quotes a record (``{"name": "Müller GmbH", ...}``)
  is text;
* arguments wrapped in the tool's own JSON schema (``{"type": "object", "properties":
  {"name": "Ada"}, "required": [...]}``: small models copy the schema's shape around the
  values), unwrapped when the caller passes the tools and the tool declares none of the
  schema's keywords as a parameter of its own.

A reply that clearly tries to call a tool but cannot be read yields a
:class:`CallParseError` whose message goes back to the model.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .messages import utf8_data, utf8_text

__all__ = ["ParsedCall", "ParsedReply", "CallParseError", "parse_reply", "first_call_complete",
           "split_reasoning", "unwrap_schema_echo", "arguments_text"]

_TAG_RE = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.S)
_FENCE_RE = re.compile(r"```(?:json|tool_call|JSON)?\s*(.*?)```", re.S)
_DECODER = json.JSONDecoder()
_THINK_RE = re.compile(r"<think>(.*?)(?:</think>|$)", re.S)
_CALL_KEYS = ("arguments", "parameters", "args")
# an argument's source, as the compact state prompt writes it, copied as the value
_PLACEHOLDER_RE = re.compile(r':\s*(<[^<>\n"]{1,80}>)')
# the keywords of an object schema a model copies around its arguments
_ENVELOPE = frozenset({"type", "properties", "required", "additionalProperties", "title",
                       "description", "$schema"})


@dataclass
class ParsedCall:
    name: str
    arguments: dict[str, Any]
    call_id: str = ""


@dataclass
class ParsedReply:
    calls: list[ParsedCall] = field(default_factory=list)
    text: str = ""  # the reply with any call markup removed
    from_text: bool = False  # the calls were recovered from the text


class CallParseError(ValueError):
    """The reply attempts a tool call that cannot be read (message is model-facing)."""


def arguments_text(call: Mapping[str, Any]) -> str:
    """A wire tool call's arguments as text: a string as given, an object (some servers send
    one) as JSON, none (null, missing) as ''."""
    function = call.get("function")
    arguments = function.get("arguments") if isinstance(function, Mapping) else None
    if arguments is None or isinstance(arguments, str):
        return arguments or ""
    return json.dumps(arguments, default=str)


def split_reasoning(content: str) -> tuple[str, str]:
    """(the reasoning, the reply without it) of a reasoning model's text: Qwen3 or DeepSeek
    served without a reasoning parser write their thinking into the content, in
    ``<think>...</think>`` (an unclosed one: cut off while thinking, all of it is reasoning),
    or after a ``<think>`` their chat template already wrote, so only ``</think>`` shows."""
    if "<think>" not in content and "</think>" not in content:
        return "", content
    head, closed, rest = content.rpartition("</think>")
    thoughts = []
    if closed and "<think>" not in head:
        thoughts.append(head)  # the opening tag was the template's
        content = rest
    def keep(match: re.Match[str]) -> str:
        thoughts.append(match.group(1))
        return ""
    content = _THINK_RE.sub(keep, content)
    return "\n\n".join(t.strip() for t in thoughts if t.strip()), content.strip()


def _arguments(raw: Any, name: str) -> dict[str, Any]:
    if raw is None:
        return {}
    if isinstance(raw, str):
        text = raw.strip()
        if not text:
            return {}
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CallParseError(f"the arguments of {name!r} are not valid JSON: {exc.msg}") from None
        except RecursionError:
            raise CallParseError(f"the arguments of {name!r} are nested too deeply") from None
        except ValueError:  # an integer past Python's 4300 digits
            raise CallParseError(f"the arguments of {name!r} hold a number too long to "
                                 "read") from None
    if not isinstance(raw, dict):
        raise CallParseError(f"the arguments of {name!r} must be a JSON object, got {raw!r}")
    return raw


def _as_call(obj: Any) -> ParsedCall | None:
    if not isinstance(obj, dict):
        return None
    if "function" in obj and isinstance(obj["function"], dict):
        obj = {**obj["function"], "id": obj.get("id", "")}
    name = obj.get("name")
    if not isinstance(name, str) or not name:
        return None
    raw = obj.get("arguments", obj.get("parameters", obj.get("args")))
    # (text as every UTF-8 writer takes it: a JSON escape of half an emoji would make a lone
    # surrogate no later request could carry, nor a trace keep)
    name = utf8_text(name)
    return ParsedCall(name, utf8_data(_arguments(raw, name)), utf8_text(str(obj.get("id") or "")))


def _undouble(text: str) -> str:
    stripped = text.strip()
    if stripped.startswith("{{") and stripped.endswith("}}"):
        return stripped[1:-1]
    return text


def _json_values(text: str) -> list[tuple[Any, int, int]]:
    """Every top-level JSON object/array in ``text`` with its span."""
    out = []
    index = 0
    while index < len(text):
        start = min((i for i in (text.find("{", index), text.find("[", index)) if i >= 0),
                    default=-1)
        if start < 0:
            break
        candidate = text[start:]
        for attempt in (candidate, _undouble(candidate)):
            try:
                value, end = _DECODER.raw_decode(attempt)
            except (ValueError, RecursionError):  # (nested too deeply, or an integer past
                # Python's 4300 digits, to be a call)
                continue
            offset = len(candidate) - len(attempt.lstrip()) if attempt is not candidate else 0
            out.append((value, start, start + end + offset + (2 if attempt is not candidate else 0)))
            index = out[-1][2]
            break
        else:
            index = start + 1
    return out


def _unreadable(text: str, message: str) -> CallParseError:
    """The error for a call that cannot be read; a placeholder copied from the prompt
    (``"year": <the request's year>``) is named, with what to write instead."""
    placeholder = _PLACEHOLDER_RE.search(text)
    if placeholder:
        return CallParseError(f"{placeholder.group(1)} is where a value goes, not the value: "
                              "write the value itself (from the request or a tool result) "
                              "as JSON")
    return CallParseError(message)


def _calls_in(value: Any, offered: frozenset[str] | None = None) -> list[ParsedCall]:
    """The calls ``value`` holds; with ``offered`` (bare or fenced JSON in a reply), only when
    each item is shaped like a call or names an offered tool: else it is data, e.g. a record
    the answer quotes."""
    items = value if isinstance(value, list) else [value]
    if offered is not None and not all(
            isinstance(item, dict) and (
                any(k in item for k in _CALL_KEYS) or isinstance(item.get("function"), dict)
                or item.get("name") in offered) for item in items):
        return []
    calls = [_as_call(item) for item in items]
    if calls and all(c is not None for c in calls):
        return [c for c in calls if c is not None]
    return []


def _looks_like_call(text: str, offered: frozenset[str] | None) -> bool:
    """Text that tries to call a tool but did not parse: a ``<tool_call>`` tag, ``"arguments":``
    or (given the offered tools) ``"name": "<an offered tool>"``; without them, any
    ``"name":``."""
    if "<tool_call>" in text or re.search(r'"(?:arguments|parameters)"\s*:', text):
        return True
    if offered is None:
        return bool(re.search(r'"name"\s*:', text))
    names = re.findall(r'"name"\s*:\s*"([^"]*)"', text)
    return any(name in offered for name in names)


def _from_text(text: str, offered: frozenset[str] | None = None) -> ParsedReply:
    tagged = _TAG_RE.findall(text)
    if tagged:
        calls: list[ParsedCall] = []
        for body in tagged:
            body = _FENCE_RE.sub(lambda m: m.group(1), body)
            values = _json_values(_undouble(body))
            found = _calls_in(values[0][0]) if values else []
            if not found:
                raise _unreadable(body, "could not read the call inside <tool_call>..."
                                  '</tool_call>: expected {"name": "<tool>", "arguments": {...}}')
            calls += found
        rest = _TAG_RE.sub("", text).strip()
        return ParsedReply(calls, rest, True)
    fenced = _FENCE_RE.findall(text)
    for block in fenced:
        values = _json_values(block)
        if values:
            found = _calls_in(values[0][0], offered)
            if found:
                return ParsedReply(found, _FENCE_RE.sub("", text).strip(), True)
    for value, start, end in _json_values(text):
        found = _calls_in(value, offered)
        if found:
            return ParsedReply(found, (text[:start] + text[end:]).strip(), True)
    if _looks_like_call(text, offered):
        raise _unreadable(text, 'the reply looks like a tool call but is not valid JSON: '
                          'expected {"name": "<tool>", "arguments": {...}}')
    return ParsedReply([], text.strip(), False)


def parse_reply(content: str | None, tool_calls: list[dict[str, Any]] | None = None,
                tools: Iterable[Mapping[str, Any]] | None = None) -> ParsedReply:
    """Calls and remaining text of a reply (structured calls win over text).

    ``tools``: the tools offered, in the OpenAI format; given, arguments wrapped in a
    tool's schema are unwrapped (see :func:`unwrap_schema_echo`), and JSON in the text is a
    call only when shaped like one or naming one of them. A reasoning model's thinking
    (:func:`split_reasoning`) is left out first."""
    content = split_reasoning(content or "")[1]
    declared = _declared(tools) if tools is not None else None
    if tool_calls:
        calls = []
        for raw in tool_calls:
            call = _as_call(raw)
            if call is None:
                raise CallParseError(f"unreadable tool call {raw!r}")
            calls.append(call)
        reply = ParsedReply(calls, content.strip(), False)
    else:
        reply = _from_text(content, frozenset(declared) if declared is not None else None)
    if declared is not None and reply.calls:
        for call in reply.calls:
            if call.name in declared:
                call.arguments = unwrap_schema_echo(call.arguments, declared[call.name])
    return reply


def _declared(tools: Iterable[Mapping[str, Any]]) -> dict[str, frozenset[str]]:
    """Each offered tool's parameter names."""
    out = {}
    for spec in tools:
        function = spec.get("function", spec)
        parameters = function.get("parameters") or {}
        out[function.get("name", "")] = frozenset(parameters.get("properties") or {})
    return out


def unwrap_schema_echo(arguments: dict[str, Any], declared: Iterable[str]) -> dict[str, Any]:
    """The values inside arguments a model wrapped in the tool's schema, else ``arguments``.

    ``{"type": "object", "properties": {"name": "Ada"}, "required": ["name"]}`` becomes
    ``{"name": "Ada"}``: only when every key is a schema keyword, ``properties`` is an
    object, the tool declares none of those keywords as a parameter (a tool that takes
    ``properties`` gets its arguments as sent) and the properties hold values, not a
    copy of the schema itself (that goes to validation, whose error the model reads)."""
    values = arguments.get("properties")
    keys = set(arguments)
    if (not isinstance(values, dict) or not keys <= _ENVELOPE or keys & set(declared)
            or arguments.get("type", "object") != "object"):
        return arguments
    if values and all(isinstance(v, dict) and ({"type", "description"} & set(v))
                      for v in values.values()):
        return arguments  # the schema echoed with no values in it
    return values


def first_call_complete(text: str) -> bool:
    """True once more text cannot change the calls :func:`parse_reply` reads from ``text``.

    That is when the reply holds a complete bare-JSON call and a line break after it,
    and no ``<tool_call>`` tag or code fence (which would take precedence) has begun:
    only the first bare call is read, so what a model writes next (small models go on
    to invent the tool's result, or a chain of later calls) is discarded anyway. The
    embedded server stops generating there."""
    if "<tool_call>" in text or "```" in text:
        return False
    for value, _start, end in _json_values(text):
        try:
            if _calls_in(value):
                return "\n" in text[end:]
        except CallParseError:
            return False
    return False
