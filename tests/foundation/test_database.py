"""Database facts (manifest contents) and SQL migrations, on real PostgreSQL."""

from __future__ import annotations

import psycopg
import pytest
from prefect import flow

from sandbox.seed import ROW_COUNTS, seed_app_database
from tasks.database import apply_migrations, inspect_database
from tasks.errors import InvalidInput, UnsafeOperation


@pytest.fixture
def shop(fresh_database):
    seed_app_database(fresh_database)
    return fresh_database


def test_facts_match_the_seeded_data_and_the_fingerprint_is_stable(shop):
    facts = inspect_database.fn(shop)
    assert facts.row_counts == {f"public.{table}": n for table, n in ROW_COUNTS.items()} | {
        "public.schema_migrations": 2
    }
    assert facts.migrations_head == "0002_order_items"
    assert facts.server_version.startswith("15")
    assert inspect_database.fn(shop).schema_fingerprint == facts.schema_fingerprint


@pytest.mark.parametrize(
    "change",
    [
        "ALTER TABLE customers ADD COLUMN phone text",
        "ALTER TABLE products ALTER COLUMN name DROP NOT NULL",
        "CREATE INDEX products_name ON products (name)",
        "DROP TABLE order_items",
    ],
)
def test_the_fingerprint_changes_with_the_schema(shop, change):
    before = inspect_database.fn(shop).schema_fingerprint
    with psycopg.connect(shop, autocommit=True) as conn:
        conn.execute(change)
    assert inspect_database.fn(shop).schema_fingerprint != before


@flow
def migrate(dsn: str, directory: str) -> list[str]:
    from pathlib import Path

    return apply_migrations(dsn, Path(directory))


def test_migrations_apply_once_in_order_and_refuse_edited_files(prefect_server, shop, tmp_path):
    (tmp_path / "0003_phone.sql").write_text("ALTER TABLE customers ADD COLUMN phone text;")
    (tmp_path / "0004_index.sql").write_text("CREATE INDEX customers_phone ON customers (phone);")
    assert migrate(shop, str(tmp_path)) == ["0003_phone", "0004_index"]
    assert migrate(shop, str(tmp_path)) == []
    (tmp_path / "0003_phone.sql").write_text("ALTER TABLE customers ADD COLUMN phone varchar(20);")
    (tmp_path / "0005_more.sql").write_text("ALTER TABLE customers ADD COLUMN fax text;")
    with pytest.raises(UnsafeOperation, match="0003_phone changed after it was applied"):
        migrate(shop, str(tmp_path))
    with psycopg.connect(shop) as conn:  # 0005 was not applied: all or nothing
        columns = {
            r[0]
            for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'customers'"
            )
        }
    assert "fax" not in columns


def test_a_failing_migration_leaves_nothing_behind(prefect_server, shop, tmp_path):
    (tmp_path / "0003_ok.sql").write_text("CREATE TABLE coupons (code text PRIMARY KEY);")
    (tmp_path / "0004_broken.sql").write_text("ALTER TABLE no_such_table ADD COLUMN x int;")
    with pytest.raises(psycopg.errors.UndefinedTable):
        migrate(shop, str(tmp_path))
    with psycopg.connect(shop) as conn:
        assert conn.execute("SELECT to_regclass('coupons')").fetchone()[0] is None
        assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == 2


def test_a_missing_migrations_directory_is_a_clear_error(prefect_server, shop, tmp_path):
    with pytest.raises(InvalidInput, match="does not exist"):
        migrate(shop, str(tmp_path / "nope"))
