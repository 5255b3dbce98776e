"""`audited_flow`: the one mechanism that gives every opsflows flow its trail.

Wrapping a flow with it means, without a line in the flow body:
- an audit record when the run starts and when it ends (completed, failed, cancelled, crashed), with
  trigger, actor, redacted parameters, the flow's before/after summary and the error text;
- a markdown artifact with the same summary (stable key per flow and environment);
- a Slack notification on failure (and on success where the flow asks), whose own failure is noted in
  the audit record and never fails the run.

A flow adds its facts through `current_report()`. A run cancelled through a worker is stopped from
outside, so its end record is written by the `on_cancellation` hook (after the flow's own hooks, e.g.
the deploy's traffic restore); a run killed outright shows as started with no end.
"""

from __future__ import annotations

import functools
import inspect
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.context import FlowRunContext
from prefect.exceptions import TerminationSignal
from prefect.runtime import flow_run as runtime_flow_run

from blocks import OpsEnvironment
from tasks.audit import AuditStore, redact
from tasks.clients import load_environment
from tasks.errors import InvalidInput
from tasks.notify import notify_slack, send_notification


@dataclass
class RunReport:
    """What a run tells its audit record, artifact and notification."""

    facts: dict[str, Any] = field(default_factory=dict)
    before: Any = None
    after: Any = None
    notes: list[str] = field(default_factory=list)
    sections: list[str] = field(default_factory=list)  # extra markdown, e.g. a canary step table
    # Machine-readable state later runs look up, e.g. {"stable_traffic": {"service": ..., "traffic": [...]}}.
    recorded: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {"facts": self.facts, "before": self.before, "after": self.after, **self.recorded}


# Keyed by flow run id: hooks run after the flow body, outside its context.
_REPORTS: dict[str, RunReport] = {}
_TRAILS: dict[str, _AuditedRun] = {}


def current_report() -> RunReport:
    run_id = str(runtime_flow_run.get_id())
    return _REPORTS.setdefault(run_id, RunReport())


# `run` below carries the wrapped flow's name, so a worker pickles it by value, with a private copy of
# the globals it names; the registries are therefore only ever touched through these module functions.
def _remember(trail: _AuditedRun) -> None:
    if trail.flow_run_id:
        _TRAILS[trail.flow_run_id] = trail


def _forget(trail: _AuditedRun) -> None:
    if trail.flow_run_id:
        _REPORTS.pop(trail.flow_run_id, None)
        _TRAILS.pop(trail.flow_run_id, None)


def record_checkpoint(**summary: Any) -> None:
    """Write a mid-run audit record now, e.g. the stable state a deploy is about to leave.

    If the process dies after this, the next run (or the cancellation hook) finds it.
    """
    trail = _TRAILS[str(runtime_flow_run.get_id())]
    trail.store.append(event="checkpoint", outcome="running", summary=summary, **trail._common())


def audit_store(environment: OpsEnvironment) -> AuditStore:
    return AuditStore(environment.audit_dsn.get_secret_value())


def describe_trigger(flow_run: Any) -> str:
    """How the run was started, from what Prefect knows about it."""
    created_by = getattr(flow_run, "created_by", None)
    if created_by is not None and created_by.type == "SCHEDULE":
        return "schedule"
    if created_by is not None and created_by.type == "AUTOMATION":
        return f"automation: {created_by.display_value}"
    if getattr(flow_run, "parent_task_run_id", None) is not None:
        return "subflow"
    if getattr(flow_run, "deployment_id", None) is not None:
        return "deployment run (CLI, CI, UI or API)"
    return "direct call"


def describe_actor(parameters: dict[str, Any], flow_run: Any) -> str | None:
    if parameters.get("requested_by"):
        return str(parameters["requested_by"])
    created_by = getattr(flow_run, "created_by", None)
    return created_by.display_value if created_by is not None else None


def render_markdown(
    flow_name: str,
    environment: str,
    outcome: str,
    trigger: str,
    actor: str | None,
    parameters: dict[str, Any],
    report: RunReport,
    error: str | None,
) -> str:
    lines = [
        f"# {flow_name} on `{environment}`: **{outcome}**",
        "",
        f"- trigger: {trigger}",
        f"- requested by: {actor or 'unknown'}",
        f"- parameters: `{redact(parameters)}`",
    ]
    if error:
        lines += ["", "## Error", "", f"```\n{error}\n```"]
    if report.facts:
        lines += ["", "## Key facts", "", "| fact | value |", "|---|---|"]
        lines += [f"| {key} | {value} |" for key, value in report.facts.items()]
    if report.before is not None or report.after is not None:
        lines += ["", "## State", "", f"- before: `{report.before}`", f"- after: `{report.after}`"]
    for section in report.sections:
        lines += ["", section]
    if report.notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in report.notes]
    return "\n".join(lines)


def _artifact_key(flow_name: str, environment: str) -> str:
    # Artifact keys allow only lowercase letters, digits and dashes.
    raw = f"{flow_name}-{environment}-run".lower()
    return "".join(ch if ch.isalnum() else "-" for ch in raw)


class _AuditedRun:
    """The trail of one run: written at start and at the end."""

    def __init__(self, flow_name: str, parameters: dict[str, Any]):
        self.flow_name = flow_name
        self.parameters = parameters
        self.environment_name = str(parameters["environment"])
        try:
            self.environment: OpsEnvironment = load_environment(self.environment_name)
        except ValueError as exc:
            raise InvalidInput(
                f"no environment block named {self.environment_name!r} (ops-environment/{self.environment_name}); "
                "nothing was changed"
            ) from exc
        context = FlowRunContext.get()
        self.flow_run = context.flow_run if context else None
        self.flow_run_id = str(self.flow_run.id) if self.flow_run else None
        self.run_url = runtime_flow_run.get_flow_run_ui_url()
        self.trigger = describe_trigger(self.flow_run)
        self.actor = describe_actor(parameters, self.flow_run)
        self.deployment = runtime_deployment_name()
        self.store = audit_store(self.environment)

    def _common(self) -> dict[str, Any]:
        return dict(
            flow=self.flow_name,
            deployment=self.deployment,
            environment=self.environment_name,
            flow_run_id=self.flow_run_id,
            run_url=self.run_url,
            trigger=self.trigger,
            actor=self.actor,
            parameters=self.parameters,
        )

    def start(self) -> None:
        self.store.append(event="started", outcome="running", **self._common())

    def finish(
        self, outcome: str, report: RunReport, error: BaseException | None, notify_success: bool
    ) -> None:
        error_text = None if error is None else f"{type(error).__name__}: {error}"
        if outcome != "completed" or notify_success:
            facts = dict(report.facts)
            if error_text:
                facts["error"] = error_text
            delivery = notify_slack(
                self.environment.slack, self.environment_name, self.flow_name, outcome, facts, self.run_url
            )
            if not delivery.delivered:
                report.notes.append(delivery.detail)
        create_markdown_artifact(
            key=_artifact_key(self.flow_name, self.environment_name),
            markdown=render_markdown(
                self.flow_name,
                self.environment_name,
                outcome,
                self.trigger,
                self.actor,
                self.parameters,
                report,
                error_text,
            ),
            description=f"{self.flow_name} on {self.environment_name}: {outcome}",
        )
        self.store.append(
            event="finished",
            outcome=outcome,
            summary=report.summary(),
            notes=report.notes,
            error=error_text,
            **self._common(),
        )


def runtime_deployment_name() -> str | None:
    from prefect.runtime import deployment

    return deployment.name if deployment.id else None


def _record_end_from_hook(outcome: str) -> Callable:
    """A hook that writes the end record when the run was stopped from outside (worker cancel, crash)."""

    # The runner calls hooks with keyword arguments: the names matter.
    def hook(flow: Any, flow_run: Any, state: Any) -> None:
        parameters = dict(flow_run.parameters or {})
        try:
            environment = load_environment(str(parameters["environment"]))
            store = audit_store(environment)
            if store.has_finished(str(flow_run.id)):
                return
            report = _REPORTS.pop(str(flow_run.id), RunReport())
            delivery = send_notification(
                environment.slack,
                str(parameters["environment"]),
                flow.name,
                outcome,
                {"state": state.message if state is not None else outcome},
                None,
            )
            if not delivery.delivered:
                report.notes.append(delivery.detail)
            store.append(
                event="finished",
                outcome=outcome,
                flow=flow.name,
                deployment=None,
                environment=str(parameters["environment"]),
                flow_run_id=str(flow_run.id),
                run_url=None,
                trigger=describe_trigger(flow_run),
                actor=describe_actor(parameters, flow_run),
                parameters=parameters,
                summary=report.summary(),
                notes=report.notes,
                error=state.message if state is not None else None,
            )
        except Exception:  # noqa: BLE001 - a hook must not mask the run's own end; say why instead
            traceback.print_exc()

    hook.__name__ = f"audit_{outcome}"
    return hook


def audited_flow(
    name: str,
    *,
    notify_success: bool = False,
    on_cancellation: list[Callable] | None = None,
    after_each_run: Callable[[OpsEnvironment, str], None] | None = None,
    **flow_kwargs: Any,
) -> Callable:
    """`prefect.flow`, plus the audit trail, artifact and failure notification described above.

    `after_each_run(environment_block, environment_name)` runs once the end record is written, whatever
    the outcome (e.g. to refresh the DR posture table).
    """

    def decorate(fn: Callable) -> Any:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            trail = _AuditedRun(name, dict(bound.arguments))
            trail.start()
            report = current_report()
            _remember(trail)
            try:
                result = fn(*args, **kwargs)
            except TerminationSignal:
                raise  # stopped from outside: the on_cancellation hook writes the end
            except BaseException as exc:
                get_run_logger().error("%s failed: %s", name, exc)
                trail.finish("failed", report, exc, notify_success)
                raise
            else:
                trail.finish("completed", report, None, notify_success)
                return result
            finally:
                _forget(trail)
                if after_each_run is not None:
                    after_each_run(trail.environment, trail.environment_name)

        return flow(
            name=name,
            on_cancellation=[*(on_cancellation or []), _record_end_from_hook("cancelled")],
            on_crashed=[_record_end_from_hook("crashed")],
            **flow_kwargs,
        )(run)

    return decorate
