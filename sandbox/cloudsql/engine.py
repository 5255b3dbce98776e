"""The real PostgreSQL work behind the Cloud SQL stand-in: one private cluster per instance.

Each instance is its own cluster (so a restore into one can never reach another), listening on its own
loopback address (127.0.0.10, 127.0.0.11, ...) and on the one port the stand-in chose: a Cloud SQL
instance resource carries an IP address but no port, so the address alone must say which instance a
client reaches.

Tools used, as Cloud SQL itself would: `pg_dump` (exports, backups), `psql` (imports),
`pg_restore` (restoring a backup), `pg_basebackup` (clones). A failing tool ends the operation with
code `ERROR_RDBMS` and the tool's own message, as Google reports `[ERROR_RDBMS] exit status 1 ...`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
from pathlib import Path

import psycopg
from psycopg import sql

from sandbox.cloudsql.operations import OperationFailed
from sandbox.postgres import SUPERUSER, PostgresCluster, client_tool, server_bindir, server_user

# Clients reach an instance from any loopback address (Linux picks 127.0.0.1 as the source even when
# dialling 127.0.0.10), so trust the whole of 127/8; replication is needed by pg_basebackup (clones).
PG_HBA = """\
local all all trust
host all all 127.0.0.0/8 trust
host replication all 127.0.0.0/8 trust
"""


def server_version() -> tuple[int, int]:
    """(major, minor) of the local PostgreSQL server, e.g. (15, 18)."""
    out = subprocess.run(
        [str(server_bindir() / "initdb"), "--version"], capture_output=True, text=True
    ).stdout
    found = re.search(r"(\d+)\.(\d+)", out)
    if not found:
        raise RuntimeError(f"cannot read the PostgreSQL version from {out!r}")
    return int(found.group(1)), int(found.group(2))


def stop_instance_clusters(state_dir: Path) -> None:
    """Stop every instance cluster under a stand-in's state directory, found from disk (postmaster.pid).

    For `sandbox down` after the process that ran the stand-in died without `shutdown()`.
    """
    instances = Path(state_dir) / "instances"
    if instances.is_dir():
        for directory in instances.iterdir():
            PostgresCluster(directory).stop("immediate")


class Engine:
    def __init__(self, root: Path, port: int):
        self.root = root
        self.port = port
        self.major, self.minor = server_version()
        self._template_lock = threading.Lock()
        user = server_user()
        if user:  # say so now, not at the first instances.insert
            PostgresCluster(root / "template").check_reachable_by(user)

    # -- clusters --------------------------------------------------------------------------------
    def cluster(self, name: str, address: str) -> PostgresCluster:
        return PostgresCluster(self.root / "instances" / name, address)

    def clear_leftovers(self) -> None:
        """Stop and remove clusters and backups an earlier stand-in left in this state directory.

        The stand-in's state lives in memory, so what an earlier process left on disk can never be
        reached again; a leftover server would also hold its address.
        """
        stop_instance_clusters(self.root)
        shutil.rmtree(self.root / "instances", ignore_errors=True)
        shutil.rmtree(self.root / "backups", ignore_errors=True)

    def create(self, cluster: PostgresCluster, databases: list[str], root_password: str | None) -> None:
        self._new_directory(cluster)
        template = self._template()
        self._as_server(cluster, "cp", "-a", str(template.data), str(cluster.data))
        cluster.start(self.port)
        with self._connect(cluster, "postgres") as conn:
            for database in databases:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
            if root_password:
                conn.execute(
                    sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                        sql.Identifier(SUPERUSER), sql.Literal(root_password)
                    )
                )

    def clone(self, source: PostgresCluster, destination: PostgresCluster) -> None:
        """A physical copy of the running source (all databases, roles and settings), then started."""
        self._new_directory(destination)
        self._as_server(
            destination,
            client_tool("pg_basebackup"),
            *("-h", source.address, "-p", str(self.port), "-U", SUPERUSER),
            *("-D", str(destination.data), "-X", "stream", "-c", "fast", "--no-sync"),
        )
        destination.start(self.port)

    def destroy(self, cluster: PostgresCluster) -> None:
        cluster.destroy()

    def databases(self, cluster: PostgresCluster) -> list[str]:
        with self._connect(cluster, "postgres") as conn:
            rows = conn.execute(
                "SELECT datname FROM pg_database WHERE NOT datistemplate AND datallowconn ORDER BY datname"
            ).fetchall()
        return [row[0] for row in rows]

    # -- export / import -------------------------------------------------------------------------
    def dump_sql(self, cluster: PostgresCluster, database: str, options: dict | None = None) -> bytes:
        """What Cloud SQL writes for a SQL export: a plain dump without owners or grants.

        `options` is the export's `sqlExportOptions` (tables, schemaOnly, postgresExportOptions).
        """
        options = options or {}
        flags = [f"--table={table}" for table in options.get("tables", [])]
        if options.get("schemaOnly"):
            flags.append("--schema-only")
        postgres = options.get("postgresExportOptions", {})
        if postgres.get("clean"):
            flags.append("--clean")
        if postgres.get("ifExists"):
            flags.append("--if-exists")
        return self._tool(
            "pg_dump", "--no-owner", "--no-privileges", *flags, *self._target(cluster), "-d", database
        )

    def load_sql(self, cluster: PostgresCluster, database: str, script: bytes, user: str) -> None:
        # One transaction and stop at the first error: a failed import leaves nothing half-loaded.
        self._tool(
            "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction",
            *self._target(cluster, user), "-d", database, "-f", "-",
            stdin=script,
        )  # fmt: skip

    # -- backups ---------------------------------------------------------------------------------
    def backup(self, cluster: PostgresCluster, directory: Path) -> None:
        """Roles plus a custom-format dump of every database: what a restore needs to rebuild it all."""
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "roles.sql").write_bytes(
            self._tool("pg_dumpall", "--roles-only", *self._target(cluster))
        )
        files = {}
        for index, database in enumerate(self.databases(cluster)):
            files[database] = f"{index:04d}.dump"
            self._tool(
                "pg_dump",
                "-Fc",
                "-f",
                str(directory / files[database]),
                *self._target(cluster),
                "-d",
                database,
            )
        (directory / "databases.json").write_text(json.dumps(files))

    def restore(self, cluster: PostgresCluster, directory: Path) -> None:
        """Overwrite every database of `cluster` with the backup in `directory`, as restoreBackup does."""
        files: dict[str, str] = json.loads((directory / "databases.json").read_text())
        # Without ON_ERROR_STOP: "role postgres already exists" is expected and harmless.
        self._tool(
            "psql", "-X", "-q", *self._target(cluster), "-d", "postgres", "-f", str(directory / "roles.sql")
        )
        with self._connect(cluster, "template1") as conn:
            for database in self.databases(cluster):
                conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(database)))
        for file in files.values():
            self._tool(
                "pg_restore", "--create", "--exit-on-error", *self._target(cluster), "-d", "template1",
                str(directory / file),
            )  # fmt: skip

    # -- helpers ---------------------------------------------------------------------------------
    def _target(self, cluster: PostgresCluster, user: str = SUPERUSER) -> tuple[str, ...]:
        return ("-h", cluster.address, "-p", str(self.port), "-U", user)

    def _connect(self, cluster: PostgresCluster, database: str) -> psycopg.Connection:
        try:
            return psycopg.connect(
                host=cluster.address, port=self.port, user=SUPERUSER, dbname=database,
                autocommit=True, connect_timeout=5,
            )  # fmt: skip
        except psycopg.OperationalError as exc:
            raise OperationFailed("ERROR_RDBMS", str(exc).strip()) from exc

    def _tool(self, name: str, *args: str, stdin: bytes | None = None) -> bytes:
        env = {**os.environ, "PGCONNECT_TIMEOUT": "5"}
        done = subprocess.run([client_tool(name), *args], input=stdin, capture_output=True, env=env, cwd="/")
        if done.returncode != 0:
            detail = done.stderr.decode(errors="replace").strip()[-2000:]
            raise OperationFailed("ERROR_RDBMS", f"exit status {done.returncode}\n{detail}")
        return done.stdout

    def _as_server(self, cluster: PostgresCluster, *command: str) -> None:
        done = subprocess.run(cluster.as_server_user(*command), capture_output=True, text=True, cwd="/")
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip()[-2000:]
            raise OperationFailed("ERROR_RDBMS", f"{Path(command[0]).name} failed: {detail}")

    def _new_directory(self, cluster: PostgresCluster) -> None:
        shutil.rmtree(cluster.directory, ignore_errors=True)
        cluster.directory.mkdir(parents=True)
        user = server_user()
        if user:
            shutil.chown(cluster.directory, user)

    def _template(self) -> PostgresCluster:
        """A pristine, never-started data directory, made once: each instance copies it instead of running
        initdb (whose bootstrap backends cost CPU), and it carries the pg_hba.conf every instance needs.
        """
        template = PostgresCluster(self.root / "template")
        ready = template.directory / "ready"  # written last: a half-made template is made again
        with self._template_lock:
            if ready.exists() and ready.read_text() == str(self.major):
                return template
            shutil.rmtree(template.directory, ignore_errors=True)
            template.directory.mkdir(parents=True)
            user = server_user()
            if user:
                shutil.chown(template.directory, user)
                template.check_reachable_by(user)
            template.run_as_server(
                str(server_bindir() / "initdb"),
                *("-D", str(template.data), "-A", "trust", "-U", SUPERUSER, "--no-sync", "-E", "UTF8"),
                "--locale=C",
            )
            (template.data / "pg_hba.conf").write_text(PG_HBA)
            if user:
                shutil.chown(template.data / "pg_hba.conf", user)
            ready.write_text(str(self.major))
            return template
