"""``routine trace view``: the runs of a trace file as HTML pages you can read.

:mod:`routine.cli.commands` adds :data:`trace_app` to the ``routine`` app (this module
imports nothing from it: no import circle); the pages are made by
:mod:`routine.run.viewer`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import click
import typer
from rich.console import Console

from ..errors import SpecError
from ..run.trace import load_traces
from ..run.viewer import write_views
from ..spec.format import Routine
from ..spec.loader import load_routine
from ..spec.project import Project
from .terminal import shown

__all__ = ["trace_app", "view"]

trace_app = typer.Typer(no_args_is_help=True, help="Run traces: look at them.")
out = Console()
err = Console(stderr=True)


def _trace_file(source: Path) -> Path:
    """A trace file, or a ``--trace-dir`` folder (its ``traces.jsonl``)."""
    if source.is_dir():
        source = source / "traces.jsonl"
    if not source.is_file():
        raise click.BadParameter(f"{source}: no such trace file (expected a traces.jsonl, or "
                                 "the folder given to --trace-dir)", param_hint="TRACE")
    return source


def _routines(paths: list[Path], explicit: bool) -> dict[str, Routine]:
    """Routine definitions by name from files and folders. A file given by hand that does
    not load is reported; the project's folders are read quietly."""
    files = [p for given in paths for p in (sorted(given.rglob("*.y*ml")) if given.is_dir()
                                            else [given]) if p.suffix in (".yaml", ".yml")]
    found: dict[str, Routine] = {}
    for path in files:
        try:
            routine = load_routine(path).routine
        except (SpecError, OSError) as exc:
            if explicit:
                err.print(shown(f"{path}: not used (the routine does not load: "
                                f"{str(exc).splitlines()[0]})"), markup=False, highlight=False)
            continue
        found.setdefault(routine.name, routine)
    return found


@trace_app.command("view")
def view(
    trace: Annotated[Path, typer.Argument(
        help="A traces.jsonl (from --trace-dir), or the folder that holds it.")],
    out_dir: Annotated[Path | None, typer.Option(
        "--out", help="Where to write the pages (default: <trace file>-view beside it).")] = None,
    routines: Annotated[list[Path] | None, typer.Option(
        "--routines", help="Routine files or folders, to show each run's steps (repeatable; "
        "default: the project's routine folders).")] = None,
) -> None:
    """Write one self-contained HTML page per run, and an index of them."""
    source = _trace_file(trace)
    traces = list(load_traces(source, skip_bad=True))
    if not traces:
        raise click.BadParameter(f"{source}: no runs in this file", param_hint="TRACE")
    folder = out_dir or source.with_name(f"{source.stem}-view")
    known = _routines(routines, True) if routines else _routines(Project.discover().routines,
                                                                 False)
    written = write_views(traces, folder, known, source=str(source))
    page = written[1] if len(traces) == 1 else written[0]
    err.print(f"{len(traces)} run{'s' if len(traces) != 1 else ''} -> {folder}/ "
              f"(index.html, {written[1].name}{' ...' if len(traces) > 1 else ''})",
              markup=False, highlight=False)
    out.print(str(page), markup=False, highlight=False, soft_wrap=True)
