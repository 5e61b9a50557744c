"""The retail scenario's SQLite database: schema, deterministic seed, a fresh copy per run.

An online shop's customer-service back office: customers, products with stock,
orders with their lines, shipments with tracking numbers, returns, refunds and
a store-credit ledger. The seeded database is built once per process (fixed
seed, fixed scenario date, so every machine gets the same rows) and each run
gets its own in-memory copy through SQLite's backup API: runs never see each
other's writes.
"""

from __future__ import annotations

import contextlib
import random
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta

from routine.tools.sqlite import SeededSqlite, Snapshot, snapshot, state_digest

__all__ = ["RetailDatabase", "fresh_database", "build_database", "SEED", "TODAY",
           "RETURN_WINDOW_DAYS", "MAX_CREDIT", "MAX_CREDIT_BALANCE"]

SEED = 20260602
TODAY = date(2026, 6, 1)  # the scenario's fixed "today": gold data never goes stale
RETURN_WINDOW_DAYS = 30  # items can be returned up to this many days after delivery
MAX_CREDIT = 50.0  # the most store credit one agent may issue at once
MAX_CREDIT_BALANCE = 250.0  # no customer's store-credit balance may go above this

SCHEMA = """
CREATE TABLE customers (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT NOT NULL UNIQUE,
    phone TEXT NOT NULL,
    address TEXT NOT NULL,
    member_since TEXT NOT NULL
);
CREATE TABLE products (
    id INTEGER PRIMARY KEY,
    sku TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL UNIQUE,
    category TEXT NOT NULL,
    price REAL NOT NULL,
    stock INTEGER NOT NULL,
    restock_date TEXT
);
CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers(id),
    placed_on TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN
        ('pending', 'shipped', 'delivered', 'cancelled', 'returned')),
    shipping_address TEXT NOT NULL,
    total REAL NOT NULL,
    cancel_reason TEXT
);
CREATE TABLE order_lines (
    order_id INTEGER NOT NULL REFERENCES orders(id),
    product_id INTEGER NOT NULL REFERENCES products(id),
    quantity INTEGER NOT NULL,
    unit_price REAL NOT NULL,
    PRIMARY KEY (order_id, product_id)
);
CREATE TABLE shipments (
    id INTEGER PRIMARY KEY,
    order_id INTEGER NOT NULL UNIQUE REFERENCES orders(id),
    carrier TEXT NOT NULL,
    tracking_number TEXT NOT NULL UNIQUE,
    shipped_on TEXT NOT NULL,
    estimated_delivery TEXT NOT NULL,
    delivered_on TEXT
);
CREATE TABLE returns (
    id INTEGER PRIMARY KEY,
    order_id INTEGER NOT NULL REFERENCES orders(id),
    product_id INTEGER NOT NULL REFERENCES products(id),
    quantity INTEGER NOT NULL,
    reason TEXT NOT NULL,
    status TEXT NOT NULL,
    requested_on TEXT NOT NULL,
    refund_amount REAL NOT NULL,
    UNIQUE (order_id, product_id)
);
CREATE TABLE refunds (
    id INTEGER PRIMARY KEY,
    order_id INTEGER NOT NULL REFERENCES orders(id),
    amount REAL NOT NULL,
    method TEXT NOT NULL,
    issued_on TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE TABLE store_credits (
    id INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers(id),
    amount REAL NOT NULL,
    reason TEXT NOT NULL,
    issued_on TEXT NOT NULL
);
"""

FIRST = ["Amara", "Benedikt", "Camila", "Dmitri", "Elif", "Farah", "Gideon", "Helga", "Ines",
         "Jonas", "Keiko", "Luca", "Malik", "Nora", "Otto", "Paloma", "Rafael", "Sana",
         "Tobias", "Uma", "Viktor", "Wanda", "Yara", "Zeynep"]
LAST = ["Abara", "Bergstrom", "Castillo", "Delacroix", "Engel", "Ferreira", "Grant", "Haddad",
        "Iqbal", "Jovanovic", "Keller", "Lindqvist", "Mensah", "Novak", "Oyelaran", "Pereira",
        "Ramos", "Sorensen", "Takahashi", "Valdez"]
STREETS = ["Maple Street", "Harbor Road", "Linden Avenue", "Station Road", "Mill Lane",
           "Orchard Way", "Bridge Street", "Park Terrace", "Canal Walk", "Hill Crescent"]
CITIES = ["Springfield", "Riverton", "Lakeside", "Fairview", "Brookfield", "Oakridge",
          "Millbrook", "Westport"]
# (name, category, price): every name is unique and no name contains another one
PRODUCTS = [
    ("Trailblazer Hiking Boots", "footwear", 129.0),
    ("Cloudstep Running Shoes", "footwear", 99.0),
    ("Harbor Canvas Sneakers", "footwear", 59.0),
    ("Alpine Wool Socks", "footwear", 14.5),
    ("Summit Rain Jacket", "clothing", 149.0),
    ("Meadow Linen Shirt", "clothing", 45.0),
    ("Nordic Knit Sweater", "clothing", 79.0),
    ("Everyday Chino Trousers", "clothing", 55.0),
    ("Breeze Cotton T-Shirt", "clothing", 19.0),
    ("Glacier Down Vest", "clothing", 110.0),
    ("Aurora Desk Lamp", "home", 39.0),
    ("Ember Ceramic Mug", "home", 12.0),
    ("Terra Cotta Planter", "home", 24.0),
    ("Driftwood Picture Frame", "home", 18.0),
    ("Velvet Throw Blanket", "home", 65.0),
    ("Copper Pour-Over Kettle", "kitchen", 58.0),
    ("Granite Mortar and Pestle", "kitchen", 34.0),
    ("Bamboo Cutting Board", "kitchen", 27.0),
    ("Cast Iron Skillet", "kitchen", 45.0),
    ("Espresso Tamper", "kitchen", 22.0),
    ("Stainless Water Bottle", "outdoor", 29.0),
    ("Ridge Trekking Poles", "outdoor", 89.0),
    ("Basecamp Two-Person Tent", "outdoor", 239.0),
    ("Lantern Solar Light", "outdoor", 35.0),
    ("Compact Camping Stove", "outdoor", 64.0),
    ("Nimbus Wireless Earbuds", "electronics", 119.0),
    ("Pulse Fitness Tracker", "electronics", 89.0),
    ("Volt Power Bank", "electronics", 42.0),
    ("Echo Bluetooth Speaker", "electronics", 74.0),
    ("Lumen E-Reader", "electronics", 139.0),
    ("Quill Fountain Pen", "stationery", 48.0),
    ("Atlas Leather Notebook", "stationery", 32.0),
    ("Sketch Graphite Pencils", "stationery", 11.0),
    ("Orbit Desk Organizer", "stationery", 26.0),
    ("Pixel Jigsaw Puzzle", "toys", 21.0),
    ("Rocket Building Blocks", "toys", 49.0),
    ("Marble Run Set", "toys", 38.0),
    ("Plush Otter Toy", "toys", 17.0),
    ("Yoga Cork Block", "sports", 16.0),
    ("Tempo Jump Rope", "sports", 13.0),
]
CARRIERS = {"ParcelPost": "PP", "SwiftShip": "SS", "NorthLine Freight": "NL"}
STATUS_WEIGHTS = {"pending": 14, "shipped": 20, "delivered": 46, "cancelled": 10, "returned": 10}
RETURN_REASONS = ["wrong size", "arrived damaged", "not as described", "changed my mind"]
CANCEL_REASONS = ["ordered by mistake", "found it cheaper elsewhere", "no longer needed"]


def build_database(conn: sqlite3.Connection, seed: int = SEED, customers: int = 80,
                   orders: int = 250) -> None:
    """Create the schema and seed it deterministically (same seed, same rows)."""
    rng = random.Random(seed)
    conn.executescript(SCHEMA)
    names = [f"{f} {last}" for f in FIRST for last in LAST]
    rng.shuffle(names)
    for cid, name in enumerate(names[:customers], 1):
        email = name.lower().replace(" ", ".") + "@example.net"
        address = (f"{rng.randrange(1, 200)} {rng.choice(STREETS)}, {rng.choice(CITIES)} "
                   f"{rng.randrange(10000, 99999)}")
        phone = f"+1-555-{rng.randrange(1000, 9999)}"
        since = date(2019, 1, 1) + timedelta(days=rng.randrange(0, 2400))
        conn.execute("INSERT INTO customers VALUES (?, ?, ?, ?, ?, ?)",
                     (cid, name, email, phone, address, since.isoformat()))
    for pid, (name, category, price) in enumerate(PRODUCTS, 1):
        out_of_stock = pid % 7 == 3  # a few products are sold out
        stock = 0 if out_of_stock else rng.randrange(1, 60)
        restock = (TODAY + timedelta(days=rng.randrange(5, 30))).isoformat() if out_of_stock \
            else None
        sku = f"{category[:3].upper()}-{1000 + pid * 7}"
        conn.execute("INSERT INTO products VALUES (?, ?, ?, ?, ?, ?, ?)",
                     (pid, sku, name, category, price, stock, restock))
    statuses = list(STATUS_WEIGHTS)
    weights = list(STATUS_WEIGHTS.values())
    tracking_seq = 0
    for n in range(orders):
        oid = 40001 + n
        cid = rng.randrange(1, customers + 1)
        status = rng.choices(statuses, weights)[0]
        address = conn.execute("SELECT address FROM customers WHERE id = ?", (cid,)).fetchone()[0]
        if status == "pending":
            placed = TODAY - timedelta(days=rng.randrange(0, 4))
        elif status == "shipped":
            placed = TODAY - timedelta(days=rng.randrange(3, 12))
        elif status == "cancelled":
            placed = TODAY - timedelta(days=rng.randrange(1, 80))
        else:
            placed = TODAY - timedelta(days=rng.randrange(8, 95))
        chosen = rng.sample(range(1, len(PRODUCTS) + 1), rng.choice([1, 1, 2, 2, 3]))
        total = 0.0
        for pid in sorted(chosen):
            qty = rng.choice([1, 1, 1, 2])
            price = PRODUCTS[pid - 1][2]
            total += qty * price
            conn.execute("INSERT INTO order_lines VALUES (?, ?, ?, ?)", (oid, pid, qty, price))
        total = round(total, 2)
        conn.execute("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?)",
                     (oid, cid, placed.isoformat(), status, address, total,
                      rng.choice(CANCEL_REASONS) if status == "cancelled" else None))
        if status == "cancelled":
            conn.execute("INSERT INTO refunds (order_id, amount, method, issued_on, reason) "
                         "VALUES (?, ?, 'original_payment', ?, 'order cancelled')",
                         (oid, total, (placed + timedelta(days=1)).isoformat()))
        if status in ("shipped", "delivered", "returned"):
            carrier = rng.choice(sorted(CARRIERS))
            tracking_seq += 1
            tracking = f"{CARRIERS[carrier]}{rng.randrange(10**8, 10**9)}{tracking_seq:03d}"
            shipped = placed + timedelta(days=rng.randrange(1, 3))
            eta = shipped + timedelta(days=rng.randrange(3, 6))
            delivered = None
            if status != "shipped":
                delivered = eta + timedelta(days=rng.choice([-1, 0, 0, 0, 1, 2, 4]))
                delivered = min(delivered, TODAY - timedelta(days=1))
            conn.execute("INSERT INTO shipments (order_id, carrier, tracking_number, shipped_on,"
                         " estimated_delivery, delivered_on) VALUES (?, ?, ?, ?, ?, ?)",
                         (oid, carrier, tracking, shipped.isoformat(), eta.isoformat(),
                          delivered.isoformat() if delivered else None))
            if status == "returned":
                assert delivered is not None
                requested = min(delivered + timedelta(days=rng.randrange(1, 20)), TODAY)
                reason = rng.choice(RETURN_REASONS)
                lines = conn.execute("SELECT product_id, quantity, unit_price FROM order_lines "
                                     "WHERE order_id = ? ORDER BY product_id", (oid,)).fetchall()
                for pid, qty, price in lines:
                    conn.execute("INSERT INTO returns (order_id, product_id, quantity, reason,"
                                 " status, requested_on, refund_amount) VALUES"
                                 " (?, ?, ?, ?, 'refunded', ?, ?)",
                                 (oid, pid, qty, reason, requested.isoformat(),
                                  round(qty * price, 2)))
                conn.execute("INSERT INTO refunds (order_id, amount, method, issued_on, reason) "
                             "VALUES (?, ?, 'original_payment', ?, 'items returned')",
                             (oid, total, requested.isoformat()))
    for cid in range(1, customers + 1):
        if rng.random() < 0.3:
            amount = float(rng.choice([5, 10, 15, 20, 25]))
            issued = TODAY - timedelta(days=rng.randrange(10, 300))
            conn.execute("INSERT INTO store_credits (customer_id, amount, reason, issued_on) "
                         "VALUES (?, ?, 'goodwill gesture', ?)", (cid, amount, issued.isoformat()))
    conn.commit()


_SEEDED = SeededSqlite(build_database)


@dataclass
class RetailDatabase:
    """Per-run state of the retail tools: a private connection and the scenario's date."""

    conn: sqlite3.Connection
    today: date = TODAY

    def state_digest(self) -> str:
        """SHA-256 of the database's full state (schema and every row)."""
        return state_digest(self.conn)

    def state_snapshot(self) -> Snapshot:
        """Every row of every table (what the task protocol compares, column by column)."""
        return snapshot(self.conn)


@contextlib.contextmanager
def fresh_database() -> Iterator[RetailDatabase]:
    """A private in-memory copy of the seeded database for one run."""
    with _SEEDED.connect() as conn:
        yield RetailDatabase(conn)
