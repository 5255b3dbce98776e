"""Steps shared by deploy and rollback: heal a dead run's leftovers, record and restore stable traffic."""

from __future__ import annotations

import logging
from typing import Any

from prefect import get_run_logger

from blocks import OpsEnvironment
from flows._audited import audit_store, current_report, record_checkpoint
from tasks.clients import load_environment
from tasks.cloud_run import ServiceState, read_service, set_traffic, split_as_dicts, split_from_dicts
from tasks.decisions.traffic import Split, heal_target, needs_healing, pin_latest, same_split
from tasks.errors import VerificationFailed

# The tag every opsflows deploy gives its candidate; a leftover one means a deploy died mid-canary.
CANDIDATE_TAG = "candidate"


def last_stable_split(ops: OpsEnvironment, environment: str, service: str) -> Split | None:
    history = audit_store(ops).stable_traffic_history(environment, service, limit=1)
    return split_from_dicts(history[0]) if history else None


def heal_service_leftovers(
    ops: OpsEnvironment, environment: str, service: str, state: ServiceState, tag: str, dry_run: bool
) -> Split:
    """The service's stable split; first puts it back if a dead run left a candidate tag or a partial split."""
    current = pin_latest(state.traffic, state.latest_ready_revision)
    last_stable = last_stable_split(ops, environment, service)
    if not needs_healing(current, last_stable, tag):
        return current
    stable = heal_target(current, last_stable, tag)
    message = (
        f"found leftovers of a run that did not finish on {service}: traffic {split_as_dicts(current)}; "
        f"{'would restore' if dry_run else 'restored'} the last stable split {split_as_dicts(stable)}"
    )
    get_run_logger().warning(message)
    current_report().notes.append(message)
    if not dry_run:
        restore_traffic(ops, service, stable)
    return stable


def record_stable_traffic(service: str, stable: Split) -> None:
    """Checkpoint the split this run is about to leave, so a killed run can be healed back to it."""
    record_checkpoint(stable_traffic={"service": service, "traffic": split_as_dicts(stable)})


def restore_traffic(ops: OpsEnvironment, service: str, stable: Split) -> ServiceState:
    """Put `stable` back exactly and check that Cloud Run serves it."""
    set_traffic.with_options(retries=3, retry_delay_seconds=1)(ops, service, stable)
    state = read_service(ops, service)
    if not same_split(state.traffic, stable):
        raise VerificationFailed(
            f"traffic of {service} was NOT restored: expected {split_as_dicts(stable)}, "
            f"found {split_as_dicts(state.traffic)}; fix it by hand (opsflows rollback)"
        )
    return state


def heal_after_cancel(flow: Any, flow_run: Any, state: Any) -> None:
    """on_cancellation hook: the run was stopped from outside, mid-change; put the stable split back.

    Runs outside the flow (in the worker's hook process), so it calls the task functions directly.
    """
    logger = logging.getLogger("opsflows.cancel")
    parameters = flow_run.parameters or {}
    if parameters.get("dry_run"):
        return
    environment, service = parameters["environment"], parameters["service"]
    ops = load_environment(environment)
    last_stable = last_stable_split(ops, environment, service)
    current = read_service.fn(ops, service)
    if last_stable is None or not needs_healing(current.traffic, last_stable, CANDIDATE_TAG):
        return
    logger.warning(
        "run %s cancelled mid-change: restoring %s of %s", flow_run.id, split_as_dicts(last_stable), service
    )
    set_traffic.fn(ops, service, last_stable)
