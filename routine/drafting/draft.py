"""Draft a routine from an expert's plain-language description, validate it, repair it.

:func:`adraft` asks the model for the routine (under guided decoding, the reply is held to
:func:`~routine.drafting.schema.draft_schema`), writes it as YAML, and checks it exactly as
``routine validate`` does (the format, then every check against the toolsets' tools). While
problems remain and rounds are left, the model gets the YAML with line numbers and every
problem, and writes the routine again. The result keeps every attempt: what the model
replied, the YAML, the problems, tokens and seconds. A routine that still has problems is
``ok=False`` with its problems: callers report it and do not save it as a routine.

    result = draft("To book time off: find the employee, ...", ["routine_tools.hr"], model,
                   name="request_leave", rounds=3)
    if result.ok:
        Path("request_leave.yaml").write_text(result.yaml)
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from ..errors import ModelRequestError, Problem, RoutineError, SpecError
from ..models.base import Model, TurnGuide
from ..models.messages import AssistantMessage, Message, SystemMessage, Usage, UserMessage
from ..models.parsing import CallParseError, arguments_text
from ..spec.format import ID_PATTERN, Routine
from ..spec.loader import load_routine_text, routines_by_name
from ..spec.project import Project
from ..spec.toolsets import LOAD_EXPECTED, load_into, registry_for
from ..spec.validate import check_routine
from ..tools.core import ToolRegistry
from .prompt import repair_prompt, request_prompt, system_prompt
from .reply import printable, routine_yaml
from .schema import draft_schema

__all__ = ["DraftAttempt", "DraftResult", "adraft", "draft", "check_draft", "toolset_registry",
           "DRAFT_LABEL", "INVALID_MARKER", "handoff_targets"]

DRAFT_LABEL = "draft"  # TurnGuide.label of a drafting request
INVALID_MARKER = "INVALID ROUTINE"  # the first line of a file saved with its problems


class DraftAttempt(BaseModel):
    """One round: the model's reply, the routine as YAML (None: no routine in the reply),
    and what validation found."""

    round: int = Field(description="0: the first draft; 1, 2, ...: repair rounds.")
    reply: str
    yaml: str | None
    problems: list[Problem]
    warnings: list[Problem] = Field(default_factory=list, description="What validate warns "
                                    "about (the routine runs, but may stop where it says).")
    decoding: str = Field(description="How the reply was constrained (free, llama, "
                          "json_schema...): an endpoint that refuses the schema answers free.")
    usage: Usage = Field(default_factory=Usage)
    seconds: float = 0.0


class DraftResult(BaseModel):
    """Every attempt at one routine; the last one counts."""

    name: str
    toolsets: list[str]
    model: str
    draft: str
    attempts: list[DraftAttempt]
    stopped: str = Field("", description="Why repair rounds stopped before --rounds ran out "
                         "with problems left, or why no round ran (the endpoint refused the "
                         "request) ('': they did not).")

    @property
    def ok(self) -> bool:
        """The last attempt validates."""
        last = self.attempts[-1] if self.attempts else None
        return last is not None and last.yaml is not None and not last.problems

    @property
    def yaml(self) -> str | None:
        """The last attempt's routine as YAML (check :attr:`ok` before saving it)."""
        return self.attempts[-1].yaml if self.attempts else None

    @property
    def problems(self) -> list[Problem]:
        return self.attempts[-1].problems if self.attempts else []

    @property
    def warnings(self) -> list[Problem]:
        return self.attempts[-1].warnings if self.attempts else []

    @property
    def repairs(self) -> int:
        """Repair rounds used (0: the first draft validated, or no repair was allowed)."""
        return max(len(self.attempts) - 1, 0)

    def to_record(self) -> dict[str, Any]:
        """One JSONL line: every attempt, plus ``ok`` and ``repairs``."""
        return {**self.model_dump(mode="json"), "ok": self.ok, "repairs": self.repairs}

    def invalid_problems(self) -> list[Problem]:
        """The last attempt's problems at their lines in :meth:`invalid_text` (its comment
        lines above the YAML push every line down)."""
        shift = 1 + len(self.problems)
        return [dataclasses.replace(p, line=p.line + shift) for p in self.problems]

    def invalid_text(self) -> str:
        """The last routine marked as invalid, its problems listed above it in comments (at
        their lines in this text): what ``--save-invalid`` writes (it fails ``routine
        validate`` on purpose)."""
        lines = [f"# {INVALID_MARKER}: routine draft could not make it pass validation "
                 f"({len(self.problems)} problem(s) after {self.repairs} repair round(s)):"]
        # one comment line each (a problem quoting a name the model wrote with a line break
        # or an escape sequence in it broke the file and moved every problem's line)
        lines += [f"#   {printable(str(p))}" for p in self.invalid_problems()]
        return "\n".join(lines) + "\n" + (self.yaml or "# (the model wrote no routine)\n")


def toolset_registry(toolsets: list[str], project: Project | None = None) -> ToolRegistry:
    """The tools of the project's toolsets named ``toolsets`` (a module or an MCP server
    entry of routine.toml); an unknown name is one error saying which names exist."""
    project = project if project is not None else Project.discover()
    if not toolsets:
        raise RoutineError(f"no toolset given: name one or more of the project's toolsets "
                           f"({project.describe()})")
    registry = ToolRegistry()
    for name in toolsets:
        if name not in project.toolsets:
            raise RoutineError(f"unknown toolset {name!r} (the project has "
                               f"{project.describe()})")
        failure = load_into(registry, lambda name=name: project.resolve(name))
        if failure:  # as validate reports it, one error (not the module's own exception)
            raise RoutineError(f"cannot load toolset {name!r}: {failure} (expected "
                               f"{LOAD_EXPECTED})")
    return registry


def check_draft(text: str, file: str = "<draft>", project: Project | None = None,
                registry: ToolRegistry | None = None, warnings: list[Problem] | None = None,
                known: Callable[[], dict[str, Routine]] | None = None) -> list[Problem]:
    """Every problem ``routine validate`` reports for the routine YAML ``text``.

    ``registry``: the tools of the routine's toolsets, already loaded (else they are loaded
    here: an MCP server launched again). ``warnings``: a list that receives validate's
    warnings. ``known``: gives the routines a hand-off may name, called only for a routine
    with a hand-off (default: :func:`handoff_targets`, read from the folders)."""
    try:
        loaded = load_routine_text(text, file)
    except SpecError as exc:
        return exc.problems
    problems: list[Problem] = []
    if registry is None:
        registry, problems = registry_for(loaded, project=project)
    routines = None
    if any(step.handoff for step, _ in loaded.routine.walk()):  # as validate: targets exist
        targets = known() if known is not None else handoff_targets(file, project)
        routines = targets | {loaded.routine.name: loaded.routine}
    return problems + check_routine(loaded, registry, partial=bool(problems),
                                    routines=routines, warnings=warnings)


def handoff_targets(file: str = "<draft>", project: Project | None = None
                    ) -> dict[str, Routine]:
    """The routines a drafted hand-off may name, as validate reads them: those of the
    project's routine folders and of the folder beside ``file``."""
    folders = [*(project or Project.discover()).routines,
               *([Path(file).parent] if file != "<draft>" else [])]
    return {name: other.routine for name, (_, other) in routines_by_name(folders).items()}


async def adraft(draft_text: str, toolsets: list[str], model: Model, *, name: str,
                 rounds: int = 3, guided: bool = True, project: Project | None = None,
                 file: str = "<draft>", header: str = "", temperature: float = 0.0,
                 max_tokens: int = 2048, seed: int = 0,
                 on_attempt: Callable[[DraftAttempt], None] | None = None,
                 registry: ToolRegistry | None = None) -> DraftResult:
    """Draft the routine ``name`` from ``draft_text`` with the tools of ``toolsets``; repair
    it up to ``rounds`` times.

    Args:
        draft_text: the expert's description of the process.
        toolsets: names of the project's toolsets (routine.toml ``[toolsets]``).
        model: any :class:`~routine.models.base.Model` (an endpoint, the embedded model,
            a test double).
        name: the routine's name.
        rounds: repair rounds after the first draft (0: none).
        guided: hold each reply to :func:`~routine.drafting.schema.draft_schema` where
            the endpoint can (``TurnGuide.constrain``).
        file: the name problems are reported under.
        header: comment lines the YAML starts with.
        on_attempt: called with each attempt as it completes (progress for a long run).
        registry: the tools of ``toolsets``, already loaded (else loaded here: a module
            imported, an MCP server listed).
    """
    if not re.fullmatch(ID_PATTERN, name or ""):
        raise RoutineError(f"{name!r} is not a routine name (lower-case words joined by _, "
                           "starting with a letter)")
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 0:
        raise RoutineError(f"rounds={rounds!r}: the number of repair rounds is a whole number "
                           "≥ 0")
    if not isinstance(draft_text, str) or not draft_text.strip():
        raise RoutineError("the draft is empty: describe the process in plain language")
    project = project if project is not None else Project.discover()
    registry = registry if registry is not None else toolset_registry(toolsets, project)
    # the routines a hand-off may name: read once, at the first hand-off drafted
    known = functools.cache(functools.partial(handoff_targets, file, project))
    guide = TurnGuide(label=DRAFT_LABEL, constrain=guided,
                      schema=draft_schema(registry, name))
    opening: list[Message] = [SystemMessage(content=system_prompt()),
                              UserMessage(content=request_prompt(name, draft_text, registry,
                                                                 toolsets))]
    messages = list(opening)
    attempts: list[DraftAttempt] = []
    stopped = ""
    settings: dict[str, Any] = {"temperature": temperature, "max_tokens": max_tokens,
                                "seed": seed}
    for round_ in range(rounds + 1):
        started = time.perf_counter()
        try:
            reply = await model.complete(messages, [], guide=guide, **settings)
        except ModelRequestError as exc:  # HTTP 4xx: this request itself (a repair prompt
            # past the model's context): this draft fails, said and recorded; a folder of
            # drafts goes on (the 1.5B's 14th HR draft ended the whole run)
            stopped = f"the endpoint refused round {round_}'s request: {exc}"
            break
        text = reply.content or _call_text(reply.tool_calls)
        warnings: list[Problem] = []
        try:
            yaml_text: str | None = routine_yaml(text, name, toolsets, header)
            problems = check_draft(yaml_text, file, project, registry, warnings, known)
        except CallParseError as exc:
            yaml_text, problems = None, [Problem(file, 1, 1, str(exc), "one JSON object with "
                                                 "name, description, inputs and steps")]
        attempts.append(DraftAttempt(round=round_, reply=text, yaml=yaml_text,
                                     problems=problems, warnings=warnings,
                                     decoding=reply.decoding,
                                     usage=reply.usage,
                                     seconds=round(time.perf_counter() - started, 3)))
        if on_attempt is not None:
            on_attempt(attempts[-1])
        if not problems or round_ == rounds:
            break
        if repeated(attempts, temperature):
            stopped = ("the model wrote the same reply as in the round before: at "
                       "temperature 0 every further round would too")
            break
        # the next round sees the first request, its own last reply and the problems only:
        # the prompt stays the same size however many rounds run
        cut = reply.finish_reason == "length" or reply.usage.completion_tokens >= max_tokens
        messages = [*opening, AssistantMessage(content=text),
                    UserMessage(content=repair_prompt(name, yaml_text, problems,
                                                      cut_off=max_tokens if cut else None))]
    return DraftResult(name=name, toolsets=list(toolsets), model=model.name,
                       draft=draft_text, attempts=attempts, stopped=stopped)


def repeated(attempts: list[DraftAttempt], temperature: float) -> bool:
    """The last reply is the one before it, word for word, at temperature 0: the next
    round's prompt would be this round's again (the first request, that reply, its
    problems), so its reply would be too."""
    return (temperature == 0 and len(attempts) >= 2
            and attempts[-1].reply == attempts[-2].reply)


def _call_text(calls: list[dict[str, Any]]) -> str:
    """A model that answered with a tool call: its arguments are the routine."""
    return arguments_text(calls[0]) if calls else ""


def draft(draft_text: str, toolsets: list[str], model: Model, **options: Any) -> DraftResult:
    """Blocking :func:`adraft`."""
    return asyncio.run(adraft(draft_text, toolsets, model, **options))

