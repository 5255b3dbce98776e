"""Nightly Cloud SQL backup with verified exports and a manifest, then retention, then DR replication.

Replaces `backup-restore.sh backup` (seed 000) and "Manual Backup Creation" + export (001). A backup
nobody verified is not a backup: every export is checked (size, crc32c) and described by a manifest
(backup run id, checksums, PostgreSQL version, schema fingerprint, row counts) that the restore drill
later checks the DR copy against.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from prefect import get_run_logger
from prefect.deployments import run_deployment
from prefect.runtime import deployment as runtime_deployment
from prefect.runtime import flow_run as runtime_flow_run

from blocks import OpsEnvironment
from flows._audited import audited_flow, current_report
from flows._posture import publish_dr_posture
from flows.replicate import replicate_backups
from tasks.clients import load_environment
from tasks.cloud_sql import (
    delete_backup_run,
    export_database,
    get_backup_run,
    get_instance,
    list_backup_runs,
    start_backup_run,
    wait_for_operation,
)
from tasks.database import inspect_database
from tasks.decisions.retention import BackupSet, pick_backup_runs_to_delete, pick_retention
from tasks.errors import VerificationFailed
from tasks.storage import check_object, delete_objects, list_objects, read_json, stat_object, write_json

BACKUP_DESCRIPTION = "opsflows nightly backup"
MANIFEST = re.compile(r"^(?P<dir>.+)/manifest-(?P<stamp>\d{8}T\d{6}Z)\.json$")
STAMP = "%Y%m%dT%H%M%SZ"
OPERATION_TIMEOUT_S = 3 * 3600  # large exports take hours (ovotech/cloud_sql_backup#25)


def export_prefix(instance: str, at: datetime) -> str:
    return f"{instance}/{at:%Y/%m/%d}"


def validation_dsn(ops: OpsEnvironment, address: str, database: str) -> str:
    password = ops.cloud_sql.validation_password.get_secret_value()
    return (
        f"postgresql://{ops.cloud_sql.validation_user}:{password}@{address}:{ops.cloud_sql.database_port}/{database}"
        "?connect_timeout=10"
    )


def backup_sets(objects: dict, instance: str) -> list[BackupSet]:
    """The manifests under the instance's prefix, as retention sees them."""
    sets = []
    for name in objects:
        match = MANIFEST.match(name)
        if match and name.startswith(f"{instance}/"):
            taken_at = datetime.strptime(match["stamp"], STAMP).replace(tzinfo=UTC)
            sets.append(BackupSet(key=name, taken_at=taken_at, verified=True))
    return sets


@audited_flow("nightly-backup", after_each_run=publish_dr_posture)
def nightly_backup(
    environment: str, dry_run: bool = False, replicate: bool = True, requested_by: str = ""
) -> dict:
    """Back up the Cloud SQL instance: on-demand backup run, verified exports + manifest, retention, DR replication.

    Args:
        environment: Name of the ops-environment block.
        dry_run: Show what would be backed up and what retention would delete; change nothing.
        replicate: Start DR replication when the backup succeeded.
        requested_by: Who asked (for the audit trail; empty for the schedule).
    """
    logger = get_run_logger()
    ops = load_environment(environment)
    instance, bucket = ops.cloud_sql.instance, ops.storage.primary_bucket
    report = current_report()
    started_at = datetime.now(UTC)
    stamp = started_at.strftime(STAMP)
    prefix = export_prefix(instance, started_at)

    if dry_run:
        existing = list_objects(ops, bucket, f"{instance}/")
        pick = pick_retention(backup_sets(existing, instance), **_gfs(ops))
        report.after = {
            "would_export": [f"gs://{bucket}/{prefix}/{db}-{stamp}.sql.gz" for db in ops.cloud_sql.databases],
            "would_delete": pick.delete,
        }
        return {"dry_run": True, **report.after}

    found = get_instance(ops, instance)
    if found is None or found.address is None:
        raise VerificationFailed(f"instance {instance} not found or has no IP address; nothing was backed up")

    operation = start_backup_run(ops, instance, f"{BACKUP_DESCRIPTION} {runtime_flow_run.get_id()}")
    done = wait_for_operation(ops, operation, OPERATION_TIMEOUT_S, f"backup run of {instance}")
    run_id = done.backup_context.backup_id or _find_backup_run(ops, instance)
    backup_run = get_backup_run(ops, instance, run_id)
    if backup_run.status != "SUCCESSFUL":
        raise VerificationFailed(
            f"backup run {run_id} of {instance} ended {backup_run.status}: {backup_run.error}"
        )
    report.facts["backup run"] = run_id

    databases, objects = {}, []
    for database in ops.cloud_sql.databases:
        facts = inspect_database(validation_dsn(ops, found.address, database))
        databases[database] = {
            "schema_fingerprint": facts.schema_fingerprint,
            "row_counts": facts.row_counts,
            "migrations_head": facts.migrations_head,
            "server_version": facts.server_version,
        }
        name = f"{prefix}/{database}-{stamp}.sql.gz"
        export = export_database(ops, instance, database, f"gs://{bucket}/{name}")
        wait_for_operation(ops, export, OPERATION_TIMEOUT_S, f"export of {database}")
        info = check_object(stat_object(ops, bucket, name), f"export gs://{bucket}/{name}")
        objects.append({"name": name, "database": database, "size": info.size, "crc32c": info.crc32c})

    manifest = {
        "format": 1,
        "environment": environment,
        "instance": instance,
        "database_version": found.database_version,
        "backup_run_id": run_id,
        "objects": objects,
        "databases": databases,
        "started_at": started_at.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "flow_run_id": str(runtime_flow_run.get_id()),
    }
    manifest_name = f"{prefix}/manifest-{stamp}.json"
    write_json(ops, bucket, manifest_name, manifest)
    report.facts.update(
        manifest=f"gs://{bucket}/{manifest_name}",
        exported_bytes=sum(o["size"] for o in objects),
        tables=sum(len(d["row_counts"]) for d in databases.values()),
    )
    report.recorded["backup"] = {
        "manifest": manifest_name,
        "finished_at": manifest["finished_at"],
        "backup_run_id": run_id,
    }

    deleted = apply_retention(ops, instance, bucket, keep_run=run_id)
    report.facts.update(deleted_exports=deleted["exports"], deleted_backup_runs=deleted["backup_runs"])
    report.after = {"manifest": manifest_name, "objects": objects, "retention": deleted}

    if replicate:
        start_replication(environment)
    logger.info("backup of %s verified: %s", instance, manifest_name)
    return {"manifest": manifest_name, "backup_run_id": run_id, "objects": objects}


def _gfs(ops: OpsEnvironment) -> dict:
    policy = ops.retention
    return dict(
        keep_daily=policy.keep_daily,
        keep_weekly=policy.keep_weekly,
        keep_monthly=policy.keep_monthly,
        minimum_keep=policy.minimum_keep,
    )


def _find_backup_run(ops: OpsEnvironment, instance: str) -> int:
    marker = f"{BACKUP_DESCRIPTION} {runtime_flow_run.get_id()}"
    for run in list_backup_runs(ops, instance):
        if run.description == marker:
            return run.id
    raise VerificationFailed(f"the backup run this flow started on {instance} cannot be found")


def apply_retention(ops: OpsEnvironment, instance: str, bucket: str, keep_run: int) -> dict:
    """GFS over export sets (manifest + objects) and a count cap on opsflows' own on-demand backup runs."""
    existing = list_objects(ops, bucket, f"{instance}/")
    pick = pick_retention(backup_sets(existing, instance), **_gfs(ops))
    removed_exports = 0
    for manifest_name in pick.delete:
        listed = read_json(ops, bucket, manifest_name)["objects"]
        doomed = [existing[o["name"]] for o in listed if o["name"] in existing]
        # The manifest goes last: a set is never left looking complete while its exports are gone.
        delete_objects(ops, bucket, doomed)
        delete_objects(ops, bucket, [existing[manifest_name]])
        removed_exports += 1
    ours = [
        r.id
        for r in list_backup_runs(ops, instance)
        if r.type == "ON_DEMAND" and r.description.startswith(BACKUP_DESCRIPTION) and r.status == "SUCCESSFUL"
    ]
    doomed_runs = [
        r for r in pick_backup_runs_to_delete(ours, ops.retention.keep_on_demand_backup_runs) if r != keep_run
    ]
    for run_id in doomed_runs:
        wait_for_operation(
            ops, delete_backup_run(ops, instance, run_id), 600, f"deleting backup run {run_id}"
        )
    return {"exports": removed_exports, "backup_runs": len(doomed_runs), "kept": pick.keep}


def start_replication(environment: str) -> None:
    """As a deployment run when this backup is deployed (its own run, own trail); else a subflow."""
    if runtime_deployment.id:
        run_deployment(f"replicate-backups/{environment}", parameters={"environment": environment}, timeout=0)
        return
    try:
        replicate_backups(environment=environment)
    except Exception as exc:  # noqa: BLE001 - the replication run records and reports its own failure
        current_report().notes.append(f"DR replication failed: {exc}")
