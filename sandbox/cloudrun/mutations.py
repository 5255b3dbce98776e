"""Create, update and delete: everything Cloud Run checks before it accepts a change, then the change.

Each function validates first (400/404/409 come back on the request itself, as with Google), then
changes the spec under the store lock, starts the new revision's process, and hands the Operation to
the reconciler. With `validate_only` nothing is stored and the Operation is born done.
"""

from __future__ import annotations

from typing import Any

from sandbox.cloudrun import spec, traffic
from sandbox.cloudrun.reconciler import Reconciler
from sandbox.cloudrun.resources import Encoder
from sandbox.cloudrun.store import LATEST, Operation, Revision, Service, Store, now
from sandbox.http import ApiError

DEFAULT_TRAFFIC = [{"type": LATEST, "percent": 100}]


class Mutations:
    def __init__(self, store: Store, encoder: Encoder, reconciler: Reconciler):
        self.store = store
        self.encoder = encoder
        self.reconciler = reconciler

    # -- services ------------------------------------------------------------------------------
    def create(self, name: str, body: dict[str, Any], validate_only: bool = False) -> Operation:
        wanted = spec.with_defaults(spec.settable(body), self.store.project)
        spec.check_template(wanted["template"])
        with self.store.lock:
            if name in self.store.services:
                raise ApiError(409, f"Resource '{name}' already exists.", status="ALREADY_EXISTS")
            service = Service(name, spec={})
            revision_name = wanted["template"].get("revision") or service.new_revision_name()
            spec.check_revision_name(name, revision_name)
            wanted["traffic"] = traffic.normalise(wanted.get("traffic", []), name, [revision_name]) or list(
                DEFAULT_TRAFFIC
            )
            service.spec = wanted
            if validate_only:
                return self._validated("CREATE", service)
            if (failure := self._injected("CREATE", service)) is not None:
                return failure
            self.store.services[name] = service
            self._add_revision(service, revision_name, wanted["template"])
            operation = self._operation("CREATE", service, revision_name)
        self.reconciler.reconcile(operation)
        return operation

    def update(
        self,
        name: str,
        body: dict[str, Any],
        mask: str | None = None,
        allow_missing: bool = False,
        validate_only: bool = False,
        force_new_revision: bool = False,
    ) -> Operation:
        with self.store.lock:
            service = self.store.services.get(name)
            if service is None:
                if allow_missing:
                    return self.create(name, body, validate_only)
                raise self.store.not_found("SERVICE", name)
            wanted = spec.with_defaults(spec.apply_update(service.spec, body, mask), self.store.project)
            spec.check_template(wanted.get("template", {}))
            new_revision = self._revision_for(service, wanted["template"], force_new_revision)
            known = [*service.revisions, *([new_revision] if new_revision else [])]
            wanted["traffic"] = traffic.normalise(wanted.get("traffic", []), name, known) or list(
                DEFAULT_TRAFFIC
            )
            if validate_only:
                preview = Service(**{**service.__dict__, "spec": wanted})
                return self._validated("UPDATE", preview)
            if (failure := self._injected("UPDATE", service)) is not None:
                return failure
            if wanted != service.spec or new_revision:
                service.generation += 1
                service.spec = wanted
                service.update_time = now()
            if new_revision:
                self._add_revision(service, new_revision, wanted["template"])
            operation = self._operation("UPDATE", service, new_revision)
        self.reconciler.reconcile(operation)
        return operation

    def _revision_for(self, service: Service, template: dict[str, Any], force: bool) -> str:
        """The name of the revision this template makes, or '' when no new revision is due."""
        config = spec.revision_config(template)
        explicit = template.get("revision", "")
        if explicit:
            spec.check_revision_name(service.name, explicit)
            existing = service.revisions.get(explicit)
            if existing is None:
                return explicit
            if existing.template != config:
                raise ApiError(
                    409,
                    f"Revision named '{explicit}' with different configuration already exists.",
                    status="ALREADY_EXISTS",
                )
            return ""
        latest = service.revisions.get(service.latest_created)
        if force or latest is None or latest.template != config:
            name = service.new_revision_name()
            while name in service.revisions:
                name = service.new_revision_name()
            return name
        return ""

    def delete(self, name: str, etag: str | None, validate_only: bool = False) -> Operation:
        with self.store.lock:
            service = self.store.service(name)
            _check_etag(etag, service.etag, f"service '{name}'")
            if validate_only:
                return self._validated("DELETE", service)
            operation = self._operation("DELETE", service, "")
            del self.store.services[name]
            keys = [self.reconciler.key(service, r) for r in service.revisions.values()]
        for key in keys:
            self.reconciler.instances.stop(key, "deleted with its service")
        self.reconciler.done(operation)
        return operation

    # -- revisions -----------------------------------------------------------------------------
    def delete_revision(
        self, service_name: str, name: str, etag: str | None, validate_only: bool
    ) -> Operation:
        with self.store.lock:
            service = self.store.services.get(service_name)
            revision = self.store.revision(service_name, name)
            assert service is not None
            _check_etag(etag, self.encoder.revision(revision)["etag"], f"revision '{name}'")
            if name in service.serving() or name in traffic.referenced(service.spec.get("traffic", [])):
                raise ApiError(
                    400,
                    f"Revision '{name}' cannot be deleted: it is referenced by the traffic of service "
                    f"'{service_name}'. Move its traffic and remove its tag first.",
                    status="FAILED_PRECONDITION",
                )
            if name == service.latest_created:
                raise ApiError(
                    400,
                    f"Revision '{name}' is the latest created revision of service '{service_name}' and "
                    "cannot be deleted.",
                    status="FAILED_PRECONDITION",
                )
            metadata = self.encoder.revision(revision, service.spec.get("launchStage", "GA"))
            operation = Operation(
                self.store.new_operation_name(), "DELETE_REVISION", service_name, metadata, "Revision"
            )
            if validate_only:
                operation.finish(response=metadata)
                return self.store.add_operation(operation)
            del service.revisions[name]
            self.store.add_operation(operation)
        self.reconciler.instances.stop(self.reconciler.key(service, revision), "deleted")
        self.reconciler.done(operation)
        return operation

    # -- helpers -------------------------------------------------------------------------------
    def _add_revision(self, service: Service, name: str, template: dict[str, Any]) -> None:
        revision = Revision(name, service.name, spec.revision_config(template), service.generation)
        service.revisions[name] = revision
        service.revision_counter += 1
        service.latest_created = name
        # Start the process now: it warms up while earlier operations of the service finish.
        self.reconciler.instances.start(
            self.reconciler.key(service, revision), service.name, name, revision.image, revision.env
        )

    def _operation(self, kind: str, service: Service, new_revision: str) -> Operation:
        operation = Operation(
            self.store.new_operation_name(),
            kind,
            service.name,
            self.encoder.service(service),
            "Service",
            generation=service.generation,
            new_revision=new_revision,
            traffic=list(service.spec.get("traffic", [])),
        )
        return self.store.add_operation(operation)

    def _validated(self, kind: str, service: Service) -> Operation:
        body = self.encoder.service(service)
        operation = Operation(self.store.new_operation_name(), kind, service.name, body, "Service")
        operation.finish(response=body)
        return self.store.add_operation(operation)

    def _injected(self, kind: str, service: Service) -> Operation | None:
        failure = self.store.take_injected_failure(service.name)
        if failure is None:
            return None
        operation = Operation(
            self.store.new_operation_name(), kind, service.name, self.encoder.service(service), "Service"
        )
        self.store.add_operation(operation)
        self.reconciler.fail(operation, failure.code, failure.message)
        return operation


def _check_etag(sent: str | None, current: str, what: str) -> None:
    if sent and sent != current:
        raise ApiError(
            409, f"The etag of {what} does not match: it was changed since it was read.", status="ABORTED"
        )
