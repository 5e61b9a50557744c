"""Model clients: any OpenAI-compatible chat-completions endpoint.

:class:`OpenAIModel` talks to OpenAI, vLLM, llama.cpp's server or anything that
speaks the same API, through the ``openai`` SDK (async; the executor's sync
API wraps it). Endpoint settings come from arguments or the environment:
``ROUTINE_BASE_URL``, ``ROUTINE_MODEL``, ``ROUTINE_API_KEY``, falling back to
``OPENAI_BASE_URL``, ``OPENAI_MODEL``, ``OPENAI_API_KEY``.

Every client implements the :class:`Model` protocol, which the test doubles in
``routine.testing`` implement too.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import openai

from .errors import ModelRequestError, ModelRequestsForbidden, ModelUnavailable
from .trace import Usage

__all__ = ["Model", "ModelReply", "OpenAIModel", "endpoint_from_env", "model_requests_allowed",
           "set_model_requests_allowed"]

_ALLOW_REQUESTS = True


def set_model_requests_allowed(allowed: bool) -> None:
    """Allow or forbid requests to real models (unit tests forbid them)."""
    global _ALLOW_REQUESTS
    _ALLOW_REQUESTS = allowed


def model_requests_allowed() -> bool:
    return _ALLOW_REQUESTS


@dataclass
class ModelReply:
    """One assistant reply."""

    content: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    finish_reason: str | None = None


@runtime_checkable
class Model(Protocol):
    """What the executor needs from a model."""

    name: str

    async def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]],
                       **settings: Any) -> ModelReply: ...


def endpoint_from_env(base_url: str | None = None, model: str | None = None,
                      api_key: str | None = None) -> tuple[str | None, str | None, str | None]:
    """(base_url, model, api_key) from the arguments, else ROUTINE_*, else OPENAI_*."""
    env = os.environ.get
    return (
        base_url or env("ROUTINE_BASE_URL") or env("OPENAI_BASE_URL"),
        model or env("ROUTINE_MODEL") or env("OPENAI_MODEL"),
        api_key or env("ROUTINE_API_KEY") or env("OPENAI_API_KEY"),
    )


class OpenAIModel:
    """A chat-completions endpoint.

    Args:
        model: the model name the server knows.
        base_url: e.g. ``http://127.0.0.1:8000/v1``; None for OpenAI itself.
        api_key: the key; local servers accept any (``"none"`` is sent when unset).
        timeout: seconds per request.
        native_tools: send ``tools`` in the request (False: the caller puts tool
            descriptions in the prompt itself).
        client: an ``openai.AsyncOpenAI`` to use instead of creating one.
    """

    def __init__(self, model: str, base_url: str | None = None, api_key: str | None = None,
                 timeout: float = 120.0, native_tools: bool = True,
                 client: openai.AsyncOpenAI | None = None, **default_settings: Any):
        self.name = model
        self.base_url = base_url
        self.native_tools = native_tools
        self.default_settings = default_settings
        self._given_client = client
        self._client_args = {"base_url": base_url, "api_key": api_key or "none",
                             "timeout": timeout, "max_retries": 1}
        self._client: openai.AsyncOpenAI | None = client
        self._loop: asyncio.AbstractEventLoop | None = None

    def _http(self) -> openai.AsyncOpenAI:
        """The client for the running event loop (connections cannot outlive their loop)."""
        if self._given_client is not None:
            return self._given_client
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client = openai.AsyncOpenAI(**self._client_args)
            self._loop = loop
        return self._client

    async def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]],
                       **settings: Any) -> ModelReply:
        if not _ALLOW_REQUESTS:
            raise ModelRequestsForbidden(
                "real model requests are disabled (routine.testing forbids them in unit tests)")
        request: dict[str, Any] = {**self.default_settings, **settings}
        if tools and self.native_tools:
            request["tools"] = tools
        # llama.cpp's server answers HTTP 500 to `content: null`; send "" instead.
        clean = [{**m, "content": m.get("content") or ""} for m in messages]
        try:
            response = await self._http().chat.completions.create(
                model=self.name, messages=clean, **request)
        except (openai.APIConnectionError, openai.APITimeoutError) as exc:
            raise ModelUnavailable(f"cannot reach the model at {self.base_url or 'OpenAI'}: "
                                   f"{exc}") from exc
        except openai.AuthenticationError as exc:
            raise ModelUnavailable(f"the endpoint refused the API key: {exc}") from exc
        except openai.APIStatusError as exc:
            if exc.status_code >= 500:
                raise
            raise ModelRequestError(f"the endpoint refused the request (HTTP {exc.status_code}): "
                                    f"{exc.message}") from exc
        choice = response.choices[0]
        message = choice.message
        calls = [
            {"id": c.id, "type": "function",
             "function": {"name": c.function.name, "arguments": c.function.arguments}}
            for c in (message.tool_calls or []) if getattr(c, "function", None)
        ]
        usage = Usage()
        if response.usage is not None:
            usage = Usage(prompt_tokens=response.usage.prompt_tokens or 0,
                          completion_tokens=response.usage.completion_tokens or 0)
        return ModelReply(message.content or "", calls, usage, choice.finish_reason)

    async def aclose(self) -> None:
        """Close the HTTP connections of the current loop's client."""
        if self._client is not None and self._given_client is None:
            await self._client.close()
            self._client = None
