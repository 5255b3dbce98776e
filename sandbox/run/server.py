"""Cloud Run Admin API v2 stand-in: the route table, long-running operations, and enum encoding.

Bodies are read and written with the API's own messages (run_v2), so camelCase names, int64 strings and
enums as names or ints are handled as Google does; responses carry enums as integers when the caller
asks with `$alt=json;enum-encoding=int` (the REST GAPIC client always does), names otherwise.

A template change creates a revision whose instance must start listening within the startup deadline;
the operation finishes when it is Ready (or failed: the requested traffic is then refused and the
service keeps serving what it served). Traffic-only changes apply at once (the operation is returned
done).
"""

from __future__ import annotations

import json
import threading
import uuid
from typing import Any

from google.cloud import run_v2
from google.protobuf import field_mask_pb2

from sandbox.http import ApiError, Request, Route, StandIn
from sandbox.run.ingress import Ingress
from sandbox.run.instances import Instances
from sandbox.run.store import (
    FAILED,
    LATEST,
    RECONCILING,
    REVISION,
    SUCCEEDED,
    RunStore,
    ServiceRecord,
    condition,
    config_of,
    is_ready,
    now,
)

_P = r"/v2/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"
_TYPE = "type.googleapis.com/google.cloud.run.v2."


class CloudRunStandIn(StandIn):
    name = "cloud-run"

    def __init__(
        self, project: str = "sandbox-project", region: str = "europe-west1", startup_deadline_s: float = 3.0
    ):
        self.project, self.region = project, region
        self.startup_deadline_s = startup_deadline_s
        self.store = RunStore(project, region)
        self.instances = Instances()
        self.ingress = Ingress(self.store, self.instances)
        self._fail_next: list[str] = []
        super().__init__()

    # -- the API surface, in one table ---------------------------------------------------------
    def routes(self) -> list[Route]:
        return [
            Route("GET", _P + r"/services", self.list_services),
            Route("POST", _P + r"/services", self.create_service),
            Route("GET", _P + r"/services/(?P<service>[^/]+)", self.get_service),
            Route("PATCH", _P + r"/services/(?P<service>[^/]+)", self.update_service),
            Route("DELETE", _P + r"/services/(?P<service>[^/]+)", self.delete_service),
            Route("GET", _P + r"/services/(?P<service>[^/]+)/revisions", self.list_revisions),
            Route(
                "GET", _P + r"/services/(?P<service>[^/]+)/revisions/(?P<revision>[^/]+)", self.get_revision
            ),
            Route(
                "DELETE",
                _P + r"/services/(?P<service>[^/]+)/revisions/(?P<revision>[^/]+)",
                self.delete_revision,
            ),
            Route("GET", _P + r"/operations/(?P<operation>[^/:]+)", self.get_operation),
            Route("POST", _P + r"/operations/(?P<operation>[^/:]+):wait", self.get_operation),
        ]

    def control_routes(self) -> list[Route]:
        return [Route("POST", "/_sandbox/run/fail-next-operation", self._fail_next_route)]

    def serve(self, port: int = 0) -> str:
        self.ingress.serve()
        return super().serve(port)

    def shutdown(self) -> None:
        super().shutdown()
        self.ingress.shutdown()
        self.instances.stop_all()

    # -- encoding ------------------------------------------------------------------------------
    @staticmethod
    def _ints(request: Request) -> bool:
        return "enum-encoding=int" in (request.arg("$alt") or "")

    def _json(self, message: Any, request: Request) -> dict:
        return json.loads(
            type(message).to_json(
                message,
                use_integers_for_enums=self._ints(request),
                always_print_fields_with_no_presence=False,
                indent=None,
            )
        )

    def _check_location(self, request: Request) -> None:
        if request.params["project"] != self.project or request.params["location"] != self.region:
            raise ApiError(
                404,
                f"Location {request.params['location']} of project {request.params['project']} "
                "has no services in this sandbox.",
            )

    def _parse_service(self, request: Request) -> run_v2.Service:
        try:
            # Output-only fields echoed back by clients are parsed and then ignored.
            return run_v2.Service.from_json(json.dumps(request.json()), ignore_unknown_fields=False)
        except Exception as exc:  # json_format.ParseError and friends
            raise ApiError(400, f"Invalid JSON payload received. {exc}") from exc

    # -- operations ----------------------------------------------------------------------------
    def _operation(
        self, request: Request, resource: Any, done: bool, error: tuple[int, str] | None = None
    ) -> dict:
        name = f"{self.store.parent}/operations/{uuid.uuid4()}"
        body = {
            "name": name,
            "done": done,
            "metadata": {"@type": _TYPE + type(resource).__name__, **self._json(resource, request)},
        }
        self.store.operations[name.rsplit("/", 1)[-1]] = body
        if done:
            self._finish(body, request, resource, error)
        return dict(body)

    def _finish(self, body: dict, request: Request, resource: Any, error: tuple[int, str] | None) -> None:
        body["done"] = True
        if error:
            body["error"] = {"code": error[0], "message": error[1]}
        else:
            body["response"] = {"@type": _TYPE + type(resource).__name__, **self._json(resource, request)}

    def get_operation(self, request: Request) -> dict:
        found = self.store.operations.get(request.params["operation"])
        if found is None:
            raise ApiError(404, f"Operation {request.params['operation']} not found.")
        return dict(found)

    # -- services ------------------------------------------------------------------------------
    def list_services(self, request: Request) -> dict:
        self._check_location(request)
        with self.store.lock:
            return {"services": [self._json(r.service, request) for r in self.store.services.values()]}

    def get_service(self, request: Request) -> dict:
        self._check_location(request)
        with self.store.lock:
            return self._json(self.store.record(request.params["service"]).service, request)

    def create_service(self, request: Request) -> dict:
        self._check_location(request)
        service_id = request.arg("serviceId") or ""
        if not service_id:
            raise ApiError(400, "serviceId is required.")
        incoming = self._parse_service(request)
        with self.store.lock:
            if service_id in self.store.services:
                raise ApiError(409, f"Resource '{service_id}' already exists.", status="ALREADY_EXISTS")
            service = run_v2.Service(
                name=f"{self.store.parent}/services/{service_id}",
                uid=str(uuid.uuid4()),
                generation=0,
                create_time=now(),
                template=incoming.template,
                traffic=incoming.traffic,
                uri=self.ingress.url_for(service_id),
                urls=[self.ingress.url_for(service_id)],
                labels=dict(incoming.labels),
            )
            record = ServiceRecord(service)
            self.store.services[service_id] = record
            return self._apply(request, record, incoming, {"template", "traffic"})

    def update_service(self, request: Request) -> dict:
        self._check_location(request)
        incoming = self._parse_service(request)
        mask = request.arg("updateMask")
        # No mask: a full update of the fields sent.
        fields = set(field_mask_pb2.FieldMask(paths=mask.split(",")).paths) if mask else set(request.json())
        with self.store.lock:
            record = self.store.record(request.params["service"])
            return self._apply(request, record, incoming, fields)

    def _apply(
        self, request: Request, record: ServiceRecord, incoming: run_v2.Service, fields: set[str]
    ) -> dict:
        service = record.service
        revision, created = None, False
        if "template" in fields:
            latest = service.latest_created_revision.rsplit("/", 1)[-1]
            same = (
                latest
                and not incoming.template.revision
                and record.configs.get(latest) == config_of(incoming.template)
            )
            if not same:
                revision, created = self.store.new_revision(record, incoming.template)
        pending = revision.name.rsplit("/", 1)[-1] if created else None
        if "traffic" in fields:
            self.store.check_traffic(record, incoming.traffic, pending)
        prior_traffic = list(service.traffic)
        service.generation += 1
        service.update_time = now()
        if "template" in fields:
            service.template = incoming.template
        if "traffic" in fields:
            # Empty traffic means 100% to the latest Ready revision; the API then shows it that way.
            service.traffic = incoming.traffic or [run_v2.TrafficTarget(type_=LATEST, percent=100)]
        if "labels" in fields:
            service.labels = dict(incoming.labels)
        if not created:
            self._reconciled(record)
            return self._operation(request, service, done=True)
        service.latest_created_revision = revision.name
        service.reconciling = True
        service.terminal_condition = condition(RECONCILING, "Deploying revision.")
        container = revision.containers[0]
        self.instances.start(pending, container.image, {e.name: e.value for e in container.env})
        operation = self._operation(request, service, done=False)
        threading.Thread(
            target=self._await_revision,
            args=(request, record, pending, prior_traffic, operation["name"]),
            daemon=True,
        ).start()
        return operation

    def _await_revision(
        self, request: Request, record: ServiceRecord, name: str, prior_traffic, op_name: str
    ) -> None:
        listening = self.instances.wait_listening(name, self.startup_deadline_s)
        with self.store.lock:
            failure = self._fail_next.pop(0) if self._fail_next else None
            revision = record.revisions[name]
            service = record.service
            revision.reconciling = False
            operation = self.store.operations[op_name.rsplit("/", 1)[-1]]
            if listening and failure is None:
                revision.conditions = [condition(SUCCEEDED)]
                service.latest_ready_revision = revision.name
                self._reconciled(record)
                self._finish(operation, request, service, None)
                return
            message = failure or (
                f"Revision '{name}' is not ready and cannot serve traffic. The user-provided container failed to "
                f"start and listen on the port defined provided by the PORT environment variable within the "
                f"allocated timeout."
            )
            revision.conditions = [
                condition(
                    FAILED,
                    message,
                    revision_reason=run_v2.Condition.RevisionReason.HEALTH_CHECK_CONTAINER_ERROR,
                )
            ]
            service.traffic = prior_traffic  # the update is refused as a whole
            self._reconciled(record)
            service.terminal_condition = condition(
                FAILED, message, reason=run_v2.Condition.CommonReason.REVISION_FAILED
            )
            self._finish(operation, request, service, (9, message))
        self.instances.stop(name)

    def _reconciled(self, record: ServiceRecord) -> None:
        service = record.service
        service.reconciling = False
        service.observed_generation = service.generation
        service.terminal_condition = condition(SUCCEEDED)
        service.conditions = [
            run_v2.Condition(type_="RoutesReady", state=SUCCEEDED, last_transition_time=now()),
            run_v2.Condition(type_="ConfigurationsReady", state=SUCCEEDED, last_transition_time=now()),
        ]
        service_id = service.name.rsplit("/", 1)[-1]
        statuses = []
        for target in service.traffic or [run_v2.TrafficTarget(type_=LATEST, percent=100)]:
            statuses.append(
                run_v2.TrafficTargetStatus(
                    type_=target.type_,
                    revision=target.revision if target.type_ == REVISION else "",
                    percent=target.percent,
                    tag=target.tag,
                    uri=self.ingress.url_for(service_id, target.tag) if target.tag else "",
                )
            )
        service.traffic_statuses = statuses
        service.etag = uuid.uuid4().hex

    def delete_service(self, request: Request) -> dict:
        self._check_location(request)
        with self.store.lock:
            record = self.store.record(request.params["service"])
            del self.store.services[request.params["service"]]
        for name in record.revisions:
            self.instances.stop(name)
        return self._operation(request, record.service, done=True)

    # -- revisions -----------------------------------------------------------------------------
    def list_revisions(self, request: Request) -> dict:
        self._check_location(request)
        with self.store.lock:
            record = self.store.record(request.params["service"])
            return {"revisions": [self._json(r, request) for r in reversed(record.revisions.values())]}

    def get_revision(self, request: Request) -> dict:
        self._check_location(request)
        with self.store.lock:
            return self._json(
                self.store.revision(request.params["service"], request.params["revision"]), request
            )

    def delete_revision(self, request: Request) -> dict:
        self._check_location(request)
        service_id, name = request.params["service"], request.params["revision"]
        with self.store.lock:
            record = self.store.record(service_id)
            revision = self.store.revision(service_id, name)
            serving = {rev for rev, percent, tag in self.store.resolved(record) if percent or tag}
            if name in serving:
                raise ApiError(
                    400,
                    f"Revision '{name}' is receiving traffic or is tagged; move traffic and tags "
                    "away before deleting it.",
                    status="FAILED_PRECONDITION",
                )
            del record.revisions[name]
        self.instances.stop(name)
        return self._operation(request, revision, done=True)

    # -- control -------------------------------------------------------------------------------
    def _fail_next_route(self, request: Request) -> dict:
        self._fail_next.append(request.json().get("message", "Revision failed (injected by the sandbox)."))
        return {"ok": True}

    # -- Python-side helpers (sandbox up, tests) -------------------------------------------------
    def seed_service(
        self, name: str, image: str = "sandbox/demo-app:v1", env: dict[str, str] | None = None
    ) -> str:
        """Create a service with one Ready revision at 100%, synchronously; returns the revision name."""
        client = self.services_client()
        service = run_v2.Service(
            template=run_v2.RevisionTemplate(
                containers=[
                    run_v2.Container(
                        image=image, env=[run_v2.EnvVar(name=k, value=v) for k, v in (env or {}).items()]
                    )
                ]
            )
        )
        created = client.create_service(parent=self.store.parent, service=service, service_id=name).result(
            timeout=self.startup_deadline_s + 10
        )
        return created.latest_ready_revision.rsplit("/", 1)[-1]

    def services_client(self) -> run_v2.ServicesClient:
        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials

        return run_v2.ServicesClient(
            transport="rest",
            credentials=AnonymousCredentials(),
            client_options=ClientOptions(api_endpoint=self.url),
        )

    def revisions_client(self) -> run_v2.RevisionsClient:
        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials

        return run_v2.RevisionsClient(
            transport="rest",
            credentials=AnonymousCredentials(),
            client_options=ClientOptions(api_endpoint=self.url),
        )


__all__ = ["CloudRunStandIn", "is_ready"]
