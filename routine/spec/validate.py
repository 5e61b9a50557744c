"""Check a routine against its tools' schemas before anything runs.

Every problem is collected (never just the first) with file:line:column, what
is wrong, and what was expected. Checks: unknown tools; arguments a tool does
not take; required arguments with no source; malformed references; references
to missing inputs, to missing, later or possibly-skipped steps, to steps without
output and to fields the tool's output does not have; type mismatches where
both sides are typed (a hand-off's arguments against the target routine's inputs);
literals outside an enum (through ``anyOf`` and into list items); ``when`` expressions
and templates, judged as the run-time sandbox judges them (methods it refuses, methods
the value's type lacks, expressions over constants that fail in every run); jumps into
or out of a loop body; unreachable steps; cycles; paths that end without a finish step.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import re
import unicodedata
from datetime import date, time
from typing import Any

from jinja2 import nodes as jnodes
from pydantic import ValidationError

from ..errors import Problem
from ..tools.core import Tool, ToolRegistry
from .expressions import parse_template, parse_when, refused_method, static_problem, static_value
from .flow import FELL_OFF, Flow
from .format import ID_PATTERN, Routine, a_type
from .loader import LoadedRoutine
from .references import EXPECTED, MISSING, Reference, parse_references, reference_of, value_at

__all__ = ["check_routine", "expression_references", "json_types", "schema_at",
           "template_references", "value_json_type"]


# ---------------------------------------------------------------- JSON-schema helpers
def _resolve(schema: dict[str, Any] | None, root: dict[str, Any]) -> dict[str, Any] | None:
    seen = 0
    while schema and "$ref" in schema and seen < 20:
        ref = schema["$ref"]
        if not ref.startswith("#/"):
            return None
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part) if isinstance(target, dict) else None
        schema = target
        seen += 1
    return schema


def _alternatives(schema: dict[str, Any] | None, root: dict[str, Any]) -> list[dict[str, Any]]:
    schema = _resolve(schema, root)
    if not schema:
        return []
    for key in ("anyOf", "oneOf"):
        if key in schema:
            out = []
            for alt in schema[key]:
                out += _alternatives(alt, root)
            return out
    return [schema]


_JINJA_MARKS = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.S)


def _texts(value: Any, path: tuple[Any, ...]) -> list[tuple[tuple[Any, ...], str]]:
    """Every string in an argument's value, with its path (into lists and mappings)."""
    if isinstance(value, str):
        return [(path, value)]
    if isinstance(value, dict):
        return [t for k, v in value.items() for t in _texts(v, path + (k,))]
    if isinstance(value, list):
        return [t for i, v in enumerate(value) for t in _texts(v, path + (i,))]
    return []


def json_types(schema: dict[str, Any] | None, root: dict[str, Any] | None = None) -> set[str]:
    """The JSON types a schema admits; empty set means 'anything / unknown'."""
    types: set[str] = set()
    for alt in _alternatives(schema, root or schema or {}):
        t = alt.get("type")
        if t is None:
            if "enum" in alt:
                types |= {value_json_type(v) for v in alt["enum"]}
            elif "const" in alt:
                types.add(value_json_type(alt["const"]))
            else:
                return set()
        elif isinstance(t, list):
            types |= set(t)
        else:
            types.add(t)
    return types


def schema_at(schema: dict[str, Any], path: tuple[str, ...]) -> tuple[dict[str, Any] | None, str]:
    """Follow a field path through an output schema.

    Returns (sub-schema or None if unknown, error message or "")."""
    root = schema
    current: dict[str, Any] | None = schema
    walked: list[str] = []
    for segment in path:
        alts = [a for a in _alternatives(current, root) if a.get("type") != "null"]
        if not alts:
            return None, ""
        nxt = None
        known_fields: list[str] = []
        for alt in alts:
            if alt.get("type") == "array" or "items" in alt or "prefixItems" in alt:
                if segment.isdigit():
                    nxt = _item_schema(alt, int(segment))
                    if nxt is None:  # a tuple's fixed items: tuple[date, date] has no .5
                        where = ".".join(walked) or "the output"
                        return None, (f"{where} has {len(alt['prefixItems'])} items (a "
                                      f"tuple), so no item {segment}")
                    break
                known_fields.append("<index>")
            elif "properties" in alt or isinstance(alt.get("additionalProperties"), dict):
                if segment in alt.get("properties", {}):
                    nxt = alt["properties"][segment]
                    break
                if isinstance(alt.get("additionalProperties"), dict):  # dict[str, Leg]: any
                    nxt = alt["additionalProperties"]  # key, each value of that schema
                    break
                known_fields += list(alt["properties"])
                if alt.get("additionalProperties") not in (None, False):
                    return None, ""
            elif alt.get("type") in ("string", "integer", "number", "boolean"):
                where = ".".join(walked) or "the output"
                return None, f"{where} is a {alt['type']} and has no field {segment!r}"
            else:
                return None, ""
        if nxt is None:
            where = ".".join(walked) or "the output"
            return None, f"{where} has no field {segment!r} (it has: {', '.join(known_fields)})"
        walked.append(segment)
        current = nxt
    return _resolve(current, root), ""


# string formats pydantic reads strictly: a value in one is never a value in another (but a
# date is a date-time at midnight)
_FORMATS = {"date", "date-time", "time", "duration", "uuid", "email", "uri", "ipv4", "ipv6"}


def _formats(schema: dict[str, Any] | None, root: dict[str, Any]) -> set[str]:
    """The string formats a schema admits, when each of its text alternatives has one of
    :data:`_FORMATS` (empty when any text goes, or the schema does not say)."""
    found: set[str] = set()
    for alt in _alternatives(schema, root):
        if alt.get("type") == "string":
            if alt.get("format") not in _FORMATS:
                return set()
            found.add(alt["format"])
    return found


def _item_schema(schema: dict[str, Any], index: int) -> dict[str, Any] | None:
    """The schema of item ``index`` of an array schema: a tuple's own (``prefixItems``), else
    its ``items`` ({} when it does not say); None past a tuple's fixed items."""
    prefix = schema.get("prefixItems")
    if isinstance(prefix, list):
        if index < len(prefix):
            return prefix[index] if isinstance(prefix[index], dict) else {}
        if schema.get("items", False) is False:
            return None
    items = schema.get("items", {})
    return items if isinstance(items, dict) else {}


def _fields_schema(schema: dict[str, Any], key: Any) -> Any:
    """The schema of field ``key`` of an object schema: its own property, else the schema
    of every other key (``additionalProperties``: a ``dict[str, int]``), else what that key
    says (True, False or None)."""
    props = schema.get("properties")
    if isinstance(props, dict) and isinstance(props.get(key), dict):
        return props[key]
    return schema.get("additionalProperties")


def _is_object(schema: dict[str, Any]) -> bool:
    """An object schema whose fields are known: a model's properties, or a dict's values."""
    return isinstance(schema.get("properties"), dict) or \
        isinstance(schema.get("additionalProperties"), dict)


def _could_be(value: dict[Any, Any], schema: dict[str, Any]) -> bool:
    """Whether a mapping could be of an object schema by its keys: it has the required
    fields, and no field the schema refuses."""
    return all(key in value for key in schema.get("required", [])) and \
        all(_fields_schema(schema, key) is not False for key in value)


def _is_array(schema: dict[str, Any]) -> bool:
    """An array schema whose items are known: a list's ``items``, or a tuple's."""
    return isinstance(schema.get("items"), dict) or isinstance(schema.get("prefixItems"), list)


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _name_like(name: str) -> str:
    """A name references can hold, close to ``name``: ``ship-ref`` -> ``ship_ref``."""
    ascii_ = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    made = re.sub(r"[^A-Za-z0-9_]+", "_", ascii_).strip("_") or "value"
    return made if not made[0].isdigit() else f"_{made}"


_PYTHON_TYPES: dict[str, type] = {"string": str, "array": list, "object": dict, "integer": int,
                                  "number": float, "boolean": bool}
# what an expression's outermost operation gives whatever its operands: a comparison, `not`
# and a test are booleans, Jinja's `/` is true division, `~` joins text (which may read as a
# number)
_OPERATION_TYPES: dict[type, set[str]] = {
    jnodes.Compare: {"boolean"}, jnodes.Not: {"boolean"}, jnodes.Test: {"boolean"},
    jnodes.Div: {"number"}, jnodes.Concat: {"string", "number"}}


def _taking(accepted: set[str], param: dict[str, Any] | None) -> str:
    """What a parameter takes, for a problem's ``expected``: its types and, where the tool
    describes it, what the value is (``string: the employee's full name``: an id of the
    right name but the wrong kind is not mended by its type alone)."""
    types = "/".join(sorted(accepted))
    about = (param or {}).get("description")
    if not isinstance(about, str) or not about.strip():
        return types
    about = " ".join(about.split())
    return f"{types}: {about if len(about) <= 160 else about[:159] + '…'}"


def value_json_type(value: Any) -> str:
    """The JSON Schema type of a value as it is sent (an unquoted YAML date: its text)."""
    if isinstance(value, (date, time)):  # unquoted YAML dates: sent to the tool as strings
        return "string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _quote_hint(value: Any) -> str:
    """For a boolean where text was meant: YAML 1.1 reads yes/no/on/off as booleans."""
    return ("; quotes around yes, no, on or off ('yes'): unquoted, YAML reads them as true "
            "and false") if isinstance(value, bool) else ""


def _compatible(source: set[str], accepted: set[str]) -> bool:
    if not source or not accepted:
        return True
    if source & accepted:
        return True
    return "integer" in source and "number" in accepted


# ---------------------------------------------------------------- expressions
def expression_references(expression: str, loops: frozenset[str] = frozenset()
                          ) -> tuple[list[Reference], str]:
    """References (``inputs.x``, ``steps.id.output.f``, ``vars.x``, ``constants.x``, a loop
    item's ``item.f``) used in an expression; ``loops`` are the item names in scope.

    Returns (references, syntax error or "")."""
    tree, problem = parse_when(expression)
    if tree is None:
        return [], problem
    return _references(tree, f"expression {expression!r}", set(), loops)


def template_references(template: str, loops: frozenset[str] = frozenset(),
                        what: str = "the answer template") -> tuple[list[Reference], str]:
    """References used in a template (names its loops and ``set`` bind are local)."""
    tree, problem = parse_template(template)
    if tree is None:
        return [], problem
    local = {"loop", "caller", "varargs", "kwargs"}  # what Jinja binds inside loops, macros
    local |= {node.name for node in tree.find_all(jnodes.Name) if node.ctx in ("store", "param")}
    local |= {node.name for node in tree.find_all(jnodes.Macro)}
    return _references(tree, what, local, loops)


_ROOTS = ("inputs", "steps", "vars", "constants")
_RESERVED = {*_ROOTS, "none", "true", "false", "loop"}  # not a for_each item's name


def _references(tree: Any, what: str, local: set[str], loops: frozenset[str]
                ) -> tuple[list[Reference], str]:
    refs: list[Reference] = []
    claimed: set[int] = set()
    methods = {id(call.node): call.node for call in tree.find_all(jnodes.Call)
               if isinstance(call.node, jnodes.Getattr)}
    for node in tree.find_all((jnodes.Getattr, jnodes.Getitem, jnodes.Name)):
        if id(node) in claimed:
            continue
        chain: list[str] = []
        cur: Any = node
        method = ""
        if id(node) in methods:  # x.endswith('a'): a method of the value x, not a field
            claimed.add(id(node))
            method, cur = node.attr, node.node
            if why := refused_method(method):
                return refs, (f"{method}() cannot be called in {what} (line {node.lineno}): "
                              f"the sandbox refuses it ({why})")
        while isinstance(cur, (jnodes.Getattr, jnodes.Getitem)):
            claimed.add(id(cur))
            if isinstance(cur, jnodes.Getattr):
                chain.append(cur.attr)
            elif isinstance(cur.arg, jnodes.Const):
                chain.append(str(cur.arg.value))
            else:
                chain = []
            cur = cur.node
        if not isinstance(cur, jnodes.Name):
            continue
        claimed.add(id(cur))
        chain.append(cur.name)
        chain.reverse()
        text = "${" + ".".join(chain) + "}"
        if chain[0] in _ROOTS or chain[0] in loops:
            ref = reference_of(text, chain)
            if ref.error:
                ref = Reference(text, "", "", error=f"malformed reference {'.'.join(chain)!r} "
                                "(expected inputs.NAME, steps.STEP_ID.output[.FIELD], vars.NAME,"
                                " constants.NAME or a for_each item)")
            refs.append(dataclasses.replace(ref, method=method) if method else ref)
        elif chain[0] not in ("true", "false", "none", "True", "False", "None") and \
                chain[0] not in local:
            items = f", {', '.join(sorted(loops))}" if loops else ""
            near = difflib.get_close_matches(chain[0], [*_ROOTS, *loops], n=1, cutoff=0.75)
            return refs, (f"unknown name {chain[0]!r} in {what}"
                          + (f" (did you mean {near[0]!r}?)" if near else "")
                          + f": it can read only inputs, steps, vars, constants{items}")
    return refs, ""


# ---------------------------------------------------------------- the checker
class _Checker:
    def __init__(self, loaded: LoadedRoutine, registry: ToolRegistry, partial: bool = False,
                 routines: dict[str, Routine] | None = None):
        self.routine = loaded.routine
        self.smap = loaded.source
        self.registry = registry
        self.partial = partial
        self.routines = routines
        self.flow = Flow.of(self.routine)
        self.dominators = self.flow.dominators()  # (each check reads them: computed once)
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []
        self.guarded = self._guarded()

    def add(self, path: tuple[Any, ...], message: str, expected: str = "") -> None:
        line, col = self.smap.locate(path)
        self.problems.append(Problem(self.smap.file, line, col, message, expected))

    def warn(self, path: tuple[Any, ...], message: str, expected: str = "") -> None:
        line, col = self.smap.locate(path)
        self.warnings.append(Problem(self.smap.file, line, col, message, expected, "warning"))

    def _guarded(self) -> set[tuple[str, tuple[str, ...]]]:
        """What branch conditions test, as (step, field path): ``when: steps.find.output is
        none`` tests ("find", ()); a routine that checks a value for null is not warned
        about it (a test of a field inside it, ``steps.find.output.amount > 5``, is not one)."""
        tested: set[tuple[str, tuple[str, ...]]] = set()
        for step, _ in self.routine.walk():
            for option in step.branch or []:
                if option.when:
                    refs, _ = expression_references(option.when)
                    tested |= {(r.name, tuple(r.path)) for r in refs if r.kind == "steps"}
                    tested |= {(node, tuple(r.path)) for r in refs if r.kind == "vars"
                               for node in self.setters(r.name)}  # (``vars.holder is none``)
        return tested

    def run(self) -> list[Problem]:
        flow = self.flow
        for dup in flow.duplicates:
            self.add(flow.paths[dup] + ("id",), f"duplicate step id {dup.split('#')[0]!r}",
                     "unique step ids")
        for path, target in flow.bad_jumps:
            self.add(path, f"'{path[-1]}' names unknown step {target!r}", "the id of a step")
        self.check_names()
        self.check_inputs()
        if not self.routine.description.strip():
            self.warn(("description",), "the routine's description is empty",
                      "a sentence saying what the routine does (a router chooses by it, and "
                      "the agent lists it when no routine fits a request)")
        if self.routine.name == "none":  # (routine.routing.NONE: spec does not import it)
            self.warn(("name",), "a routine named 'none' cannot be routed to: 'none' is what "
                      "a router answers when no routine fits (routine run --library refuses "
                      "a library with it)", "another name")
        reachable = flow.reachable()
        doms = self.dominators
        for step_id in flow.order:
            step = flow.steps[step_id]
            path = flow.paths[step_id]
            here = doms.get(step_id, set())
            if step_id not in reachable and not flow.bad_jumps:  # (a misnamed jump: said)
                self.add(path, f"step {step_id!r} is unreachable: no path from the first step "
                         "leads to it (it follows a finish step or is jumped over)",
                         "every step to be reachable")
            if step.tool:
                self.check_tool_step(step_id, path, here)
                if isinstance(step.confirm, str):
                    self.check_template(step_id, path + ("confirm",), step.confirm, here)
            elif step.ask is not None:
                self.check_ask(step_id, path, here)
            elif step.compute:
                self.check_compute(step_id, path, here)
            elif step.for_each is not None:
                self.check_for_each(step_id, path, here)
            elif step.handoff:
                self.check_handoff(step_id, path, here)
            for key in ("answer", "message"):
                if getattr(step, key):
                    self.check_template(step_id, path + (key,), getattr(step, key), here)
            options = step.branch or []
            if any(o.when for o in options):
                for n, option in enumerate(options[:-1]):
                    if not option.when:
                        self.add(path + ("branch", n), "an option without 'when' is the "
                                 "'otherwise' case but is not the last option: the options "
                                 "after it could never be chosen",
                                 "'when' on every option, or the 'otherwise' option last")
            for n, option in enumerate(options):
                if option.when:
                    self.check_expression(step_id, path + ("branch", n, "when"), option.when,
                                          here)
            if options and not any(o.when for o in options):
                self.check_choosable(step_id, path)
            self.check_jumps_back(step_id, path)
            self.check_loop_jumps(step_id, path)
        cycle = flow.find_cycle()
        if cycle and not any("jumps back" in p.message for p in self.problems):
            self.add(flow.paths[cycle[-2]], "cycle: " + " -> ".join(cycle),
                     "'next' to jump forward, or max_visits on the step it jumps back to "
                     "(a bounded loop)")
        ends = [s for s in reachable if FELL_OFF in flow.succ.get(s, [])]
        for s in sorted(ends, key=flow.order.index):
            self.add(flow.paths[s], f"the routine can end after step {s!r} without a finish step",
                     "every path to end in a step with 'finish: true'")
        return self.problems

    def check_choosable(self, step_id: str, path: tuple[Any, ...]) -> None:
        """The model decides a branch without ``when`` by calling an option's first tool (or
        answering, for a finish step): an option that begins with another kind of step (an
        ask, a computation, a hand-off, a loop, another branch) could never be chosen."""
        for n, entry in enumerate(self.flow.options.get(step_id, [])):
            first = self.flow.steps.get(entry)
            if first is None or first.tool or first.finish:
                continue
            kind = next((k for k in ("ask", "compute", "handoff", "for_each", "branch")
                         if getattr(first, k, None) not in (None, [], "")), "step")
            self.add(path + ("branch", n), f"option {n + 1} of branch {step_id!r} begins "
                     f"with step {first.id!r} ({'a ' + kind if kind != 'step' else kind}), "
                     "which the model cannot choose: it chooses an option without 'when' "
                     "by calling the option's first tool, or by answering at a finish step",
                     "a 'when' on every option (e.g. over an input an ask step fills), or a "
                     "tool step or finish step first in each option")

    def check_names(self) -> None:
        """Inputs and constants have names a reference and an expression can hold
        (``ship-ref``, ``référence`` or ``container no`` could be declared, then never read:
        ``${inputs.ship-ref}`` is malformed, ``inputs.ship-ref`` a subtraction; computed
        values are checked with their expressions)."""
        named = [(("inputs", n), "input", "inputs") for n in self.routine.inputs]
        named += [(("constants", n), "constant", "constants") for n in self.routine.constants]
        for path, what, root in named:
            if not _NAME.fullmatch(path[-1]):
                self.add(path, f"{what} name {path[-1]!r} cannot be read: ${{{root}.NAME}} and "
                         "expressions take a NAME of letters, digits and _",
                         f"a name such as {_name_like(path[-1])!r} (ASCII letters, digits "
                         "and _, not a digit first)")

    def check_inputs(self) -> None:
        """Each input's enum values and default are of its type, and the default one of
        its enum values: a default the tool then refuses makes every run fail."""
        for name, spec in self.routine.inputs.items():
            path = ("inputs", name)
            for n, value in enumerate(spec.enum or []):
                if not _compatible({value_json_type(value)}, {spec.type}):
                    self.add(path + ("enum", n), f"input {name!r}: enum value {value!r} is "
                             f"{a_type(value_json_type(value))}, not {a_type(spec.type)}",
                             f"{spec.type} values (the input's type)" + _quote_hint(value))
            if spec.default is None:
                continue
            if spec.required and "required" in spec.model_fields_set:  # written, not implied
                self.add(path + ("required",), f"input {name!r} is `required: true` and has a "
                         f"default ({spec.default!r}): a run never asks for it, it takes the "
                         "default when the request does not say",
                         "`required: false` beside the default, or no default if the request "
                         "must always state it")
            if not _compatible({value_json_type(spec.default)}, {spec.type}):
                self.add(path + ("default",), f"input {name!r}: default {spec.default!r} is "
                         f"{a_type(value_json_type(spec.default))}, not {a_type(spec.type)}",
                         f"{a_type(spec.type)} (the input's type)" + _quote_hint(spec.default))
            elif spec.enum is not None and spec.default not in spec.enum:
                self.add(path + ("default",), f"input {name!r}: default {spec.default!r} is "
                         "not one of its enum values", "one of " + ", ".join(
                             repr(v) for v in spec.enum))

    def jumps(self, step_id: str) -> list[tuple[tuple[Any, ...], str]]:
        """A step's jumps: (where below the step, target) of each ``next``, ``on_error``
        and ``on_decline`` that names a step."""
        step = self.flow.steps[step_id]
        jumps = [(("branch", n, "next"), o.next) for n, o in enumerate(step.branch or [])
                 if o.next]
        return jumps + [((key,), getattr(step, key)) for key in ("on_error", "on_decline")
                        if isinstance(getattr(step, key), str)]

    def check_loop_jumps(self, step_id: str, path: tuple[Any, ...]) -> None:
        """A jump stays in its for_each body: out of it the loop never finishes (its
        output and the next item are lost), into it there is no current item."""
        here = self.flow.parent.get(step_id)
        for where, target in self.jumps(step_id):
            there = self.flow.parent.get(target)
            if target not in self.flow.steps or there == here:
                continue
            if here is not None and here not in self.loops_of(target).values():
                way, loop = "out of", here
            else:
                way, loop = "into", there
            self.add(path + where, f"'{where[-1]}' jumps {way} the body of for_each {loop!r} "
                     f"(to step {target!r}): a loop is entered at its for_each step and left "
                     "when its items are done", "a target in the same loop body ('until' on "
                     "the for_each ends the loop early)")

    def check_jumps_back(self, step_id: str, path: tuple[Any, ...]) -> None:
        """A jump to an earlier step (or itself) is a loop: its target needs max_visits."""
        order = self.flow.order
        for where, target in self.jumps(step_id):
            if target in self.flow.steps and order.index(target) <= order.index(step_id) \
                    and self.flow.steps[target].max_visits is None:
                self.add(path + where, f"'{where[-1]}' jumps back to step {target!r}: a loop "
                         "that could run forever", f"max_visits on step {target!r} (how many "
                         "times a run may come to it)")

    def loops_of(self, step_id: str) -> dict[str, str]:
        """The for_each item names in scope at a step: item name -> loop step id."""
        scope: dict[str, str] = {}
        node: str | None = self.flow.parent.get(step_id)
        while node is not None:
            scope.setdefault(self.flow.steps[node].as_, node)
            node = self.flow.parent.get(node)
        return scope

    def check_ask(self, step_id: str, path: tuple[Any, ...], doms: set[str]) -> None:
        step = self.flow.steps[step_id]
        for n, name in enumerate(step.fills):
            if name not in self.routine.inputs:
                self.add(path + ("fills", n), f"'fills' names no input of this routine: {name!r}",
                         f"one of: {', '.join(self.routine.inputs) or '(no inputs declared)'}")
        self.check_template(step_id, path + ("ask",), step.ask or "", doms)

    def check_compute(self, step_id: str, path: tuple[Any, ...], doms: set[str]) -> None:
        for name, spec in (self.flow.steps[step_id].compute or {}).items():
            where = path + ("compute", name)
            if not re.match(ID_PATTERN, name):
                self.add(where, f"{name!r} is not a valid name", "lower_case_with_underscores")
            expression = spec if isinstance(spec, str) else spec.expr
            types = self.check_expression(step_id, where, expression, doms)
            if isinstance(spec, str) or not spec.type:
                continue
            produced = self.computed_types(expression, types)
            accepted = {"number": {"integer", "number"}}.get(spec.type, {spec.type})
            if produced and not produced & accepted:
                self.add(where, f"{name} = {expression} is {'/'.join(sorted(produced))}, but "
                         f"its declared type is {spec.type}: every run would stop here",
                         f"an expression that gives {a_type(spec.type)}")

    def computed_types(self, expression: str, types: dict[str, set[str] | None]) -> set[str]:
        """The JSON types a compute expression gives, where they are known: a bare reference
        (``steps.find.output.total``, ``constants.table``), one over constants alone
        (evaluated now; a text that does not read as a number counts as text), or an
        operation whose result has one type (``a > b``, ``a / b``); else empty."""
        fixed, value = static_value(expression, self.routine.constants)
        if fixed:
            if isinstance(value, str):  # a number's text is taken as the number
                try:
                    float(value)
                    return {"string", "number"}
                except ValueError:
                    return {"string"}
            return {value_json_type(value)}
        tree, _ = parse_when(expression)  # (the expression inside its "{{ (...) }}")
        body = tree.body if tree is not None else []
        if len(body) == 1 and isinstance(body[0], jnodes.Output) and len(body[0].nodes) == 1 \
                and type(body[0].nodes[0]) in _OPERATION_TYPES:
            return set(_OPERATION_TYPES[type(body[0].nodes[0])])
        known = types.get(f"${{{expression.strip()}}}")
        if not known:
            return set()
        found = {t for t in known if t != "null"}
        return found | {"number"} if "string" in found else found  # text may hold a number

    def check_for_each(self, step_id: str, path: tuple[Any, ...], doms: set[str]) -> None:
        step = self.flow.steps[step_id]
        refs = parse_references(step.for_each)
        if len(refs) != 1 or not refs[0].whole:
            self.add(path + ("for_each",), f"for_each needs one reference to a list, not "
                     f"{step.for_each!r}", "e.g. ${steps.get_order.output.items}")
        else:
            types = self.ref_types(step_id, path + ("for_each",), refs[0], doms)
            if types and "array" not in types:
                self.add(path + ("for_each",), f"{refs[0].text} is {'/'.join(sorted(types))}, "
                         "not a list", "a reference to a list")
        if step.as_ in _RESERVED:
            self.add(path + ("as",), f"'as: {step.as_}' names the item with a reserved name: "
                     f"{step.as_!r} already means something in references and expressions",
                     "another name for the item (as: line)")
        if step.until:  # checked after each item: what the body ran by its end is known
            self.check_expression(step_id, path + ("until",), step.until,
                                  self.after_item(step_id, doms),
                                  frozenset({*self.loops_of(step_id), step.as_}))

    def after_item(self, loop: str, doms: set[str]) -> set[str]:
        """What has run when a for_each's ``until`` is checked, after an item: the steps on
        every path through its body (each end of the body leads back to the loop)."""
        every = self.dominators
        ends = [every[node] for node, nexts in self.flow.succ.items()
                if loop in nexts and node in every and self.flow.parent.get(node) == loop]
        return set.intersection(*ends) if ends else doms

    def check_handoff(self, step_id: str, path: tuple[Any, ...], doms: set[str]) -> None:
        step = self.flow.steps[step_id]
        itself = step.handoff == self.routine.name  # (known, though not among the others)
        if self.routines is not None and step.handoff not in self.routines and not itself:
            close = difflib.get_close_matches(step.handoff or "", sorted(self.routines), n=3)
            self.add(path + ("handoff",), f"'handoff' names no known routine: {step.handoff!r}",
                     f"did you mean {', '.join(close)}?" if close else
                     f"one of: {', '.join(sorted(self.routines)) or '(none)'}")
        target = self.routine if itself else (self.routines or {}).get(step.handoff or "")
        if target is not None:  # a required input neither passed nor asked for over there
            asked = {n for s, _ in target.walk() if s.ask is not None for n in s.fills}
            for name, spec in target.inputs.items():
                if spec.required and spec.default is None and name not in step.args and \
                        name not in self.routine.inputs and name not in asked:
                    self.warn(path + ("handoff",), f"routine {step.handoff!r} requires input "
                              f"{name!r}, which this hand-off does not pass and that routine "
                              "does not ask for: unless the user's words state it, it is "
                              "unknown there", f"args: {{{name}: ...}} on this step")
        for arg, value in step.args.items():
            spec = target.inputs.get(arg) if target is not None else None
            if target is not None and spec is None:
                self.add(path + ("args", arg), f"routine {step.handoff!r} has no input {arg!r}",
                         f"one of: {', '.join(target.inputs) or '(no inputs)'}")
            param = None if spec is None else \
                {"type": spec.type, **({"enum": spec.enum} if spec.enum is not None else {})}
            self.check_refs(step_id, path + ("args", arg), value, doms, param,
                            owner=f"routine {step.handoff!r}")

    def check_tool_step(self, step_id: str, path: tuple[Any, ...], doms: set[str]) -> None:
        step = self.flow.steps[step_id]
        assert step.tool is not None
        tool = self.registry.get(step.tool)
        if tool is None and self.partial:  # its toolset failed to load: said once, there
            for arg, value in step.args.items():
                self.check_refs(step_id, path + ("args", arg), value, doms, None)
            return
        if tool is None:
            close = difflib.get_close_matches(step.tool, self.registry.names(), n=3)
            hint = f"did you mean {', '.join(close)}?" if close else \
                f"one of the registered tools ({len(self.registry)} known)"
            self.add(path + ("tool",), f"unknown tool {step.tool!r}", hint)
            for arg, value in step.args.items():
                self.check_refs(step_id, path + ("args", arg), value, doms, None)
            return
        props = tool.parameters.get("properties", {})
        extra = tool.parameters.get("additionalProperties", "properties" not in tool.parameters)
        for arg, value in step.args.items():
            arg_path = path + ("args", arg)
            if arg not in props and extra is not False:  # a free-form tool ({"type": "object"}
                self.check_refs(step_id, arg_path, value, doms,  # of an MCP server): any name
                                extra if isinstance(extra, dict) else None, tool)
                continue
            if arg not in props:
                self.add(arg_path, f"tool {tool.name!r} takes no argument {arg!r}",
                         f"one of: {', '.join(props) or '(no arguments)'}")
                self.check_refs(step_id, arg_path, value, doms, None)
                continue
            before = len(self.problems)
            self.check_refs(step_id, arg_path, value, doms, props[arg], tool)
            if len(self.problems) == before and not parse_references(value):
                self.check_literal(arg_path, arg, value, tool)
            elif len(self.problems) == before and isinstance(value, (dict, list)):
                self.check_structure(step_id, arg_path, value, props[arg], tool, doms)
        for required in tool.parameters.get("required", []):
            if required not in step.args:
                self.add(path + ("args",) if step.args else path + ("tool",),
                         f"required argument {required!r} of tool {tool.name!r} has no source",
                         "a literal, ${inputs.NAME} or ${steps.ID.output...}")

    def check_structure(self, step_id: str, path: tuple[Any, ...], value: Any,
                        schema: dict[str, Any], tool: Tool, doms: set[str]) -> None:
        """A mapping or list built around references, leaf by leaf against the parameter's
        schema (what the tool's own check of a literal does for a structure without any):
        a mapping's required fields, and the type of each reference or literal that fills
        a leaf. The routine fixes the whole structure: the model could not mend it."""
        root = tool.parameters
        where = ".".join(map(str, path[path.index("args") + 1:]))
        alts = _alternatives(schema, root)
        if isinstance(value, dict):
            objects = [a for a in alts if _is_object(a)]
            if len(objects) > 1:  # a union of models (BySku | ByName): the forms it can be
                objects = [a for a in objects if _could_be(value, a)]
                if not objects:
                    forms = [", ".join(a.get("properties", {})) or "no fields" for a in alts
                             if _is_object(a)]
                    self.add(path, f"{where!r} of {tool.name!r} is none of the forms it takes "
                             "(a required field missing, or a field none has)",
                             "the fields of one form: " + " | ".join(forms))
                    return
            if len(objects) != 1:
                return
            props = objects[0].get("properties", {})
            missing = [k for k in objects[0].get("required", []) if k not in value]
            if missing:
                self.add(path, f"{where!r} of {tool.name!r} lacks the required field"
                         f"{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}",
                         f"the fields {', '.join(props)}")
            for key, item in value.items():
                field = _fields_schema(objects[0], key)
                if isinstance(field, dict):
                    self.check_structure(step_id, (*path, key), item, field, tool, doms)
                elif field is False:
                    self.add((*path, key), f"{where!r} of {tool.name!r} has no field {key!r}",
                             f"one of: {', '.join(props)}")
            return
        if isinstance(value, list):
            arrays = [a for a in alts if _is_array(a)]
            fixed = arrays[0].get("prefixItems") if len(arrays) == 1 and \
                arrays[0].get("items", False) is False else None
            if fixed is not None and len(value) != len(fixed):  # tuple[date, date]
                self.add(path, f"{where!r} of {tool.name!r} takes {len(fixed)} items, not "
                         f"{len(value)}", f"a list of {len(fixed)} items")
                return
            for n, item in enumerate(value if len(arrays) == 1 else []):
                self.check_structure(step_id, (*path, n), item,
                                     _item_schema(arrays[0], n) or {}, tool, doms)
            return
        accepted = json_types(schema, root)
        refs = parse_references(value)
        if not refs:
            source = {value_json_type(value)}
        elif len(refs) == 1 and isinstance(value, str) and value == refs[0].text:
            source = self.ref_types(step_id, path, refs[0], doms) or set()
        else:
            source = {"string"}  # text around references
        if not _compatible(source, accepted):
            shown = value if refs else repr(value)
            self.add(path, f"type mismatch: {shown} is {'/'.join(sorted(source))}, but "
                     f"{where!r} of {tool.name!r} takes {'/'.join(sorted(accepted))}",
                     _taking(accepted, schema))
        elif refs and value == refs[0].text:
            self.check_format(path, refs[0], schema, root, f"{where!r} of {tool.name!r}")

    def check_format(self, path: tuple[Any, ...], ref: Reference, param: dict[str, Any],
                     root: dict[str, Any], what: str) -> None:
        """A step's output passed whole as text in one format (a datetime, a UUID) where a
        parameter takes text in another that never reads it (a date, a time): both are
        strings, yet the tool refuses every such value (a date-time is a date only at
        midnight: a warning)."""
        target = self.flow.steps.get(ref.name) if ref.kind == "steps" else None
        tool = self.registry.get(target.tool) if target is not None and target.tool else None
        if tool is None or tool.output_schema is None:
            return
        sub, _ = schema_at(tool.output_schema, ref.path)
        source = _formats(sub, tool.output_schema) if sub is not None else set()
        taken = _formats(param, root)
        if not source or not taken or source & taken or "date" in source and "date-time" \
                in taken:
            return
        said = (f"{ref.text} is text in the format {'/'.join(sorted(source))}, but {what} "
                f"takes the format {'/'.join(sorted(taken))}")
        if source == {"date-time"} and taken == {"date"}:
            self.warn(path, f"{said}: the tool takes a date-time as a date only at midnight",
                      "a date, or a tool that takes a date-time")
        else:
            self.add(path, f"{said}, which never reads it", f"a value in the format "
                     f"{'/'.join(sorted(taken))}")

    def check_literal(self, path: tuple[Any, ...], arg: str, value: Any, tool: Tool) -> None:
        """A literal argument (no reference anywhere in it) as the tool itself would take it:
        a field of a nested model, a list's items, a date (what the schema checks above do
        not reach). The routine fixes the value, so the model could not mend it at run time."""
        error = _literal_error(tool, arg, value)
        if error:
            self.add(path, f"literal {value!r} does not fit argument {arg!r} of "
                     f"{tool.name!r}: {error}", "a value the tool takes (its parameter schema)")

    def check_refs(self, step_id: str, path: tuple[Any, ...], value: Any, doms: set[str],
                   param: dict[str, Any] | None, tool: Tool | None = None,
                   owner: str = "") -> None:
        """An argument's value against the parameter's schema (``owner``: whose parameter,
        for messages; the tool's name by default)."""
        for where, text in _texts(value, path):
            if _JINJA_MARKS.search(text):  # the confirm/ask/message syntax, sent as written
                self.add(where, f"{text!r} would be sent as written: arguments take "
                         "${...} references, not {{ }} templates",
                         "${inputs.NAME} or ${steps.ID.output...} (text around one is kept: "
                         "'review of ${inputs.amount}')")
        refs = parse_references(value)
        root = tool.parameters if tool else param
        owner = owner or repr(tool.name if tool else "?")
        whose = f" of {owner}"
        accepted = json_types(param, root) if param else set()
        if not refs and param is not None:
            literal = value_json_type(value)
            if not _compatible({literal}, accepted):
                self.add(path, f"literal {value!r} is {literal}, but argument "
                         f"{path[-1]!r} of {owner} takes "
                         f"{'/'.join(sorted(accepted))}", _taking(accepted, param))
        if param is not None:
            # (into mappings only beside a reference: a mapping of literals alone gets the
            # tool's own check, with its finer messages)
            maps = "${" in json.dumps(value, default=str)
            for where, item, allowed in _enum_misses(value, param, root or {}, path, maps):
                self.add(where, f"literal {item!r} is not an allowed value",
                         "one of " + ", ".join(repr(v) for v in allowed))
        for ref in refs:
            source = self.ref_types(step_id, path, ref, doms)
            if source is None or param is None:
                continue
            if not isinstance(value, str):
                continue  # nested in a list or mapping: the argument's type is not the ref's
            if not ref.whole:
                source = {"string"}
            if not _compatible(source, accepted):
                self.add(path, f"type mismatch: {ref.text} is {'/'.join(sorted(source))}, but "
                         f"argument {path[-1]!r}{whose} takes {'/'.join(sorted(accepted))}",
                         _taking(accepted, param))
            elif ref.whole:
                self.check_format(path, ref, param, root or {},
                                  f"argument {path[-1]!r} of {owner}")
                if accepted and "null" not in accepted:
                    self.warn_null(path, ref, owner)
            if ref.whole and ref.kind == "inputs" and not ref.path:
                self.check_input_values(path, ref.name, param, root or {}, whose)

    def check_input_values(self, path: tuple[Any, ...], name: str, param: dict[str, Any],
                           root: dict[str, Any], whose: str) -> None:
        """An input passed whole to a parameter with allowed values: each of the input's
        own enum values and its default must be one of them (a request that gives one the
        tool refuses fails the run, and the routine said it was a value to take)."""
        spec = self.routine.inputs.get(name)
        if spec is None:
            return
        given = [*(spec.enum or []), *([spec.default] if spec.default is not None else [])]
        refused, allowed = [], []
        for value in dict.fromkeys(v for v in given if isinstance(v, (str, int, float))):
            for _, item, takes in _enum_misses(value, param, root, path):
                refused.append(item)
                allowed = takes
        if refused:
            self.add(path, f"input {name!r} may be {', '.join(map(repr, refused))} (its enum "
                     f"or default), which argument {path[-1]!r}{whose} does not take",
                     "one of " + ", ".join(repr(v) for v in allowed))

    def warn_null(self, path: tuple[Any, ...], ref: Reference, owner: str) -> None:
        """A step's output that may be null (an ``Optional`` result: nothing found) passed
        whole to an argument that does not take null: the run stops there when it is."""
        if ref.kind == "vars":  # a value some step's output gave it: warn for each such step
            for node, schema in self.setters(ref.name).items():
                step = self.flow.steps[node]
                if step.tool and isinstance(schema, dict):
                    self.warn_null(path, dataclasses.replace(
                        ref, kind="steps", name=node,
                        text=f"{ref.text} (set by step {node!r})"), owner)
            return
        target = self.flow.steps.get(ref.name)
        if ref.kind != "steps" or target is None or not target.tool:
            return
        tool = self.registry.get(target.tool)
        found = _null_along(tool.output_schema, ref.path) if tool and tool.output_schema \
            else None
        if found is not None and (ref.name, found[1]) not in self.guarded:
            where = found[0]
            what = (f"{tool.name!r} returns Optional (None: nothing found)" if where ==
                    "the output" else f"{where} of {tool.name!r} is Optional")
            self.warn(path, f"{ref.text} may be null ({what}), and argument {path[-1]!r} of "
                      f"{owner} does not take null: if it is, the run stops at this step",
                      f"a branch on it first (when: steps.{ref.name}.{where.removeprefix('the ')}"
                      " is none), or a tool that raises when nothing is found")

    def check_template(self, step_id: str, path: tuple[Any, ...], template: str,
                       doms: set[str]) -> None:
        refs, error = template_references(template, frozenset(self.loops_of(step_id)),
                                          f"the {path[-1]} template")
        if error:
            self.add(path, error, "a Jinja template over inputs, steps, vars and constants")
        for ref in refs:
            self.read_types(step_id, path, ref, doms)

    def check_expression(self, step_id: str, path: tuple[Any, ...], expression: str,
                         doms: set[str], loops: frozenset[str] | None = None
                         ) -> dict[str, set[str] | None]:
        loops = frozenset(self.loops_of(step_id)) if loops is None else loops
        refs, error = expression_references(expression, loops)
        error = error or static_problem(expression, self.routine.constants)
        if error:
            self.add(path, error, "a Jinja expression over inputs, steps, vars and constants")
        return {ref.text: self.read_types(step_id, path, ref, doms) for ref in refs}

    def read_types(self, step_id: str, path: tuple[Any, ...], ref: Reference,
                   doms: set[str]) -> set[str] | None:
        """A reference in an expression or template, and the method it calls (if any) on a
        value whose type is known: ``steps.find.output.email.endswith('x')``. Returns the
        reference's types (None when it is wrong, empty when unknown)."""
        types = self.ref_types(step_id, path, ref, doms)
        if not ref.method or not types:
            return types if not ref.method else set()
        kinds = [_PYTHON_TYPES[t] for t in sorted(types) if t in _PYTHON_TYPES]
        if kinds and not any(hasattr(kind, ref.method) for kind in kinds):
            self.add(path, f"{ref.text} is {'/'.join(sorted(types))}, which has no method "
                     f"{ref.method}()", f"a method of {a_type(sorted(types)[0])}, or a filter")
        return set()  # what the method returns: not known

    def ref_types(self, step_id: str, path: tuple[Any, ...], ref: Reference,
                  doms: set[str]) -> set[str] | None:
        """Check one reference; return the JSON types it yields (None on error, set() unknown)."""
        if ref.error:
            self.add(path, ref.error)
            return None
        if ref.kind == "inputs":
            spec = self.routine.inputs.get(ref.name)
            if spec is None:
                self.add(path, f"{ref.text} names no input of this routine",
                         f"one of: {', '.join(self.routine.inputs) or '(no inputs declared)'}")
                return None
            if ref.path and spec.type in ("string", "integer", "number", "boolean"):
                self.add(path, f"{ref.text}: input {ref.name!r} is {a_type(spec.type)} and has "
                         f"no field {ref.path[0]!r}", f"${{inputs.{ref.name}}} itself")
                return None
            if ref.path and spec.type == "array" and not ref.path[0].isdigit():
                self.add(path, f"{ref.text}: input {ref.name!r} is a list; {ref.path[0]!r} is "
                         "not an index", f"an index (inputs.{ref.name}.0), or a for_each")
                return None
            return set() if ref.path else {spec.type}
        if ref.kind == "constants":
            return self.constant_types(path, ref)
        if ref.kind == "vars":
            return self.var_types(step_id, path, ref)
        if ref.kind == "loop":
            return self.item_types(step_id, path, ref, doms)
        return self.step_types(step_id, path, ref, doms)

    def constant_types(self, path: tuple[Any, ...], ref: Reference) -> set[str] | None:
        if ref.name not in self.routine.constants:
            self.add(path, f"{ref.text} names no constant of this routine",
                     f"one of: {', '.join(self.routine.constants) or '(no constants declared)'}")
            return None
        value = value_at(self.routine.constants[ref.name], ref.path)
        if value is MISSING:
            self.add(path, f"{ref.text}: the constant has no {'.'.join(ref.path)!r}",
                     "a key or index the constant has")
            return None
        return {value_json_type(value)}

    def setters(self, name: str) -> dict[str, Any]:
        """The steps that set ``vars.NAME``, with what each gives it (a tool's output schema
        or a compute's declared type)."""
        found: dict[str, Any] = {}
        for node in self.flow.order:
            step = self.flow.steps[node]
            if step.tool and step.output == name:
                tool = self.registry.get(step.tool)
                found[node] = tool.output_schema if tool else None
            elif step.compute and name in step.compute:
                spec = step.compute[name]
                found[node] = {"type": spec.type} if not isinstance(spec, str) and spec.type \
                    else None
        return found

    def var_types(self, step_id: str, path: tuple[Any, ...], ref: Reference) -> set[str] | None:
        setters = self.setters(ref.name)
        if not setters:
            names = sorted({s.output for s in self.flow.steps.values() if s.output}
                           | {n for s in self.flow.steps.values() for n in s.compute or {}})
            self.add(path, f"{ref.text}: no step sets {ref.name!r} (with `output:` or "
                     "`compute`)", f"one of: {', '.join(names) or '(no vars set)'}")
            return None
        before = {s: v for s, v in setters.items() if s != step_id}
        # a loop's `until` is read after each item: a var its body sets on every path is set
        ends_item = "until" in path and bool(set(before) & self.after_item(step_id, set()))
        if not ends_item and not self.flow.covered(set(before), step_id):
            self.add(path, f"{ref.text}: {ref.name!r} may not be set before step {step_id!r} "
                     f"(set by {', '.join(setters)}; some path here runs none of them, or "
                     "its call failed)", f"a step that sets {ref.name!r} on every path to "
                     "this one")
            return None
        types: set[str] = set()
        for schema in before.values():
            if schema is None:
                return set()
            sub, error = schema_at(schema, ref.path)
            if error:
                self.add(path, f"{ref.text}: {error}", f"a field that every setter of "
                         f"{ref.name!r} gives")
                return None
            found = json_types(sub, schema) if sub is not None else set()
            if not found:
                return set()
            types |= found
        return types

    def item_types(self, step_id: str, path: tuple[Any, ...], ref: Reference,
                   doms: set[str]) -> set[str] | None:
        scope = self.loops_of(step_id)
        step = self.flow.steps[step_id]
        if step.for_each is not None and step.as_ == ref.name and "until" in path:
            scope.setdefault(ref.name, step_id)
        loop = scope.get(ref.name)
        if loop is None:
            root = difflib.get_close_matches(ref.name, _ROOTS, n=1, cutoff=0.75)
            hint = f" (did you mean ${{inputs.{ref.name}}}?)" if ref.name in \
                self.routine.inputs else f" (did you mean {root[0]!r}?)" if root else ""
            self.add(path, f"malformed reference {ref.text!r}: {ref.name!r} is no for_each "
                     f"item here{hint}", EXPECTED.removeprefix("expected "))
            return None
        source = parse_references(self.flow.steps[loop].for_each)
        if len(source) != 1 or source[0].kind in ("", "loop") and source[0].name == ref.name:
            return set()
        if source[0].kind == "constants":
            return self.constant_item_types(path, ref, source[0])
        schema = self.source_schema(loop, source[0])
        if schema is None:
            return set()
        items = {"type": "array", "items": schema.get("items", {})} if "items" in schema \
            else None
        sub, error = schema_at(items, ("0", *ref.path)) if items else (None, "")
        if error:
            self.add(path, f"{ref.text}: {error.replace('0', 'the item', 1)}",
                     "a field of the list's items")
            return None
        return json_types(sub, schema) if sub is not None else set()

    def constant_item_types(self, path: tuple[Any, ...], ref: Reference,
                            source: Reference) -> set[str] | None:
        """A loop item's field where the loop goes over a constant: every item is known."""
        items = value_at(self.routine.constants.get(source.name, MISSING), source.path)
        if not isinstance(items, list):
            return set()  # not a list: the for_each check says so
        types: set[str] = set()
        for n, item in enumerate(items):
            value = value_at(item, ref.path)
            if value is MISSING:
                self.add(path, f"{ref.text}: item {n} of {source.text} has no "
                         f"{'.'.join(ref.path)!r}", "a key that every item of the list has")
                return None
            types.add(value_json_type(value))
        return types

    def source_schema(self, loop: str, source: Reference) -> dict[str, Any] | None:
        """The schema of a for_each's list, where the tools' schemas say it."""
        if source.kind == "steps":
            target = self.flow.steps.get(source.name)
            tool = self.registry.get(target.tool) if target is not None and target.tool \
                else None
            if tool is None or tool.output_schema is None:
                return None
            sub, _ = schema_at(tool.output_schema, source.path)
            if sub is None:
                return None
            resolved = _resolve(sub, tool.output_schema) or {}
            if "items" in resolved:
                item = _resolve(resolved["items"], tool.output_schema) or {}
                return {"type": "array", "items": _inline(item, tool.output_schema)}
        return None

    def step_types(self, step_id: str, path: tuple[Any, ...], ref: Reference,
                   doms: set[str]) -> set[str] | None:
        target = self.flow.steps.get(ref.name)
        if target is None:
            self.add(path, f"{ref.text} refers to missing step {ref.name!r}",
                     "the id of an earlier step")
            return None
        order = self.flow.order
        ends_item = "until" in path and step_id in self.loops_of(ref.name).values()
        if order.index(ref.name) >= order.index(step_id) and ref.name not in \
                self.loops_of(step_id).values() and not ends_item:
            self.add(path, f"{ref.text} refers to step {ref.name!r}, which does not run before "
                     f"step {step_id!r}", "a reference to an EARLIER step")
            return None
        if target.for_each is None and self.flow.ran_ok(ref.name) not in doms:
            fallible = self.flow.ran_ok(ref.name) != ref.name
            self.add(path, f"{ref.text}: step {ref.name!r} may not have run before step "
                     f"{step_id!r} (it is on another branch or can be skipped"
                     + (", or its call can fail over or be declined)" if fallible else ")"),
                     "a step that runs on every path to this one (or ${vars.NAME} set on "
                     "every path)")
            return None
        if target.for_each is not None:
            if ref.name in self.loops_of(step_id).values() or ref.name not in doms:
                self.add(path, f"{ref.text}: the loop {ref.name!r} has not finished at step "
                         f"{step_id!r}", "a reference after the loop")
                return None
            return {"array"} if not ref.path else set()
        if not target.tool:
            self.add(path, f"{ref.text}: step {ref.name!r} is a {target.kind} step and has no "
                     "output", "a reference to a tool step (compute values: ${vars.NAME})")
            return None
        tool = self.registry.get(target.tool)
        if tool is None or tool.output_schema is None:
            return set()
        sub, error = schema_at(tool.output_schema, ref.path)
        if error:
            self.add(path, f"{ref.text}: {error}", f"a field of {tool.name!r}'s output")
            return None
        return json_types(sub, tool.output_schema) if sub is not None else set()


def _enum_misses(value: Any, schema: dict[str, Any], root: dict[str, Any],
                 path: tuple[Any, ...], maps: bool = True
                 ) -> list[tuple[tuple[Any, ...], Any, list[Any]]]:
    """Literals outside the values a schema allows, with their paths: through ``anyOf`` /
    ``oneOf`` (``Optional[Literal[...]]``) and into a list's items (``list[Literal[...]]``).
    A literal of another type is left to the type check."""
    if isinstance(value, str) and "${" in value:
        return []
    alts = _alternatives(schema, root)
    closed = [a for a in alts if "enum" in a or "const" in a]
    open_ = [a for a in alts if a not in closed]
    if isinstance(value, list):
        arrays = [a for a in open_ if _is_array(a)]
        if len(arrays) != 1:
            return []
        return [miss for n, item in enumerate(value)
                if isinstance(member := _item_schema(arrays[0], n), dict)
                for miss in _enum_misses(item, member, root, (*path, n), maps)]
    if isinstance(value, dict) and maps:  # a mapping's literal leaves, beside references
        objects = [a for a in open_ if _is_object(a)]
        if len(objects) != 1:
            return []
        return [miss for key, item in value.items()
                if isinstance(field := _fields_schema(objects[0], key), dict)
                for miss in _enum_misses(item, field, root, (*path, key))]
    allowed = [v for a in closed for v in (a["enum"] if "enum" in a else [a["const"]])]
    literal = {value_json_type(value)}
    if not allowed or value in allowed or any(
            _compatible(literal, json_types(a, root)) for a in open_):
        return []
    if not _compatible(literal, {value_json_type(v) for v in allowed}):
        return []  # another type: the type check says so
    return [(path, value, allowed)]


def _inline(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    """A sub-schema with the root's ``$defs`` beside it, so its ``$ref``s still resolve."""
    return {**schema, "$defs": root.get("$defs", {})} if "$defs" in root else schema


def _null_along(schema: dict[str, Any], path: tuple[str, ...]
                ) -> tuple[str, tuple[str, ...]] | None:
    """Where along ``path`` an output schema first admits null: its description (``"the
    output"``, ``"output.address"``) and its field path; None when no level does (or the
    schema does not say)."""
    root, current, walked = schema, schema, ["output"]
    for segment in ("", *path):
        if segment:
            step, _ = schema_at(current, (segment,)) if current is not None else (None, "")
            current = _inline(step, root) if step is not None else None
            walked.append(segment)
        if current is None:
            return None
        if any(a.get("type") == "null" for a in _alternatives(current, root)):
            return ("the output" if len(walked) == 1 else ".".join(walked)), tuple(walked[1:])
    return None


def check_routine(loaded: LoadedRoutine, registry: ToolRegistry, partial: bool = False,
                  routines: dict[str, Routine] | None = None,
                  warnings: list[Problem] | None = None) -> list[Problem]:
    """Every problem of an already-parsed routine against ``registry``.

    ``partial``: some of the routine's toolsets failed to load (a problem already says
    so), so a tool missing from ``registry`` is not reported again at every step.
    ``routines``: the routines a ``handoff`` may name (None: not checked). ``warnings``:
    a list that receives what does not stop the routine from running but may stop a run
    (an Optional output passed where null is not taken), each with severity "warning"."""
    checker = _Checker(loaded, registry, partial, routines)
    # (what reading found and went past first; one mistake that two checks reach, once)
    problems = list(dict.fromkeys([*loaded.problems, *checker.run()]))
    if warnings is not None:
        warnings += [w for w in dict.fromkeys(checker.warnings) if w not in warnings]
    return problems


def _literal_error(tool: Tool, arg: str, value: Any) -> str:
    """Why the tool refuses ``value`` for ``arg`` ("" if it takes it, or cannot say): by its
    argument model, else (a tool known by its JSON schema only, an MCP server's) by the
    schema; "where: what" of the shallowest error."""
    model = getattr(tool, "args_model", None)
    if model is not None:
        try:
            model.model_validate({arg: value})
        except ValidationError as exc:
            errors = [(e["loc"], e["msg"]) for e in exc.errors(include_url=False)
                      if e["loc"] and e["loc"][0] in (arg, _alias(model, arg))]
        else:
            errors = []
    else:
        try:
            import jsonschema  # (comes with the mcp package, as MCP tools do)
        except ImportError:
            return ""
        try:
            checker = jsonschema.Draft202012Validator(tool.parameters)
            errors = [(tuple(e.path), e.message) for e in checker.iter_errors({arg: value})
                      if list(e.path)[:1] == [arg]]
        except Exception:  # noqa: BLE001 - the server's own schema is broken (a dangling
            errors = []  # $ref: jsonschema's referencing error): not this routine's problem
    if not errors:
        return ""
    where, message = min(errors, key=lambda e: len(e[0]))
    return f"{'.'.join(map(str, where))}: {message}"


def _alias(model: Any, name: str) -> str:
    """The field of ``model`` whose alias is ``name`` (the argument as the schema names it)."""
    for field_name, info in model.model_fields.items():
        if info.alias == name:
            return field_name
    return name
