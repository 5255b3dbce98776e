"""What tests and `opsflows sandbox up` use besides the API: Python helpers and `/_sandbox/sql/...` routes.

Kept apart from the route table (server.py) as fake-gcs-server keeps `/_internal/...` apart: nothing
here is something Google offers, and flows must never depend on it.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import sqladmin_v1beta4 as sql

from sandbox.cloudsql.resources import DEFAULT_TIER, check_instance_name
from sandbox.cloudsql.store import InjectedFailure, Instance, Operation
from sandbox.http import ApiError, Request, Route

if TYPE_CHECKING:
    from sandbox.cloudsql.server import CloudSqlStandIn

OPERATION_TYPES = set(sql.Operation.SqlOperationType.__members__)


class SqlClients(NamedTuple):
    """The real GAPIC clients (REST transport) aimed at the stand-in."""

    instances: sql.SqlInstancesServiceClient
    backup_runs: sql.SqlBackupRunsServiceClient
    operations: sql.SqlOperationsServiceClient


class SandboxHelpers:
    """Mixed into CloudSqlStandIn; `self` is the stand-in."""

    # -- Python side ---------------------------------------------------------------------------
    def clients(self: CloudSqlStandIn) -> SqlClients:
        options = ClientOptions(api_endpoint=self.url)
        common: dict[str, Any] = {
            "transport": "rest",
            "credentials": AnonymousCredentials(),
            "client_options": options,
        }
        return SqlClients(
            sql.SqlInstancesServiceClient(**common),
            sql.SqlBackupRunsServiceClient(**common),
            sql.SqlOperationsServiceClient(**common),
        )

    def create_instance(
        self: CloudSqlStandIn,
        name: str,
        region: str,
        databases: list[str],
        labels: dict[str, str] | None = None,
        timeout: float = 60.0,
    ) -> dict[str, Any]:
        """Create a RUNNABLE instance holding `databases` (plus `postgres`), synchronously; its resource."""
        version = f"POSTGRES_{self.engine.major}"
        instance = Instance(check_instance_name(name), region, version, DEFAULT_TIER, "", dict(labels or {}))
        operation, _ = self._begin_insert(instance, list(databases), None, "sandbox-seed")
        _wait(operation, timeout)
        return self.encoder.instance(self.store.instance(name))

    def instance_dsn(
        self: CloudSqlStandIn, name: str, database: str = "postgres", user: str = "postgres"
    ) -> str:
        instance = self.store.instance(name)
        return f"postgresql://{user}@{instance.address}:{self.sql_port}/{database}"

    def add_automated_backup(self: CloudSqlStandIn, name: str, at: datetime | None = None) -> dict[str, Any]:
        """A SUCCESSFUL AUTOMATED backup run (a real dump), optionally dated `at` (retention tests)."""
        return self.add_backup_run(name, kind="AUTOMATED", at=at)

    def add_backup_run(
        self: CloudSqlStandIn,
        name: str,
        kind: str = "AUTOMATED",
        at: datetime | None = None,
        description: str | None = None,
        timeout: float = 60.0,
    ) -> dict[str, Any]:
        if kind not in ("AUTOMATED", "ON_DEMAND"):
            raise ValueError(f"kind must be AUTOMATED or ON_DEMAND, not {kind!r}")
        instance = self._runnable(name)
        operation, run, _ = self._begin_backup(instance, kind, description, user="cloud-sql-backup-scheduler")
        _wait(operation, timeout)
        if at is not None:
            with self.store.lock:
                took = run.end_time - run.start_time
                run.enqueued_time, run.start_time, run.end_time = at, at, at + took
        return self.encoder.backup_run(run)

    def fail_next_operation(
        self: CloudSqlStandIn,
        instance: str | None = None,
        operation_type: str | None = None,
        message: str = "The operation failed (injected by the sandbox).",
        code: str = "ERROR_RDBMS",
    ) -> None:
        """The next operation on `instance` (any, if None) of `operation_type` (any, if None) fails."""
        if operation_type is not None and operation_type not in OPERATION_TYPES:
            raise ApiError(
                400, f"Unknown operation_type {operation_type!r}; e.g. EXPORT, IMPORT, BACKUP_VOLUME."
            )
        with self.store.lock:
            self.store.failures.append(InjectedFailure(instance, operation_type, message, code))

    def stop_instance_postgres(self: CloudSqlStandIn, name: str) -> None:
        instance = self.store.instance(name)
        self.engine.cluster(name, instance.address).stop("immediate")

    def start_instance_postgres(self: CloudSqlStandIn, name: str) -> None:
        instance = self.store.instance(name)
        self.engine.cluster(name, instance.address).start(self.sql_port)

    def shutdown(self: CloudSqlStandIn) -> None:
        """Stop serving, let running operations finish, then stop every instance's PostgreSQL."""
        super().shutdown()  # type: ignore[misc]
        self.runner.wait_all()
        for instance in self.store.list_instances():
            self.engine.cluster(instance.name, instance.address).stop()

    # -- control routes ------------------------------------------------------------------------
    def control_routes(self: CloudSqlStandIn) -> list[Route]:
        return [
            Route("POST", "/_sandbox/sql/fail-next-operation", self._fail_next_route),
            Route("POST", "/_sandbox/sql/stop-instance-postgres", self._stop_route),
            Route("POST", "/_sandbox/sql/start-instance-postgres", self._start_route),
            Route("POST", "/_sandbox/sql/operation-duration", self._duration_route),
        ]

    def _fail_next_route(self: CloudSqlStandIn, request: Request) -> dict:
        spec = _fields(request, {"instance", "operation_type", "message", "code"})
        self.fail_next_operation(**spec)
        return {"ok": True}

    def _stop_route(self: CloudSqlStandIn, request: Request) -> dict:
        self.stop_instance_postgres(_fields(request, {"instance"}, required=True)["instance"])
        return {"ok": True}

    def _start_route(self: CloudSqlStandIn, request: Request) -> dict:
        self.start_instance_postgres(_fields(request, {"instance"}, required=True)["instance"])
        return {"ok": True}

    def _duration_route(self: CloudSqlStandIn, request: Request) -> dict:
        seconds = _fields(request, {"min_operation_seconds"}, required=True)["min_operation_seconds"]
        if not isinstance(seconds, int | float) or seconds < 0:
            raise ApiError(400, "min_operation_seconds must be a number >= 0")
        self.min_operation_seconds = float(seconds)
        return {"ok": True, "min_operation_seconds": self.min_operation_seconds}


def _fields(request: Request, allowed: set[str], required: bool = False) -> dict[str, Any]:
    spec = request.json()
    unknown = set(spec) - allowed
    if unknown:
        raise ApiError(400, f"Unknown fields {sorted(unknown)}; allowed: {sorted(allowed)}")
    if required and set(spec) != allowed:
        raise ApiError(400, f"Required fields: {sorted(allowed)}")
    return spec


def _wait(operation: Operation, timeout: float) -> None:
    if not operation.done.wait(timeout):
        raise TimeoutError(f"{operation.operation_type} of {operation.target} did not finish in {timeout} s")
    if operation.error is not None:
        raise RuntimeError(
            f"{operation.operation_type} of {operation.target} failed: "
            f"[{operation.error['code']}] {operation.error['message']}"
        )
