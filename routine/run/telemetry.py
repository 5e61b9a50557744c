"""OpenTelemetry spans of a run, following the GenAI semantic conventions.

Off by default, and free when off: ``opentelemetry`` is not even imported. On with
``RunSettings(telemetry=True)`` (``routine run --telemetry``) or ``ROUTINE_OTEL=1`` in the
environment (read when Routine is imported; :func:`read_environment` reads it again). A run is one span tree::

    invoke_agent leave_balance          the run (per message, in a conversation)
    ├── turn find_employee              one turn: the step the run was on
    │   ├── chat qwen2.5-coder-1.5b     the model request
    │   └── execute_tool find_employee  each call the reply made
    └── turn answer
        └── chat qwen2.5-coder-1.5b

Attributes: ``gen_ai.operation.name``, ``gen_ai.request.model``, ``gen_ai.provider.name``,
``gen_ai.usage.input_tokens`` / ``output_tokens``, ``gen_ai.response.finish_reasons``,
``gen_ai.request.temperature`` / ``max_tokens`` / ``seed``, ``server.address`` / ``port``
(model spans); ``gen_ai.tool.name``, ``gen_ai.tool.call.id``, ``gen_ai.tool.type`` (tool
spans); ``gen_ai.agent.name`` and token totals (the run); and ``routine.*``: the routine's
name and version, the run id, the step, the turn's kind, the outcome. A failure sets the
span's status to ERROR with ``error.type``: the exception's class for a model request, the
error kind for a tool call (``tool_error``, ``off_routine``, ``timeout``...), the failure
kind for a turn or a run. Prompts, replies, arguments and results are recorded only when
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`` (they may hold personal data).

Where the spans go: the application's tracer provider when it set one (or runs under
``opentelemetry-instrument``); else one built from the standard environment variables:
``OTEL_TRACES_EXPORTER`` (``otlp``, the default, ``console``, ``none``),
``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``_PROTOCOL`` / ``_HEADERS``, ``OTEL_SERVICE_NAME``
(default ``routine``), ``OTEL_RESOURCE_ATTRIBUTES``. :func:`use_tracer_provider` gives
Routine a provider of its own without touching the global one (tests use it).
"""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import urlsplit

from ..errors import RoutineError
from ..models.base import ModelReply
from ..models.messages import to_wire
from .trace import ToolCallRecord

__all__ = ["ENV", "enabled", "read_environment", "use_tracer_provider", "provider_from_env", "run_span",
           "turn_span", "model_span", "tool_span"]

ENV = "ROUTINE_OTEL"
CAPTURE_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
_ON = ("1", "true", "yes", "on")

_provider: Any = None  # use_tracer_provider(); else the global one
_tracer: Any = None
_from_env = False  # ROUTINE_OTEL, read once (os.environ.get costs microseconds a call)


def read_environment() -> bool:
    """Read ``ROUTINE_OTEL`` again (it is read when Routine is imported); return it."""
    global _from_env
    _from_env = os.environ.get(ENV, "").lower() in _ON
    return _from_env


read_environment()


def enabled(settings: Any) -> bool:
    """Whether a run with these settings emits spans."""
    return _from_env or settings.telemetry


def use_tracer_provider(provider: Any | None) -> None:
    """Emit Routine's spans through ``provider`` (None: the global provider again)."""
    global _provider, _tracer
    _provider, _tracer = provider, None


def provider_from_env() -> Any:
    """An SDK tracer provider configured by the standard ``OTEL_*`` environment variables."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    named = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": "routine"}
    provider = TracerProvider(resource=Resource.create(named))
    for name in os.environ.get("OTEL_TRACES_EXPORTER", "otlp").split(","):
        exporter = _exporter(name.strip().lower())
        if exporter is not None:
            provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def _exporter(name: str) -> Any:
    if name in ("none", ""):
        return None
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if name != "otlp":
        raise RoutineError(f"OTEL_TRACES_EXPORTER={name!r} is not an exporter Routine knows "
                           "(expected otlp, console or none)")
    protocol = (os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf")
    package = "grpc" if protocol == "grpc" else "http"
    try:
        if package == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        raise RoutineError(f"OTLP export over {protocol} needs the package "
                           f"opentelemetry-exporter-otlp-proto-{package} (pip install "
                           "'routine[otel]'), or set OTEL_TRACES_EXPORTER=console") from None
    return OTLPSpanExporter()


def _get_tracer() -> Any:
    global _tracer
    if _tracer is None:
        try:
            from opentelemetry import trace
        except ImportError:
            raise RoutineError("telemetry is on (RunSettings.telemetry or ROUTINE_OTEL) but "
                               "OpenTelemetry is not installed: pip install 'routine[otel]'"
                               ) from None
        provider = _provider
        if provider is None:
            provider = trace.get_tracer_provider()
            if isinstance(provider, trace.ProxyTracerProvider):  # nobody set one: the SDK's
                provider = provider_from_env()
                trace.set_tracer_provider(provider)
        _tracer = provider.get_tracer("routine", _version())
    return _tracer


def _version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("routine")
    except PackageNotFoundError:
        return None


def _capture() -> bool:
    return os.environ.get(CAPTURE_ENV, "").lower() in _ON


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


class _Off:
    """What every hook returns when telemetry is off: enters, records and exits as nothing."""

    def __enter__(self) -> _Off:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    async def __aenter__(self) -> _Off:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def reply(self, reply: ModelReply) -> ModelReply:
        return reply

    def record(self, record: ToolCallRecord) -> ToolCallRecord:
        return record


_OFF = _Off()


class _Span:
    """One span, current while the block runs; ``finish`` adds what the block produced.
    An exception leaving the block is recorded on it (status ERROR, ``error.type``)."""

    def __init__(self, name: str, kind: str, attributes: dict[str, Any]):
        from opentelemetry.trace import SpanKind

        # an exception's message and stack only with content capture on: an endpoint's
        # error can quote the request (the user's words), as a tool's error can
        self._scope = _get_tracer().start_as_current_span(
            name, kind=getattr(SpanKind, kind), attributes=_clean(attributes),
            record_exception=_capture(), set_status_on_exception=_capture())
        self.span: Any = None

    def __enter__(self) -> _Span:
        self.span = self._scope.__enter__()
        return self

    def __exit__(self, kind: Any, error: BaseException | None, tb: Any) -> Any:
        if error is not None:
            self.span.set_attribute("error.type", type(error).__qualname__)
            if not _capture():  # its kind, not its text (recorded whole with capture on)
                from opentelemetry.trace import Status, StatusCode

                self.span.add_event("exception", {"exception.type": type(error).__qualname__})
                self.span.set_status(Status(StatusCode.ERROR))
            return self._scope.__exit__(kind, error, tb)
        try:
            self.finish()
        except BaseException as exc:  # our bug: the span still ends, with it
            self._scope.__exit__(type(exc), exc, exc.__traceback__)
            raise
        return self._scope.__exit__(None, None, None)

    async def __aenter__(self) -> _Span:  # (to share one ``async with`` line)
        return self.__enter__()

    async def __aexit__(self, kind: Any, error: BaseException | None, tb: Any) -> Any:
        return self.__exit__(kind, error, tb)

    def finish(self) -> None:
        """Attributes known only at the end (overridden)."""

    def fail(self, kind: str | None, description: str | None) -> None:
        """The span failed: its kind always; its text only with content capture on (a
        tool's error or a failure quotes what the user said: an email, an account)."""
        from opentelemetry.trace import Status, StatusCode

        self.span.set_attribute("error.type", kind or "_OTHER")
        self.span.set_status(Status(StatusCode.ERROR, description if _capture() else None))

    def set(self, attributes: dict[str, Any]) -> None:
        self.span.set_attributes(_clean(attributes))


def _clean(attributes: dict[str, Any]) -> dict[str, Any]:
    """Attribute values OpenTelemetry takes (no None)."""
    return {k: v for k, v in attributes.items() if v is not None}


def _provider_name(model: Any) -> str:
    """``openai`` for an OpenAI-compatible client (every endpoint Routine talks to, the
    embedded llama.cpp server too); the model's own ``provider``; else ``_OTHER``."""
    named = getattr(model, "provider", None)
    if isinstance(named, str):
        return named
    return "openai" if hasattr(model, "base_url") else "_OTHER"


def _routine_attributes(state: Any) -> dict[str, Any]:
    trace = state.trace
    return {"routine.name": trace.routine, "routine.version": trace.routine_version,
            "routine.run_id": trace.run_id}


# ------------------------------------------------------------------ the run
class _RunSpan(_Span):
    def __init__(self, state: Any, model: Any):
        self.state = state
        trace = state.trace
        super().__init__(f"invoke_agent {trace.routine or 'routine'}", "INTERNAL", {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": trace.routine or "routine",
            "gen_ai.request.model": trace.model or None,
            "gen_ai.provider.name": _provider_name(model),
            **_routine_attributes(state)})
        self._turns = len(trace.turns)
        self._usage = trace.usage

    def finish(self) -> None:
        trace = self.state.trace
        used = trace.usage
        self.set({"routine.outcome": trace.outcome,
                  "routine.turns": len(trace.turns) - self._turns,
                  "routine.steps_done": list(trace.steps_done),
                  "gen_ai.usage.input_tokens": used.prompt_tokens - self._usage.prompt_tokens,
                  "gen_ai.usage.output_tokens": used.completion_tokens
                  - self._usage.completion_tokens})
        if trace.outcome == "failed":
            self.fail(trace.failure_kind, trace.failure)


def run_span(state: Any, model: Any) -> Any:
    """The span of a run (or of one message of a conversation)."""
    return _RunSpan(state, model) if enabled(state.settings) else _OFF


# ------------------------------------------------------------------ a turn
class _TurnSpan(_Span):
    def __init__(self, state: Any):
        self.state = state
        tracker = state.tracker
        step = tracker.current if tracker is not None and not tracker.finished else None
        self._first = len(state.trace.turns)
        super().__init__(f"turn {step}" if step else "turn", "INTERNAL", {
            "routine.turn.index": self._first, "routine.step.id": step,
            **_routine_attributes(state)})

    def finish(self) -> None:
        records = self.state.trace.turns[self._first:]
        if not records:
            return
        self.set({"routine.turn.kind": records[-1].kind,
                  "routine.turn.kinds": [r.kind for r in records]})
        if _capture():  # (the values read from the user's words, an error's text)
            self.set({"routine.turn.feedback": records[-1].feedback})
        if records[-1].kind == "failed":
            trace = self.state.trace
            self.fail(trace.failure_kind or "failed", records[-1].feedback or trace.failure)


def turn_span(state: Any) -> Any:
    """The span of one turn of the run loop (the records it appends say what it was)."""
    return _TurnSpan(state) if enabled(state.settings) else _OFF


# ------------------------------------------------------------------ a model request
class _ModelSpan(_Span):
    def __init__(self, state: Any, model: Any, messages: list[Any], sampling: dict[str, Any],
                 step: str | None):
        name = getattr(model, "name", "") or ""
        base_url = getattr(model, "base_url", None)
        where = urlsplit(base_url) if isinstance(base_url, str) else None
        attributes = {
            "gen_ai.operation.name": "chat", "gen_ai.request.model": name or None,
            "gen_ai.provider.name": _provider_name(model),
            "gen_ai.request.temperature": sampling.get("temperature"),
            "gen_ai.request.max_tokens": sampling.get("max_tokens"),
            "gen_ai.request.seed": sampling.get("seed"),
            "server.address": where.hostname if where else None,
            "server.port": where.port if where else None,
            "routine.step.id": step, **_routine_attributes(state)}
        if _capture():
            attributes["gen_ai.input.messages"] = _json(to_wire(messages))
        super().__init__(f"chat {name}".strip(), "CLIENT", attributes)

    def reply(self, reply: ModelReply) -> ModelReply:
        usage = reply.usage
        self.set({"gen_ai.usage.input_tokens": usage.prompt_tokens,
                  "gen_ai.usage.output_tokens": usage.completion_tokens,
                  "gen_ai.response.finish_reasons": [reply.finish_reason]
                  if reply.finish_reason else None,
                  "routine.decoding": reply.decoding})
        if _capture():
            self.set({"gen_ai.output.messages": _json([{
                "role": "assistant", "content": reply.content,
                "tool_calls": reply.tool_calls}])})
        return reply


def model_span(state: Any, model: Any, messages: list[Any], step: str | None = None) -> Any:
    """The span of one model request; ``.reply(reply)`` records the reply and returns it."""
    if not enabled(state.settings):
        return _OFF
    return _ModelSpan(state, model, messages, state.settings.sampling(), step)


# ------------------------------------------------------------------ a tool call
class _ToolSpan(_Span):
    def __init__(self, state: Any, name: str, call_id: str, arguments: dict[str, Any]):
        tool = state.registry.get(name)
        attributes = {
            "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name,
            "gen_ai.tool.call.id": call_id, "gen_ai.tool.type": "function",
            "gen_ai.tool.description": getattr(tool, "description", None) or None,
            **_routine_attributes(state)}
        if _capture():
            attributes["gen_ai.tool.call.arguments"] = _json(arguments)
        super().__init__(f"execute_tool {name}", "INTERNAL", attributes)

    def record(self, record: ToolCallRecord) -> ToolCallRecord:
        self.set({"routine.step.id": record.step_id, "routine.memory_key": record.memory_key})
        if _capture() and record.ok:
            self.set({"gen_ai.tool.call.result": record.result_text})
        if record.error_kind == "awaiting_confirmation":  # not a failure: it waits for a yes
            self.set({"routine.call.awaiting": "confirmation"})
        elif not record.ok:
            self.fail(record.error_kind, record.error)
        return record


def tool_span(state: Any, name: str, call_id: str, arguments: dict[str, Any]) -> Any:
    """The span of one tool call; ``.record(record)`` records the outcome and returns it."""
    if not enabled(state.settings):
        return _OFF
    return _ToolSpan(state, name, call_id, arguments)
