"""Tests of the retail domain: tools over the seeded shop database, its routines, its dataset.

Entities are looked up in the seeded database by SQL (not hard-coded), so the
tests state the rules (only pending orders can be cancelled, returns within 30
days of delivery, credit limits) rather than the seed's particular rows.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from routine_tools.retail import (
    cancel_order,
    check_stock,
    find_customer,
    get_customer,
    get_order,
    issue_store_credit,
    list_orders,
    request_return,
    search_products,
    toolset,
    track_shipment,
    update_shipping_address,
)
from routine_tools.retail.db import TODAY, RetailDatabase, build_database, fresh_database

from routine import RunContext
from routine.spec import load_routine
from routine.spec.toolsets import registry_for
from routine.spec.validate import check_routine

ROOT = Path(__file__).resolve().parent.parent
RETAIL_ROUTINES = sorted((ROOT / "routines" / "retail").glob("*.yaml"))
DATASET = ROOT / "eval" / "datasets" / "retail"


@pytest.fixture
def db() -> Iterator[RetailDatabase]:
    with fresh_database() as deps:
        yield deps


@pytest.fixture
def ctx(db: RetailDatabase) -> RunContext[RetailDatabase]:
    return RunContext(db)


def one(db: RetailDatabase, sql: str, params: tuple[Any, ...] = ()) -> dict[str, Any]:
    row = db.conn.execute(sql + " ORDER BY 1 LIMIT 1", params).fetchone()
    assert row is not None, sql
    return dict(row)


def order_with(db: RetailDatabase, where: str, params: tuple[Any, ...] = ()) -> dict[str, Any]:
    return one(db, "SELECT o.id AS order_id, o.customer_id, o.status, o.total, "
               "s.delivered_on FROM orders o LEFT JOIN shipments s ON s.order_id = o.id "
               "WHERE " + where, params)


def invoke(name: str, ctx: RunContext[RetailDatabase], **arguments: Any) -> Any:
    """Call a tool the way the executor does: arguments validated against its schema."""
    return asyncio.run(toolset.tools[name].invoke(arguments, ctx))


# ------------------------------------------------------------------ the database
def test_seed_is_deterministic_and_runs_are_isolated(ctx: RunContext[RetailDatabase]) -> None:
    with fresh_database() as a, fresh_database() as b:
        assert a.state_digest() == b.state_digest()
    rebuilt = sqlite3.connect(":memory:")
    build_database(rebuilt)
    assert list(rebuilt.iterdump()) == list(ctx.deps.conn.iterdump())
    before = ctx.deps.state_digest()
    customer = one(ctx.deps, "SELECT id FROM customers")
    issue_store_credit(ctx, customer["id"], 5.0, "test")
    assert ctx.deps.state_digest() != before
    with fresh_database() as other:  # a write in one run is invisible to the next
        assert other.state_digest() == before


def test_seed_has_the_promised_shape(db: RetailDatabase) -> None:
    count = lambda sql: db.conn.execute(sql).fetchone()[0]  # noqa: E731
    assert count("SELECT count(*) FROM customers") == 80
    assert count("SELECT count(*) FROM products") == 40
    assert count("SELECT count(*) FROM orders") == 250
    statuses = {r[0] for r in db.conn.execute("SELECT DISTINCT status FROM orders")}
    assert statuses == {"pending", "shipped", "delivered", "cancelled", "returned"}
    assert count("SELECT count(*) FROM products WHERE stock = 0 AND restock_date IS NULL") == 0
    assert count("SELECT count(*) FROM shipments s JOIN orders o ON o.id = s.order_id "
                 "WHERE o.status IN ('pending', 'cancelled')") == 0
    assert count("SELECT max(placed_on) FROM orders") <= TODAY.isoformat()


# ------------------------------------------------------------------ read tools
def test_find_and_get_customer(ctx: RunContext[RetailDatabase]) -> None:
    row = one(ctx.deps, "SELECT id, email, name FROM customers")
    found = find_customer(ctx, "  " + row["email"].upper() + " ")
    assert (found.customer_id, found.name) == (row["id"], row["name"])
    profile = get_customer(ctx, row["id"])
    assert profile.email == row["email"]
    assert profile.order_count == ctx.deps.conn.execute(
        "SELECT count(*) FROM orders WHERE customer_id = ?", (row["id"],)).fetchone()[0]
    with pytest.raises(LookupError, match="no customer account"):
        find_customer(ctx, "nobody@nowhere.invalid")
    with pytest.raises(LookupError, match="no customer with id 9999"):
        get_customer(ctx, 9999)


def test_list_orders_newest_first_and_filtered(ctx: RunContext[RetailDatabase]) -> None:
    cid = one(ctx.deps, "SELECT customer_id FROM orders GROUP BY customer_id "
              "HAVING count(*) >= 3")["customer_id"]
    orders = list_orders(ctx, cid)
    assert len(orders) >= 3
    assert [o.placed_on for o in orders] == sorted((o.placed_on for o in orders), reverse=True)
    status = orders[0].status
    assert {o.status for o in list_orders(ctx, cid, status)} == {status}
    with pytest.raises(ValueError, match="status"):  # the Literal is enforced on invocation
        invoke("list_orders", ctx, customer_id=cid, status="lost")
    with pytest.raises(LookupError):
        list_orders(ctx, 9999)


def test_get_order_and_track_shipment(ctx: RunContext[RetailDatabase]) -> None:
    delivered = order_with(ctx.deps, "o.status = 'delivered'")
    order = get_order(ctx, delivered["order_id"])
    assert order.lines and order.total == pytest.approx(
        sum(line.quantity * line.unit_price for line in order.lines))
    assert order.delivered_on == date.fromisoformat(delivered["delivered_on"])
    assert order.days_since_delivery == (TODAY - order.delivered_on).days
    parcel = track_shipment(ctx, delivered["order_id"])
    assert parcel.status == "delivered" and parcel.tracking_number
    late = order_with(ctx.deps, "o.status = 'shipped' AND s.estimated_delivery < ?",
                      (TODAY.isoformat(),))
    in_transit = track_shipment(ctx, late["order_id"])
    assert in_transit.status == "in_transit" and in_transit.days_late > 0
    pending = order_with(ctx.deps, "o.status = 'pending'")
    assert get_order(ctx, pending["order_id"]).delivered_on is None
    with pytest.raises(LookupError, match="has not shipped"):
        track_shipment(ctx, pending["order_id"])
    with pytest.raises(LookupError, match="no order"):
        get_order(ctx, 1)


def test_search_products_and_check_stock(ctx: RunContext[RetailDatabase]) -> None:
    sold_out = one(ctx.deps, "SELECT id, name FROM products WHERE stock = 0")
    matches = search_products(ctx, sold_out["name"].lower())
    assert matches[0].product_id == sold_out["id"]
    stock = check_stock(ctx, sold_out["id"])
    assert not stock.available and stock.restock_date is not None and stock.restock_date > TODAY
    category = search_products(ctx, "kitchen")
    assert category and {m.category for m in category} == {"kitchen"}
    in_stock = one(ctx.deps, "SELECT id FROM products WHERE stock > 0")
    assert check_stock(ctx, in_stock["id"]).available
    with pytest.raises(LookupError, match="no product matches"):
        search_products(ctx, "flux capacitor")
    with pytest.raises(ValueError, match="empty"):
        search_products(ctx, "  ")
    with pytest.raises(LookupError):
        check_stock(ctx, 999)


# ------------------------------------------------------------------ write tools
def test_cancel_order_restocks_and_refunds(ctx: RunContext[RetailDatabase]) -> None:
    conn = ctx.deps.conn
    pending = order_with(ctx.deps, "o.status = 'pending'")
    lines = conn.execute("SELECT l.product_id, l.quantity, p.stock FROM order_lines l JOIN "
                         "products p ON p.id = l.product_id WHERE l.order_id = ?",
                         (pending["order_id"],)).fetchall()
    result = cancel_order(ctx, pending["order_id"], " ordered by mistake ")
    assert (result.status, result.reason) == ("cancelled", "ordered by mistake")
    assert result.refund_amount == pending["total"]
    assert get_order(ctx, pending["order_id"]).status == "cancelled"
    for product_id, quantity, stock in lines:
        assert check_stock(ctx, product_id).stock == stock + quantity
    assert conn.execute("SELECT amount FROM refunds WHERE order_id = ?",
                        (pending["order_id"],)).fetchone()[0] == pending["total"]
    with pytest.raises(ValueError, match="only pending orders"):
        cancel_order(ctx, pending["order_id"], "again")


def test_cancel_order_errors_leave_the_database_alone(ctx: RunContext[RetailDatabase]) -> None:
    before = ctx.deps.state_digest()
    shipped = order_with(ctx.deps, "o.status = 'shipped'")
    with pytest.raises(ValueError, match="is shipped: only pending"):
        cancel_order(ctx, shipped["order_id"], "too slow")
    pending = order_with(ctx.deps, "o.status = 'pending'")
    with pytest.raises(ValueError, match="needs a reason"):
        cancel_order(ctx, pending["order_id"], "   ")
    with pytest.raises(LookupError):
        cancel_order(ctx, 12, "x")
    assert ctx.deps.state_digest() == before


def test_request_return(ctx: RunContext[RetailDatabase]) -> None:
    window_open = (TODAY - timedelta(days=30)).isoformat()
    eligible = order_with(ctx.deps, "o.status = 'delivered' AND s.delivered_on >= ? AND "
                          "(SELECT count(*) FROM order_lines l WHERE l.order_id = o.id) > 1",
                          (window_open,))
    line = get_order(ctx, eligible["order_id"]).lines[0]
    opened = request_return(ctx, eligible["order_id"], line.product_id, "wrong size")
    assert opened.status == "requested" and opened.product_name == line.name
    assert opened.refund_amount == pytest.approx(line.quantity * line.unit_price)
    assert opened.ship_back_by == TODAY + timedelta(days=14)
    with pytest.raises(ValueError, match="already exists"):
        request_return(ctx, eligible["order_id"], line.product_id, "wrong size")
    other = one(ctx.deps, "SELECT id FROM products WHERE id NOT IN (SELECT product_id FROM "
                "order_lines WHERE order_id = ?)", (eligible["order_id"],))
    with pytest.raises(LookupError, match="is not on order"):
        request_return(ctx, eligible["order_id"], other["id"], "wrong size")
    too_old = order_with(ctx.deps, "o.status = 'delivered' AND s.delivered_on < ?",
                         (window_open,))
    old_line = get_order(ctx, too_old["order_id"]).lines[0]
    with pytest.raises(ValueError, match="return window has closed"):
        request_return(ctx, too_old["order_id"], old_line.product_id, "changed my mind")
    shipped = order_with(ctx.deps, "o.status = 'shipped'")
    with pytest.raises(ValueError, match="only delivered orders"):
        request_return(ctx, shipped["order_id"], get_order(ctx, shipped["order_id"])
                       .lines[0].product_id, "changed my mind")


def test_returning_every_line_marks_the_order_returned(ctx: RunContext[RetailDatabase]) -> None:
    order = order_with(ctx.deps, "o.status = 'delivered' AND s.delivered_on >= ?",
                       ((TODAY - timedelta(days=30)).isoformat(),))
    lines = get_order(ctx, order["order_id"]).lines
    for line in lines:
        assert get_order(ctx, order["order_id"]).status == "delivered"
        request_return(ctx, order["order_id"], line.product_id, "not as described")
    assert get_order(ctx, order["order_id"]).status == "returned"


def test_update_shipping_address(ctx: RunContext[RetailDatabase]) -> None:
    pending = order_with(ctx.deps, "o.status = 'pending'")
    old = get_order(ctx, pending["order_id"]).shipping_address
    change = update_shipping_address(ctx, pending["order_id"], " 7  Elm Court,\nAshford 12345 ")
    assert change.shipping_address == "7 Elm Court, Ashford 12345"
    assert change.previous_address == old
    assert get_order(ctx, pending["order_id"]).shipping_address == change.shipping_address
    with pytest.raises(ValueError, match="not a complete address"):
        update_shipping_address(ctx, pending["order_id"], "home")
    delivered = order_with(ctx.deps, "o.status = 'delivered'")
    with pytest.raises(ValueError, match="only be changed while the order is pending"):
        update_shipping_address(ctx, delivered["order_id"], "7 Elm Court, Ashford 12345")


def test_issue_store_credit_and_its_limits(ctx: RunContext[RetailDatabase]) -> None:
    cid = one(ctx.deps, "SELECT id FROM customers WHERE id NOT IN "
              "(SELECT customer_id FROM store_credits)")["id"]
    credit = issue_store_credit(ctx, cid, 10.004, " late delivery ")
    assert (credit.amount, credit.new_balance, credit.reason) == (10.0, 10.0, "late delivery")
    assert get_customer(ctx, cid).store_credit == 10.0
    with pytest.raises(ValueError, match="at most 50"):
        issue_store_credit(ctx, cid, 50.01, "too generous")
    with pytest.raises(ValueError, match="positive"):
        issue_store_credit(ctx, cid, 0, "nothing")
    with pytest.raises(ValueError, match="needs a reason"):
        issue_store_credit(ctx, cid, 5, "")
    for _ in range(4):
        issue_store_credit(ctx, cid, 50, "goodwill")
    with pytest.raises(ValueError, match="exceed the 250 limit"):
        issue_store_credit(ctx, cid, 50, "goodwill")
    with pytest.raises(LookupError):
        issue_store_credit(ctx, 9999, 5, "x")


# ------------------------------------------------------------------ schemas and routines
def test_toolset_schemas_are_documented_without_example_values() -> None:
    assert len(toolset.tools) >= 9
    for t in toolset.tools.values():
        assert t.output_schema is not None, t.name
        for name, prop in t.parameters.get("properties", {}).items():
            assert prop.get("description"), f"{t.name}.{name} has no description"
        text = t.description + " ".join(
            p.get("description", "") for p in t.parameters.get("properties", {}).values())
        assert "@" not in text and "example" not in text.lower(), t.name


@pytest.mark.parametrize("path", RETAIL_ROUTINES, ids=lambda p: p.stem)
def test_retail_routines_validate(path: Path) -> None:
    loaded = load_routine(path)
    registry, problems = registry_for(loaded)
    assert problems == []
    assert check_routine(loaded, registry) == []
    assert (path.parent / "drafts" / f"{path.stem}.md").is_file()


def test_retail_routines_cover_the_domain() -> None:
    routines = [load_routine(p).routine for p in RETAIL_ROUTINES]
    assert len(routines) >= 5
    branching = [r for r in routines if any(s.branch for s, _ in r.walk())]
    assert len(branching) >= 2
    for r in branching:  # every branch is decidable: the oracle can run it
        for step, _ in r.walk():
            options = step.branch or []
            assert sum(o.when is None for o in options) <= 1, (r.name, step.id)
            assert all(o.when for o in options[:-1]), (r.name, step.id)


# ------------------------------------------------------------------ the gold dataset
def test_dataset_splits_and_gold_trajectories() -> None:
    from routine.eval.dataset import load_dataset, load_domain, replay

    domain = load_domain(DATASET)
    routines = {t.routine for t in domain.templates if t.kind == "routine"}
    tested = {t.routine for t in domain.templates if t.kind == "routine" and t.split == "test"}
    assert routines == tested == set(domain.routines())
    assert {t.kind for t in domain.templates} == {"routine", "refuse", "ask"}
    examples = load_dataset(DATASET)
    assert len(examples) >= 45
    problems = replay(examples[::9], domain)  # a sample: `routine dataset check` replays all
    assert problems and all(v == [] for v in problems.values()), problems
