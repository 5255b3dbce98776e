"""What each Cloud SQL operation does once it runs, and how it leaves state when it fails.

A job is a pair (work, on_failure) for the OperationRunner. Handlers (server.py) have already
validated the request and reserved the instances; a job only does the work and records its outcome
on the resources, the way Cloud SQL shows it: a failed create leaves a FAILED instance, a failed backup
a FAILED run with its error, a failed delete the instance as it was.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path
from typing import Any

from sandbox.cloudsql.engine import Engine
from sandbox.cloudsql.operations import OnFailure, OperationFailed, Work
from sandbox.cloudsql.store import BackupRun, Instance, Operation, Store, now
from sandbox.http import ApiError
from sandbox.postgres import PostgresCluster

Job = tuple[Work, OnFailure | None]


def create(
    engine: Engine,
    instance: Instance,
    cluster: PostgresCluster,
    databases: list[str],
    root_password: str | None,
) -> Job:
    def work(op: Operation) -> None:
        engine.create(cluster, databases, root_password)
        instance.state = "RUNNABLE"

    def failed(op: Operation, error: dict) -> None:
        cluster.stop("immediate")
        instance.state = "FAILED"  # as Google leaves it: listed, deletable, not usable

    return work, failed


def clone(engine: Engine, source: PostgresCluster, destination: Instance, cluster: PostgresCluster) -> Job:
    def work(op: Operation) -> None:
        # cloneContext.pointInTime is accepted but not honoured: the clone is of the source as it is now.
        engine.clone(source, cluster)
        destination.state = "RUNNABLE"

    def failed(op: Operation, error: dict) -> None:
        cluster.stop("immediate")
        destination.state = "FAILED"

    return work, failed


def update(instance: Instance, settings: dict[str, Any], removed_labels: set[str]) -> Job:
    def work(op: Operation) -> None:
        # A patch merges: labels not named stay, labels sent as null go.
        labels = {**instance.labels, **settings.get("userLabels", {})}
        instance.labels = {k: v for k, v in labels.items() if k not in removed_labels}
        instance.tier = settings.get("tier", instance.tier)
        instance.deletion_protection = settings.get("deletionProtectionEnabled", instance.deletion_protection)
        instance.settings_version += 1

    return work, None


def delete(engine: Engine, store: Store, instance: Instance, backups: Path, previous_state: str) -> Job:
    def work(op: Operation) -> None:
        engine.destroy(engine.cluster(instance.name, instance.address))
        shutil.rmtree(backups, ignore_errors=True)  # on-demand backups go with the instance, too
        store.remove_instance(instance.name)

    def failed(op: Operation, error: dict) -> None:
        instance.state = previous_state

    return work, failed


def export(
    engine: Engine, storage: Any, cluster: PostgresCluster, context: dict[str, Any], bucket: str, name: str
) -> Job:
    def work(op: Operation) -> None:
        dump = engine.dump_sql(cluster, context["databases"][0], context.get("sqlExportOptions"))
        gzipped = name.endswith(".gz")
        data = gzip.compress(dump) if gzipped else dump
        try:
            # "If the file already exists, the request succeeds, but the operation fails": Cloud SQL
            # never overwrites an export, which a create-only precondition gives exactly.
            storage.write_object(
                bucket,
                name,
                data,
                "application/gzip" if gzipped else "application/sql",
                if_generation_match=0,
            )
        except ApiError as exc:
            if exc.code == 412:
                raise OperationFailed(
                    "INVALID_REQUEST", f"The export file gs://{bucket}/{name} already exists."
                ) from exc
            raise OperationFailed(
                "INVALID_REQUEST", f"Cannot write gs://{bucket}/{name}: {exc.message}"
            ) from exc

    return work, None


def import_(
    engine: Engine, storage: Any, cluster: PostgresCluster, database: str, user: str, bucket: str, name: str
) -> Job:
    def work(op: Operation) -> None:
        try:
            data = storage.read_object(bucket, name)
        except ApiError as exc:
            raise OperationFailed(
                "INVALID_REQUEST", f"Cannot read gs://{bucket}/{name}: {exc.message}"
            ) from exc
        if name.endswith(".gz"):
            try:
                data = gzip.decompress(data)
            except (OSError, EOFError) as exc:
                raise OperationFailed(
                    "ERROR_RDBMS", f"gs://{bucket}/{name} is not valid gzip: {exc}"
                ) from exc
        engine.load_sql(cluster, database, data, user)

    return work, None


def restore(engine: Engine, cluster: PostgresCluster, run: BackupRun) -> Job:
    return (lambda op: engine.restore(cluster, run.directory)), None


def backup(engine: Engine, cluster: PostgresCluster, run: BackupRun) -> Job:
    def work(op: Operation) -> None:
        run.status, run.start_time = "RUNNING", now()
        engine.backup(cluster, run.directory)
        run.status, run.end_time = "SUCCESSFUL", now()

    def failed(op: Operation, error: dict) -> None:
        run.status, run.end_time, run.error = "FAILED", now(), dict(error)
        shutil.rmtree(run.directory, ignore_errors=True)

    return work, failed


def delete_backup(store: Store, run: BackupRun, previous_status: str) -> Job:
    def work(op: Operation) -> None:
        shutil.rmtree(run.directory, ignore_errors=True)
        store.remove_backup_run(run)

    def failed(op: Operation, error: dict) -> None:
        run.status = previous_status

    return work, failed
