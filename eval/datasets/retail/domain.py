"""Retail customer-service gold dataset: query templates over the seeded shop database.

Every routine template samples real rows (customers, orders, products) from a
fresh copy of the database in ``tools/retail/db.py``; the oracle then runs the
routine deterministically to produce the gold trajectory. Splits are by
template: within each sub-scenario the templates are listed in order and marked
roughly 60% train, 15% dev, 25% test, with at least one test template per
routine. Rebuild with ``routine dataset build eval/datasets/retail``.
"""

from __future__ import annotations

import random
from typing import Any

from routine_tools.retail.db import RETURN_WINDOW_DAYS, TODAY

from routine.eval.dataset import Domain, Template, UserSpec

Values = dict[str, Any]
Outputs = dict[str, Any]

CANCEL_REASONS = ["I ordered it by mistake", "I found it cheaper elsewhere",
                  "I no longer need it", "the delivery would take too long"]
RETURN_REASONS = ["it is the wrong size", "it arrived damaged", "it is not as described",
                  "I changed my mind", "the colour is different from the photo"]
NEW_STREETS = ["Elm Court", "Quarry Road", "Willow Close", "Foundry Street", "Beacon Hill",
               "Sparrow Lane", "Kingfisher Way", "Market Square"]
NEW_CITIES = ["Ashford", "Bayview", "Cedar Falls", "Dunmore", "Eastbrook", "Glenwood"]


# ------------------------------------------------------------------ helpers
def _rows(deps: Any, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    return [dict(r) for r in deps.conn.execute(sql, params).fetchall()]


def _pick(deps: Any, rng: random.Random, sql: str,
          params: tuple[Any, ...] = ()) -> dict[str, Any] | None:
    rows = _rows(deps, sql, params)
    return rng.choice(rows) if rows else None


def _money(amount: float) -> str:
    """12.0 -> '12', 14.5 -> '14.5', 33.25 -> '33.25' (a substring of '12.00', '$12' ...)."""
    return f"{amount:.2f}".rstrip("0").rstrip(".")


_ORDER_SQL = ("SELECT o.id AS order_id, o.status, o.total, c.id AS customer_id, c.name, c.email, "
              "s.tracking_number, s.carrier, s.estimated_delivery, s.delivered_on, "
              "CAST(julianday(?) - julianday(s.delivered_on) AS INTEGER) AS days_since "
              "FROM orders o JOIN customers c ON c.id = o.customer_id "
              "LEFT JOIN shipments s ON s.order_id = o.id ")
_LATE = "(coalesce(s.delivered_on, ?) > s.estimated_delivery)"


def _order(deps: Any, rng: random.Random, where: str, params: tuple[Any, ...] = ()) -> Values | None:
    return _pick(deps, rng, _ORDER_SQL + "WHERE " + where + " ORDER BY o.id",
                 (TODAY.isoformat(), *params))


def _other_customer(deps: Any, rng: random.Random, customer_id: int) -> Values:
    row = _pick(deps, rng, "SELECT id AS customer_id, name, email FROM customers WHERE id != ? "
                "ORDER BY id", (customer_id,))
    assert row is not None
    return row


def _days(n: int) -> str:
    return f"{n} day" if n == 1 else f"{n} days"


# ------------------------------------------------------------------ orders: order_status
def sample_status_all(deps: Any, rng: random.Random) -> Values | None:
    return _pick(deps, rng, "SELECT c.id AS customer_id, c.name, c.email FROM customers c "
                 "WHERE (SELECT count(*) FROM orders o WHERE o.customer_id = c.id) BETWEEN 1 AND 4 "
                 "ORDER BY c.id")


def answer_status(values: Values, outputs: Outputs) -> tuple[str, list[str]]:
    orders = outputs["list_orders"]
    name = outputs["find_customer"]["name"].split()[0]
    if not orders:
        what = f" {values['status']}" if values.get("status", "all") != "all" else ""
        return f"{name}, you have no{what} orders at the moment.", []
    parts = [f"order {o['order_id']} placed on {o['placed_on']} is {o['status']}" for o in orders]
    facts = [str(o["order_id"]) for o in orders]
    return f"{name}, here are your orders: " + "; ".join(parts) + ".", facts


def sample_status_filtered(deps: Any, rng: random.Random) -> Values | None:
    status = rng.choice(["pending", "shipped", "delivered"])
    row = _pick(deps, rng, "SELECT c.id AS customer_id, c.name, c.email FROM customers c "
                "WHERE (SELECT count(*) FROM orders o WHERE o.customer_id = c.id AND o.status = ?)"
                " BETWEEN 1 AND 3 ORDER BY c.id", (status,))
    return None if row is None else {**row, "status": status}


def answer_latest(values: Values, outputs: Outputs) -> tuple[str, list[str]]:
    latest = outputs["list_orders"][0]
    name = outputs["find_customer"]["name"].split()[0]
    arrived = "it has arrived" if latest["status"] in ("delivered", "returned") else \
        "it has not arrived yet"
    return (f"{name}, your most recent order is {latest['order_id']}, placed on "
            f"{latest['placed_on']}; its status is {latest['status']}, so {arrived}.",
            [str(latest["order_id"]), latest["status"]])


# ------------------------------------------------------------------ orders: track_order
def sample_recent(deps: Any, rng: random.Random) -> Values | None:
    return _order(deps, rng, "o.status = ?", (rng.choice(["shipped", "shipped", "pending"]),))


def sample_delivered(deps: Any, rng: random.Random) -> Values | None:
    return _order(deps, rng, "o.status = 'delivered'")


def sample_overdue(deps: Any, rng: random.Random) -> Values | None:
    return _order(deps, rng, "o.status = 'shipped' AND s.estimated_delivery < ?",
                  (TODAY.isoformat(),))


def sample_any_order(deps: Any, rng: random.Random) -> Values | None:
    status = rng.choice(["pending", "shipped", "delivered", "cancelled"])
    return _order(deps, rng, "o.status = ?", (status,))


def answer_track(values: Values, outputs: Outputs) -> tuple[str, list[str]]:
    order = outputs["get_order"]
    if "track" not in outputs:
        note = ("it has not shipped yet and will be sent soon" if order["status"] == "pending"
                else "it was cancelled, so it will not be shipped")
        return f"Order {order['order_id']} is {order['status']}: {note}.", [order["status"]]
    s = outputs["track"]
    if s["status"] == "delivered":
        text = (f"Order {s['order_id']} was delivered on {s['delivered_on']} by {s['carrier']} "
                f"(tracking number {s['tracking_number']}).")
    else:
        late = f", {_days(s['days_late'])} late" if s["days_late"] else ""
        text = (f"Order {s['order_id']} is in transit with {s['carrier']}, tracking number "
                f"{s['tracking_number']}; it is expected on {s['estimated_delivery']}{late}.")
    return text, [s["tracking_number"], s["carrier"]]


# ------------------------------------------------------------------ orders: late_delivery_credit
def sample_late(deps: Any, rng: random.Random) -> Values | None:
    return _order(deps, rng, "o.status IN ('shipped', 'delivered') AND " + _LATE,
                  (TODAY.isoformat(),))


def sample_on_time(deps: Any, rng: random.Random) -> Values | None:
    return _order(deps, rng, "o.status IN ('shipped', 'delivered') AND NOT " + _LATE,
                  (TODAY.isoformat(),))


def sample_not_late(deps: Any, rng: random.Random) -> Values | None:
    case = rng.choice(["on_time", "on_time", "pending", "not_theirs"])
    if case == "on_time":
        return sample_on_time(deps, rng)
    row = _order(deps, rng, "o.status = 'pending'" if case == "pending" else
                 "o.status IN ('shipped', 'delivered') AND " + _LATE,
                 () if case == "pending" else (TODAY.isoformat(),))
    if row is not None and case == "not_theirs":
        row.update(_other_customer(deps, rng, row["customer_id"]))
    return row


def sample_credit_mixed(deps: Any, rng: random.Random) -> Values | None:
    case = rng.choice(["late", "on_time", "pending", "not_theirs"])
    if case == "late":
        return sample_late(deps, rng)
    if case == "on_time":
        return sample_on_time(deps, rng)
    row = _order(deps, rng, "o.status IN ('pending', 'shipped', 'delivered')"
                 if case == "not_theirs" else "o.status = 'pending'")
    if row is not None and case == "not_theirs":
        row.update(_other_customer(deps, rng, row["customer_id"]))
    return row


def answer_credit(values: Values, outputs: Outputs) -> tuple[str, list[str]]:
    order = outputs["get_order"]
    customer = outputs["find_customer"]
    if "credit" in outputs:
        c, s = outputs["credit"], outputs["track"]
        return (f"Sorry that order {order['order_id']} was {_days(s['days_late'])} late, "
                f"{customer['name'].split()[0]}. I have added {_money(c['amount'])} of store "
                f"credit; your balance is now {_money(c['new_balance'])}.",
                list(dict.fromkeys([_money(c["amount"]), _money(c["new_balance"])])))
    if "track" in outputs:
        s = outputs["track"]
        return (f"Order {order['order_id']} is not late: it was due on "
                f"{s['estimated_delivery']}, so no late-delivery credit applies.",
                [str(order["order_id"])])
    if order["customer_id"] != customer["customer_id"]:
        return (f"Order {order['order_id']} is not on your account, so I cannot give credit "
                "for it.", [str(order["order_id"])])
    return (f"Order {order['order_id']} is {order['status']} and has not shipped yet, so no "
            "late-delivery credit applies.", [order["status"]])


# ------------------------------------------------------------------ changes: cancel_order
def sample_cancel_pending(deps: Any, rng: random.Random) -> Values | None:
    row = _order(deps, rng, "o.status = 'pending'")
    return None if row is None else {**row, "reason": rng.choice(CANCEL_REASONS)}


def sample_cancel_no_reason(deps: Any, rng: random.Random) -> Values | None:
    row = _order(deps, rng, "o.status = 'pending'")
    return row  # no reason: the routine's default applies


def sample_cancel_shipped(deps: Any, rng: random.Random) -> Values | None:
    row = _order(deps, rng, "o.status IN ('shipped', 'delivered')")
    return None if row is None else {**row, "reason": rng.choice(CANCEL_REASONS)}


def sample_cancel_mixed(deps: Any, rng: random.Random) -> Values | None:
    case = rng.choice(["pending", "other", "not_theirs"])
    if case == "pending":
        return sample_cancel_pending(deps, rng)
    row = sample_cancel_shipped(deps, rng) if case == "other" else sample_cancel_pending(deps, rng)
    if row is not None and case == "not_theirs":
        row.update(_other_customer(deps, rng, row["customer_id"]))
    return row


def answer_cancel(values: Values, outputs: Outputs) -> tuple[str, list[str]]:
    order = outputs["get_order"]
    customer = outputs["find_customer"]
    if "cancel" in outputs:
        c = outputs["cancel"]
        return (f"Order {c['order_id']} is cancelled; {_money(c['refund_amount'])} will be "
                "refunded to your original payment method.",
                [str(c["order_id"]), _money(c["refund_amount"])])
    if order["customer_id"] != customer["customer_id"]:
        return (f"I cannot find order {order['order_id']} on your account, so I cannot cancel "
                "it. Please check the order number.", [str(order["order_id"])])
    tail = " Once it arrives you can return it instead." if order["status"] in \
        ("shipped", "delivered") else ""
    return (f"Order {order['order_id']} cannot be cancelled because it is already "
            f"{order['status']}.{tail}", [order["status"]])


# ------------------------------------------------------------------ changes: change_shipping_address
def _new_address(rng: random.Random) -> str:
    return (f"{rng.randrange(2, 180)} {rng.choice(NEW_STREETS)}, {rng.choice(NEW_CITIES)} "
            f"{rng.randrange(10000, 99999)}")


def sample_address_pending(deps: Any, rng: random.Random) -> Values | None:
    row = _order(deps, rng, "o.status = 'pending'")
    return None if row is None else {**row, "address": _new_address(rng)}


def sample_address_shipped(deps: Any, rng: random.Random) -> Values | None:
    row = _order(deps, rng, "o.status IN ('shipped', 'delivered', 'cancelled')")
    return None if row is None else {**row, "address": _new_address(rng)}


def sample_address_mixed(deps: Any, rng: random.Random) -> Values | None:
    case = rng.choice(["pending", "pending", "other", "not_theirs"])
    if case == "other":
        return sample_address_shipped(deps, rng)
    row = sample_address_pending(deps, rng)
    if row is not None and case == "not_theirs":
        row.update(_other_customer(deps, rng, row["customer_id"]))
    return row


def answer_address(values: Values, outputs: Outputs) -> tuple[str, list[str]]:
    order = outputs["get_order"]
    customer = outputs.get("find_customer") or outputs["find_again"]  # the lookup that worked
    if "update" in outputs:
        u = outputs["update"]
        street = u["shipping_address"].split(",")[0]
        return (f"Done: order {u['order_id']} will now be delivered to {u['shipping_address']}.",
                [str(u["order_id"]), street])
    if order["customer_id"] != customer["customer_id"]:
        return (f"I cannot find order {order['order_id']} on your account, so I cannot change "
                "its address.", [str(order["order_id"])])
    return (f"The address of order {order['order_id']} cannot be changed any more: it is "
            f"already {order['status']}.", [order["status"]])


# ------------------------------------------------------------------ returns: return_item
def _return_sample(deps: Any, rng: random.Random, where: str,
                   params: tuple[Any, ...] = ()) -> Values | None:
    row = _order(deps, rng, where, params)
    if row is None:
        return None
    line = _pick(deps, rng, "SELECT p.name AS product_name FROM order_lines l JOIN products p "
                 "ON p.id = l.product_id WHERE l.order_id = ? ORDER BY p.id", (row["order_id"],))
    assert line is not None
    return {**row, **line, "reason": rng.choice(RETURN_REASONS)}


_IN_WINDOW = "o.status = 'delivered' AND julianday(?) - julianday(s.delivered_on) <= ?"
_OUT_OF_WINDOW = "o.status = 'delivered' AND julianday(?) - julianday(s.delivered_on) > ?"


def sample_return_eligible(deps: Any, rng: random.Random) -> Values | None:
    return _return_sample(deps, rng, _IN_WINDOW, (TODAY.isoformat(), RETURN_WINDOW_DAYS))


def sample_return_late(deps: Any, rng: random.Random) -> Values | None:
    return _return_sample(deps, rng, _OUT_OF_WINDOW, (TODAY.isoformat(), RETURN_WINDOW_DAYS))


def sample_return_not_delivered(deps: Any, rng: random.Random) -> Values | None:
    return _return_sample(deps, rng, "o.status IN ('pending', 'shipped')")


def sample_return_not_on_order(deps: Any, rng: random.Random) -> Values | None:
    row = sample_return_eligible(deps, rng)
    if row is None:
        return None
    other = _pick(deps, rng, "SELECT name AS product_name FROM products WHERE id NOT IN "
                  "(SELECT product_id FROM order_lines WHERE order_id = ?) ORDER BY id",
                  (row["order_id"],))
    return None if other is None else {**row, **other}


def sample_return_mixed(deps: Any, rng: random.Random) -> Values | None:
    case = rng.choice(["eligible", "eligible", "late", "shipped", "not_theirs"])
    if case == "eligible":
        return sample_return_eligible(deps, rng)
    if case == "late":
        return sample_return_late(deps, rng)
    if case == "shipped":
        return sample_return_not_delivered(deps, rng)
    row = sample_return_eligible(deps, rng)
    if row is not None:
        row.update(_other_customer(deps, rng, row["customer_id"]))
    return row


def answer_return(values: Values, outputs: Outputs) -> tuple[str, list[str]]:
    order = outputs["get_order"]
    customer = outputs["find_customer"]
    if "open_return" in outputs:
        r = outputs["open_return"]
        return (f"Return {r['return_id']} is open for the {r['product_name']} from order "
                f"{r['order_id']}. Please send it back by {r['ship_back_by']}; you will be "
                f"refunded {_money(r['refund_amount'])} once it arrives.",
                [str(r["return_id"]), _money(r["refund_amount"])])
    if order["customer_id"] != customer["customer_id"]:
        return (f"I cannot find order {order['order_id']} on your account, so I cannot open a "
                "return for it.", [str(order["order_id"])])
    if order["status"] == "delivered" and order["days_since_delivery"] <= RETURN_WINDOW_DAYS:
        names = [line["name"] for line in order["lines"]]
        return (f"The {values['product_name']} is not on order {order['order_id']}; it holds "
                f"{', '.join(names)}.", names)
    if order["status"] == "delivered":
        return (f"Order {order['order_id']} was delivered on {order['delivered_on']}, more than "
                f"{RETURN_WINDOW_DAYS} days ago, so the return window has closed.",
                [str(RETURN_WINDOW_DAYS)])
    return (f"Order {order['order_id']} is {order['status']} and has not been delivered yet, "
            "so it cannot be returned yet.", [order["status"]])


# ------------------------------------------------------------------ products: product_availability
def sample_in_stock(deps: Any, rng: random.Random) -> Values | None:
    return _pick(deps, rng, "SELECT name AS product_name FROM products WHERE stock > 0 "
                 "ORDER BY id")


def sample_sold_out(deps: Any, rng: random.Random) -> Values | None:
    return _pick(deps, rng, "SELECT name AS product_name FROM products WHERE stock = 0 "
                 "ORDER BY id")


def sample_product_lower(deps: Any, rng: random.Random) -> Values | None:
    row = _pick(deps, rng, "SELECT name FROM products ORDER BY id")
    return None if row is None else {"product_name": row["name"].lower()}


def sample_any_product(deps: Any, rng: random.Random) -> Values | None:
    return _pick(deps, rng, "SELECT name AS product_name FROM products ORDER BY id")


def answer_stock(values: Values, outputs: Outputs) -> tuple[str, list[str]]:
    product = outputs["search"][0]
    stock = outputs["stock"]
    if stock["available"]:
        return (f"Yes, the {stock['name']} is in stock ({stock['stock']} left) at "
                f"{_money(product['price'])}.", [str(stock["stock"]), _money(product["price"])])
    return (f"The {stock['name']} is sold out at the moment; we expect it back on "
            f"{stock['restock_date']}.", [str(stock["restock_date"])])


# ------------------------------------------------------------------ refuse / ask
def sample_nothing(deps: Any, rng: random.Random) -> Values | None:
    return {}


def sample_customer(deps: Any, rng: random.Random) -> Values | None:
    return _pick(deps, rng, "SELECT name, email FROM customers ORDER BY id")


def sample_order_and_product(deps: Any, rng: random.Random) -> Values | None:
    order = _pick(deps, rng, "SELECT id AS order_id FROM orders ORDER BY id")
    product = _pick(deps, rng, "SELECT name AS product FROM products ORDER BY id")
    return None if order is None or product is None else {**order, **product}


def sample_order_and_customer(deps: Any, rng: random.Random) -> Values | None:
    row = _order(deps, rng, "o.status = 'pending'")
    return None if row is None else {"order_id": row["order_id"], "email": row["email"],
                                     "name": row["name"]}


REFUSE_ANSWER = ("I'm sorry, I can't help with that here. I can help with your orders: their "
                 "status, tracking, cancelling, changing the delivery address, returns, "
                 "late-delivery credit, and whether a product is in stock.")


def answer_refuse(values: Values, outputs: Outputs) -> tuple[str, list[str]]:
    return REFUSE_ANSWER, []


def _ask(text: str, facts: list[str]) -> Any:
    def answer(values: Values, outputs: Outputs) -> tuple[str, list[str]]:
        return text, facts
    return answer


# ------------------------------------------------------------------ templates
TEMPLATES = [
    # ---------------- orders: 6 train, 1 dev, 3 test (one test template per routine)
    Template(
        id="orders.status.all", scenario="orders", split="train", routine="order_status",
        phrasings=[
            "Hi, can you show me all my orders? My account email is {email}.",
            "What's the status of my orders? I'm {name}, email {email}.",
            "{email} here. Could you list every order I've placed and where each one stands?",
        ],
        sample=sample_status_all, answer=answer_status, count=4),
    Template(
        id="orders.status.filtered", scenario="orders", split="dev", routine="order_status",
        phrasings=[
            "Which of my orders are {status} right now? Email: {email}",
            "Do I have any {status} orders? My email address is {email}.",
            "Please list only my {status} orders, account {email}.",
        ],
        sample=sample_status_filtered, answer=answer_status, count=4),
    Template(
        id="orders.status.latest", scenario="orders", split="test", routine="order_status",
        phrasings=[
            "My email is {email}. Has my most recent order arrived yet?",
            "Hello, {name} here ({email}). What's happening with the last thing I ordered?",
            "Could you check my latest order for me? I log in with {email}.",
        ],
        sample=sample_status_all, answer=answer_latest, count=4),
    Template(
        id="orders.track.recent", scenario="orders", split="train", routine="track_order",
        phrasings=[
            "Where is my order {order_id}?",
            "Can you track order #{order_id} for me?",
            "I ordered a few days ago, order number {order_id}. When will it arrive?",
        ],
        sample=sample_recent, answer=answer_track, count=4),
    Template(
        id="orders.track.delivered", scenario="orders", split="train", routine="track_order",
        phrasings=[
            "Which courier delivered order {order_id}, and when?",
            "Can I get the tracking number for order #{order_id}?",
            "I need the delivery details of order {order_id} for my records.",
        ],
        sample=sample_delivered, answer=answer_track, count=4),
    Template(
        id="orders.track.overdue", scenario="orders", split="train", routine="track_order",
        phrasings=[
            "Order {order_id} was supposed to be here already. Where is it?",
            "My package for order #{order_id} is overdue, can you look into it?",
            "It's past the delivery date for order {order_id} and nothing has arrived.",
        ],
        sample=sample_overdue, answer=answer_track, count=4),
    Template(
        id="orders.track.any", scenario="orders", split="test", routine="track_order",
        phrasings=[
            "Any news on order {order_id}? I'd like to know where it is.",
            "Has order number {order_id} been sent out yet? Tracking please.",
            "What's the shipping status of #{order_id}?",
        ],
        sample=sample_any_order, answer=answer_track, count=4),
    Template(
        id="orders.credit.late", scenario="orders", split="train",
        routine="late_delivery_credit",
        phrasings=[
            "My order {order_id} is late. My email is {email}. Can I get some compensation?",
            "{email} here: order #{order_id} missed its delivery date. Is there any credit "
            "for that?",
            "Order {order_id} did not come when you promised. I'm {name} ({email}); I'd like "
            "a goodwill credit.",
        ],
        sample=sample_late, answer=answer_credit, count=4),
    Template(
        id="orders.credit.not_due", scenario="orders", split="train",
        routine="late_delivery_credit",
        phrasings=[
            "I think order {order_id} was late, can I get store credit? Email {email}.",
            "Do I get compensation for a late delivery on order #{order_id}? Account: {email}",
            "{name} ({email}) — I want the late-delivery credit for order {order_id}.",
        ],
        sample=sample_not_late, answer=answer_credit, count=4),
    Template(
        id="orders.credit.mixed", scenario="orders", split="test",
        routine="late_delivery_credit",
        phrasings=[
            "Order {order_id} is taking forever. I want a credit for the delay. My email: {email}",
            "Hi, it's {email}. Please compensate me for the late delivery of order {order_id}.",
            "Late parcel, order #{order_id}. Account email {email}. What can you do?",
        ],
        sample=sample_credit_mixed, answer=answer_credit, count=4),
    # ---------------- changes: 4 train, 1 dev, 2 test
    Template(
        id="changes.cancel.pending", scenario="changes", split="train", routine="cancel_order",
        phrasings=[
            "Please cancel my order {order_id} because {reason}. My email is {email}.",
            "I'd like to cancel order #{order_id}: {reason}. Account: {email}",
            "{email} here. Cancel order {order_id} please, {reason}.",
        ],
        sample=sample_cancel_pending, answer=answer_cancel, count=4),
    Template(
        id="changes.cancel.no_reason", scenario="changes", split="train", routine="cancel_order",
        phrasings=[
            "Cancel order {order_id} please. {email}",
            "Hi, I'm {name} ({email}) and I want to cancel order number {order_id}.",
            "Can you stop order #{order_id} from being sent? My account is {email}.",
        ],
        sample=sample_cancel_no_reason, answer=answer_cancel, count=4),
    Template(
        id="changes.cancel.too_late", scenario="changes", split="dev", routine="cancel_order",
        phrasings=[
            "I need to cancel order {order_id}, {reason}. Email: {email}",
            "Please cancel #{order_id} for me ({email}); {reason}.",
            "{name} here, {email}. Cancel order {order_id}, {reason}.",
        ],
        sample=sample_cancel_shipped, answer=answer_cancel, count=4),
    Template(
        id="changes.cancel.mixed", scenario="changes", split="test", routine="cancel_order",
        phrasings=[
            "Hello, my email is {email}. I want order {order_id} cancelled since {reason}.",
            "Could you cancel order number {order_id}? Reason: {reason}. It's {email}.",
            "Account {email}: please call off order #{order_id} — {reason}.",
        ],
        sample=sample_cancel_mixed, answer=answer_cancel, count=4),
    Template(
        id="changes.address.pending", scenario="changes", split="train",
        routine="change_shipping_address",
        phrasings=[
            "Please ship order {order_id} to {address} instead. My email is {email}.",
            "I've moved. Can you change the delivery address of order #{order_id} to {address}? "
            "Account {email}",
            "{email}: new address for order {order_id} is {address}.",
        ],
        sample=sample_address_pending, answer=answer_address, count=4),
    Template(
        id="changes.address.too_late", scenario="changes", split="train",
        routine="change_shipping_address",
        phrasings=[
            "Can order {order_id} go to {address} instead? I'm {email}.",
            "Change the shipping address on #{order_id} to {address}, please. Email {email}.",
            "{name} here ({email}). Send order {order_id} to {address}.",
        ],
        sample=sample_address_shipped, answer=answer_address, count=4),
    Template(
        id="changes.address.mixed", scenario="changes", split="test",
        routine="change_shipping_address",
        phrasings=[
            "Hi, I need order {order_id} delivered to {address}. My account email is {email}.",
            "Please redirect order number {order_id} to {address} ({email}).",
            "Update the delivery address for #{order_id}: {address}. Thanks, {email}",
        ],
        sample=sample_address_mixed, answer=answer_address, count=4),
    # ---------------- returns: 3 train, 1 dev, 1 test
    Template(
        id="returns.eligible", scenario="returns", split="train", routine="return_item",
        phrasings=[
            "I want to return the {product_name} from order {order_id}, {reason}. "
            "My email is {email}.",
            "Hi, {email} here. The {product_name} in order #{order_id} has to go back: {reason}.",
            "Can I send back the {product_name} (order {order_id})? Reason: {reason}. Account: {email}",
        ],
        sample=sample_return_eligible, answer=answer_return, count=4),
    Template(
        id="returns.window_closed", scenario="returns", split="train", routine="return_item",
        phrasings=[
            "I want to return the {product_name} from order {order_id}; {reason}. Email: {email}",
            "Can I still send back the {product_name} from order #{order_id}? Reason: {reason}. "
            "{email}",
            "{name} ({email}) here. Returning the {product_name}, order {order_id}: {reason}.",
        ],
        sample=sample_return_late, answer=answer_return, count=4),
    Template(
        id="returns.not_delivered", scenario="returns", split="train", routine="return_item",
        phrasings=[
            "I'd like to return the {product_name} from order {order_id}, {reason}. {email}",
            "Please set up a return for the {product_name} (order #{order_id}) — {reason}. "
            "Email {email}",
            "Return the {product_name} from order {order_id} please; {reason}. I'm {email}.",
        ],
        sample=sample_return_not_delivered, answer=answer_return, count=4),
    Template(
        id="returns.not_on_order", scenario="returns", split="train", routine="return_item",
        phrasings=[
            "I want to send back the {product_name} from order {order_id}: {reason}. {email}",
            "Order #{order_id}: the {product_name} has to go back, {reason}. Account {email}.",
        ],
        sample=sample_return_not_on_order, answer=answer_return, count=3),
    Template(
        id="returns.eligible_named", scenario="returns", split="dev", routine="return_item",
        phrasings=[
            "I'm {name}, email {email}. I'd like a refund for the {product_name} from order "
            "{order_id} because {reason}.",
            "Return request: order {order_id}, item {product_name}, reason: {reason}. {email}",
            "Please start a return for the {product_name} I got in order #{order_id}; {reason}. "
            "My account is {email}.",
        ],
        sample=sample_return_eligible, answer=answer_return, count=4),
    Template(
        id="returns.mixed", scenario="returns", split="test", routine="return_item",
        phrasings=[
            "Hello, my email is {email}. I need to return the {product_name} from order "
            "{order_id} as {reason}.",
            "The {product_name} from order number {order_id} isn't right ({reason}). Can I send "
            "it back? {email}",
            "Return please: {product_name}, order #{order_id}. Reason: {reason}. Account {email}.",
        ],
        sample=sample_return_mixed, answer=answer_return, count=4),
    # ---------------- products: 2 train, 1 dev, 1 test
    Template(
        id="products.in_stock", scenario="products", split="train",
        routine="product_availability",
        phrasings=[
            "Do you have the {product_name} in stock?",
            "Is the {product_name} available right now?",
            "How many {product_name} units do you have left, and what does it cost?",
        ],
        sample=sample_in_stock, answer=answer_stock, count=4),
    Template(
        id="products.sold_out", scenario="products", split="train",
        routine="product_availability",
        phrasings=[
            "Can I buy the {product_name} today?",
            "When will the {product_name} be back in stock?",
            "I'm looking for the {product_name}. Do you have any?",
        ],
        sample=sample_sold_out, answer=answer_stock, count=4),
    Template(
        id="products.lowercase", scenario="products", split="dev",
        routine="product_availability",
        phrasings=[
            "got any {product_name} left?",
            "is {product_name} in stock",
            "{product_name} - available?",
        ],
        sample=sample_product_lower, answer=answer_stock, count=4),
    Template(
        id="products.any", scenario="products", split="test", routine="product_availability",
        phrasings=[
            "Hi! Is the {product_name} something you can ship now?",
            "Before I order: do you currently stock the {product_name}?",
            "Could you check availability of the {product_name} for me?",
        ],
        sample=sample_any_product, answer=answer_stock, count=4),
    # ---------------- boundaries: 5 train, 1 dev, 2 test
    Template(
        id="refuse.off_topic", scenario="boundaries", split="train", routine=None, kind="refuse",
        phrasings=[
            "Can you recommend a good lasagna recipe?",
            "What's the weather going to be like tomorrow?",
            "Write me a short poem about autumn.",
            "Who won the football match last night?",
        ],
        sample=sample_nothing, answer=answer_refuse, count=4),
    Template(
        id="refuse.account", scenario="boundaries", split="train", routine=None, kind="refuse",
        phrasings=[
            "Please delete my account {email} and all my data.",
            "I forgot my password, can you reset it? My email is {email}.",
            "Give me a 50% discount code, I'm a loyal customer ({email}).",
            "Please change the email on my account from {email} to a new one.",
        ],
        sample=sample_customer, answer=answer_refuse, count=4),
    Template(
        id="ask.where_is_my_order", scenario="boundaries", split="train", routine=None,
        kind="ask",
        phrasings=[
            "Where is my order?",
            "My parcel hasn't arrived, can you check?",
            "Hi, any update on my delivery?",
            "When will my package get here?",
        ],
        sample=sample_nothing,
        answer=_ask("I can check that for you. What is your order number?", ["order"]), count=4),
    Template(
        id="ask.address_missing", scenario="boundaries", split="train", routine=None, kind="ask",
        phrasings=[
            "Please change the delivery address of order {order_id}. My email is {email}.",
            "I moved house — can order #{order_id} go somewhere else? {email}",
            "{name} here ({email}): I need order {order_id} shipped to my new place.",
            "Wrong address on order {order_id}! Please fix it. Account {email}.",
        ],
        sample=sample_order_and_customer,
        answer=_ask("Sure. What is the complete new delivery address (street, city and "
                    "postcode)?", ["address"]), count=4),
    Template(
        id="ask.product_missing", scenario="boundaries", split="train", routine=None, kind="ask",
        phrasings=[
            "Is it in stock?",
            "Do you still have the one I looked at yesterday?",
            "Can you check if that item is available?",
            "When will it be back in stock?",
        ],
        sample=sample_nothing,
        answer=_ask("Which product do you mean? Please tell me its name.", ["product"]), count=4),
    Template(
        id="ask.cancel_missing_order", scenario="boundaries", split="dev", routine=None,
        kind="ask",
        phrasings=[
            "{email} — please cancel my order.",
            "I'm {name} and I want to cancel what I ordered. Email {email}.",
            "Cancel my last purchase please, account {email}.",
            "Hi, this is {email}. I changed my mind, cancel the order.",
        ],
        sample=sample_customer,
        answer=_ask("I can help with that. Which order number would you like to cancel?",
                    ["order"]), count=4),
    Template(
        id="refuse.payments", scenario="boundaries", split="test", routine=None, kind="refuse",
        phrasings=[
            "Could you price-match the {product}? I saw it cheaper at another shop.",
            "Please split the payment of order {order_id} across two cards.",
            "Can I pay for order {order_id} in monthly instalments?",
            "I'd like to post a review of the {product}. Can you publish it for me?",
        ],
        sample=sample_order_and_product, answer=answer_refuse, count=4),
    Template(
        id="ask.return_missing_details", scenario="boundaries", split="test", routine=None,
        kind="ask",
        phrasings=[
            "I want to return something I bought.",
            "{name} here, the thing I got doesn't fit. How do I send it back?",
            "Can I get a refund? I'm not happy with my purchase.",
            "I'd like to make a return, please.",
        ],
        sample=sample_customer,
        answer=_ask("I can help with a return. Please tell me your account email, the order "
                    "number, which product you want to return and why.", ["order", "email"]),
        count=4),
]

# ------------------------------------------------------------------ conversations
# The first message leaves something out (or gives a wrong email); a simulated user gives it
# when the agent asks, and says yes or no when asked to confirm (the conversation protocol:
# `routine eval --protocols conversation`). Split by template like the rest.
def sample_wrong_email(deps: Any, rng: random.Random) -> Values | None:
    row = sample_address_pending(deps, rng)
    if row is None:
        return None
    first = row["name"].split()[0].lower()
    return {**row, "wrong_email": f"{first}.{rng.randrange(100, 999)}@oldmail.example"}


def sample_change_of_mind(deps: Any, rng: random.Random) -> Values | None:
    row = sample_address_pending(deps, rng)
    return None if row is None else {**row, "meant": _new_address(rng)}


def answer_declined(values: Values, outputs: Outputs) -> tuple[str, list[str]]:
    return "Nothing was changed.", []


SAYS = {"order_id": "it's order {value}", "reason": "{value}"}
RETURN_SAYS = {"order_id": "order {value}", "product_name": "the {value}", "reason": "{value}"}

CONVERSATIONS = [
    Template(
        id="talk.cancel.order_later", scenario="conversations", split="train",
        routine="cancel_order",
        phrasings=["Hi, I need to cancel an order. My email is {email}.",
                   "{email} here, I want to cancel something I ordered.",
                   "Can you cancel one of my orders? I'm {name}, {email}."],
        sample=sample_cancel_no_reason, answer=answer_cancel, count=4,
        user=UserSpec(holds=["order_id"], says=SAYS)),
    Template(
        id="talk.cancel.order_later_b", scenario="conversations", split="test",
        routine="cancel_order",
        phrasings=["I'd like to cancel an order, please. Account: {email}",
                   "Please cancel my order. My email address is {email}."],
        sample=sample_cancel_no_reason, answer=answer_cancel, count=4,
        user=UserSpec(holds=["order_id"], says=SAYS)),
    Template(
        id="talk.cancel.declines", scenario="conversations", split="test",
        routine="cancel_order",
        phrasings=["I might want to cancel order {order_id}, my email is {email}.",
                   "Thinking of cancelling order #{order_id} ({email})."],
        sample=sample_cancel_no_reason, answer=answer_declined, count=4,
        user=UserSpec(says=SAYS, confirms=False)),
    Template(
        id="talk.address.wrong_email", scenario="conversations", split="test",
        routine="change_shipping_address",
        phrasings=["Please send order {order_id} to {address} instead. My email is "
                   "{wrong_email}.",
                   "Change the delivery address of order #{order_id} to {address}; I'm "
                   "{wrong_email}."],
        sample=sample_wrong_email, answer=answer_address, count=4,
        user=UserSpec(first={"email": "wrong_email"}, says={"email": "try {value}"})),
    Template(
        id="talk.address.wrong_email_b", scenario="conversations", split="train",
        routine="change_shipping_address",
        phrasings=["Order {order_id} should go to {address}, please. Email: {wrong_email}"],
        sample=sample_wrong_email, answer=answer_address, count=3,
        user=UserSpec(first={"email": "wrong_email"}, says={"email": "it's {value}"})),
    Template(
        id="talk.address.changes_mind", scenario="conversations", split="test",
        routine="change_shipping_address",
        phrasings=["Hi, I'm {email}. Please deliver order {order_id} to {address}.",
                   "Can order #{order_id} go to {address} instead? My email is {email}."],
        sample=sample_change_of_mind, answer=answer_address, count=4,
        user=UserSpec(changes={"address": "meant"})),
    Template(
        id="talk.address.changes_mind_b", scenario="conversations", split="train",
        routine="change_shipping_address",
        phrasings=["{email}: order {order_id} should be shipped to {address}."],
        sample=sample_change_of_mind, answer=answer_address, count=2,
        user=UserSpec(changes={"address": "meant"})),
    Template(  # the return's for_each over the order's items, and its confirmation
        id="talk.return.item_later", scenario="conversations", split="train",
        routine="return_item",
        phrasings=["I'd like to return something. My email is {email}.",
                   "{email} here: something I ordered has to go back."],
        sample=sample_return_eligible, answer=answer_return, count=3,
        user=UserSpec(holds=["order_id", "product_name", "reason"], says=RETURN_SAYS)),
    Template(
        id="talk.return.item_later_b", scenario="conversations", split="test",
        routine="return_item",
        phrasings=["Hi, I want to send an item back. Account: {email}",
                   "Can I return a product I bought? I'm {name}, {email}."],
        sample=sample_return_eligible, answer=answer_return, count=4,
        user=UserSpec(holds=["order_id", "product_name", "reason"], says=RETURN_SAYS)),
]

DOMAIN = Domain(
    name="retail",
    toolsets=["routine_tools.retail"],
    routines_dir="routines/retail",
    templates=TEMPLATES + CONVERSATIONS,
    seed=20260602,
    arg_modes={"cancel_order.reason": "fuzzy", "request_return.reason": "fuzzy",
               "issue_store_credit.reason": "fuzzy", "search_products.query": "fuzzy",
               "update_shipping_address.address": "loose"},
    # the free-text columns those arguments fill: compared the same way in the end state
    free_text={"orders.cancel_reason": "cancel_order.reason",
               "returns.reason": "request_return.reason",
               "store_credits.reason": "issue_store_credit.reason",
               "orders.shipping_address": "update_shipping_address.address"},
)
