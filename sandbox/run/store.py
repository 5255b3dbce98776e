"""Cloud Run state: services, revisions and operations, kept as the API's own messages. No HTTP here.

The rules enforced are the API's (DESIGN.md §3): percents sum to 100, tags unique, tag + service name
at most 46 characters, traffic only to existing Ready revisions, a reused revision name with a different
configuration is a 409, a revision serving traffic cannot be deleted.
"""

from __future__ import annotations

import random
import string
import threading
import uuid
from dataclasses import dataclass, field

from google.cloud import run_v2
from google.protobuf import timestamp_pb2

from sandbox.http import ApiError

LATEST = run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST
REVISION = run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION
SUCCEEDED = run_v2.Condition.State.CONDITION_SUCCEEDED
FAILED = run_v2.Condition.State.CONDITION_FAILED
RECONCILING = run_v2.Condition.State.CONDITION_RECONCILING
MAX_TAG_AND_SERVICE = 46


def now() -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.GetCurrentTime()
    return stamp


def condition(state, message: str = "", **reason) -> run_v2.Condition:
    return run_v2.Condition(type_="Ready", state=state, message=message, last_transition_time=now(), **reason)


def config_of(template: run_v2.RevisionTemplate) -> tuple:
    """What makes two revisions the same: image, env, and the rest of the container spec."""
    return tuple(run_v2.Container.to_json(c, sort_keys=True) for c in template.containers)


@dataclass
class ServiceRecord:
    service: run_v2.Service
    revisions: dict[str, run_v2.Revision] = field(default_factory=dict)  # short name → revision
    configs: dict[str, tuple] = field(default_factory=dict)
    counter: int = 0


class RunStore:
    def __init__(self, project: str, region: str):
        self.parent = f"projects/{project}/locations/{region}"
        self.services: dict[str, ServiceRecord] = {}
        self.operations: dict[str, dict] = {}
        self.lock = threading.RLock()

    def record(self, service_id: str) -> ServiceRecord:
        found = self.services.get(service_id)
        if found is None:
            raise ApiError(
                404,
                f"Resource '{service_id}' of kind 'SERVICE' in region '{self.parent.split('/')[-1]}' "
                f"in project '{self.parent.split('/')[1]}' does not exist.",
            )
        return found

    def revision(self, service_id: str, revision_id: str) -> run_v2.Revision:
        found = self.record(service_id).revisions.get(revision_id)
        if found is None:
            raise ApiError(404, f"Revision '{revision_id}' does not exist.")
        return found

    def new_revision(
        self, record: ServiceRecord, template: run_v2.RevisionTemplate
    ) -> tuple[run_v2.Revision, bool]:
        """The revision for `template`: (revision, created). Same name + same config is not a new one."""
        service_id = record.service.name.rsplit("/", 1)[-1]
        name = template.revision
        if name:
            if not name.startswith(service_id + "-"):
                raise ApiError(
                    400, f"Revision name '{name}' must be prefixed by the service name '{service_id}-'."
                )
            if name in record.revisions:
                if record.configs[name] != config_of(template):
                    raise ApiError(
                        409,
                        f"Revision named '{name}' with different configuration already exists.",
                        status="ALREADY_EXISTS",
                    )
                return record.revisions[name], False
        record.counter += 1
        name = (
            name
            or f"{service_id}-{record.counter:05d}-{''.join(random.choices(string.ascii_lowercase, k=3))}"
        )
        revision = run_v2.Revision(
            name=f"{record.service.name}/revisions/{name}",
            uid=str(uuid.uuid4()),
            generation=1,
            service=record.service.name,
            containers=list(template.containers),
            labels=dict(template.labels),
            create_time=now(),
            update_time=now(),
            reconciling=True,
            observed_generation=1,
            conditions=[condition(RECONCILING, "Deploying revision.")],
            etag=uuid.uuid4().hex,
        )
        record.revisions[name] = revision
        record.configs[name] = config_of(template)
        return revision, True

    def check_traffic(
        self, record: ServiceRecord, traffic: list[run_v2.TrafficTarget], pending: str | None
    ) -> None:
        service_id = record.service.name.rsplit("/", 1)[-1]
        if traffic and sum(t.percent for t in traffic) != 100:
            raise ApiError(400, f"Traffic percents must sum to 100, got {sum(t.percent for t in traffic)}.")
        tags = [t.tag for t in traffic if t.tag]
        if len(tags) != len(set(tags)):
            raise ApiError(400, f"Traffic tags must be unique, got {tags}.")
        for tag in tags:
            if len(tag) + len(service_id) > MAX_TAG_AND_SERVICE:
                raise ApiError(
                    400,
                    f"Tag '{tag}' with service name '{service_id}' exceeds {MAX_TAG_AND_SERVICE} characters.",
                )
        for target in traffic:
            if target.percent < 0:
                raise ApiError(400, "Traffic percent must not be negative.")
            if target.type_ == REVISION:
                short = target.revision.rsplit("/", 1)[-1]
                revision = record.revisions.get(short)
                if revision is None:
                    raise ApiError(400, f"Revision '{short}' referenced in traffic not found.")
                if short != pending and not is_ready(revision):
                    raise ApiError(400, f"Revision '{short}' is not ready and cannot serve traffic.")
            elif target.type_ != LATEST:
                raise ApiError(400, "Invalid value at 'service.traffic': type must be LATEST or REVISION.")

    def resolved(self, record: ServiceRecord) -> list[tuple[str, int, str]]:
        """(revision, percent, tag) as traffic is served, LATEST resolved to the latest Ready revision."""
        latest = record.service.latest_ready_revision.rsplit("/", 1)[-1]
        traffic = record.service.traffic or [run_v2.TrafficTarget(type_=LATEST, percent=100)]
        return [
            ((t.revision.rsplit("/", 1)[-1] if t.type_ == REVISION else latest), t.percent, t.tag)
            for t in traffic
        ]


def is_ready(revision: run_v2.Revision) -> bool:
    return any(c.type_ == "Ready" and c.state == SUCCEEDED for c in revision.conditions)
