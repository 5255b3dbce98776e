"""The whole sandbox in one object: every stand-in, PostgreSQL, and the seeded demo world.

`Sandbox(state_dir).start()` brings up, on loopback only:
- PostgreSQL for the audit store (a private cluster in `state_dir/postgres`);
- the Cloud Storage stand-in with a primary bucket and a DR bucket in another region;
- the Cloud SQL Admin stand-in with one instance (`app-db`, its own PostgreSQL) holding the seeded
  demo application database and a read-only validation user;
- the Cloud Run Admin stand-in with demo services, each serving one Ready revision;
- the Slack stand-in.

`description()` is the JSON object `opsflows sandbox up --json` prints (DESIGN.md §2).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg

from sandbox.cloudrun import CloudRunStandIn
from sandbox.cloudsql import CloudSqlStandIn
from sandbox.postgres import PostgresCluster
from sandbox.seed import VALIDATION_PASSWORD, VALIDATION_USER, create_validation_user, seed_app_database
from sandbox.slack import SlackStandIn
from sandbox.storage import StorageStandIn

PROJECT = "sandbox-project"
REGION = "europe-west1"
DR_REGION = "europe-north1"
SERVICES = ("api", "web")
INSTANCE = "app-db"
APP_DATABASE = "shop"
AUDIT_DATABASE = "audit"
BUCKETS = {"primary": "sandbox-backups", "dr": "sandbox-backups-dr"}
SLACK_TOKEN = "xoxb-sandbox"
DRILL_PASSWORD = "sandbox-drill"


class Sandbox:
    def __init__(self, state_dir: Path, run_startup_deadline_s: float = 3.0):
        self.state_dir = Path(state_dir)
        self.postgres = PostgresCluster(self.state_dir / "postgres")
        self.slack = SlackStandIn()
        self.storage = StorageStandIn()
        self.run = CloudRunStandIn(project=PROJECT, region=REGION, startup_deadline_s=run_startup_deadline_s)
        self.sql: CloudSqlStandIn | None = None

    def start(self) -> dict[str, Any]:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.state_dir.chmod(0o755)  # the PostgreSQL server user must reach the clusters inside
        self.postgres.start()
        self._create_database(self.postgres.dsn(), AUDIT_DATABASE)
        self.slack.serve()
        self.storage.serve()
        self.storage.store.create_bucket(BUCKETS["primary"], location=REGION.upper(), versioning=True)
        self.storage.store.create_bucket(BUCKETS["dr"], location=DR_REGION.upper(), versioning=True)
        self.sql = CloudSqlStandIn(self.storage.store, self.state_dir / "cloudsql", project=PROJECT)
        self.sql.serve()
        self.sql.create_instance(INSTANCE, REGION, databases=[APP_DATABASE])
        seed_app_database(self.sql.instance_dsn(INSTANCE, APP_DATABASE))
        create_validation_user(self.sql.instance_dsn(INSTANCE, "postgres"), APP_DATABASE)
        self.run.serve()
        for service in SERVICES:
            self.run.seed_service(service, image=f"sandbox/{service}:v1")
        return self.description()

    def stop(self) -> None:
        self.run.shutdown()
        if self.sql is not None:
            self.sql.shutdown()
        self.storage.shutdown()
        self.slack.shutdown()
        self.postgres.stop()

    @staticmethod
    def _create_database(dsn: str, name: str) -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                conn.execute(f'CREATE DATABASE "{name}"')

    def description(self) -> dict[str, Any]:
        assert self.sql is not None
        return {
            "project": PROJECT,
            "region": REGION,
            "dr_region": DR_REGION,
            "environment": "sandbox",
            "run_api": self.run.url,
            "sqladmin_api": self.sql.url,
            "storage_api": self.storage.url,
            "slack_api": self.slack.url + "/api/",
            "slack_token": SLACK_TOKEN,
            "services": list(SERVICES),
            "instances": [INSTANCE],
            "databases": [APP_DATABASE],
            "sql_port": self.sql.sql_port,
            "validation_user": VALIDATION_USER,
            "validation_password": VALIDATION_PASSWORD,
            "drill_password": DRILL_PASSWORD,
            "buckets": dict(BUCKETS),
            "postgres_dsn": self.postgres.dsn(),
            "audit_dsn": self.postgres.dsn(AUDIT_DATABASE),
            # What a deploy's SQL migrations run as: the app database's owner.
            "migrations_dsn": self.sql.instance_dsn(INSTANCE, APP_DATABASE),
            "state_dir": str(self.state_dir),
        }
