"""Services, revisions and operations as run.v2 JSON (camelCase, enum names, int64 as strings).

Only fields the run.v2 discovery document defines are produced: the conformance tests check every body
with Google's own schemas. Conditions are derived here from the stored state, so they can never
disagree with it: a Service is Ready when it is not reconciling, its latest created revision is Ready
(ConfigurationsReady) and its traffic was applied (RoutesReady), as Knative, underneath Cloud Run, says.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sandbox.cloudrun.store import (
    FAILED,
    LATEST,
    RECONCILING,
    SUCCEEDED,
    Condition,
    Operation,
    Revision,
    Service,
)
from sandbox.cloudrun.wire import clean, timestamp

SERVICE_TYPE = "type.googleapis.com/google.cloud.run.v2.Service"
REVISION_TYPE = "type.googleapis.com/google.cloud.run.v2.Revision"

# Template fields a Revision carries over (the rest, e.g. `revision`, stay on the template).
REVISION_FIELDS = (
    "scaling",
    "vpcAccess",
    "maxInstanceRequestConcurrency",
    "timeout",
    "serviceAccount",
    "containers",
    "volumes",
    "executionEnvironment",
    "encryptionKey",
    "serviceMesh",
    "encryptionKeyRevocationAction",
    "encryptionKeyShutdownDuration",
    "sessionAffinity",
    "nodeSelector",
    "gpuZonalRedundancyDisabled",
)


def condition(c: Condition) -> dict[str, Any]:
    return clean(
        {
            "type": c.type,
            "state": c.state,
            "message": c.message,
            "lastTransitionTime": timestamp(c.last_transition),
            "severity": "ERROR" if c.state == FAILED else None,
            "reason": c.reason,
            "revisionReason": c.revision_reason,
        }
    )


def revision_ready(revision: Revision) -> Condition:
    if revision.state == FAILED:
        return Condition(
            "Ready",
            FAILED,
            revision.message,
            revision_reason="HEALTH_CHECK_CONTAINER_ERROR",
            last_transition=revision.update_time,
        )
    return Condition("Ready", revision.state, last_transition=revision.update_time)


def service_conditions(service: Service) -> tuple[Condition, list[Condition]]:
    """(terminalCondition, conditions) of a service, from its revisions and routing state."""
    latest = service.revisions.get(service.latest_created)
    config = Condition("ConfigurationsReady", RECONCILING, last_transition=service.update_time)
    if latest is not None and not latest.state == RECONCILING:
        config = Condition("ConfigurationsReady", latest.state, last_transition=latest.update_time)
        if latest.state == FAILED:
            config.reason = "REVISION_FAILED"
            config.message = not_ready_message(latest)
    routes = service.routes_ready
    if service.reconciling:
        terminal = Condition("Ready", RECONCILING, last_transition=service.update_time)
    elif config.state == FAILED:
        terminal = Condition("Ready", FAILED, config.message, reason="REVISION_FAILED")
        terminal.last_transition = config.last_transition
    elif routes.state == FAILED:
        terminal = Condition("Ready", FAILED, routes.message, reason=routes.reason)
        terminal.last_transition = routes.last_transition
    else:
        terminal = Condition(
            "Ready", SUCCEEDED, last_transition=max(config.last_transition, routes.last_transition)
        )
    return terminal, [routes, config]


def not_ready_message(revision: Revision) -> str:
    return f"Revision '{revision.name}' is not ready and cannot serve traffic. {revision.message}"


class Encoder:
    """Builds the JSON resources; knows the project, region and where the ingress serves URLs."""

    def __init__(self, project: str, region: str, ingress_url: Callable[[], str | None]):
        self.project = project
        self.region = region
        self.ingress_url = ingress_url

    @property
    def parent(self) -> str:
        return f"projects/{self.project}/locations/{self.region}"

    def service_name(self, service: str) -> str:
        return f"{self.parent}/services/{service}"

    def revision_name(self, service: str, revision: str) -> str:
        return f"{self.service_name(service)}/revisions/{revision}" if revision else ""

    def url(self, service: str, tag: str = "") -> str:
        """`http://127.0.0.1:{ingress}/_run/{service}`, or `.../_run/{tag}---{service}` for a tag."""
        host = f"{tag}---{service}" if tag else service
        base = self.ingress_url()
        return f"{base}/_run/{host}" if base else f"https://{host}-sandbox-{self.region}.a.run.app"

    def service(self, service: Service) -> dict[str, Any]:
        terminal, conditions = service_conditions(service)
        statuses = [
            clean(
                {
                    "type": routed.type,
                    # Cloud Run names no revision in the status of a LATEST target.
                    "revision": None if routed.type == LATEST else routed.revision,
                    "percent": routed.percent,
                    "tag": routed.tag,
                    "uri": self.url(service.name, routed.tag) if routed.tag else None,
                }
            )
            for routed in service.routed
        ]
        uri = self.url(service.name)
        return clean(
            {
                "name": self.service_name(service.name),
                "uid": service.uid,
                "generation": str(service.generation),
                **service.spec,
                "createTime": timestamp(service.create_time),
                "updateTime": timestamp(service.update_time),
                "observedGeneration": str(service.observed_generation)
                if service.observed_generation
                else None,
                "terminalCondition": condition(terminal),
                "conditions": [condition(c) for c in conditions],
                "latestReadyRevision": self.revision_name(service.name, service.latest_ready),
                "latestCreatedRevision": self.revision_name(service.name, service.latest_created),
                "trafficStatuses": statuses,
                "uri": uri,
                "urls": [uri],
                "reconciling": service.reconciling,
                "etag": service.etag,
            }
        )

    def revision(self, revision: Revision, launch_stage: str = "GA") -> dict[str, Any]:
        template = revision.template
        ready = revision_ready(revision)
        healthy = Condition(
            "ContainerHealthy", ready.state, ready.message, last_transition=ready.last_transition
        )
        healthy.revision_reason = ready.revision_reason
        resources = Condition("ResourcesAvailable", SUCCEEDED, last_transition=revision.create_time)
        return clean(
            {
                "name": self.revision_name(revision.service, revision.name),
                "uid": revision.uid,
                "generation": "1",
                "labels": template.get("labels"),
                "annotations": template.get("annotations"),
                "createTime": timestamp(revision.create_time),
                "updateTime": timestamp(revision.update_time),
                "launchStage": launch_stage,
                "service": revision.service,
                **{key: template[key] for key in REVISION_FIELDS if key in template},
                "reconciling": revision.state == RECONCILING,
                "observedGeneration": None if revision.state == RECONCILING else "1",
                "conditions": [condition(ready), condition(healthy), condition(resources)],
                "logUri": f"https://console.cloud.google.com/logs/viewer?project={self.project}"
                f"&resource=cloud_run_revision/service_name/{revision.service}/revision_name/{revision.name}",
                "etag": f'"{revision.uid[:8]}/{revision.update_time.timestamp():.6f}"',
            }
        )

    def operation(self, operation: Operation) -> dict[str, Any]:
        kind = REVISION_TYPE if operation.metadata_type == "Revision" else SERVICE_TYPE
        body: dict[str, Any] = {
            "name": operation.name,
            "metadata": {"@type": kind, **operation.metadata},
            "done": operation.done,
        }
        if operation.error is not None:
            body["error"] = operation.error
        elif operation.response is not None:
            body["response"] = {"@type": kind, **operation.response}
        return body
