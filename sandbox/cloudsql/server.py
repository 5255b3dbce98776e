"""The Cloud SQL Admin API v1beta4 stand-in: the one route table and its handlers.

Handlers validate the request, reserve the instances and answer at once with a PENDING Operation; the
work (jobs.py, real PostgreSQL in engine.py) runs in the background (operations.py) and the caller
polls, as with Google. State lives in the store (store.py), the wire format in resources.py.

Exports and imports go through `storage`, an object store with `read_object(bucket, name)`,
`write_object(bucket, name, data, content_type, if_generation_match)` and `create_bucket(...)`: the
Cloud Storage stand-in's `StorageStandIn().store`. Control routes for tests, apart from the API
(the Python equivalents are in control.py):

  ``POST /_sandbox/sql/fail-next-operation``    ``{"instance": "app-db", "operation_type": "EXPORT",
                                                 "message": "...", "code": "ERROR_RDBMS"}``: the next
                                                 matching operation ends DONE with that error, doing nothing
  ``POST /_sandbox/sql/stop-instance-postgres``  ``{"instance": ...}``: the database server goes away while
                                                 the API still says RUNNABLE (a crash mid-validation)
  ``POST /_sandbox/sql/start-instance-postgres`` ``{"instance": ...}``: bring it back
  ``POST /_sandbox/sql/operation-duration``      ``{"min_operation_seconds": 2}``: slow every operation down
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from google.cloud import sqladmin_v1beta4 as sql

from sandbox.cloudsql import jobs
from sandbox.cloudsql.control import SandboxHelpers
from sandbox.cloudsql.engine import Engine
from sandbox.cloudsql.operations import OperationRunner
from sandbox.cloudsql.resources import (
    DEFAULT_REGION,
    DEFAULT_TIER,
    Encoder,
    caller,
    check_instance_name,
    enum_field,
    ints_for_enums,
    matches_filter,
    null_labels,
    page,
    parse_body,
    split_gcs_uri,
    without_null_labels,
)
from sandbox.cloudsql.store import BackupRun, Instance, Operation, Store, now, operation_in_progress
from sandbox.http import ApiError, Request, Route, StandIn
from sandbox.postgres import free_port

PROJECT = r"/sql/v1beta4/projects/(?P<project>[^/]+)"
INSTANCE = PROJECT + r"/instances/(?P<instance>[^/]+)"
BACKUP_RUN = INSTANCE + r"/backupRuns/(?P<id>[^/]+)"
PUBLIC_BASE = "https://sqladmin.googleapis.com"


class CloudSqlStandIn(SandboxHelpers, StandIn):
    """Cloud SQL Admin v1beta4 over REST, each instance a real PostgreSQL cluster on its own address."""

    name = "cloudsql"

    def __init__(
        self,
        storage: Any,
        state_dir: Path,
        project: str = "sandbox-project",
        sql_port: int | None = None,
        min_operation_seconds: float = 0.0,
    ):
        self.storage = storage
        self.state_dir = Path(state_dir)
        self.project = project
        self.sql_port = sql_port or free_port()
        # Mutable on purpose: tests stretch operations to hit "operation in progress", then reset it.
        self.min_operation_seconds = min_operation_seconds
        if not self.state_dir.exists():
            self.state_dir.mkdir(parents=True)
            self.state_dir.chmod(0o755)  # the PostgreSQL server user must reach the clusters inside
        self.store = Store()
        self.engine = Engine(self.state_dir, self.sql_port)
        self.engine.clear_leftovers()
        self.runner = OperationRunner(self.store, lambda: self.min_operation_seconds)
        super().__init__()

    @property
    def encoder(self) -> Encoder:
        base = self.url if self._server is not None else PUBLIC_BASE
        return Encoder(self.project, base, (self.engine.major, self.engine.minor))

    def routes(self) -> list[Route]:
        api = self._api  # method, path, handler, the message type it answers with
        return [
            api("GET", PROJECT + r"/instances", self.list_instances, sql.InstancesListResponse),
            api("POST", PROJECT + r"/instances", self.insert_instance, sql.Operation),
            api("GET", INSTANCE, self.get_instance, sql.DatabaseInstance),
            api("PATCH", INSTANCE, self.patch_instance, sql.Operation),
            api("DELETE", INSTANCE, self.delete_instance, sql.Operation),
            api("POST", INSTANCE + r"/export", self.export, sql.Operation),
            api("POST", INSTANCE + r"/import", self.import_, sql.Operation),
            api("POST", INSTANCE + r"/clone", self.clone, sql.Operation),
            api("POST", INSTANCE + r"/restoreBackup", self.restore_backup, sql.Operation),
            api("GET", INSTANCE + r"/backupRuns", self.list_backup_runs, sql.BackupRunsListResponse),
            api("POST", INSTANCE + r"/backupRuns", self.insert_backup_run, sql.Operation),
            api("GET", BACKUP_RUN, self.get_backup_run, sql.BackupRun),
            api("DELETE", BACKUP_RUN, self.delete_backup_run, sql.Operation),
            api("GET", PROJECT + r"/operations", self.list_operations, sql.OperationsListResponse),
            api("GET", PROJECT + r"/operations/(?P<operation>[^/]+)", self.get_operation, sql.Operation),
        ]

    def _api(self, method: str, pattern: str, handler: Callable[[Request], dict], answers: Any) -> Route:
        def handle(request: Request) -> dict:
            if request.params["project"] != self.project:
                raise ApiError(
                    403, "The client is not authorized to make this request.", reason="notAuthorized"
                )
            body = handler(request)
            # The GAPIC REST clients ask for `$alt=json;enum-encoding=int` and Google obliges.
            if "enum-encoding=int" in (request.arg("$alt") or ""):
                body = ints_for_enums(body, answers)
            return body

        return Route(method, pattern, handle)

    # -- instances -------------------------------------------------------------------------------
    def list_instances(self, request: Request) -> dict:
        encoded = [self.encoder.instance(i) for i in self.store.list_instances()]
        chosen = [i for i in encoded if matches_filter(i, request.arg("filter"))]
        return page(chosen, request, "sql#instancesList", default_size=100)

    def get_instance(self, request: Request) -> dict:
        return self.encoder.instance(self.store.instance(request.params["instance"]))

    def insert_instance(self, request: Request) -> dict:
        body = parse_body(request, sql.DatabaseInstance)
        settings = body.get("settings", {})
        instance = Instance(
            name=check_instance_name(body.get("name")),
            region=body.get("region", DEFAULT_REGION),
            database_version=body.get("databaseVersion", f"POSTGRES_{self.engine.major}"),
            tier=settings.get("tier", DEFAULT_TIER),
            address="",
            labels=settings.get("userLabels", {}),
            deletion_protection=settings.get("deletionProtectionEnabled", False),
        )
        return self._begin_insert(instance, [], body.get("rootPassword"), caller(request))[1]

    def _begin_insert(self, instance: Instance, databases: list[str], root_password: str | None, user: str):
        wanted = f"POSTGRES_{self.engine.major}"
        if instance.database_version != wanted:
            raise ApiError(
                400,
                f"Invalid request: databaseVersion {instance.database_version} cannot run here: the sandbox "
                f"has PostgreSQL {self.engine.major}.{self.engine.minor}, so instances must be {wanted}.",
            )
        operation = Operation("CREATE", instance.name, user, holds=(instance.name,))
        with self.store.lock:  # the address and the name are taken together
            instance.address = self.store.allocate_address(self.sql_port)
            self.store.begin(operation, new_instances=(instance,))
        cluster = self.engine.cluster(instance.name, instance.address)
        return operation, self._launch(
            operation, jobs.create(self.engine, instance, cluster, databases, root_password)
        )

    def patch_instance(self, request: Request) -> dict:
        instance = self.store.instance(request.params["instance"])
        removed = null_labels(request)
        body = parse_body(without_null_labels(request), sql.DatabaseInstance)
        operation = Operation("UPDATE", instance.name, caller(request), holds=(instance.name,))
        self.store.begin(operation)
        return self._launch(operation, jobs.update(instance, body.get("settings", {}), removed))

    def delete_instance(self, request: Request) -> dict:
        instance = self.store.instance(request.params["instance"])
        if instance.deletion_protection:
            raise ApiError(
                400,
                "Invalid request: The instance is protected from deletion. Disable deletion protection "
                "(settings.deletionProtectionEnabled) first.",
            )
        operation = Operation("DELETE", instance.name, caller(request), holds=(instance.name,))
        with self.store.lock:
            self.store.begin(operation)
            previous_state, instance.state = instance.state, "PENDING_DELETE"
        backups = self._backups_dir(instance.name)
        return self._launch(
            operation, jobs.delete(self.engine, self.store, instance, backups, previous_state)
        )

    # -- export / import / clone / restore -------------------------------------------------------
    def export(self, request: Request) -> dict:
        instance = self._runnable(request.params["instance"])
        context = parse_body(request, sql.InstancesExportRequest).get("exportContext") or {}
        enum_field(context, "fileType", ("SQL",), "SQL", "exportContext")
        bucket, name = split_gcs_uri(context.get("uri"), "exportContext")
        databases = context.get("databases", [])
        if len(databases) != 1:
            raise ApiError(
                400,
                "Invalid request: a PostgreSQL SQL export names exactly one database in exportContext.databases "
                "(all databases at once needs a parallel directory export, which the sandbox does not offer).",
            )
        if context.get("sqlExportOptions", {}).get("parallel"):
            raise ApiError(400, "Invalid request: parallel exports are not supported by the sandbox.")
        operation = Operation("EXPORT", instance.name, caller(request), holds=(instance.name,))
        operation.export_context = {"kind": "sql#exportContext", **context, "fileType": "SQL"}
        self.store.begin(operation)
        cluster = self.engine.cluster(instance.name, instance.address)
        return self._launch(operation, jobs.export(self.engine, self.storage, cluster, context, bucket, name))

    def import_(self, request: Request) -> dict:
        instance = self._runnable(request.params["instance"])
        context = parse_body(request, sql.InstancesImportRequest).get("importContext") or {}
        enum_field(context, "fileType", ("SQL",), "SQL", "importContext")
        bucket, name = split_gcs_uri(context.get("uri"), "importContext")
        database = context.get("database")
        if not database:
            raise ApiError(
                400, "Invalid request: importContext.database is required for a PostgreSQL SQL import."
            )
        user = context.get("importUser") or "postgres"
        operation = Operation("IMPORT", instance.name, caller(request), holds=(instance.name,))
        operation.import_context = {"kind": "sql#importContext", **context, "fileType": "SQL"}
        self.store.begin(operation)
        cluster = self.engine.cluster(instance.name, instance.address)
        return self._launch(
            operation, jobs.import_(self.engine, self.storage, cluster, database, user, bucket, name)
        )

    def clone(self, request: Request) -> dict:
        source = self._runnable(request.params["instance"])
        context = parse_body(request, sql.InstancesCloneRequest).get("cloneContext") or {}
        name = check_instance_name(context.get("destinationInstanceName"))
        destination = Instance(
            name, source.region, source.database_version, source.tier, "", dict(source.labels)
        )
        operation = Operation("CLONE", source.name, caller(request), holds=(source.name, name))
        with self.store.lock:
            destination.address = self.store.allocate_address(self.sql_port)
            self.store.begin(operation, new_instances=(destination,))
        source_cluster = self.engine.cluster(source.name, source.address)
        cluster = self.engine.cluster(name, destination.address)
        return self._launch(operation, jobs.clone(self.engine, source_cluster, destination, cluster))

    def restore_backup(self, request: Request) -> dict:
        target = self._runnable(request.params["instance"])
        context = parse_body(request, sql.InstancesRestoreBackupRequest).get("restoreBackupContext")
        if not context or "backupRunId" not in context:
            raise ApiError(400, "Invalid request: restoreBackupContext.backupRunId is required.")
        if context.get("project", self.project) != self.project:
            raise ApiError(400, f"Invalid request: the sandbox has only project {self.project}.")
        source_name = context.get("instanceId") or target.name
        self.store.instance(source_name)
        run = self.store.backup_run(source_name, context["backupRunId"])
        if run.status != "SUCCESSFUL":
            raise ApiError(
                400, f"Invalid request: backup run {run.id} cannot be restored: its status is {run.status}."
            )
        operation = Operation("RESTORE_VOLUME", target.name, caller(request), holds=(target.name,))
        self.store.begin(operation)
        cluster = self.engine.cluster(target.name, target.address)
        return self._launch(operation, jobs.restore(self.engine, cluster, run))

    # -- backup runs -----------------------------------------------------------------------------
    def list_backup_runs(self, request: Request) -> dict:
        name = request.params["instance"]
        if name != "-":  # "-" lists the runs of every instance
            self.store.instance(name)
        runs = [
            self.encoder.backup_run(r) for r in self.store.list_backup_runs(None if name == "-" else name)
        ]
        return page(runs, request, "sql#backupRunsList", default_size=100)

    def get_backup_run(self, request: Request) -> dict:
        instance = self.store.instance(request.params["instance"])
        return self.encoder.backup_run(self.store.backup_run(instance.name, request.params["id"]))

    def insert_backup_run(self, request: Request) -> dict:
        instance = self._runnable(request.params["instance"])
        body = parse_body(request, sql.BackupRun)  # `type` is ignored on insert, as Google does
        return self._begin_backup(instance, "ON_DEMAND", body.get("description"), caller(request))[2]

    def _begin_backup(self, instance: Instance, kind: str, description: str | None, user: str):
        moment = now()
        run_id = self.store.new_backup_id(moment)
        directory = self._backups_dir(instance.name) / str(run_id)
        run = BackupRun(
            run_id, instance.name, kind, instance.region, directory, description, enqueued_time=moment
        )
        operation = Operation("BACKUP_VOLUME", instance.name, user, holds=(instance.name,), backup_id=run_id)
        with self.store.lock:
            self.store.begin(operation)
            self.store.add_backup_run(run)
        cluster = self.engine.cluster(instance.name, instance.address)
        return operation, run, self._launch(operation, jobs.backup(self.engine, cluster, run))

    def delete_backup_run(self, request: Request) -> dict:
        instance = self.store.instance(request.params["instance"])
        run = self.store.backup_run(instance.name, request.params["id"])
        operation = Operation("DELETE_VOLUME", instance.name, caller(request), holds=(instance.name,))
        with self.store.lock:
            self.store.begin(operation)
            previous_status, run.status = run.status, "DELETION_PENDING"
        return self._launch(operation, jobs.delete_backup(self.store, run, previous_status))

    # -- operations ------------------------------------------------------------------------------
    def list_operations(self, request: Request) -> dict:
        operations = [self.encoder.operation(o) for o in self.store.list_operations(request.arg("instance"))]
        return page(operations, request, "sql#operationsList", default_size=100)

    def get_operation(self, request: Request) -> dict:
        return self.encoder.operation(self.store.operation(request.params["operation"]))

    # -- helpers ---------------------------------------------------------------------------------
    def _launch(self, operation: Operation, job: jobs.Job) -> dict:
        """Start the job; answer with the operation as submitted (PENDING), as Google does."""
        response = self.encoder.operation(operation)
        self.runner.start(operation, *job)
        return response

    def _runnable(self, name: str) -> Instance:
        instance = self.store.instance(name)
        if instance.state != "RUNNABLE":
            if self.store.busy_on(name):
                raise operation_in_progress()  # a CREATE or DELETE is still running
            raise ApiError(400, "Invalid request: Invalid request since instance is not running.")
        return instance

    def _backups_dir(self, instance: str) -> Path:
        return self.state_dir / "backups" / instance
