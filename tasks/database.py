"""PostgreSQL verbs: apply SQL migrations (all in one transaction, under an advisory lock)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import psycopg
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
