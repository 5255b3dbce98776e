"""What users may set on a Service, the defaults Cloud Run fills in, and how an update is applied.

Clients echo output-only fields (uid, uri, terminalCondition, ...) back from an earlier `get`; they are
dropped here, silently, as Google does. Defaults are filled in so that a template read back and sent
again compares equal to the one that made the revision: an echo must not create a new revision.
"""

from __future__ import annotations

import copy
import hashlib
import re
from typing import Any

from sandbox.cloudrun.wire import FieldError
from sandbox.http import ApiError

# The Service fields a user sets (camelCase); everything else in a request body is output-only.
SETTABLE = {
    "description",
    "labels",
    "annotations",
    "client",
    "clientVersion",
    "ingress",
    "launchStage",
    "binaryAuthorization",
    "template",
    "traffic",
    "scaling",
    "invokerIamDisabled",
    "defaultUriDisabled",
    "customAudiences",
}
SERVICE_NAME = re.compile(r"[a-z](?:[-a-z0-9]{0,47}[a-z0-9])?")
REVISION_NAME = re.compile(r"[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?")
CONTAINER_PORT = 8080
RESERVED_ENV = {"PORT", "K_SERVICE", "K_REVISION", "K_CONFIGURATION"}


def project_number(project: str) -> str:
    """A stable 12-digit project number, for the default service account."""
    return str(int(hashlib.sha256(project.encode()).hexdigest(), 16) % 10**12).rjust(12, "1")


def settable(body: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in body.items() if key in SETTABLE}


def with_defaults(spec: dict[str, Any], project: str) -> dict[str, Any]:
    """The spec as Cloud Run stores it: ingress, launch stage and template defaults filled in."""
    spec = copy.deepcopy(spec)
    spec.setdefault("ingress", "INGRESS_TRAFFIC_ALL")
    spec.setdefault("launchStage", "GA")
    template = spec.setdefault("template", {})
    template.setdefault("scaling", {}).setdefault("maxInstanceCount", 100)
    template.setdefault("timeout", "300s")
    template.setdefault("serviceAccount", f"{project_number(project)}-compute@developer.gserviceaccount.com")
    template.setdefault("maxInstanceRequestConcurrency", 80)
    for container in template.get("containers", []):
        container.setdefault("ports", [{"name": "http1", "containerPort": CONTAINER_PORT}])
        resources = container.setdefault("resources", {})
        resources.setdefault("limits", {"cpu": "1000m", "memory": "512Mi"})
        resources.setdefault("cpuIdle", True)
        resources.setdefault("startupCpuBoost", True)
        port = (
            container["ports"][0].get("containerPort", CONTAINER_PORT)
            if container["ports"]
            else CONTAINER_PORT
        )
        container.setdefault(
            "startupProbe",
            {"timeoutSeconds": 240, "periodSeconds": 240, "failureThreshold": 1, "tcpSocket": {"port": port}},
        )
    return spec


def revision_config(template: dict[str, Any]) -> dict[str, Any]:
    """What makes two revisions "the same configuration": the template without its name."""
    return {key: value for key, value in template.items() if key != "revision"}


def check_template(template: dict[str, Any]) -> None:
    containers = template.get("containers") or []
    if not containers:
        raise FieldError("service.template.containers", "A container must be specified.")
    for index, container in enumerate(containers):
        if not container.get("image"):
            raise FieldError(f"service.template.containers[{index}].image", "Required.")
        names = [e.get("name", "") for e in container.get("env", [])]
        reserved = sorted(set(names) & RESERVED_ENV)
        if reserved:
            raise FieldError(
                f"service.template.containers[{index}].env",
                f"The following reserved env names were provided: {', '.join(reserved)}. "
                "These values are automatically set by the system.",
            )
        for name in names:
            if not name or names.count(name) > 1:
                raise FieldError(
                    f"service.template.containers[{index}].env",
                    f"Environment variable names must be non-empty and unique, got {name!r}.",
                )


def check_service_id(service_id: str | None) -> str:
    if not service_id:
        raise ApiError(400, "service_id is required (the serviceId query parameter).")
    if not SERVICE_NAME.fullmatch(service_id):
        raise FieldError(
            "service_id",
            "Resource name must use only lowercase letters, numbers and '-'. Must begin with a letter "
            "and cannot end with a '-'. Maximum length is 49 characters.",
        )
    return service_id


def check_revision_name(service: str, name: str) -> str:
    if not name.startswith(service + "-") or not REVISION_NAME.fullmatch(name):
        raise FieldError(
            "service.template.revision",
            f"Revision name '{name}' must be prefixed by the name of the enclosing Service with a "
            "trailing -, use only lowercase letters, numbers and '-', and be at most 63 characters.",
        )
    return name


def _camel(path: str) -> str:
    return re.sub(r"_([a-z])", lambda m: m.group(1).upper(), path)


def apply_update(current: dict[str, Any], body: dict[str, Any], mask: str | None) -> dict[str, Any]:
    """The new spec after PATCH.

    No mask means "every field sent" (AIP-134's implied mask): a field left out keeps its value, a
    field sent replaces it whole. `*` replaces the whole spec. Nested paths (`template.containers`)
    replace just that part; a path whose value is absent from the body clears it.
    """
    sent = settable(body)
    if mask is None or not mask.strip():
        return {**current, **sent}
    paths = [_camel(p.strip()) for p in mask.split(",") if p.strip()]
    if "*" in paths:
        return dict(sent)
    updated = copy.deepcopy(current)
    for path in paths:
        parts = path.split(".")
        if parts[0] not in SETTABLE:
            if parts[0] in OUTPUT_ONLY:
                continue  # clients sometimes list output-only fields; Google ignores them
            raise ApiError(400, f"Invalid update mask: the field path '{path}' is not a field of Service.")
        source: Any = sent
        for part in parts[:-1]:
            source = source.get(part, {}) if isinstance(source, dict) else {}
        target = updated
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        if isinstance(source, dict) and parts[-1] in source:
            target[parts[-1]] = copy.deepcopy(source[parts[-1]])
        else:
            target.pop(parts[-1], None)
    return updated


OUTPUT_ONLY = {
    "name",
    "uid",
    "generation",
    "createTime",
    "updateTime",
    "deleteTime",
    "expireTime",
    "creator",
    "lastModifier",
    "observedGeneration",
    "terminalCondition",
    "conditions",
    "latestReadyRevision",
    "latestCreatedRevision",
    "trafficStatuses",
    "uri",
    "urls",
    "satisfiesPzs",
    "reconciling",
    "etag",
}
