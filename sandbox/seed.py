"""The sandbox's demo application database: a small shop with related tables and realistic rows.

Deterministic (fixed random seed), so tests can state exact row counts. It carries a
`schema_migrations` table like the ones the deploy flow's migrations write, and a read-only
validation role like the one the backup flow counts rows with.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg import sql

ROW_COUNTS = {"customers": 800, "products": 120, "orders": 2000, "order_items": 5000}
VALIDATION_USER = "opsflows_validator"
VALIDATION_PASSWORD = "sandbox-validator"

SCHEMA = """
CREATE TABLE schema_migrations (
    version    text PRIMARY KEY,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE customers (
    id         bigint PRIMARY KEY,
    email      text NOT NULL UNIQUE,
    full_name  text NOT NULL,
    country    char(2) NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE TABLE products (
    id          bigint PRIMARY KEY,
    sku         text NOT NULL UNIQUE,
    name        text NOT NULL,
    price_cents integer NOT NULL CHECK (price_cents > 0)
);
CREATE TABLE orders (
    id          bigint PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES customers (id),
    status      text NOT NULL,
    placed_at   timestamptz NOT NULL
);
CREATE INDEX orders_customer ON orders (customer_id);
CREATE TABLE order_items (
    id          bigint PRIMARY KEY,
    order_id    bigint NOT NULL REFERENCES orders (id),
    product_id  bigint NOT NULL REFERENCES products (id),
    quantity    integer NOT NULL CHECK (quantity > 0)
);
CREATE INDEX order_items_order ON order_items (order_id);
INSERT INTO schema_migrations (version, checksum) VALUES
    ('0001_initial', 'sandbox-seed'), ('0002_order_items', 'sandbox-seed');
"""

_FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Tim"]
_LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Perlman", "Lee"]
_COUNTRIES = ["DE", "FR", "GB", "US", "NL", "SE", "ES", "IT"]
_STATUSES = ["placed", "paid", "shipped", "delivered", "refunded"]


def seed_app_database(dsn: str) -> dict[str, int]:
    """Create and fill the demo schema in the (empty) database at `dsn`; returns the row counts."""
    rng = random.Random(20261123)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with psycopg.connect(dsn) as conn:
        conn.execute(SCHEMA)
        with conn.cursor() as cur:
            with cur.copy("COPY customers (id, email, full_name, country, created_at) FROM STDIN") as copy:
                for i in range(1, ROW_COUNTS["customers"] + 1):
                    first, last = rng.choice(_FIRST), rng.choice(_LAST)
                    copy.write_row(
                        (
                            i,
                            f"{first}.{last}.{i}@example.com".lower(),
                            f"{first} {last}",
                            rng.choice(_COUNTRIES),
                            start + timedelta(minutes=rng.randint(0, 400_000)),
                        )
                    )
            with cur.copy("COPY products (id, sku, name, price_cents) FROM STDIN") as copy:
                for i in range(1, ROW_COUNTS["products"] + 1):
                    copy.write_row((i, f"SKU-{i:05d}", f"Product {i}", rng.randint(199, 49_999)))
            with cur.copy("COPY orders (id, customer_id, status, placed_at) FROM STDIN") as copy:
                for i in range(1, ROW_COUNTS["orders"] + 1):
                    copy.write_row(
                        (
                            i,
                            rng.randint(1, ROW_COUNTS["customers"]),
                            rng.choice(_STATUSES),
                            start + timedelta(minutes=rng.randint(0, 400_000)),
                        )
                    )
            with cur.copy("COPY order_items (id, order_id, product_id, quantity) FROM STDIN") as copy:
                for i in range(1, ROW_COUNTS["order_items"] + 1):
                    copy.write_row(
                        (
                            i,
                            rng.randint(1, ROW_COUNTS["orders"]),
                            rng.randint(1, ROW_COUNTS["products"]),
                            rng.randint(1, 5),
                        )
                    )
    return dict(ROW_COUNTS)


def create_validation_user(dsn: str, database: str) -> None:
    """The read-only role the backup flow counts rows and reads the schema with."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (VALIDATION_USER,)).fetchone()
        if not exists:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(VALIDATION_USER), sql.Literal(VALIDATION_PASSWORD)
                )
            )
        conn.execute(
            sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                sql.Identifier(database), sql.Identifier(VALIDATION_USER)
            )
        )
        conn.execute(sql.SQL("GRANT pg_read_all_data TO {}").format(sql.Identifier(VALIDATION_USER)))
