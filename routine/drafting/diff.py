"""How one routine differs from another, step by step (``routine draft --diff``).

Both routines are flattened in document order (branch options' steps included, with their
paper-style labels) and aligned by what each step does: its tool, or its kind (branch,
finish, ask...). Aligned steps are compared: the tool, the arguments, a branch's options
and their ``when`` expressions. References are compared through the alignment, so
``${steps.lookup.output.id}`` in one routine equals ``${steps.find_employee.output.id}``
in the other when the two steps were aligned; a step id alone is not a change. A step
that is in both routines at different places is *moved*; the rest are *added* (only in
the new routine) or *removed* (only in the old one). Inputs are compared by name.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from ..spec.format import InputSpec, Routine, Step

__all__ = ["StepRef", "StepChange", "InputChange", "RoutineDiff", "diff_routines"]

Change = Literal["same", "changed", "added", "removed", "moved"]
_MARK = {"same": "=", "changed": "~", "added": "+", "removed": "-", "moved": "↕"}
_STEP_REF = re.compile(r"(\$\{steps\.|(?<![\w.])steps\.)([a-z][a-z0-9_]*)")


@dataclass(frozen=True)
class StepRef:
    """One step of one routine: its id, label (``3-1_2``) and what it does."""

    id: str
    label: str
    does: str  # the tool's name, or the step's kind (branch, finish, ask, ...)


@dataclass
class StepChange:
    """One line of the step-by-step diff: ``old`` and/or ``new`` and what differs."""

    change: Change
    old: StepRef | None = None
    new: StepRef | None = None
    details: list[str] = field(default_factory=list)


@dataclass
class InputChange:
    name: str
    change: Literal["added", "removed", "changed"]
    details: str = ""


@dataclass
class RoutineDiff:
    """Every difference between ``old`` (the existing routine) and ``new``."""

    old_name: str
    new_name: str
    inputs: list[InputChange]
    steps: list[StepChange]
    notes: list[str] = field(default_factory=list)  # the routine's own fields that differ

    @property
    def identical(self) -> bool:
        return not self.inputs and not self.notes and all(
            s.change == "same" and not s.details for s in self.steps)

    def counts(self) -> dict[str, int]:
        return {kind: sum(s.change == kind for s in self.steps) for kind in _MARK}

    def lines(self, old_label: str = "existing", new_label: str = "drafted") -> list[str]:
        """The diff as text: ``+`` only in the new routine, ``-`` only in the old one, ``~``
        changed, ``↕`` moved, ``=`` the same."""
        out = [f"{self.new_name} ({new_label}) against {self.old_name} ({old_label}); "
               f"+ only {new_label}, - only {old_label}"]
        if self.inputs:
            out.append("inputs:")
            for item in self.inputs:
                mark = {"added": "+", "removed": "-", "changed": "~"}[item.change]
                out.append(f"  {mark} {item.name}" + (f": {item.details}" if item.details else ""))
        out += [f"  ~ {note}" for note in self.notes]
        out.append("steps:")
        for step in self.steps:
            ref = step.new or step.old
            assert ref is not None
            where = ref.label
            if step.old and step.new and step.old.label != step.new.label:
                where = f"{step.new.label} (was {step.old.label})"
            ids = ref.id
            if step.old and step.new and step.old.id != step.new.id:
                ids = f"{step.new.id} (was {step.old.id})"
            out.append(f"  {_MARK[step.change]} {where} {ids} · {ref.does}")
            out += [f"      {detail}" for detail in step.details]
        counts = self.counts()
        out.append(", ".join(f"{n} {kind}" for kind, n in counts.items()) +
                   (f"; {len(self.inputs)} input change(s)" if self.inputs else "") +
                   (" — identical" if self.identical else ""))
        return out


def _does(step: Step) -> str:
    return step.tool or step.kind


def _input_text(spec: InputSpec) -> dict[str, Any]:
    return {"type": spec.type, "required": spec.required, "default": spec.default,
            "enum": spec.enum}


def _inputs(old: Routine, new: Routine) -> list[InputChange]:
    out = [InputChange(n, "removed", old.inputs[n].type) for n in old.inputs
           if n not in new.inputs]
    out += [InputChange(n, "added", new.inputs[n].type) for n in new.inputs
            if n not in old.inputs]
    for name in old.inputs.keys() & new.inputs.keys():
        a, b = _input_text(old.inputs[name]), _input_text(new.inputs[name])
        changed = [f"{k} {a[k]!r} → {b[k]!r}" for k in a if a[k] != b[k]]
        if changed:
            out.append(InputChange(name, "changed", ", ".join(changed)))
    return out


def _renamed(value: Any, ids: dict[str, str]) -> Any:
    """``value`` with the new routine's step ids in references replaced by the old ones."""
    if isinstance(value, str):
        return _STEP_REF.sub(lambda m: m.group(1) + ids.get(m.group(2), m.group(2)), value)
    if isinstance(value, list):
        return [_renamed(v, ids) for v in value]
    if isinstance(value, dict):
        return {k: _renamed(v, ids) for k, v in value.items()}
    return value


_REWORDED = "description: reworded"  # the model's instruction, said to differ, not quoted
# the fields of a step that change what a run does, besides its tool and args
_FIELDS = ("description", "answer", "message", "ask", "fills", "confirm", "on_decline",
           "on_error", "approval", "compute", "for_each", "as_", "until", "next", "handoff",
           "max_visits", "output", "finish")


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def _compare(old: Step, new: Step, ids: dict[str, str]) -> list[str]:
    """What differs between two aligned steps (new-side references read with old ids)."""
    details = []
    if _does(old) != _does(new):
        details.append(f"tool: {_does(old)} → {_does(new)}")
    new_args = _renamed(new.args, ids)
    for name in old.args.keys() | new_args.keys():
        if name not in new_args:
            details.append(f"args.{name}: {old.args[name]!r} removed")
        elif name not in old.args:
            details.append(f"args.{name}: {new.args[name]!r} added")
        elif old.args[name] != new_args[name]:
            details.append(f"args.{name}: {old.args[name]!r} → {new.args[name]!r}")
    for name in _FIELDS:  # what the step does beyond its call: its texts, flow, values
        # compared with the new side's references read as old ids; shown as each file has it
        a, shown = getattr(old, name, None), getattr(new, name, None)
        b = _renamed(shown, ids)
        if isinstance(a, list) and name == "on_error":  # inline fail-over steps: their ids
            a, b = [s.id for s in a], [s.id for s in b or []]
            shown = [s.id for s in shown or []]
        if a != b and (a or b):
            field_ = name.rstrip("_")
            details.append(_REWORDED if name == "description" else
                           f"{field_}: {_short(a)} → {_short(shown)}")
    details.sort()
    if old.branch is not None and new.branch is not None:
        if len(old.branch) != len(new.branch):
            details.append(f"options: {len(old.branch)} → {len(new.branch)}")
        for n, (a, b) in enumerate(zip(old.branch, new.branch, strict=False), 1):
            when = _renamed(b.when, ids)
            if (a.when or None) != (when or None):
                details.append(f"option {n} when: {a.when or '(otherwise)'} → "
                               f"{b.when or '(otherwise)'}")
    return details


def diff_routines(old: Routine, new: Routine) -> RoutineDiff:
    """The step-by-step differences of ``new`` from ``old``."""
    before, after = old.walk(), new.walk()
    keys_a, keys_b = [_does(s) for s, _ in before], [_does(s) for s, _ in after]
    pairs: list[tuple[int | None, int | None]] = []  # in a merged document order
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, keys_a, keys_b,
                                                       autojunk=False).get_opcodes():
        if tag == "equal":
            pairs += list(zip(range(i1, i2), range(j1, j2), strict=True))
            continue
        common = min(i2 - i1, j2 - j1) if tag == "replace" else 0
        for i, j in zip(range(i1, i1 + common), range(j1, j1 + common), strict=True):
            # one tool for another at the same place: a changed step; other kinds differ
            if before[i][0].tool and after[j][0].tool:
                pairs.append((i, j))
            else:
                pairs += [(i, None), (None, j)]
        pairs += [(i, None) for i in range(i1 + common, i2)]
        pairs += [(None, j) for j in range(j1 + common, j2)]
    # a step only in one place of each routine, doing the same: moved
    removed = [i for i, j in pairs if j is None and i is not None]
    moved: dict[int, int] = {}  # new index -> old index
    for j in (j for i, j in pairs if i is None and j is not None):
        match = next((i for i in removed if keys_a[i] == keys_b[j] and i not in moved.values()),
                     None)
        if match is not None:
            moved[j] = match
    paired = [(i, j) for i, j in pairs if not (j is None and i in moved.values())]
    paired = [(moved.get(j, i) if j is not None and i is None else i, j) for i, j in paired]
    ids = {after[j][0].id: before[i][0].id for i, j in paired if i is not None and j is not None}
    steps = []
    for i, j in paired:
        a = before[i] if i is not None else None
        b = after[j] if j is not None else None
        ref_a = StepRef(a[0].id, a[1], _does(a[0])) if a else None
        ref_b = StepRef(b[0].id, b[1], _does(b[0])) if b else None
        if a is None:
            steps.append(StepChange("added", None, ref_b))
        elif b is None:
            steps.append(StepChange("removed", ref_a, None))
        else:
            details = _compare(a[0], b[0], ids)
            change: Change = "moved" if j in moved else "changed" if any(
                d != _REWORDED for d in details) else "same"  # (reworded only: the same)
            steps.append(StepChange(change, ref_a, ref_b, details))
    notes = [f"{name}: reworded" if name == "description" else
             f"{name}: {_short(getattr(old, name))} → {_short(getattr(new, name))}"
             for name in ("description", "constants") if getattr(old, name) != getattr(new, name)]
    return RoutineDiff(old.name, new.name, _inputs(old, new), steps, notes)
