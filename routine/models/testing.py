"""Test doubles shipped with the library.

* :class:`ScriptedModel` replays a queue of replies and records every request;
  ``assert_complete()`` checks the script was used up.
* :class:`FunctionModel` computes each reply with a function of the request.
* :func:`forbid_model_requests` makes any real model request raise, so unit
  tests cannot reach a network model by accident.

A reply in a script is a :class:`ModelReply`, a string (text the model wrote,
e.g. a JSON call), or a ``call(name, **arguments)`` structured tool call.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from .base import ModelReply, TurnGuide, model_requests_allowed, set_model_requests_allowed
from .messages import Message

__all__ = ["ScriptedModel", "FunctionModel", "call", "text_call", "forbid_model_requests",
           "Request"]


@dataclass
class Request:
    """One request a double received: exactly what the run sent."""

    messages: list[Message]
    tools: list[dict[str, Any]]
    settings: dict[str, Any]
    guide: TurnGuide | None = None

    @property
    def tool_names(self) -> list[str]:
        return [t["function"]["name"] for t in self.tools]


def call(name: str, /, **arguments: Any) -> ModelReply:
    """A reply with one structured tool call."""
    return ModelReply(tool_calls=[{"id": f"call_{name}", "type": "function",
                                   "function": {"name": name,
                                                "arguments": json.dumps(arguments)}}])


def text_call(name: str, /, **arguments: Any) -> str:
    """A reply that writes the call as text, the way small local models do."""
    return "<tool_call>\n" + json.dumps({"name": name, "arguments": arguments}) + "\n</tool_call>"


def _as_reply(item: ModelReply | str) -> ModelReply:
    return ModelReply(content=item) if isinstance(item, str) else item


class ScriptedModel:
    """Replays ``replies`` in order; raises AssertionError when asked for more.

    With ``inputs``, a turn that reads input values from the user's words (an ask step's,
    inputs-first) is answered with them (null for the others) and is not one of the
    scripted replies or recorded requests."""

    def __init__(self, replies: list[ModelReply | str], name: str = "scripted",
                 inputs: dict[str, Any] | None = None):
        self.name = name
        self.replies = [_as_reply(r) for r in replies]
        self.requests: list[Request] = []
        self.inputs = inputs

    async def complete(self, messages: list[Message], tools: list[dict[str, Any]], *,
                       guide: TurnGuide | None = None, **settings: Any) -> ModelReply:
        if self.inputs is not None and guide is not None and guide.label == "inputs":
            wanted = (guide.schema or {}).get("properties", {})
            return ModelReply(content=json.dumps({n: self.inputs.get(n) for n in wanted},
                                                 default=str))
        self.requests.append(Request(list(messages), list(tools), settings, guide))
        if len(self.requests) > len(self.replies):
            raise AssertionError(f"ScriptedModel ran out of replies after {len(self.replies)}")
        return self.replies[len(self.requests) - 1]

    def assert_complete(self) -> None:
        """Every scripted reply was requested."""
        assert len(self.requests) == len(self.replies), (
            f"{len(self.replies) - len(self.requests)} scripted replies were never requested")


class FunctionModel:
    """Computes each reply with ``function(request) -> ModelReply | str``."""

    def __init__(self, function: Callable[[Request], ModelReply | str], name: str = "function"):
        self.name = name
        self.function = function
        self.requests: list[Request] = []

    async def complete(self, messages: list[Message], tools: list[dict[str, Any]], *,
                       guide: TurnGuide | None = None, **settings: Any) -> ModelReply:
        request = Request(list(messages), list(tools), settings, guide)
        self.requests.append(request)
        return _as_reply(self.function(request))


@contextlib.contextmanager
def forbid_model_requests() -> Iterator[None]:
    """Within the block, real model clients raise ModelRequestsForbidden."""
    before = model_requests_allowed()
    set_model_requests_allowed(False)
    try:
        yield
    finally:
        set_model_requests_allowed(before)
