"""Render a routine, its tools and the run's state into the executor's messages.

Templates live in ``routine/prompts`` (package data) and render in a sandboxed
Jinja environment with ``StrictUndefined``: routines are user data.

Two messages come from here:

* the **system prompt** — rules, the whole routine (natural-language or JSON
  form, as in the paper; or none) and the known inputs. It stays the same for
  the whole run, so servers can reuse their prompt cache;
* the **state prompt**, sent fresh with every model request when step tracking
  is on — steps done, the CURRENT step with its argument values where known,
  and the variable memory.

Two styles: ``full`` (the default: rules, each step's tool and argument sources in
sentences, the current step restated every turn, a ``finish`` tool for the answer) and
``compact`` (one line of rules, each step as ``name: description → tool(arg=source)``, the
state as the call to make, the answer in plain text — as the executor has always accepted
it at the end — unless guided decoding needs ``finish`` among the tools): the same facts
in fewer tokens, for small context windows and token budgets.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Literal

from jinja2 import PackageLoader, StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ..models.messages import inert_markup
from ..spec.format import Routine, Step
from ..spec.references import parse_references, value_at
from ..tools.core import FINISH_TOOL, Tool
from .memory import VariableMemory
from .tracking import StepTracker

__all__ = ["Planner", "RoutineFormat", "PromptStyle", "finish_tool_spec"]

RoutineFormat = Literal["nl", "json", "none"]
PromptStyle = Literal["full", "compact"]

_ENV = ImmutableSandboxedEnvironment(
    loader=PackageLoader("routine.run", "templates"),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=False,
    autoescape=False,
    auto_reload=False,  # package data does not change while we run: no stat() per render
)
_CACHE_SIZE = 256  # rendered routine prompts kept (each holds its routines alive)
_rendered: OrderedDict[tuple[Any, ...], tuple[tuple[Routine, ...], str]] = OrderedDict()


def finish_tool_spec() -> dict[str, Any]:
    """The built-in ``finish`` tool through which the model answers the user."""
    return {
        "type": "function",
        "function": {
            "name": FINISH_TOOL,
            "description": "Give the final answer to the user and end the task.",
            "parameters": {
                "type": "object",
                "properties": {"answer": {"type": "string", "description": "The answer text."}},
                "required": ["answer"],
            },
        },
    }


def _source_text(routine: Routine, labels: dict[str, str], value: Any) -> str:
    """How an argument's source reads in the natural-language rendering."""
    refs = parse_references(value)
    if not refs:
        return f"{value!r} (fixed)" if isinstance(value, str) else f"{value} (fixed)"
    parts = []
    for ref in refs:
        if ref.kind == "inputs":
            spec = routine.inputs.get(ref.name)
            parts.append(f"the {ref.name} from the request"
                         + (f" ({spec.description})" if spec else ""))
        elif ref.kind == "steps":
            field = ".".join(ref.path)
            what = f"the {field} field" if field else "the result"
            parts.append(f"{what} of step {labels.get(ref.name, ref.name)}")
        elif ref.kind == "vars":
            parts.append(f"the {'.'.join((ref.name, *ref.path))} found earlier")
        elif ref.kind == "constants":
            parts.append(f"the routine's {'.'.join((ref.name, *ref.path))} "
                         f"({json.dumps(value_at(routine.constants.get(ref.name), ref.path), default=str)})")
        elif ref.kind == "loop":
            parts.append(f"the current {ref.name}'s {'.'.join(ref.path) or 'value'}")
    parts = list(dict.fromkeys(parts))  # one source named once
    if not isinstance(value, str):  # a structure with references among its values
        return (f"{json.dumps(value, default=str, ensure_ascii=False)} with "
                + " and ".join(parts))
    return " and ".join(parts) if refs[0].whole else f"text {value!r} with " + " and ".join(parts)


def _short_source(labels: dict[str, str], value: Any) -> str:
    """How an argument's source reads in the compact rendering: ``employee_name`` (an
    input, listed once above the steps), ``id of step 1``, a literal as JSON."""
    refs = parse_references(value)
    if not refs:
        return json.dumps(value, default=str, ensure_ascii=False)
    if not refs[0].whole:  # text or a structure around references
        return json.dumps(value, default=str, ensure_ascii=False)
    ref = refs[0]
    field = ".".join(ref.path)
    if ref.kind == "steps":
        return f"{field or 'result'} of step {labels.get(ref.name, ref.name)}"
    if ref.kind == "loop":
        return ".".join((ref.name, *ref.path))
    if ref.kind == "constants":
        return f"constants.{'.'.join((ref.name, *ref.path))}"
    return ".".join((ref.name, *ref.path))  # inputs, vars


def _state_source(routine: Routine, labels: dict[str, str], value: Any) -> str:
    """An unknown argument in the compact state prompt: an input reads ``the request's
    NAME`` (a bare name invites copying it as the value), with its default where it has
    one (``the request's leave_type, else "annual"``)."""
    refs = parse_references(value)
    if len(refs) == 1 and refs[0].whole and refs[0].kind == "inputs":
        ref = refs[0]
        spec = routine.inputs.get(ref.name)
        default = "" if spec is None or spec.default is None or ref.path else \
            f", else {json.dumps(spec.default, default=str, ensure_ascii=False)}"
        return f"the request's {'.'.join((ref.name, *ref.path))}{default}"
    return _short_source(labels, value)


@dataclass
class Planner:
    """Prompt renderer.

    Attributes:
        routine_format: ``nl`` (natural language), ``json``, or ``none`` (tools only).
        step_tracking: add the per-turn state prompt naming the current step.
        style: ``full`` or ``compact`` (the same facts in fewer tokens; natural-language
            format only).
        finish_tool: offer the ``finish`` tool (the compact style answers in plain text
            without it; guided decoding names it in its reply schema, so keep it there).
    """

    routine_format: RoutineFormat = "nl"
    step_tracking: bool = True
    style: PromptStyle = "full"
    finish_tool: bool = True

    def _items(self, routine: Routine, steps: list[Step], labels: dict[str, str],
               options: dict[str, list[str]]) -> list[dict[str, Any]]:
        out = []
        for step in steps:
            children: list[dict[str, Any]] = []
            opts = []
            for n, option in enumerate(step.branch or []):
                goto = labels.get(options[step.id][n], "the end")
                opts.append({"condition": option.condition, "goto": goto})
                children += self._items(routine, option.steps, labels, options)
            for _, nested in step.children()[len(step.branch or []):]:
                children += self._items(routine, nested, labels, options)
            on_error = step.on_error
            out.append({
                "label": labels[step.id],
                "step": step,
                "args": [{"name": k, "source": _source_text(routine, labels, v),
                          "short": _short_source(labels, v)} for k, v in step.args.items()],
                "options": opts,
                "children": children,
                "on_error": labels.get(on_error if isinstance(on_error, str) else
                                       on_error[0].id, "") if on_error else "",
                "on_decline": labels.get(step.on_decline or "", ""),
                "each": _source_text(routine, labels, step.for_each) if step.for_each else "",
                "compute": {name: spec if isinstance(spec, str) else spec.expr
                            for name, spec in (step.compute or {}).items()},
            })
        return out

    def steps_json(self, routine: Routine) -> list[dict[str, Any]]:
        """The paper's JSON rendering: ``{step, name, description, tool, type}`` per step."""
        tracker = StepTracker(routine)
        labels = tracker.flow.labels
        out = []
        for step, label in routine.walk():
            kind = "branchnode" if "-" in label and step.kind == "node" else step.kind
            entry: dict[str, Any] = {"step": label, "name": step.name,
                                     "description": step.description,
                                     "tool": FINISH_TOOL if step.finish else step.tool,
                                     "type": kind}
            if step.ask:
                entry["ask"], entry["fills"] = step.ask, step.fills
            if step.for_each:
                entry["for_each"] = _source_text(routine, labels, step.for_each)
            if step.compute:
                entry["compute"] = {n: c if isinstance(c, str) else c.expr
                                    for n, c in step.compute.items()}
            if step.confirm:
                entry["confirm"] = "the user confirms before it runs"
            if step.on_error:
                entry["on_error"] = labels.get(step.on_error if isinstance(step.on_error, str)
                                               else step.on_error[0].id, "")
            if step.handoff:
                entry["handoff"] = step.handoff
            if step.args:
                entry["input"] = {k: _source_text(routine, labels, v) for k, v in step.args.items()}
            if step.output_description:
                entry["output"] = step.output_description
            if step.branch:
                entry["branches"] = [
                    {"condition": o.condition,
                     "goto": labels.get(tracker.flow.options[step.id][n], "end")}
                    for n, o in enumerate(step.branch)]
            out.append(entry)
        return out

    def system_prompt(self, routines: Routine | list[Routine] | None,
                      inputs: dict[str, Any] | None = None) -> str:
        """The run's stable system prompt, showing ``routines`` in that order (one, or the
        run's routine among others: the paper's distractor experiment, retrieved candidates).

        The part without the inputs is rendered once per routine (and format) and kept;
        routines are treated as immutable once shown."""
        if routines is None or self.routine_format == "none":
            shown: tuple[Routine, ...] = ()
        else:
            shown = (routines,) if isinstance(routines, Routine) else tuple(routines)
        key = (self.routine_format, self._compact, *map(id, shown))
        cached = _rendered.get(key)
        if cached is None or any(a is not b for a, b in zip(cached[0], shown, strict=True)):
            cached = _rendered[key] = (shown, self._routines_prompt(shown))
            if len(_rendered) > _CACHE_SIZE:
                _rendered.popitem(last=False)
        else:
            _rendered.move_to_end(key)
        head = cached[1]
        if not inputs:
            return head
        known = _ENV.get_template("inputs.j2").render(inputs=inputs).strip()
        return f"{head}\n{known}\n"

    def _routines_prompt(self, shown: tuple[Routine, ...]) -> str:
        """The system prompt without the run's inputs."""
        items = []
        for each in shown:
            tracker = StepTracker(each)
            item: dict[str, Any] = {"routine": each, "steps": [], "steps_json": ""}
            if self.routine_format == "json":
                item["steps_json"] = json.dumps(self.steps_json(each), indent=2,
                                                ensure_ascii=False)
            else:
                item["steps"] = self._items(each, each.steps, tracker.flow.labels,
                                            tracker.flow.options)
            item["inputs"] = [(name, spec.description) for name, spec in each.inputs.items()]
            items.append(item)
        context = {"routines": items, "format": self.routine_format}
        template = "system_compact.j2" if self._compact else "system.j2"
        return _ENV.get_template(template).render(**context).strip() + "\n"

    @property
    def _compact(self) -> bool:
        return self.style == "compact" and self.routine_format == "nl"

    @property
    def _offers_finish(self) -> bool:
        """The model answers through ``finish`` (else, compact only: in plain text)."""
        return self.finish_tool or not self._compact

    def state_prompt(self, tracker: StepTracker | None, memory: VariableMemory) -> str | None:
        """The per-turn state message, or None when there is nothing to say."""
        context: dict[str, Any] = {"step": None, "done": [], "label": "", "args": [],
                                   "options": [], "memory": [],
                                   "finish_tool": self._offers_finish}
        if self.step_tracking and tracker is not None and not tracker.finished:
            step = tracker.step
            assert step is not None
            flow = tracker.flow
            context.update(
                step=step,
                label=flow.labels[step.id],
                done=[f"{flow.labels[d]} ({flow.steps[d].tool or flow.steps[d].kind})"
                      for d in tracker.done if not flow.steps[d].branch],
                args=[{"name": a.name, "value": memory.key_of(a.value) or a.value,
                       "known": a.known,
                       "source": a.source,
                       "short": _state_source(tracker.routine, flow.labels,
                                              step.args.get(a.name))}
                      for a in tracker.arguments()],
                options=[{"condition": o.condition,
                          "tool": tracker.first_tool(flow.options[step.id][n]) or "finish",
                          "goto": flow.labels.get(flow.options[step.id][n], "end")}
                         for n, o in enumerate(step.branch or [])],
            )
        context["memory"] = [
            {"key": e.key, "tool": e.tool, "preview": inert_markup(e.preview())}  # (a tool's
            # result in a system message: no chat-template marker in it may open a turn)
            for e in memory.entries.values() if memory.is_long(e.text)
        ]
        if context["step"] is None and not context["memory"]:
            return None
        template = "state_compact.j2" if self._compact else "state.j2"
        text = _ENV.get_template(template).render(**context).strip()
        return text or None

    def tool_specs(self, tools: list[Tool]) -> list[dict[str, Any]]:
        """The ``tools`` of the request: the offered tools plus ``finish``."""
        return [t.openai_spec() for t in tools] + ([finish_tool_spec()]
                                                   if self._offers_finish else [])
