"""Finishing long-running operations: bring a service's status up to its spec, then mark the op done.

Handlers change the spec at once (new generation, maybe a new revision whose process is starting) and
answer with an unfinished Operation; the work below runs in the background, one operation at a time
per service and in order, as Cloud Run serialises a service's generations. An operation is done as
soon as its revision listens (tens of milliseconds) or has missed the startup deadline, so the
client's first polls (~0.05 s, ~0.3 s) usually see it finished.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from sandbox.cloudrun import traffic
from sandbox.cloudrun.instances import Instances
from sandbox.cloudrun.resources import Encoder, not_ready_message
from sandbox.cloudrun.store import (
    FAILED,
    RECONCILING,
    SUCCEEDED,
    Condition,
    Operation,
    Revision,
    Service,
    Store,
    now,
)

# gRPC codes for Operation.error: the client turns them into exceptions (9 → FailedPrecondition).
FAILED_PRECONDITION = 9
ABORTED = 10


class Reconciler:
    def __init__(
        self,
        store: Store,
        instances: Instances,
        encoder: Encoder,
        startup_deadline_s: Callable[[], float],
        idle_scale_down_s: float,
    ):
        self.store = store
        self.instances = instances
        self.encoder = encoder
        self.startup_deadline_s = startup_deadline_s
        self.idle_scale_down_s = idle_scale_down_s
        self._executors: dict[str, ThreadPoolExecutor] = {}
        self._lock = threading.Lock()

    def submit(self, operation: Operation, job: Callable[[Operation], None]) -> None:
        with self._lock:
            executor = self._executors.get(operation.service)
            if executor is None:
                executor = ThreadPoolExecutor(1, thread_name_prefix=f"run-reconcile-{operation.service}")
                self._executors[operation.service] = executor
        executor.submit(self._guarded, operation, job)

    def _guarded(self, operation: Operation, job: Callable[[Operation], None]) -> None:
        try:
            job(operation)
        except Exception as exc:  # an operation must end, whatever went wrong in the stand-in
            if not operation.done:
                operation.finish(error={"code": 13, "message": f"sandbox error: {exc!r}"})
            raise

    def shutdown(self) -> None:
        with self._lock:
            executors = list(self._executors.values())
            self._executors.clear()
        for executor in executors:
            executor.shutdown(wait=False, cancel_futures=True)

    # -- jobs ----------------------------------------------------------------------------------
    def fail(self, operation: Operation, code: int, message: str) -> None:
        """An operation that ends in error and changes nothing (injected by a test)."""
        self.submit(operation, lambda op: op.finish(error={"code": code, "message": message}))

    def done(self, operation: Operation) -> None:
        """An operation whose work was done by the handler (deletions): it just has to be seen finishing."""
        self.submit(operation, lambda op: op.finish(response=op.metadata))

    def reconcile(self, operation: Operation) -> None:
        self.submit(operation, self._reconcile)

    def _reconcile(self, operation: Operation) -> None:
        service = self.store.services.get(operation.service)
        if service is None:
            operation.finish(
                error={"code": ABORTED, "message": f"Service '{operation.service}' was deleted."}
            )
            return
        failure = ""
        revision = service.revisions.get(operation.new_revision)
        if revision is not None and revision.state == RECONCILING:
            failure = self._bring_up(service, revision)
            with self.store.lock:
                revision.state, revision.message = (FAILED, failure) if failure else (SUCCEEDED, "")
                revision.update_time = now()
                current = service.revisions.get(service.latest_ready)
                if not failure and (
                    current is None or current.generation_created < revision.generation_created
                ):
                    service.latest_ready = revision.name
            if failure:
                self.instances.stop(self.key(service, revision), "failed to start")
        with self.store.lock:
            routed = traffic.resolve(operation.traffic, service.latest_ready)
            wanted = [r for r in routed if r.percent > 0 or r.tag]
        routing_failure = self._ensure_serving(service, [r.revision for r in wanted])
        with self.store.lock:
            if self.store.services.get(service.name) is not service:
                operation.finish(error={"code": ABORTED, "message": f"Service '{service.name}' was deleted."})
                return
            service.observed_generation = max(service.observed_generation, operation.generation)
            if routing_failure:
                service.routes_ready = Condition(
                    "RoutesReady", FAILED, routing_failure, reason="REVISION_FAILED"
                )
            else:
                service.routed = routed
                service.routes_ready = Condition("RoutesReady", SUCCEEDED)
            if failure and revision is not None:
                operation.finish(error={"code": FAILED_PRECONDITION, "message": not_ready_message(revision)})
            elif routing_failure:
                operation.finish(error={"code": FAILED_PRECONDITION, "message": routing_failure})
            else:
                operation.finish(response=self.encoder.service(service))
        self.scale_down_idle(service)

    def _bring_up(self, service: Service, revision: Revision) -> str:
        """'' once the revision's process listens; else the container's failure message."""
        key = self.key(service, revision)
        instance = self.instances.start(key, service.name, revision.name, revision.image, revision.env)
        failure = self.instances.wait_ready(instance, self.startup_deadline_s())
        if not failure:
            return ""
        return (
            "The user-provided container failed to start and listen on the port defined provided by the "
            f"PORT=8080 environment variable within the allocated timeout. {failure}"
        )

    def _ensure_serving(self, service: Service, names: list[str]) -> str:
        """Start revisions that were scaled to zero and get traffic again; '' or why they cannot serve."""
        for name in dict.fromkeys(names):
            if not name:  # LATEST with nothing Ready yet
                return "No revision of the service is Ready, so LATEST cannot serve traffic."
            revision = service.revisions.get(name)
            if revision is None:
                return (
                    f"Revision '{name}' does not exist or is deleted. "
                    "Update all traffic to route to currently available revisions."
                )
            if not revision.ready:
                return not_ready_message(revision)
            if self.instances.port(self.key(service, revision)) is None:
                failure = self._bring_up(service, revision)
                if failure:
                    return f"Revision '{name}' is not ready and cannot serve traffic. {failure}"
        return ""

    def scale_down_idle(self, service: Service) -> None:
        """Revisions without traffic or tag stop after a grace period (min-instances 0)."""
        with self.store.lock:
            idle = [r for r in service.revisions.values() if r.name not in service.serving()]
        for revision in idle:

            def still_idle(revision: Revision = revision) -> bool:
                with self.store.lock:
                    return revision.name not in service.serving()

            self.instances.stop_later(self.key(service, revision), self.idle_scale_down_s, still_idle)

    def key(self, service: Service, revision: Revision) -> str:
        return self.encoder.revision_name(service.name, revision.name)
