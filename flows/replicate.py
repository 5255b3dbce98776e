"""DR replication of the backup bucket to the bucket in the DR region.

Replaces `gsutil -m rsync -r -d gs://backups gs://backups-dr` (seed 000) without its two disasters:
copies are server-side and verified by crc32c, and deletions in DR happen only when asked, never from
an empty source or after a failed listing, and never beyond the caps.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from prefect import get_run_logger
from prefect.events import emit_event

from flows._audited import audited_flow, current_report
from flows._posture import publish_dr_posture
from tasks.clients import load_environment
from tasks.decisions.replication import diff, plan_deletions, replication_lag_seconds
from tasks.errors import InvalidInput, VerificationFailed
from tasks.storage import copy_objects, delete_objects, list_objects

# A handful of Prefect tasks, each copying its share in a thread pool: not one task per object.
COPY_TASKS = 4


@audited_flow("replicate-backups", after_each_run=publish_dr_posture)
def replicate_backups(
    environment: str,
    prefix: str = "",
    delete_extraneous: bool = False,
    max_delete: int = 10,
    max_delete_fraction: float = 0.1,
    verify_all: bool = False,
    dry_run: bool = False,
    requested_by: str = "",
) -> dict:
    """Copy new and changed backup objects to the DR bucket, verified; optionally delete what the source no longer has.

    Args:
        environment: Name of the ops-environment block.
        prefix: Only objects under this prefix (default: the whole bucket).
        delete_extraneous: Delete DR objects the source does not have (off by default; guarded by the caps).
        max_delete: Never delete more than this many DR objects in one run (the run fails instead).
        max_delete_fraction: Never delete more than this fraction of the DR objects in one run.
        verify_all: After copying, re-list DR and check every object against the source.
        dry_run: Report what would be copied and deleted, change nothing.
        requested_by: Who asked (for the audit trail).
    """
    logger = get_run_logger()
    if max_delete < 0 or not 0 <= max_delete_fraction <= 1:
        raise InvalidInput("max_delete must be >= 0 and max_delete_fraction within 0..1; nothing was changed")
    ops = load_environment(environment)
    source_bucket, dr_bucket = ops.storage.primary_bucket, ops.storage.dr_bucket
    report = current_report()

    # Both listings must succeed completely; a failure raises here, before any copy or delete.
    source = list_objects(ops, source_bucket, prefix)
    dr = list_objects(ops, dr_bucket, prefix)
    plan = diff(source, dr)
    deletions = plan_deletions(
        plan.extraneous,
        len(source),
        len(dr),
        listings_complete=True,
        delete_extraneous=delete_extraneous,
        max_delete_count=max_delete,
        max_delete_fraction=max_delete_fraction,
    )
    report.before = {"source_objects": len(source), "dr_objects": len(dr)}
    report.facts.update(
        to_copy=len(plan.to_copy),
        changed=len(plan.changed),
        unchanged=len(plan.unchanged),
        extraneous=len(plan.extraneous),
        to_delete=len(deletions),
    )
    if dry_run:
        report.after = {"would_copy": plan.to_copy[:100], "would_delete": deletions[:100]}
        logger.info("dry run: would copy %d and delete %d objects", len(plan.to_copy), len(deletions))
        return {"dry_run": True, "would_copy": plan.to_copy, "would_delete": deletions}

    to_copy = [source[name] for name in plan.to_copy]
    chunk = max(1, math.ceil(len(to_copy) / COPY_TASKS))
    futures = [
        copy_objects.submit(ops, source_bucket, dr_bucket, to_copy[i : i + chunk], dr)
        for i in range(0, len(to_copy), chunk)
    ]
    results = [result for future in futures for result in future.result()]
    failed = [r for r in results if not r.ok]
    copied = [r for r in results if r.ok]
    deleted = (
        delete_objects(ops, dr_bucket, [dr[name] for name in deletions]) if deletions and not failed else []
    )

    if verify_all:
        recheck = diff(source, list_objects(ops, dr_bucket, prefix))
        if recheck.to_copy:
            failed_names = {r.name for r in failed}
            unexplained = [name for name in recheck.to_copy if name not in failed_names]
            if unexplained:
                raise VerificationFailed(f"DR differs from the source after copying: {unexplained[:10]}")

    lag = replication_lag_seconds(source, [r.name for r in failed], datetime.now(UTC))
    report.facts.update(
        copied=len(copied),
        bytes_copied=sum(r.bytes for r in copied),
        skipped=len(plan.unchanged),
        deleted=len(deleted),
        failed=len(failed),
        replication_lag_seconds=round(lag, 1),
    )
    missing = set(plan.missing)
    report.after = {"dr_objects": len(dr) + sum(1 for r in copied if r.name in missing) - len(deleted)}
    report.recorded["replication"] = {"lag_seconds": lag, "copied": len(copied), "failed": len(failed)}
    emit_event(
        event="opsflows.replication.lag",
        resource={
            "prefect.resource.id": f"opsflows.environment.{environment}",
            "prefect.resource.name": environment,
        },
        payload={"lag_seconds": lag, "copied": len(copied), "failed": len(failed), "deleted": len(deleted)},
    )
    if failed:
        raise VerificationFailed(
            f"{len(failed)} of {len(results)} copies failed (e.g. {failed[0].name}: {failed[0].error}); "
            "no DR object was deleted"
        )
    return {
        "copied": len(copied),
        "deleted": len(deleted),
        "skipped": len(plan.unchanged),
        "lag_seconds": lag,
    }
