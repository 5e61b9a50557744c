"""End states: exact for every column but free text, which is matched like its argument."""

from __future__ import annotations

import sqlite3

import pytest

from routine.errors import DatasetError
from routine.eval.endstate import EndState, compare_end_states, end_state, snapshot_of
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
