"""``routine draft``: an expert's draft becomes a routine that validates, or is reported.

:mod:`routine.cli.commands` defines the command with the options below and runs a
:class:`DraftJob` (this module imports nothing from it: no import circle); the drafting
itself is :mod:`routine.drafting`.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import click
import typer
from rich.console import Console
from rich.text import Text

from ..drafting import DraftAttempt, DraftResult, adraft, diff_routines
from ..drafting.draft import toolset_registry
from ..errors import RoutineError, SpecError
from ..models.base import Model
from ..run.trace import append_line
from ..spec.format import ID_PATTERN, Routine
from ..spec.loader import (
    files_named,
    load_routine,
    load_routine_text,
    routine_files,
    routine_names,
)
from ..spec.project import Project
from ..tools.core import ToolRegistry
from .terminal import shown

__all__ = ["DraftJob"]

out = Console()
err = Console(stderr=True)

_COLOURS = {"+": "green", "-": "red", "~": "yellow", "↕": "cyan"}


def _drafts(source: Path) -> list[Path]:
    if source.is_dir():  # Notes.MD too; a folder named notes.md is not a draft
        found = sorted(p for p in source.iterdir()
                       if p.suffix.lower() in (".md", ".txt") and p.is_file())
        if not found:
            raise click.BadParameter(f"{source}: no drafts (*.md, *.txt) in this folder",
                                     param_hint="SOURCE")
        return found
    if not source.is_file():
        raise click.BadParameter(f"{source}: no such file or folder", param_hint="SOURCE")
    return [source]


def routine_name(text: str) -> str:
    """A routine name from a file name: ``Refill-Process`` -> ``refill_process`` (the
    format's names are lower-case words joined by ``_``, starting with a letter)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    name = re.sub(r"[^a-z0-9]+", "_", ascii_text.lower()).strip("_")
    return name if name[:1].isalpha() else f"routine_{name}".rstrip("_")


def _draft_text(file: Path) -> str:
    """A draft's text; one that is not text, or is empty, is a usage error before a model
    is asked (an empty one was drafted, and saved, from nothing)."""
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise click.BadParameter(f"{file}: not UTF-8 text (a draft is plain language in a "
                                 ".md or .txt file)", param_hint="SOURCE") from None
    if not text.strip():
        raise click.BadParameter(f"{file}: the draft is empty", param_hint="SOURCE")
    return text


def _recorded(record: Path | None) -> dict[str, bool]:
    """The drafts already in the record file, by name: whether each validated (a torn last
    line is skipped; the last record of a name counts)."""
    if record is None or not record.exists():
        return {}
    names: dict[str, bool] = {}
    for line in record.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
            names[row["name"]] = bool(row.get("ok"))
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
    return names


def _append(record: Path, result: DraftResult) -> None:
    append_line(record, json.dumps(result.to_record(), ensure_ascii=False).encode("utf-8"))


def _show_diff(old: Routine, new: Routine, to_stderr: bool) -> None:
    console = err if to_stderr else out
    for line in diff_routines(old, new).lines():
        mark = line.strip()[:1]
        style = _COLOURS.get(mark, "") if line.startswith("  ") and not line.startswith("    ") \
            else "dim" if line.startswith("    ") else "bold"
        console.print(Text(line, style=style), soft_wrap=True)


def _existing(folder: Path, name: str) -> Path:
    """The routine of ``folder`` (subfolders included) whose ``name:`` is ``name``, else its
    ``NAME.yaml``; none is a usage error naming the folder."""
    found = files_named(name, routine_names(routine_files(folder)))
    if len(found) != 1:
        what = "no routine" if not found else "more than one routine"
        raise click.BadParameter(f"{folder} has {what} named {name!r} to compare with",
                                 param_hint="--diff")
    return found[0]


def _compare_only(source: Path, diff: Path) -> None:
    new = load_routine(source).routine
    if diff.is_dir():
        diff = _existing(diff, new.name)
    _show_diff(load_routine(diff).routine, new, to_stderr=False)


def _writable(path: Path, hint: str, folder: bool) -> None:
    """``path`` (a folder, or a file) can be written, checked on the part of it that exists
    now, without making anything (a command refused by a later check left folders behind)."""
    there = path
    while not there.exists() and there != there.parent:
        there = there.parent
    if not there.is_dir() and (folder or there != path):
        raise click.BadParameter(f"{path}: cannot write there ({there} is a file)",
                                 param_hint=hint)
    if not os.access(there, os.W_OK):
        raise click.BadParameter(f"{path}: not writable", param_hint=hint)


def _target(out_path: Path | None, folder_mode: bool, name: str) -> Path | None:
    if out_path is None:
        return None
    return out_path / f"{name}.yaml" if folder_mode else out_path


def _schema_line(target: Path | None) -> str:
    """The editor's schema comment, when the routine goes beside a ``routine.schema.json``
    (in its folder or the one above, as in ``routines/<domain>/``)."""
    if target is None:
        return ""
    for folder, prefix in ((target.parent, ""), (target.parent.parent, "../")):
        if (folder / "routine.schema.json").is_file():
            return f"yaml-language-server: $schema={prefix}routine.schema.json\n"
    return ""


def _progress(name: str, attempt: DraftAttempt) -> None:
    verdict = (f"{len(attempt.problems)} problem(s)" if attempt.problems else "valid")
    err.print(f"[dim]  {name}: round {attempt.round}: {verdict} ({attempt.seconds:.0f} s, "
              f"{attempt.usage.completion_tokens} tokens written)[/dim]", highlight=False)


def _report(result: DraftResult, target: Path | None, saved: bool) -> None:
    seconds = sum(a.seconds for a in result.attempts)
    tokens = (sum(a.usage.prompt_tokens for a in result.attempts),
              sum(a.usage.completion_tokens for a in result.attempts))
    facts = (f"{len(result.attempts)} attempt(s), {seconds:.1f} s, "
             f"{tokens[0]}+{tokens[1]} tokens"
             + (f", {result.attempts[-1].decoding} decoding" if result.attempts else ""))
    if result.ok:
        where = f" → {target}" if target else ""
        err.print(Text.assemble(("✓ ", "green"), (result.name, "bold"),
                                f": valid after {result.repairs} repair round(s) ({facts})"
                                f"{where}"), soft_wrap=True)
        for warning in result.warnings:  # as validate shows them: it runs, but may stop
            err.print(f"  {shown(str(warning))}", markup=False, highlight=False,
                      soft_wrap=True)
        return
    err.print(Text.assemble(("✗ ", "red"), (result.name, "bold"),
                            f": {len(result.problems)} problem(s) after {result.repairs} repair "
                            f"round(s) ({facts}); " + (f"saved MARKED INVALID to {target}"
                                                       if saved and target else
                                                       "printed MARKED INVALID" if saved
                                                       else "not saved")), soft_wrap=True)
    if result.stopped:
        err.print(f"  ({'repairs ' if result.attempts else ''}stopped: {result.stopped})",
                  markup=False, highlight=False,
                  soft_wrap=True)
    # saved (or printed) marked invalid: at their lines in that text, below its header
    # (a problem quotes what the model wrote: its escape sequences are written out)
    for problem in result.invalid_problems() if saved else result.problems:
        err.print(f"  {shown(str(problem))}", markup=False, highlight=False, soft_wrap=True)


# the options of `routine draft` (the command itself is in commands.py)
SourceArgument = Annotated[Path, typer.Argument(
    help="An expert's draft of a process (a text or Markdown file), or a folder of them "
         "(*.md, *.txt); with --diff, a routine YAML to compare without drafting.")]
ToolsetOption = Annotated[list[str] | None, typer.Option(
    "--toolset", "-t", help="A toolset of the project (named in routine.toml: a module or an "
                            "MCP server) the routine may use (repeatable).")]
OutOption = Annotated[Path | None, typer.Option(
    "--out", "-o", help="The routine file to write (SOURCE a folder: a folder, NAME.yaml for "
                        "each draft). Default: print the routine.")]
ForceOption = Annotated[bool, typer.Option(
    "--force", help="Overwrite routine files that exist (else refused before drafting).")]
NameOption = Annotated[str | None, typer.Option(
    help="The routine's name (default: the draft's file name).")]
RoundsOption = Annotated[int, typer.Option(
    min=0, help="Repair rounds: validation problems go back to the model this many times at "
                "most.")]
GuidedOption = Annotated[bool, typer.Option(
    "--guided/--free", help="Hold the model's reply to the routine's JSON schema where the "
                            "endpoint supports it (--free: no constraint).")]
DiffOption = Annotated[Path | None, typer.Option(
    help="An existing routine to compare the drafted one with, step by step (SOURCE a "
         "folder: a folder with NAME.yaml).")]
SaveInvalidOption = Annotated[bool, typer.Option(
    help="Also write a routine that still has problems, marked INVALID with them in comments "
         "(it fails routine validate).")]
RecordOption = Annotated[Path | None, typer.Option(
    help="Append each draft's attempts (replies, YAML, problems, tokens, seconds) to this "
         "JSONL file; drafts already in it are skipped (a rerun resumes).")]


@dataclass
class DraftJob:
    """What one ``routine draft`` command drafts, and how."""

    source: Path
    toolsets: list[str]
    out_path: Path | None = None
    name: str | None = None
    rounds: int = 3
    guided: bool = True
    diff: Path | None = None
    save_invalid: bool = False
    record: Path | None = None
    sampling: dict[str, Any] = field(default_factory=dict)
    force: bool = False
    recorded_invalid: list[str] = field(default_factory=list)  # set by pending()
    registry: ToolRegistry | None = None  # the toolsets' tools, loaded by pending()

    def __post_init__(self) -> None:
        if self.out_path == Path("-"):  # -o -: print the routine, as without -o
            self.out_path = None
        self.toolsets = list(dict.fromkeys(self.toolsets))  # -t a -t a: one toolset a

    def pending(self) -> list[Path]:
        """The drafts to draft (none: a comparison was asked for and shown, or every draft is
        in the record already); usage errors raise before a model starts."""
        if self.source.suffix.lower() in (".yaml", ".yml"):
            if self.diff is None:
                raise click.BadParameter(f"{self.source} is a routine: give --diff "
                                         "EXISTING.yaml to compare it, or a draft (.md) to "
                                         "draft", param_hint="SOURCE")
            _compare_only(self.source, self.diff)
            return []
        files = _drafts(self.source)
        if self.source.is_dir() and self.name:
            raise click.BadParameter("one name for a folder of drafts", param_hint="--name")
        if not self.toolsets:
            raise click.BadParameter("name the toolsets the routine may use (from routine.toml "
                                     "toolsets), e.g. --toolset routine_tools.hr",
                                     param_hint="--toolset")
        out = self.out_path
        if self.source.is_dir() and out is not None and not out.is_dir() \
                and out.suffix.lower() in (".yaml", ".yml"):  # (it became a folder of that name)
            raise click.BadParameter(f"{out} is named like one routine file, and a folder of "
                                     "drafts writes NAME.yaml for each draft: --out a folder",
                                     param_hint="--out")
        if self.name is not None and not re.fullmatch(ID_PATTERN, self.name):
            raise click.BadParameter(f"{self.name!r} is not a routine name (lower-case words "
                                     f"joined by _, e.g. {routine_name(self.name)!r})",
                                     param_hint="--name")
        for file in files:
            _draft_text(file)
        self._toolsets()
        if (folder := self._out_folder()) is not None:  # -o can take the routine: checked
            _writable(folder, "--out", folder=True)   # before a model drafts it, not after
        self._recordable()
        done = _recorded(self.record)
        todo = [f for f in files if self._name(f) not in done]
        if len(todo) < len(files):
            err.print(f"[dim]{len(files) - len(todo)} draft(s) already in {self.record}: "
                      "skipped[/dim]")
        # a rerun that skips drafts which did not validate still fails, and names them
        skipped = {self._name(f) for f in files} - {self._name(f) for f in todo}
        self.recorded_invalid = sorted(n for n in skipped if not done[n])
        if self.recorded_invalid:
            err.print(f"{len(self.recorded_invalid)} of them did not validate (in the "
                      f"record): {', '.join(self.recorded_invalid)}", markup=False)
        same: dict[str, list[Path]] = {}
        for file in todo:  # two drafts of one name would write one file, the second silently
            same.setdefault(self._name(file), []).append(file)
        clash = {n: fs for n, fs in same.items() if len(fs) > 1}
        if clash:
            raise click.BadParameter("drafts that would be one routine: " + "; ".join(
                f"{', '.join(f.name for f in fs)} -> {n}" for n, fs in clash.items())
                + " (rename one)", param_hint="SOURCE")
        self._comparable(todo)
        self._unique_names(todo)
        taken = [t for f in todo if (t := _target(self.out_path, self.folder_out,
                                                    self._name(f))) and t.exists()]
        if taken and not self.force:  # a routine written by hand, replaced without a word
            raise click.BadParameter(f"{', '.join(map(str, taken))} exist{'s' * (len(taken) == 1)}"
                                     ": --force overwrites, or write elsewhere",
                                     param_hint="--out")
        self._make_out()
        return todo

    @property
    def folder_out(self) -> bool:
        """--out is a folder (NAME.yaml go in it): for a folder of drafts, or one that exists
        or is not named like a routine file (``--out drafted/``)."""
        out = self.out_path
        return self.source.is_dir() or (out is not None and (
            out.is_dir() or out.suffix.lower() not in (".yaml", ".yml")))

    def _name(self, file: Path) -> str:
        return self.name or routine_name(file.stem)

    def _out_folder(self) -> Path | None:
        out = self.out_path
        return None if out is None else out if self.folder_out else out.parent

    def _make_out(self) -> None:
        """The folders -o and --record write in, made once every check has passed."""
        for folder, hint in ((self._out_folder(), "--out"),
                             (self.record and self.record.parent, "--record")):
            if folder is None:
                continue
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise click.BadParameter(f"{folder}: cannot write there ({exc.strerror})",
                                         param_hint=hint) from None

    def _toolsets(self) -> None:
        """Each toolset is the project's and loads (a module imported, a server listed):
        checked before a model starts, not after it has drafted."""
        try:  # (kept: drafting uses these tools, an MCP server is not listed again)
            self.registry = toolset_registry(list(self.toolsets))
        except RoutineError as exc:
            raise click.BadParameter(str(exc), param_hint="--toolset") from None

    def _recordable(self) -> None:
        """--record can be appended to (it was found out after the first draft)."""
        record = self.record
        if record is None:
            return
        if record.is_dir():
            raise click.BadParameter(f"{record} is a folder (a record is a .jsonl file)",
                                     param_hint="--record")
        _writable(record, "--record", folder=False)

    def _comparable(self, todo: list[Path]) -> None:
        """--diff names a routine that loads, or a folder with the routine of each draft
        (a wrong path was found out after the model had drafted)."""
        diff = self.diff
        if diff is None:
            return
        if diff.is_dir():
            names = routine_names(routine_files(diff))
            missing = [n for n in dict.fromkeys(self._name(f) for f in todo)
                       if not files_named(n, names)]
            if missing and not self.source.is_dir():  # one draft: its routine must be there
                _existing(diff, missing[0])
            return  # a folder of drafts: a new process has nothing to compare with
        if not diff.is_file():
            raise click.BadParameter(f"{diff}: no such routine file or folder",
                                     param_hint="--diff")
        try:
            load_routine(diff)
        except SpecError as exc:
            raise click.BadParameter(f"{diff} does not load: {exc.problems[0]}",
                                     param_hint="--diff") from None

    def _unique_names(self, todo: list[Path]) -> None:
        """A drafted routine written where ``routine validate`` reads it with others (beside
        other routines; in the project's routine folders, all of them) must not take a name
        another routine there has: validate would refuse both files. A folder of its own
        outside the project's routines may hold a new version of a routine."""
        if self.out_path is None:
            return
        project = [folder.resolve() for folder in Project.discover().routines]
        taken: dict[str, list[Path]] = {}
        for f in todo:
            target = _target(self.out_path, self.folder_out, self._name(f))
            assert target is not None
            inside = [folder for folder in project  # validate reads these together
                      if target.resolve().is_relative_to(folder)]
            for folder in [*inside, target.parent] if inside else [target.parent]:
                if not folder.is_dir():
                    continue
                for path, name in routine_names(routine_files(folder)).items():
                    if name == self._name(f) and path.resolve() != target.resolve():
                        taken.setdefault(name, []).append(path)
        if taken:
            raise click.BadParameter("; ".join(
                f"{name!r} is already the name of {', '.join(map(str, dict.fromkeys(paths)))}"
                for name, paths in taken.items()) + " (routine names are unique: --name "
                "another name, or --out a folder of its own)", param_hint="--out")

    def run(self, files: list[Path], client: Model) -> int:
        """Draft each file with ``client``; write, record, report, compare. Returns how many
        drafts still have problems."""
        return sum(not self._one(file, client)[0].ok for file in files)

    def _one(self, file: Path, client: Model) -> tuple[DraftResult, Path | None]:
        name = self._name(file)
        target = _target(self.out_path, self.folder_out, name)
        header = (_schema_line(target) + f"drafted by `routine draft` from {file.name} with "
                  f"{client.name}; review it before use (routine draft --diff)")
        result = asyncio.run(adraft(
            _draft_text(file), list(self.toolsets), client, name=name,
            rounds=self.rounds, guided=self.guided, file=str(target or f"{name}.yaml"),
            header=header, on_attempt=functools.partial(_progress, name),
            registry=self.registry, **self.sampling))
        saved = result.ok or self.save_invalid
        text = result.yaml if result.ok else result.invalid_text()
        if saved and target is not None and text is not None:
            target.write_text(text, encoding="utf-8")
        elif saved and text is not None:  # a folder's routines: one YAML stream, "---" apart
            start = "---\n" if self.source.is_dir() else ""
            out.print(start + text, markup=False, highlight=False, soft_wrap=True, end="")
        if self.record is not None:
            _append(self.record, result)
        _report(result, target, saved)
        if self.diff is not None and result.yaml is not None:
            try:
                drafted = load_routine_text(result.yaml, name).routine
                existing = _existing(self.diff, drafted.name) if self.diff.is_dir() \
                    else self.diff
            except SpecError:
                err.print(f"  (no diff: the drafted {name} does not load)")
            except click.BadParameter as exc:
                err.print(f"  (no diff: {exc.message})")
            else:
                _show_diff(load_routine(existing).routine, drafted,
                           to_stderr=saved and target is None)
        return result, target
