"""Resolve a routine's ``toolsets`` entries into a :class:`ToolRegistry`.

An entry is a Python module path (``routine_tools.hr``) whose module-level
:class:`Toolset`/:class:`Tool` objects are collected, a ``module:attribute``
naming one Toolset, Tool or a list of them, or ``{mcp: {command, args}}``.
"""

from __future__ import annotations

import importlib
from typing import Any

from ..tools.core import Tool, ToolRegistry, Toolset
from ..tools.mcp import McpServer
from .loader import LoadedRoutine
from .validate import Problem

__all__ = ["import_toolsets", "registry_for"]


def import_toolsets(reference: str) -> list[Tool | Toolset]:
    """The tools and toolsets a ``module`` or ``module:attribute`` reference names."""
    module_name, _, attribute = reference.partition(":")
    module = importlib.import_module(module_name)
    if attribute:
        value: Any = module
        for part in attribute.split("."):
            value = getattr(value, part)
        items = value if isinstance(value, (list, tuple)) else [value]
    else:
        items = list(vars(module).values())
    found = [item for item in items if isinstance(item, (Tool, Toolset))]
    if attribute and len(found) != len(items):
        raise TypeError(f"{reference} is not a Toolset, a Tool or a list of them")
    # a module-level Tool that already belongs to a collected Toolset is not added twice
    owned = {id(t) for ts in found if isinstance(ts, Toolset) for t in ts.tools.values()}
    return [item for item in found if id(item) not in owned]


def registry_for(loaded: LoadedRoutine, extra: list[str] | None = None,
                 registry: ToolRegistry | None = None) -> tuple[ToolRegistry, list[Problem]]:
    """Build the registry for a routine's toolsets (plus ``extra`` module references).

    Problems (a module that cannot be imported, an MCP server that does not start)
    are returned with the position of the offending entry."""
    from ..tools.mcp import mcp_toolset

    registry = registry if registry is not None else ToolRegistry()
    problems: list[Problem] = []
    entries: list[tuple[tuple[Any, ...], str | McpServer]] = [
        (("toolsets", i), e if isinstance(e, str) else e.mcp)
        for i, e in enumerate(loaded.routine.toolsets)
    ]
    entries += [((), e) for e in extra or []]
    for path, entry in entries:
        try:
            items: list[Tool | Toolset] = (
                import_toolsets(entry) if isinstance(entry, str) else [mcp_toolset(entry)]
            )
            for item in items:
                registry.add(item)
        except Exception as exc:  # reported as a problem of the routine file
            line, col = loaded.source.locate(path)
            what = entry if isinstance(entry, str) else f"MCP server {entry.command!r}"
            problems.append(Problem(loaded.source.file, line, col,
                                    f"cannot load toolset {what}: {type(exc).__name__}: {exc}",
                                    "an importable module with Toolset/Tool objects, or a "
                                    "working MCP server"))
    return registry, problems
