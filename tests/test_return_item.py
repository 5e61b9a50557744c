"""Retail's ``return_item``: a for_each over the order's items opens a return, confirmed item
by item, for each product the customer named — on the real SQLite shop, with the oracle
(which follows the routine's references and ``when`` expressions) and a scripted user."""

from __future__ import annotations

import asyncio

import pytest

from routine.eval.dataset import gold_conversation, load_domain, oracle_run
from routine.eval.users import UserProfile
from tests.conftest import ROOT

RETAIL = ROOT / "eval" / "datasets" / "retail"


@pytest.fixture(scope="module")
def shop():
    domain = load_domain(RETAIL)
    registry = domain.registry()
    loaded = domain.routines()["return_item"]

    async def order_with_lines(n):
        async with registry.session() as contexts:
            deps = contexts[domain.toolset_name()].deps
            row = deps.conn.execute(
                "SELECT o.id, c.email FROM orders o JOIN customers c ON c.id = o.customer_id "
                "JOIN shipments s ON s.order_id = o.id WHERE o.status = 'delivered' AND "
                "julianday(?) - julianday(s.delivered_on) <= 30 AND (SELECT count(*) FROM "
                "order_lines l WHERE l.order_id = o.id) = ? AND NOT EXISTS (SELECT 1 FROM returns r "
                "WHERE r.order_id = o.id) ORDER BY o.id LIMIT 1",
                (deps.today.isoformat(), n)).fetchone()
            names = [r[0] for r in deps.conn.execute(
                "SELECT p.name FROM order_lines l JOIN products p ON p.id = l.product_id "
                "WHERE l.order_id = ? ORDER BY p.id", (row[0],))]
            other = deps.conn.execute(
                "SELECT name FROM products WHERE id NOT IN (SELECT product_id FROM "
                "order_lines WHERE order_id = ?) ORDER BY id LIMIT 1", (row[0],)).fetchone()[0]
        return row[0], row[1], names, other

    order_id, email, names, other = asyncio.run(order_with_lines(3))
    return domain, registry, loaded, order_id, email, names, other


def inputs(order_id, email, product):
    return {"email": email, "order_id": order_id, "product_name": product,
            "reason": "it arrived damaged"}


def returned(snapshot, order_id):
    """The order's returns (the picked order had none in the seed)."""
    return sorted((row["order_id"], row["product_id"]) for row in
                  snapshot.get("returns", {}).values() if row["order_id"] == order_id)


def product_ids(snapshot, names):
    by_name = {row["name"]: int(key) for key, row in snapshot["products"].items()}
    return [by_name[n] for n in names]


def test_only_the_named_item_of_the_order_goes_back(shop):
    domain, registry, loaded, order_id, email, names, _ = shop
    calls, outputs, snapshot = asyncio.run(oracle_run(
        loaded, registry, inputs(order_id, email, names[1].lower()), domain.toolset_name()))
    assert [c.name for c in calls] == ["find_customer", "get_order", "request_return"]
    assert returned(snapshot, order_id) == [(order_id, product_ids(snapshot, [names[1]])[0])]
    assert outputs["open_return"]["product_name"] == names[1]


def test_two_named_items_are_two_returns(shop):
    domain, registry, loaded, order_id, email, names, _ = shop
    calls, _, snapshot = asyncio.run(oracle_run(
        loaded, registry, inputs(order_id, email, f"the {names[0]} and the {names[2]}"),
        domain.toolset_name()))
    assert [c.name for c in calls].count("request_return") == 2
    assert returned(snapshot, order_id) == sorted(
        (order_id, pid) for pid in product_ids(snapshot, [names[0], names[2]]))


def test_a_product_not_on_the_order_opens_nothing_and_the_answer_lists_the_order(shop):
    domain, registry, loaded, order_id, email, names, other = shop
    agent_calls, _, snapshot = asyncio.run(oracle_run(
        loaded, registry, inputs(order_id, email, other), domain.toolset_name()))
    assert [c.name for c in agent_calls] == ["find_customer", "get_order"]
    assert returned(snapshot, order_id) == []


def conversation(shop, product, confirms=True):
    domain, registry, loaded, order_id, email, names, _ = shop
    user = UserProfile(facts={"order_id": order_id, "product_name": product,
                              "reason": "it arrived damaged"},
                       says={"order_id": "order {value}", "product_name": "the {value}"},
                       confirms=confirms)
    return asyncio.run(gold_conversation(
        loaded, registry, f"I'd like to return something. My email is {email}.",
        {"email": email}, user, domain.toolset_name()))


def test_in_a_conversation_each_return_waits_for_its_yes(shop):
    _, _, _, order_id, _, names, _ = shop
    calls, _, snapshot = conversation(shop, f"{names[0]} and {names[1]}")
    assert [c.name for c in calls].count("request_return") == 2
    assert returned(snapshot, order_id) == sorted(
        (order_id, pid) for pid in product_ids(snapshot, names[:2]))


def test_a_no_at_the_confirmation_writes_nothing(shop):
    _, _, _, order_id, _, names, _ = shop
    calls, _, snapshot = conversation(shop, names[2], confirms=False)
    assert "request_return" not in [c.name for c in calls]
    assert returned(snapshot, order_id) == []
