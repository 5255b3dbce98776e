"""Monthly restore drill: restore the DR copy into a scratch instance in the DR region, validate it
against the manifest written at backup time, measure RTO and RPO, and always clean up.

Replaces "Disaster recovery test" (seed 001 monthly ops) and the quarterly DR drill (004), which
promised objectives and never proved them. The copy restored is the one in the DR region: the one that
matters when the primary region is gone.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from prefect import get_run_logger

from blocks import OpsEnvironment
from flows._audited import audit_store, audited_flow, current_report
from flows._posture import publish_dr_posture
from flows.backup import MANIFEST, STAMP
from tasks.clients import load_environment
from tasks.cloud_sql import (
    InstanceInfo,
    create_instance,
    delete_instance,
    get_instance,
    import_database,
    label_instance,
    list_backup_runs,
    list_instances,
    restore_backup_run,
    wait_for_operation,
)
from tasks.database import create_database, inspect_database, run_sql_checks
from tasks.decisions.recovery import (
    Check,
    RecoveryPoint,
    compare_with_manifest,
    measure_objectives,
    pick_recovery_point,
)
from tasks.errors import InvalidInput, ObjectiveMissed, VerificationFailed
from tasks.storage import list_objects, read_json

DRILL_LABEL = "opsflows-drill"
EXPIRES_LABEL = "opsflows-expires-at"
SOURCES = ("dr_export", "backup_run")
SELECTION_WINDOW_DAYS = 35
OPERATION_TIMEOUT_S = 3 * 3600


def drill_prefix(instance: str) -> str:
    return f"{instance}-drill-"


class PhaseClock:
    """Per-phase wall-clock times for the RTO breakdown."""

    def __init__(self) -> None:
        self.phases: list[tuple[str, float]] = []

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.phases.append((name, time.monotonic() - started))


@audited_flow("restore-drill", after_each_run=publish_dr_posture)
def restore_drill(
    environment: str,
    source: str = "dr_export",
    recovery_point: str = "latest",
    keep_on_failure: bool = False,
    dry_run: bool = False,
    requested_by: str = "",
) -> dict:
    """Restore a backup into a scratch instance in the DR region, validate it against its manifest, measure RTO/RPO.

    Args:
        environment: Name of the ops-environment block.
        source: "dr_export" (the export copy in the DR bucket) or "backup_run" (the Cloud SQL backup run).
        recovery_point: "latest", "random" (within the selection window), or a manifest name.
        keep_on_failure: Keep the scratch instance when the drill fails (labelled to expire) for investigation.
        dry_run: Show the recovery point and the scratch instance that would be created; create nothing.
        requested_by: Who asked (for the audit trail; empty for the schedule).
    """
    if source not in SOURCES:
        raise InvalidInput(f"source must be one of {SOURCES}, got {source!r}; nothing was created")
    ops = load_environment(environment)
    report = current_report()
    clock = PhaseClock()
    drill_started = datetime.now(UTC)
    prefix = drill_prefix(ops.cloud_sql.instance)

    with clock.phase("sweep orphans"):
        report.facts["orphans deleted"] = sweep_orphans(ops, prefix, drill_started, dry_run)
    with clock.phase("pick and check recovery point"):
        point, manifest = pick_and_check(ops, source, recovery_point, drill_started)
    report.facts.update(
        recovery_point=point.key, recovery_point_time=point.taken_at.isoformat(), source=source
    )
    scratch_name = f"{prefix}{drill_started:%Y%m%d}-{uuid.uuid4().hex[:6]}"
    if dry_run:
        report.after = {"would_create": scratch_name, "region": ops.dr_region, "recovery_point": point.key}
        return {"dry_run": True, **report.after}

    scratch: InstanceInfo | None = None
    checks: list[Check] = []
    failure: BaseException | None = None
    objectives = None
    try:
        with clock.phase("create scratch instance"):
            scratch = create_scratch(ops, scratch_name, manifest)
        with clock.phase("restore"):
            restore(ops, scratch, source, manifest)
        with clock.phase("validate"):
            checks = validate(ops, scratch, manifest)
        objectives = measure_objectives(
            drill_started,
            datetime.now(UTC),
            point.taken_at,
            ops.objectives.rto_seconds,
            ops.objectives.rpo_seconds,
        )
    except BaseException as exc:
        failure = exc
        raise
    finally:
        passed = (
            failure is None
            and checks
            and all(c.passed for c in checks)
            and objectives.rto_met
            and objectives.rpo_met
        )
        keep = keep_on_failure and not passed
        with clock.phase("teardown"):
            teardown = tear_down(ops, scratch, keep, prefix)
        report.facts["teardown"] = teardown
        write_drill_report(ops, environment, clock, checks, objectives, teardown, failure)
    failed_checks = [c for c in checks if not c.passed]
    if failed_checks:
        raise VerificationFailed(
            "restore drill checks failed: "
            + "; ".join(f"{c.name}: expected {c.expected}, found {c.actual}" for c in failed_checks[:5])
        )
    if not (objectives.rto_met and objectives.rpo_met):
        raise ObjectiveMissed(
            f"RTO {objectives.rto_seconds:.0f} s (objective {ops.objectives.rto_seconds:.0f} s), "
            f"RPO {objectives.rpo_seconds:.0f} s (objective {ops.objectives.rpo_seconds:.0f} s)"
        )
    return {
        "scratch": scratch_name,
        "rto_seconds": objectives.rto_seconds,
        "rpo_seconds": objectives.rpo_seconds,
    }


def sweep_orphans(ops: OpsEnvironment, prefix: str, now: datetime, dry_run: bool) -> list[str]:
    """Delete earlier drills' scratch instances past their expiry (or TTL). Label AND prefix, or untouched."""
    ttl = timedelta(hours=ops.drill.orphan_ttl_hours)
    expired = []
    for instance in list_instances(ops):
        if instance.labels.get(DRILL_LABEL) != "true" or not instance.name.startswith(prefix):
            continue
        expires = instance.labels.get(EXPIRES_LABEL)
        if expires is not None:
            is_expired = now.timestamp() >= int(expires)
        else:
            is_expired = instance.create_time is not None and now - instance.create_time >= ttl
        if is_expired:
            expired.append(instance)
    if not dry_run:
        for instance in expired:
            wait_for_operation(
                ops, delete_instance(ops, instance, DRILL_LABEL, prefix), 1800, f"delete {instance.name}"
            )
    return [i.name for i in expired]


def pick_and_check(
    ops: OpsEnvironment, source: str, selection: str, now: datetime
) -> tuple[RecoveryPoint, dict]:
    """The recovery point and its manifest, from the DR bucket; the DR objects checked against it."""
    dr_bucket, instance = ops.storage.dr_bucket, ops.cloud_sql.instance
    objects = list_objects(ops, dr_bucket, f"{instance}/")
    points = [
        RecoveryPoint(name, datetime.strptime(match["stamp"], STAMP).replace(tzinfo=UTC))
        for name in objects
        if (match := MANIFEST.match(name))
    ]
    if source == "backup_run":
        runs = {r.id for r in list_backup_runs(ops, instance) if r.status == "SUCCESSFUL"}
        manifests = {p.key: read_json(ops, dr_bucket, p.key) for p in points}
        points = [p for p in points if manifests[p.key].get("backup_run_id") in runs]
    point = pick_recovery_point(points, selection, now, SELECTION_WINDOW_DAYS, random.Random())
    manifest = read_json(ops, dr_bucket, point.key)
    point = RecoveryPoint(point.key, datetime.fromisoformat(manifest["finished_at"]))
    if source == "dr_export":
        for item in manifest["objects"]:
            found = objects.get(item["name"])
            if found is None:
                raise VerificationFailed(f"DR copy of {item['name']} is missing; no restore was attempted")
            if (found.size, found.crc32c) != (item["size"], item["crc32c"]):
                raise VerificationFailed(
                    f"DR copy of {item['name']} differs from the manifest: size {found.size} vs {item['size']}, "
                    f"crc32c {found.crc32c} vs {item['crc32c']}; no restore was attempted"
                )
    return point, manifest


def create_scratch(ops: OpsEnvironment, name: str, manifest: dict) -> InstanceInfo:
    labels = {DRILL_LABEL: "true", "opsflows-source": manifest["instance"]}
    operation = create_instance(
        ops,
        name,
        ops.dr_region,
        manifest["database_version"],
        ops.drill.scratch_tier,
        labels,
        ops.cloud_sql.drill_password.get_secret_value(),
    )
    wait_for_operation(ops, operation, OPERATION_TIMEOUT_S, f"create {name}")
    scratch = get_instance(ops, name)
    if scratch is None or scratch.state != "RUNNABLE" or scratch.address is None:
        raise VerificationFailed(f"scratch instance {name} is not RUNNABLE with an address: {scratch}")
    return scratch


def _dsn(ops: OpsEnvironment, scratch: InstanceInfo, database: str) -> str:
    password = ops.cloud_sql.drill_password.get_secret_value()
    port = ops.cloud_sql.database_port
    return f"postgresql://{ops.cloud_sql.drill_user}:{password}@{scratch.address}:{port}/{database}?connect_timeout=10"


def restore(ops: OpsEnvironment, scratch: InstanceInfo, source: str, manifest: dict) -> None:
    if source == "backup_run":
        operation = restore_backup_run(
            ops,
            scratch,
            manifest["instance"],
            manifest["backup_run_id"],
            DRILL_LABEL,
            drill_prefix(manifest["instance"]),
        )
        wait_for_operation(
            ops, operation, OPERATION_TIMEOUT_S, f"restore backup run {manifest['backup_run_id']}"
        )
        return
    for item in manifest["objects"]:
        create_database(_dsn(ops, scratch, "postgres"), item["database"])
        operation = import_database(
            ops, scratch.name, item["database"], f"gs://{ops.storage.dr_bucket}/{item['name']}"
        )
        wait_for_operation(ops, operation, OPERATION_TIMEOUT_S, f"import {item['name']}")


def validate(ops: OpsEnvironment, scratch: InstanceInfo, manifest: dict) -> list[Check]:
    checks: list[Check] = []
    for database, expected in manifest["databases"].items():
        dsn = _dsn(ops, scratch, database)
        facts = inspect_database(dsn)
        checks += compare_with_manifest(
            database,
            expected,
            facts.schema_fingerprint,
            facts.row_counts,
            facts.migrations_head,
            ops.drill.row_count_tolerance,
        )
        for name, result in run_sql_checks(dsn, ops.drill.sql_checks).items():
            checks.append(Check(f"{database}: {name}", True, result, result is True))
    return checks


def tear_down(ops: OpsEnvironment, scratch: InstanceInfo | None, keep: bool, prefix: str) -> str:
    """Delete the scratch instance (same label + prefix guard), or label it to expire. Never raises."""
    if scratch is None:
        return "nothing to tear down (no scratch instance was created)"
    try:
        if keep:
            expires = datetime.now(UTC) + timedelta(hours=ops.drill.orphan_ttl_hours)
            labels = {**scratch.labels, EXPIRES_LABEL: str(int(expires.timestamp()))}
            wait_for_operation(ops, label_instance(ops, scratch.name, labels), 600, f"label {scratch.name}")
            return f"kept {scratch.name} for investigation until {expires:%Y-%m-%d %H:%M} UTC (then swept)"
        wait_for_operation(
            ops, delete_instance(ops, scratch, DRILL_LABEL, prefix), 1800, f"delete {scratch.name}"
        )
        return f"deleted {scratch.name}"
    except Exception as exc:  # noqa: BLE001 - the report must say so; the next drill's sweep retries
        get_run_logger().error("teardown of %s failed: %s", scratch.name, exc)
        return f"FAILED to delete {scratch.name}: {exc} (the next drill's orphan sweep will retry)"


def write_drill_report(ops, environment, clock, checks, objectives, teardown, failure) -> None:
    report = current_report()
    lines = ["## Phases", "", "| phase | seconds |", "|---|---|"]
    lines += [f"| {name} | {seconds:.1f} |" for name, seconds in clock.phases]
    lines += ["", "## Checks", "", "| check | expected | actual | passed |", "|---|---|---|---|"]
    lines += [f"| {c.name} | {c.expected} | {c.actual} | {'yes' if c.passed else '**NO**'} |" for c in checks]
    if objectives is not None:
        lines += [
            "",
            "## Objectives",
            "",
            f"- RTO {objectives.rto_seconds:.0f} s (objective {ops.objectives.rto_seconds:.0f} s): "
            f"{'met' if objectives.rto_met else '**MISSED**'}",
            f"- RPO {objectives.rpo_seconds:.0f} s (objective {ops.objectives.rpo_seconds:.0f} s): "
            f"{'met' if objectives.rpo_met else '**MISSED**'}",
        ]
    lines += ["", f"Teardown: {teardown}"]
    previous = [
        r["summary"]["drill"]
        for r in audit_store(ops).records(flow="restore-drill", environment=environment, limit=50)
        if r["event"] == "finished" and "drill" in r["summary"]
    ][-5:]
    if previous:
        lines += ["", "## Previous drills", "", "| finished | RTO s | RPO s | passed |", "|---|---|---|---|"]
        lines += [
            f"| {p['finished_at']} | {p['rto_seconds']} | {p['rpo_seconds']} | {p['passed']} |"
            for p in previous
        ]
    report.sections.append("\n".join(lines))
    passed = (
        failure is None
        and bool(checks)
        and all(c.passed for c in checks)
        and objectives is not None
        and (objectives.rto_met and objectives.rpo_met)
    )
    report.recorded["drill"] = {
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "rto_seconds": None if objectives is None else round(objectives.rto_seconds, 1),
        "rpo_seconds": None if objectives is None else round(objectives.rpo_seconds, 1),
        "passed": passed,
        "phases": {name: round(seconds, 2) for name, seconds in clock.phases},
        "failed_checks": [c.as_dict() for c in checks if not c.passed],
    }
    report.facts.update(
        checks=f"{sum(c.passed for c in checks)}/{len(checks)} passed",
        rto_seconds=report.recorded["drill"]["rto_seconds"],
        rpo_seconds=report.recorded["drill"]["rpo_seconds"],
    )
