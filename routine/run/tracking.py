"""Step tracking: where a run stands in its routine.

The tracker follows the run through the routine's flow: which steps are done,
which branch option was taken, what each step produced. It tells the planner
the CURRENT step, with the argument values already known, so a small model
only has to follow the step it is told to be on.

Branches are chosen by their ``when`` expressions when those can be evaluated,
otherwise by the model: the option whose first step uses the tool it calls.
Steps that need no model are taken here too: ``compute`` (values into ``vars``),
``for_each`` (entering a loop, the next item, leaving it), and the visit limits of
bounded loops. Questions (``ask``), confirmations and hand-offs are the executor's:
the tracker stops at them and is told what happened (:meth:`fill`, :meth:`complete`,
:meth:`decline`, :meth:`record_error`).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from jinja2 import UndefinedError

from ..errors import RoutineError
from ..spec.expressions import compile_when, render_facts, render_template
from ..spec.flow import FINISHED, Flow
from ..spec.format import MAX_ITEMS, Routine, Step, a_type
from ..spec.references import MISSING, Reference, parse_references, value_at
from ..spec.validate import expression_references, json_types, template_references
from .coercion import coerce_inputs

__all__ = ["StepTracker", "KnownArgument", "LoopFrame"]

_MISSING = MISSING
_TYPES = {"string": str, "integer": int, "number": (int, float), "boolean": bool,
          "array": list, "object": dict}


def _quote(value: Any, limit: int = 300) -> str:
    """A value as JSON for feedback, cut to ``limit`` characters (a 5 MB value once made
    every later request 5 MB)."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text):,} characters)"


def _without_noise(value: float) -> float:
    """A computed float without binary noise: its 15 significant digits (what a double holds
    exactly) when they are within two units in the last place of it (1000.10 + 1000.20 =
    2000.3000000000002 -> 2000.3), else the value itself (12345678901234.57 keeps its cent;
    0.1 + 1/3 keeps its digits; so does anything from 1e15 up)."""
    if abs(value) >= 1e15:  # 15 digits no longer hold its integer part
        return value
    rounded = float(f"{value:.15g}")
    return rounded if abs(rounded - value) <= 2 * math.ulp(value) else value


def _same(given: Any, fixed: Any) -> bool:
    """Equal as the tool would see them: 2 == 2.0 == "2"; otherwise exactly."""
    if given == fixed:
        return True
    numbers = (int, float)
    if isinstance(fixed, numbers) and not isinstance(fixed, bool) and \
            isinstance(given, (*numbers, str)) and not isinstance(given, bool):
        try:  # (Decimal: an integer of any size, no rounding)
            return Decimal(str(given).strip()) == Decimal(str(fixed))
        except (ArithmeticError, ValueError):
            return False
    return False


@dataclass
class KnownArgument:
    """An argument of the current step: its value when known, else where it comes from."""

    name: str
    value: Any = None
    known: bool = False
    source: str = ""


@dataclass
class LoopFrame:
    """A for_each in progress: its items, where it is, what each item's steps gave."""

    loop: str
    name: str
    items: list[Any]
    index: int = 0
    results: list[dict[str, Any]] = field(default_factory=list)

    @property
    def item(self) -> Any:
        return self.items[self.index]


def params_refusing_null(routine: Routine, registry: Any) -> dict[str, set[str]]:
    """For each tool the routine's steps call, the parameters whose schema does not admit
    null (an ``Optional`` one does; one whose schema says nothing is taken as admitting
    anything)."""
    refusing: dict[str, set[str]] = {}
    for step, _ in routine.walk():
        tool = registry.get(step.tool) if step.tool else None
        if tool is None or step.tool in refusing:
            continue
        root = tool.parameters or {}
        refusing[step.tool] = {
            name for name, schema in (root.get("properties") or {}).items()
            if (types := json_types(schema, root)) and "null" not in types}
    return refusing


@dataclass
class StepTracker:
    routine: Routine
    inputs: dict[str, Any] = field(default_factory=dict)
    use_defaults: bool = True  # False when a request may still state the missing inputs
    flow: Flow = field(init=False)
    current: str = field(init=False)
    done: list[str] = field(default_factory=list)
    branches: dict[str, int] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    branch_errors: dict[str, str] = field(default_factory=dict)
    vars: dict[str, Any] = field(default_factory=dict)
    frames: list[LoopFrame] = field(default_factory=list)
    visits: dict[str, int] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)  # steps whose call failed over
    stopped: str | None = None  # why the routine cannot go on (a visit limit, a bad compute)
    declined: str | None = None  # the confirm step whose decline ended the routine
    answered_at: dict[str, int] = field(default_factory=dict)  # ask step -> len(said) then
    failed_into: dict[str, str] = field(default_factory=dict)  # on_error target -> failed step
    #: ask steps in a loop body whose next item began: what they filled was the last item's
    #: answer, forgotten; they ask anew and read only what is said from then on
    fresh: set[str] = field(default_factory=set)
    #: tool -> its parameters that do not take null (:func:`params_refusing_null`): a null
    #: from an earlier step passed to one stops the run, as ``validate`` warns it will
    null_refused: dict[str, set[str]] = field(default_factory=dict)
    #: inputs the current step's ``when``/``compute`` reads that the request may state: the
    #: run reads them from the user's words (:meth:`inputs_read`) before the step is taken
    awaiting: list[str] = field(default_factory=list)
    read_for: dict[str, int] = field(default_factory=dict)  # step -> visit its inputs were read

    def __post_init__(self) -> None:
        self.flow = Flow.of(self.routine)
        self.current = self.flow.entry
        self.visits[self.current] = 1
        self._settle()

    # ------------------------------------------------------------ queries
    @property
    def finished(self) -> bool:
        return self.current not in self.flow.steps

    @property
    def step(self) -> Step | None:
        return self.flow.steps.get(self.current)

    def label(self, step_id: str) -> str:
        return self.flow.labels[step_id]

    def expected_tools(self) -> list[str]:
        """Tools that would move the run on from here (``finish`` for a finish step)."""
        step = self.step
        if step is None:
            return []
        if step.finish:
            return ["finish"]
        if step.tool:
            return [step.tool]
        return [t for t in (self.first_tool(e) for e in self.flow.options[step.id]) if t]

    def first_tool(self, step_id: str) -> str | None:
        step = self.flow.steps.get(step_id)
        if step is None:
            return None
        return "finish" if step.finish else step.tool

    def arguments(self, step: Step | None = None) -> list[KnownArgument]:
        """The current step's arguments with values resolved where possible."""
        step = step or self.step
        if step is None:
            return []
        return [self._resolve(name, value) for name, value in step.args.items()]

    def _resolve(self, name: str, value: Any) -> KnownArgument:
        refs = parse_references(value)
        if not refs:
            return KnownArgument(name, value, True, "fixed by the routine")
        if isinstance(value, (dict, list)):  # a structure with references among its leaves
            filled, exact = self._fill(value)
            if filled is _MISSING:
                return KnownArgument(name, None, False, f"built from {value!r}")
            return KnownArgument(name, filled, True, f"the routine's {value!r}, filled in"
                                 if exact else f"built from {value!r}")
        if len(refs) == 1 and refs[0].whole:  # the value is exactly one reference
            resolved = self._lookup(refs[0])
            if resolved is _MISSING:
                return KnownArgument(name, None, False, self._describe(refs[0]))
            return KnownArgument(name, resolved, True, self._describe(refs[0]))
        values = {}
        for ref in refs:
            resolved = self._lookup(ref)
            if resolved is _MISSING:
                return KnownArgument(name, None, False, f"text built from {value!r}")
            values[ref.text] = str(resolved)
        # in one pass: a value that itself reads like a reference (a user who typed
        # "${inputs.clinic}") is text, not replaced in its turn
        text = re.sub("|".join(map(re.escape, values)), lambda m: values[m.group(0)],
                      str(value))
        return KnownArgument(name, text, True, f"built from {value!r}")

    def _fill(self, value: Any) -> tuple[Any, bool]:
        """A structured argument with its references resolved (_MISSING if one is not
        known yet), and whether it is exact: every leaf a literal or a whole reference, no
        text built around one (which a model may rightly word otherwise)."""
        if isinstance(value, dict):
            items = [(k, *self._fill(v)) for k, v in value.items()]
            if any(v is _MISSING for _, v, _ in items):
                return _MISSING, False
            return {k: v for k, v, _ in items}, all(e for _, _, e in items)
        if isinstance(value, list):
            filled = [self._fill(v) for v in value]
            if any(v is _MISSING for v, _ in filled):
                return _MISSING, False
            return [v for v, _ in filled], all(e for _, e in filled)
        leaf = self._resolve("", value)
        if not leaf.known:
            return _MISSING, False
        return leaf.value, not leaf.source.startswith("built from")

    def _describe(self, ref: Reference) -> str:
        if ref.kind == "vars":
            return f"the {'.'.join((ref.name, *ref.path))} found earlier"
        if ref.kind == "loop":
            return f"the current {'.'.join((ref.name, *ref.path))}"
        if ref.kind == "constants":
            return "a constant of the routine"
        if ref.kind == "inputs":
            spec = self.routine.inputs.get(ref.name)
            what = spec.description if spec else ref.name
            if spec is not None and spec.default is not None:
                what += f"; if the request does not say, {spec.default!r}"
            return f"take it from the user's request ({what})"
        field_ = ".".join(ref.path) or "result"
        label = self.flow.labels.get(ref.name, "?")
        return f"the {field_} from step {label} ({ref.name})"

    def _lookup(self, ref: Reference) -> Any:
        if ref.kind == "inputs":
            if ref.name in self.inputs:
                value = self.inputs[ref.name]
            else:
                spec = self.routine.inputs.get(ref.name)
                if spec is None or spec.default is None or not self.use_defaults:
                    return _MISSING
                value = spec.default
        else:
            source = {"steps": self.outputs, "vars": self.vars,
                      "constants": self.routine.constants,
                      "loop": {f.name: f.item for f in self.frames}}.get(ref.kind, {})
            if ref.name not in source:
                return _MISSING
            value = source[ref.name]
        return value_at(value, ref.path)

    def scope(self) -> dict[str, Any]:
        """What expressions and templates see: inputs (with defaults), step outputs, vars,
        constants, and the current item of every loop in progress."""
        inputs = dict(self.inputs)
        for name, spec in self.routine.inputs.items():
            if name not in inputs and spec.default is not None and self.use_defaults:
                inputs[name] = spec.default
        return {**{f.name: f.item for f in self.frames}, "inputs": inputs,
                "steps": {sid: {"output": out} for sid, out in self.outputs.items()},
                "vars": dict(self.vars), "constants": dict(self.routine.constants)}

    def render(self, template: str, inputs: dict[str, Any] | None = None) -> str:
        """A step's template (a question, a confirmation, a final message) rendered now
        (``inputs``: values a pending call carries, seen as known inputs)."""
        scope = self.scope()
        scope["inputs"].update(inputs or {})
        return render_template(template, **scope)

    def unknown_inputs(self, template: str) -> list[str]:
        """The declared inputs a template names whose value the run does not know yet."""
        refs, _ = template_references(template, frozenset(f.name for f in self.frames))
        known = self.scope()["inputs"]
        return list(dict.fromkeys(r.name for r in refs if r.kind == "inputs" and
                                  r.name in self.routine.inputs and r.name not in known))

    def arguments_shown(self, step: Step, template: str) -> set[str]:
        """The arguments of ``step`` a template shows: those the routine sets to exactly
        ``${inputs.NAME}`` where the template names ``inputs.NAME``."""
        refs, _ = template_references(template, frozenset(f.name for f in self.frames))
        named = {r.name for r in refs if r.kind == "inputs"}
        shown = set()
        for name, value in step.args.items():
            found = parse_references(value)
            if len(found) == 1 and found[0].whole and found[0].kind == "inputs" and \
                    not found[0].path and found[0].name in named:
                shown.add(name)
        return shown

    def inputs_in_call(self, step: Step, arguments: dict[str, Any]) -> dict[str, Any]:
        """Input values a call of ``step`` carries that the run did not know: an argument
        the routine sets to exactly ``${inputs.NAME}`` was filled by the model from the
        user's words, so that value is the input's (one input, one value for the run)."""
        found: dict[str, Any] = {}
        for name, value in step.args.items():
            refs = parse_references(value)
            if len(refs) != 1 or not refs[0].whole or refs[0].kind != "inputs" or \
                    refs[0].path or name not in arguments or arguments[name] is None:
                continue
            spec = self.routine.inputs.get(refs[0].name)
            if spec is None or self._lookup(refs[0]) is not _MISSING:
                continue
            try:  # of the input's type: "18" for an integer input is 18, as the tool read it
                found[refs[0].name] = coerce_inputs(
                    self.routine, {refs[0].name: arguments[name]})[refs[0].name]
            except RoutineError:  # outside its enum: not the input; of another type: as sent
                if spec.enum is None:
                    found[refs[0].name] = arguments[name]
        return found

    # ------------------------------------------------------------ the step contract
    def allowed_here(self) -> dict[str, str]:
        """The tools the routine allows now, each with the step it would complete: the
        current step's tool, or at an undecided branch the first tool of every option
        (through nested branches)."""
        allowed: dict[str, str] = {}
        for node in self._tool_steps_here():
            allowed.setdefault(self.flow.steps[node].tool or "", node)
        return allowed

    def options_for(self, tool: str) -> list[str]:
        """The steps a call of ``tool`` may complete now: the current step, or at an
        undecided branch every option that starts with it (two options may start with the
        same tool and differ in what they fix: approve or reject, say)."""
        return [node for node in self._tool_steps_here() if self.flow.steps[node].tool == tool]

    def _tool_steps_here(self) -> list[str]:
        """The tool steps a call may complete now, in order: the current step, or through an
        undecided branch (nested ones too) the first step of every option."""
        found: list[str] = []
        frontier, seen = [self.current], set()
        while frontier:
            node = frontier.pop(0)
            if node in seen or node not in self.flow.steps:
                continue
            seen.add(node)
            step = self.flow.steps[node]
            if step.branch:
                frontier += self.flow.options.get(node, [])
            elif step.tool:
                found.append(node)
        return found

    def contract(self, tool: str, arguments: dict[str, Any]) -> str | None:
        """Why a call breaks the routine here (None if it keeps to it): a tool the current
        step does not call, or an argument the routine fixes (a literal, a resolved
        reference) with another value. Free text built from references is not fixed."""
        step = self.step
        if step is None or step.finish:
            return (f"the routine's steps are done: the answer to the user comes now, not {tool}"
                    if step is not None else None)
        allowed = self.allowed_here()
        if tool not in allowed:
            what = ", ".join(allowed) or "no tool"
            return (f"{tool} is not what the routine does now: step {self.label(step.id)} "
                    f"({step.name}) calls {what}")
        targets = [self.flow.steps[node] for node in self.options_for(tool)]
        broken = [self._unkept(target, arguments) for target in targets]
        return None if None in broken else broken[0]

    def _unkept(self, target: Step, arguments: dict[str, Any]) -> str | None:
        """Why a call is not the one ``target`` makes (None: it is)."""
        for name, value in target.args.items():  # an input with an enum: one of its values
            refs = parse_references(value)
            spec = self.routine.inputs.get(refs[0].name) if len(refs) == 1 and \
                refs[0].whole and refs[0].kind == "inputs" and not refs[0].path else None
            if spec is not None and spec.enum is not None and name in arguments and \
                    self._lookup(refs[0]) is _MISSING and arguments[name] not in spec.enum:
                return (f"argument {name!r} is the input {refs[0].name!r}, one of "
                        f"{', '.join(map(_quote, spec.enum))}: not {_quote(arguments[name])}")
        return self.unlike(target, arguments)

    def unlike(self, step: Step, arguments: dict[str, Any]) -> str | None:
        """Why ``arguments`` are not what the routine fixes for ``step`` (None: they are):
        a fixed argument left out or with another value."""
        for argument in self.fixed_arguments(step):
            if argument.name not in arguments:
                return (f"argument {argument.name!r} is missing: the routine sets it to "
                        f"{_quote(argument.value)} ({argument.source})")
            if not _same(arguments[argument.name], argument.value):
                return (f"argument {argument.name!r} must be "
                        f"{_quote(argument.value)} here ({argument.source}), "
                        f"not {_quote(arguments[argument.name])}")
        return None

    def unsourced(self, step: Step) -> str | None:
        """Why ``step`` cannot be confirmed yet (None: it can): an argument the routine takes
        from an earlier step's output that has not run — with the contract off a model may
        skip the lookup, and the user would be asked to say yes to a bare id it made up."""
        for name, value in step.args.items():
            for ref in parse_references(value):
                if ref.kind == "steps" and ref.name not in self.outputs:
                    return (f"argument {name!r} comes from step {ref.name!r} "
                            f"({ref.text}), which has not run yet")
        return None

    def fixed_arguments(self, step: Step) -> list[KnownArgument]:
        """The arguments of ``step`` whose value the routine fixes now: literals and
        resolved references — not unknown ones, not empty ones (an earlier step found
        nothing), not free text built from references."""
        return [a for a in self.arguments(step) if a.known and a.value is not None
                and not a.source.startswith("built from")]

    def finish_step(self) -> Step | None:
        """The finish step an answer given now ends at: the current one, or at an undecided
        branch the one option that answers at once (the others call tools first)."""
        step = None if self.finished else self.step
        if step is None or step.finish:
            return step
        if step.branch:
            direct = [self.flow.steps[e] for e in self.flow.options.get(step.id, [])
                      if e in self.flow.steps and self.flow.steps[e].finish]
            return direct[0] if len(direct) == 1 else None
        return None

    def answer_facts(self, step: Step) -> tuple[str, list[Any]] | None:
        """The finish step's ``answer`` template rendered from the inputs and step outputs,
        with the values it placed (None when it needs a value the run does not have)."""
        if not step.answer:
            return None
        scope = self.scope()
        for name, spec in self.routine.inputs.items():
            if name not in scope["inputs"] and spec.default is not None:
                scope["inputs"][name] = spec.default
        try:
            text, values = render_facts(step.answer, **scope)
        except Exception:  # noqa: BLE001 - a missing value or a refused operation: no facts
            return None
        return (text, values) if text else None

    def step_for(self, tool: str, arguments: dict[str, Any] | None = None) -> Step | None:
        """The step a call of ``tool`` would complete now, if the routine allows it here."""
        steps = self.steps_for(tool, arguments)
        return steps[0] if steps else None

    def steps_for(self, tool: str, arguments: dict[str, Any] | None = None) -> list[Step]:
        """The steps a call of ``tool`` may complete now (:meth:`options_for`); given its
        ``arguments``, those whose fixed values it keeps when any does, as :meth:`record`
        takes them (two options may start with one tool: a correction, or a bonus that
        needs approval)."""
        options = self.options_for(tool)
        kept = self._kept(options, arguments) if arguments is not None and len(options) > 1 \
            else []
        return [self.flow.steps[node] for node in kept or options]

    def _kept(self, options: list[str], arguments: dict[str, Any]) -> list[str]:
        """The ``options`` whose fixed values a call with ``arguments`` keeps."""
        return [node for node in options
                if self._unkept(self.flow.steps[node], arguments) is None]

    # ------------------------------------------------------------ updates
    def record(self, tool: str, output: Any, arguments: dict[str, Any] | None = None
               ) -> str | None:
        """A successful call of ``tool`` (with ``arguments``): advance if it is (or leads
        to) a routine step; inputs the call carried become known (:meth:`inputs_in_call`).

        Returns the id of the step the call completed, or None if it matched no
        step ahead (e.g. a repeated lookup)."""
        options = self.options_for(tool) if arguments else []
        kept = self._kept(options, arguments or {})
        target = kept[0] if len(options) > 1 and kept else self._find_ahead(tool)
        if target is None:
            return None
        self._move_to(target)
        self.outputs[target] = output
        step = self.flow.steps[target]
        self.inputs.update(self.inputs_in_call(step, arguments or {}))
        if step.output:
            self.vars[step.output] = output
        if self.frames and self.frames[-1].results:
            self.frames[-1].results[-1][target] = output
        self.done.append(target)
        self._goto(self.flow.after[target])
        return target

    def record_error(self, tool: str) -> str | None:
        """A call of ``tool`` failed (the tool raised): if the step it was for has
        ``on_error``, the run continues there; returns that step's id (None: no fail-over,
        the model sees the error and tries again)."""
        node = self.allowed_here().get(tool)
        if node is None or node not in self.flow.on_error:
            return None
        self._move_to(node)
        self.failed.append(node)
        self.failed_into[self.flow.on_error[node]] = node
        self._goto(self.flow.on_error[node])
        return node

    def inputs_used(self, node: str) -> set[str]:
        """The inputs step ``node``'s arguments read (``${inputs.NAME}``, also inside text)."""
        step = self.flow.steps.get(node)
        return {ref.name for value in (step.args.values() if step else ())
                for ref in parse_references(value) if ref.kind == "inputs"}

    def fill(self, values: dict[str, Any]) -> None:
        """Input values the user gave (in reply to a question, or read from a request)."""
        self.inputs.update(values)

    def complete(self) -> None:
        """The current step (a question answered, a hand-off made) is done."""
        if self.step is not None:
            self.done.append(self.current)
            self._goto(self.flow.after[self.current])

    def decline(self, node: str) -> str:
        """The user said no to the call of step ``node``: go where the routine says
        (FINISHED: the run ends, nothing changed). Returns where the run went."""
        target = self.flow.on_decline.get(node, FINISHED)
        self._move_to(node)
        if target == FINISHED:
            self.declined = node
        self._goto(target)
        return target

    def _find_ahead(self, tool: str) -> str | None:
        """The nearest step from the current position (following the flow) that uses ``tool``."""
        frontier = [self.current]
        seen: set[str] = set()
        while frontier:
            nxt: list[str] = []
            for node in frontier:
                if node in seen or node not in self.flow.steps:
                    continue
                seen.add(node)
                if self.first_tool(node) == tool and not self.flow.steps[node].branch:
                    return node
                nxt += self.flow.succ.get(node, [])
            frontier = nxt
        return None

    def _move_to(self, target: str) -> None:
        """Record the branch options taken on the way from current to target."""
        path = self._path(self.current, target)
        for a, b in zip(path, path[1:], strict=False):
            if self.flow.steps[a].branch:
                self.branches[a] = self.flow.options[a].index(b)
                self.done.append(a)

    def _path(self, source: str, target: str) -> list[str]:
        parents: dict[str, str | None] = {source: None}
        queue = [source]
        while queue:
            node = queue.pop(0)
            if node == target:
                break
            for nxt in self.flow.succ.get(node, []):
                if nxt not in parents:
                    parents[nxt] = node
                    queue.append(nxt)
        path = [target]
        while parents.get(path[-1]) is not None:
            path.append(parents[path[-1]])  # type: ignore[arg-type]
        return list(reversed(path))

    def finish(self) -> None:
        """The model answered: move to the end."""
        if self.step is not None and self.step.finish:
            self.done.append(self.current)
        self.current = FINISHED

    def _goto(self, node: str) -> None:
        """Move to ``node`` (counting the visit), then take the steps that need no model."""
        self._advance(node)
        self._settle()

    def _settle(self) -> None:
        """Take the steps that need no model: a branch whose ``when`` decides it, a
        ``compute``, entering or going round a ``for_each``."""
        while self.stopped is None:
            node, step = self.current, self.step
            if step is None:
                return
            if (step.compute or any(o.when for o in step.branch or [])) and \
                    (unread := self._unread_inputs(step)):
                self.awaiting = unread  # the run reads them first (then settles again)
                return
            if step.branch:
                chosen = self._evaluate_branch(step)
                if chosen is None:
                    return
                self.branches[step.id] = chosen
                self.done.append(step.id)
                self._advance(self.flow.options[step.id][chosen])
            elif step.compute:
                self._compute(step)
                if self.stopped is None:
                    self.done.append(node)
                    self._advance(self.flow.after[node])
            elif step.for_each is not None:
                self._loop(node, step)
            else:
                self.stopped = self._dead_end(step)
                if self.stopped is not None:
                    self.current = FINISHED
                return

    def _unread_inputs(self, step: Step) -> list[str]:
        """Declared inputs this step's expressions read that are not known yet and that a
        request may still state (none once read at this visit, or when defaults hold)."""
        if self.use_defaults or self.read_for.get(step.id) == self.visits.get(step.id):
            return []
        expressions = [o.when for o in step.branch or [] if o.when] + [
            spec if isinstance(spec, str) else spec.expr for spec in (step.compute or {}).values()]
        loops = frozenset(f.name for f in self.frames)
        names = [r.name for e in expressions for r in expression_references(e, loops)[0]
                 if r.kind == "inputs"]
        return [n for n in dict.fromkeys(names) if n in self.routine.inputs and n not in self.inputs]

    def loop_outputs(self) -> dict[str, Any]:
        """The outputs of the for_each steps done (one mapping per item)."""
        return {node: out for node, out in self.outputs.items() if node in self.flow.loops}

    def inputs_read(self) -> dict[str, Any]:
        """After the run read :attr:`awaiting` from the user's words: those still unknown take
        their defaults (returned), and the current step is taken if it is the routine's."""
        step = self.step
        if step is not None:
            self.read_for[step.id] = self.visits.get(step.id, 0)
        defaults = {n: self.routine.inputs[n].default for n in self.awaiting
                    if n not in self.inputs and self.routine.inputs[n].default is not None}
        self.inputs.update(defaults)
        self.awaiting = []
        self._settle()
        return defaults

    def _advance(self, node: str) -> None:
        """Move to ``node``, counting the visit; past its max_visits the routine stops."""
        self.current = node
        if node in self.flow.steps:
            self.visits[node] = self.visits.get(node, 0) + 1
            limit = self.flow.steps[node].max_visits
            if limit is not None and self.visits[node] > limit:
                self.stopped = (f"step {self.label(node)} ({self.flow.steps[node].name}) was "
                                f"reached {limit} times, its max_visits")
                self.current = FINISHED

    def _compute(self, step: Step) -> None:
        for name, spec in (step.compute or {}).items():
            expression, kind = (spec, None) if isinstance(spec, str) else (spec.expr, spec.type)
            try:
                value = compile_when(expression)(**self.scope())
            except Exception as exc:  # noqa: BLE001 - the routine's expression failed here
                unknown = [r.name for r in expression_references(expression)[0]
                           if r.kind == "inputs" and r.name not in self.scope()["inputs"]]
                self.stopped = f"step {step.id}: computing {name} failed: " + (
                    f"input {unknown[0]!r} is not known (the request did not state it, and "
                    "it has no default)" if isinstance(exc, UndefinedError) and unknown
                    else f"{type(exc).__name__}: {exc}")
                self.current = FINISHED
                return
            if kind == "number" and isinstance(value, str):
                try:
                    value = float(value)
                except ValueError:
                    pass
            if kind is not None and (not isinstance(value, _TYPES[kind])
                                     or (kind != "boolean" and isinstance(value, bool))):
                self.stopped = f"step {step.id}: {name} = {value!r} is not {a_type(kind)}"
                self.current = FINISHED
                return
            if isinstance(value, float) and not math.isfinite(value):  # no JSON call sends it
                self.stopped = f"step {step.id}: {name} = {value} (the number overflowed)"
                self.current = FINISHED
                return
            if isinstance(value, float):  # 1000.10 + 1000.20 is 2000.3000000000002 in binary
                value = _without_noise(value)
            self.vars[name] = value

    def _loop(self, node: str, step: Step) -> None:
        """At a for_each: enter it (first item), or go round (next item), or leave it."""
        frame = self.frames[-1] if self.frames and self.frames[-1].loop == node else None
        if frame is None:
            ref = parse_references(step.for_each)[0]
            items = self._lookup(ref)
            if items is None:  # "nothing found": no items
                items = []
            if not isinstance(items, (list, tuple)):  # ran zero times, silently, before
                got = "no value" if items is _MISSING else \
                    f"{type(items).__name__} {_quote(items, 80)}"
                self.stopped = (f"step {step.id}: for_each needs a list, and "
                                f"{step.for_each} is {got}")
                self.current = FINISHED
                return
            items = list(items)
            if len(items) > MAX_ITEMS:
                self.stopped = f"step {step.id}: {len(items)} items, more than {MAX_ITEMS}"
                self.current = FINISHED
                return
            frame = LoopFrame(node, step.as_, items)
            self.frames.append(frame)
        else:
            until = step.until and self._true(step.until, step.id)
            frame.index += 1
            if until:
                frame.index = len(frame.items)
        if frame.index < len(frame.items):
            frame.results.append({})
            for inner in self._body(node):  # max_visits counts within one item
                self.visits.pop(inner, None)
                asks = self.flow.steps[inner]
                if frame.index > 0 and asks.ask is not None:  # each item is asked about
                    self.fresh.add(inner)
                    self.answered_at.pop(inner, None)
                    for name in asks.fills:
                        self.inputs.pop(name, None)
            self._advance(self.flow.loops[node])
            return
        self.frames.pop()
        self.outputs[node] = frame.results
        self.done.append(node)
        self._advance(self.flow.after[node])

    def _dead_end(self, step: Step) -> str | None:
        """Why ``step`` cannot be taken (None: it can): an argument that is exactly a value
        of an earlier step's output that the step did not return (a lookup that found
        nothing, a field its result lacks). Any value would be made up: the routine stops."""
        for name, value in step.args.items():
            refs = parse_references(value)
            if len(refs) != 1 or not refs[0].whole:
                continue
            ref = refs[0]
            source = {"steps": self.outputs, "vars": self.vars}.get(ref.kind, {})
            if ref.name not in source:
                continue
            found = self._lookup(ref)
            if found is _MISSING and ref.path:
                return (f"step {self.label(step.id)} ({step.name}) needs {name} = {ref.text}, "
                        f"and {ref.kind}.{ref.name} is {_quote(source[ref.name], 120)}: it has "
                        f"no {'.'.join(ref.path)} (the routine stops rather than make one up)")
            if found is None and name in self.null_refused.get(step.tool or "", ()):
                return (f"step {self.label(step.id)} ({step.name}) needs {name} = {ref.text}, "
                        f"and it is null (nothing found), which argument {name!r} of "
                        f"{step.tool} does not take (the routine stops rather than make one "
                        "up)")
        return None

    def _lacking(self, expression: str) -> str | None:
        """A field the expression reads of an earlier step's output (or a var) that the
        output does not have — a lookup that found nothing — described; None if none."""
        refs, _ = expression_references(expression, frozenset(f.name for f in self.frames))
        for ref in refs:
            source = {"steps": self.outputs, "vars": self.vars}.get(ref.kind, {})
            if ref.path and ref.name in source and self._lookup(ref) is _MISSING:
                return (f"{ref.text}, and {ref.kind}.{ref.name} is "
                        f"{_quote(source[ref.name], 120)}: it has no {'.'.join(ref.path)}")
        return None

    def _body(self, loop: str) -> list[str]:
        """Every step inside the body of ``loop`` (nested loops' bodies included)."""
        def inside(node: str) -> bool:
            while node in self.flow.parent:
                node = self.flow.parent[node]
                if node == loop:
                    return True
            return False
        return [node for node in self.flow.steps if inside(node)]

    def _true(self, expression: str, step_id: str = "") -> bool:
        try:
            return bool(compile_when(expression)(**self.scope()))
        except UndefinedError:  # a value not known yet: the loop goes on
            return False
        except Exception as exc:  # noqa: BLE001 - the loop goes on; the reason is kept
            if step_id:
                self.branch_errors[step_id] = (f"until `{expression}`: {type(exc).__name__}: "
                                               f"{exc}; the loop went on through every item")
            return False

    def _evaluate_branch(self, step: Step) -> int | None:
        scope = self.scope()
        if all(option.when is None for option in step.branch or []):
            return None  # no expressions: the model picks the option
        for index, option in enumerate(step.branch or []):
            if option.when is None:
                return index  # every earlier option was false: this one is "otherwise"
            try:
                if compile_when(option.when)(**scope):
                    return index
            except Exception as exc:  # noqa: BLE001 - undecided: the model decides, unless...
                lacking = self._lacking(option.when)
                if lacking is not None:  # ...what it reads is missing from an earlier result
                    self.stopped = (f"step {self.label(step.id)} ({step.name}) cannot choose: "
                                    f"`{option.when}` reads {lacking} (the routine stops "
                                    "rather than guess which option applies)")
                    self.current = FINISHED
                elif not isinstance(exc, UndefinedError):  # e.g. comparing None: keep why
                    self.branch_errors[step.id] = \
                        f"`{option.when}`: {type(exc).__name__}: {exc}"
                return None
        if all(option.when is not None for option in step.branch or []):
            whens = "; ".join(f"`{o.when}`" for o in step.branch or [])
            self.stopped = (f"step {self.label(step.id)} ({step.name}): no option's `when` "
                            f"holds ({whens}), and the branch has no option without one")
            self.current = FINISHED
        return None
