"""Manual rollback of a Cloud Run service, from the Prefect UI during an incident.

Replaces "Rollback Procedure" (seed 001) and "Manual Rollback" (002, 003). No analysis and no soak
(re-running the canary on the way back is the top complaint about Argo Rollouts and Flagger): check the
target exists and is Ready, move 100% to it, check health, tell everyone.
"""

from __future__ import annotations

from prefect import get_run_logger

from flows._audited import audit_store, audited_flow, current_report
from flows._services import (
    CANDIDATE_TAG,
    heal_after_cancel,
    heal_service_leftovers,
    record_stable_traffic,
    restore_traffic,
)
from tasks.clients import load_environment
from tasks.cloud_run import (
    get_revision,
    list_revisions,
    read_service,
    set_traffic,
    split_as_dicts,
    split_from_dicts,
)
from tasks.decisions.traffic import pick_previous, primary_revision, rollback_split
from tasks.errors import InvalidInput
from tasks.locks import service_lock
from tasks.probes import health_check

PREVIOUS = "previous"


@audited_flow("rollback", notify_success=True, on_cancellation=[heal_after_cancel])
def rollback(
    environment: str,
    service: str,
    reason: str,
    to_revision: str = PREVIOUS,
    requested_by: str = "",
    dry_run: bool = False,
) -> dict:
    """Send 100% of a Cloud Run service's traffic back to an earlier revision, now.

    Args:
        environment: Name of the ops-environment block (production, staging, sandbox).
        service: Cloud Run service to roll back, e.g. api.
        reason: Why you are rolling back (incident id, symptom). Required: it goes into the audit trail and Slack.
        to_revision: "previous" (the revision that served before the current one) or a revision name, e.g. api-00042-xyz.
        requested_by: Your name or handle, for the audit trail.
        dry_run: Show what would change, change nothing.
    """
    logger = get_run_logger()
    if not reason.strip():
        raise InvalidInput("a reason is required for a rollback; nothing was changed")
    ops = load_environment(environment)
    if service not in ops.cloud_run.services:
        raise InvalidInput(
            f"service {service!r} is not one of this environment's services {ops.cloud_run.services}; nothing was changed"
        )
    report = current_report()
    report.facts["reason"] = reason

    with service_lock(environment, service, ops.canary.lock_timeout_seconds):
        state = read_service(ops, service)
        current = heal_service_leftovers(ops, environment, service, state, CANDIDATE_TAG, dry_run)
        target = to_revision.strip()
        if target == PREVIOUS:
            history = [
                split_from_dicts(t) for t in audit_store(ops).stable_traffic_history(environment, service)
            ]
            revisions = [(r.name, r.ready) for r in list_revisions(ops, service)]
            target = pick_previous(current, history, revisions)
            if target is None:
                raise InvalidInput(f"{service} has no earlier revision to roll back to; nothing was changed")
        revision = get_revision(ops, service, target)
        if revision is None:
            raise InvalidInput(
                f"revision {target!r} of {service} does not exist (never created, or pruned); nothing was changed"
            )
        if not revision.ready:
            raise InvalidInput(
                f"revision {target!r} of {service} is not Ready ({revision.failure or 'no Ready condition'}); "
                "nothing was changed"
            )
        planned = rollback_split(current, target)
        report.before = {
            "service": service,
            "traffic": split_as_dicts(current),
            "serving": primary_revision(current),
        }
        report.facts.update(service=service, to_revision=target, previously_serving=primary_revision(current))
        if dry_run:
            report.after = {"plan": split_as_dicts(planned)}
            logger.info("dry run: would send 100%% of %s to %s", service, target)
            return {"dry_run": True, "to_revision": target, "plan": split_as_dicts(planned)}

        record_stable_traffic(service, current)
        try:
            state = set_traffic(ops, service, planned)
            health_check(
                state.uri,
                ops.canary.health_path,
                ops.canary.health_attempts,
                ops.canary.health_interval_seconds,
                f"service {service} on {target}",
            )
        except BaseException:
            # The target is unhealthy too: go back to what served before rather than leave it there.
            restore_traffic(ops, service, current)
            report.after = {"service": service, "traffic": split_as_dicts(current), "restored": True}
            raise
        report.after = {"service": service, "traffic": split_as_dicts(state.traffic), "serving": target}
        report.recorded["stable_traffic"] = {"service": service, "traffic": split_as_dicts(state.traffic)}
        return {"to_revision": target, "traffic": split_as_dicts(state.traffic)}
