"""routine.scoring against BFCL's AST checker, and the scorer's layers by hand.

The agreement tests need the optional ``bfcl-eval`` package (its data and checker; it may
be installed with ``--no-deps``) and are skipped without it; the unit tests of the layers
always run."""

from __future__ import annotations

import random
from typing import Any

import pytest

from routine.eval.scoring import OPTIONAL, ExpectedCall, score_calls, standardize, tool_f1

SKIP_REASON = ("bfcl-eval is not installed: the BFCL agreement check needs its data and AST "
               "checker (pip install bfcl-eval --no-deps)")


@pytest.fixture(scope="module")
def bfcl() -> Any:
    pytest.importorskip("bfcl_eval", reason=SKIP_REASON)
    from routine.eval import bfcl

    assert bfcl.bfcl_available(), "bfcl_eval is importable but its checker or data is not"
    return bfcl


@pytest.fixture(scope="module")
def sample(bfcl: Any) -> list[dict[str, Any]]:
    """A fixed random sample of 200 cases, 50 from each category."""
    rng = random.Random(20240601)
    cases = bfcl.load_cases()
    picked = []
    for category in bfcl.CATEGORIES:
        pool = [c for c in cases if c["category"] == category]
        picked += rng.sample(pool, 50)
    return picked


def test_bfcl_data_loads(bfcl: Any) -> None:
    cases = bfcl.load_cases()
    counts = {c: sum(case["category"] == c for case in cases) for c in bfcl.CATEGORIES}
    assert counts == {"simple_python": 400, "multiple": 200, "parallel": 200,
                      "parallel_multiple": 200}
    case = cases[0]
    assert set(case) == {"id", "category", "functions", "ground_truth"}
    assert bfcl.correct_output(case) == [("calculate_triangle_area",
                                          {"base": 10, "height": 5, "unit": "units"})]


def test_bfcl_agreement_on_sample(bfcl: Any, sample: list[dict[str, Any]]) -> None:
    result = bfcl.agreement(sample, rng_seed=0)
    print(f"\nBFCL agreement on {len(sample)} cases: {result['agree']}/{result['total']} = "
          f"{result['rate']:.2%}")
    for kind, counts in result["by_kind"].items():
        print(f"  {kind:16} {counts['agree']}/{counts['total']}")
    # every kind of output was generated, and the broken ones are really broken
    assert {"correct", "wrong_value", "wrong_type", "missing_arg", "extra_arg",
            "wrong_function", "drop_call", "duplicate_call"} <= set(result["by_kind"])
    assert result["by_kind"]["correct"]["bfcl_valid"] >= 195
    for kind in ("wrong_type", "missing_arg", "extra_arg", "wrong_function", "drop_call",
                 "duplicate_call"):
        assert result["by_kind"][kind]["bfcl_valid"] == 0, kind
    assert result["rate"] >= 0.99, result["disagreements"][:5]


def _synthetic(prop: dict[str, Any], possible: list[Any], required: bool = False) -> dict[str, Any]:
    return {"id": "synthetic_0", "category": "simple_python",
            "functions": [{"name": "f", "description": "", "parameters": {
                "type": "dict", "properties": {"x": prop, "y": {"type": "integer"}},
                "required": ["x"] if required else []}}],
            "ground_truth": [{"f": {"x": possible, "y": [1]}}]}


@pytest.mark.parametrize(("prop", "possible", "value"), [
    # BFCL's quirks that loose mode follows
    ({"type": "array", "items": {"type": "string"}}, [["a", "b"], ""], []),
    ({"type": "array", "items": {"type": "dict"}}, [""], []),
    ({"type": "array", "items": {"type": "string"}}, [["a", "b"]], []),
    ({"type": "any"}, [5], 5.0),
    ({"type": "any"}, [5], 5),
    ({"type": "any"}, ["my_data"], "MY DATA"),
    ({"type": "any"}, ["my_data"], ["my_data"]),
    # variables: the acceptable values' type wins over the schema's
    ({"type": "float"}, [None, ""], None),
    ({"type": "string"}, ["", True], True),
    ({"type": "array", "items": {"type": "float"}}, ["data['sales']"], "data['sales']"),
    ({"type": "array", "items": {"type": "float"}}, [[1.0, 2.0]], [1, 2]),
    ({"type": "float"}, [2.0], 2),
    ({"type": "integer"}, [2], 2.0),
    ({"type": "dict"}, [{"a": ["x"], "b": [1, ""]}], {"a": "X"}),
    ({"type": "dict"}, [{"a": ["x"], "b": [1]}], {"a": "x"}),
    ({"type": "dict"}, [{"a": ["x"]}], {"a": "x", "c": 2}),
])
def test_bfcl_agreement_on_edge_cases(bfcl: Any, prop: dict[str, Any], possible: list[Any],
                                      value: Any) -> None:
    case = _synthetic(prop, possible)
    output = [("f", {"x": value, "y": 1})]
    theirs = bfcl.bfcl_verdict(case, output)
    ours = bfcl.our_verdict(case, output)
    assert ours.correct == theirs["valid"], (theirs, ours)


# --- the layers, by hand ----------------------------------------------------------------

SCHEMAS = {
    "get_weather": {"type": "object", "required": ["city"], "properties": {
        "city": {"type": "string"}, "unit": {"type": "string"}, "days": {"type": "integer"},
        "threshold": {"type": "number"}}},
    "send_email": {"type": "object", "required": ["to", "body"], "properties": {
        "to": {"type": "string"}, "body": {"type": "string"}}},
}
WEATHER = ExpectedCall("get_weather", {"city": ["London"], "unit": ["celsius", OPTIONAL]})
EMAIL = ExpectedCall("send_email", {"to": ["ann@example.com"],
                                    "body": ["Send the quarterly report to the team today"]})


def test_well_formed_correct_call() -> None:
    score = score_calls([("get_weather", {"city": "London", "unit": "celsius"})], [WEATHER], SCHEMAS)
    assert score.correct and score.layer is None and score.tool_f1 == 1.0
    assert score.arg_match == 1.0


def test_unparsable_reply_fails_format() -> None:
    score = score_calls(None, [WEATHER], SCHEMAS)
    assert not score.correct and score.layer == "format" and not score.wellformed


def test_wrong_tool_fails_tool_layer() -> None:
    score = score_calls([("send_email", {"to": "x", "body": "y"})], [WEATHER], SCHEMAS)
    assert (score.correct, score.layer) == (False, "tool")
    assert not score.tools_ok and score.tool_f1 == 0.0


def test_extra_call_fails_count_layer() -> None:
    call = ("get_weather", {"city": "London"})
    score = score_calls([call, call], [WEATHER], SCHEMAS)
    assert (score.correct, score.layer) == (False, "count")
    assert score.error == "2 calls, expected 1"


@pytest.mark.parametrize(("arguments", "error"), [
    ({"unit": "celsius"}, "missing required argument 'city'"),
    ({"city": "London", "country": "UK"}, "invented argument 'country'"),
    ({"city": "London", "days": 3}, "invented argument 'days'"),  # in the schema, not the gold
    ({"city": 42}, "argument 'city': expected string, got int"),
    ({"city": "Paris"}, "argument 'city': 'Paris' is not one of ['London']"),
    ({"city": "London", "unit": "kelvin"},
     "argument 'unit': 'kelvin' is not one of ['celsius', '']"),
])
def test_argument_errors(arguments: dict[str, Any], error: str) -> None:
    score = score_calls([("get_weather", arguments)], [WEATHER], SCHEMAS)
    assert (score.correct, score.layer, score.error) == (False, "arguments", error)
    assert score.tools_ok


def test_optional_marker_lets_an_argument_be_left_out() -> None:
    assert score_calls([("get_weather", {"city": "London"})], [WEATHER], SCHEMAS).correct
    strict = ExpectedCall("get_weather", {"city": ["London"], "unit": ["celsius"]})
    score = score_calls([("get_weather", {"city": "London"})], [strict], SCHEMAS)
    assert (score.correct, score.error) == (False, "missing argument 'unit'")
    with_default = ExpectedCall.exact("get_weather", {"city": "London", "unit": "celsius"},
                                      defaults={"unit": "celsius"})
    assert with_default.arguments["unit"] == ["celsius", OPTIONAL]


def test_int_accepted_for_number_and_float() -> None:
    gold = ExpectedCall("get_weather", {"city": ["London"], "threshold": [3.0]})
    assert score_calls([("get_weather", {"city": "London", "threshold": 3})], [gold],
                       SCHEMAS).correct
    schemas = {"f": {"properties": {"x": {"type": "float"}}, "required": ["x"]}}
    assert score_calls([("f", {"x": 3})], [ExpectedCall("f", {"x": [3.0]})], schemas).correct
    # but not a float for an integer
    ints = {"f": {"properties": {"x": {"type": "integer"}}}}
    score = score_calls([("f", {"x": 3.0})], [ExpectedCall("f", {"x": [3]})], ints)
    assert score.error == "argument 'x': expected integer, got float"


def test_loose_string_match() -> None:
    gold = ExpectedCall("get_weather", {"city": ["New York, NY"]})
    assert standardize("New York, NY") == standardize("new york ny") == "newyorkny"
    assert score_calls([("get_weather", {"city": "new york ny"})], [gold], SCHEMAS).correct
    assert not score_calls([("get_weather", {"city": "new york ny"})], [gold], SCHEMAS,
                           modes={"get_weather.city": "exact"}).correct
    assert not score_calls([("get_weather", {"city": "york new"})], [gold], SCHEMAS).correct


def test_fuzzy_mode_for_free_text() -> None:
    output = [("send_email", {"to": "ann@example.com",
                              "body": "please send the quarterly report to the team"})]
    assert not score_calls(output, [EMAIL], SCHEMAS).correct  # loose: not the same string
    assert score_calls(output, [EMAIL], SCHEMAS, modes={"body": "fuzzy"}).correct
    assert score_calls(output, [EMAIL], SCHEMAS, modes={"send_email.body": "fuzzy"}).correct
    unrelated = [("send_email", {"to": "ann@example.com", "body": "lunch at noon?"})]
    assert not score_calls(unrelated, [EMAIL], SCHEMAS, modes={"body": "fuzzy"}).correct


def test_ignore_mode() -> None:
    output = [("send_email", {"to": "ann@example.com", "body": "anything at all"})]
    assert score_calls(output, [EMAIL], SCHEMAS, modes={"body": "ignore"}).correct
    wrong_type = [("send_email", {"to": "ann@example.com", "body": 7})]
    score = score_calls(wrong_type, [EMAIL], SCHEMAS, modes={"body": "ignore"})
    assert score.error == "argument 'body': expected string, got int"


def test_parallel_calls_in_any_order_unless_ordered() -> None:
    other = ExpectedCall("get_weather", {"city": ["Paris"]})
    output = [("get_weather", {"city": "Paris"}), ("get_weather", {"city": "London"})]
    assert score_calls(output, [WEATHER, other], SCHEMAS).correct
    assert score_calls(output, [WEATHER, other], SCHEMAS, ordered=True).layer == "arguments"


def test_partial_credit_on_two_calls() -> None:
    assert tool_f1(["a", "a", "b"], ["a", "b"]) == pytest.approx(0.8)
    assert tool_f1([], []) == 1.0 and tool_f1(["a"], []) == 0.0
    output = [("get_weather", {"city": "Paris", "unit": "celsius"}),
              ("send_sms", {"to": "ann@example.com"})]
    score = score_calls(output, [WEATHER, EMAIL], SCHEMAS)
    assert (score.correct, score.layer) == (False, "tool")
    assert score.tool_f1 == pytest.approx(0.5)  # one of two tools right, both ways
    assert score.arg_match == pytest.approx(0.25)  # 'unit' of 4 expected arguments
    right_tools = [("get_weather", {"city": "London"}),
                   ("send_email", {"to": "ann@example.com", "body": "hi"})]
    score = score_calls(right_tools, [WEATHER, EMAIL], SCHEMAS)
    assert (score.layer, score.tool_f1) == ("arguments", 1.0)
    assert score.arg_match == pytest.approx(0.75)  # city, unit (left out: allowed), to
