"""Cloud SQL Admin verbs (v1beta4, REST): backup runs, exports, imports, instances.

The v1beta4 client has no default retry and hands back plain Operations: both are supplied here with
google-api-core's `Retry`. A 409 "operationInProgress" is retried *at the submit call*: checking first
and submitting later leaves a race (apache/airflow#68040). An Operation that is DONE is a success only
when it carries no error.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from google.api_core import exceptions as google_errors
from google.api_core.retry import Retry, if_exception_type
from google.cloud import sqladmin_v1beta4 as sql
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from blocks import OpsEnvironment
from tasks.clients import sql_backup_runs_client, sql_instances_client, sql_operations_client
from tasks.errors import OperationFailed, UnsafeOperation

DONE = sql.Operation.SqlOperationStatus.DONE
RUNNABLE = sql.DatabaseInstance.SqlInstanceState.RUNNABLE


def _operation_in_progress(exc: Exception) -> bool:
    return isinstance(exc, google_errors.Conflict) and any(
        (e.get("reason") if isinstance(e, dict) else getattr(e, "reason", None)) == "operationInProgress"
        for e in (exc.errors or [])
    )


def _transient(exc: Exception) -> bool:
    return isinstance(
        exc, google_errors.ServiceUnavailable | google_errors.TooManyRequests
    ) or _operation_in_progress(exc)


def submit_retry(timeout_s: float = 600) -> Retry:
    """Retry a submit while the API is briefly unavailable or another operation holds the instance."""
    return Retry(predicate=_transient, initial=1.0, maximum=15.0, multiplier=2.0, timeout=timeout_s)


READ_RETRY = Retry(predicate=_transient, initial=0.5, maximum=5.0, multiplier=2.0, timeout=60.0)


class _StillRunning(Exception):
    pass


@task(name="wait-for-sql-operation", cache_policy=NO_CACHE)
def wait_for_operation(
    environment: OpsEnvironment, operation: sql.Operation, timeout_s: float, what: str
) -> sql.Operation:
    """Poll the operation until DONE; raise OperationFailed when DONE carries an error."""
    client = sql_operations_client(environment)

    def poll() -> sql.Operation:
        current = client.get({"project": environment.project, "operation": operation.name}, retry=READ_RETRY)
        if current.status != DONE:
            raise _StillRunning(current.name)
        return current

    # Short first polls: small operations finish in well under a second; long ones back off to 5 s.
    polling = Retry(
        predicate=if_exception_type(_StillRunning),
        initial=0.1,
        maximum=5.0,
        multiplier=1.5,
        timeout=timeout_s,
    )
    try:
        done = polling(poll)()
    except google_errors.RetryError as exc:
        raise OperationFailed(
            f"{what}: operation {operation.name} not done within {timeout_s:.0f} s"
        ) from exc
    if done.error.errors:
        details = "; ".join(f"{e.code}: {e.message}" for e in done.error.errors)
        raise OperationFailed(f"{what}: operation {done.name} failed: {details}")
    return done


@dataclass(frozen=True)
class BackupRunInfo:
    id: int
    status: str
    type: str
    description: str
    end_time: datetime | None
    error: str


def _backup_run(run: sql.BackupRun) -> BackupRunInfo:
    return BackupRunInfo(
        id=run.id,
        status=run.status.name,
        type=run.type_.name,
        description=run.description,
        end_time=run.end_time if run.end_time else None,
        error="; ".join(f"{e.code}: {e.message}" for e in [run.error]) if run.error.code else "",
    )


@task(name="start-backup-run", cache_policy=NO_CACHE)
def start_backup_run(environment: OpsEnvironment, instance: str, description: str) -> sql.Operation:
    """backupRuns.insert (on-demand); the Operation to wait for."""
    return sql_backup_runs_client(environment).insert(
        {"project": environment.project, "instance": instance, "body": {"description": description}},
        retry=submit_retry(),
    )


@task(name="list-backup-runs", cache_policy=NO_CACHE)
def list_backup_runs(environment: OpsEnvironment, instance: str) -> list[BackupRunInfo]:
    """Every backup run of the instance (all pages), newest first."""
    pager = sql_backup_runs_client(environment).list(
        {"project": environment.project, "instance": instance}, retry=READ_RETRY
    )
    runs = [_backup_run(run) for run in pager]
    return sorted(runs, key=lambda r: r.id, reverse=True)


@task(name="get-backup-run", cache_policy=NO_CACHE)
def get_backup_run(environment: OpsEnvironment, instance: str, run_id: int) -> BackupRunInfo:
    run = sql_backup_runs_client(environment).get(
        {"project": environment.project, "instance": instance, "id": run_id}, retry=READ_RETRY
    )
    return _backup_run(run)


@task(name="delete-backup-run", cache_policy=NO_CACHE)
def delete_backup_run(environment: OpsEnvironment, instance: str, run_id: int) -> sql.Operation:
    return sql_backup_runs_client(environment).delete(
        {"project": environment.project, "instance": instance, "id": run_id}, retry=submit_retry()
    )


@task(name="export-database", cache_policy=NO_CACHE)
def export_database(environment: OpsEnvironment, instance: str, database: str, uri: str) -> sql.Operation:
    """instances.export of one database as SQL (gzip when the URI ends in .gz)."""
    body = {"export_context": {"file_type": "SQL", "uri": uri, "databases": [database]}}
    return sql_instances_client(environment).export(
        {"project": environment.project, "instance": instance, "body": body}, retry=submit_retry()
    )


@task(name="import-database", cache_policy=NO_CACHE)
def import_database(environment: OpsEnvironment, instance: str, database: str, uri: str) -> sql.Operation:
    body = {"import_context": {"file_type": "SQL", "uri": uri, "database": database}}
    return sql_instances_client(environment).import_(
        {"project": environment.project, "instance": instance, "body": body}, retry=submit_retry()
    )


@dataclass(frozen=True)
class InstanceInfo:
    name: str
    region: str
    state: str
    labels: dict[str, str]
    address: str | None
    database_version: str
    create_time: datetime | None


def _instance(item: sql.DatabaseInstance) -> InstanceInfo:
    address = next((ip.ip_address for ip in item.ip_addresses if ip.type_ == "PRIMARY"), None)
    if address is None and item.ip_addresses:
        address = item.ip_addresses[0].ip_address
    return InstanceInfo(
        name=item.name,
        region=item.region,
        state=item.state.name,
        labels=dict(item.settings.user_labels),
        address=address,
        database_version=item.database_version.name,
        create_time=item.create_time if item.create_time else None,
    )


@task(name="get-instance", cache_policy=NO_CACHE)
def get_instance(environment: OpsEnvironment, instance: str) -> InstanceInfo | None:
    try:
        found = sql_instances_client(environment).get(
            {"project": environment.project, "instance": instance}, retry=READ_RETRY
        )
    except google_errors.NotFound:
        return None
    return _instance(found)


@task(name="list-instances", cache_policy=NO_CACHE)
def list_instances(environment: OpsEnvironment) -> list[InstanceInfo]:
    # The instances pager iterates `warnings`, not instances: walk the pages' `items`.
    pager = sql_instances_client(environment).list({"project": environment.project}, retry=READ_RETRY)
    return [_instance(item) for page in pager.pages for item in page.items]


@task(name="create-instance", cache_policy=NO_CACHE)
def create_instance(
    environment: OpsEnvironment,
    name: str,
    region: str,
    database_version: str,
    tier: str,
    labels: dict[str, str],
    root_password: str,
) -> sql.Operation:
    body = {
        "name": name,
        "region": region,
        "database_version": database_version,
        "root_password": root_password,
        "settings": {"tier": tier, "user_labels": labels},
    }
    return sql_instances_client(environment).insert(
        {"project": environment.project, "body": body}, retry=submit_retry()
    )


def check_deletable(instance: InstanceInfo, label: str, prefix: str) -> None:
    """The drill's guard: only instances carrying the drill label AND the name prefix may be deleted."""
    if instance.labels.get(label) != "true" or not instance.name.startswith(prefix):
        raise UnsafeOperation(
            f"refusing to delete instance {instance.name!r}: it must carry label {label}=true and a name "
            f"starting with {prefix!r} (labels {instance.labels}); nothing was deleted"
        )


@task(name="delete-instance", cache_policy=NO_CACHE)
def delete_instance(
    environment: OpsEnvironment, instance: InstanceInfo, label: str, prefix: str
) -> sql.Operation:
    check_deletable(instance, label, prefix)
    get_run_logger().info("deleting scratch instance %s", instance.name)
    return sql_instances_client(environment).delete(
        {"project": environment.project, "instance": instance.name}, retry=submit_retry()
    )


@task(name="restore-backup-run", cache_policy=NO_CACHE)
def restore_backup_run(
    environment: OpsEnvironment,
    target: InstanceInfo,
    source_instance: str,
    run_id: int,
    label: str,
    prefix: str,
) -> sql.Operation:
    """restoreBackup OVERWRITES its target: only a scratch instance (label + prefix) is accepted."""
    check_deletable(target, label, prefix)
    body = {
        "restore_backup_context": {
            "backup_run_id": run_id,
            "instance_id": source_instance,
            "project": environment.project,
        }
    }
    return sql_instances_client(environment).restore_backup(
        {"project": environment.project, "instance": target.name, "body": body}, retry=submit_retry()
    )


@task(name="label-instance", cache_policy=NO_CACHE)
def label_instance(environment: OpsEnvironment, instance: str, labels: dict[str, str]) -> sql.Operation:
    body = {"settings": {"user_labels": labels}}
    return sql_instances_client(environment).patch(
        {"project": environment.project, "instance": instance, "body": body}, retry=submit_retry()
    )
