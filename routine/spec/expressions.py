"""``when`` expressions: Jinja expressions in a sandbox whose time and memory are bounded.

A routine file comes from elsewhere, so its expressions must not be able to hang or
exhaust a run. Jinja's immutable sandbox already forbids attribute tricks and caps
``range`` at 100,000 items; this environment also

* intercepts ``**`` and ``*`` (and ``%`` on strings), refusing results that would be
  larger than :data:`MAX_BITS` bits or :data:`MAX_ITEMS` items — before computing
  them, and before Jinja's compiler folds constants (it does not fold intercepted
  operators), so ``(9 ** (9 ** 8)) > 0`` fails at once instead of hanging;
* keeps only filters that cannot inflate their input (no ``center``, ``indent``,
  ``format``, ``replace``, ``wordwrap``) and refuses the padding string methods;
* refuses expressions longer than :data:`MAX_CHARS` or nested past Python's
  recursion limit, as a problem of the routine, not a RecursionError;
* refuses templates that read other templates (``{% include %}``, ``{% import %}``,
  ``{% extends %}``): there are none to read.

A value an expression reads and the run does not have raises ``UndefinedError``, even
as the whole expression: it never becomes None (a branch the executor cannot decide).
"""

from __future__ import annotations

import contextvars
import difflib
import functools
import re
import string
from collections.abc import Callable
from typing import Any

import jinja2
from jinja2 import StrictUndefined
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment, modifies_known_mutable

__all__ = ["static_value", "BoundedEnvironment", "ENV", "MAX_BITS", "MAX_CHARS", "MAX_ITEMS",
           "MAX_TEMPLATE_CHARS", "compile_when", "parse_template", "parse_when",
           "refused_method", "render_facts", "render_template", "static_problem"]

MAX_BITS = 4096        # an integer result of ** or *
MAX_ITEMS = 100_000    # a string or list built by * (Jinja's range cap, too)
MAX_CHARS = 2_000      # the text of one expression
MAX_TEMPLATE_CHARS = 4_000   # the text of an answer template
MAX_RENDERED = 20_000        # what one template may produce
MAX_FORMAT = 200             # a width or precision in str.format

_FILTERS = {"abs", "capitalize", "count", "d", "default", "dictsort", "first", "float",
            "int", "items", "join", "last", "length", "list", "lower", "map", "max", "min",
            "reject", "rejectattr", "reverse", "round", "select", "selectattr", "sort",
            "string", "sum", "title", "trim", "truncate", "unique", "upper", "wordcount"}
_PADDING = {"center", "ljust", "rjust", "zfill", "expandtabs", "replace", "join"}


def refused_method(name: str) -> str:
    """Why the sandbox refuses to call ``.name()`` on a value, whatever its type ("" if it
    allows it on the types that have it): what :meth:`BoundedEnvironment.is_safe_attribute`
    decides at run time, for ``validate`` to say before."""
    if name.startswith("_"):
        return "names starting with '_' are internal"
    if name in _PADDING:
        return "it could make text grow without bound"
    if any(modifies_known_mutable(empty, name) for empty in ([], {}, set())):
        return "it would change a value, and values are read-only"
    return ""


def _size(value: Any) -> int | None:
    return len(value) if isinstance(value, (str, bytes, list, tuple)) else None


@jinja2.pass_environment
def _bounded_sum(environment: Any, iterable: Any, attribute: Any = None,
                 start: Any = 0) -> Any:
    """Jinja's ``sum``, in linear time and refusing a list or text longer than
    :data:`MAX_ITEMS`: ``sum(start=[])`` over 1,500 lists of 1,500 copied its growing
    result once per item (minutes of one core), and could build gigabytes."""
    items = list(iterable)
    if attribute is not None:
        getter = jinja2.filters.make_attrgetter(environment, attribute)
        items = [getter(item) for item in items]
    if not isinstance(start, (list, tuple, str)) and not any(
            isinstance(item, (list, tuple, str)) for item in items):
        return sum(items, start)
    total = [*start] if isinstance(start, (list, tuple)) else None
    if total is None:
        raise SecurityError("sum adds numbers; lists are joined with sum(start=[])")
    for item in items:
        if not isinstance(item, (list, tuple)):
            raise SecurityError(f"sum(start=[]) joins lists, not {type(item).__name__}")
        if len(total) + len(item) > MAX_ITEMS:
            raise SecurityError(f"sum builds a list of more than {MAX_ITEMS:,} items")
        total.extend(item)
    return total


@jinja2.pass_eval_context
def _bounded_join(eval_context: Any, value: Any, d: str = "", attribute: Any = None) -> str:
    """Jinja's ``join``, refusing a text longer than :data:`MAX_ITEMS` characters before
    building it (99,999 strings of 99,999 characters were 10 GB)."""
    items = list(value)
    if attribute is not None:
        getter = jinja2.filters.make_attrgetter(eval_context.environment, attribute)
        items = [getter(item) for item in items]
    size = sum(len(item) if isinstance(item, str) else 24 for item in items) + \
        len(str(d)) * max(len(items) - 1, 0)
    if size > MAX_ITEMS:
        raise SecurityError(f"join builds a text of more than {MAX_ITEMS:,} characters")
    return jinja2.filters.do_join(eval_context, items, d)


_NO_DEFAULT = object()


def _strict(convert: Callable[..., Any], kind: str) -> Callable[..., Any]:
    """Jinja's ``int``/``float`` filter, raising on text that is not a number instead of
    giving 0 (``"abc" | int`` filed a claim of 0); ``default=`` still gives a fallback."""
    def strict(value: Any, default: Any = _NO_DEFAULT, *args: Any) -> Any:
        result = convert(value, None, *args)
        if result is None:
            if default is not _NO_DEFAULT:
                return default
            raise ValueError(f"{value!r} is not {kind} (give the filter a default= to "
                             "use one instead)")
        return result
    return strict


class BoundedEnvironment(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox with arithmetic and filters that cannot blow up."""

    intercepted_binops = frozenset({"**", "*", "%", "+"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.filters = {k: v for k, v in self.filters.items() if k in _FILTERS}
        self.filters["sum"], self.filters["join"] = _bounded_sum, _bounded_join
        self.filters["int"] = _strict(jinja2.filters.do_int, "an integer")
        self.filters["float"] = _strict(jinja2.filters.do_float, "a number")
        self.filters["spaced"] = lambda value: str(value).replace("_", " ")  # in_progress

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            if isinstance(left, int) and isinstance(right, int) and right > 0 \
                    and abs(left) > 1 and left.bit_length() * right > MAX_BITS:
                raise SecurityError(f"{left} ** {right} is too large (more than {MAX_BITS} "
                                    "bits)")
        elif operator == "*":
            for sequence, times in ((left, right), (right, left)):
                size = _size(sequence)
                if size is not None and isinstance(times, int) and size * times > MAX_ITEMS:
                    raise SecurityError(f"repeating {size} items {times} times is too large "
                                        f"(more than {MAX_ITEMS:,})")
            if isinstance(left, int) and isinstance(right, int) and \
                    left.bit_length() + right.bit_length() > MAX_BITS:
                raise SecurityError(f"a product of more than {MAX_BITS} bits")
        elif operator == "+":
            sizes = (_size(left), _size(right))
            if None not in sizes and sum(sizes) > MAX_ITEMS:  # type: ignore[arg-type]
                raise SecurityError(f"joining {sizes[0]:,} and {sizes[1]:,} items is too "
                                    f"large (more than {MAX_ITEMS:,})")
        elif operator == "%" and isinstance(left, (str, bytes)):
            raise SecurityError("string formatting with % is not allowed in expressions")
        return super().call_binop(context, operator, left, right)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """``"{:.2f}".format(x)`` (money shown with its cents), through Jinja's sandboxed
        formatter, with widths and precisions of at most :data:`MAX_FORMAT`: ``"{:>9999999}"``
        built ten megabytes."""
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        template = getattr(value, "__self__", "")

        def bounded(*args: Any, **kwargs: Any) -> str:
            for _, _, spec, _ in string.Formatter().parse(str(template)):
                if spec and ("{" in spec or any(int(n) > MAX_FORMAT for n in
                                                re.findall(r"\d+", spec))):
                    raise SecurityError(f"format spec {spec!r}: widths and precisions of at "
                                        f"most {MAX_FORMAT}, written out")
            return wrapped(*args, **kwargs)

        return bounded

    def getattr(self, obj: Any, attribute: str) -> Any:
        """``steps.update.output``: a key of the data first (a step may be called ``update``
        or ``items``), a dict method never."""
        if isinstance(obj, dict) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if isinstance(obj, (str, bytes)) and attr in _PADDING:
            return False
        return bool(super().is_safe_attribute(obj, attr, value))


ENV = BoundedEnvironment(undefined=StrictUndefined, finalize=lambda value: _finalize(value))


def parse_when(expression: str) -> tuple[jinja2.nodes.Template | None, str]:
    """(the parsed expression, "") or (None, why it is refused)."""
    if len(expression) > MAX_CHARS:
        return None, f"the expression has {len(expression):,} characters (at most {MAX_CHARS:,})"
    try:
        tree = ENV.parse("{{ (" + expression + ") }}")
    except jinja2.TemplateSyntaxError as exc:
        message = exc.message
        try:  # the parentheses added above are not the author's: say what they wrote
            ENV.parse("{{ " + expression + " }}")
        except jinja2.TemplateSyntaxError as bare:
            message = bare.message
        except RecursionError:
            pass
        if "${" in expression:  # an argument's reference syntax, in an expression
            bare = re.sub(r"\$\{\s*([^{}]*?)\s*\}", r"\1", expression)
            message += f"; an expression reads values without ${{ }}: {bare!r}"
        return None, f"invalid expression {expression!r}: {message}"
    except RecursionError:
        return None, "the expression nests too deeply"
    if unknown := unknown_filters_and_tests(tree) or private_attributes(tree):
        return None, f"invalid expression {expression!r}: {unknown.replace(' (line 1)', '')}"
    return tree, ""


@functools.lru_cache(maxsize=512)
def compile_when(expression: str) -> Callable[..., Any]:
    """The expression as a function of ``inputs`` and ``steps`` (cached by its text).
    Raises ValueError for an expression :func:`parse_when` refuses.

    A value the scope lacks raises ``jinja2.UndefinedError``, also when it is the whole
    expression (``when: inputs.urgent`` with urgent not known): it never turns into None,
    which a branch would read as false and a compute would keep as a value."""
    tree, problem = parse_when(expression)
    if tree is None:
        raise ValueError(problem)
    try:
        compiled = ENV.compile_expression(expression, undefined_to_none=False)
    except RecursionError:
        raise ValueError("the expression nests too deeply") from None

    def evaluate(**scope: Any) -> Any:
        value = compiled(**scope)
        if isinstance(value, jinja2.Undefined):
            value._fail_with_undefined_error()
        return value

    return evaluate


_FIXED_NAMES = {"true", "false", "none", "True", "False", "None", "constants"}


def static_problem(expression: str, constants: dict[str, Any] | None = None) -> str:
    """Why an expression cannot work whatever the run's values ("" if it may): a filter that
    does not exist, or a constant part the sandbox refuses (``9 ** 9 ** 9``). It is
    evaluated once with the routine's ``constants`` and no inputs or step outputs; needing
    one of those is fine. One that reads nothing else must work now: it is what every run
    computes (``100 / constants.seats`` with seats 0, ``"a" + 1``)."""
    try:
        function = compile_when(expression)
        tree, _ = parse_when(expression)
    except (ValueError, jinja2.TemplateError) as exc:
        return f"invalid expression {expression!r}: {exc}"
    fixed = tree is not None and all(node.name in _FIXED_NAMES
                                     for node in tree.find_all(jinja2.nodes.Name))
    try:
        function(inputs={}, steps={}, constants=dict(constants or {}))
    except (SecurityError, OverflowError, MemoryError, RecursionError) as exc:
        return f"expression {expression!r} is refused: {exc or type(exc).__name__}"
    except jinja2.UndefinedError:
        pass  # a value of the run, or a constant the routine lacks (said on its own)
    except Exception as exc:  # noqa: BLE001 - fails in every run if it reads only constants
        if fixed:
            return f"expression {expression!r} fails in every run: {type(exc).__name__}: {exc}"
    return ""


def static_value(expression: str, constants: dict[str, Any] | None = None) -> tuple[bool, Any]:
    """``(True, value)`` for an expression that reads nothing but literals and constants
    (what every run computes), evaluated now; ``(False, None)`` otherwise or if it fails."""
    try:
        tree, _ = parse_when(expression)
        if tree is None or not all(node.name in _FIXED_NAMES
                                   for node in tree.find_all(jinja2.nodes.Name)):
            return False, None
        return True, compile_when(expression)(inputs={}, steps={},
                                              constants=dict(constants or {}))
    except Exception:  # noqa: BLE001 - static_problem says why it fails
        return False, None


def parse_template(template: str) -> tuple[jinja2.nodes.Template | None, str]:
    """(the parsed answer template, "") or (None, why it is refused)."""
    if len(template) > MAX_TEMPLATE_CHARS:
        return None, (f"the template has {len(template):,} characters "
                      f"(at most {MAX_TEMPLATE_CHARS:,})")
    try:
        tree = ENV.parse(template)
    except jinja2.TemplateSyntaxError as exc:
        return None, f"invalid template: {exc.message} (line {exc.lineno})"
    except RecursionError:
        return None, "the template nests too deeply"
    if unknown := unknown_filters_and_tests(tree) or private_attributes(tree) \
            or other_templates(tree):
        return None, f"invalid template: {unknown}"
    return tree, ""


def other_templates(tree: jinja2.nodes.Node) -> str:
    """Why a template reads another template ("" if it does not): ``{% include %}``,
    ``{% import %}`` and ``{% extends %}`` need files, and routine templates have none."""
    for node in tree.find_all((jinja2.nodes.Include, jinja2.nodes.Import,
                               jinja2.nodes.FromImport, jinja2.nodes.Extends)):
        tag = {"Include": "include", "Import": "import", "FromImport": "from ... import",
               "Extends": "extends"}[type(node).__name__]
        return (f"{{% {tag} %}} cannot be used (line {node.lineno}): a routine's template "
                "is self-contained and reads no other template")
    return ""


def private_attributes(tree: jinja2.nodes.Node) -> str:
    """Why a parsed template or expression reads a name starting with ``_`` ("" if it
    does not): the sandbox refuses those at run time (``''.__class__``), where a refused
    answer template silently lost its facts check."""
    for node in tree.find_all((jinja2.nodes.Getattr, jinja2.nodes.Getitem)):
        name = node.attr if isinstance(node, jinja2.nodes.Getattr) else \
            node.arg.value if isinstance(node.arg, jinja2.nodes.Const) else None
        if isinstance(name, str) and name.startswith("_"):
            return (f"{name!r} cannot be read (line {node.lineno}): names starting with '_' "
                    "are internal and the sandbox refuses them")
    return ""


# tests written as other languages name them (``x is not null``): Jinja's own name
_TEST_NAMES = {"null": "none", "nil": "none", "None": "none", "True": "true",
               "False": "false"}


def unknown_filters_and_tests(tree: jinja2.nodes.Node) -> str:
    """Why a parsed template or expression names a filter or test the sandbox lacks ("" if
    it does not). Jinja reports one inside ``{% if %}`` only when that branch renders, so
    a routine would pass validation and then fail in a run."""
    for node in tree.find_all((jinja2.nodes.Filter, jinja2.nodes.Test)):
        kind, known = (("filter", ENV.filters) if isinstance(node, jinja2.nodes.Filter)
                       else ("test", ENV.tests))
        if node.name not in known:
            near = [_TEST_NAMES[node.name]] if kind == "test" and node.name in _TEST_NAMES \
                else difflib.get_close_matches(node.name, list(known), n=1)
            return (f"No {kind} named {node.name!r} (line {node.lineno})"
                    + (f"; did you mean {near[0]!r}?" if near else ""))
    return ""


@functools.lru_cache(maxsize=256)
def _compiled_template(template: str) -> jinja2.Template:
    tree, problem = parse_template(template)
    if tree is None:
        raise ValueError(problem)
    return ENV.from_string(template)


_SHOWN: contextvars.ContextVar[list[Any] | None] = contextvars.ContextVar("shown", default=None)


def _finalize(value: Any) -> Any:
    shown = _SHOWN.get()
    if shown is not None:
        shown.append(value)
    return value


def render_template(template: str, **scope: Any) -> str:
    """The template rendered in the bounded sandbox over ``scope`` (inputs, steps, vars,
    constants, loop items; at most MAX_RENDERED characters); raises on a value it needs
    and does not have (``StrictUndefined``)."""
    return render_facts(template, **scope)[0]


def render_facts(template: str, **scope: Any) -> tuple[str, list[Any]]:
    """(the rendered template, the values its ``{{ }}`` placed: the facts themselves)."""
    shown: list[Any] = []
    token = _SHOWN.set(shown)
    try:
        text = _compiled_template(template).render(**scope)
    finally:
        _SHOWN.reset(token)
    return text[:MAX_RENDERED].strip(), shown
