"""The ``routine`` command: run, validate, schema, tools, models.

One entry point, ``main(argv) -> int``, tested in-process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import functools
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

import click
import typer
from rich.console import Console
from rich.text import Text

from ..errors import Problem, RoutineError, RoutineWarning, SpecError
from ..eval.config import EvalConfig
from ..models.client import OpenAIModel, endpoint_from_env
from ..models.embedded import (
    DEFAULT_MODEL,
    LIGHT_MODEL,
    MODELS,
    cache_state,
    embedded_server,
    embedded_server_command,
    ensure_model,
)
from ..routing import RoutedAgent, unrouted_trace
from ..run.blocking import run_blocking
from ..run.executor import Agent
from ..run.inputs import coerce_inputs
from ..run.settings import RunSettings
from ..run.signing import trace_key
from ..run.trace import RunTrace, TurnRecord, dump_traces, load_traces
from ..spec.flow import Flow
from ..spec.format import Routine, routine_json_schema
from ..spec.loader import (
    LoadedRoutine,
    files_named,
    load_routine,
    routine_files,
    routine_names,
    routines_by_name,
)
from ..spec.project import Project
from ..spec.toolsets import import_toolsets, registry_for
from ..spec.typetext import output_fields as _output_fields
from ..spec.typetext import type_text as _type_text
from ..spec.validate import check_routine
from ..tools.core import ToolRegistry
from ..tools.mcp import McpServer
from . import draft as draft_cli
from . import route
from .options import options_from
from .terminal import shown

__all__ = ["main", "app"]

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Make LLM agents follow your business processes.")
out = Console()
err = Console(stderr=True)


@app.callback()
def _options(project: Annotated[Path | None, typer.Option(
        "--project", envvar="ROUTINE_PROJECT",
        help="The project file (routine.toml): which toolsets routines may name and which "
             "dataset folders may run code. Default: the nearest routine.toml from here up, "
             "else the bundled sample toolsets.")] = None) -> None:
    if project is not None:
        os.environ["ROUTINE_PROJECT"] = str(project)  # restored when the command ends


def _routine_files(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += routine_files(path)
        else:
            files.append(path)
    return files


def routine_path(path: Path) -> Path:
    """A routine file, or a routine's name looked up in the project's routine folders and
    their subfolders (``routine run leave_balance ...``): the file whose ``name:`` is it,
    else the one file named ``leave_balance.yaml``. Not found, or found twice: an error
    whose hint lists only names that would work."""
    if path.exists() or path.suffix in (".yaml", ".yml") or len(path.parts) > 1:
        return path
    folders = Project.discover().routines
    if not folders:
        return path
    wanted = str(path)
    names = routine_names(_routine_files(sorted(set(folders))))
    found = files_named(wanted, names)
    if len(found) == 1:
        return found[0]
    if found:
        raise click.BadParameter(f"{wanted!r} names more than one routine file "
                                 f"({', '.join(map(str, found))}); give the file",
                                 param_hint="ROUTINE")
    usable = sorted(n for n in {*names.values(), *(f.stem for f in names)}
                    if n and len(files_named(n, names)) == 1)
    close = difflib.get_close_matches(wanted, usable, n=3)
    hint = f"did you mean {', '.join(close)}?" if close else \
        f"the project's routines: {', '.join(usable) or 'none'}"
    raise click.BadParameter(f"no routine file or routine named {wanted!r} ({hint})",
                             param_hint="ROUTINE")




def load_checked(path: Path, extra_tools: list[str] | None = None,
                 warnings: list[Problem] | None = None
                 ) -> tuple[LoadedRoutine | None, ToolRegistry, list[Problem]]:
    """Load a routine (a file, or a name in the project's routine folders), build its
    registry and run every check (``warnings`` receives what may stop a run)."""
    path = routine_path(path)
    try:
        loaded = load_routine(path)
    except SpecError as exc:
        return None, ToolRegistry(), exc.problems
    except OSError as exc:
        return None, ToolRegistry(), [Problem(str(path), 1, 1, f"cannot read file: {exc}")]
    registry, problems = registry_for(loaded, extra_tools)
    routines = None
    if any(step.handoff for step, _ in loaded.routine.walk()):  # its targets must exist
        routines = {**_handoff_targets(loaded),
                    loaded.routine.name: loaded.routine}
    problems += check_routine(loaded, registry, partial=bool(problems), routines=routines,
                              warnings=warnings)
    return loaded, registry, problems


@app.command()
def validate(
    paths: Annotated[list[Path] | None, typer.Argument(
        help="Routine files or folders (default: the project's routine folders).")] = None,
    tools: Annotated[list[str] | None, typer.Option(
        "--tools", help="Extra tool modules (module or module:attribute).")] = None,
) -> None:
    """Check routines against their tools' schemas; report every problem with file:line:col."""
    project = Project.discover()
    absent = [f for f in project.routines if not f.is_dir()] if not paths else []
    if absent:  # (it was read as a routine file: "nope:1:1: cannot read the file")
        err.print(f"error: {project.file}: routines names {absent[0]}, which is not a folder "
                  "(expected folders of routine files, relative to routine.toml)",
                  markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    files = _routine_files(paths or project.routines)
    if not files:
        where = ", ".join(map(str, paths or project.routines)) or (
            "no paths given, and no routine.toml with routines = [...] from here up")
        err.print(f"error: no routine files found ({where})")
        raise typer.Exit(2)
    total = cautions = 0
    checked: list[LoadedRoutine] = []
    for file in files:
        warnings: list[Problem] = []
        loaded, _, problems = load_checked(file, tools, warnings)
        checked += [loaded] if loaded is not None else []
        for problem in [*problems, *warnings]:  # (escape sequences in a key: written out)
            out.print(shown(str(problem)), markup=False, highlight=False, soft_wrap=True)
        total += len(problems)
        cautions += len(warnings)
    for problem in _duplicate_names(checked):  # a library, run NAME, hand-offs need one
        out.print(shown(str(problem)), markup=False, highlight=False, soft_wrap=True)
        total += 1
    verdict = "ok" if total == 0 else f"{total} problem{'s' * (total != 1)}"
    if cautions:
        verdict += f" ({cautions} warning{'s' * (cautions != 1)})"
    out.file.flush()  # the problems before the verdict when both streams go to one place
    err.print(f"{len(files)} routine file{'s' * (len(files) != 1)} checked: {verdict}")
    if total:
        raise typer.Exit(1)


def _duplicate_names(checked: list[LoadedRoutine]) -> list[Problem]:
    """One problem per file whose routine ``name:`` another checked file also has, at that
    key."""
    files: dict[str, list[LoadedRoutine]] = {}
    for loaded in checked:
        files.setdefault(loaded.routine.name, []).append(loaded)
    problems = []
    for name, same in files.items():
        for loaded in same if len(same) > 1 else []:
            others = ", ".join(o.source.file for o in same if o is not loaded)
            problems.append(Problem(loaded.source.file, *loaded.source.locate(("name",)),
                                    f"routine name {name!r} is also the name of {others}",
                                    "unique routine names (a library, `routine run NAME` and "
                                    "hand-offs find a routine by its name)"))
    return problems


def _writable(folder: Path) -> None:
    """Fail before the run, not after it, when traces cannot be written (or signed)."""
    try:
        trace_key()
    except RoutineError as exc:
        raise click.BadParameter(str(exc), param_hint="ROUTINE_TRACE_KEY") from None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / "traces.jsonl").open("a", encoding="utf-8"):
            pass
    except OSError as exc:
        raise click.BadParameter(f"{folder}: traces cannot be written there "
                                 f"({exc.strerror or exc})", param_hint="--trace-dir") from None


def _approver(choice: str | None) -> Any:
    from ..run.approval import ask_in_terminal, policy

    choice = choice or ("ask" if sys.stdin.isatty() else "none")
    if choice == "ask":
        return ask_in_terminal()
    return policy(choice == "all", by=f"--approve {choice}")


@app.command()
def schema() -> None:
    """Print the JSON Schema of the routine format."""
    out.print_json(json.dumps(routine_json_schema()))


@app.command()
def init(
    folder: Annotated[Path, typer.Argument(help="Where to create the project.")] = Path("."),
    force: Annotated[bool, typer.Option(help="Overwrite files that exist.")] = False,
) -> None:
    """Create a working project: routine.toml, a toolset, a routine, gold data, a README."""
    from .project_init import init_project

    try:
        written = init_project(folder, force)
    except FileExistsError as exc:  # nothing was written
        _error(str(exc))
        raise typer.Exit(1) from None
    except OSError as exc:
        _error(f"cannot write the project in {folder}: {exc.strerror or exc}"
               + (f" ({exc.filename})" if exc.filename else ""))
        raise typer.Exit(1) from None
    for path in written:
        out.print(f"  created {path}", markup=False, highlight=False)
    # quoted for a shell: a folder with spaces, quotes or $ in it, or a leading dash
    where = "" if folder.resolve() == Path.cwd() else f"cd {_shell_path(folder)} && "
    out.print(f"\nnext: {where}routine validate && routine run open_ticket "
              "\"My VPN keeps dropping, I'm ana.lima@example.com\"", markup=False,
              highlight=False, soft_wrap=True)


def _shell_path(path: Path) -> str:
    """``path`` as a POSIX shell reads it back as one word (``cd -dash`` is an option)."""
    import shlex

    text = str(path)
    return shlex.quote(f"./{text}" if text.startswith("-") else text)


def _list_toolsets(project: Project, as_json: bool) -> None:
    """The project's toolset names and what each is, without importing or launching any."""
    entries = {name: _entry_text(entry) for name, entry in project.toolsets.items()}
    if as_json:
        out.print_json(json.dumps({"project": str(project.file) if project.file else None,
                                   "toolsets": entries}))
        return
    where = str(project.file) if project.file else "no routine.toml: the bundled toolsets"
    out.print(f"toolsets of {where}:", markup=False, highlight=False, soft_wrap=True)
    for name, text in entries.items():
        out.print(Text.assemble("  ", (name, "bold"), f"  {text}"), soft_wrap=True)
    if not entries:
        out.print("  (none)", markup=False)
    err.print("list one's tools with: routine tools --toolset NAME", markup=False)


def _entry_text(entry: object) -> str:
    if isinstance(entry, str):
        return entry
    if isinstance(entry, McpServer):
        return "MCP server: " + " ".join([entry.command, *entry.args])
    return "given in code"


def _tool_listing(registry: ToolRegistry) -> list[dict[str, Any]]:
    """Each tool as ``--json`` prints it: the OpenAI function spec, the output schema, the
    return type and the output's fields."""
    listed = []
    for t in registry:
        output = t.output_schema
        listed.append({**t.openai_spec()["function"], "output": output,
                       "returns": _type_text(output, output or {}) if output else None,
                       "output_fields": [{"name": name, "type": text, "required": required}
                                         for name, text, required in _output_fields(output)]})
    return listed


@app.command("tools")
def list_tools(
    routine: Annotated[Path | None, typer.Option(
        help="List the tools of this routine (a file, or a name in the project's routine "
             "folders).")] = None,
    module: Annotated[list[str] | None, typer.Option(
        "--tools", help="Tool modules (module or module:attribute).")] = None,
    toolset: Annotated[list[str] | None, typer.Option(
        "--toolset", help="A toolset of the project (routine.toml [toolsets]), by name.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the schemas as JSON.")] = False,
) -> None:
    """List tools with their arguments, return type and output fields; with no option, the
    project's toolsets by name."""
    registry = ToolRegistry()
    if routine is None and not module and not toolset:
        _list_toolsets(Project.discover(), as_json)
        return
    if toolset:
        from ..drafting.draft import toolset_registry

        try:
            registry = toolset_registry(list(toolset))
        except RoutineError:
            raise
        except Exception as exc:  # the toolset's own module or server failed
            raise RoutineError(f"cannot load toolset(s) {', '.join(toolset)}: "
                               f"{type(exc).__name__}: {exc}") from None
    if routine is not None:
        try:
            loaded = load_routine(routine_path(routine))
            registry, problems = registry_for(loaded, module, registry=registry)
        except SpecError as exc:
            problems = exc.problems
        if problems:  # a toolset that is unknown, refused or broken: no list to show
            for problem in problems:
                err.print(shown(str(problem)), markup=False, soft_wrap=True)
            raise typer.Exit(1)
    else:
        for ref in module or []:
            try:
                items = import_toolsets(ref)
                for item in items:
                    registry.add(item)
            except Exception as exc:
                raise RoutineError(f"cannot load tools from {ref}: {type(exc).__name__}: "
                                   f"{exc} (expected a module, or module:attribute, with "
                                   "Toolset/Tool objects)") from None
            if not items:
                raise RoutineError(f"{ref} holds no tools (expected a module, or "
                                   "module:attribute, with Toolset/Tool objects)")
    if as_json:
        out.print_json(json.dumps(_tool_listing(registry)))
        return
    for t in _tool_listing(registry):
        params = t["parameters"]
        required = set(params.get("required", []))
        args = ", ".join(f"{k}{'' if k in required else '?'}: {_type_text(v, params)}"
                         for k, v in params.get("properties", {}).items())
        returns = f" -> {t['returns']}" if t["returns"] else ""
        out.print(Text.assemble((t["name"], "bold"), f"({args}){returns}"), soft_wrap=True)
        out.print(f"    {t['description'].splitlines()[0]}", markup=False, highlight=False,
                  soft_wrap=True)
        for field in t["output_fields"]:
            mark = "" if field["required"] else "?"
            out.print(f"      {field['name']}{mark}: {field['type']}", markup=False,
                      highlight=False, soft_wrap=True)


@app.command()
def models(
    prepare: Annotated[str | None, typer.Option(
        help="Assemble and verify this embedded model now.")] = None,
    model_cache: Annotated[Path | None, typer.Option(help="Model cache folder.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the list as JSON.")] = False,
) -> None:
    """List the embedded models: whether their weights are installed, and whether their GGUF
    file is assembled in the cache and verified (and assemble one with --prepare)."""
    if prepare:
        started = time.perf_counter()
        path = ensure_model(prepare, model_cache)
        err.print(f"{prepare}: {path} verified in {time.perf_counter() - started:.1f} s")
        return
    states = [cache_state(name, model_cache) for name in MODELS]
    if as_json:
        out.print_json(json.dumps([
            {**dataclasses.asdict(state), "path": str(state.path),
             "title": MODELS[state.name].title, "sha256": MODELS[state.name].sha256,
             "default": state.name == DEFAULT_MODEL, "light": state.name == LIGHT_MODEL}
            for state in states]))
        return
    for state in states:
        spec = MODELS[state.name]
        tag = " (default)" if state.name == DEFAULT_MODEL else \
            " (light)" if state.name == LIGHT_MODEL else ""
        parts = f"{state.parts_installed}/{state.parts_total} parts installed"
        if state.parts_installed < state.parts_total:
            parts += f' (pip install -e ".[{spec.extra}]")'
        if not state.assembled:
            cached = f"not assembled (routine models --prepare {state.name} writes {state.path})"
        else:
            cached = f"{state.path}, {(state.size or 0) / 1e6:.1f} MB, " + (
                "sha256 verified" if state.verified else
                "sha256 not verified (changed since, or never checked: the next use checks it)")
        out.print(f"{state.name}{tag}: {spec.title}, sha256 {spec.sha256[:16]}…\n"
                  f"  weights: {parts}\n  cache: {cached}", markup=False, highlight=False,
                  soft_wrap=True)


def _parse_inputs(pairs: list[str], routine: Routine | None = None) -> dict[str, Any]:
    """``NAME=VALUE`` pairs; with ``routine``, names and values it would refuse are usage
    errors now, before a model is started."""
    values = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise click.BadParameter(f"{pair!r}: expected NAME=VALUE", param_hint="--input")
        if name.strip() in values and values[name.strip()] != value:
            raise click.BadParameter(f"{name.strip()!r} is given twice ({values[name.strip()]!r} "
                                     f"and {value!r}): which one?", param_hint="--input")
        values[name.strip()] = value
    try:
        coerce_inputs(routine, values)
    except RoutineError as exc:
        raise click.BadParameter(str(exc), param_hint="--input") from None
    return values


def _endpoint(model: str | None, base_url: str | None, api_key: str | None
              ) -> tuple[str | None, str | None, str | None]:
    """(base_url, model, api_key): flags, else ROUTINE_* / OPENAI_*, else the project's
    ``[model]``; no base URL means the embedded model."""
    base_url, env_model, api_key = endpoint_from_env(base_url, None, api_key)
    model = model or env_model
    defaults = Project.discover().model
    embedded = model is not None and (model in MODELS or model.endswith(".gguf"))
    if not base_url and defaults.base_url and not embedded:
        base_url = defaults.base_url
    if base_url and not api_key and defaults.api_key_env:
        api_key = os.environ.get(defaults.api_key_env)
    return base_url, model or defaults.name, api_key


@contextlib.contextmanager
def _model(model: str | None, base_url: str | None, api_key: str | None,
           model_cache: Path | None, timeout: float,
           adapter: Path | None = None) -> Iterator[OpenAIModel]:
    base_url, name, api_key = _endpoint(model, base_url, api_key)
    if base_url and adapter is not None:
        raise RoutineError("--adapter runs in the embedded model; an endpoint serves its own "
                           "adapters (vLLM: --lora-modules NAME=PATH, then --model NAME)")
    if base_url:
        if not name:
            raise RoutineError("an endpoint is set but no model name: pass --model, set "
                               "ROUTINE_MODEL, or name it in routine.toml [model] name")
        defaults = Project.discover().model
        options: dict[str, Any] = {"extra_body": defaults.extra_body} if defaults.extra_body else {}
        yield OpenAIModel(name, base_url, api_key, timeout=timeout,
                          structured=defaults.structured or "json_schema", **options)
        return
    if model is None and name and name not in MODELS and not name.endswith(".gguf"):
        name = None  # an endpoint's model name from the environment, with no endpoint
    with embedded_server(name or DEFAULT_MODEL, model_cache, adapter=adapter) as server:
        err.print(f"[dim]embedded model {server.model} ready at {server.base_url} "
                  f"(loaded in {server.load_seconds:.1f} s)[/dim]")
        yield server.client(timeout=timeout)


def _step_label(flow: Flow | None, step_id: str | None) -> str:
    """``2/3 Check the leave balance`` (a step in a branch: its label, ``3-1_2 Name``), or ""
    when the step is unknown."""
    if flow is None or step_id not in flow.steps:
        return ""
    step, label = flow.steps[step_id], flow.labels[step_id]
    if not label.isdigit():
        return f"{label} {shown(step.name)}"
    return f"{label}/{sum(other.isdigit() for other in flow.labels.values())} {shown(step.name)}"


def _show_turn(turn: TurnRecord, flow: Flow | None = None) -> None:
    """Each call of a turn, once: ``▶ 2/3 Step name · tool(args)`` then ``→ result`` (the step
    left out when the call completed none), or ``✗ tool(args)`` and the error."""
    for call in turn.calls:
        args = ", ".join(f"{k}={v!r}" for k, v in call.arguments.items())
        call_text = Text.assemble((shown(call.name), "bold"), f"({args})")
        if call.ok:
            step = _step_label(flow, call.step_id)
            label = Text.assemble((step, "cyan"), " · ") if step else Text()
            result = call.result_text or ""
            result = result if len(result) <= 160 else result[:160] + "…"
            out.print(Text.assemble("▶ ", label, call_text, f"\n  → {shown(result)}"),
                      soft_wrap=True)
        elif call.error_kind == "awaiting_confirmation":  # not a failure: it waits
            out.print(Text.assemble("⏸ ", call_text, "\n  ",
                                    ("waits for your yes", "yellow")), soft_wrap=True)
        else:
            out.print(Text.assemble("✗ ", call_text, "\n  ", (shown(call.error), "red")),
                      soft_wrap=True)
    if turn.feedback and turn.kind == "retry":
        out.print(Text.assemble(("  retry: " + shown(turn.feedback), "yellow")), soft_wrap=True)


def _summary(trace: RunTrace) -> None:
    out.rule()
    if trace.outcome == "answered":
        out.print(Text.assemble(("Answer:", "bold green"), " ", shown(trace.answer)),
                  soft_wrap=True)
    elif trace.outcome == "waiting":
        out.print(Text.assemble(("Waiting for you:", "bold yellow"), " ", shown(trace.answer),
                                " (`routine chat ROUTINE --resume TRACES` goes on from a "
                                "saved trace)"), soft_wrap=True)
    elif trace.outcome == "handed_off" and trace.handoff is not None:
        out.print(Text.assemble(("Handed off", "bold yellow"), " to ",
                                shown(trace.handoff.routine),
                                " (`routine chat` follows hand-offs)"), soft_wrap=True)
    else:
        out.print(Text.assemble(("Failed:", "bold red"), " ", shown(trace.failure)),
                  soft_wrap=True)
    for step_id, error in trace.branch_errors.items():
        said = f"step {step_id}: {error}" if error.startswith("until ") else (
            f"the branch of step {step_id} could not be decided by its when ({error}); the "
            "model chose")
        out.print(Text(f"warning: {said}", "yellow"), soft_wrap=True)
    out.print(f"tools: {' → '.join(trace.tool_sequence) or '(none)'} · steps done: "
              f"{', '.join(trace.steps_done) or '(none)'} · turns: {len(trace.turns)} · "
              f"tokens: {trace.usage.prompt_tokens}+{trace.usage.completion_tokens} · "
              f"{trace.duration_s:.1f} s", highlight=False)


def _runnable(routine: Path, tools: list[str] | None, trace_dir: Path | None
              ) -> tuple[LoadedRoutine, ToolRegistry]:
    """The routine and its tools, checked (problems printed, exit 1), before a model starts."""
    if trace_dir is not None:
        _writable(trace_dir)
    loaded, registry, problems = load_checked(routine, tools)
    if problems:
        for problem in problems:
            err.print(shown(str(problem)), markup=False, highlight=False, soft_wrap=True)
        err.print(shown(f"{routine}: {len(problems)} problem(s); fix them before running"),
                  markup=False, highlight=False)
        raise typer.Exit(1)
    assert loaded is not None
    return loaded, registry


# options `run` and `chat` share
ModelOption = Annotated[str | None, typer.Option(
    help="Embedded model name, a .gguf path, or the endpoint's model name.")]
BaseUrlOption = Annotated[str | None, typer.Option(
    help="OpenAI-compatible endpoint (else ROUTINE_BASE_URL / OPENAI_BASE_URL, else the "
         "project's \\[model]; none: the embedded model).")]
ApiKeyOption = Annotated[str | None, typer.Option(help="API key for the endpoint.")]
ToolsOption = Annotated[list[str] | None, typer.Option("--tools", help="Extra tool modules.")]
TraceDirOption = Annotated[Path | None, typer.Option(
    help="Append the run's traces to DIR/traces.jsonl.")]
ModelCacheOption = Annotated[Path | None, typer.Option(
    help="Where embedded model files are assembled.")]
AdapterOption = Annotated[Path | None, typer.Option(
    help="A LoRA adapter (GGUF, from `routine export-adapter`) for the embedded model.")]


@app.command()
@options_from(RunSettings, into="settings",
              rename={"routine_format": "format", "timeout_s": "timeout",
                      "tool_timeout_s": "tool_timeout"})
def run(
    settings: RunSettings,
    ctx: typer.Context,
    routine: Annotated[str | None, typer.Argument(
        help="The routine YAML file or its name (with --library: left out, the request "
             "comes first).")] = None,
    query: Annotated[str | None, typer.Argument(help="The user's request.")] = None,
    input_: Annotated[list[str] | None, typer.Option(
        "--input", "-i", help="An input value, NAME=VALUE (repeatable).")] = None,
    model: ModelOption = None,
    base_url: BaseUrlOption = None,
    api_key: ApiKeyOption = None,
    tools: ToolsOption = None,
    trace_dir: TraceDirOption = None,
    model_cache: ModelCacheOption = None,
    adapter: AdapterOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the trace as JSON.")] = False,
    approve: Annotated[Literal["ask", "all", "none"] | None, typer.Option(
        help="Calls that need approval (approval: required steps, approval tools): ask in "
             "the terminal, approve all, or refuse all. Default: ask on a terminal, else "
             "none.")] = None,
    library: route.LibraryOption = None,
    router: route.RouterOption = None,
    examples: route.ExamplesOption = None,
    none_below: route.ThresholdOption = None,
) -> None:
    """Run a routine on a request and show each step live (with --library, a router picks
    the routine; when none fits, the agent says what it can help with)."""
    if library:
        if query is not None:
            raise click.BadParameter("with --library the router picks the routine: give only "
                                     "the request", param_hint="ROUTINE")
        _parse_inputs(input_ or [])  # NAME=VALUE now; the names once a routine is chosen
        return _run_routed(library, route.request_text(routine), settings, examples, router,
                           none_below, model, base_url, api_key, tools, trace_dir, model_cache,
                           adapter, as_json, approve, input_ or [])
    if routine is None:
        raise click.MissingParameter("name a routine, or give --library DIR to let a router "
                                     "pick one", ctx=ctx,
                                     param_hint="'ROUTINE'", param_type="argument")
    loaded, registry = _runnable(Path(routine), tools, trace_dir)
    inputs = _parse_inputs(input_ or [], loaded.routine)
    with _model(model, base_url, api_key, model_cache, settings.timeout_s, adapter) as client:
        agent = Agent(loaded, registry, client, settings, approver=_approver(approve))
        show = functools.partial(_show_turn, flow=Flow.of(loaded.routine))
        with _stdout_for(as_json):
            trace = agent.run(query, inputs, on_turn=None if as_json else show,
                              trace_dir=trace_dir)
    if as_json:
        out.print_json(trace.model_dump_json())
    else:
        _summary(trace)
    if trace.outcome not in ("answered", "waiting", "handed_off"):
        raise typer.Exit(1)


def _stdout_for(as_json: bool) -> contextlib.AbstractContextManager[Any]:
    """While a run's tools work: with --json, what they print goes to stderr, so stdout
    holds the JSON alone."""
    return contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext()


def _run_routed(folders: list[Path], query: str, settings: RunSettings,
                examples: list[Path] | None, kind: str | None, none_below: float | None,
                model: str | None, base_url: str | None, api_key: str | None,
                tools: list[str] | None, trace_dir: Path | None, model_cache: Path | None,
                adapter: Path | None, as_json: bool, approve: str | None,
                pairs: list[str] | None = None) -> None:
    """``routine run --library``: route the request, then run the routine (or answer with
    what the library can do). A retrieval router decides before any model starts.
    ``pairs``: the ``--input`` values, checked against the routine the router chose."""
    if trace_dir is not None:
        _writable(trace_dir)
    kind = route.router_kind(kind)
    library = route.library_from(folders, examples)
    models = _model(model, base_url, api_key, model_cache, settings.timeout_s, adapter)
    with contextlib.ExitStack() as stack:
        client = stack.enter_context(models) if kind == "llm" else None
        chooser = route.build_router(kind, library, client, none_below,
                                     examples=True if examples else None)
        decision = run_blocking(chooser.aroute(query))
        if not as_json:
            out.print(route.decision_text(decision), soft_wrap=True, highlight=False)
        agent = None
        inputs: dict[str, Any] = {}
        if decision.kind == "routine":
            if pairs:  # before the model starts: a name the chosen routine lacks is an error
                inputs = _parse_inputs(pairs, library[decision.routine].routine)
            client = client or stack.enter_context(models)
            agent = RoutedAgent(chooser, client, route.tools_for(tools), settings,
                                approver=_approver(approve)).agent(decision)
        if agent is None:
            trace = unrouted_trace(decision, query, client.name if client else "")
        else:
            flow = Flow.of(agent.routine) if agent.routine else None
            with _stdout_for(as_json):
                trace = agent.run(query, inputs or None, on_turn=None if as_json else
                                  functools.partial(_show_turn, flow=flow))
    if trace_dir is not None:
        dump_traces([trace], trace_dir / "traces.jsonl")
    if as_json:
        out.print_json(json.dumps({"decision": decision.model_dump(mode="json"),
                                   "trace": trace.model_dump(mode="json")}))
    elif agent is not None:
        _summary(trace)
    if trace.outcome not in ("answered", "waiting", "handed_off"):
        raise typer.Exit(1)


@app.command("route")
def route_request(
    query: Annotated[str, typer.Argument(help="The user's request.")],
    library: route.LibraryOption = None,
    router: route.RouterOption = None,
    examples: route.ExamplesOption = None,
    none_below: route.ThresholdOption = None,
    model: ModelOption = None,
    base_url: BaseUrlOption = None,
    api_key: ApiKeyOption = None,
    model_cache: ModelCacheOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the decision as JSON.")] = False,
) -> None:
    """Show which routine a router picks for a request (or none, or a question back), with
    its ranking. Runs nothing."""
    query = route.request_text(query)
    folders = library or Project.discover().routines
    if not folders:
        raise click.BadParameter("no routine folders: give --library DIR (or list routines "
                                 "in routine.toml)", param_hint="--library")
    kind = route.router_kind(router)
    chooser_library = route.library_from(folders, examples)
    models = _model(model, base_url, api_key, model_cache, 120.0) if kind == "llm" \
        else contextlib.nullcontext(None)
    with models as client:
        chooser = route.build_router(kind, chooser_library, client, none_below,
                                     examples=True if examples else None)
        decision = run_blocking(chooser.aroute(query))
    if as_json:
        out.print_json(decision.model_dump_json())
    else:
        out.print(route.decision_text(decision), soft_wrap=True, highlight=False)
    entry = next((e for e in chooser_library.entries if e.name == decision.routine), None)
    if entry is not None and entry.source is not None:  # would it run? (nothing runs here)
        tools, problems = registry_for(entry.source)
        problems += [p for p in check_routine(entry.source, tools, partial=bool(problems))
                     if p not in problems]
        if problems:
            err.print(Text(f"error: {entry.name} would not run: it does not validate", "red"))
            for problem in problems:
                err.print(Text(shown(str(problem))), soft_wrap=True)
            raise typer.Exit(1)


def _domain_routines(datasets: list[str] | list[Path]) -> dict[str, Path]:
    """Each dataset's routines folder, as ``routine eval`` finds it (its domain's
    ``routines_dir``): for datasets with a ``domain.py``."""
    from ..eval.dataset import load_domain

    found = {}
    for dataset in datasets:
        if not Path(dataset).is_dir():  # (not the routines of a layout it is not in)
            raise click.BadParameter(f"{dataset} is not a folder (expected a dataset folder "
                                     "with domain.py and its split files, e.g. eval/helpdesk)",
                                     param_hint="DATASETS")
        if (Path(dataset) / "domain.py").is_file():
            domain = load_domain(dataset)
            found[str(dataset)] = domain.root / domain.routines_dir
    return found


@app.command("route-eval")
def route_eval(
    datasets: Annotated[list[Path], typer.Argument(help="eval/datasets/<domain> folders.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Results folder (a rerun resumes "
                                          "the LLM router's decisions).")],
    routers: Annotated[str, typer.Option(help="Comma-separated routers to measure.")] =
        "lexical,embedding",
    limit: Annotated[int, typer.Option(help="Only the first N cases of each split "
                                       "(0: all).")] = 0,
    sample: Annotated[int, typer.Option(help="A fixed random sample of N cases of each split "
                                        "(seed 0; 0: all).")] = 0,
    k: Annotated[int, typer.Option(min=1, help="Candidates the LLM router's model sees.")] = 5,
    index_examples: Annotated[bool, typer.Option(
        help="The lexical router also indexes the train requests (the embedding router "
             "always reads them).")] = False,
    model: ModelOption = None,
    base_url: BaseUrlOption = None,
    api_key: ApiKeyOption = None,
    model_cache: ModelCacheOption = None,
) -> None:
    """Measure routers on datasets (examples from train only; thresholds tuned on dev):
    top-1, false 'none' on in-scope requests, 'none' on out-of-scope ones (dev and test)."""
    from ..eval.config import results_folder_problem
    from ..routing.measure import measure, table

    kinds = list(dict.fromkeys(route.router_kind(r.strip()) for r in routers.split(",")
                               if r.strip()))  # (each once: a router named twice ran twice)
    if not kinds:
        raise click.BadParameter("no router given (expected lexical, embedding or llm, "
                                 "comma-separated)", param_hint="--routers")
    if problem := results_folder_problem(out_dir, datasets):
        raise click.BadParameter(problem, param_hint="--out")
    routines = _domain_routines(datasets)  # (a folder that is not there: before a model)
    models = _model(model, base_url, api_key, model_cache, 120.0) if "llm" in kinds \
        else contextlib.nullcontext(None)
    with models as client:
        def show(line: str) -> None:  # (it names the cases' ids: a file's text)
            err.print(shown(line), markup=False, highlight=False)

        results = run_blocking(measure(datasets, kinds, out_dir, client, limit=limit,
                                       sample=sample, k=k,
                                       index_examples=index_examples, progress=show,
                                       routines=routines))
    _write_command(out_dir)
    Console(width=250).print(table(results), markup=False, highlight=False, soft_wrap=True)


def _handoff_targets(loaded: LoadedRoutine, registry: ToolRegistry | None = None,
                     skipped: dict[str, Problem] | None = None) -> dict[str, Routine]:
    """The routines a conversation may hand off to: those beside this one and in the
    project's routine folders, by name. With ``registry`` (a conversation will run them):
    each valid one that this routine's hand-offs reach (directly or through another), its
    tools added to ``registry`` (an unrelated routine's MCP server is not started).
    Without (validate: a hand-off needs only the target's name and inputs): each that
    loads, its toolsets left alone, so routines whose tools share a name do not hide each
    other. ``skipped`` receives why a
    routine could not join ``registry`` (its first problem)."""
    folders = {*(Project.discover().routines), *([loaded.path.parent] if loaded.path else [])}
    found: dict[str, Routine] = {}
    others = routines_by_name(sorted(folders))
    others.pop(loaded.routine.name, None)
    if registry is None:
        return {name: other.routine for name, (_, other) in others.items()}
    reach, todo = set(), [loaded.routine]  # a conversation: only what hand-offs reach
    while todo:
        for step, _ in todo.pop().walk():
            if step.handoff and step.handoff in others and step.handoff not in reach:
                reach.add(step.handoff)
                todo.append(others[step.handoff][1].routine)
    for name in sorted(reach):  # (their toolsets start: an MCP server is launched)
        file, other = others[name]
        try:
            _, problems = registry_for(other, registry=registry)
        except Exception as exc:  # noqa: BLE001 - its tools clash with these: not a target
            problems = [Problem(str(file), 1, 1, str(exc))]
        if not problems:
            found[name] = other.routine
        elif skipped is not None:
            skipped[name] = problems[0]
    return found


def _warn_unreachable_handoffs(loaded: LoadedRoutine, targets: dict[str, Routine],
                               skipped: dict[str, Problem]) -> None:
    """A hand-off of this routine to a routine this conversation cannot run: said once at
    the start (the hand-off itself would fail the conversation)."""
    for step, _ in loaded.routine.walk():
        if step.handoff and step.handoff not in targets and step.handoff in skipped:
            err.print(Text(f"warning: step {step.id} hands off to {step.handoff!r}, which "
                           f"cannot run beside this routine's tools: {skipped[step.handoff]}",
                           style="yellow"))


@app.command()
@options_from(RunSettings, into="settings",
              rename={"routine_format": "format", "timeout_s": "timeout",
                      "tool_timeout_s": "tool_timeout"})
def chat(
    routine: Annotated[Path, typer.Argument(help="The routine YAML file or its name.")],
    settings: RunSettings,
    message: Annotated[str | None, typer.Argument(
        help="The first message (else read from the terminal).")] = None,
    model: ModelOption = None,
    base_url: BaseUrlOption = None,
    api_key: ApiKeyOption = None,
    tools: ToolsOption = None,
    trace_dir: TraceDirOption = None,
    model_cache: ModelCacheOption = None,
    adapter: AdapterOption = None,
    resume: Annotated[Path | None, typer.Option(
        "--resume", help="A traces.jsonl (or the folder that holds one): the last "
        "conversation of this routine in it that waits for the user goes on.")] = None,
    approve: Annotated[Literal["ask", "all", "none"] | None, typer.Option(
        help="Calls that need approval besides the user's yes (approval: required steps, "
             "approval tools): ask in the terminal, approve all, or refuse all. Default: ask "
             "on a terminal, else none.")] = None,
) -> None:
    """Talk to a routine: it asks for what it needs and waits for your yes before writing."""
    loaded, registry = _runnable(routine, tools, trace_dir)
    skipped: dict[str, Problem] = {}
    targets = _handoff_targets(loaded, registry, skipped)
    _warn_unreachable_handoffs(loaded, targets, skipped)
    saved = _waiting_trace(resume, {loaded.routine.name, *targets}) if resume else None
    with _model(model, base_url, api_key, model_cache, settings.timeout_s, adapter) as client:
        agent = Agent(loaded, registry, client, settings, approver=_approver(approve))
        show = functools.partial(_show_turn, flow=Flow.of(loaded.routine))
        with agent.conversation(routines=targets, on_turn=show, trace=saved) as conversation:
            try:
                if saved is not None:  # where it stood: the question it waits on
                    out.print(Text.assemble((f"{saved.routine or 'agent'}> ", "bold yellow"),
                                            shown(saved.answer)), soft_wrap=True)
                text = message if message is not None else _read_line(
                    fresh=saved is not None and saved.waiting is not None
                    and saved.waiting.kind == "confirmation")
                while text is not None:
                    reply = conversation.send(text)
                    style = {"waiting": "yellow", "answered": "green"}.get(reply.status,
                                                                            "red")
                    out.print(Text.assemble((f"{reply.routine or 'agent'}> ",
                                             f"bold {style}"), shown(reply.text)),
                              soft_wrap=True)
                    if reply.status != "waiting":
                        break
                    text = _read_line(fresh=reply.waiting_for == "confirmation")
            finally:  # Ctrl-C ends the conversation: what was said so far is kept
                traces = list(conversation.traces)
                if trace_dir is not None and traces:
                    dump_traces(traces, trace_dir / "traces.jsonl")
    if not traces:  # end of input before a word (Ctrl-D, an empty pipe): nothing happened
        err.print("nothing was said: " + ("the conversation still waits (--resume goes on)"
                                          if saved is not None else "no conversation began"),
                  style="dim", markup=False)
        return
    if traces[-1].outcome not in ("answered", "waiting"):
        raise typer.Exit(1)


def _waiting_trace(path: Path, routines: set[str]) -> RunTrace:
    """The last trace in ``path`` (a traces.jsonl, or a folder with one) of one of
    ``routines`` that waits for the user; one clear error when there is none."""
    file = path / "traces.jsonl" if path.is_dir() else path
    if not file.is_file():
        raise RoutineError(f"--resume {path}: no such traces file")
    last: dict[str, RunTrace] = {}  # each run as its last line left it: a run answered
    for trace in load_traces(file):  # after it waited must not be resumed (and run) again
        last.pop(trace.run_id, None)
        last[trace.run_id] = trace
    waiting = [t for t in last.values() if t.outcome == "waiting" and t.routine in routines]
    if not waiting:
        raise RoutineError(f"--resume {file}: no conversation of {', '.join(sorted(routines))} "
                           "waits for the user there (an answered or failed one does not go on)")
    return waiting[-1]


def _read_line(fresh: bool = False) -> str | None:
    """The user's next message from the terminal (None at end of input). ``fresh``: what
    was typed before the question was shown is dropped first (a multi-line paste must not
    answer a confirmation nobody has seen yet: its "ok, go ahead" cancelled an order).
    Bytes that are not UTF-8 are read as U+FFFD (one Latin-1 byte lost the whole trace),
    also where the locale has Python read stdin strictly (it ended the chat)."""
    if fresh and sys.stdin.isatty():
        with contextlib.suppress(ImportError, OSError, ValueError):
            import termios

            termios.tcflush(sys.stdin, termios.TCIFLUSH)
    with contextlib.suppress(AttributeError, ValueError, OSError):  # a strict UTF-8 stdin
        sys.stdin.reconfigure(errors="surrogateescape")  # type: ignore[union-attr]
    err.print("you> ", end="")
    line = sys.stdin.readline()
    if not line:
        return None
    return line.encode("utf-8", "surrogateescape").decode("utf-8", "replace").strip()


dataset_app = typer.Typer(no_args_is_help=True, help="Gold datasets: build, check, count.")
app.add_typer(dataset_app, name="dataset")


@dataset_app.command("build")
def dataset_build(folder: Annotated[Path, typer.Argument(help="eval/datasets/<domain>")]) -> None:
    """Generate the gold queries and trajectories of a domain into <folder>/<split>.jsonl."""
    from ..eval.dataset import build_dataset, hygiene, load_domain, write_dataset

    examples = build_dataset(load_domain(folder))
    for split, path in write_dataset(examples, folder).items():
        err.print(f"{split}: {sum(e.split == split for e in examples)} examples -> {path}")
    problems = hygiene(folder, examples)
    for problem in problems:  # written all the same, to look at
        out.print(shown(problem), markup=False, highlight=False)
    if problems:
        err.print(f"{len(problems)} problem(s): fix the templates and build again")
        raise typer.Exit(1)


@dataset_app.command("check")
def dataset_check(folder: Annotated[Path, typer.Argument(help="eval/datasets/<domain>")]) -> None:
    """Replay every gold trajectory on a fresh database and compare results and end state."""
    from ..eval.dataset import hygiene, load_dataset, load_domain, replay

    domain = load_domain(folder)
    examples = load_dataset(folder)
    bad = 0
    for problem in hygiene(folder, examples):
        out.print(shown(problem), markup=False, highlight=False)
        bad += 1
    for example_id, problems in replay(examples, domain).items():
        for problem in problems:  # (a gold file's ids and values: from elsewhere)
            out.print(shown(f"{example_id}: {problem}"), markup=False, highlight=False)
            bad += 1
    err.print(f"{len(examples)} gold trajectories replayed: "
              f"{'ok' if not bad else f'{bad} problems'}")
    if bad or not examples:
        raise typer.Exit(1)


@dataset_app.command("stats")
def dataset_stats_cmd(
    folders: Annotated[list[Path], typer.Argument(help="eval/datasets/<domain> ...")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Count tools, routines, branches, queries and steps per split."""
    from ..eval.dataset import SPLITS, dataset_stats, load_dataset, load_domain, stats_table

    for folder in folders:
        if not any((Path(folder) / f"{split}.jsonl").is_file() for split in SPLITS):
            raise RoutineError(f"{folder} has no split files (train.jsonl, dev.jsonl, "
                               "test.jsonl): run `routine dataset build` first")
        stats = dataset_stats(load_domain(folder), load_dataset(folder))
        if as_json:
            out.print_json(json.dumps(stats))
        else:
            out.print(stats_table(stats), markup=False, highlight=False, soft_wrap=True)
            out.print()


@app.command()
def distill(
    dataset: Annotated[Path, typer.Argument(help="eval/datasets/<domain>")],
    out: Annotated[Path, typer.Option(help="The SFT data, one JSON object per line.")],
    split: Annotated[str, typer.Option(help="The split whose templates are used.")] = "train",
    variants: Annotated[str, typer.Option(
        help="compact (the routine and step tracking in the compact prompt style live runs "
             "use by default), routine (the same in the full style: the paper's nl+track), "
             "distilled (no routine); comma-separated.")] = "compact,distilled",
    traces: Annotated[list[Path] | None, typer.Option(
        "--traces", help="traces.jsonl of runs on this domain's queries (e.g. a teacher "
                         "endpoint's); judged against the gold data, only right ones kept.")
    ] = None,
    gold: Annotated[bool, typer.Option(help="Include the split's gold trajectories.")] = True,
    merge: Annotated[bool, typer.Option(
        help="A trajectory whose requests extend each other (the distilled variant) is one "
             "row with every reply trained (--no-merge: one row per step).")] = True,
    count_tokens: Annotated[bool, typer.Option(
        help="Count tokens with the embedded model's template and vocabulary.")] = True,
    model: Annotated[str, typer.Option(help="The embedded model whose tokens are counted.")
                     ] = LIGHT_MODEL,
    offer_tools: Annotated[Literal["all", "routine"], typer.Option(
        help="The tools each prompt offers: all of the domain's (as routine eval offers "
             "them) or only the routine's (as routine run offers them by default: train on "
             "what the adapter will be served).")] = "all",
) -> None:
    """Build SFT data (trl conversational, prompt/completion + tools) from gold trajectories
    and run traces, through the executor: each prompt is exactly what a run sends."""
    import asyncio

    from ..finetune.distill import distill as build
    from ..finetune.distill import sft_stats, write_sft
    from ..run.trace import load_traces

    chosen = tuple(v.strip() for v in variants.split(",") if v.strip())
    unknown = sorted(set(chosen) - {"routine", "compact", "distilled"})
    if unknown:
        raise click.BadParameter(f"unknown variant(s) {unknown}; choose from compact, "
                                 "routine, distilled",
                                 param_hint="--variants")
    if not chosen:
        raise click.BadParameter("no variant; choose from compact, routine, distilled",
                                 param_hint="--variants")
    if out.is_dir():  # before the data is built (minutes on a large split), not after
        raise click.BadParameter(f"{out} is a folder; expected the file to write the SFT data "
                                 "to (e.g. sft.jsonl)", param_hint="--out")
    if split != "train":  # allowed (a study of memorising), never silently
        err.print(Text(f"warning: training data from the {split} split: a model tuned on it "
                       f"no longer has held-out {split} figures (routine eval on that split "
                       "measures memory, not the process)", style="yellow"), soft_wrap=True)
    loaded = [t for path in traces or [] for t in load_traces(path)] if traces else None
    rows, counts = asyncio.run(build(dataset, split=split, variants=chosen,  # type: ignore[arg-type]
                                     traces=loaded, gold=gold, merge=merge,
                                     offer_tools=offer_tools))
    if not rows:  # (an empty split, traces with no answered run): keep what --out holds
        err.print(f"error: no SFT examples from {dataset} (split {split}"
                  + (", no gold" if not gold else "") + (f", {len(loaded)} traces" if loaded
                                                         is not None else "")
                  + f"); {out} is left as it was")
        raise typer.Exit(1)
    write_sft(rows, out)
    tokenizer = None
    if count_tokens:
        try:
            from ..models.embedded import ChatTokenizer

            tokenizer = ChatTokenizer(model)
        except ImportError:
            err.print("[dim]no token counts: the embedded model needs the 'local' extra[/dim]")
    out_json = {"examples": len(rows), "counts": counts,
                "by_variant": sft_stats(rows, tokenizer)}
    Console(width=200).print_json(json.dumps(out_json))
    err.print(f"{len(rows)} SFT examples -> {out}")


def _finetune_config() -> type:
    from ..finetune.train import FinetuneConfig

    return FinetuneConfig


@app.command()
@options_from(_finetune_config(), into="config", recipe="recipe")
def finetune(
    config: Any,
    recipe: Annotated[Path | None, typer.Option(
        help="A YAML recipe of these settings (finetune/recipes/); flags override it.")
    ] = None,
    data: Annotated[Path | None, typer.Option(help="SFT data from `routine distill`.")] = None,
    base: Annotated[str | None, typer.Option(
        help="A Hugging Face model folder, or an embedded model's name.")] = None,
    out: Annotated[Path | None, typer.Option(
        help="Output folder (a rerun resumes from its last checkpoint).")] = None,
) -> None:
    """Train a LoRA adapter on SFT data with trl + peft (loss on the completions only);
    resumable; writes the adapter, checkpoints and log.json to --out."""
    from ..finetune.train import finetune as train

    result = train(config)
    Console(width=200).print_json(result.model_dump_json(exclude={"losses", "grad_norms"}))
    err.print(f"loss {result.losses[0]:.3f} -> {result.losses[-1]:.3f} over {result.steps} "
              f"steps; adapter: {result.adapter}")


@app.command("compare-schedules")
@options_from(_finetune_config(), into="config", recipe="recipe", exclude=("schedule", "seed"))
def compare_schedules(
    config: Any,
    recipe: Annotated[Path | None, typer.Option(
        help="A YAML recipe of the shared settings; flags override it.")] = None,
    data: Annotated[Path | None, typer.Option(help="SFT data from `routine distill`.")] = None,
    base: Annotated[str | None, typer.Option(
        help="A Hugging Face model folder, or an embedded model's name.")] = None,
    out: Annotated[Path | None, typer.Option(
        help="Output folder: one run folder per schedule and seed, comparison.md.")] = None,
    schedules: Annotated[str, typer.Option(
        help="Comma-separated schedules (uba:<φ> sets UBA's φ; refined uses the linear run "
             "of the same seed as its pilot).")] = "linear,cosine,rex,uba,refined",
    seeds: Annotated[str, typer.Option(help="Comma-separated seeds.")] = "0,1,2",
) -> None:
    """Compare learning-rate schedules at one step budget over seeds (held-out loss, mean and
    spread); resumable: finished runs are not run again."""
    from ..finetune.compare import compare_schedules as compare
    from ..finetune.compare import comparison_markdown

    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError:
        raise click.BadParameter(f"{seeds!r}: seeds are comma-separated integers",
                                 param_hint="--seeds") from None
    result = compare(config, [s.strip() for s in schedules.split(",") if s.strip()],
                     seed_list, config.out)
    Console(width=200).print(comparison_markdown(result), markup=False, highlight=False,
                             soft_wrap=True)


@app.command("export-adapter")
def export_adapter(
    adapter: Annotated[Path, typer.Argument(help="A peft adapter folder (routine finetune's "
                                                 "OUT/adapter).")],
    out: Annotated[Path, typer.Option(help="The GGUF adapter file to write.")],
    base: Annotated[str, typer.Option(help="The GGUF base model: an embedded model's name "
                                           "or a .gguf path.")] = DEFAULT_MODEL,
) -> None:
    """Write a LoRA adapter as GGUF for the embedded engine (then run --adapter OUT)."""
    from ..finetune.export import lora_to_gguf

    path = lora_to_gguf(adapter, out, base)
    err.print(f"{path}: {path.stat().st_size / 1e6:.1f} MB; use it with --adapter {path}")


@app.command()
def serve(
    model: Annotated[str, typer.Option(
        help="An embedded model's name (CPU), or with --vllm the base model vLLM loads.")
    ] = DEFAULT_MODEL,
    adapter: Annotated[Path | None, typer.Option(
        help="The adapter: a GGUF file for the embedded model, a peft folder for vLLM.")
    ] = None,
    vllm: Annotated[bool, typer.Option("--vllm", help="Serve with vLLM (GPU).")] = False,
    name: Annotated[str, typer.Option(help="The model name the adapter is served as (vLLM).")
                    ] = "routine",
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.", min=1, max=65535)] = 8000,
    print_command: Annotated[bool, typer.Option(
        help="Print the server's command line instead of running it.")] = False,
    model_cache: Annotated[Path | None, typer.Option(help="Embedded model cache.")] = None,
) -> None:
    """Serve a model (and a fine-tuned adapter) over an OpenAI-compatible API until Ctrl-C:
    the embedded llama.cpp server on a CPU, vLLM on a GPU."""
    import shlex
    import subprocess

    from ..finetune.serve import vllm_command, vllm_executable

    if vllm:
        command = vllm_command(model, adapter, name=name, port=port)
        if print_command:
            out.print(shlex.join(command), markup=False, highlight=False, soft_wrap=True)
            return
        command[0] = vllm_executable()
        raise typer.Exit(subprocess.call(command))
    if print_command:
        command = embedded_server_command(model, model_cache, adapter=adapter, port=port)
        out.print(shlex.join(command), markup=False, highlight=False, soft_wrap=True)
        return
    with embedded_server(model, model_cache, adapter=adapter, port=port) as server:
        with_adapter = f" with adapter {adapter}" if adapter else ""
        err.print(f"serving {server.model}{with_adapter} at {server.base_url} (Ctrl-C stops)")
        server.process.wait()


@app.command("draft")
def draft(
    source: draft_cli.SourceArgument,
    toolset: draft_cli.ToolsetOption = None,
    out_path: draft_cli.OutOption = None,
    name: draft_cli.NameOption = None,
    rounds: draft_cli.RoundsOption = 3,
    guided: draft_cli.GuidedOption = True,
    diff: draft_cli.DiffOption = None,
    save_invalid: draft_cli.SaveInvalidOption = False,
    record: draft_cli.RecordOption = None,
    force: draft_cli.ForceOption = False,
    max_tokens: Annotated[int, typer.Option(help="Tokens per reply.")] = 2048,
    temperature: Annotated[float, typer.Option(help="Sampling temperature.")] = 0.0,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
    timeout: Annotated[float, typer.Option(help="Seconds per model request.")] = 900.0,
    model: ModelOption = None,
    base_url: BaseUrlOption = None,
    api_key: ApiKeyOption = None,
    model_cache: ModelCacheOption = None,
) -> None:
    """Draft a routine from an expert's plain-language draft: the model writes it, validate
    checks it, problems go back for repair; a routine that still fails is reported with its
    problems and not saved."""
    job = draft_cli.DraftJob(source, list(toolset or []), out_path, name, rounds, guided, diff,
                             save_invalid, record, {"max_tokens": max_tokens,
                                                    "temperature": temperature, "seed": seed},
                             force)
    files = job.pending()
    failed = 0
    if files:
        with _model(model, base_url, api_key, model_cache, timeout) as client:
            failed = job.run(files, client)
        if failed:
            err.print(f"{failed} of {len(files)} draft(s) still have problems")
    if failed or job.recorded_invalid:
        raise typer.Exit(1)


@app.command("compare-results")
def compare_results(
    a: Annotated[Path, typer.Argument(help="The first results folder (routine eval --out).")],
    b: Annotated[Path, typer.Argument(help="The second results folder.")],
    labels: Annotated[str, typer.Option(help="Names of A and B in the table.")] = "A,B",
    cross: Annotated[list[str] | None, typer.Option(
        "--cross", help="B_CONDITION=A_CONDITION: also compare across conditions (e.g. "
                        "none=nl: B without the routine against A with it).")] = None,
) -> None:
    """Two evaluations side by side, paired on the samples both have: step accuracy and task
    success per condition, B's gain over A with its 95% interval and McNemar p."""
    from ..eval.compare import compare_results as compare
    from ..eval.compare import comparison_table

    pairs = []
    for spec in cross or []:
        b_condition, sep, a_condition = spec.partition("=")
        if not sep or not b_condition or not a_condition:
            raise click.BadParameter(f"{spec!r}: write B_CONDITION=A_CONDITION",
                                     param_hint="--cross")
        pairs.append((b_condition.strip(), a_condition.strip()))
    names = [n.strip() for n in labels.split(",")]
    if len(names) != 2:
        raise click.BadParameter("two comma-separated names", param_hint="--labels")
    rows = compare(a, b, pairs)
    out.print(comparison_table(rows, (names[0], names[1])), markup=False, highlight=False,
              soft_wrap=True)


@app.command("eval")
@options_from(EvalConfig, into="config", exclude=("model",),
              rename={"step_limit": "steps", "task_limit": "tasks"})
def evaluate(
    dataset: Annotated[Path, typer.Argument(help="eval/datasets/<domain>")],
    out: Annotated[Path, typer.Option(help="Results folder (a rerun resumes it).")],
    config: EvalConfig,
    model: Annotated[str | None, typer.Option(
        help="Embedded model name, a .gguf path, or the endpoint's model name.")] = None,
    base_url: Annotated[str | None, typer.Option(help="OpenAI-compatible endpoint.")] = None,
    api_key: Annotated[str | None, typer.Option(help="API key for the endpoint.")] = None,
    model_cache: Annotated[Path | None, typer.Option(help="Embedded model cache.")] = None,
    adapter: Annotated[Path | None, typer.Option(
        help="A LoRA adapter (GGUF) for the embedded model.")] = None,
) -> None:
    """Measure tool-call accuracy: step accuracy (the paper's) and task success (tau-bench's),
    side by side under each condition; writes JSONL, summary.json, report.md, PNGs, HTML."""
    import asyncio
    from collections.abc import Callable

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from ..eval.jobs import EvalProgress, ProgressLines
    from ..eval.report import conversation_table, markdown_table
    from ..eval.runner import run_evaluation

    @contextlib.contextmanager
    def progress_bar() -> Iterator[Callable[[EvalProgress], None]]:
        """A rich bar on a terminal; plain lines elsewhere (a bar shows nothing in a pipe)."""
        if not err.is_terminal:
            yield ProgressLines(lambda line: err.print(line, markup=False, highlight=False,
                                                       soft_wrap=True))
            return
        with Progress("[progress.description]{task.description}", BarColumn(),
                      MofNCompleteColumn(), TimeRemainingColumn(), console=err) as view:
            bar = view.add_task("evaluating", total=None)
            yield lambda p: view.update(bar, completed=p.done, total=p.total, description=(
                f"preparing {p.preparing}" if p.preparing else
                f"evaluating {p.condition} {p.protocol}" if p.condition else "evaluating"))

    models = contextlib.nullcontext(OpenAIModel(model or "none", "http://unused.invalid/v1")) \
        if config.report_only else _model(model, base_url, api_key, model_cache, 600.0,
                                           adapter)
    with models as client:
        named = f"{client.name} + adapter {adapter}" if adapter else client.name
        config = config.model_copy(update={"model": named})
        try:
            with progress_bar() as show:
                summary = asyncio.run(run_evaluation(config, client, progress=show))
        except KeyboardInterrupt:  # Ctrl-C: said, with what is kept and how to go on
            err.print(f"interrupted: the samples recorded in {out} are kept; the same "
                      "command goes on from there", markup=False, highlight=False,
                      soft_wrap=True)
            raise typer.Exit(130) from None
    out.mkdir(parents=True, exist_ok=True)
    _write_command(out)
    console_out = Console(width=250)
    tables = [markdown_table(summary)] if set(config.protocols) - {"conversation"} else []
    tables += [t for t in [conversation_table(summary)] if t]  # (the conversation protocol)
    for text in tables:
        console_out.print(text, markup=False, highlight=False, soft_wrap=True)
    err.print(f"report: {out / 'report.html'}")


SECRET_OPTIONS = ("--api-key",)


def _write_command(folder: Path) -> None:
    """``folder/command.txt``: the command line that made the results there, quoted so a
    shell runs it again as it was (a path with spaces is one word), secrets redacted."""
    import shlex

    folder.joinpath("command.txt").write_text(
        shlex.join(["routine", *redacted(sys.argv[1:])]) + "\n", encoding="utf-8",
        errors="backslashreplace")  # (a byte that is not UTF-8 in an argument: written out)


def redacted(argv: list[str]) -> list[str]:
    """The command line with secrets (``--api-key VALUE``, ``--api-key=VALUE``) replaced by
    ``***``: command lines are saved next to results, and results are shared."""
    out_args: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            out_args.append("***")
            hide_next = False
        elif arg in SECRET_OPTIONS:
            out_args.append(arg)
            hide_next = True
        elif arg.split("=", 1)[0] in SECRET_OPTIONS and "=" in arg:
            out_args.append(arg.split("=", 1)[0] + "=***")
        else:
            out_args.append(arg)
    return out_args


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit status instead of exiting."""
    command = typer.main.get_command(app)
    with _exit_on_sigterm(), _routine_warnings(), _escaping_output():
        return _main(command, argv)


@contextlib.contextmanager
def _escaping_output() -> Iterator[None]:
    """Standard output whose encoding is not UTF-8 (a C locale, a Windows pipe) writes a
    character it lacks escaped (``\\u2013``), as Python's stderr does: a report's "–"
    must not end a finished evaluation with a UnicodeEncodeError."""
    stream = sys.stdout
    before = getattr(stream, "errors", None)
    utf8 = (getattr(stream, "encoding", None) or "").lower().replace("-", "") == "utf8"
    if utf8 or before not in ("strict", "surrogateescape") or \
            not hasattr(stream, "reconfigure"):
        yield
        return
    stream.reconfigure(errors="backslashreplace")
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):  # (closed meanwhile)
            stream.reconfigure(errors=before)


@contextlib.contextmanager
def _routine_warnings() -> Iterator[None]:
    """A routine's validate warnings (``Agent`` emits them) as one console line each."""
    import warnings

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: Any = None, line: str | None = None) -> None:
        if issubclass(category, RoutineWarning):
            err.print(Text(f"warning: {shown(str(message))}", style="yellow"))
        else:
            previous(message, category, filename, lineno, file, line)

    with warnings.catch_warnings():
        warnings.simplefilter("default", RoutineWarning)  # shown, even under -W error
        previous = warnings.showwarning
        warnings.showwarning = show
        yield


@contextlib.contextmanager
def _exit_on_sigterm() -> Iterator[None]:
    """SIGTERM and SIGHUP (a closed terminal, a dropped ssh session) unwind like Ctrl-C, so
    an embedded model server started by a command stops too and `routine chat` saves its
    trace (the default handlers kill the process before any ``finally`` runs)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    hangup = getattr(signal, "SIGHUP", None)  # (not on Windows)
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, hangup) if sig}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _click_errors() -> tuple[tuple[type[BaseException], ...], ...]:
    """(exits, usage errors, aborts) of click and of the click that typer vendors."""
    exits: list[type[BaseException]] = [click.exceptions.Exit]
    errors: list[type[BaseException]] = [click.ClickException]
    aborts: list[type[BaseException]] = [click.exceptions.Abort]
    for name in ("typer.exceptions", "typer._click.exceptions"):
        module = sys.modules.get(name)
        for kinds, attribute in ((exits, "Exit"), (errors, "ClickException"),
                                 (aborts, "Abort")):
            found = getattr(module, attribute, None)
            if isinstance(found, type) and found not in kinds:
                kinds.append(found)
    return tuple(exits), tuple(errors), tuple(aborts)


def _error(message: str) -> None:
    """One line on stderr: ``error: message`` (the message's brackets printed as they are,
    its control characters written out: it may quote a gold file's id or an endpoint)."""
    err.print(Text.assemble(("error:", "red"), " ", shown(message)), highlight=False,
              soft_wrap=True)


def _usage_error(exc: BaseException) -> None:
    """A click error as ``error: ...``, with the command's usage line when it is a usage
    error (a command given without arguments has printed its help: nothing to add)."""
    if type(exc).__name__ == "NoArgsIsHelpError":
        exc.show()  # type: ignore[attr-defined]
        return
    _error(exc.format_message())  # type: ignore[attr-defined]
    ctx = getattr(exc, "ctx", None)
    if ctx is not None:
        usage = ctx.get_usage().removeprefix("Usage: ")
        err.print(f"usage: {usage} (see {ctx.command_path} --help)", markup=False,
                  highlight=False, soft_wrap=True)


def _main(command: click.Command, argv: list[str] | None) -> int:
    exits, errors, aborts = _click_errors()
    project = os.environ.get("ROUTINE_PROJECT")
    try:
        result = command.main(args=argv if argv is not None else sys.argv[1:],
                              prog_name="routine", standalone_mode=False)
    except exits as exc:
        return int(exc.exit_code)  # type: ignore[attr-defined]
    except errors as exc:
        _usage_error(exc)
        return int(exc.exit_code)  # type: ignore[attr-defined]
    except aborts:
        return 130
    except SpecError as exc:  # each problem is a line that says error: with file:line:col
        for line in [str(p) for p in exc.problems] or [f"error: {exc}"]:
            err.print(shown(line), markup=False, highlight=False, soft_wrap=True)
        return 1
    except RoutineError as exc:
        _error(str(exc))
        return 1
    except OSError as exc:  # a file or folder a command was given, or writes to
        where = f"{exc.filename}: " if exc.filename else ""
        _error(f"{where}{exc.strerror or exc}")
        return 1
    except Exception as exc:
        if os.environ.get("ROUTINE_DEBUG"):
            raise
        _error(f"{type(exc).__name__}: {exc} (not expected: ROUTINE_DEBUG=1 shows where)")
        return 1
    finally:
        if project is None:
            os.environ.pop("ROUTINE_PROJECT", None)
        else:
            os.environ["ROUTINE_PROJECT"] = project
    return result if isinstance(result, int) else 0


from .trace_view import trace_app  # noqa: E402

app.add_typer(trace_app, name="trace")

if __name__ == "__main__":
    sys.exit(main())
