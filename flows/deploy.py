"""Canary deploy of a Cloud Run service, with automatic rollback.

Replaces rolling-update.sh (seed 000) and the blue-green runbook (001): new revision with no traffic
and a candidate tag, health check of the tagged URL, traffic 10% → 50% → 100% with active probing in
between, promotion; on any failure, timeout, refused approval or cancellation, the exact traffic split
from before the deploy is put back and checked.
"""

from __future__ import annotations

import re
from pathlib import Path

from prefect import get_run_logger
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from prefect.runtime import flow_run as runtime_flow_run
from pydantic import Field

from blocks import CanaryPolicy, OpsEnvironment
from flows._audited import audited_flow, current_report
from flows._services import (
    CANDIDATE_TAG,
    heal_after_cancel,
    heal_service_leftovers,
    record_stable_traffic,
    restore_traffic,
)
from tasks.clients import load_environment
from tasks.cloud_run import ServiceState, deploy_candidate, read_service, set_traffic, split_as_dicts
from tasks.database import apply_migrations, read_migrations
from tasks.decisions.canary import Thresholds, Verdict
from tasks.decisions.traffic import (
    Split,
    canary_split,
    check_tag,
    promoted_split,
    served_revisions,
    with_candidate,
)
from tasks.errors import CanaryFailed, InvalidInput
from tasks.locks import service_lock
from tasks.probes import health_check, probe_candidate

# registry/path[:tag][@sha256:digest]; a tag or a digest is required (no implicit :latest).
IMAGE_REFERENCE = re.compile(
    r"^(?:[a-z0-9.-]+(?::\d+)?/)?[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*"
    r"(?::[\w][\w.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$"
)
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class PromotionApproval(RunInput):
    approve: bool = Field(
        description="Tick to send 100% of traffic to the new revision; leave unticked to roll back."
    )
    note: str = Field(default="", description="Why (goes into the audit trail).")


def check_deploy_inputs(
    environment: OpsEnvironment, service: str, image: str, env: dict[str, str], policy: CanaryPolicy
) -> None:
    """Everything that can be checked before touching anything."""
    if service not in environment.cloud_run.services:
        raise InvalidInput(
            f"service {service!r} is not one of this environment's services {environment.cloud_run.services}; "
            "nothing was changed"
        )
    if not IMAGE_REFERENCE.match(image) or (":" not in image.rsplit("/", 1)[-1] and "@" not in image):
        raise InvalidInput(
            f"image {image!r} is not a container image reference with a tag or digest "
            "(e.g. europe-docker.pkg.dev/proj/repo/api:1.4.2); nothing was changed"
        )
    bad_names = [name for name in env if not ENV_NAME.match(name)]
    if bad_names:
        raise InvalidInput(f"environment variable names {bad_names} are not valid; nothing was changed")
    check_tag(service, CANDIDATE_TAG)


def candidate_revision_name(service: str, run_id: str) -> str:
    # Fixed per run: a retried update re-sends the same name and config, so nothing is created twice.
    return f"{service}-opsflows-{run_id.replace('-', '')[:10]}"


def step_table(steps: list[dict]) -> str:
    lines = [
        "## Canary steps",
        "",
        "| step | traffic | samples | error rate | p95 ms | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for i, step in enumerate(steps, 1):
        rate = "-" if step["error_rate"] is None else f"{step['error_rate']:.1%}"
        p95 = "-" if step["p95_ms"] is None else f"{step['p95_ms']:.0f}"
        lines.append(f"| {i} | {step['percent']}% | {step['samples']} | {rate} | {p95} | {step['reason']} |")
    return "\n".join(lines)


def wait_for_approval(service: str, candidate: str, timeout_s: float) -> None:
    form = PromotionApproval.with_initial_data(
        description=f"## Promote **{candidate}** to 100% of **{service}**?\n\nEvery canary step passed. "
        "No answer before the timeout rolls back."
    )
    answer = pause_flow_run(wait_for_input=form, timeout=int(timeout_s), poll_interval=2)
    current_report().facts["approval"] = (
        f"{'approved' if answer.approve else 'refused'} {answer.note}".strip()
    )
    if not answer.approve:
        raise CanaryFailed(f"promotion of {candidate} was refused: {answer.note or 'no reason given'}")


@audited_flow("deploy", on_cancellation=[heal_after_cancel])
def deploy(
    environment: str,
    service: str,
    image: str,
    env: dict[str, str] | None = None,
    canary_steps: list[int] | None = None,
    soak_seconds: float | None = None,
    approve_before_full: bool = False,
    run_migrations: bool = False,
    migrations_dir: str = "migrations",
    dry_run: bool = False,
    requested_by: str = "",
) -> dict:
    """Canary deploy of a new image to a Cloud Run service, with automatic rollback.

    Args:
        environment: Name of the ops-environment block (production, staging, sandbox).
        service: Cloud Run service to deploy.
        image: Container image with a tag or digest, e.g. europe-docker.pkg.dev/proj/repo/api:1.4.2.
        env: Environment variables to set on the new revision (like gcloud --set-env-vars).
        canary_steps: Traffic percentages for the new revision, ending at 100. Default: the environment policy.
        soak_seconds: How long each step is probed. Default: the environment policy.
        approve_before_full: Pause for a human approval before the last step (100%).
        run_migrations: Apply pending SQL migrations from migrations_dir before creating the revision.
        migrations_dir: Directory of *.sql migrations, applied in name order.
        dry_run: Print the plan, change nothing.
        requested_by: Who asked for this deploy (goes into the audit trail).
    """
    logger = get_run_logger()
    ops = load_environment(environment)
    try:
        overrides = {"steps": canary_steps, "soak_seconds": soak_seconds}
        policy = CanaryPolicy.model_validate(
            {**ops.canary.model_dump(), **{k: v for k, v in overrides.items() if v is not None}}
        )
    except ValueError as exc:
        raise InvalidInput(f"{exc}; nothing was changed") from exc
    env = env or {}
    check_deploy_inputs(ops, service, image, env, policy)
    migrations = read_migrations(Path(migrations_dir)) if run_migrations else []
    if run_migrations and ops.migrations_dsn is None:
        raise InvalidInput(
            "run_migrations needs migrations_dsn in the environment block; nothing was changed"
        )

    report = current_report()
    candidate = candidate_revision_name(service, str(runtime_flow_run.get_id()))
    thresholds = Thresholds(policy.max_error_rate, policy.max_p95_latency_ms, policy.min_samples)

    with service_lock(environment, service, policy.lock_timeout_seconds):
        state = read_service(ops, service)
        stable = heal_service_leftovers(ops, environment, service, state, CANDIDATE_TAG, dry_run)
        report.before = {"service": service, "image": state.image, "traffic": split_as_dicts(stable)}
        plan = [split_as_dicts(canary_split(stable, candidate, CANDIDATE_TAG, p)) for p in policy.steps]
        if dry_run:
            report.facts.update(
                candidate=candidate,
                image=image,
                steps=policy.steps,
                migrations=[m.version for m in migrations],
            )
            report.after = {
                "plan": plan,
                "promoted": split_as_dicts(promoted_split(stable, candidate, CANDIDATE_TAG)),
            }
            logger.info("dry run: would deploy %s as %s with steps %s", image, candidate, plan)
            return {"dry_run": True, "candidate": candidate, "plan": plan}

        record_stable_traffic(service, stable)
        steps: list[dict] = []
        try:
            if run_migrations:
                report.facts["migrations applied"] = apply_migrations(
                    ops.migrations_dsn.get_secret_value(), Path(migrations_dir)
                )
            state = deploy_candidate(
                ops,
                service,
                image,
                env,
                candidate,
                with_candidate(stable, candidate, CANDIDATE_TAG),
                policy.ready_deadline_seconds,
            )
            candidate_url = state.tag_uris[CANDIDATE_TAG]
            health_check(
                candidate_url,
                policy.health_path,
                policy.health_attempts,
                policy.health_interval_seconds,
                f"candidate {candidate}",
            )
            for percent in policy.steps:
                if percent == 100 and approve_before_full:
                    wait_for_approval(service, candidate, policy.approval_timeout_seconds)
                state = set_traffic(ops, service, canary_split(stable, candidate, CANDIDATE_TAG, percent))
                verdict: Verdict = probe_candidate(
                    candidate_url, policy.soak_seconds, policy.probe_interval_seconds, thresholds
                )
                steps.append({"percent": percent, **verdict.as_dict()})
                if not verdict.passed:
                    raise CanaryFailed(f"candidate {candidate} failed at {percent}%: {verdict.reason}")
            state = promote(ops, service, stable, candidate, policy)
        except BaseException as failure:
            report.sections.append(step_table(steps))
            report.facts["failure"] = str(failure)
            restored = restore_traffic(ops, service, stable)
            report.after = {
                "service": service,
                "traffic": split_as_dicts(restored.traffic),
                "rolled_back": True,
            }
            report.recorded["stable_traffic"] = {"service": service, "traffic": split_as_dicts(stable)}
            raise
        report.sections.append(step_table(steps))
        report.after = {"service": service, "image": image, "traffic": split_as_dicts(state.traffic)}
        report.recorded["stable_traffic"] = {"service": service, "traffic": split_as_dicts(state.traffic)}
        report.facts.update(candidate=candidate, image=image, served=served_revisions(state.traffic))
        return {"candidate": candidate, "traffic": split_as_dicts(state.traffic), "steps": steps}


def promote(
    ops: OpsEnvironment, service: str, stable: Split, candidate: str, policy: CanaryPolicy
) -> ServiceState:
    """100% to the candidate without its tag, then the final health check on the service URL."""
    state = set_traffic(ops, service, promoted_split(stable, candidate, CANDIDATE_TAG))
    health_check(
        state.uri,
        policy.health_path,
        policy.health_attempts,
        policy.health_interval_seconds,
        f"service {service} after promotion",
    )
    return state
