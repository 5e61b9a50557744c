"""End states: exact for every column but free text, which is matched like its argument."""

from __future__ import annotations

import sqlite3

import pytest

from routine.errors import DatasetError
from routine.eval.endstate import (
    EndState,
    RowDiff,
    compare_end_states,
    describe_diffs,
    end_state,
    row_diffs,
    snapshot_of,
)
from routine.tools.sqlite import snapshot

FREE = {"returns.reason": "request_return.reason"}
MODES = {"request_return.reason": "fuzzy"}


def db(*returns: tuple[int, str, str]) -> dict:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE returns (id INTEGER PRIMARY KEY, order_id INTEGER, reason TEXT, "
                 "status TEXT)")
    conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, status TEXT)")
    conn.execute("INSERT INTO orders VALUES (1, 'delivered'), (2, 'delivered')")
    conn.execute("INSERT INTO returns (order_id, reason, status) VALUES (9, 'seeded', 'done')")
    for order, reason, status in returns:
        conn.execute("INSERT INTO returns (order_id, reason, status) VALUES (?, ?, ?)",
                     (order, reason, status))
    return snapshot(conn)


SEED = db()
GOLD = end_state(db((1, "it arrived damaged", "requested")), SEED, FREE)


def judge(*returns: tuple[int, str, str]) -> tuple[bool, str]:
    return compare_end_states(end_state(db(*returns), SEED, FREE), GOLD, FREE, MODES)


def test_the_gold_state_keeps_only_the_free_text_it_wrote():
    assert GOLD.texts == {"returns.reason": {"2": "it arrived damaged"}}
    assert end_state(SEED, SEED, FREE) == EndState(end_state(SEED, SEED, FREE).digest, {})


def test_the_same_action_in_other_words_passes():
    assert judge((1, "It arrived damaged!", "requested")) == (True, "")
    assert judge((1, "arrived damaged", "requested"))[0]


def test_other_meanings_and_other_columns_fail():
    ok, why = judge((1, "I changed my mind", "requested"))
    assert not ok and "returns.reason (row 2)" in why and "fuzzy" in why
    assert judge((2, "it arrived damaged", "requested")) == (
        False, "the database differs from the gold end state")  # the wrong order
    assert not judge((1, "it arrived damaged", "approved"))[0]  # a wrong status
    assert not judge()[0]  # nothing written
    assert not judge((1, "it arrived damaged", "requested"), (1, "again", "requested"))[0]


def test_exact_mode_and_undeclared_columns_stay_exact():
    exact = compare_end_states(end_state(db((1, "It arrived damaged!", "requested")), SEED, FREE),
                               GOLD, FREE, {"request_return.reason": "exact"})
    assert not exact[0]
    undeclared = end_state(db((1, "It arrived damaged!", "requested")), SEED, {})
    assert undeclared != end_state(db((1, "it arrived damaged", "requested")), SEED, {})


def test_deps_without_a_snapshot_are_one_clear_error():
    class Deps:
        pass

    with pytest.raises(DatasetError, match=r"Deps\) need a state_snapshot\(\) method"):
        snapshot_of(Deps())


def diffs(*returns: tuple[int, str, str], modes: dict | None = None) -> list:
    gold = db((1, "it arrived damaged", "requested"))
    return row_diffs(db(*returns), gold, SEED, FREE, MODES if modes is None else modes)


def test_row_diffs_name_the_column_the_values_and_the_free_text_rule():
    assert diffs((1, "It arrived damaged!", "requested")) == []  # other words: no row
    (status,) = diffs((1, "it arrived damaged", "approved"))
    assert (status.table, status.key, status.column, status.got, status.expected,
            status.compared) == ("returns", "2", "status", "approved", "requested", "exact")
    assert "returns row 2: status 'approved' != gold 'requested' (exact)" == str(status)
    (reason,) = diffs((1, "I changed my mind", "requested"))
    assert (reason.column, reason.compared, reason.got) == ("reason", "fuzzy", "I changed my mind")
    assert reason.rule == "free text: word overlap 0.00 < 0.5"
    (half,) = diffs((1, "the parcel arrived late", "requested"))  # 1 shared word of 6
    assert half.rule == "free text: word overlap 0.17 < 0.5"
    (exact,) = diffs((1, "It arrived damaged!", "requested"),
                     modes={"request_return.reason": "exact"})
    assert exact.compared == "exact" and "exact mode" in exact.rule


def test_row_diffs_list_missing_and_extra_rows_and_agree_with_the_verdict():
    (missing,) = diffs()
    assert (missing.compared, missing.key, missing.got) == ("missing", "2", None)
    assert missing.expected["reason"] == "it arrived damaged"
    extra = diffs((1, "it arrived damaged", "requested"), (2, "again", "requested"))
    assert [(d.compared, d.key) for d in extra] == [("extra", "3")]
    assert "returns row 3: extra row" in describe_diffs(extra)
    cases = [(), ((1, "I changed my mind", "requested"),), ((2, "x", "requested"),),
             ((1, "It arrived damaged!", "requested"),), ((1, "it arrived damaged", "x"),)]
    for returns in cases:  # no rows listed exactly when the end state is the gold one
        assert (diffs(*returns) == []) == judge(*returns)[0], returns


def test_describe_diffs_says_how_many_more():
    many = [RowDiff(table="t", key=str(k), column="c", got=k, expected=0, compared="exact",
                    rule="exact") for k in range(1, 8)]
    text = describe_diffs(many, limit=2)
    assert text.startswith("t row 1: c 1 != gold 0 (exact); t row 2") and text.endswith(
        "; and 5 more")
