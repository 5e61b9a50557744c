"""Check a routine against its tools' schemas before anything runs.

Every problem is collected (never just the first) with file:line:column, what
is wrong, and what was expected. Checks: unknown tools; arguments a tool does
not take; required arguments with no source; malformed references; references
to missing inputs, to missing, later or possibly-skipped steps, to steps without
output and to fields the tool's output does not have; type mismatches where
both sides are typed; literals outside an enum; ``when`` expressions;
unreachable steps; cycles; paths that end without a finish step.
"""

from __future__ import annotations

import difflib
from datetime import date, time
from typing import Any

from jinja2 import nodes as jnodes

from ..errors import Problem
from ..tools.core import Tool, ToolRegistry
from .expressions import parse_template, parse_when, static_problem
from .flow import FELL_OFF, Flow
from .loader import LoadedRoutine
from .references import Reference, parse_references

__all__ = ["check_routine", "expression_references", "json_types", "schema_at",
           "template_references"]


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


def json_types(schema: dict[str, Any] | None, root: dict[str, Any] | None = None) -> set[str]:
    """The JSON types a schema admits; empty set means 'anything / unknown'."""
    types: set[str] = set()
    for alt in _alternatives(schema, root or schema or {}):
        t = alt.get("type")
        if t is None:
            if "enum" in alt:
                types |= {_literal_type(v) for v in alt["enum"]}
            elif "const" in alt:
                types.add(_literal_type(alt["const"]))
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
            if alt.get("type") == "array" or "items" in alt:
                if segment.isdigit():
                    nxt = alt.get("items", {})
                    break
                known_fields.append("<index>")
            elif "properties" in alt:
                if segment in alt["properties"]:
                    nxt = alt["properties"][segment]
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


def _literal_type(value: Any) -> str:
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


def _compatible(source: set[str], accepted: set[str]) -> bool:
    if not source or not accepted:
        return True
    if source & accepted:
        return True
    return "integer" in source and "number" in accepted


# ---------------------------------------------------------------- expressions
def expression_references(expression: str) -> tuple[list[Reference], str]:
    """References (``inputs.x``, ``steps.id.output.f``) used in a ``when`` expression.

    Returns (references, syntax error or "")."""
    tree, problem = parse_when(expression)
    if tree is None:
        return [], problem
    return _references(tree, f"expression {expression!r}", set())


def template_references(template: str) -> tuple[list[Reference], str]:
    """References used in an answer template (names its loops and ``set`` bind are local)."""
    tree, problem = parse_template(template)
    if tree is None:
        return [], problem
    local = {"loop"}
    for node in tree.find_all((jnodes.For, jnodes.Assign)):
        for name in node.target.find_all(jnodes.Name) if not isinstance(
                node.target, jnodes.Name) else [node.target]:
            local.add(name.name)
    return _references(tree, "the answer template", local)


def _references(tree: Any, what: str, local: set[str]) -> tuple[list[Reference], str]:
    refs: list[Reference] = []
    claimed: set[int] = set()
    for node in tree.find_all((jnodes.Getattr, jnodes.Getitem, jnodes.Name)):
        if id(node) in claimed:
            continue
        chain: list[str] = []
        cur: Any = node
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
        if chain[0] == "inputs" and len(chain) >= 2:
            refs.append(Reference(text, "inputs", chain[1], tuple(chain[2:]), True))
        elif chain[0] == "steps" and len(chain) >= 3 and chain[2] == "output":
            refs.append(Reference(text, "steps", chain[1], tuple(chain[3:]), True))
        elif chain[0] in ("inputs", "steps"):
            refs.append(Reference(text, "", "", error=f"malformed reference {'.'.join(chain)!r}"
                                  " (expected inputs.NAME or steps.STEP_ID.output[.FIELD])"))
        elif chain[0] not in ("true", "false", "none", "True", "False", "None") and \
                chain[0] not in local:
            return refs, (f"unknown name {chain[0]!r} in {what} "
                          "(expected only inputs.* and steps.*)")
    return refs, ""


# ---------------------------------------------------------------- the checker
class _Checker:
    def __init__(self, loaded: LoadedRoutine, registry: ToolRegistry, partial: bool = False):
        self.routine = loaded.routine
        self.smap = loaded.source
        self.registry = registry
        self.partial = partial
        self.flow = Flow.of(self.routine)
        self.problems: list[Problem] = []

    def add(self, path: tuple[Any, ...], message: str, expected: str = "") -> None:
        line, col = self.smap.locate(path)
        self.problems.append(Problem(self.smap.file, line, col, message, expected))

    def run(self) -> list[Problem]:
        flow = self.flow
        for dup in flow.duplicates:
            self.add(flow.paths[dup] + ("id",), f"duplicate step id {dup.split('#')[0]!r}",
                     "unique step ids")
        for step_id, n, target in flow.bad_jumps:
            self.add(flow.paths[step_id] + ("branch", n, "next"),
                     f"'next' names unknown step {target!r}", "the id of a later step")
        reachable = flow.reachable()
        doms = flow.dominators()
        for step_id in flow.order:
            step = flow.steps[step_id]
            path = flow.paths[step_id]
            if step_id not in reachable:
                self.add(path, f"step {step_id!r} is unreachable: no path from the first step "
                         "leads to it (it follows a finish step or is jumped over)",
                         "every step to be reachable")
            if step.tool:
                self.check_tool_step(step_id, path, doms.get(step_id, set()))
            if step.answer:
                self.check_template(step_id, path + ("answer",), step.answer,
                                    doms.get(step_id, set()))
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
                                          doms.get(step_id, set()))
        cycle = flow.find_cycle()
        if cycle:
            self.add(flow.paths[cycle[-2]], "cycle: " + " -> ".join(cycle),
                     "'next' to jump only forward (routines are acyclic)")
        ends = [s for s in reachable if FELL_OFF in flow.succ.get(s, [])]
        for s in sorted(ends, key=flow.order.index):
            self.add(flow.paths[s], f"the routine can end after step {s!r} without a finish step",
                     "every path to end in a step with 'finish: true'")
        return self.problems

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
        for arg, value in step.args.items():
            arg_path = path + ("args", arg)
            if arg not in props:
                self.add(arg_path, f"tool {tool.name!r} takes no argument {arg!r}",
                         f"one of: {', '.join(props) or '(no arguments)'}")
                self.check_refs(step_id, arg_path, value, doms, None)
                continue
            self.check_refs(step_id, arg_path, value, doms, props[arg], tool)
        for required in tool.parameters.get("required", []):
            if required not in step.args:
                self.add(path + ("args",) if step.args else path + ("tool",),
                         f"required argument {required!r} of tool {tool.name!r} has no source",
                         "a literal, ${inputs.NAME} or ${steps.ID.output...}")

    def check_refs(self, step_id: str, path: tuple[Any, ...], value: Any, doms: set[str],
                   param: dict[str, Any] | None, tool: Tool | None = None) -> None:
        refs = parse_references(value)
        accepted = json_types(param, tool.parameters if tool else None) if param else set()
        if not refs and param is not None:
            literal = _literal_type(value)
            if not _compatible({literal}, accepted):
                self.add(path, f"literal {value!r} is {literal}, but argument "
                         f"{path[-1]!r} of {tool.name if tool else '?'!r} takes "
                         f"{'/'.join(sorted(accepted))}", "/".join(sorted(accepted)))
            enum = (_resolve(param, tool.parameters if tool else {}) or {}).get("enum")
            if enum is not None and value not in enum:
                self.add(path, f"literal {value!r} is not an allowed value",
                         "one of " + ", ".join(repr(v) for v in enum))
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
                         f"argument {path[-1]!r} takes {'/'.join(sorted(accepted))}",
                         "/".join(sorted(accepted)))

    def check_template(self, step_id: str, path: tuple[Any, ...], template: str,
                       doms: set[str]) -> None:
        refs, error = template_references(template)
        if error:
            self.add(path, error, "a Jinja template over inputs.* and steps.*.output")
        for ref in refs:
            self.ref_types(step_id, path, ref, doms)

    def check_expression(self, step_id: str, path: tuple[Any, ...], expression: str,
                         doms: set[str]) -> None:
        refs, error = expression_references(expression)
        error = error or static_problem(expression)
        if error:
            self.add(path, error, "a Jinja expression over inputs.* and steps.*.output")
        for ref in refs:
            self.ref_types(step_id, path, ref, doms)

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
            return set() if ref.path else {spec.type}
        target = self.flow.steps.get(ref.name)
        if target is None:
            self.add(path, f"{ref.text} refers to missing step {ref.name!r}",
                     "the id of an earlier step")
            return None
        order = self.flow.order
        if order.index(ref.name) >= order.index(step_id):
            self.add(path, f"{ref.text} refers to step {ref.name!r}, which does not run before "
                     f"step {step_id!r}", "a reference to an EARLIER step")
            return None
        if ref.name not in doms:
            self.add(path, f"{ref.text}: step {ref.name!r} may not have run before step "
                     f"{step_id!r} (it is on another branch or can be skipped)",
                     "a step that runs on every path to this one")
            return None
        if not target.tool:
            self.add(path, f"{ref.text}: step {ref.name!r} is a {target.kind} step and has no "
                     "output", "a reference to a tool step")
            return None
        tool = self.registry.get(target.tool)
        if tool is None or tool.output_schema is None:
            return set()
        sub, error = schema_at(tool.output_schema, ref.path)
        if error:
            self.add(path, f"{ref.text}: {error}", f"a field of {tool.name!r}'s output")
            return None
        return json_types(sub, tool.output_schema) if sub is not None else set()


def check_routine(loaded: LoadedRoutine, registry: ToolRegistry, partial: bool = False
                  ) -> list[Problem]:
    """Every problem of an already-parsed routine against ``registry``.

    ``partial``: some of the routine's toolsets failed to load (a problem already says
    so), so a tool missing from ``registry`` is not reported again at every step."""
    return _Checker(loaded, registry, partial).run()
