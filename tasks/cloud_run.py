"""Cloud Run verbs: read a service, deploy a candidate revision, set traffic, read revisions.

Every mutation is idempotent by construction (explicit revision names, whole traffic lists), so the
google-api-core retry on 429/503 is safe; 400s and 409s are never retried. Traffic-only updates send
only `traffic` (update mask): echoing the template back can hit 409 "Revision named ... with
different configuration already exists".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from google.api_core import exceptions as google_errors
from google.api_core.retry import Retry, if_exception_type
from google.cloud import run_v2
from google.protobuf.field_mask_pb2 import FieldMask
from prefect import task
from prefect.cache_policies import NO_CACHE

from blocks import OpsEnvironment
from tasks.clients import revisions_client, services_client
from tasks.errors import CanaryFailed, OperationFailed

LATEST = "LATEST"
REVISION = "REVISION"


@dataclass(frozen=True)
class Target:
    percent: int
    revision: str | None = None  # None with type LATEST
    tag: str | None = None
    type: str = REVISION

    def as_dict(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Target:
        return cls(
            percent=int(data.get("percent") or 0),
            revision=data.get("revision") or None,
            tag=data.get("tag") or None,
            type=data.get("type", REVISION),
        )


Split = tuple[Target, ...]


def split_from_dicts(entries: list[dict[str, Any]]) -> Split:
    return tuple(Target.from_dict(entry) for entry in entries)


def split_as_dicts(split: Split) -> list[dict[str, Any]]:
    return [target.as_dict() for target in split]


_TYPES = {
    run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST: LATEST,
    run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION: REVISION,
}
_SUCCEEDED = run_v2.Condition.State.CONDITION_SUCCEEDED
_FAILED = run_v2.Condition.State.CONDITION_FAILED

# Transient answers only; a 400 (bad traffic) or 409 (name clash) will not get better by retrying.
API_RETRY = Retry(
    predicate=if_exception_type(google_errors.ServiceUnavailable, google_errors.TooManyRequests),
    initial=0.2,
    maximum=5.0,
    multiplier=2.0,
    timeout=60.0,
)


def _short(name: str) -> str:
    return name.rsplit("/", 1)[-1] if name else ""


@dataclass
class ServiceState:
    """What a deploy or rollback needs to know about a service, read in one call."""

    name: str
    generation: int
    traffic: Split
    tag_uris: dict[str, str]
    uri: str
    latest_ready_revision: str
    latest_created_revision: str
    image: str
    ready: bool
    failure: str = ""
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class RevisionState:
    name: str
    ready: bool
    failure: str
    image: str
    create_time: float


def _service_name(environment: OpsEnvironment, service: str) -> str:
    return f"projects/{environment.project}/locations/{environment.region}/services/{service}"


def _state(svc: run_v2.Service) -> ServiceState:
    terminal = svc.terminal_condition
    ready = not svc.reconciling and svc.observed_generation == svc.generation and terminal.state == _SUCCEEDED
    container = svc.template.containers[0] if svc.template.containers else None
    return ServiceState(
        name=_short(svc.name),
        generation=svc.generation,
        traffic=tuple(
            Target(
                percent=t.percent,
                revision=_short(t.revision) or None,
                tag=t.tag or None,
                type=_TYPES.get(t.type_, REVISION),
            )
            for t in svc.traffic
        ),
        tag_uris={s.tag: s.uri for s in svc.traffic_statuses if s.tag},
        uri=svc.uri,
        latest_ready_revision=_short(svc.latest_ready_revision),
        latest_created_revision=_short(svc.latest_created_revision),
        image=container.image if container else "",
        ready=ready,
        failure="" if terminal.state != _FAILED else f"{terminal.reason.name}: {terminal.message}",
        env={e.name: e.value for e in container.env} if container else {},
    )


def _traffic(split: Split) -> list[run_v2.TrafficTarget]:
    kinds = {v: k for k, v in _TYPES.items()}
    return [
        run_v2.TrafficTarget(
            type_=kinds[t.type], revision=t.revision or "", percent=t.percent, tag=t.tag or ""
        )
        for t in split
    ]


@task(name="read-service", cache_policy=NO_CACHE)
def read_service(environment: OpsEnvironment, service: str) -> ServiceState:
    client = services_client(environment)
    return _state(client.get_service(name=_service_name(environment, service), retry=API_RETRY))


def _wait(operation, deadline_s: float, what: str) -> run_v2.Service:
    try:
        return operation.result(timeout=deadline_s)
    except TimeoutError as exc:
        raise CanaryFailed(f"{what} did not finish within {deadline_s:.0f} s") from exc
    except google_errors.GoogleAPICallError as exc:
        raise OperationFailed(f"{what} failed: {exc.message}") from exc


@task(name="deploy-candidate", cache_policy=NO_CACHE)
def deploy_candidate(
    environment: OpsEnvironment,
    service: str,
    image: str,
    env: dict[str, str],
    revision: str,
    traffic: Split,
    deadline_s: float,
) -> ServiceState:
    """Create `revision` (image + env) with the given traffic (the candidate at 0%, tagged); wait until Ready.

    The revision name is fixed by the caller, so a retried call re-sends the same configuration and
    Cloud Run creates nothing twice.
    """
    client = services_client(environment)
    current = client.get_service(name=_service_name(environment, service), retry=API_RETRY)
    template = run_v2.RevisionTemplate(current.template)
    template.revision = revision
    container = template.containers[0]
    container.image = image
    merged = {e.name: e.value for e in container.env}
    merged.update(env)
    del container.env[:]
    container.env.extend(run_v2.EnvVar(name=k, value=v) for k, v in sorted(merged.items()))
    update = run_v2.Service(name=current.name, template=template, traffic=_traffic(traffic))
    operation = client.update_service(
        request=run_v2.UpdateServiceRequest(
            service=update, update_mask=FieldMask(paths=["template", "traffic"])
        ),
        retry=API_RETRY,
    )
    try:
        return _state(_wait(operation, deadline_s, f"revision {revision}"))
    except OperationFailed as exc:
        raise CanaryFailed(f"revision {revision} never became Ready: {exc}") from exc


@task(name="set-traffic", cache_policy=NO_CACHE)
def set_traffic(
    environment: OpsEnvironment, service: str, traffic: Split, deadline_s: float = 120
) -> ServiceState:
    """Send exactly this traffic list (and nothing else) and wait for Cloud Run to apply it."""
    client = services_client(environment)
    update = run_v2.Service(name=_service_name(environment, service), traffic=_traffic(traffic))
    operation = client.update_service(
        request=run_v2.UpdateServiceRequest(service=update, update_mask=FieldMask(paths=["traffic"])),
        retry=API_RETRY,
    )
    return _state(_wait(operation, deadline_s, f"traffic update of {service}"))


def _reason(condition: run_v2.Condition) -> str:
    # A condition carries one of several reason enums; a revision's own is `revision_reason`.
    return (condition.revision_reason or condition.reason).name


def _revision_state(revision: run_v2.Revision) -> RevisionState:
    ready = next((c for c in revision.conditions if c.type_ == "Ready"), None)
    return RevisionState(
        name=_short(revision.name),
        ready=ready is not None and ready.state == _SUCCEEDED,
        failure="" if ready is None or ready.state != _FAILED else f"{_reason(ready)}: {ready.message}",
        image=revision.containers[0].image if revision.containers else "",
        create_time=revision.create_time.timestamp() if revision.create_time else 0.0,
    )


@task(name="get-revision", cache_policy=NO_CACHE)
def get_revision(environment: OpsEnvironment, service: str, revision: str) -> RevisionState | None:
    """The revision, or None when it does not exist (never created, or pruned)."""
    name = f"{_service_name(environment, service)}/revisions/{revision}"
    try:
        return _revision_state(revisions_client(environment).get_revision(name=name, retry=API_RETRY))
    except google_errors.NotFound:
        return None


@task(name="list-revisions", cache_policy=NO_CACHE)
def list_revisions(environment: OpsEnvironment, service: str) -> list[RevisionState]:
    """Every revision of the service, newest first."""
    pager = revisions_client(environment).list_revisions(
        parent=_service_name(environment, service), retry=API_RETRY
    )
    return sorted((_revision_state(r) for r in pager), key=lambda r: r.create_time, reverse=True)
