"""The drafting prompt: the routine format, a worked example, the tools, the draft.

Templates are package data (``routine/drafting/templates``), rendered in a sandboxed Jinja
environment with ``StrictUndefined``. The worked example is a help-desk process with its
own three tools: no routine of the project is shown, so a drafted routine never sees the
hand-written routine of the same process (or of any other).

Three messages come from here: the system prompt (the format and the example), the request
(the tools a routine may use and the expert's draft), and a repair request (the last
routine as numbered YAML lines and every problem ``validate`` found).
"""

from __future__ import annotations

from importlib import resources

from jinja2 import PackageLoader, StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ..errors import Problem
from ..spec.typetext import output_fields, type_text
from ..tools.core import Tool, ToolRegistry

__all__ = ["system_prompt", "request_prompt", "repair_prompt", "tool_listing"]

_ENV = ImmutableSandboxedEnvironment(
    loader=PackageLoader("routine.drafting", "templates"), undefined=StrictUndefined,
    trim_blocks=True, lstrip_blocks=True, autoescape=False, auto_reload=False)


def _example(name: str) -> str:
    return resources.files("routine.drafting").joinpath("templates").joinpath(name).read_text(
        encoding="utf-8").strip()


def _tool_text(tool: Tool) -> str:
    parameters = tool.parameters
    required = set(parameters.get("required", []))
    args = ", ".join(f"{name}{'' if name in required else '?'}: {type_text(sub, parameters)}"
                     for name, sub in parameters.get("properties", {}).items())
    output = tool.output_schema
    returns = f" -> {type_text(output, output)}" if output else ""
    lines = [f"{tool.name}({args}){returns}",
             f"    {' '.join(tool.description.strip().split(chr(10) * 2)[0].split())}"]
    fields = output_fields(output)
    if fields:
        lines.append("    returns: " + ", ".join(f"{n}{'' if r else '?'}: {t}"
                                                for n, t, r in fields))
    return "\n".join(lines)


def tool_listing(registry: ToolRegistry) -> str:
    """Each tool as the model sees it: signature, first line of its description, and the
    fields of what it returns (what ``${steps.X.output.FIELD}`` may name)."""
    return "\n".join(_tool_text(tool) for tool in registry)


def system_prompt() -> str:
    """The routine format, the rules and a worked example (a help-desk process)."""
    return _ENV.get_template("system.j2").render(
        example_tools=_example("example_tools.txt"), example_draft=_example("example_draft.md"),
        example_routine=_example("example_routine.json")).strip()


def request_prompt(name: str, draft: str, registry: ToolRegistry,
                   toolsets: list[str] | None = None) -> str:
    """The tools the routine may use and the expert's draft of process ``name``."""
    return _ENV.get_template("request.j2").render(
        name=name, draft=draft.strip(), tools=tool_listing(registry),
        toolsets=toolsets or []).strip()


def repair_prompt(name: str, yaml_text: str | None, problems: list[Problem],
                  cut_off: int | None = None) -> str:
    """The last routine (numbered YAML lines; None: the reply was not a routine) and its
    problems, each with its line; ``cut_off``: the reply ran into this many tokens, the
    limit (it is asked for a shorter routine)."""
    numbered = None
    if yaml_text is not None:
        lines = yaml_text.splitlines()
        width = len(str(len(lines)))
        numbered = "\n".join(f"{n:>{width}} | {line}" for n, line in enumerate(lines, 1))
    shown = [f"line {p.line}: {p.message}" + (f" (expected {p.expected})" if p.expected else "")
             if yaml_text is not None else p.message + (f" (expected {p.expected})"
                                                        if p.expected else "")
             for p in problems]
    return _ENV.get_template("repair.j2").render(name=name, yaml=numbered, problems=shown,
                                                 cut_off=cut_off).strip()
