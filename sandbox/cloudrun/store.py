"""The Cloud Run stand-in's state: services, their revisions, and long-running operations. No HTTP here.

A service holds its *spec* (what users set: template, traffic, labels...) and its *status* (what the
reconciler last made true: observed generation, latest ready revision, the traffic actually routed).
Every change to the spec bumps `generation`; the reconciler (reconciler.py) catches the status up and
finishes the operation. Readers see a consistent picture because everything goes through `lock`.
"""

from __future__ import annotations

import random
import string
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sandbox.http import ApiError

# Condition states and reasons, exactly as run.v2 spells them (a typo would silently read as 0).
PENDING = "CONDITION_PENDING"
RECONCILING = "CONDITION_RECONCILING"
FAILED = "CONDITION_FAILED"
SUCCEEDED = "CONDITION_SUCCEEDED"
LATEST = "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST"
REVISION = "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION"


def now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Condition:
    type: str
    state: str
    message: str = ""
    reason: str = ""  # a CommonReason name (service conditions)
    revision_reason: str = ""  # a RevisionReason name (revision conditions); one of the two at most
    last_transition: datetime = field(default_factory=now)


@dataclass
class Revision:
    name: str  # short name, e.g. api-00002-xqz
    service: str
    template: dict[str, Any]  # the normalised RevisionTemplate it was made from, without `revision`
    generation_created: int  # the service generation that created it
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))
    create_time: datetime = field(default_factory=now)
    update_time: datetime = field(default_factory=now)
    state: str = RECONCILING  # RECONCILING until its process listens, then SUCCEEDED or FAILED
    message: str = ""

    @property
    def ready(self) -> bool:
        return self.state == SUCCEEDED

    @property
    def container(self) -> dict[str, Any]:
        containers = self.template.get("containers") or [{}]
        return containers[0]

    @property
    def image(self) -> str:
        return self.container.get("image", "")

    @property
    def env(self) -> dict[str, str]:
        return {e["name"]: e.get("value", "") for e in self.container.get("env", []) if "name" in e}


@dataclass
class Routed:
    """One entry of the traffic actually served (trafficStatuses), with LATEST already resolved."""

    type: str
    revision: str
    percent: int
    tag: str = ""


@dataclass
class Service:
    name: str
    spec: dict[str, Any]  # settable fields only (spec.py), normalised, camelCase, enum names
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))
    generation: int = 1
    create_time: datetime = field(default_factory=now)
    update_time: datetime = field(default_factory=now)
    observed_generation: int = 0
    latest_created: str = ""
    latest_ready: str = ""
    routed: list[Routed] = field(default_factory=list)
    terminal: Condition = field(default_factory=lambda: Condition("Ready", RECONCILING))
    routes_ready: Condition = field(default_factory=lambda: Condition("RoutesReady", RECONCILING))
    revisions: dict[str, Revision] = field(default_factory=dict)  # in creation order
    revision_counter: int = 0

    @property
    def reconciling(self) -> bool:
        return self.observed_generation < self.generation

    @property
    def etag(self) -> str:
        return f'"{self.uid[:8]}/{self.generation}/{self.update_time.timestamp():.6f}"'

    def new_revision_name(self) -> str:
        """`{service}-{5-digit counter}-{3 random letters}`, as Cloud Run names them."""
        suffix = "".join(random.choices(string.ascii_lowercase, k=3))
        return f"{self.name}-{self.revision_counter + 1:05d}-{suffix}"

    def serving(self) -> set[str]:
        """Revisions that receive traffic or carry a tag: they must keep running."""
        return {r.revision for r in self.routed if r.percent > 0 or r.tag}


@dataclass
class Operation:
    name: str  # projects/{p}/locations/{l}/operations/{uuid}
    kind: str  # CREATE, UPDATE, DELETE (service) or DELETE_REVISION
    service: str
    metadata: dict[str, Any]  # the resource as it stood when the operation started (encoded)
    metadata_type: str  # "Service" or "Revision"
    generation: int = 0
    new_revision: str = ""  # the revision this operation created, if any
    traffic: list[dict[str, Any]] = field(default_factory=list)  # the traffic spec it asked for
    done: bool = False
    response: dict[str, Any] | None = None
    error: dict[str, Any] | None = None  # {"code": gRPC code, "message": ...}
    create_time: datetime = field(default_factory=now)
    finished: threading.Event = field(default_factory=threading.Event)

    def finish(self, response: dict[str, Any] | None = None, error: dict[str, Any] | None = None) -> None:
        self.response, self.error, self.done = response, error, True
        self.finished.set()


@dataclass
class InjectedFailure:
    """`POST /_sandbox/run/fail-next-operation`: the next matching operation fails and changes nothing."""

    service: str | None
    message: str
    code: int = 13  # gRPC INTERNAL


class Store:
    def __init__(self, project: str, region: str):
        self.project = project
        self.region = region
        self.lock = threading.RLock()
        self.services: dict[str, Service] = {}
        self.operations: dict[str, Operation] = {}
        self.injected: list[InjectedFailure] = []

    def not_found(self, kind: str, name: str) -> ApiError:
        return ApiError(
            404,
            f"Resource '{name}' of kind '{kind}' in region '{self.region}' in project "
            f"'{self.project}' does not exist.",
        )

    def service(self, name: str) -> Service:
        with self.lock:
            found = self.services.get(name)
        if found is None:
            raise self.not_found("SERVICE", name)
        return found

    def revision(self, service: str, name: str) -> Revision:
        with self.lock:
            found = self.services.get(service)
            revision = found.revisions.get(name) if found is not None else None
        if revision is None:
            raise self.not_found("REVISION", name)
        return revision

    def operation(self, name: str) -> Operation:
        with self.lock:
            found = self.operations.get(name)
        if found is None:
            raise ApiError(404, f"Operation '{name}' does not exist.")
        return found

    def new_operation_name(self) -> str:
        return f"projects/{self.project}/locations/{self.region}/operations/{uuid.uuid4()}"

    def add_operation(self, operation: Operation) -> Operation:
        with self.lock:
            self.operations[operation.name] = operation
        return operation

    def take_injected_failure(self, service: str) -> InjectedFailure | None:
        with self.lock:
            for failure in self.injected:
                if failure.service in (None, service):
                    self.injected.remove(failure)
                    return failure
        return None
