"""Retail customer-service tools over a real SQLite database (see ``db.py``).

Each run gets a fresh copy of the seeded database through the toolset's setup;
every tool takes the run's :class:`RetailDatabase` as its ``RunContext`` deps.
Errors a user could cause (unknown customer or order, an order that can no
longer be changed, a return outside the window, a credit over the limit) raise
``ValueError``/``LookupError`` with a clear message: the executor shows it to
the model. SQL is parameterised; writes run inside ``with conn:`` (one
transaction each).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Literal

from pydantic import BaseModel

from routine import RunContext, Toolset

from .db import (
    MAX_CREDIT,
    MAX_CREDIT_BALANCE,
    RETURN_WINDOW_DAYS,
    RetailDatabase,
    fresh_database,
)

__all__ = ["toolset", "RetailDatabase", "CustomerRef", "Customer", "OrderSummary", "OrderLine",
           "Order", "Shipment", "Cancellation", "ReturnRequest", "ProductMatch", "StockLevel",
           "AddressChange", "StoreCredit"]

toolset = Toolset("retail", setup=fresh_database)

OrderStatus = Literal["pending", "shipped", "delivered", "cancelled", "returned"]
StatusFilter = Literal["all", "pending", "shipped", "delivered", "cancelled", "returned"]


class CustomerRef(BaseModel):
    customer_id: int
    name: str
    email: str


class Customer(BaseModel):
    customer_id: int
    name: str
    email: str
    phone: str
    address: str
    member_since: date
    store_credit: float
    order_count: int


class OrderSummary(BaseModel):
    order_id: int
    placed_on: date
    status: OrderStatus
    total: float
    items: int


class OrderLine(BaseModel):
    product_id: int
    name: str
    quantity: int
    unit_price: float


class Order(BaseModel):
    order_id: int
    customer_id: int
    placed_on: date
    status: OrderStatus
    shipping_address: str
    total: float
    lines: list[OrderLine]
    delivered_on: date | None
    days_since_delivery: int | None


class Shipment(BaseModel):
    order_id: int
    carrier: str
    tracking_number: str
    status: Literal["in_transit", "delivered"]
    shipped_on: date
    estimated_delivery: date
    delivered_on: date | None
    days_late: int


class Cancellation(BaseModel):
    order_id: int
    status: Literal["cancelled"]
    reason: str
    refund_amount: float
    refund_method: str


class ReturnRequest(BaseModel):
    return_id: int
    order_id: int
    product_id: int
    product_name: str
    quantity: int
    reason: str
    status: Literal["requested"]
    refund_amount: float
    ship_back_by: date


class ProductMatch(BaseModel):
    product_id: int
    sku: str
    name: str
    category: str
    price: float


class StockLevel(BaseModel):
    product_id: int
    name: str
    stock: int
    available: bool
    restock_date: date | None


class AddressChange(BaseModel):
    order_id: int
    shipping_address: str
    previous_address: str


class StoreCredit(BaseModel):
    credit_id: int
    customer_id: int
    amount: float
    reason: str
    new_balance: float


def _customer_ref(db: RetailDatabase, customer_id: int) -> CustomerRef:
    row = db.conn.execute("SELECT id AS customer_id, name, email FROM customers WHERE id = ?",
                          (customer_id,)).fetchone()
    if row is None:
        raise LookupError(f"no customer with id {customer_id}")
    return CustomerRef(**dict(row))


def _order_row(db: RetailDatabase, order_id: int) -> dict[str, object]:
    row = db.conn.execute(
        "SELECT id AS order_id, customer_id, placed_on, status, shipping_address, total "
        "FROM orders WHERE id = ?", (order_id,)).fetchone()
    if row is None:
        raise LookupError(f"no order with number {order_id}")
    return dict(row)


@toolset.tool
def find_customer(ctx: RunContext[RetailDatabase], email: str) -> CustomerRef:
    """Find a customer by the email address on their account (case-insensitive).

    Args:
        email: the customer's email address, exactly as written in the request.
    """
    row = ctx.deps.conn.execute(
        "SELECT id AS customer_id, name, email FROM customers WHERE lower(email) = lower(?)",
        (email.strip(),)).fetchone()
    if row is None:
        raise LookupError(f"no customer account with the email {email!r}")
    return CustomerRef(**dict(row))


@toolset.tool
def get_customer(ctx: RunContext[RetailDatabase], customer_id: int) -> Customer:
    """Get a customer's profile: contact details, default address, store-credit balance
    and number of orders.

    Args:
        customer_id: the customer's numeric id (from find_customer).
    """
    conn = ctx.deps.conn
    row = conn.execute("SELECT id AS customer_id, name, email, phone, address, member_since "
                       "FROM customers WHERE id = ?", (customer_id,)).fetchone()
    if row is None:
        raise LookupError(f"no customer with id {customer_id}")
    credit = conn.execute("SELECT coalesce(sum(amount), 0) FROM store_credits "
                          "WHERE customer_id = ?", (customer_id,)).fetchone()[0]
    count = conn.execute("SELECT count(*) FROM orders WHERE customer_id = ?",
                         (customer_id,)).fetchone()[0]
    return Customer(**dict(row), store_credit=round(float(credit), 2), order_count=count)


@toolset.tool
def list_orders(ctx: RunContext[RetailDatabase], customer_id: int,
                status: StatusFilter = "all") -> list[OrderSummary]:
    """List a customer's orders, newest first, optionally only those with one status.

    Args:
        customer_id: the customer's numeric id (from find_customer).
        status: all, or only orders that are pending, shipped, delivered, cancelled or returned.
    """
    conn = ctx.deps.conn
    _customer_ref(ctx.deps, customer_id)
    sql = ("SELECT o.id AS order_id, o.placed_on, o.status, o.total, "
           "(SELECT coalesce(sum(quantity), 0) FROM order_lines l WHERE l.order_id = o.id) "
           "AS items FROM orders o WHERE o.customer_id = ?")
    params: tuple[object, ...] = (customer_id,)
    if status != "all":
        sql += " AND o.status = ?"
        params += (status,)
    rows = conn.execute(sql + " ORDER BY o.placed_on DESC, o.id DESC", params).fetchall()
    return [OrderSummary(**dict(r)) for r in rows]


@toolset.tool
def get_order(ctx: RunContext[RetailDatabase], order_id: int) -> Order:
    """Get an order with its lines, status, shipping address and, once delivered, the
    delivery date and how many days ago that was.

    Args:
        order_id: the order number.
    """
    db = ctx.deps
    order = _order_row(db, order_id)
    lines = db.conn.execute(
        "SELECT l.product_id, p.name, l.quantity, l.unit_price FROM order_lines l "
        "JOIN products p ON p.id = l.product_id WHERE l.order_id = ? ORDER BY l.product_id",
        (order_id,)).fetchall()
    row = db.conn.execute("SELECT delivered_on FROM shipments WHERE order_id = ?",
                          (order_id,)).fetchone()
    delivered = date.fromisoformat(row[0]) if row is not None and row[0] else None
    return Order(**order, lines=[OrderLine(**dict(r)) for r in lines], delivered_on=delivered,
                 days_since_delivery=(db.today - delivered).days if delivered else None)


@toolset.tool
def track_shipment(ctx: RunContext[RetailDatabase], order_id: int) -> Shipment:
    """Track the parcel of a shipped order: carrier, tracking number, estimated and actual
    delivery dates, and how many days late it is (0 when on time).

    Args:
        order_id: the order number.
    """
    db = ctx.deps
    row = db.conn.execute(
        "SELECT s.order_id, s.carrier, s.tracking_number, s.shipped_on, s.estimated_delivery, "
        "s.delivered_on, o.status FROM orders o LEFT JOIN shipments s ON s.order_id = o.id "
        "WHERE o.id = ?", (order_id,)).fetchone()
    if row is None:
        raise LookupError(f"no order with number {order_id}")
    if row["order_id"] is None:
        raise LookupError(f"order {order_id} has not shipped (its status is {row['status']}), "
                          "so there is nothing to track")
    eta = date.fromisoformat(row["estimated_delivery"])
    delivered = date.fromisoformat(row["delivered_on"]) if row["delivered_on"] else None
    late = ((delivered or db.today) - eta).days
    return Shipment(order_id=order_id, carrier=row["carrier"],
                    tracking_number=row["tracking_number"],
                    status="delivered" if delivered else "in_transit",
                    shipped_on=date.fromisoformat(row["shipped_on"]), estimated_delivery=eta,
                    delivered_on=delivered, days_late=max(late, 0))


@toolset.tool
def cancel_order(ctx: RunContext[RetailDatabase], order_id: int, reason: str) -> Cancellation:
    """Cancel an order that has not shipped yet (status pending): its items go back into
    stock and the full amount is refunded to the original payment method.

    Args:
        order_id: the order number.
        reason: why the customer wants to cancel, in a few words.
    """
    db = ctx.deps
    order = _order_row(db, order_id)
    if order["status"] != "pending":
        raise ValueError(f"order {order_id} is {order['status']}: only pending orders can be "
                         "cancelled")
    if not reason.strip():
        raise ValueError("a cancellation needs a reason")
    with db.conn:
        db.conn.execute("UPDATE orders SET status = 'cancelled', cancel_reason = ? WHERE id = ?",
                        (reason.strip(), order_id))
        db.conn.execute("UPDATE products SET stock = stock + (SELECT l.quantity FROM order_lines "
                        "l WHERE l.order_id = ? AND l.product_id = products.id) WHERE id IN "
                        "(SELECT product_id FROM order_lines WHERE order_id = ?)",
                        (order_id, order_id))
        db.conn.execute("INSERT INTO refunds (order_id, amount, method, issued_on, reason) "
                        "VALUES (?, ?, 'original_payment', ?, 'order cancelled')",
                        (order_id, order["total"], db.today.isoformat()))
    return Cancellation(order_id=order_id, status="cancelled", reason=reason.strip(),
                        refund_amount=float(order["total"]),  # type: ignore[arg-type]
                        refund_method="original_payment")


@toolset.tool
def request_return(ctx: RunContext[RetailDatabase], order_id: int, product_id: int,
                   reason: str) -> ReturnRequest:
    """Open a return for one product of a delivered order, within 30 days of delivery.
    The refund is paid once the item is back.

    Args:
        order_id: the order number.
        product_id: the numeric id of the product to send back (it must be on the order).
        reason: why the customer returns it, in a few words.
    """
    db = ctx.deps
    order = _order_row(db, order_id)
    if order["status"] != "delivered":
        raise ValueError(f"order {order_id} is {order['status']}: only delivered orders can be "
                         "returned")
    row = db.conn.execute("SELECT delivered_on FROM shipments WHERE order_id = ?",
                          (order_id,)).fetchone()
    delivered = date.fromisoformat(row[0])
    if (db.today - delivered).days > RETURN_WINDOW_DAYS:
        raise ValueError(f"order {order_id} was delivered on {delivered}, more than "
                         f"{RETURN_WINDOW_DAYS} days ago: the return window has closed")
    line = db.conn.execute(
        "SELECT p.name, l.quantity, l.unit_price FROM order_lines l JOIN products p "
        "ON p.id = l.product_id WHERE l.order_id = ? AND l.product_id = ?",
        (order_id, product_id)).fetchone()
    if line is None:
        raise LookupError(f"product {product_id} is not on order {order_id}")
    if db.conn.execute("SELECT 1 FROM returns WHERE order_id = ? AND product_id = ?",
                       (order_id, product_id)).fetchone():
        raise ValueError(f"a return for product {product_id} of order {order_id} already exists")
    if not reason.strip():
        raise ValueError("a return needs a reason")
    refund = round(line["quantity"] * line["unit_price"], 2)
    with db.conn:
        cur = db.conn.execute(
            "INSERT INTO returns (order_id, product_id, quantity, reason, status, requested_on,"
            " refund_amount) VALUES (?, ?, ?, ?, 'requested', ?, ?)",
            (order_id, product_id, line["quantity"], reason.strip(), db.today.isoformat(),
             refund))
        left = db.conn.execute(
            "SELECT count(*) FROM order_lines l WHERE l.order_id = ? AND NOT EXISTS "
            "(SELECT 1 FROM returns r WHERE r.order_id = l.order_id AND "
            "r.product_id = l.product_id)", (order_id,)).fetchone()[0]
        if left == 0:
            db.conn.execute("UPDATE orders SET status = 'returned' WHERE id = ?", (order_id,))
    return ReturnRequest(return_id=int(cur.lastrowid or 0), order_id=order_id,
                         product_id=product_id, product_name=line["name"],
                         quantity=line["quantity"], reason=reason.strip(), status="requested",
                         refund_amount=refund, ship_back_by=db.today + timedelta(days=14))


@toolset.tool
def search_products(ctx: RunContext[RetailDatabase], query: str) -> list[ProductMatch]:
    """Search the catalogue by product name or category (case-insensitive); an exact name
    match comes first. At most ten results.

    Args:
        query: the product name, part of it, or a category.
    """
    text = query.strip()
    if not text:
        raise ValueError("the search query is empty")
    rows = ctx.deps.conn.execute(
        "SELECT id AS product_id, sku, name, category, price FROM products "
        "WHERE lower(name) LIKE lower(?) OR lower(category) = lower(?) OR lower(sku) = lower(?) "
        "ORDER BY lower(name) = lower(?) DESC, id LIMIT 10",
        (f"%{text}%", text, text, text)).fetchall()
    if not rows:
        raise LookupError(f"no product matches {query!r}")
    return [ProductMatch(**dict(r)) for r in rows]


@toolset.tool
def check_stock(ctx: RunContext[RetailDatabase], product_id: int) -> StockLevel:
    """Check how many units of a product are in stock and, when sold out, the expected
    restock date.

    Args:
        product_id: the product's numeric id (from search_products).
    """
    row = ctx.deps.conn.execute("SELECT id AS product_id, name, stock, restock_date "
                                "FROM products WHERE id = ?", (product_id,)).fetchone()
    if row is None:
        raise LookupError(f"no product with id {product_id}")
    return StockLevel(product_id=row["product_id"], name=row["name"], stock=row["stock"],
                      available=row["stock"] > 0,
                      restock_date=date.fromisoformat(row["restock_date"])
                      if row["restock_date"] else None)


@toolset.tool
def update_shipping_address(ctx: RunContext[RetailDatabase], order_id: int,
                            address: str) -> AddressChange:
    """Change the delivery address of an order that has not shipped yet (status pending).

    Args:
        order_id: the order number.
        address: the complete new delivery address (street, city and postcode).
    """
    db = ctx.deps
    order = _order_row(db, order_id)
    if order["status"] != "pending":
        raise ValueError(f"order {order_id} is {order['status']}: the address can only be "
                         "changed while the order is pending")
    new = " ".join(address.split())
    if len(new) < 8 or not any(c.isdigit() for c in new):
        raise ValueError(f"{address!r} is not a complete address (street, city and postcode)")
    if len(new) > 200:
        raise ValueError("the address is longer than 200 characters")
    with db.conn:
        db.conn.execute("UPDATE orders SET shipping_address = ? WHERE id = ?", (new, order_id))
    return AddressChange(order_id=order_id, shipping_address=new,
                         previous_address=str(order["shipping_address"]))


@toolset.tool
def issue_store_credit(ctx: RunContext[RetailDatabase], customer_id: int, amount: float,
                       reason: str) -> StoreCredit:
    """Give a customer store credit as a goodwill gesture: at most 50 at a time, and a
    balance of at most 250.

    Args:
        customer_id: the customer's numeric id (from find_customer).
        amount: the credit to add, in the shop's currency (more than 0, at most 50).
        reason: why the credit is given, in a few words.
    """
    db = ctx.deps
    _customer_ref(db, customer_id)
    amount = round(amount, 2)
    if amount <= 0:
        raise ValueError(f"the amount must be positive (got {amount:g})")
    if amount > MAX_CREDIT:
        raise ValueError(f"at most {MAX_CREDIT:g} of store credit can be issued at once "
                         f"(asked {amount:g})")
    if not reason.strip():
        raise ValueError("store credit needs a reason")
    balance = db.conn.execute("SELECT coalesce(sum(amount), 0) FROM store_credits "
                              "WHERE customer_id = ?", (customer_id,)).fetchone()[0]
    if balance + amount > MAX_CREDIT_BALANCE:
        raise ValueError(f"customer {customer_id} has {balance:g} of store credit; adding "
                         f"{amount:g} would exceed the {MAX_CREDIT_BALANCE:g} limit")
    with db.conn:
        cur = db.conn.execute("INSERT INTO store_credits (customer_id, amount, reason, issued_on)"
                              " VALUES (?, ?, ?, ?)",
                              (customer_id, amount, reason.strip(), db.today.isoformat()))
    return StoreCredit(credit_id=int(cur.lastrowid or 0), customer_id=customer_id, amount=amount,
                       reason=reason.strip(), new_balance=round(balance + amount, 2))
