"""The trust boundary: which code routines may name, decided by the application.

A routine file is data: loading or validating one never imports, runs or launches
anything it names. Which toolsets exist (Python modules, MCP servers with their
commands) and which dataset folders may run their ``domain.py`` is the
application's decision, made in code or in a project file the user wrote::

    # routine.toml, at the project's root
    routines = ["routines"]            # where routine files live (relative to this file)

    [model]                            # the default model (flags and ROUTINE_* win over it)
    name = "qwen2.5-coder-1.5b"        # an embedded model, or the endpoint's model name
    base_url = "https://..."           # optional: an OpenAI-compatible endpoint
    api_key_env = "OPENAI_API_KEY"     # the variable holding its key (never the key here)
    structured = "json_schema"         # how guided turns are constrained there (or llama,
                                       # tool_choice, off)
    extra_body = { chat_template_kwargs = { enable_thinking = false } }
                                       # sent with every request (Qwen3: thinking off)

    [toolsets]
    helpdesk = "helpdesk_tools"        # a module (or module:attribute); modules beside
                                       # this file import without PYTHONPATH
    calendar = { mcp = { command = "python", args = ["servers/calendar.py"] } }
                                       # (a server runs in this file's folder)

    [datasets]
    trusted = ["eval/*"]               # folders whose domain.py may run, relative to this file

A routine only names entries (``toolsets: [calendar]``); an unknown name, or a
server written into the routine itself, is a validation problem at its line.
In code, :class:`Project` takes the same entries, or Tool/Toolset objects.

:meth:`Project.discover` finds the file the user trusts: an explicit path, else
``ROUTINE_PROJECT``, else the nearest ``routine.toml`` from the working directory
up (never from the routine's folder: a file from elsewhere brings no trust with
it); with none, the bundled sample toolsets (``routine_tools.*``) and no datasets.
"""

from __future__ import annotations

import fnmatch
import importlib
import os
import re
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import Problem, ProjectError
from ..tools.core import Tool, Toolset
from ..tools.mcp import McpServer

__all__ = ["Project", "ModelDefaults", "PROJECT_FILE", "BUNDLED_TOOLSETS", "import_toolsets"]

PROJECT_FILE = "routine.toml"
BUNDLED_TOOLSETS = ("routine_tools.hr", "routine_tools.retail")

Entry = str | McpServer | Tool | Toolset | list[Tool | Toolset]


class _McpEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mcp: McpServer


class _Datasets(BaseModel):
    model_config = ConfigDict(extra="forbid")
    trusted: list[str] = Field(default_factory=list)


class ModelDefaults(BaseModel):
    """The project's default model: ``[model]`` in routine.toml. Command-line flags and the
    ROUTINE_* / OPENAI_* variables win over it; with nothing set, the embedded default."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, description="An embedded model's name, or the model name "
                             "the endpoint serves.")
    base_url: str | None = Field(None, description="An OpenAI-compatible endpoint; none: the "
                                 "embedded model.")
    api_key_env: str | None = Field(None, description="The environment variable that holds "
                                    "the endpoint's key (the key itself never goes in the file).")
    structured: Literal["json_schema", "llama", "tool_choice", "off"] | None = Field(
        None, description="How the endpoint constrains guided turns: json_schema (OpenAI, "
        "vLLM), llama (llama.cpp's server), tool_choice (strict function calling), off.")
    extra_body: dict[str, Any] = Field(
        default_factory=dict, description="Fields sent with every request to the endpoint "
        "(vLLM/Qwen3: chat_template_kwargs = { enable_thinking = false }).")


class _ProjectFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    routines: str | list[str] = Field(default_factory=list)
    model: ModelDefaults = Field(default_factory=ModelDefaults)
    toolsets: dict[str, str | _McpEntry] = Field(default_factory=dict)
    datasets: _Datasets = Field(default_factory=_Datasets)


def import_toolsets(reference: str, folder: str | Path | None = None) -> list[Tool | Toolset]:
    """The tools and toolsets a ``module`` or ``module:attribute`` reference names (only
    for references the application chose: a project entry, a ``--tools`` flag).

    ``folder`` (the project's root; default: the working directory) is searched first, so
    a module beside routine.toml imports without PYTHONPATH, as ``python -m`` would.
    A module that is not found is one ImportError saying where it was looked for."""
    module_name, _, attribute = reference.partition(":")
    where = str(Path(folder or Path.cwd()).resolve())
    if where not in sys.path:
        sys.path.insert(0, where)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing != module_name and not module_name.startswith(missing + "."):
            raise  # the module was found; something it imports is missing
        raise ModuleNotFoundError(
            f"no module named {module_name!r} (looked in {where} and the installed "
            "packages; a toolset module is a .py file or package folder there)",
            name=exc.name) from None
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
    if not found:  # e.g. ``calendar``: the standard library's module, not the one beside it
        source = getattr(module, "__file__", None) or "a built-in module"
        beside = Path(where) / f"{module_name.replace('.', '/')}.py"
        hint = (f"; {beside} was not imported: the name is taken by {source} (rename the "
                "file)") if beside.is_file() and str(beside) != source else ""
        raise TypeError(f"module {module_name!r} ({source}) defines no Tool or Toolset{hint}")
    # a module-level Tool that already belongs to a collected Toolset is not added twice
    owned = {id(t) for ts in found if isinstance(ts, Toolset) for t in ts.tools.values()}
    return [item for item in found if id(item) not in owned]


@dataclass
class Project:
    """Named toolsets routines may use, and dataset folders whose code may run."""

    toolsets: dict[str, Entry] = field(default_factory=dict)
    datasets: list[str] = field(default_factory=list)  # folder patterns (absolute)
    file: Path | None = None
    routines: list[Path] = field(default_factory=list)  # routine folders (absolute)
    model: ModelDefaults = field(default_factory=ModelDefaults)

    # ------------------------------------------------------------ building
    @classmethod
    def bundled(cls) -> Project:
        """No project file: the sample toolsets shipped with the package, no datasets."""
        return cls({name: name for name in BUNDLED_TOOLSETS})

    @classmethod
    def load(cls, path: str | Path) -> Project:
        """Read a ``routine.toml``; a ProjectError says where it is wrong."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8-sig")  # (a BOM from a Windows editor)
        except (OSError, UnicodeDecodeError) as exc:
            raise ProjectError([Problem(str(path), 1, 1, f"cannot read the project file: {exc}",
                                        "a UTF-8 TOML file")]) from None
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            found = re.search(r"line (\d+), column (\d+)", str(exc))
            line, column = (int(found[1]), int(found[2])) if found else (1, 1)
            raise ProjectError([Problem(str(path), line, column, f"TOML: {exc}",
                                        "valid TOML")]) from None
        try:
            parsed = _ProjectFile.model_validate(raw)
        except ValidationError as exc:
            # a union (module name or mcp table) fails once per member: keep the errors
            # that reach deepest into what the file has
            errors = [(_problem(path, text, raw, e), e) for e in exc.errors(include_url=False)]
            depth = {id(e): p.message.split(":")[0].count(".") for p, e in errors}
            deepest: dict[str, int] = {}
            for _, e in errors:
                entry = ".".join(str(x) for x in e["loc"][:2])
                deepest[entry] = max(deepest.get(entry, 0), depth[id(e)])
            kept = {(p.line, p.message): p for p, e in errors
                    if depth[id(e)] == deepest[".".join(str(x) for x in e["loc"][:2])]}
            for p, e in errors:  # a toolset entry neither member of the union takes: once
                entry = [x["loc"] for _, x in errors if x["loc"][:2] == e["loc"][:2]]
                if e["loc"][0] == "toolsets" and all(len(loc) == 3 for loc in entry):
                    kept = {k: v for k, v in kept.items() if v.line != p.line}
                    kept[(p.line, "")] = Problem(
                        p.file, p.line, 1, f"toolsets.{e['loc'][1]}: {e['input']!r} is neither "
                        "a module name nor an MCP server table",
                        'NAME = "module" or NAME = { mcp = { command = "...", args = [...] } }')
            raise ProjectError(list(kept.values())) from None
        entries: dict[str, Entry] = {
            name: value if isinstance(value, str) else value.mcp.model_copy(
                update={"name": value.mcp.name or name})
            for name, value in parsed.toolsets.items()}
        base = path.resolve().parent
        folders = [parsed.routines] if isinstance(parsed.routines, str) else parsed.routines
        return cls(entries, [str(base / pattern) for pattern in parsed.datasets.trusted], path,
                   [base / folder for folder in folders], parsed.model)

    @classmethod
    def discover(cls, path: str | Path | None = None, start: str | Path | None = None
                 ) -> Project:
        """``path``, else ``$ROUTINE_PROJECT``, else the nearest routine.toml from ``start``
        (the working directory) up, else :meth:`bundled`."""
        chosen = path or os.environ.get("ROUTINE_PROJECT") or None
        if chosen:
            return cls.load(chosen)
        here = Path(start or Path.cwd()).resolve()
        for folder in (here, *here.parents):
            if (folder / PROJECT_FILE).is_file():
                return cls.load(folder / PROJECT_FILE)
        return cls.bundled()

    # ------------------------------------------------------------ questions
    @property
    def root(self) -> Path | None:
        """The folder of the project file (None without one)."""
        return self.file.resolve().parent if self.file else None

    def names(self) -> list[str]:
        return sorted(self.toolsets)

    def describe(self) -> str:
        where = str(self.file) if self.file else f"no {PROJECT_FILE}: the bundled toolsets"
        return f"{where}: {', '.join(self.names()) or 'none'}"

    def resolve(self, name: str) -> list[Tool | Toolset]:
        """The tools of a named entry: the only place a toolset's code is imported or its
        server launched. KeyError for a name the project does not have."""
        entry = self.toolsets[name]
        if isinstance(entry, str):
            return import_toolsets(entry, self.root)
        if isinstance(entry, McpServer):
            from ..tools.mcp import mcp_toolset

            return [mcp_toolset(entry, cwd=self.root)]  # relative args work from anywhere
        return list(entry) if isinstance(entry, list) else [entry]

    def trusts_dataset(self, folder: str | Path) -> bool:
        resolved = str(Path(folder).resolve())
        return any(fnmatch.fnmatchcase(resolved, str(Path(pattern).resolve()))
                   for pattern in self.datasets)


def _problem(path: Path, text: str, raw: dict[str, Any], error: Any) -> Problem:
    """A validation error of the project file, at the line of the deepest key it names."""
    keys: list[str] = []
    current: Any = raw
    for part in error["loc"]:
        if isinstance(current, dict) and part in current:
            keys.append(str(part))
            current = current[part]
        elif error["type"] == "extra_forbidden" and part == error["loc"][-1]:
            keys.append(str(part))
    line = 1
    if keys:
        pattern = re.compile(rf'(^|[\s."{{\[]){re.escape(keys[-1])}(["\]\s=.]|$)')
        line = next((n for n, content in enumerate(text.splitlines(), 1)
                     if pattern.search(content)), 1)
    where = ".".join(keys) or "(top level)"
    message = (f"unknown key {where}" if error["type"] == "extra_forbidden"
               else f"{where}: {error['msg']}")
    return Problem(str(path), line, 1, message,
                   "routines = [\"folder\", ...]; [model] name, base_url, api_key_env, "
                   "structured, extra_body; "
                   "[toolsets] NAME = \"module\" or NAME = { mcp = { command, args } }; "
                   "[datasets] trusted = [\"folder\", ...]")
