"""Shared pieces of the Cloud Run stand-in's contract tests: the stand-in fixture and small builders."""

from __future__ import annotations

from collections.abc import Iterator

from google.cloud import run_v2

from sandbox.cloudrun import CloudRunStandIn

PROJECT = "contract-project"
REGION = "europe-west1"
PARENT = f"projects/{PROJECT}/locations/{REGION}"
# Short enough for fast tests, long enough for a loaded machine to start a revision's process.
STARTUP_DEADLINE_S = 1.0
IDLE_SCALE_DOWN_S = 0.5
REVISION = run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION
LATEST = run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST
SUCCEEDED = run_v2.Condition.State.CONDITION_SUCCEEDED
FAILED = run_v2.Condition.State.CONDITION_FAILED


def running_stand_in() -> Iterator[CloudRunStandIn]:
    """Body of each test module's `stand_in` fixture: one stand-in (and its processes) per module."""
    stand_in = CloudRunStandIn(
        project=PROJECT,
        region=REGION,
        startup_deadline_s=STARTUP_DEADLINE_S,
        idle_scale_down_s=IDLE_SCALE_DOWN_S,
    )
    stand_in.serve()
    yield stand_in
    stand_in.shutdown()


def service_name(service: str) -> str:
    return f"{PARENT}/services/{service}"


def revision_name(service: str, revision: str) -> str:
    return f"{service_name(service)}/revisions/{revision}"


def short(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def template(image: str, revision: str = "", **env: str) -> run_v2.RevisionTemplate:
    container = run_v2.Container(image=image, env=[run_v2.EnvVar(name=k, value=v) for k, v in env.items()])
    return run_v2.RevisionTemplate(revision=revision, containers=[container])


def target(revision: str, percent: int, tag: str = "") -> run_v2.TrafficTarget:
    return run_v2.TrafficTarget(type_=REVISION, revision=revision, percent=percent, tag=tag)
