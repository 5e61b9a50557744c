"""Step tracking: where a run stands in its routine.

The tracker follows the run through the routine's flow: which steps are done,
which branch option was taken, what each step produced. It tells the planner
the CURRENT step, with the argument values already known, so a small model
only has to follow the step it is told to be on.

Branches are chosen by their ``when`` expressions when those can be evaluated,
otherwise by the model: the option whose first step uses the tool it calls.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from jinja2 import UndefinedError

from ..spec.expressions import compile_when, render_facts
from ..spec.flow import FINISHED, Flow
from ..spec.format import Routine, Step
from ..spec.references import Reference, parse_references

__all__ = ["StepTracker", "KnownArgument"]

_MISSING = object()


def _same(given: Any, fixed: Any) -> bool:
    """Equal as the tool would see them: 2 == 2.0 == "2"; otherwise exactly."""
    if given == fixed:
        return True
    numbers = (int, float)
    if isinstance(fixed, numbers) and not isinstance(fixed, bool) and \
            isinstance(given, (*numbers, str)) and not isinstance(given, bool):
        try:
            return float(given) == float(fixed)
        except ValueError:
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

    def __post_init__(self) -> None:
        self.flow = Flow.of(self.routine)
        self.current = self.flow.entry
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
        if len(refs) == 1 and refs[0].whole:
            resolved = self._lookup(refs[0])
            if resolved is _MISSING:
                return KnownArgument(name, None, False, self._describe(refs[0]))
            return KnownArgument(name, resolved, True, self._describe(refs[0]))
        text = str(value)
        for ref in refs:
            resolved = self._lookup(ref)
            if resolved is _MISSING:
                return KnownArgument(name, None, False, f"text built from {value!r}")
            text = text.replace(ref.text, str(resolved))
        return KnownArgument(name, text, True, f"built from {value!r}")

    def _describe(self, ref: Reference) -> str:
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
        elif ref.name in self.outputs:
            value = self.outputs[ref.name]
        else:
            return _MISSING
        for segment in ref.path:
            if isinstance(value, dict) and segment in value:
                value = value[segment]
            elif isinstance(value, list) and segment.isdigit() and int(segment) < len(value):
                value = value[int(segment)]
            else:
                return _MISSING
        return value

    # ------------------------------------------------------------ the step contract
    def allowed_here(self) -> dict[str, str]:
        """The tools the routine allows now, each with the step it would complete: the
        current step's tool, or at an undecided branch the first tool of every option
        (through nested branches)."""
        allowed: dict[str, str] = {}
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
                allowed.setdefault(step.tool, node)
        return allowed

    def contract(self, tool: str, arguments: dict[str, Any]) -> str | None:
        """Why a call breaks the routine here (None if it keeps to it): a tool the current
        step does not call, or an argument the routine fixes (a literal, a resolved
        reference) with another value. Free text built from references is not fixed."""
        step = self.step
        if step is None or step.finish:
            return (f"the routine's steps are done: call finish with the answer, not {tool}"
                    if step is not None else None)
        allowed = self.allowed_here()
        if tool not in allowed:
            what = ", ".join(allowed) or "no tool"
            return (f"{tool} is not what the routine does now: step {self.label(step.id)} "
                    f"({step.name}) calls {what}")
        target = self.flow.steps[allowed[tool]]
        for argument in self.fixed_arguments(target):
            if argument.name not in arguments:
                return (f"argument {argument.name!r} is missing: the routine sets it to "
                        f"{json.dumps(argument.value, default=str)} ({argument.source})")
            if not _same(arguments[argument.name], argument.value):
                return (f"argument {argument.name!r} must be "
                        f"{json.dumps(argument.value, default=str)} here ({argument.source}), "
                        f"not {json.dumps(arguments[argument.name], default=str)}")
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
        inputs = dict(self.inputs)
        for name, spec in self.routine.inputs.items():
            if name not in inputs and spec.default is not None:
                inputs[name] = spec.default
        steps = {sid: {"output": out} for sid, out in self.outputs.items()}
        try:
            text, values = render_facts(step.answer, inputs, steps)
        except Exception:  # noqa: BLE001 - a missing value or a refused operation: no facts
            return None
        return (text, values) if text else None

    def step_for(self, tool: str) -> Step | None:
        """The step a call of ``tool`` would complete now, if the routine allows it here."""
        node = self.allowed_here().get(tool)
        return self.flow.steps.get(node) if node else None

    # ------------------------------------------------------------ updates
    def record(self, tool: str, output: Any) -> str | None:
        """A successful call of ``tool``: advance if it is (or leads to) a routine step.

        Returns the id of the step the call completed, or None if it matched no
        step ahead (e.g. a repeated lookup)."""
        target = self._find_ahead(tool)
        if target is None:
            return None
        self._move_to(target)
        self.outputs[target] = output
        self.done.append(target)
        self.current = self.flow.after[target]
        self._settle()
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

    def _settle(self) -> None:
        """At a branch step, take the option whose ``when`` is true, when decidable."""
        while True:
            step = self.step
            if step is None or not step.branch:
                return
            chosen = self._evaluate_branch(step)
            if chosen is None:
                return
            self.branches[step.id] = chosen
            self.done.append(step.id)
            self.current = self.flow.options[step.id][chosen]

    def _evaluate_branch(self, step: Step) -> int | None:
        steps = {sid: {"output": out} for sid, out in self.outputs.items()}
        inputs = dict(self.inputs)
        for name, spec in self.routine.inputs.items():
            if name not in inputs and spec.default is not None and self.use_defaults:
                inputs[name] = spec.default
        if all(option.when is None for option in step.branch or []):
            return None  # no expressions: the model picks the option
        for index, option in enumerate(step.branch or []):
            if option.when is None:
                return index  # every earlier option was false: this one is "otherwise"
            try:
                if compile_when(option.when)(inputs=inputs, steps=steps):
                    return index
            except UndefinedError:  # a value is not known yet: let the model decide
                return None
            except Exception as exc:  # e.g. comparing None: the model decides; keep the reason
                self.branch_errors[step.id] = f"`{option.when}`: {type(exc).__name__}: {exc}"
                return None
        return None
