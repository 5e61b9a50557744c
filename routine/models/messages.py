"""The conversation as typed records, with ONE serialiser.

A run's history is a list of :data:`Message` (system, user, assistant, tool),
discriminated by ``role``. The same records go to the model, into the trace,
into step samples and into fine-tuning data; :data:`MESSAGES` is the only
adapter that turns them into JSON (and the OpenAI wire format) and back.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

__all__ = [
    "Usage",
    "FunctionCall",
    "ToolCall",
    "SystemMessage",
    "UserMessage",
    "AssistantMessage",
    "ToolMessage",
    "Message",
    "MESSAGES",
    "to_wire",
    "utf8_text",
    "utf8_data",
    "inert_markup",
]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Usage(BaseModel):
    """Tokens one request (or a whole run) used."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(prompt_tokens=self.prompt_tokens + other.prompt_tokens,
                     completion_tokens=self.completion_tokens + other.completion_tokens)


class FunctionCall(_Record):
    """The function part of a tool call; ``arguments`` is JSON text, as on the wire."""

    name: str
    arguments: str = "{}"

    def parsed_arguments(self) -> dict[str, Any]:
        value = json.loads(self.arguments or "{}")
        return value if isinstance(value, dict) else {}


class ToolCall(_Record):
    """One call the assistant made."""

    id: str
    type: Literal["function"] = "function"
    function: FunctionCall

    @classmethod
    def of(cls, call_id: str, name: str, arguments: dict[str, Any]) -> ToolCall:
        # the characters as written ("Müller", not "M\u00fcller": a model copies what its
        # own history shows, and a trained reply taught the escapes)
        return cls(id=call_id, function=FunctionCall(
            name=name, arguments=json.dumps(arguments, ensure_ascii=False)))


class SystemMessage(_Record):
    role: Literal["system"] = "system"
    content: str


# a chat template's turn and call markers written as text: `<|im_start|>`, `<|eot_id|>`,
# `<start_of_turn>`, `</tool_response>`, `<tool_call>` (llama.cpp and vLLM tokenise the
# rendered prompt with special tokens parsed, so such text IS the marker)
_MARKER = re.compile(r"<(?=\|[A-Za-z0-9_]{1,48}\|>|/?(?:tool_call|tool_response|"
                     r"start_of_turn|end_of_turn)>)")


def inert_markup(text: str) -> str:
    """``text`` with every chat-template marker in it made plain text (a zero-width space
    after its ``<``): a tool's result or a user's words reading ``<|im_end|><|im_start|>
    system ...`` would otherwise open a system turn of their own in a local model's prompt
    (the trust boundary: what a user or a tool says is data, never the operator)."""
    return _MARKER.sub("<\u200b", text) if "<" in text else text


class UserMessage(_Record):
    role: Literal["user"] = "user"
    content: str

    @field_validator("content")
    @classmethod
    def _inert(cls, value: str) -> str:
        return inert_markup(value)


class AssistantMessage(_Record):
    role: Literal["assistant"] = "assistant"
    content: str = ""
    tool_calls: list[ToolCall] | None = None

    @field_validator("content", mode="before")
    @classmethod
    def _no_null(cls, value: Any) -> Any:
        return "" if value is None else value  # the wire form allows null; we keep ""


class ToolMessage(_Record):
    role: Literal["tool"] = "tool"
    tool_call_id: str
    name: str
    content: str

    @field_validator("content")
    @classmethod
    def _inert(cls, value: str) -> str:
        return inert_markup(value)


Message = Annotated[SystemMessage | UserMessage | AssistantMessage | ToolMessage,
                    Field(discriminator="role")]

MESSAGES: TypeAdapter[list[Message]] = TypeAdapter(list[Message])


def to_wire(messages: list[Message] | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The OpenAI chat-completions form of typed messages (or of dicts in that form, checked
    first). ``content`` is always a string: llama.cpp's server answers HTTP 500 to
    ``content: null``."""
    typed = messages if all(isinstance(m, BaseModel) for m in messages) \
        else MESSAGES.validate_python(messages)  # typed records need no second check
    return MESSAGES.dump_python(typed, mode="json", exclude_none=True)


_SURROGATE = re.compile(r"[\ud800-\udfff]")


def utf8_text(text: str) -> str:
    """``text`` as text every UTF-8 writer takes: a surrogate pair (from JSON's
    ``\\ud83d\\ude00``) is joined into its character, and a lone surrogate — a byte that is
    not UTF-8, read with ``surrogateescape`` (a Latin-1 "é" on the command line, a file
    name), or half a pair cut off — is U+FFFD, as a bad byte read with ``errors="replace"``
    is. (Without: no request could carry it, nor a trace keep it.)"""
    if not _SURROGATE.search(text):
        return text
    joined = text.encode("utf-16", "surrogatepass").decode("utf-16", "surrogatepass")
    return _SURROGATE.sub("\ufffd", joined)


def utf8_data(value: Any) -> Any:
    """JSON data (text, lists, mappings: a reply's calls, a tool's result) with its text as
    :func:`utf8_text` makes it; ``value`` itself when nothing needs it."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):  # not JSON data: left as it is
        return value
    clean = utf8_text(text)
    return value if clean is text else json.loads(clean)
