"""Tools from MCP servers (stdio), in the same registry as Python tools.

``mcp_toolset(server)`` starts the server once to list its tools (names,
descriptions, input and output schemas), then returns a :class:`Toolset` whose
``setup`` starts a fresh server session for each run. Arguments are validated
against the server's input schema before the call, so a bad call goes back to
the model as a message, like with Python tools.

A result is its structured content, else its content as text (resources' text
included; a JSON object or array in it is parsed, so references reach into it);
an error result's text and structured content go back to the model; a result outside
the tool's output schema is kept (the run warns, as for a Python tool). A server that
cannot start, exits at start or does not answer in ``timeout_s`` is one
RuntimeError naming its command (and, when it exited, the last line of its stderr).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import hashlib
import json
import logging
import os
import re
import sys
import tempfile
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from ..errors import RoutineWarning, ToolsetStopped
from .core import RunContext, Tool, ToolArgumentsError, Toolset

if TYPE_CHECKING:  # the MCP SDK is imported only when a server is actually used
    import mcp_types
    from mcp import ClientSession, StdioServerParameters

__all__ = ["McpServer", "mcp_toolset", "mcp_toolset_async", "McpToolError", "LIST_TIMEOUT_S"]

LIST_TIMEOUT_S = 30.0  # starting a server and listing its tools: a silent one fails after this
MAX_PAGES = 100  # pages of a tool list followed (a server whose cursor never ends)


class McpServer(BaseModel):
    """An MCP server started over stdio whose tools join the registry."""

    model_config = ConfigDict(extra="forbid")

    command: str = Field(description="Executable to start, e.g. 'python'.")
    args: list[str] = Field(default_factory=list, description="Its arguments.")
    env: dict[str, str] | None = Field(None, description="Extra environment variables (on "
                                       "top of this process's own, which it inherits).")
    name: str | None = Field(None, description="Toolset name (default: the command).")
    timeout_s: float | None = Field(None, gt=0, description="How long starting it and listing "
                                    f"its tools may take (default {LIST_TIMEOUT_S:g} s).")


class McpToolError(RuntimeError):
    """The MCP server reported an error for a tool call (shown to the model)."""


def _params(server: McpServer, cwd: str | Path | None = None,
            status_file: Path | None = None) -> StdioServerParameters:
    """How the SDK starts the server: through :mod:`.mcp_launch` when ``status_file`` is
    given (it writes the server's exit status there)."""
    from mcp import StdioServerParameters

    command, args = server.command, list(server.args)
    if status_file is not None:  # the launcher by its path: it needs only the standard library
        command, args = sys.executable, [str(Path(__file__).with_name("mcp_launch.py")),
                                         str(status_file), server.command, *args]
    # the process's environment and the extra variables (the SDK alone passes only PATH,
    # HOME and a few more: a CRM_API_TOKEN exported in the shell never reached the server);
    # bytes that are not UTF-8 on its stdout are replaced, not a 30 s hang
    env = {**os.environ, **(server.env or {})}
    return StdioServerParameters(command=command, args=args, env=env, cwd=cwd,
                                 encoding_error_handler="replace")


def _errlog() -> Any:
    """Where the server's stderr goes: ours, or the process's own where ours is not a file
    (Jupyter, captured output), since the child process needs a real descriptor."""
    for stream in (sys.stderr, sys.__stderr__):
        try:
            if stream is not None:
                stream.fileno()
                return stream
        except (AttributeError, OSError, ValueError):
            continue
    return _devnull()


@functools.cache
def _devnull() -> Any:
    """One handle on the null device for every server, closed when the process exits."""
    handle = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    atexit.register(handle.close)
    return handle


class _NotProtocol(logging.Filter):
    """The SDK logs a line a server prints on its stdout that is not JSON-RPC (a banner) with
    a full traceback; it is ignored, so one warning line says so, with the line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and str(record.msg).startswith("Failed to parse JSONRPC message"):
            error = record.exc_info[1]
            errors = getattr(error, "errors", None)
            line = errors()[0].get("input", "") if callable(errors) and errors() else ""
            record.msg = ("an MCP server printed a line on its stdout that is not a protocol "
                          "message (ignored; servers log to stderr): %r")
            record.args = (str(line)[:200],)
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


_QUIET = _NotProtocol()


@contextlib.asynccontextmanager
async def _session(server: McpServer, cwd: str | Path | None = None,
                   timeout_s: float = LIST_TIMEOUT_S) -> AsyncIterator[ClientSession]:
    """A started and initialized session; a server that fails to start, exits or does not
    answer within ``timeout_s`` is one RuntimeError saying so."""
    import anyio
    from mcp import stdio_client

    started = False
    logger = logging.getLogger("mcp.client.stdio")
    if _QUIET not in logger.filters:
        logger.addFilter(_QUIET)
    with tempfile.TemporaryDirectory(prefix="routine-mcp-") as folder:
        status = Path(folder) / "status"
        try:
            async with stdio_client(_params(server, cwd, status), errlog=_errlog()) as \
                    (read, write):
                async with _session_class()(read, write) as session:
                    with anyio.fail_after(timeout_s):
                        await session.initialize()
                    started = True
                    session.routine_status = status  # type: ignore[attr-defined]
                    session.routine_server = _describe(server)  # type: ignore[attr-defined]
                    yield session
        except Exception as exc:
            if started:  # the caller's own error, out of the SDK's task groups' wrapping
                leaves = _leaves(exc)
                if len(leaves) == 1 and leaves[0] is not exc:
                    raise leaves[0] from None
                raise
            raise _start_error(server, exc, timeout_s, *_ended(status)) from exc


@functools.cache
def _session_class() -> type[ClientSession]:
    """The SDK's session, less its check of a call's result against the tool's output
    schema: it raised after the call had run (a ticket opened, its id of the wrong type), so
    the model, told the call failed, sent it again; and it listed the tools again on each
    run's first call of each tool. The run checks a result against the schema as it does a
    Python tool's against its return type: a warning, once per tool, and the value kept."""
    from mcp import ClientSession

    class Session(ClientSession):
        async def validate_tool_result(self, name: str, result: Any) -> None:
            return None

    return Session


def _describe(server: McpServer) -> str:
    return " ".join([server.command, *server.args])


def _ended(status: Path) -> tuple[str, str]:
    """How the server's process ended, as the launcher wrote it (``exit status 2``; "" while
    it runs), and the last line it wrote on stderr, which usually says why ("" if none)."""
    if not status.is_file():
        return "", ""
    how, _, said = status.read_text(encoding="utf-8", errors="replace").partition("\n")
    last = next((line.strip() for line in reversed(said.splitlines()) if line.strip()), "")
    return how, last[:300]


def _leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def _start_error(server: McpServer, exc: Exception, timeout_s: float,
                 ended: str = "", said: str = "") -> RuntimeError:
    """What went wrong while a server started, in one line (no exception groups);
    ``ended``: how the server's process ended, as the launcher wrote it; ``said``: the last
    line it wrote on stderr."""
    leaves = _leaves(exc)
    first = leaves[0]
    if ended.startswith("cannot start"):
        return RuntimeError(f"cannot start MCP server `{_describe(server)}`: "
                            f"{ended.removeprefix('cannot start: ')}")
    if any(isinstance(leaf, TimeoutError) for leaf in leaves):
        return RuntimeError(f"MCP server `{_describe(server)}` did not answer within "
                              f"{timeout_s:g} s (it started, but never replied)")
    if isinstance(first, OSError):
        return RuntimeError(f"cannot start MCP server `{_describe(server)}`: {first}")
    if ended or "connection closed" in str(first).lower() or type(first).__name__ in _CLOSED:
        how = f" ({ended})" if ended else ""
        why = f"; the last line it wrote on stderr: {said}" if said else \
            "; its error output, above, says why"
        return RuntimeError(f"MCP server `{_describe(server)}` exited before it answered"
                            f"{how}{why}")
    return RuntimeError(f"MCP server `{_describe(server)}` failed at start: "
                          f"{type(first).__name__}: {first}")


_CLOSED = {"EndOfStream", "ClosedResourceError", "BrokenResourceError"}


def _validator(schema: dict[str, Any]) -> Any:
    import jsonschema

    checker = jsonschema.Draft202012Validator(schema)

    def validate(arguments: dict[str, Any]) -> None:
        errors = sorted(checker.iter_errors(arguments), key=lambda e: list(e.path))
        if errors:
            raise ToolArgumentsError("; ".join(
                (f"argument '{'.'.join(map(str, e.path))}': " if e.path else "") + e.message
                for e in errors))

    return validate


def _result_value(result: mcp_types.CallToolResult) -> Any:
    """A call's result as data: its structured content; else its content as text (text
    blocks, resources' text, a line for each image, audio or binary resource), parsed when
    that text is a JSON object or array. An error result raises with everything it says."""
    text = "\n".join(filter(None, (_block_text(block) for block in result.content)))
    if result.is_error:
        details = (json.dumps(result.structured_content, ensure_ascii=False)
                   if result.structured_content is not None else "")
        # the structured details first: a long error text is cut from its end for the model
        raise McpToolError("\n".join(filter(None, (details, text)))
                           or "the MCP tool reported an error")
    if result.structured_content is not None:
        return result.structured_content
    if text.lstrip().startswith(("{", "[")):
        with contextlib.suppress(ValueError):
            return json.loads(text)
    return text


def _block_text(block: Any) -> str:
    """One content block as text."""
    kind = getattr(block, "type", "")
    if kind == "text":
        return str(block.text)
    if kind == "resource":
        contents = block.resource
        if getattr(contents, "text", None) is not None:
            return str(contents.text)
        return (f"[binary resource {contents.uri} ({contents.mime_type or 'no type'}), "
                f"{len(getattr(contents, 'blob', '') or '')} base64 characters]")
    if kind == "resource_link":
        return f"[resource {block.uri}{': ' + block.name if block.name else ''}]"
    if kind in ("image", "audio"):
        return f"[{kind} ({block.mime_type}), {len(block.data)} base64 characters]"
    return f"[{kind or type(block).__name__} content]"


async def _stopped(session: Any, exc: Exception) -> str:
    """Why a call failed when the server itself is gone ("" when it is not): the command
    and how it ended, as the launcher recorded it (given a moment to write it)."""
    import asyncio

    status: Path | None = getattr(session, "routine_status", None)
    closed = "connection closed" in str(exc).lower() or type(exc).__name__ in (
        "ClosedResourceError", "BrokenResourceError", "EndOfStream")
    if status is None or not closed:
        return ""
    for _ in range(20):
        if status.is_file():
            break
        await asyncio.sleep(0.05)
    ended, said = _ended(status)
    return (f"the MCP server `{getattr(session, 'routine_server', '?')}` stopped during the "
            f"run ({ended or 'its connection closed'}): its tools cannot answer"
            + (f" (the last line it wrote on stderr: {said})" if said else ""))


_WIRE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # what OpenAI's API takes as a tool name


def wire_name(name: str) -> str:
    """An MCP tool's name as a model's API takes it: ``rx.lookup`` or ``files/read`` (MCP
    allows dots and slashes; OpenAI's API refuses a request that holds one) become
    ``rx_lookup``, ``files_read``; a name past 64 characters is cut and keeps a digest of
    the whole. The server is still called by its own name."""
    if _WIRE_NAME.match(name):
        return name
    cleaned = re.sub(r"[^A-Za-z0-9_-]", "_", name) or "tool"
    if len(cleaned) > 64:
        cleaned = f"{cleaned[:55]}_{hashlib.sha256(name.encode()).hexdigest()[:8]}"
    return cleaned


def _make_tool(info: mcp_types.Tool, toolset: str) -> Tool:
    async def call(ctx: RunContext[ClientSession] | None, arguments: dict[str, Any]) -> Any:
        assert ctx is not None and ctx.deps is not None, "MCP tools need a run session"
        try:
            result = await ctx.deps.call_tool(info.name, arguments)
        except Exception as exc:
            stopped = await _stopped(ctx.deps, exc)
            if stopped:
                raise ToolsetStopped(stopped) from None
            raise
        return _result_value(result)

    schema = dict(info.input_schema or {"type": "object", "properties": {}})
    name = wire_name(info.name)
    description = info.description or info.name
    if name != info.name:  # the server's own name, for a reader of `routine tools`
        description = f"{description} (MCP tool {info.name!r})"
    return Tool(
        name=name,
        description=description,
        parameters=schema,
        output_schema=info.output_schema,
        function=call,
        toolset=toolset,
        validator=_validator(schema),
        raw_arguments=True,
    )


async def mcp_toolset_async(server: McpServer, cwd: str | Path | None = None,
                            timeout_s: float = LIST_TIMEOUT_S) -> Toolset:
    """List the server's tools and wrap them (see :func:`mcp_toolset`)."""
    import anyio
    from mcp.types import PaginatedRequestParams

    if server.timeout_s is not None and timeout_s == LIST_TIMEOUT_S:  # the server's own
        timeout_s = server.timeout_s

    name = server.name or f"mcp:{_describe(server)}".strip()
    async with _session(server, cwd, timeout_s) as session:
        try:
            with anyio.fail_after(timeout_s):
                listed = await session.list_tools()
                tools, pages = list(listed.tools), 1
                while listed.next_cursor and pages < MAX_PAGES:  # a server that pages its list
                    listed = await session.list_tools(params=PaginatedRequestParams(
                        cursor=listed.next_cursor))
                    tools += listed.tools
                    pages += 1
        except TimeoutError:
            raise RuntimeError(f"MCP server `{_describe(server)}` did not list its tools "
                                 f"within {timeout_s:g} s") from None
    toolset = Toolset(name, setup=lambda: _session(server, cwd, timeout_s))
    for info in tools:
        if problem := _schema_problem(info.input_schema or {}):  # (its call raised out of
            warnings.warn(                                        # the run; one odd tool of
                f"MCP server `{_describe(server)}`: tool {info.name!r} left out: its input "
                f"schema is not a JSON Schema arguments can be checked against ({problem}); "
                "fix the tool's schema in the server", RoutineWarning, stacklevel=2)
            continue                                              # a server's, not all)
        toolset.add(_make_tool(info, name))
    return toolset


def _schema_problem(schema: dict[str, Any]) -> str | None:
    """Why a tool's input schema cannot check arguments (an invalid pattern, an unknown
    type, a local ``$ref`` to nothing), or None."""
    import jsonschema
    from referencing import Registry
    from referencing.exceptions import Unresolvable
    from referencing.jsonschema import DRAFT202012

    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = ".".join(map(str, exc.path))
        return f"{where + ': ' if where else ''}{exc.message}"
    nodes = [node for node in _walk(schema) if isinstance(node, dict)]
    if any("$id" in node for node in nodes):  # references against other bases: the validator's
        return None
    resolver = Registry().with_resource("", DRAFT202012.create_resource(schema)).resolver()
    for ref in (n["$ref"] for n in nodes if isinstance(n.get("$ref"), str)):
        if ref.startswith("#"):
            try:
                resolver.lookup(ref)
            except Unresolvable:
                return f"$ref {ref!r} points at nothing in the schema"
    return None


def _walk(node: Any) -> Iterator[Any]:
    """``node`` and everything inside it (a JSON value's mappings and lists, depth first)."""
    yield node
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) \
        else ()
    for child in children:
        yield from _walk(child)


def mcp_toolset(server: McpServer, cwd: str | Path | None = None,
                timeout_s: float = LIST_TIMEOUT_S) -> Toolset:
    """A Toolset for an MCP server started over stdio (blocking helper).

    ``cwd``: the folder the server runs in (a project's entries run in the project's root,
    so relative paths in ``args`` work from anywhere); ``timeout_s``: how long starting and
    listing the tools may take (also for each run's fresh session). Called where an event
    loop already runs in this thread (an async caller resolving a project's toolsets), the
    listing runs on its own loop in a worker thread, since that loop cannot be re-entered."""
    import anyio

    if not _loop_running():
        return anyio.run(mcp_toolset_async, server, cwd, timeout_s)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="routine-mcp-list") as worker:
        return worker.submit(anyio.run, mcp_toolset_async, server, cwd, timeout_s).result()


def _loop_running() -> bool:
    """Whether an asyncio event loop runs in the calling thread."""
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
