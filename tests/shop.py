"""A small shop toolset for the conversation constructs' tests (ask, confirm, for_each,
on_error, compute, constants, hand-off): typed tools over an in-memory store, one per run."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from pydantic import BaseModel

from routine import RunContext, Toolset


class Item(BaseModel):
    product_id: int
    name: str
    price: float


class Order(BaseModel):
    order_id: int
    customer_id: int
    status: str
    items: list[Item]
    total: float


class Customer(BaseModel):
    customer_id: int
    name: str


@dataclass
class Store:
    customers: dict[int, tuple[str, str, str]] = field(default_factory=lambda: {
        1: ("Ana Lima", "ana@example.com", "1000"), 2: ("Ben Okoro", "ben@example.com", "2000")})
    orders: dict[int, Order] = field(default_factory=lambda: {
        7: Order(order_id=7, customer_id=1, status="pending", total=30.0, items=[
            Item(product_id=11, name="mug", price=10.0),
            Item(product_id=12, name="lamp", price=20.0)]),
        8: Order(order_id=8, customer_id=2, status="shipped", total=5.0, items=[]),
        9: Order(order_id=9, customer_id=1, status="pending", total=10.0, items=[
            Item(product_id=11, name="mug", price=10.0)])})
    stock: dict[int, int] = field(default_factory=lambda: {11: 4, 12: 0})
    refunds: list[tuple[int, float]] = field(default_factory=list)
    log: list[str] = field(default_factory=list)

    def state_snapshot(self) -> dict[str, dict[str, dict[str, object]]]:
        """What the task and conversation protocols compare."""
        return {"orders": {str(k): {"status": o.status} for k, o in self.orders.items()},
                "refunds": {str(n): {"order_id": o, "amount": a}
                            for n, (o, a) in enumerate(self.refunds)}}


@contextlib.contextmanager
def fresh_store() -> Iterator[Store]:
    yield Store()


shop = Toolset("shop", setup=fresh_store)


@shop.tool
def find_by_email(ctx: RunContext[Store], email: str) -> Customer:
    """Find a customer by email.

    Args:
        email: the customer's email address.
    """
    for cid, (name, mail, _) in ctx.deps.customers.items():
        if mail == email.strip().lower():
            return Customer(customer_id=cid, name=name)
    raise LookupError(f"no customer with the email {email!r}")


@shop.tool
def find_by_name(ctx: RunContext[Store], name: str, zip: str) -> Customer:
    """Find a customer by full name and zip code.

    Args:
        name: the customer's full name.
        zip: the customer's zip code.
    """
    for cid, (full, _, code) in ctx.deps.customers.items():
        if full.lower() == name.strip().lower() and code == zip.strip():
            return Customer(customer_id=cid, name=full)
    raise LookupError(f"no customer named {name!r} with zip {zip!r}")


@shop.tool
def get_order(ctx: RunContext[Store], order_id: int) -> Order:
    """Get an order with its items.

    Args:
        order_id: the order number.
    """
    if order_id not in ctx.deps.orders:
        raise LookupError(f"no order {order_id}")
    return ctx.deps.orders[order_id]


@shop.tool
def check_stock(ctx: RunContext[Store], product_id: int) -> int:
    """How many of a product are in stock.

    Args:
        product_id: the product.
    """
    ctx.deps.log.append(f"stock {product_id}")
    return ctx.deps.stock.get(product_id, 0)


@shop.tool
def cancel_order(ctx: RunContext[Store], order_id: int, reason: str) -> Order:
    """Cancel a pending order.

    Args:
        order_id: the order number.
        reason: why the customer cancels.
    """
    order = ctx.deps.orders[order_id]
    if order.status != "pending":
        raise ValueError(f"order {order_id} is {order.status}, not pending")
    order.status = "cancelled"
    ctx.deps.log.append(f"cancel {order_id}: {reason}")
    return order


@shop.tool
def refund(ctx: RunContext[Store], order_id: int, amount: float) -> float:
    """Refund an amount for an order.

    Args:
        order_id: the order number.
        amount: how much to refund.
    """
    ctx.deps.refunds.append((order_id, amount))
    return amount


CANCEL = """
name: cancel_with_refund
description: Cancel an order after the customer confirms, refunding the total minus a fee.
toolsets: [shop]
constants: {fee: 5, tiers: {gold: 0.1}}
inputs:
  email: {type: string, description: "the customer's email"}
  name: {type: string, description: "the customer's full name", required: false}
  zip: {type: string, description: "the customer's zip code", required: false}
  order_id: {type: integer, description: the order number}
  reason: {type: string, description: why the customer cancels}
steps:
  - id: ask_order
    name: Ask for the order
    description: Ask which order the customer wants to cancel.
    ask: "Which order would you like to cancel, and why?"
    fills: [order_id, reason]
  - id: find_by_email
    name: Find the customer
    description: Find the customer by their email address.
    tool: find_by_email
    args: {email: "${inputs.email}"}
    output: customer
    on_error:
      - id: ask_name
        name: Ask for name and zip
        description: The email is unknown; ask for the full name and zip code instead.
        ask: "I could not find that email. What are your full name and zip code?"
        fills: [name, zip]
      - id: find_by_name
        name: Find the customer by name
        description: Find the customer by full name and zip code.
        tool: find_by_name
        args: {name: "${inputs.name}", zip: "${inputs.zip}"}
        output: customer
  - id: get_order
    name: Get the order
    description: Get the order with its items.
    tool: get_order
    args: {order_id: "${inputs.order_id}"}
  - id: each_item
    name: Check each item
    description: Check the stock of every item of the order.
    for_each: ${steps.get_order.output.items}
    as: item
    steps:
      - id: stock
        name: Check the stock
        description: Check how many of the item are in stock.
        tool: check_stock
        args: {product_id: "${item.product_id}"}
  - id: amounts
    name: Work out the refund
    description: The refund is the order total minus the fee.
    compute:
      amount: {expr: "steps.get_order.output.total - constants.fee", type: number}
  - id: cancel
    name: Cancel the order
    description: Cancel the order with the customer's reason.
    tool: cancel_order
    args: {order_id: "${inputs.order_id}", reason: "${inputs.reason}"}
    confirm: >-
      I will cancel order {{ inputs.order_id }} for {{ vars.customer.name }}
      and refund {{ vars.amount }}. Shall I go ahead?
    on_decline: kept
  - id: pay
    name: Refund
    description: Refund the amount.
    tool: refund
    args: {order_id: "${inputs.order_id}", amount: "${vars.amount}"}
  - id: done
    name: Answer
    description: Tell the customer the order is cancelled and the refund.
    finish: true
    message: "Order {{ inputs.order_id }} is cancelled; {{ vars.amount }} will be refunded."
  - id: kept
    name: Keep the order
    description: The customer declined.
    finish: true
    message: "Nothing was changed: order {{ inputs.order_id }} stays as it is."
"""
