"""Check :mod:`routine.eval.scoring` against BFCL's own AST checker.

`bfcl-eval <https://github.com/ShishirPatil/gorilla>`_ ships both its test data and the
checker that grades a model's calls. This module replays BFCL's simple / multiple /
parallel / parallel_multiple cases through both graders: the correct answer built from
the possible answers (``correct``); variants of it that BFCL accepts or rejects by its
own rules (``optional_omitted``: optional arguments left out, ``alt_value``: other
acceptable values, ``reformatted``: a string that differs only in case and punctuation,
``int_for_float``, ``float_for_int``, ``empty_optional``: ``""``/``[]``/``{}`` for an
argument that may be left out, ``shuffled``: parallel calls reordered); and broken ones
(``wrong_value``, ``wrong_type``, ``missing_arg``, ``extra_arg``: an invented argument,
``unlisted_arg``: a real parameter that the answer doesn't list, ``wrong_function``,
and for parallel cases ``drop_call`` and ``duplicate_call``). The two verdicts must agree.

bfcl-eval is an optional extra: nothing else in Routine imports this module, and
:func:`bfcl_available` says whether it can run. Its package may be installed without
its (very large) dependencies; see :func:`_ast_checker` for how that is handled.

Run ``python -m routine.eval.bfcl`` for the agreement on every case of the four categories.
"""

from __future__ import annotations

import copy
import functools
import importlib
import json
import random
import sys
import types
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from .scoring import OPTIONAL, CallScore, ExpectedCall, score_calls, standardize

__all__ = ["CATEGORIES", "MODEL_NAME", "bfcl_available", "load_cases", "to_expected", "to_schemas",
           "ordered", "correct_output", "perturb", "bfcl_verdict", "our_verdict", "agreement",
           "main"]

CATEGORIES = ("simple_python", "multiple", "parallel", "parallel_multiple")

#: The model name handed to BFCL's checker. Its only use there is
#: ``MODEL_CONFIG_MAPPING[model_name.replace("_", "/")].underscore_to_dot`` (in
#: ``convert_func_name``), so it has no underscore and maps to a config that keeps dotted
#: function names (``math.factorial``) as they are — our outputs use the names as given.
MODEL_NAME = "routine"

Call = tuple[str, dict[str, Any]]


@dataclass(frozen=True)
class _ModelConfig:
    """The one field of bfcl_eval's ``ModelConfig`` that the AST checker reads."""

    underscore_to_dot: bool = False


@functools.lru_cache(maxsize=1)
def _ast_checker() -> types.ModuleType:
    """Import ``bfcl_eval.eval_checker.ast_eval.ast_checker``.

    That module imports ``bfcl_eval.constants.model_config``, which imports every model
    handler of the leaderboard (anthropic, mistralai, google-genai, ...): with bfcl-eval
    installed without its dependencies (as Routine's optional extra allows) the import
    fails. The checker only reads ``MODEL_CONFIG_MAPPING[...].underscore_to_dot``, so when
    the real module can't be imported a stub providing that mapping (one entry, for
    :data:`MODEL_NAME`) stands in for it while the checker is imported, and is removed from
    ``sys.modules`` afterwards (the checker keeps its own reference). With the real module
    available, :data:`MODEL_NAME` is added to its mapping instead.
    """
    config_name = "bfcl_eval.constants.model_config"
    checker_name = "bfcl_eval.eval_checker.ast_eval.ast_checker"
    try:
        config = importlib.import_module(config_name)
    except Exception:  # ImportError, or a handler that fails on import without its SDK
        stub = types.ModuleType(config_name)
        stub.__doc__ = "Stand-in installed by routine.eval.bfcl (the real module needs every model SDK)."
        stub.MODEL_CONFIG_MAPPING = {MODEL_NAME: _ModelConfig()}  # type: ignore[attr-defined]
        previous = sys.modules.get(config_name)
        sys.modules[config_name] = stub
        try:
            return importlib.import_module(checker_name)
        finally:
            if previous is None:
                sys.modules.pop(config_name, None)
            else:  # pragma: no cover
                sys.modules[config_name] = previous
    config.MODEL_CONFIG_MAPPING.setdefault(MODEL_NAME, _ModelConfig())
    return importlib.import_module(checker_name)


def bfcl_available() -> bool:
    """Whether bfcl-eval (its checker and its data) can be used."""
    try:
        _ast_checker()
        return _data_file("simple_python").is_file()
    except Exception:
        return False


def _data_file(category: str, answers: bool = False) -> Any:
    from importlib.resources import files

    base = files("bfcl_eval") / "data"
    if answers:
        base = base / "possible_answer"
    return base / f"BFCL_v4_{category}.json"


def _read_jsonl(resource: Any) -> list[dict[str, Any]]:
    return [json.loads(line) for line in resource.read_text(encoding="utf-8").splitlines()
            if line.strip()]


def load_cases(categories: tuple[str, ...] | list[str] = CATEGORIES) -> list[dict[str, Any]]:
    """BFCL's cases with their possible answers: dicts with ``id``, ``category``,
    ``functions`` (the function docs) and ``ground_truth`` (a list of
    ``{function: {parameter: [acceptable values]}}``)."""
    cases = []
    for category in categories:
        answers = {row["id"]: row["ground_truth"] for row in _read_jsonl(_data_file(category, True))}
        for row in _read_jsonl(_data_file(category)):
            cases.append({"id": row["id"], "category": category, "functions": row["function"],
                          "ground_truth": answers[row["id"]]})
    return cases


# --- case -> our scorer's inputs ----------------------------------------------------------

def to_expected(case: dict[str, Any]) -> list[ExpectedCall]:
    """The gold calls: BFCL's possible answers are already lists of acceptable values, with
    ``""`` (our :data:`OPTIONAL`) for 'may be left out'."""
    return [ExpectedCall(name, dict(arguments))
            for call in case["ground_truth"] for name, arguments in call.items()]


def to_schemas(case: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each function's parameters schema (BFCL's ``"type": "dict"`` objects; our scorer
    knows BFCL's type names)."""
    return {f["name"]: f.get("parameters", {}) for f in case["functions"]}


def ordered(case: dict[str, Any]) -> bool:
    """BFCL's category semantics. ``parallel*``: calls matched in any order, the count must
    agree; ``multiple`` and simple: exactly one call, checked against the one expected
    function. All of these are 'unordered' for :func:`score_calls` (with one expected call
    the order is moot)."""
    return False


def our_verdict(case: dict[str, Any], output: list[Call]) -> CallScore:
    """Our scorer on a model output (a list of ``(name, arguments)``)."""
    return score_calls(output, to_expected(case), to_schemas(case), ordered=ordered(case))


def bfcl_verdict(case: dict[str, Any], output: list[Call]) -> dict[str, Any]:
    """BFCL's AST checker on the same output; its result dict (``valid``, ``error``...).
    An exception inside the checker is reported as invalid, with the exception as error."""
    checker = _ast_checker()
    from bfcl_eval.constants.enums import Language

    model_output = [{name: copy.deepcopy(arguments)} for name, arguments in output]
    try:
        return checker.ast_checker(case["functions"], model_output,
                                   copy.deepcopy(case["ground_truth"]), Language.PYTHON,
                                   case["category"], MODEL_NAME)
    except Exception as exc:  # a crash of the checker is a failed check for the leaderboard
        return {"valid": False, "error": [f"checker raised {exc!r}"], "error_type": "exception"}


# --- generated outputs -------------------------------------------------------------------

_WORDS = ("london", "blue", "seven", "other", "quartz", "delta", "maple", "orbit")
_DROP = object()  # in perturb's edits: remove the argument
_EMPTY: dict[str, Any] = {"string": "", "array": [], "tuple": [], "dict": {}}


def _first(possible: list[Any]) -> Any:
    return next(v for v in possible if v != OPTIONAL)


def _has_value(possible: list[Any]) -> bool:
    return any(v != OPTIONAL for v in possible)


def _concrete(value: Any, prop: dict[str, Any]) -> Any:
    """A model value for one acceptable value: dicts (and lists of dicts) of BFCL's possible
    answers hold lists of acceptable values per key; take the first of each."""
    def one(d: dict[str, Any]) -> dict[str, Any]:
        return {k: _first(vs) for k, vs in d.items() if isinstance(vs, list) and _has_value(vs)}

    kind = prop.get("type")
    if kind == "dict" and isinstance(value, dict):
        return one(value)
    if kind in ("array", "tuple") and (prop.get("items") or {}).get("type") == "dict" \
            and isinstance(value, list):
        return [one(v) if isinstance(v, dict) else v for v in value]
    return copy.deepcopy(value)


def correct_output(case: dict[str, Any], pick: int = 0) -> list[Call]:
    """The answer built from the possible answers: for each argument its first acceptable
    value (``pick=-1``: its last), arguments whose only acceptable value is ``""`` left out."""
    schemas = to_schemas(case)
    output = []
    for call in case["ground_truth"]:
        for name, arguments in call.items():
            props = schemas.get(name, {}).get("properties", {})
            args = {}
            for param, possible in arguments.items():
                values = [v for v in possible if v != OPTIONAL]
                if param not in props and OPTIONAL in possible:
                    continue  # a few answers list a parameter the function doesn't have
                if values:
                    args[param] = _concrete(values[pick], props.get(param, {}))
            output.append((name, args))
    return output


def _wrong_value(value: Any, possible: list[Any], rng: random.Random) -> Any:
    """Another value of the same type."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + rng.randint(1, 9) * rng.choice((1, -1))
    if isinstance(value, float):
        return round(value + rng.choice((0.5, 1.5, 10.0, -3.0)), 3)
    if isinstance(value, str):
        taken = {standardize(p) for p in possible if isinstance(p, str)}
        words = value.split()
        for _ in range(10):
            if len(words) > 1:
                altered = list(words)
                altered[rng.randrange(len(words))] = rng.choice(_WORDS)
                candidate = " ".join(altered)
            else:
                candidate = rng.choice(_WORDS)
            if standardize(candidate) not in taken:
                return candidate
        return value + " " + rng.choice(_WORDS)
    if isinstance(value, list):
        if len(value) > 1 and len({json.dumps(v, sort_keys=True) for v in value}) > 1:
            swapped = list(value)
            while swapped == value:
                i, j = rng.sample(range(len(value)), 2)
                swapped[i], swapped[j] = swapped[j], swapped[i]
            return swapped
        if value:
            return [_wrong_value(v, [], rng) for v in value]
        return [rng.choice(_WORDS)]
    if isinstance(value, dict):
        if not value:
            return {rng.choice(_WORDS): 1}
        key = rng.choice(sorted(value))
        return {**value, key: _wrong_value(value[key], [], rng)}
    return rng.choice(_WORDS)  # None


def _wrong_type(value: Any) -> Any:
    """The same value with another type: numbers and booleans as strings, a numeric string
    as a number (any other string as a one-item list), a list or dict as a string."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return [value]
        return int(number) if number.is_integer() else number
    if isinstance(value, list):
        return ", ".join(map(str, value))
    if isinstance(value, dict):
        return json.dumps(value)
    return "None"


def _placeholder(prop: dict[str, Any]) -> Any:
    return {"string": "default", "integer": 1, "float": 1.0, "boolean": True, "array": [],
            "tuple": [], "dict": {}}.get(prop.get("type", ""), "default")


def _reformat(value: str, rng: random.Random) -> str:
    """The same string as far as BFCL's loose comparison goes."""
    style = rng.choice(("upper", "dashes", "commas"))
    if style == "upper":
        return value.upper()
    if style == "dashes":
        return value.replace(" ", "-").lower()
    return value.replace(" ", ", ").title()


def perturb(case: dict[str, Any], rng: random.Random) -> list[tuple[str, list[Call]]]:
    """Model outputs for a case, each labelled with its kind (see the module docstring).
    A kind that the case does not allow (no optional argument to leave out, a single
    call to reorder...) is not produced."""
    schemas = to_schemas(case)
    gold = to_expected(case)
    base = correct_output(case)
    outputs: list[tuple[str, list[Call]]] = [("correct", base)]
    parallel = "parallel" in case["category"]

    def props(i: int) -> dict[str, Any]:
        return schemas.get(base[i][0], {}).get("properties", {})

    def edited(i: int, changes: dict[str, Any], name: str | None = None) -> list[Call]:
        out = copy.deepcopy(base)
        args = out[i][1]
        for param, value in changes.items():
            if value is _DROP:
                args.pop(param, None)
            else:
                args[param] = value
        out[i] = (name or out[i][0], args)
        return out

    def choose(candidates: list[tuple[int, str]]) -> tuple[int, str] | None:
        return rng.choice(candidates) if candidates else None

    # acceptable variants
    optional = [(i, p) for i, (_, args) in enumerate(base) for p in args
                if OPTIONAL in gold[i].arguments[p]]
    if optional:
        out = copy.deepcopy(base)
        for i, p in optional:
            out[i][1].pop(p)
        outputs.append(("optional_omitted", out))
    alternative = correct_output(case, pick=-1)
    if alternative != base:
        outputs.append(("alt_value", alternative))
    strings = [(i, p) for i, (_, args) in enumerate(base) for p, v in args.items()
               if isinstance(v, str) and " " in v and props(i).get(p, {}).get("type") == "string"]
    if (pick := choose(strings)) is not None:
        i, p = pick
        variant = _reformat(base[i][1][p], rng)
        if standardize(variant) == standardize(base[i][1][p]):
            outputs.append(("reformatted", edited(i, {p: variant})))
    floats = [(i, p) for i, (_, args) in enumerate(base) for p, v in args.items()
              if isinstance(v, float) and v.is_integer() and props(i).get(p, {}).get("type") == "float"]
    if (pick := choose(floats)) is not None:
        i, p = pick
        outputs.append(("int_for_float", edited(i, {p: int(base[i][1][p])})))
    ints = [(i, p) for i, (_, args) in enumerate(base) for p, v in args.items()
            if type(v) is int and props(i).get(p, {}).get("type") == "integer"]
    if (pick := choose(ints)) is not None:
        i, p = pick
        outputs.append(("float_for_int", edited(i, {p: float(base[i][1][p])})))
    empties = [(i, p) for i, call in enumerate(gold) for p, possible in call.arguments.items()
               if OPTIONAL in possible and props(i).get(p, {}).get("type") in _EMPTY]
    if (pick := choose(empties)) is not None:
        i, p = pick
        outputs.append(("empty_optional", edited(i, {p: copy.copy(_EMPTY[props(i)[p]["type"]])})))
    if parallel and base[::-1] != base:
        outputs.append(("shuffled", base[::-1]))

    # broken ones
    given = [(i, p) for i, (_, args) in enumerate(base) for p in args]
    if (pick := choose(given)) is not None:
        i, p = pick
        outputs.append(("wrong_value", edited(i, {
            p: _wrong_value(base[i][1][p], gold[i].arguments[p], rng)})))
    if (pick := choose(given)) is not None:
        i, p = pick
        outputs.append(("wrong_type", edited(i, {p: _wrong_type(base[i][1][p])})))
    required = [(i, p) for i, (name, args) in enumerate(base) for p in args
                if p in schemas.get(name, {}).get("required", [])]
    needed = [(i, p) for i, p in given if OPTIONAL not in gold[i].arguments[p]]
    if (pick := choose(required or needed)) is not None:
        i, p = pick
        outputs.append(("missing_arg", edited(i, {p: _DROP})))
    i = rng.randrange(len(base))
    invented = rng.choice(("verbose", "extra_option", "notes", "priority"))
    while invented in props(i):
        invented += "_x"
    outputs.append(("extra_arg", edited(i, {invented: rng.choice((True, 3, "yes"))})))
    unlisted = [(i, p) for i, (_, args) in enumerate(base) for p in props(i)
                if p not in gold[i].arguments]
    if (pick := choose(unlisted)) is not None:
        i, p = pick
        outputs.append(("unlisted_arg", edited(i, {p: _placeholder(props(i)[p])})))
    i = rng.randrange(len(base))
    others = sorted({f["name"] for f in case["functions"]} - {base[i][0]})
    wrong_name = rng.choice(others) if others else base[i][0].rsplit(".", 1)[-1] + "_v2"
    outputs.append(("wrong_function", edited(i, {}, name=wrong_name)))
    if parallel:
        i = rng.randrange(len(base))
        outputs.append(("drop_call", base[:i] + base[i + 1:]))
        i = rng.randrange(len(base))
        outputs.append(("duplicate_call", base[:i + 1] + [copy.deepcopy(base[i])] + base[i + 1:]))
    return outputs


# --- agreement ---------------------------------------------------------------------------

def agreement(cases: list[dict[str, Any]], rng_seed: int = 0) -> dict[str, Any]:
    """Both checkers on every generated output of every case.

    Returns ``total``, ``agree``, ``rate``, ``by_category`` and ``by_kind`` (each
    ``{name: {"total", "agree", "rate", "bfcl_valid"}}``) and ``disagreements`` (case id,
    kind, output, both verdicts and both errors). Each case has its own random stream
    (seeded by ``rng_seed`` and its id), so a case's outputs don't depend on the sample."""
    totals: dict[str, Counter[str]] = defaultdict(Counter)
    disagreements = []
    for case in cases:
        rng = random.Random(f"{rng_seed}:{case['id']}")
        for kind, output in perturb(case, rng):
            bfcl = bfcl_verdict(case, output)
            ours = our_verdict(case, output)
            same = bool(bfcl["valid"]) == ours.correct
            for key in ("all", f"category:{case['category']}", f"kind:{kind}"):
                totals[key]["total"] += 1
                totals[key]["agree"] += same
                totals[key]["bfcl_valid"] += bool(bfcl["valid"])
            if not same:
                disagreements.append({
                    "id": case["id"], "kind": kind, "output": output,
                    "bfcl_valid": bool(bfcl["valid"]), "ours_correct": ours.correct,
                    "bfcl_error": bfcl.get("error"), "our_error": ours.error,
                })

    def summary(prefix: str) -> dict[str, dict[str, Any]]:
        return {key[len(prefix):]: {**counts, "rate": counts["agree"] / counts["total"]}
                for key, counts in totals.items() if key.startswith(prefix)}

    overall = totals["all"]
    return {"total": overall["total"], "agree": overall["agree"],
            "rate": overall["agree"] / overall["total"] if overall["total"] else 1.0,
            "bfcl_valid": overall["bfcl_valid"],
            "by_category": summary("category:"), "by_kind": summary("kind:"),
            "disagreements": disagreements}


def main() -> int:
    """Print the agreement on every case of the four categories."""
    if not bfcl_available():
        print("bfcl-eval is not installed (pip install bfcl-eval --no-deps).")
        return 2
    cases = load_cases()
    result = agreement(cases)
    print(f"BFCL AST checker vs routine.eval.scoring: {len(cases)} cases, {result['total']} outputs, "
          f"agreement {result['agree']}/{result['total']} = {result['rate']:.2%} "
          f"(BFCL accepts {result['bfcl_valid']})")
    for title, key in (("category", "by_category"), ("perturbation", "by_kind")):
        print(f"\nby {title}:")
        for name, counts in result[key].items():
            print(f"  {name:18} {counts['agree']:5}/{counts['total']:<5} {counts['rate']:7.2%}"
                  f"   BFCL valid {counts['bfcl_valid']}")
    if result["disagreements"]:
        print(f"\n{len(result['disagreements'])} disagreements:")
        for d in result["disagreements"]:
            print(f"  {d['id']} [{d['kind']}] BFCL {'valid' if d['bfcl_valid'] else 'invalid'}"
                  f", ours {'correct' if d['ours_correct'] else 'wrong'}: {d['output']}\n"
                  f"      BFCL: {d['bfcl_error']}\n      ours: {d['our_error']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
