"""Command-line options generated from the typed records they fill.

``routine run`` takes its run options from :class:`~routine.run.settings.RunSettings`
and ``routine eval`` from :class:`~routine.eval.config.EvalConfig`: names, types,
defaults and help come from the pydantic fields, so a new setting is an option
without copying it by hand, and a value the record rejects is one usage error.

    @app.command()
    @options_from(RunSettings, into="settings", rename={"routine_format": "format"})
    def run(routine: Path, settings: RunSettings) -> None: ...
"""

from __future__ import annotations

import functools
import inspect
import types
import typing
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

import click
import typer
from pydantic import BaseModel, ValidationError

__all__ = ["options_from"]

F = TypeVar("F", bound=Callable[..., Any])


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else annotation), True
    return annotation, False


def _option(name: str, flag: str, field: Any) -> tuple[Any, Any, Callable[[Any], Any]]:
    """(annotation, default, converter) of one generated option."""
    annotation, optional = _unwrap_optional(field.annotation)
    help_text = field.description or ""
    default = field.get_default(call_default_factory=True)
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return Annotated[annotation, typer.Option(f"--{flag}", help=help_text)], default, \
            lambda v: v
    if origin is list:  # comma-separated
        text = ",".join(map(str, default)) if default else None
        return (Annotated[str | None, typer.Option(f"--{flag}", help=help_text
                                                   + " (comma-separated)")],
                text, lambda v: None if v is None else [i.strip() for i in v.split(",")
                                                        if i.strip()])
    if annotation is bool:
        return (Annotated[bool, typer.Option(f"--{flag}/--no-{flag}", help=help_text)],
                default, lambda v: v)
    if optional and annotation is int:  # 0 means "no limit"
        return (Annotated[int, typer.Option(f"--{flag}", help=help_text)],
                0 if default is None else default, lambda v: v or None)
    if optional:
        return (Annotated[annotation | None, typer.Option(f"--{flag}", help=help_text)],
                default, lambda v: v)
    return Annotated[annotation, typer.Option(f"--{flag}", help=help_text)], default, lambda v: v


def _from_command_line(context: Any, param: str) -> bool:
    source = context.get_parameter_source(param)
    return source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT", "PROMPT")


def _read_recipe(path: Any) -> dict[str, Any]:
    from pathlib import Path

    import yaml

    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise click.BadParameter(f"{path}: a recipe is a YAML mapping of settings",
                                 param_hint="--recipe")
    return data


def options_from(model: type[BaseModel], *, into: str, exclude: tuple[str, ...] = (),
                 rename: dict[str, str] | None = None, recipe: str | None = None
                 ) -> Callable[[F], F]:
    """Add one option per field of ``model`` to a typer command; the command receives the
    filled record as its ``into`` parameter. Required fields (and ``exclude``) get no
    option: the command declares them itself (an argument, say), and a declared parameter
    named like a field also fills that field.

    With ``recipe`` (the name of a command parameter holding a YAML file's path), the
    record starts from that file, and only the options given on the command line
    override it."""
    rename = rename or {}

    def decorate(fn: F) -> F:
        signature = inspect.signature(fn)
        hints = typing.get_type_hints(fn, include_extras=True)
        kept = [p.replace(annotation=hints.get(p.name, p.annotation))
                for p in signature.parameters.values() if p.name != into]
        taken = {p.name for p in kept}
        generated: list[inspect.Parameter] = []
        converters: dict[str, tuple[str, Callable[[Any], Any]]] = {}
        for name, field in model.model_fields.items():
            if name in exclude or field.is_required():
                continue
            flag = rename.get(name, name).replace("_", "-")
            param = rename.get(name, name).replace("-", "_")
            if param in taken:
                raise TypeError(f"{fn.__name__}: option {param!r} is defined twice")
            annotation, default, convert = _option(name, flag, field)
            generated.append(inspect.Parameter(param, inspect.Parameter.KEYWORD_ONLY,
                                               default=default, annotation=annotation))
            converters[param] = (name, convert)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            context = kwargs.pop("_options_context", None)
            given = {param for param in converters if context is None
                     or _from_command_line(context, param)}
            values = {field: convert(kwargs.pop(param)) for param, (field, convert)
                      in converters.items() if param in kwargs and param in given}
            for param in converters:
                kwargs.pop(param, None)
            required = {n: kwargs[n] for n in kwargs if n in model.model_fields
                        and n not in converters and n not in exclude
                        and (kwargs[n] is not None or recipe is None)}
            start: dict[str, Any] = {}
            if recipe is not None and kwargs.get(recipe) is not None:
                start = _read_recipe(kwargs[recipe])
            try:
                kwargs[into] = model(**{**start, **required, **values})
            except ValidationError as exc:
                first = exc.errors()[0]
                where = str(first["loc"][0]) if first["loc"] else ""
                flag = rename.get(where, where).replace("_", "-")
                raise click.BadParameter(first["msg"].removeprefix("Value error, "),
                                         param_hint=f"--{flag}") from None  # (our own words)
            return fn(*args, **kwargs)

        parameters = [*kept, *generated]
        if recipe is not None:  # to tell given options from defaults
            parameters.append(inspect.Parameter("_options_context",
                                                inspect.Parameter.KEYWORD_ONLY,
                                                annotation=typer.Context))
        wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=parameters, return_annotation=hints.get("return", None))
        wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
        del wrapper.__wrapped__  # typer must read the new signature, not the function's
        return typing.cast(F, wrapper)

    return decorate
