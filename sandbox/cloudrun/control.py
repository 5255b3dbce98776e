"""What tests and `opsflows sandbox up` use besides the API: Python helpers and `/_sandbox/run/...` routes.

Kept apart from the route table (server.py) as fake-gcs-server keeps `/_internal/...` apart: nothing
here is something Google offers, and flows must never depend on it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import run_v2

from sandbox.cloudrun.store import REVISION, InjectedFailure, Operation
from sandbox.http import ApiError, Request, Route

if TYPE_CHECKING:
    from sandbox.cloudrun.server import CloudRunStandIn


class RunClients(NamedTuple):
    """The real GAPIC clients (REST transport) aimed at the stand-in."""

    services: run_v2.ServicesClient
    revisions: run_v2.RevisionsClient


class SandboxHelpers:
    """Mixed into CloudRunStandIn; `self` is the stand-in."""

    # -- Python side ---------------------------------------------------------------------------
    def clients(self: CloudRunStandIn) -> RunClients:
        common: dict[str, Any] = {
            "transport": "rest",
            "credentials": AnonymousCredentials(),
            "client_options": ClientOptions(api_endpoint=self.url),
        }
        return RunClients(run_v2.ServicesClient(**common), run_v2.RevisionsClient(**common))

    @property
    def ingress_url(self: CloudRunStandIn) -> str:
        return self.ingress.url

    def service_name(self: CloudRunStandIn, service: str) -> str:
        return self.encoder.service_name(service)

    def seed_service(
        self: CloudRunStandIn,
        name: str,
        image: str = "sandbox/demo-app:v1",
        env: dict[str, str] | None = None,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        """Create `name` with one Ready revision serving 100%, synchronously; its resource (JSON).

        The traffic ends pinned to that revision by name, as after `gcloud run deploy` followed by
        `update-traffic --to-revisions`: a later deploy then gets 0% until traffic is moved.
        """
        container: dict[str, Any] = {"image": image}
        if env:
            container["env"] = [{"name": k, "value": v} for k, v in env.items()]
        _finished(self.mutations.create(name, {"template": {"containers": [container]}}), timeout)
        revision = self.store.service(name).latest_ready
        pinned = {"traffic": [{"type": REVISION, "revision": revision, "percent": 100}]}
        _finished(self.mutations.update(name, pinned, mask="traffic"), timeout)
        with self.store.lock:
            return self.encoder.service(self.store.service(name))

    def fail_next_operation(
        self: CloudRunStandIn,
        service: str | None = None,
        message: str = "Internal error (injected).",
        code: int = 13,
    ) -> None:
        with self.store.lock:
            self.store.injected.append(InjectedFailure(service, message, code))

    def stop_revision(self: CloudRunStandIn, service: str, revision: str) -> None:
        """The revision's process dies (a crash); its URLs answer 503 until traffic moves back to it."""
        self.store.revision(service, revision)
        self.instances.stop(self.encoder.revision_name(service, revision), "crashed (stopped by a test)")

    def revision_url(self: CloudRunStandIn, service: str, revision: str) -> str | None:
        """http://127.0.0.1:{port} of the revision's own process, bypassing the ingress, if it runs."""
        port = self.instances.port(self.encoder.revision_name(service, revision))
        return f"http://127.0.0.1:{port}" if port else None

    # -- /_sandbox/run/... ---------------------------------------------------------------------
    def control_routes(self: CloudRunStandIn) -> list[Route]:
        return [
            Route("POST", "/_sandbox/run/fail-next-operation", self._fail_next_operation),
            Route("POST", "/_sandbox/run/stop-revision", self._stop_revision),
            Route("GET", "/_sandbox/run/instances", lambda r: {"instances": self.instances.running()}),
        ]

    def _fail_next_operation(self: CloudRunStandIn, request: Request) -> dict:
        spec = _fields(request, {"service", "message", "code"})
        self.fail_next_operation(**spec)
        return {"ok": True}

    def _stop_revision(self: CloudRunStandIn, request: Request) -> dict:
        spec = _fields(request, {"service", "revision"})
        if set(spec) != {"service", "revision"}:
            raise ApiError(400, "Give both 'service' and 'revision'.")
        self.stop_revision(spec["service"], spec["revision"])
        return {"ok": True}


def _fields(request: Request, allowed: set[str]) -> dict[str, Any]:
    spec = request.json()
    unknown = set(spec) - allowed
    if unknown:
        raise ApiError(400, f"Unknown fields {sorted(unknown)}; allowed: {sorted(allowed)}")
    return spec


def _finished(operation: Operation, timeout: float) -> Operation:
    if not operation.finished.wait(timeout):
        raise TimeoutError(f"operation {operation.name} did not finish within {timeout} s")
    if operation.error is not None:
        raise RuntimeError(f"operation {operation.name} failed: {operation.error['message']}")
    return operation
