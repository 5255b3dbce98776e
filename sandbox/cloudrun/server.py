"""The Cloud Run Admin API v2 stand-in: the one route table, its handlers, and the wire glue.

Services, revisions and operations are served over REST exactly where `google.cloud.run_v2`
(transport="rest") and the run.v2 discovery document put them. State is in store.py, checks and
changes in mutations.py, the background work that finishes operations in reconciler.py. Every revision
is a real local process (instances.py, app.py) reached through the ingress (ingress.py) at the
service's `uri` and its tags' `trafficStatuses[].uri`.

Control routes for tests, apart from the API (the Python helpers are in control.py):

  ``POST /_sandbox/run/fail-next-operation``  ``{"service": "api", "message": "...", "code": 13}``: the
                                              next mutation of that service (any, without "service")
                                              is accepted, changes nothing, and its operation ends in
                                              that error (gRPC code)
  ``POST /_sandbox/run/stop-revision``        ``{"service": "api", "revision": "api-00002-abc"}``: its
                                              process goes away (a crash); its URLs answer 503
  ``GET  /_sandbox/run/instances``            the running revision processes: name → pid, port
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from google.cloud import run_v2
from google.longrunning import operations_pb2
from google.protobuf import empty_pb2

from sandbox.cloudrun import spec
from sandbox.cloudrun.control import SandboxHelpers
from sandbox.cloudrun.ingress import Ingress
from sandbox.cloudrun.instances import Instances
from sandbox.cloudrun.mutations import Mutations
from sandbox.cloudrun.reconciler import Reconciler
from sandbox.cloudrun.resources import Encoder
from sandbox.cloudrun.store import Store
from sandbox.cloudrun.wire import emit, error_body, page, parse_body, query_flag
from sandbox.http import ApiError, Request, Route, StandIn

PARENT = r"/v2/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"
SERVICE = PARENT + r"/services/(?P<service>[^/:]+)"
REVISION = SERVICE + r"/revisions/(?P<revision>[^/:]+)"
OPERATION = PARENT + r"/operations/(?P<operation>[^/:]+)"
MAX_WAIT_S = 60.0


class CloudRunStandIn(SandboxHelpers, StandIn):
    """Cloud Run Admin v2 over REST; each revision a real demo-app process behind a local ingress."""

    name = "cloudrun"

    def __init__(
        self,
        project: str = "sandbox-project",
        region: str = "europe-west1",
        startup_deadline_s: float = 3.0,
        idle_scale_down_s: float = 10.0,
    ):
        self.project = project
        self.region = region
        # Mutable on purpose: how long a revision may take to listen before it is failed.
        self.startup_deadline_s = startup_deadline_s
        self.store = Store(project, region)
        self._ingress_base: str | None = None
        self.instances = Instances()
        self.ingress = Ingress(self._route_for_ingress, self.instances.port)
        self.encoder = Encoder(project, region, self._ingress_url)
        self.reconciler = Reconciler(
            self.store, self.instances, self.encoder, lambda: self.startup_deadline_s, idle_scale_down_s
        )
        self.mutations = Mutations(self.store, self.encoder, self.reconciler)
        super().__init__()

    def routes(self) -> list[Route]:
        api = self._api  # method, path, handler, the message type it answers with
        return [
            api("GET", PARENT + r"/services", self.list_services, run_v2.ListServicesResponse),
            api("POST", PARENT + r"/services", self.create_service, operations_pb2.Operation),
            api("GET", SERVICE, self.get_service, run_v2.Service),
            api("PATCH", SERVICE, self.update_service, operations_pb2.Operation),
            api("DELETE", SERVICE, self.delete_service, operations_pb2.Operation),
            api("GET", SERVICE + r"/revisions", self.list_revisions, run_v2.ListRevisionsResponse),
            api("GET", REVISION, self.get_revision, run_v2.Revision),
            api("DELETE", REVISION, self.delete_revision, operations_pb2.Operation),
            api("GET", PARENT + r"/operations", self.list_operations, operations_pb2.ListOperationsResponse),
            api("GET", OPERATION, self.get_operation, operations_pb2.Operation),
            api("POST", OPERATION + r":wait", self.wait_operation, operations_pb2.Operation),
            api("DELETE", OPERATION, self.delete_operation, empty_pb2.Empty),
        ]

    def _api(self, method: str, pattern: str, handler: Callable[[Request], dict], answers: Any) -> Route:
        def handle(request: Request) -> dict:
            self._check_parent(request)
            return emit(handler(request), answers, request)

        return Route(method, pattern, handle)

    def _check_parent(self, request: Request) -> None:
        project, location = request.params["project"], request.params["location"]
        if project not in (self.project, spec.project_number(self.project)):
            raise ApiError(403, f"Permission denied on resource project {project}.")
        listing = request.method == "GET" and request.path.endswith("/services")
        if location != self.region and not (listing and location == "-"):
            raise ApiError(404, f"Location '{location}' is not found: the sandbox serves {self.region} only.")

    def error_body(self, error: ApiError) -> dict[str, Any]:
        return error_body(error)

    # -- services ------------------------------------------------------------------------------
    def list_services(self, request: Request) -> dict:
        with self.store.lock:
            encoded = [self.encoder.service(s) for _, s in sorted(self.store.services.items())]
        return page(encoded, request, "services")

    def get_service(self, request: Request) -> dict:
        service = self.store.service(request.params["service"])
        with self.store.lock:
            return self.encoder.service(service)

    def create_service(self, request: Request) -> dict:
        name = spec.check_service_id(request.arg("serviceId"))
        body = parse_body(request, run_v2.Service, "service")
        operation = self.mutations.create(name, body, query_flag(request, "validateOnly"))
        return self.encoder.operation(operation)

    def update_service(self, request: Request) -> dict:
        operation = self.mutations.update(
            request.params["service"],
            parse_body(request, run_v2.Service, "service"),
            mask=request.arg("updateMask"),
            allow_missing=query_flag(request, "allowMissing"),
            validate_only=query_flag(request, "validateOnly"),
            force_new_revision=query_flag(request, "forceNewRevision"),
        )
        return self.encoder.operation(operation)

    def delete_service(self, request: Request) -> dict:
        operation = self.mutations.delete(
            request.params["service"], request.arg("etag"), query_flag(request, "validateOnly")
        )
        return self.encoder.operation(operation)

    # -- revisions -----------------------------------------------------------------------------
    def list_revisions(self, request: Request) -> dict:
        service = self.store.service(request.params["service"])
        launch_stage = service.spec.get("launchStage", "GA")
        with self.store.lock:
            newest_first = reversed(list(service.revisions.values()))
            encoded = [self.encoder.revision(r, launch_stage) for r in newest_first]
        return page(encoded, request, "revisions")

    def get_revision(self, request: Request) -> dict:
        service_name = request.params["service"]
        revision = self.store.revision(service_name, request.params["revision"])
        service = self.store.services.get(service_name)
        launch_stage = service.spec.get("launchStage", "GA") if service is not None else "GA"
        with self.store.lock:
            return self.encoder.revision(revision, launch_stage)

    def delete_revision(self, request: Request) -> dict:
        operation = self.mutations.delete_revision(
            request.params["service"],
            request.params["revision"],
            request.arg("etag"),
            query_flag(request, "validateOnly"),
        )
        return self.encoder.operation(operation)

    # -- operations ----------------------------------------------------------------------------
    def _operation_name(self, request: Request) -> str:
        # Stored under the project id, whether the caller used the id or the number.
        return f"{self.encoder.parent}/operations/{request.params['operation']}"

    def get_operation(self, request: Request) -> dict:
        return self.encoder.operation(self.store.operation(self._operation_name(request)))

    def wait_operation(self, request: Request) -> dict:
        operation = self.store.operation(self._operation_name(request))
        body = parse_body(request, operations_pb2.WaitOperationRequest, "wait")
        timeout = float(body.get("timeout", f"{MAX_WAIT_S}s").rstrip("s"))
        operation.finished.wait(min(timeout, MAX_WAIT_S))
        return self.encoder.operation(operation)

    def list_operations(self, request: Request) -> dict:
        with self.store.lock:
            newest_first = [self.encoder.operation(o) for o in reversed(self.store.operations.values())]
        wanted = request.arg("filter") or ""
        if wanted.replace(" ", "") in ("done=true", "done=false"):
            done = wanted.replace(" ", "") == "done=true"
            newest_first = [o for o in newest_first if o["done"] is done]
        return page(newest_first, request, "operations")

    def delete_operation(self, request: Request) -> dict:
        name = self._operation_name(request)
        self.store.operation(name)
        with self.store.lock:
            self.store.operations.pop(name, None)
        return {}

    # -- the ingress's view --------------------------------------------------------------------
    def _ingress_url(self) -> str | None:
        return self._ingress_base

    def _route_for_ingress(self, service_name: str, tag: str) -> list[tuple[str, int]] | None:
        with self.store.lock:
            service = self.store.services.get(service_name)
            if service is None:
                return None
            key = self.encoder.revision_name
            if tag:
                return [(key(service.name, r.revision), 100) for r in service.routed if r.tag == tag][:1]
            return [(key(service.name, r.revision), r.percent) for r in service.routed if r.percent > 0]

    # -- serving -------------------------------------------------------------------------------
    def serve(self, port: int = 0) -> str:
        url = super().serve(port)
        self._ingress_base = self.ingress.serve()
        return url

    def shutdown(self) -> None:
        super().shutdown()
        self.ingress.shutdown()
        self._ingress_base = None
        self.reconciler.shutdown()
        self.instances.shutdown()
