"""Model clients: any OpenAI-compatible chat-completions endpoint.

:class:`OpenAIModel` talks to OpenAI, vLLM, llama.cpp's server or anything that
speaks the same API, through the ``openai`` SDK (async; the executor's sync
API wraps it). Endpoint settings come from arguments or the environment:
``ROUTINE_BASE_URL``, ``ROUTINE_MODEL``, ``ROUTINE_API_KEY``, falling back to
``OPENAI_BASE_URL``, ``OPENAI_MODEL``, ``OPENAI_API_KEY``.

Every client implements the :class:`Model` protocol, which the test doubles in
``routine.models.testing`` implement too.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import ssl
import weakref
from typing import Any, Literal

import httpx
import openai

from ..errors import (
    ModelRateLimited,
    ModelRequestError,
    ModelRequestsForbidden,
    ModelServerError,
    ModelUnavailable,
    ModelUnreachable,
)
from .base import ModelReply, TurnGuide, model_requests_allowed
from .guided import allowed_names, reply_schema
from .messages import Message, Usage, to_wire

__all__ = ["OpenAIModel", "endpoint_from_env"]

def endpoint_from_env(base_url: str | None = None, model: str | None = None,
                      api_key: str | None = None) -> tuple[str | None, str | None, str | None]:
    """(base_url, model, api_key) from the arguments, else ROUTINE_*, else OPENAI_*."""
    env = os.environ.get
    return (
        base_url or env("ROUTINE_BASE_URL") or env("OPENAI_BASE_URL"),
        model or env("ROUTINE_MODEL") or env("OPENAI_MODEL"),
        api_key or env("ROUTINE_API_KEY") or env("OPENAI_API_KEY"),
    )


# settings that are options of the request (as in ``chat.completions.create``), not body
_REQUEST_OPTIONS = ("extra_headers", "extra_query", "extra_body", "timeout")


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """The TLS settings every client shares: loading the certificates takes ~50-90 ms, once
    per process instead of once per client (the environment's SSL_CERT_FILE/DIR apply)."""
    return httpx.create_ssl_context(trust_env=True)


def _constrained(request: dict[str, Any], guide: TurnGuide, tools: list[dict[str, Any]],
                 how: str) -> dict[str, Any]:
    """The request with the reply constrained to what the routine allows at this turn."""
    out = dict(request)
    if how == "tool_choice" and guide.schema is None:
        names = allowed_names(guide, tools)
        out["tools"] = [t for t in tools if t["function"]["name"] in names]
        out["tool_choice"] = ({"type": "function", "function": {"name": names[0]}}
                              if len(names) == 1 else "required")
        return out
    schema = guide.schema or reply_schema(guide, tools)
    if how == "llama":
        out["response_format"] = {"type": "json_object", "schema": schema}
    else:
        out["response_format"] = {"type": "json_schema",
                                  "json_schema": {"name": "reply", "schema": schema}}
    return out


def _close_clients(clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop,
                                                      openai.AsyncOpenAI]) -> None:
    """A model that is let go closes its clients' connections on loops still running (the
    blocking API's loop, an application's); a closed loop took its connections with it."""
    for loop, client in list(clients.items()):
        if loop.is_running():
            with contextlib.suppress(RuntimeError):
                asyncio.run_coroutine_threadsafe(client.close(), loop)


class OpenAIModel:
    """A chat-completions endpoint.

    Args:
        model: the model name the server knows.
        base_url: e.g. ``http://127.0.0.1:8000/v1``; None for OpenAI itself.
        api_key: the key; local servers accept any (``"none"`` is sent when unset).
        timeout: seconds per request.
        max_retries: retries of a request that failed on the connection, timed out, or got
            HTTP 408/409/429/5xx: exponential backoff with jitter, honouring Retry-After
            (the ``openai`` SDK's policy).
        max_reply_chars: a longer reply is cut there (a hostile or broken server cannot
            fill memory and traces); the run sees a reply it cannot read.
        structured: how a guided turn (``TurnGuide.constrain``) is constrained:
            ``json_schema`` (OpenAI's ``response_format``, vLLM's structured outputs),
            ``llama`` (llama.cpp's ``response_format`` with a ``schema``: a grammar),
            ``tool_choice`` (the tools narrowed to the allowed ones, a call required), or
            ``off``. An endpoint that refuses the constraint (HTTP 400) is asked again
            without it, and later turns stay free; ``ModelReply.decoding`` says which ran.
        native_tools: send ``tools`` in the request (False: the caller puts tool
            descriptions in the prompt itself).
        client: an ``openai.AsyncOpenAI`` to use instead of creating one.
    """

    def __init__(self, model: str, base_url: str | None = None, api_key: str | None = None,
                 timeout: float = 120.0, native_tools: bool = True,
                 client: openai.AsyncOpenAI | None = None, max_retries: int = 4,
                 max_reply_chars: int = 100_000,
                 structured: Literal["json_schema", "llama", "tool_choice", "off"] = "json_schema",
                 **default_settings: Any):
        self.name = model
        self.base_url = base_url
        self.native_tools = native_tools
        self.default_settings = default_settings
        self.max_reply_chars = max_reply_chars
        self.structured = structured
        self._given_client = client
        self._client_args = {"base_url": base_url, "api_key": api_key or "none",
                             "timeout": timeout, "max_retries": max_retries}
        # one client per event loop, kept while the loop lives (connections cannot outlive
        # their loop); the blocking API runs every call on one loop, so one client in all
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop,
                                                 openai.AsyncOpenAI] = weakref.WeakKeyDictionary()
        weakref.finalize(self, _close_clients, self._clients)

    def _http(self) -> openai.AsyncOpenAI:
        """The client for the running event loop, made once per loop."""
        if self._given_client is not None:
            return self._given_client
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = self._clients[loop] = openai.AsyncOpenAI(
                **self._client_args, http_client=openai.DefaultAsyncHttpxClient(
                    verify=_ssl_context()))
        return client

    async def _create(self, messages: list[dict[str, Any]], request: dict[str, Any]) -> Any:
        """POST the request as it is and return the reply's JSON. The request is plain JSON
        already, so the SDK's per-request walk over every message and schema
        (``chat.completions.create`` transforms its typed parameters: the largest cost of a
        request on a fast server) is skipped, and so is building typed response objects
        that are read once; its retries, backoff and HTTP errors stay."""
        body = {"model": self.name, "messages": messages,
                **{k: v for k, v in request.items() if k not in _REQUEST_OPTIONS}}
        body.update(request.get("extra_body") or {})
        options: dict[str, Any] = {}
        if request.get("extra_headers"):
            options["headers"] = request["extra_headers"]
        if request.get("extra_query"):
            options["params"] = request["extra_query"]
        if request.get("timeout") is not None:
            options["timeout"] = request["timeout"]
        response = await self._http().post("/chat/completions", body=body,
                                           cast_to=httpx.Response,
                                           options=options)  # type: ignore[arg-type]
        return response.json()

    async def complete(self, messages: list[Message], tools: list[dict[str, Any]], *,
                       guide: TurnGuide | None = None, **settings: Any) -> ModelReply:
        if not model_requests_allowed():
            raise ModelRequestsForbidden(
                "real model requests are disabled (routine.models.testing forbids them in unit tests)")
        request: dict[str, Any] = {**self.default_settings, **settings}
        if tools and self.native_tools:
            request["tools"] = tools
        decoding = "free"
        if guide is not None and guide.constrain and self.structured != "off":
            decoding = self.structured
            request = _constrained(request, guide, tools, self.structured)
        clean = to_wire(messages)
        try:
            try:
                response = await self._create(clean, request)
            except openai.BadRequestError:
                if decoding == "free":
                    raise
                request = {**self.default_settings, **settings}  # once more, unconstrained
                if tools and self.native_tools:
                    request["tools"] = tools
                response = await self._create(clean, request)
                self.structured, decoding = "off", "free"  # the constraint was refused
        except (openai.APIConnectionError, openai.APITimeoutError) as exc:
            raise ModelUnreachable(f"cannot reach the model at {self.base_url or 'OpenAI'}: "
                                   f"{exc}") from exc
        except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
            raise ModelUnavailable(f"the endpoint refused the API key: {exc}") from exc
        except openai.APIStatusError as exc:
            status = exc.status_code
            if status == 429:
                raise ModelRateLimited(f"the endpoint is rate-limiting (HTTP 429) after the "
                                       f"retries: {exc.message}", status) from exc
            if status >= 500 or status in (408, 409):
                raise ModelServerError(f"the endpoint failed (HTTP {status}): {exc.message}",
                                       status) from exc
            raise ModelRequestError(f"the endpoint refused the request (HTTP {status}): "
                                    f"{exc.message}", status) from exc
        except (openai.APIError, ValueError) as exc:  # e.g. a body that is not JSON
            raise ModelServerError(f"the endpoint's reply is not a chat completion: "
                                   f"{type(exc).__name__}: {exc}") from exc
        try:
            choice = response["choices"][0]
            message = choice["message"]
            calls = [
                {"id": c.get("id"), "type": "function",
                 "function": {"name": c["function"].get("name"),
                              "arguments": c["function"].get("arguments")}}
                for c in (message.get("tool_calls") or [])
                if isinstance(c, dict) and isinstance(c.get("function"), dict)
            ]
            content = message.get("content") or ""
            if not isinstance(content, str):
                raise TypeError(f"the message's content is {type(content).__name__}, not text")
            if len(content) > self.max_reply_chars:
                content = content[:self.max_reply_chars]
            if sum(len(c["function"]["arguments"] or "") for c in calls) > self.max_reply_chars:
                calls = []  # a flood of calls or giant arguments: nothing to run
                content = content or "(tool calls longer than the reply limit were dropped)"
            counts = response.get("usage") or {}
            usage = Usage(prompt_tokens=counts.get("prompt_tokens") or 0,
                          completion_tokens=counts.get("completion_tokens") or 0)
            finish_reason = choice.get("finish_reason")
        except (AttributeError, IndexError, KeyError, TypeError) as exc:  # no choices...
            raise ModelServerError(f"the endpoint's reply is not a chat completion "
                                   f"({type(exc).__name__}: {exc}): {str(response)[:200]!r}") from None
        return ModelReply(content, calls, usage, finish_reason, decoding)

    async def aclose(self) -> None:
        """Close the HTTP connections of the current loop's client (a later request opens
        new ones)."""
        if self._given_client is None:
            client = self._clients.pop(asyncio.get_running_loop(), None)
            if client is not None:
                await client.close()
