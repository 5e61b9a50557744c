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
import json
import os
import re
import ssl
import weakref
from collections.abc import AsyncIterator
from typing import Any, Literal
from urllib.parse import unquote

import httpx
import openai

from ..errors import (
    ModelRateLimited,
    ModelRequestError,
    ModelRequestsForbidden,
    ModelServerError,
    ModelUnavailable,
    ModelUnreachable,
    RoutineError,
)
from .base import ModelReply, TurnGuide, model_requests_allowed
from .guided import allowed_names, grammar_safe, reply_schema
from .messages import Message, Usage, to_wire, utf8_text
from .parsing import split_reasoning

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
# how endpoints refuse a request body they cannot take (a response_format, a tool_choice, a
# parameter they do not know): OpenAI and vLLM answer 400, FastAPI/TGI-style servers 422,
# others 404, 415 or 501
_REFUSED = frozenset({400, 404, 415, 422, 501})
# OpenAI's reasoning models: "Unsupported parameter: 'max_tokens' is not supported with this
# model. Use 'max_completion_tokens' instead.", "Unsupported value: 'temperature' does not
# support 0 with this model. Only the default (1) value is supported."
_UNSUPPORTED_RE = re.compile(r"Unsupported (?:parameter|value): '(\w+)'")
_ADAPTABLE = frozenset({"max_tokens", "temperature", "seed", "top_p"})


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
        out["response_format"] = {"type": "json_object", "schema": grammar_safe(schema)}
    else:
        out["response_format"] = {"type": "json_schema",
                                  "json_schema": {"name": "reply", "schema": schema}}
    return out


def _status_text(exc: openai.APIStatusError) -> str:
    """The SDK's message of a refusal, with the body when the message left it out (a body
    not shaped like OpenAI's ``{"error": {...}}``: FastAPI's ``{"detail": ...}``)."""
    message = str(exc.message)
    with contextlib.suppress(Exception):
        body = exc.response.text.strip()
        if body and body[:100] not in message:
            message = f"{message}: {body[:300]}"
    return message


def _constraint_key(request: dict[str, Any]) -> str:
    """What a constrained request asks of the endpoint (to remember one it refused)."""
    return json.dumps([request.get("response_format"), request.get("tool_choice"),
                       [t["function"]["name"] for t in request.get("tools") or []]],
                      sort_keys=True, default=str)


async def _close_with_loop(client: openai.AsyncOpenAI) -> AsyncIterator[None]:
    """Started once per client: a loop closes its async generators when it shuts down
    (``asyncio.run`` does), so the client's connections close with their loop instead of
    being left open (an ``asyncio.run`` per request would keep a socket each time)."""
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            await client.close()


def _close_clients(clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop,
                                                      openai.AsyncOpenAI]) -> None:
    """A model that is let go closes its clients' connections on loops still running (the
    blocking API's loop, an application's); those of closed loops are dropped as they are
    found (see ``OpenAIModel._http``)."""
    for loop, client in list(clients.items()):
        if loop.is_running():
            with contextlib.suppress(RuntimeError):
                asyncio.run_coroutine_threadsafe(client.close(), loop)


def _endpoint_url(base_url: str | None) -> str | None:
    """``base_url`` when it can be an endpoint's address, else one RoutineError saying why:
    a port past 65535 or an unclosed IPv6 bracket raised out of the run at its first
    request (an ExceptionGroup, an InvalidURL), and ``localhost:8000/v1`` (no scheme) or a
    space in the host failed only then."""
    if base_url is None:
        return None
    expected = "an endpoint's URL, e.g. http://127.0.0.1:8000/v1"
    try:
        url = httpx.URL(base_url)
        port = url.port
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise RoutineError(f"base URL {base_url!r}: {exc} (expected {expected})") from None
    if url.scheme not in ("http", "https"):
        raise RoutineError(f"base URL {base_url!r} does not start with http:// or https:// "
                           f"(expected {expected})")
    if not url.host:
        raise RoutineError(f"base URL {base_url!r} names no host (expected {expected})")
    if "%" in url.host and ":" not in url.host:  # a space in it (%20), an IPv6 zone aside
        raise RoutineError(f"base URL {base_url!r}: {unquote(url.host)!r} is not a host "
                           f"name (expected {expected})")
    if port is not None and not 0 < port < 65536:
        raise RoutineError(f"base URL {base_url!r}: port {port} is not one (1 to 65535; "
                           f"expected {expected})")
    return base_url


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
            ``off``. An endpoint that refuses the constraint (HTTP 400, 404, 415, 422 or
            501) is asked again without it; that constraint is not sent again (others
            are: a server may refuse one schema's feature), and an endpoint that refused
            three and took none is asked free from then on;
            ``ModelReply.decoding`` says which ran and ``ModelReply.note`` why
            (``refusal`` keeps the endpoint's words).
        native_tools: send ``tools`` in the request (False: the caller puts tool
            descriptions in the prompt itself).
        client: an ``openai.AsyncOpenAI`` to use instead of creating one.
        default_settings: sent with every request (``extra_body={...}``,
            ``extra_headers``...); a setting given as None is not sent at all (the server's
            default). A sampling parameter the endpoint refuses as unsupported (OpenAI's
            reasoning models: ``max_tokens``, ``temperature``) is adapted once — renamed to
            ``max_completion_tokens``, or left out — and the reply's ``note`` says so.

    A reasoning model's thinking (``reasoning_content`` / ``reasoning``, or ``<think>``
    blocks in the text) is kept out of the reply's content, in ``ModelReply.reasoning``.
    """

    def __init__(self, model: str, base_url: str | None = None, api_key: str | None = None,
                 timeout: float = 120.0, native_tools: bool = True,
                 client: openai.AsyncOpenAI | None = None, max_retries: int = 4,
                 max_reply_chars: int = 100_000,
                 structured: Literal["json_schema", "llama", "tool_choice", "off"] = "json_schema",
                 **default_settings: Any):
        self.name = model
        self.base_url = _endpoint_url(base_url)
        self.native_tools = native_tools
        self.default_settings = default_settings
        self.max_reply_chars = max_reply_chars
        self.structured = structured
        # constraints the endpoint refused (each turn's schema: a server may refuse one
        # schema's feature and take the others); none ever taken and three refused: off
        self._refused: set[str] = set()
        self._constrained_ok = False
        self.refusal = ""  # why guided turns run free: the endpoint's refusal of the constraint
        self._renamed: dict[str, str] = {}  # sampling parameters the endpoint knows by another name
        self._dropped: set[str] = set()  # ... and those it refuses altogether
        self._given_client = client
        self._secret = api_key if api_key and len(api_key) >= 8 else ""
        self._client_args = {"base_url": base_url, "api_key": api_key or "none",
                             "timeout": timeout, "max_retries": max_retries}
        # one client per event loop, kept while the loop lives (connections cannot outlive
        # their loop); the blocking API runs every call on one loop, so one client in all
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop,
                                                 openai.AsyncOpenAI] = weakref.WeakKeyDictionary()
        self._closers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop,
                                                 AsyncIterator[None]] = weakref.WeakKeyDictionary()
        weakref.finalize(self, _close_clients, self._clients)

    def _http(self) -> openai.AsyncOpenAI:
        """The client for the running event loop, made once per loop."""
        if self._given_client is not None:
            return self._given_client
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            # a client holds its loop, so a closed loop's entry never leaves the weak map by
            # itself (``asyncio.run`` per request kept a socket and a loop each time); let go,
            # its connections are closed as it is collected
            for closed in [old for old in self._clients if old.is_closed()]:
                self._clients.pop(closed)
                self._closers.pop(closed, None)
            client = self._clients[loop] = openai.AsyncOpenAI(
                **self._client_args, http_client=openai.DefaultAsyncHttpxClient(
                    verify=_ssl_context()))
            closer = _close_with_loop(client)  # closed by the loop's shutdown (asyncio.run)
            with contextlib.suppress(StopIteration):
                closer.__anext__().send(None)  # (started: the loop now knows it)
            self._closers[loop] = closer
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
        try:
            return response.json()
        except (ValueError, RecursionError):  # a proxy's HTML page, a stream, deep nesting
            kind = response.headers.get("content-type", "") or "no content type"
            stream = (" — a stream: Routine asks for one JSON reply (stream=false); the "
                      "server or a proxy in between streams anyway" if "event-stream" in kind
                      else "")
            raise ModelServerError(self._masked(
                f"the endpoint's reply is not a chat completion: {response.url} answered HTTP "
                f"{response.status_code} with {kind}{stream}: {response.text[:200]!r}"),
                response.status_code) from None

    def _masked(self, text: str) -> str:
        """``text`` without the API key (a server may echo it in an error)."""
        return text.replace(self._secret, "***") if self._secret else text

    def _adapted(self, request: dict[str, Any]) -> dict[str, Any]:
        """The request without settings given as None, and with the sampling parameters the
        endpoint refused renamed or left out."""
        out = {}
        for key, value in request.items():
            if value is None or key in self._dropped:
                continue
            out[self._renamed.get(key, key)] = value
        return out

    def _adapt(self, message: str, request: dict[str, Any]) -> str:
        """Learn from a refusal of a sampling parameter (see ``_UNSUPPORTED_RE``); returns
        what was changed, or "" when the refusal is not about one."""
        match = _UNSUPPORTED_RE.search(message)
        name = match.group(1) if match else ""
        if name not in _ADAPTABLE or name not in request or name in self._renamed \
                or name in self._dropped:  # (adapted already: the refusal is about more)
            return ""
        if name == "max_tokens" and "max_completion_tokens" in message:
            self._renamed[name] = "max_completion_tokens"
            return "max_tokens sent as max_completion_tokens (the endpoint's name for it)"
        self._dropped.add(name)
        return f"{name} not sent (the endpoint refuses it: {message[:160]})"

    async def _send(self, messages: list[dict[str, Any]], base: dict[str, Any],
                    request: dict[str, Any], decoding: str) -> tuple[Any, str, list[str]]:
        """POST, adapting to what the endpoint refuses: a sampling parameter it does not
        support, then a constraint it cannot take (asked again free, and later requests
        too). Returns (the reply's JSON, the decoding that ran, notes of what changed)."""
        notes: list[str] = []
        refused: tuple[str, str] | None = None  # (the constraint, why): learnt if free works
        for _ in range(len(_ADAPTABLE) + 2):
            try:
                response = await self._create(messages, self._adapted(request))
            except openai.APIStatusError as exc:
                if exc.status_code not in _REFUSED:
                    raise
                message = self._masked(_status_text(exc))
                change = self._adapt(message, request)
                if change:
                    notes.append(change)
                    continue
                if decoding == "free":
                    raise  # (refused free too: not the constraint's fault, nothing learnt)
                refused = (_constraint_key(request), f"the endpoint refused {decoding} "
                           f"constraints (HTTP {exc.status_code}): {message[:300]}")
                decoding, request = "free", base
                continue
            if decoding != "free":
                self._constrained_ok = True
            elif refused is not None:  # the same request went through free: the constraint
                self._refused.add(refused[0])  # was what it refused
                self.refusal = refused[1]
                if not self._constrained_ok and len(self._refused) >= 3:
                    self.structured = "off"  # never taken, three times: it has none
                notes.append(f"{self.refusal}; sent free")
            return response, decoding, notes
        raise AssertionError("unreachable: each retry above adapts one more parameter")

    async def complete(self, messages: list[Message], tools: list[dict[str, Any]], *,
                       guide: TurnGuide | None = None, **settings: Any) -> ModelReply:
        if not model_requests_allowed():
            raise ModelRequestsForbidden(
                "real model requests are disabled (routine.models.testing forbids them in unit tests)")
        request: dict[str, Any] = {**self.default_settings, **settings}
        if tools and self.native_tools:
            request["tools"] = tools
        base, decoding, notes = request, "free", []
        if guide is not None and guide.constrain:
            if self.structured != "off":
                decoding = self.structured
                request = _constrained(request, guide, tools, self.structured)
                if _constraint_key(request) in self._refused:
                    decoding, request = "free", base
            if decoding == "free" and self.refusal:
                notes.append(f"sent free: {self.refusal}")
        clean = to_wire(messages)
        try:
            response, decoding, changed = await self._send(clean, base, request, decoding)
            notes += changed
        except (openai.APIConnectionError, openai.APITimeoutError) as exc:
            raise ModelUnreachable(f"cannot reach the model at {self.base_url or 'OpenAI'}: "
                                   f"{exc}") from exc
        except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
            raise ModelUnavailable(self._masked(f"the endpoint refused the API key: {exc}")) from exc
        except openai.APIStatusError as exc:
            status, message = exc.status_code, self._masked(_status_text(exc))
            if status == 429:
                raise ModelRateLimited(f"the endpoint is rate-limiting (HTTP 429) after the "
                                       f"retries: {message}", status) from exc
            if status >= 500 or status in (408, 409):
                raise ModelServerError(f"the endpoint failed (HTTP {status}): {message}",
                                       status) from exc
            where = ""
            if status == 404:
                where = (f" at {exc.request.url} (is the base URL right? OpenAI-compatible "
                         "servers usually serve it under /v1; or the model name unknown)")
            raise ModelRequestError(f"the endpoint refused the request (HTTP {status}){where}: "
                                    f"{message}", status) from exc
        except openai.APIError as exc:
            raise ModelServerError(self._masked(f"the endpoint's reply is not a chat "
                                                f"completion: {type(exc).__name__}: {exc}")) from exc
        try:
            choice = response["choices"][0]
            message = choice["message"]
            raw_calls = message.get("tool_calls") or []
            if isinstance(raw_calls, dict):  # one call, not in a list
                raw_calls = [raw_calls]
            calls = [
                {"id": c.get("id"), "type": "function",
                 "function": {"name": c["function"].get("name"),
                              "arguments": c["function"].get("arguments")}}
                for c in raw_calls
                if isinstance(c, dict) and isinstance(c.get("function"), dict)
            ]
            content = message.get("content") or ""
            if isinstance(content, list):  # content parts: the text ones, in order
                content = "".join(part.get("text") or "" for part in content
                                  if isinstance(part, dict) and part.get("type", "text") == "text")
            if not isinstance(content, str):
                raise TypeError(f"the message's content is {type(content).__name__}, not text")
            # (a lone surrogate from a JSON escape, half an emoji a server cut: no later
            # request could carry it back, nor a trace keep it; calls: see parse_reply)
            content = utf8_text(content)
            thinking, content = split_reasoning(content)
            given = message.get("reasoning_content") or message.get("reasoning") or ""
            given = utf8_text(given) if isinstance(given, str) else ""
            reasoning = "\n\n".join(t for t in (given, thinking) if t)
            finish_reason = choice.get("finish_reason")
            if finish_reason is not None and not isinstance(finish_reason, str):
                raise TypeError(f"finish_reason is {type(finish_reason).__name__}, not text")
            cut = ""
            if len(content) > self.max_reply_chars:
                content, cut = content[:self.max_reply_chars], "text"
            size = sum(len(a) if isinstance(a, str) else len(json.dumps(a, default=str))
                       for a in (c["function"]["arguments"] for c in calls) if a is not None)
            if size > self.max_reply_chars:
                calls, cut = [], "tool calls"  # a flood of calls or giant arguments: none run
                content = content or "(tool calls longer than the reply limit were dropped)"
            if cut:  # cut here as the endpoint cuts at max_tokens: never the answer as it is
                finish_reason = "length"
                notes.append(f"the reply's {cut} passed max_reply_chars="
                             f"{self.max_reply_chars}: cut")
            counts = response.get("usage") or {}
            usage = Usage(prompt_tokens=counts.get("prompt_tokens") or 0,
                          completion_tokens=counts.get("completion_tokens") or 0)
        except (AttributeError, IndexError, KeyError, TypeError, ValueError) as exc:
            # (no choices, a message that is not one, token counts that are not numbers...)
            raise ModelServerError(self._masked(  # (a body that echoes the key: not kept)
                f"the endpoint's reply is not a chat completion ({type(exc).__name__}: "
                f"{exc}): {str(response)[:200]!r}")) from None
        return ModelReply(content, calls, usage, finish_reason, decoding,
                          reasoning[:self.max_reply_chars], "; ".join(notes))

    async def aclose(self) -> None:
        """Close the HTTP connections of the current loop's client (a later request opens
        new ones)."""
        if self._given_client is None:
            client = self._clients.pop(asyncio.get_running_loop(), None)
            if client is not None:
                await client.close()
