"""Tools: typed Python functions (or MCP server tools) the model may call.

``@tool`` turns a function into a :class:`Tool`. The parameters' JSON schema is
built from the signature and docstring through a pydantic model, and the SAME
model validates the arguments the model sends. The return annotation gives the
output schema that ``routine validate`` checks step references against.

A :class:`Toolset` groups tools that share per-run state (``deps``, e.g. a fresh
SQLite database): its ``setup`` context manager runs once per run and a tool
that declares a first parameter typed :class:`RunContext` receives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import copy
import dataclasses
import functools
import inspect
import json
import queue
import re
import threading
import types
import typing
import warnings
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Generic, TypeVar, get_type_hints

import docstring_parser
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model
from pydantic.fields import FieldInfo
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from ..errors import RoutineWarning, ToolDefinitionError, ToolsetSetupError

__all__ = [
    "RunContext",
    "Tool",
    "Toolset",
    "ToolRegistry",
    "ToolArgumentsError",
    "tool",
    "FINISH_TOOL",
]

DepsT = TypeVar("DepsT")
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
FINISH_TOOL = "finish"


@dataclass
class RunContext(Generic[DepsT]):
    """What a tool can see of the run that calls it.

    Attributes:
        deps: the toolset's per-run state, as its ``setup`` produced it.
        run_id: the id of the run (also in the trace).
        inputs: the routine's input values known for this run: a read-only view that
            follows the run (an input the user gives later shows), each value read as a copy,
            so that a tool cannot rewrite the run's record of what it was given.
    """

    deps: DepsT
    run_id: str = ""
    inputs: Mapping[str, Any] = field(default_factory=dict)
    #: the session's sync calls still running on worker threads (its setups wait for them)
    _calls: _SyncCalls | None = field(default=None, repr=False, compare=False)


class _SyncCalls:
    """A tools session's sync calls still running on worker threads (a call past its time
    limit runs on): a sync setup's exit waits for the last of them, and runs on its thread
    when it returns, for closing an SQLite connection under a query that still runs on it
    crashes the process. The run itself does not wait."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running = 0
        self._exits: list[Callable[[], Any]] = []

    def started(self) -> None:
        with self._lock:
            self._running += 1

    def ended(self) -> None:
        with self._lock:
            self._running -= 1
            exits, self._exits = (self._exits, []) if not self._running else ([], self._exits)
        for exit_ in exits:  # (in the stack's order; an error of one: nobody waits for it)
            with contextlib.suppress(Exception):
                exit_()

    def exit_after(self, manager: Any) -> Callable[..., Any]:
        """``manager``'s exit for the session's stack: now, or once no call runs."""
        def exit_(*exc: Any) -> Any:
            with self._lock:
                if self._running:
                    self._exits.append(lambda: manager.__exit__(None, None, None))
                    return False
            return manager.__exit__(*exc)
        return exit_


class InputsView(Mapping[str, Any]):
    """The run's inputs as a tool sees them (:attr:`RunContext.inputs`): live, read-only, and
    each value a copy (``ctx.inputs["items"].append(...)`` changes the tool's copy, not the
    trace's inputs nor what later steps read)."""

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, Any]):
        self._values = values

    def __getitem__(self, name: str) -> Any:
        return copy.deepcopy(self._values[name])

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._values))

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"InputsView({dict(self.items())!r})"


_NUMBER_ERRORS = {"float_type", "int_type", "decimal_type", "float_parsing", "int_parsing"}


class ToolArgumentsError(ValueError):
    """The arguments a model sent do not fit the tool's schema (message is model-facing);
    ``arguments``: the names of the arguments at fault, where known."""

    def __init__(self, message: str, arguments: tuple[str, ...] = ()):
        super().__init__(message)
        self.arguments = arguments


@dataclass
class Tool:
    """One callable tool.

    Attributes:
        name: the name the model calls it by.
        description: what it does (first paragraph of the docstring by default).
        parameters: JSON schema of the arguments (an ``object`` schema).
        output_schema: JSON schema of the result, or None when unknown.
        function: the Python callable (sync or async); for MCP tools a coroutine
            function taking ``(ctx, arguments)``.
        args_model: pydantic model validating arguments (None: validated by ``validator``).
        context_param: name of the :class:`RunContext` parameter, if the function takes one.
        toolset: name of the toolset whose ``deps`` the tool receives.
        validator: for tools without ``args_model``, a callable raising on bad arguments.
        approval: every call waits for an approver's decision (a write to a real system).
    """

    name: str
    description: str
    parameters: dict[str, Any]
    output_schema: dict[str, Any] | None
    function: Callable[..., Any]
    args_model: type[BaseModel] | None = None
    context_param: str | None = None
    toolset: str = ""
    validator: Callable[[dict[str, Any]], None] | None = None
    raw_arguments: bool = False
    approval: bool = False
    returns: TypeAdapter[Any] | None = None  # the declared return type, when it has a schema
    _checker: Any = field(default=None, init=False, repr=False, compare=False)

    def result_problem(self, data: Any) -> str:
        """Why a result (as JSON data) does not fit the declared return type ("" if it
        does, or if none is declared): references into the output were checked against it."""
        if self.returns is None:  # an MCP server's tool: its output schema alone
            return self._output_schema_error(data) or ""
        try:
            self.returns.validate_python(data)
        except ValidationError as exc:
            if self._output_schema_error(data) == "":  # serialized differently than validated
                return ""  # (aliases, computed or excluded fields): the data is what it says
            first = exc.errors(include_url=False)[0]
            where = ".".join(map(str, first["loc"]))
            null = (" (got null: a NaN or infinite float is null in JSON data)"
                    if first["input"] is None and first["type"] in _NUMBER_ERRORS else "")
            return f"{where + ': ' if where else ''}{first['msg']}{null}"
        except Exception:  # noqa: BLE001 - a type pydantic describes but cannot check
            return ""
        return ""

    def _output_schema_error(self, data: Any) -> str | None:
        """How JSON data misfits the output schema (the serialized form of the return type):
        "" when it fits, None when there is no schema or one jsonschema cannot use."""
        if self.output_schema is None:
            return None
        import jsonschema

        try:
            if self._checker is None:
                self._checker = jsonschema.Draft202012Validator(self.output_schema)
            error = jsonschema.exceptions.best_match(self._checker.iter_errors(data))
        except Exception:  # noqa: BLE001 - a schema jsonschema cannot use: no second opinion
            return None
        if error is None:
            return ""
        where = ".".join(map(str, error.absolute_path))
        return f"{where + ': ' if where else ''}{error.message}"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the underlying function directly (no validation)."""
        return self.function(*args, **kwargs)

    def openai_spec(self) -> dict[str, Any]:
        """The tool in the OpenAI chat-completions ``tools`` format.

        ``additionalProperties: false`` is left out of what the model sees (small models
        copy it into their arguments); validation still forbids extra arguments."""
        shown = {k: v for k, v in self.parameters.items() if k != "additionalProperties"}
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": shown},
        }

    def validate_arguments(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """Check arguments against the schema; raise :class:`ToolArgumentsError` with a
        message meant for the model. Returns the arguments as the function receives them."""
        if self.args_model is not None:
            try:
                model = self.args_model.model_validate(arguments)
            except ValidationError as exc:
                raise ToolArgumentsError(_describe_validation_error(exc), tuple(dict.fromkeys(
                    str(e["loc"][0]) for e in exc.errors() if e["loc"]))) from None
            return {field.alias or name: getattr(model, name)
                    for name, field in type(model).model_fields.items()}
        if self.validator is not None:
            self.validator(arguments)
        return dict(arguments)

    async def invoke(self, arguments: dict[str, Any], ctx: RunContext[Any] | None) -> Any:
        """Validate ``arguments`` and call the function: awaited when async, in a worker
        thread when not, so that a blocking tool cannot stall the run (its time limit holds
        and the run moves on; the thread finishes in the background)."""
        values = self.validate_arguments(arguments)
        if self.raw_arguments:
            return await self.function(ctx, values)
        if self.context_param is not None:
            values[self.context_param] = ctx
        try:
            if inspect.iscoroutinefunction(self.function):
                return await self.function(**values)
            result = await _in_daemon_thread(self.function, values,
                                             ctx._calls if ctx is not None else None)
            if inspect.isawaitable(result):
                result = await result
            return result
        except (SystemExit, KeyboardInterrupt) as exc:  # must not end the run's event loop
            raise RuntimeError(f"the tool raised {type(exc).__name__}({exc})") from None


async def _in_daemon_thread(function: Callable[..., Any], values: dict[str, Any],
                            calls: _SyncCalls | None = None) -> Any:
    """``function(**values)`` in a daemon thread of its own: the caller may stop waiting
    (a time limit) and neither the event loop's shutdown nor the process's exit waits for
    a tool that blocks forever (``calls``: its session's, counting it while it runs)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()
    context = contextvars.copy_context()

    def settle(result: Any, error: BaseException | None) -> None:
        if future.done():  # the caller stopped waiting
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def work() -> tuple[Any, BaseException | None]:
        try:
            return context.run(function, **values), None
        except Exception as exc:  # handed to the caller
            return None, exc
        except BaseException as exc:  # noqa: BLE001 - SystemExit must not stop the loop
            return None, RuntimeError(f"the tool raised {type(exc).__name__}({exc})")
        finally:
            if calls is not None:
                calls.ended()

    def report(outcome: tuple[Any, BaseException | None]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(settle, *outcome)

    if calls is not None:
        calls.started()
    _WORKERS.submit(work, report)
    return await future


class _DaemonWorkers:
    """Daemon threads that run sync tools, reused from call to call (starting a thread
    costs more than a small tool). A worker blocked in a tool that never returns is simply
    never idle again; a new one starts when none is idle, and an idle one exits after
    ``idle_s`` seconds."""

    def __init__(self, idle_s: float = 60.0):
        self.idle_s = idle_s
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], Callable[[Any], None]]] = \
            queue.SimpleQueue()
        self._idle = 0
        self._lock = threading.Lock()

    def submit(self, job: Callable[[], Any], report: Callable[[Any], None]) -> None:
        """Run ``job`` on a worker; ``report`` gets its result once the worker is idle again
        (so a caller that goes on at once finds it free)."""
        with self._lock:
            start = self._idle == 0
            if not start:
                self._idle -= 1  # this job is that worker's
        self._jobs.put((job, report))
        if start:
            threading.Thread(target=self._serve, daemon=True, name="routine-tool").start()

    def _serve(self) -> None:
        while True:
            try:
                job, report = self._jobs.get(timeout=self.idle_s)
            except queue.Empty:
                with self._lock:
                    if self._idle > 0 and self._jobs.empty():
                        self._idle -= 1
                        return
                continue
            outcome = job()
            with self._lock:
                self._idle += 1
            report(outcome)


_WORKERS = _DaemonWorkers()


def _describe_validation_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "(arguments)"
        if err["type"] == "missing":
            parts.append(f"missing required argument '{loc}'")
        elif err["type"] == "extra_forbidden":
            parts.append(f"unexpected argument '{loc}'")
        else:
            parts.append(f"argument '{loc}': {err['msg']} (got {err.get('input')!r})")
    return "; ".join(parts)


def _is_context(annotation: Any) -> bool:
    """Whether a parameter's annotation is a :class:`RunContext` (also ``RunContext | None``,
    for a tool its own tests call without one, and ``Annotated[RunContext, ...]``)."""
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    origin = typing.get_origin(annotation) or annotation
    if origin is typing.Union or origin is types.UnionType:
        others = [a for a in typing.get_args(annotation) if a is not type(None)]
        return len(others) == 1 and _is_context(others[0])
    return inspect.isclass(origin) and issubclass(origin, RunContext)


class _ResultSchema(GenerateJsonSchema):
    """The schema of a result as :func:`to_jsonable` makes it: serialization mode (aliases,
    computed fields, no excluded fields) with a Decimal as a number."""

    def decimal_schema(self, schema: core_schema.DecimalSchema) -> JsonSchemaValue:
        bounds = {key: float(schema[key]) for key in ("multiple_of", "le", "ge", "lt", "gt")
                  if schema.get(key) is not None}  # type: ignore[literal-required]
        return self.float_schema(core_schema.float_schema(**bounds))  # type: ignore[arg-type]


def _output_schema(tool_name: str, annotation: Any) -> dict[str, Any] | None:
    if annotation is inspect.Signature.empty or annotation is Any or annotation is None:
        return None
    try:
        return TypeAdapter(annotation).json_schema(mode="serialization",
                                                   schema_generator=_ResultSchema)
    except Exception as exc:
        raise ToolDefinitionError(f"tool {tool_name!r}: cannot build the output schema of its "
                                  f"return type {_type_name(annotation)}: "
                                  f"{_first_line(exc)}") from exc


def _arguments_model(tool_name: str, fields: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    model = create_model(  # type: ignore[call-overload]
        f"{tool_name}_arguments",
        __config__=ConfigDict(extra="forbid", arbitrary_types_allowed=False),
        **fields,
    )
    return model, model.model_json_schema()


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or repr(annotation)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _described_by(function: Any) -> tuple[Any, str | None, str]:
    """The callable whose annotations describe ``function``, its own name (None for a callable
    object) and its docstring: a ``functools.partial`` is described by the function it wraps,
    a callable object by its ``__call__`` (or its class's docstring)."""
    if isinstance(function, functools.partial):
        return _described_by(function.func)
    if inspect.isroutine(function) or inspect.isclass(function):
        return function, function.__name__, inspect.getdoc(function) or ""
    if callable(function):
        kind = type(function)
        doc = getattr(kind.__call__, "__doc__", None) or kind.__doc__ or ""
        return function.__call__, None, inspect.cleandoc(doc)
    shown = repr(function)
    shown = shown if len(shown) <= 80 else f"{shown[:77]}..."
    raise ToolDefinitionError(f"{shown} ({type(function).__name__}) is not callable: a tool "
                              "is a function, a functools.partial or an object with __call__")


def _bound_keywords(function: Any) -> set[str]:
    """Parameters a ``functools.partial`` fixes by keyword: not the model's to choose."""
    bound: set[str] = set()
    while isinstance(function, functools.partial):
        bound |= set(function.keywords)
        function = function.func
    return bound


def _field_name(pname: str, index: int, taken: set[str]) -> str:
    """The arguments model's field for parameter ``pname``: itself, or (for names pydantic
    keeps for itself: ``model_config``, ``_private``, ``json``...) a stand-in aliased to it."""
    if not pname.startswith(("_", "model_")) and not hasattr(BaseModel, pname):
        return pname
    stand_in = f"argument_{index}"
    while stand_in in taken:
        stand_in += "_"
    return stand_in


def tool_from_function(
    function: Callable[..., Any],
    *,
    name: str | None = None,
    description: str | None = None,
    toolset: str = "",
    approval: bool = False,
) -> Tool:
    """Build a :class:`Tool` from a typed function (what ``@tool`` does); a
    ``functools.partial`` or a callable object works too (an object needs ``name``)."""
    described, own_name, docstring = _described_by(function)
    tool_name = name or own_name
    if tool_name is None:
        raise ToolDefinitionError(f"a callable {type(function).__name__} object has no name of "
                                  "its own: give the tool one (@tool(name=...))")
    if not _NAME_RE.match(tool_name):
        raise ToolDefinitionError(f"invalid tool name {tool_name!r}: use letters, digits, _ or -")
    if inspect.isgeneratorfunction(described) or inspect.isasyncgenfunction(described):
        raise ToolDefinitionError(
            f"tool {tool_name!r} is a generator function (it yields): a tool returns its whole "
            "result once — return a list instead of yielding its items")
    doc = docstring_parser.parse(docstring)
    param_docs = {p.arg_name: p.description for p in doc.params}
    summary = "\n\n".join(p for p in (doc.short_description, doc.long_description) if p)
    try:
        hints = get_type_hints(described, include_extras=True)
    except Exception as exc:
        raise ToolDefinitionError(f"tool {tool_name!r}: cannot resolve annotations: {exc}") from exc
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError) as exc:
        raise ToolDefinitionError(f"tool {tool_name!r}: cannot read its signature: {exc}") from exc
    fixed = _bound_keywords(function)
    # a dataclass used as a tool: a field's default_factory (the signature shows `<factory>`,
    # which is no value: pydantic refused to write it into the schema)
    factories = {f.name: f.default_factory for f in dataclasses.fields(function)
                 if f.default_factory is not dataclasses.MISSING} \
        if isinstance(function, type) and dataclasses.is_dataclass(function) else {}
    fields: dict[str, Any] = {}
    context_param = None
    for index, (pname, param) in enumerate(signature.parameters.items()):
        annotation = hints.get(pname, inspect.Parameter.empty)
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ToolDefinitionError(f"tool {tool_name!r}: *args/**kwargs are not supported")
        if param.kind is param.POSITIONAL_ONLY:
            raise ToolDefinitionError(
                f"tool {tool_name!r}: parameter {pname!r} is positional-only (before '/'), "
                "but a model's arguments come by name: drop the '/' or wrap the function")
        if _is_context(annotation):
            if index != 0:
                raise ToolDefinitionError(
                    f"tool {tool_name!r}: the RunContext parameter must come first"
                )
            context_param = pname
            continue
        if pname in fixed:
            continue
        if annotation is inspect.Parameter.empty and index == 0 and pname in ("self", "cls"):
            owner = [part for part in getattr(described, "__qualname__", "").split(".")[-2:-1]
                     if part != "<locals>"] or ["Class"]
            raise ToolDefinitionError(  # @tool on a method, inside its class's body
                f"tool {tool_name!r} is a method ({pname!r} first): a tool is called without "
                f"an object: drop the decorator, and register an object's method "
                f"(tool({owner[0].lower()}.{tool_name})) or the class "
                f"(Toolset.from_object(NAME, {owner[0]}): an object per run)")
        if annotation is inspect.Parameter.empty:
            raise ToolDefinitionError(
                f"tool {tool_name!r}: parameter {pname!r} needs a type annotation"
            )
        default = ... if param.default is param.empty else param.default
        field_name = _field_name(pname, index, set(signature.parameters))
        alias = None if field_name == pname else pname
        if isinstance(default, FieldInfo):  # `amount: Decimal = Field(gt=0)` (pydantic's
            # validate_call idiom): that field, its constraints kept, not a default value
            extra = {"description": param_docs[pname]} if default.description is None \
                and param_docs.get(pname) else {}
            if alias is not None and default.alias is None:
                extra["alias"] = alias
            fields[field_name] = (annotation, FieldInfo.merge_field_infos(default, **extra))
            continue
        # (a description only when the docstring has one: None here would wipe
        # `Annotated[str, Field(description=...)]`'s own, the one the model reads; the alias
        # always, as the function's keyword is the parameter's name)
        said = {"description": param_docs[pname]} if param_docs.get(pname) else {}
        if pname in factories:
            fields[field_name] = (annotation, Field(default_factory=factories[pname],
                                                    alias=alias or pname, **said))
            continue
        fields[field_name] = (annotation, Field(default, alias=alias or pname, **said))
    args_model, parameters = _checked_arguments_model(tool_name, fields)
    return Tool(
        name=tool_name,
        description=description or summary or tool_name,
        parameters=parameters,
        output_schema=(output := _output_schema(tool_name, hints.get("return",
                                                                      inspect.Signature.empty))),
        returns=TypeAdapter(hints["return"]) if output is not None else None,
        function=function,
        args_model=args_model,
        context_param=context_param,
        toolset=toolset,
        approval=approval,
    )


def _checked_arguments_model(tool_name: str, fields: dict[str, Any]
                             ) -> tuple[type[BaseModel], dict[str, Any]]:
    """The arguments model and its schema (no titles); a ToolDefinitionError naming the
    parameter pydantic cannot type."""
    try:
        args_model, parameters = _arguments_model(tool_name, fields)
    except Exception as exc:  # pydantic cannot type one of them: say which, in one line
        culprit = ""
        for fname, field in fields.items():
            try:
                _arguments_model(tool_name, {fname: field})
            except Exception:  # noqa: BLE001 - this one is it
                culprit = (f"parameter {field[1].alias or fname!r} "
                           f"({_type_name(field[0])}): ")
                break
        raise ToolDefinitionError(f"tool {tool_name!r}: {culprit}cannot build the arguments' "
                                  f"schema: {_first_line(exc)}") from exc
    parameters.pop("title", None)
    for prop in parameters.get("properties", {}).values():
        prop.pop("title", None)
    return args_model, parameters


def tool(
    function: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    approval: bool = False,
) -> Any:
    """Decorator: ``@tool`` or ``@tool(name=..., description=..., approval=True)`` makes a
    :class:`Tool` (``approval``: every call waits for an approver's decision)."""

    def wrap(fn: Callable[..., Any]) -> Tool:
        return tool_from_function(fn, name=name, description=description, approval=approval)

    return wrap(function) if function is not None else wrap


SetupFn = Callable[[], Any]


@dataclass
class Toolset:
    """Tools sharing per-run state.

    Attributes:
        name: the toolset's name (e.g. ``hr``).
        tools: its tools by name.
        setup: zero-argument callable returning a (sync or async) context manager whose
            value becomes ``RunContext.deps`` for this toolset's tools during one run.
            None: tools get ``deps=None``.
    """

    name: str
    tools: dict[str, Tool] = field(default_factory=dict)
    setup: SetupFn | None = None

    def tool(
        self,
        function: Callable[..., Any] | None = None,
        *,
        name: str | None = None,
        description: str | None = None,
        approval: bool = False,
    ) -> Any:
        """Decorator registering a function as a tool of this toolset."""

        def wrap(fn: Callable[..., Any]) -> Tool:
            new = tool_from_function(fn, name=name, description=description, approval=approval)
            self.add(new)
            return new

        return wrap(function) if function is not None else wrap

    @classmethod
    def from_object(cls, name: str, kind: type, *, factory: Callable[[], Any] | None = None,
                    methods: list[str] | None = None, approval: tuple[str, ...] = ()
                    ) -> Toolset:
        """Tools from a toolkit class's typed methods, with a fresh object for every run.

        ``kind`` is the class (its methods' signatures and docstrings make the tools'
        schemas, as for functions); ``factory`` makes the run's object (default: ``kind()``;
        an object that is a context manager is entered for the run, and its methods are
        called on what ``__enter__`` returns when that is a ``kind``, else on the object).
        ``methods`` picks the methods (default: every public method, inherited, static and
        class methods included, whose parameters are all annotated); ``approval`` names
        methods whose calls wait for an approver.

            airline = Toolset.from_object("airline", AirlineTools,
                                          factory=lambda: AirlineTools(load_db()))
        """
        make = factory or kind

        @contextlib.asynccontextmanager
        async def one_object() -> AsyncIterator[Any]:
            try:
                made = make()
            except TypeError as exc:
                if factory is not None:
                    raise
                raise ToolsetSetupError(
                    f"toolset {name!r}: {kind.__name__}() cannot be made without arguments "
                    f"({exc}): pass factory=lambda: {kind.__name__}(...) to "
                    "Toolset.from_object") from exc
            if hasattr(made, "__aenter__"):
                async with made as entered:
                    yield _run_object(kind, made, entered)
            elif hasattr(made, "__enter__"):
                with made as entered:
                    yield _run_object(kind, made, entered)
            else:
                yield made

        toolset = cls(name, setup=one_object)
        approval = (approval,) if isinstance(approval, str) else tuple(approval)
        left_out = []
        for method in methods if methods is not None else _public_methods(kind):
            found = _method_of(kind, method)
            if found is None:
                raise ToolDefinitionError(f"{kind.__name__} has no method {method!r}")
            try:
                wrapper = _method_tool(method, *found)
                toolset.add(tool_from_function(wrapper, approval=method in approval))
            except ToolDefinitionError as exc:
                if methods is not None:
                    raise  # asked for by name: say why it cannot be a tool
                if getattr(found[0], "__annotations__", None):  # typed, yet no tool
                    left_out.append(f"{method} ({exc})")
        if not toolset.tools:
            raise ToolDefinitionError(
                f"{kind.__name__} has no public method that can be a tool"
                + (f"; left out: {'; '.join(left_out)}" if left_out else ""))
        if left_out:  # a typed method with **extra, say: not silently missing
            warnings.warn(f"Toolset.from_object({name!r}): {kind.__name__}'s methods left "
                          f"out: {'; '.join(left_out)} (methods=[...] names the ones meant "
                          "as tools)", RoutineWarning, stacklevel=2)
        if unknown := [m for m in approval if m not in toolset.tools]:
            raise ToolDefinitionError(
                f"approval names {', '.join(map(repr, unknown))}, not a tool of "
                f"{kind.__name__} (its tools: {', '.join(toolset.tools)})")
        return toolset

    def add(self, new: Tool) -> None:
        if new.name in self.tools:
            raise ToolDefinitionError(f"toolset {self.name!r} already has a tool {new.name!r}")
        new.toolset = self.name
        self.tools[new.name] = new


def _run_object(kind: type, made: Any, entered: Any) -> Any:
    """The object a run's calls go to: what ``__enter__`` returned when that is a ``kind``
    (or the factory's object is not one), else the object itself (an ``__enter__`` that
    returns None, as many do)."""
    return entered if isinstance(entered, kind) or not isinstance(made, kind) else made


def _public_methods(kind: type) -> list[str]:
    """Public methods of ``kind`` and its bases (not ``object``'s), the class's own first."""
    names: list[str] = []
    for klass in kind.__mro__[:-1]:
        names += [n for n in vars(klass) if not n.startswith("_") and n not in names
                  and _method_of(kind, n) is not None]
    return names


def _method_of(kind: type, name: str) -> tuple[Callable[..., Any], str] | None:
    """The function behind ``kind.name`` and how it binds (``self``, ``cls`` or ``static``),
    or None when it is no method."""
    attribute = inspect.getattr_static(kind, name, None)
    if isinstance(attribute, staticmethod):
        return attribute.__func__, "static"
    if isinstance(attribute, classmethod):
        return attribute.__func__, "cls"
    return (attribute, "self") if inspect.isfunction(attribute) else None


def _method_tool(name: str, method: Callable[..., Any], binds: str = "self"
                 ) -> Callable[..., Any]:
    """A function calling ``name`` on the run's object (``ctx.deps``), with the method's
    signature and docstring: ``self``/``cls`` gives way to the RunContext (the method's own,
    when a RunContext parameter comes next; else one under a name no parameter has)."""
    try:
        hints = get_type_hints(method, include_extras=True)
    except Exception as exc:
        raise ToolDefinitionError(f"tool {name!r}: cannot resolve annotations: {exc}") from exc
    signature = inspect.signature(method)
    params = list(signature.parameters.values())[0 if binds == "static" else 1:]
    own = params[0].name if params and _is_context(hints.get(params[0].name)) else None
    context = own or "ctx"
    while own is None and context in signature.parameters:
        context += "_"

    def target(values: dict[str, Any]) -> tuple[Callable[..., Any], dict[str, Any]]:
        ctx = values[context] if own else values.pop(context)
        return getattr(ctx.deps, name), values

    if inspect.iscoroutinefunction(method):
        async def call(**values: Any) -> Any:
            bound, arguments = target(values)
            return await bound(**arguments)
    else:
        def call(**values: Any) -> Any:  # type: ignore[misc]
            bound, arguments = target(values)
            return bound(**arguments)

    if own is None:
        params.insert(0, inspect.Parameter(context, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                           annotation=RunContext[Any]))
    call.__name__ = call.__qualname__ = name
    call.__doc__ = method.__doc__
    try:
        call.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    except ValueError as exc:  # e.g. positional-only parameters after the RunContext
        raise ToolDefinitionError(f"tool {name!r}: {exc}") from exc
    call.__annotations__ = {**{k: v for k, v in hints.items() if k in {p.name for p in params}
                               or k == "return"}, context: RunContext[Any]}
    return call


class ToolRegistry:
    """All tools a run can know about, by name, with their toolsets' per-run setup."""

    def __init__(self, *items: Tool | Toolset | list[Tool | Toolset]):
        self._tools: dict[str, Tool] = {}
        self._toolsets: dict[str, Toolset] = {}
        for item in items:  # a list of them too, as Agent takes (ToolRegistry([shop]))
            for one in item if isinstance(item, (list, tuple)) else [item]:
                self.add(one)

    def add(self, item: Tool | Toolset | Callable[..., Any]) -> None:
        """Add a tool, a plain typed function, or a whole toolset."""
        if isinstance(item, Toolset):
            known = self._toolsets.get(item.name)
            if known is not None and known is not item:  # a run gets one context per name
                raise ToolDefinitionError(
                    f"two toolsets are named {item.name!r} (one with "
                    f"{', '.join(sorted(known.tools)) or 'no tools'}, one with "
                    f"{', '.join(sorted(item.tools)) or 'no tools'}): each toolset's setup "
                    "and tools need a name of their own")
            self._toolsets[item.name] = item
            for t in item.tools.values():
                self._add_tool(t)
            return
        self._add_tool(item if isinstance(item, Tool) else tool_from_function(item))

    def _add_tool(self, new: Tool) -> None:
        if new.name == FINISH_TOOL:
            raise ToolDefinitionError(f"{FINISH_TOOL!r} is reserved for the routine's answer step")
        known = self._tools.get(new.name)
        if known is None or _same_tool(known, new):
            self._tools.setdefault(new.name, new)  # one tool given twice: kept once
            return
        if known.function is new.function and known.toolset == new.toolset:
            raise ToolDefinitionError(
                f"the tool {new.name!r} ({_origin(new)}) is given twice with different "
                "settings (description or approval): give it once, or the second under "
                "another name (tool(function, name=...))")
        raise ToolDefinitionError(f"two tools are named {new.name!r} ({_origin(known)} and "
                                  f"{_origin(new)}): a routine could not tell which one a "
                                  "step calls; rename one (Tool(name=...), a wrapper) or leave "
                                  "a toolset out")

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[Tool]:
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)

    def names(self) -> list[str]:
        return list(self._tools)

    def toolset_names(self) -> list[str]:
        return list(self._toolsets)

    @contextlib.asynccontextmanager
    async def session(
        self, run_id: str = "", inputs: Mapping[str, Any] | None = None,
        timeout_s: float | None = None,
    ) -> AsyncIterator[dict[str, RunContext[Any]]]:
        """Enter every toolset's ``setup`` for one run; yield a context per toolset name.

        With ``timeout_s``, the setups together must finish within it, else
        :class:`~routine.errors.ToolsetSetupError`: a sync setup is entered on a daemon
        thread (a database that never answers cannot hold the event loop), and one that
        finishes after the caller gave up is exited at once."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout_s is None else loop.time() + timeout_s
        calls = _SyncCalls()
        async with contextlib.AsyncExitStack() as stack:
            view = InputsView({} if inputs is None else inputs)
            contexts: dict[str, RunContext[Any]] = {"": RunContext(None, run_id, view, calls)}
            for ts in self._toolsets.values():
                deps = None
                if ts.setup is not None:
                    deps = await _enter_setup(stack, ts, deadline, timeout_s, calls)
                contexts[ts.name] = RunContext(deps, run_id, view, calls)
            yield contexts


def _same_tool(one: Tool, other: Tool) -> bool:
    """Two Tools of one function that a run could not tell apart (``ToolRegistry(f, f)``: each
    plain function given is made a Tool of its own)."""
    return (one.function is other.function and one.toolset == other.toolset
            and one.description == other.description and one.approval == other.approval)


def _origin(t: Tool) -> str:
    """Where a tool comes from, for a message: its toolset, else its function's module and
    name (``the function crm.lookup``)."""
    if t.toolset:
        return f"toolset {t.toolset!r}"
    function = getattr(t.function, "func", t.function)  # a functools.partial's own function
    module = getattr(function, "__module__", None)
    name = getattr(function, "__qualname__", None) or type(function).__qualname__
    return f"the function {module + '.' if module else ''}{name}"


async def _enter_setup(stack: contextlib.AsyncExitStack, toolset: Toolset,
                       deadline: float | None, timeout_s: float | None,
                       calls: _SyncCalls) -> Any:
    """Enter ``toolset.setup()`` on ``stack`` (bounded by ``deadline``, loop time; a sync
    one exits after the session's sync ``calls`` still running)."""
    manager = toolset.setup()  # type: ignore[misc]
    if deadline is None:  # unbounded: on the loop thread, as the caller's code expects
        if hasattr(manager, "__aenter__"):
            return await stack.enter_async_context(manager)
        value = manager.__enter__()
        stack.push(calls.exit_after(manager))
        return value
    remaining = max(0.0, deadline - asyncio.get_running_loop().time())
    late = ToolsetSetupError(f"toolset {toolset.name!r}: its setup did not finish within "
                             f"{timeout_s:g} s (the run's timeout_s)")
    if hasattr(manager, "__aenter__"):
        try:  # in this task: a setup's anyio cancel scope must be exited where it was entered
            async with asyncio.timeout(remaining):
                return await stack.enter_async_context(manager)
        except TimeoutError:
            raise late from None
    lock, state = threading.Lock(), {"abandoned": False, "entered": False}

    def enter() -> Any:
        value = manager.__enter__()
        with lock:
            state["entered"] = not state["abandoned"]
        if not state["entered"]:  # the run gave up waiting: nothing will exit it later
            manager.__exit__(None, None, None)
        return value

    entering = asyncio.ensure_future(_in_daemon_thread(enter, {}))
    try:
        value = await asyncio.wait_for(asyncio.shield(entering), remaining)
    except TimeoutError:
        with lock:
            state["abandoned"] = not state["entered"]
        if state["abandoned"]:
            entering.add_done_callback(lambda f: f.cancelled() or f.exception())  # read
            raise late from None
        value = await entering  # entered just now: its result is on its way
    stack.push(calls.exit_after(manager))  # exited with the session, on the loop thread
    return value


_ANY: TypeAdapter[Any] = TypeAdapter(Any)  # built once: an adapter costs more than a dump


def to_jsonable(value: Any) -> Any:
    """A tool result as plain JSON data (pydantic models, dataclasses, dates...), as the
    output schema describes it: models by alias, computed fields in, excluded fields out,
    a finite Decimal as a number (an int when integral; its exact digits as text when a
    float would round it: 12345678901234567.89), NaN and infinity as null.

    Bytes that are not UTF-8 text are a ValueError saying so."""
    try:
        data = _ANY.dump_python(value, mode="json", by_alias=True)
    except UnicodeDecodeError as exc:
        raise ValueError(f"a bytes value that is not UTF-8 text ({exc.object[:16]!r}...) "
                         "cannot be JSON data: return str (e.g. base64.b64encode(data)"
                         ".decode()) or a file path") from None
    if not _numeric_text(data):  # no text a Decimal could have become: one dump is enough
        return data
    return _decimals_as_numbers(data, _ANY.dump_python(value, by_alias=True))


_DECIMAL_TEXT = re.compile(r"-?\d+(\.\d*)?([eE][+-]?\d+)?")


def _numeric_text(data: Any) -> bool:
    """Whether JSON data holds a string that reads as a number (what a Decimal dumps as)."""
    if isinstance(data, str):
        return _DECIMAL_TEXT.fullmatch(data) is not None
    if isinstance(data, dict):
        return any(_numeric_text(v) for v in data.values())
    if isinstance(data, list):
        return any(_numeric_text(v) for v in data)
    return False


def _decimals_as_numbers(data: Any, python: Any) -> Any:
    """``data`` (the JSON dump) with each finite Decimal of ``python`` (the same value dumped
    as Python objects, walked alongside) as a number; changed in place, returned."""
    if isinstance(python, Decimal):
        if not isinstance(data, str) or not python.is_finite():
            return data
        if python == python.to_integral_value():
            return int(python)
        number = float(python)  # a float when it holds the value; else the exact digits
        return number if Decimal(repr(number)) == python else data
    if isinstance(data, dict) and isinstance(python, dict) and len(data) == len(python):
        for (key, item), twin in zip(list(data.items()), python.values(), strict=True):
            if (new := _decimals_as_numbers(item, twin)) is not item:
                data[key] = new
    elif (isinstance(data, list) and isinstance(python, (list, tuple, set, frozenset))
          and len(data) == len(python)):
        for index, twin in enumerate(python):
            if (new := _decimals_as_numbers(data[index], twin)) is not data[index]:
                data[index] = new
    return data


def result_text(value: Any, data: Any = None) -> str:
    """How a tool result is shown to the model (``data``: its :func:`to_jsonable` form, when
    the caller has it already)."""
    if isinstance(value, str):
        return value
    return json.dumps(to_jsonable(value) if data is None else data, ensure_ascii=False)
