"""Resolve a routine's ``toolsets`` names into a :class:`ToolRegistry` through the project.

A routine names toolsets; the :class:`~routine.spec.project.Project` (the
application's ``routine.toml``, or entries given in code) says what each name is.
Only names the project has are resolved, so a routine file from elsewhere cannot
import a module or launch a server by naming it. ``extra`` references (``--tools``
on the command line) are the user's own choice and are imported as given.
"""

from __future__ import annotations

from typing import Any

from ..errors import Problem
from ..tools.core import Tool, ToolRegistry, Toolset
from ..tools.mcp import McpServer
from .loader import LoadedRoutine
from .project import Project, import_toolsets

__all__ = ["import_toolsets", "registry_for"]

_EXPECTED = "a toolset named in the project's routine.toml [toolsets] (or given in code)"


def registry_for(loaded: LoadedRoutine, extra: list[str] | None = None,
                 registry: ToolRegistry | None = None, project: Project | None = None
                 ) -> tuple[ToolRegistry, list[Problem]]:
    """Build the registry for a routine's toolset names (plus ``extra`` module references).

    ``project`` defaults to :meth:`Project.discover`. Problems (a name the project does not
    have, a server written into the routine, a toolset that fails to load) are returned
    with the position of the offending entry."""
    project = project if project is not None else Project.discover()
    registry = registry if registry is not None else ToolRegistry()
    problems: list[Problem] = []

    def add(path: tuple[Any, ...], message: str, expected: str = _EXPECTED) -> None:
        line, col = loaded.source.locate(path)
        problems.append(Problem(loaded.source.file, line, col, message, expected))

    for index, entry in enumerate(loaded.routine.toolsets):
        path = ("toolsets", index)
        if not isinstance(entry, str):
            server: McpServer = entry.mcp
            add(path, f"a routine file cannot launch a server (MCP command {server.command!r})",
                "the server declared under a name in the project's routine.toml [toolsets], "
                "and that name here")
            continue
        if entry not in project.toolsets:
            add(path, f"unknown toolset {entry!r} (the project has {project.describe()})")
            continue
        _load(lambda entry=entry: project.resolve(entry), registry, entry, path, add)
    for reference in extra or []:
        _load(lambda reference=reference: import_toolsets(reference), registry, reference, (),
              add)
    return registry, problems


def _load(resolve: Any, registry: ToolRegistry, what: str, path: tuple[Any, ...],
          add: Any) -> None:
    failure = load_into(registry, resolve)
    if failure:  # reported as a problem of the routine file
        add(path, f"cannot load toolset {what}: {failure}", LOAD_EXPECTED)


LOAD_EXPECTED = "an importable module with Toolset/Tool objects, or a working MCP server"


def load_into(registry: ToolRegistry, resolve: Any) -> str | None:
    """Add what ``resolve()`` returns (a toolset's tools) to ``registry``; None, or why it
    failed in one line (a module that raised or exited on import, a server that failed)."""
    try:
        items: list[Tool | Toolset] = resolve()
        for item in items:
            registry.add(item)
    except (Exception, SystemExit) as exc:
        if isinstance(exc, SystemExit):  # a module that exits on import ended validate mute
            exc = RuntimeError(f"the module exited while it was imported (SystemExit({exc}))")
        return f"{type(exc).__name__}: {exc}"
    return None
