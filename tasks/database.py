"""PostgreSQL verbs: apply SQL migrations (all in one transaction, under an advisory lock)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import psycopg
import psycopg.sql
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.errors import InvalidInput, UnsafeOperation

# Two deploys of services sharing one database must not migrate it at the same time.
MIGRATION_LOCK = "opsflows-migrations"


@dataclass(frozen=True)
class Migration:
    version: str
    checksum: str
    sql: str


def read_migrations(directory: Path) -> list[Migration]:
    """The *.sql files of `directory` in name order; the version is the file name without .sql."""
    if not directory.is_dir():
        raise InvalidInput(f"migrations directory {directory} does not exist; nothing was changed")
    return [
        Migration(path.stem, hashlib.sha256(path.read_bytes()).hexdigest(), path.read_text())
        for path in sorted(directory.glob("*.sql"))
    ]


@task(name="apply-migrations", cache_policy=NO_CACHE)
def apply_migrations(dsn: str, directory: Path) -> list[str]:
    """Apply the pending migrations; returns their versions. All or nothing.

    Refuses (changing nothing) when a file that was already applied has changed since.
    """
    migrations = read_migrations(directory)
    with psycopg.connect(dsn) as conn:
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (MIGRATION_LOCK,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            "version text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        applied = dict(conn.execute("SELECT version, checksum FROM schema_migrations").fetchall())
        for migration in migrations:
            if migration.version in applied and applied[migration.version] != migration.checksum:
                raise UnsafeOperation(
                    f"migration {migration.version} changed after it was applied (applied checksum "
                    f"{applied[migration.version][:12]}, file now {migration.checksum[:12]}); nothing was applied"
                )
        pending = [m for m in migrations if m.version not in applied]
        for migration in pending:
            conn.execute(migration.sql)
            conn.execute(
                "INSERT INTO schema_migrations (version, checksum) VALUES (%s, %s)",
                (migration.version, migration.checksum),
            )
    get_run_logger().info("applied %d migration(s): %s", len(pending), [m.version for m in pending])
    return [m.version for m in pending]


@dataclass(frozen=True)
class DatabaseFacts:
    """What a backup manifest records about a database, and what a restore drill compares."""

    server_version: str
    schema_fingerprint: str
    row_counts: dict[str, int]
    migrations_head: str | None


_SCHEMA_QUERY = """
SELECT 'column' AS kind, c.table_schema || '.' || c.table_name AS object,
       c.column_name || ' ' || c.data_type || ' ' || c.is_nullable AS detail, c.ordinal_position AS position
FROM information_schema.columns c
JOIN information_schema.tables t USING (table_schema, table_name)
WHERE t.table_type = 'BASE TABLE' AND c.table_schema NOT IN ('pg_catalog', 'information_schema')
UNION ALL
SELECT 'index', schemaname || '.' || tablename, indexdef, 0
FROM pg_indexes WHERE schemaname NOT IN ('pg_catalog', 'information_schema')
ORDER BY 1, 2, 4, 3
"""

_TABLES_QUERY = """
SELECT table_schema, table_name FROM information_schema.tables
WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')
ORDER BY 1, 2
"""


def schema_fingerprint(conn: psycopg.Connection) -> str:
    """sha256 over tables, columns, types, nullability and index definitions, in a fixed order."""
    lines = [" | ".join(map(str, row)) for row in conn.execute(_SCHEMA_QUERY).fetchall()]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def row_counts(conn: psycopg.Connection) -> dict[str, int]:
    """Exact row counts of every user table (schema-qualified names)."""
    counts = {}
    for schema, table in conn.execute(_TABLES_QUERY).fetchall():
        query = psycopg.sql.SQL("SELECT count(*) FROM {}.{}").format(
            psycopg.sql.Identifier(schema), psycopg.sql.Identifier(table)
        )
        counts[f"{schema}.{table}"] = conn.execute(query).fetchone()[0]
    return counts


def migrations_head(conn: psycopg.Connection) -> str | None:
    exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()[0]
    if not exists:
        return None
    return conn.execute("SELECT max(version) FROM schema_migrations").fetchone()[0]


@task(name="inspect-database", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2)
def inspect_database(dsn: str) -> DatabaseFacts:
    """Read, in one repeatable-read snapshot, the facts a manifest records about a database."""
    with psycopg.connect(dsn, connect_timeout=10) as conn:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        return DatabaseFacts(
            server_version=conn.execute("SHOW server_version").fetchone()[0],
            schema_fingerprint=schema_fingerprint(conn),
            row_counts=row_counts(conn),
            migrations_head=migrations_head(conn),
        )


@task(name="create-database", cache_policy=NO_CACHE, retries=3, retry_delay_seconds=2)
def create_database(admin_dsn: str, name: str) -> None:
    """Create an empty database (an import needs its target database to exist)."""
    with psycopg.connect(admin_dsn, autocommit=True, connect_timeout=10) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name)))


@task(name="run-sql-checks", cache_policy=NO_CACHE)
def run_sql_checks(dsn: str, checks: dict[str, str]) -> dict[str, str | bool]:
    """Each named query must return true; the result is True, False, or the error text."""
    results: dict[str, str | bool] = {}
    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        for name, query in checks.items():
            try:
                row = conn.execute(query).fetchone()
                results[name] = bool(row and row[0] is True)
            except psycopg.Error as exc:
                results[name] = f"{type(exc).__name__}: {exc}".strip()
    return results
