"""The Cloud SQL Admin v1beta4 wire format: request bodies in, resources (JSON) out.

Request bodies are parsed with the API's own protobuf messages (from google-cloud-sql), so the stand-in
accepts exactly what Google accepts: enums as ints (the GAPIC REST client sends `"fileType": 1`) or as
names (the discovery client sends `"SQL"`), int64 as strings or numbers, and it refuses unknown fields
and unknown enum names with a 400. The parsed message is turned back into a dict with enum NAMES, so
handlers never see ints.

Responses use enum names (both clients parse them), int64 as strings and RFC 3339 timestamps, and only
fields the discovery document defines: the conformance tests check them with Google's own schemas.
"""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime
from typing import Any

from google.protobuf import json_format

from sandbox.cloudsql.store import BackupRun, Instance, Operation
from sandbox.http import ApiError, Request

INSTANCE_NAME = re.compile(r"[a-z](?:[a-z0-9-]{0,96}[a-z0-9])?")
DEFAULT_REGION = "us-central1"
DEFAULT_TIER = "db-custom-1-3840"


def parse_body(request: Request, message_class: Any) -> dict[str, Any]:
    """Validate `request.body` as the proto-plus `message_class`; return it as a dict with enum names."""
    text = request.body.decode("utf-8", errors="replace") if request.body else "{}"
    try:
        message = json_format.Parse(text, message_class.pb()())
    except json_format.ParseError as exc:
        raise ApiError(400, f"Invalid JSON payload received. {exc}", reason="invalid") from exc
    return json_format.MessageToDict(message)


def ints_for_enums(body: dict[str, Any], message_class: Any) -> dict[str, Any]:
    """`body` with enums as ints, as Google answers `$alt=json;enum-encoding=int`.

    Going through the API's own message also proves the body is one the client can read.
    """
    message = json_format.Parse(json.dumps(body), message_class.pb()())
    return json_format.MessageToDict(message, use_integers_for_enums=True)


def null_labels(request: Request) -> set[str]:
    """Label keys a PATCH sets to JSON null, i.e. asks to remove (the protobuf parser refuses nulls)."""
    try:
        labels = (json.loads(request.body or b"{}").get("settings") or {}).get("userLabels") or {}
    except (ValueError, AttributeError):
        return set()
    return {key for key, value in labels.items() if value is None} if isinstance(labels, dict) else set()


def without_null_labels(request: Request) -> Request:
    removed = null_labels(request)
    if not removed:
        return request
    body = json.loads(request.body)
    for key in removed:
        del body["settings"]["userLabels"][key]
    return Request(request.method, request.path, request.query, request.headers, json.dumps(body).encode())


def caller(request: Request) -> str:
    """Who started an operation (`Operation.user`): the service account of a self-signed JWT, if any.

    With service-account credentials the Google clients send `Authorization: Bearer <JWT>` signed by
    the account; the stand-in reads (never verifies) it. Anonymous clients send nothing.
    """
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer ") and header.count(".") == 2:
        payload = header.split()[1].split(".")[1]
        try:
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            return str(claims.get("email") or claims.get("sub") or claims.get("iss") or "anonymous")
        except (ValueError, UnicodeDecodeError, AttributeError):
            pass
    return "anonymous"


def enum_field(context: dict[str, Any], key: str, allowed: tuple[str, ...], default: str, where: str) -> str:
    value = context.get(key, default)
    if value not in allowed:
        raise ApiError(
            400,
            f"Invalid request: {where}.{key} {value!r} is not supported by the sandbox (supported: {', '.join(allowed)}).",
        )
    return value


def split_gcs_uri(uri: str | None, where: str) -> tuple[str, str]:
    found = re.fullmatch(r"gs://([^/]+)/(.+)", uri or "")
    if not found:
        raise ApiError(400, f"Invalid request: {where}.uri must look like gs://bucket/object, got {uri!r}.")
    return found.group(1), found.group(2)


def check_instance_name(name: str | None) -> str:
    if not name or not INSTANCE_NAME.fullmatch(name):
        raise ApiError(
            400,
            f"Invalid request: instance name {name!r} is invalid: use lowercase letters, digits and hyphens, "
            "start with a letter, at most 98 characters.",
        )
    return name


def timestamp(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def _clean(resource: dict[str, Any]) -> dict[str, Any]:
    # Google leaves unset fields out rather than sending nulls; the discovery schemas refuse nulls.
    return {key: value for key, value in resource.items() if value is not None}


class Encoder:
    """Builds the JSON resources; knows the project, the base URL for links and the server version."""

    def __init__(self, project: str, base_url: str, version: tuple[int, int]):
        self.project = project
        self.base_url = base_url
        self.major, self.minor = version

    @property
    def api(self) -> str:
        return f"{self.base_url}/sql/v1beta4/projects/{self.project}"

    def instance(self, instance: Instance) -> dict[str, Any]:
        settings = _clean(
            {
                "kind": "sql#settings",
                "tier": instance.tier,
                "userLabels": dict(instance.labels) or None,
                "settingsVersion": str(instance.settings_version),
                "activationPolicy": "ALWAYS",
                "availabilityType": "ZONAL",
                "pricingPlan": "PER_USE",
                "dataDiskType": "PD_SSD",
                "dataDiskSizeGb": "10",
                "deletionProtectionEnabled": instance.deletion_protection,
                "backupConfiguration": {
                    "kind": "sql#backupConfiguration",
                    "enabled": True,
                    "startTime": "02:00",
                    "backupRetentionSettings": {"retentionUnit": "COUNT", "retainedBackups": 7},
                },
            }
        )
        return {
            "kind": "sql#instance",
            "name": instance.name,
            "project": self.project,
            "region": instance.region,
            "gceZone": f"{instance.region}-b",
            "databaseVersion": instance.database_version,
            "databaseInstalledVersion": f"POSTGRES_{self.major}_{self.minor}",
            "state": instance.state,
            "backendType": "SECOND_GEN",
            "instanceType": "CLOUD_SQL_INSTANCE",
            "connectionName": f"{self.project}:{instance.region}:{instance.name}",
            "createTime": timestamp(instance.create_time),
            "ipAddresses": [{"type": "PRIMARY", "ipAddress": instance.address}],
            "serviceAccountEmailAddress": f"p-sandbox-{self.project}@gcp-sa-cloud-sql.iam.gserviceaccount.com",
            "selfLink": f"{self.api}/instances/{instance.name}",
            "settings": settings,
        }

    def operation(self, operation: Operation) -> dict[str, Any]:
        error = None
        if operation.error is not None:
            error = {
                "kind": "sql#operationErrors",
                "errors": [{"kind": "sql#operationError", **operation.error}],
            }
        backup_context = None
        if operation.backup_id is not None:
            backup_context = {"kind": "sql#backupContext", "backupId": str(operation.backup_id)}
        return _clean(
            {
                "kind": "sql#operation",
                "name": operation.name,
                "status": operation.status,
                "operationType": operation.operation_type,
                "targetId": operation.target,
                "targetProject": self.project,
                "targetLink": f"{self.api}/instances/{operation.target}",
                "selfLink": f"{self.api}/operations/{operation.name}",
                "user": operation.user,
                "insertTime": timestamp(operation.insert_time),
                "startTime": timestamp(operation.start_time),
                "endTime": timestamp(operation.end_time),
                "error": error,
                "exportContext": operation.export_context,
                "importContext": operation.import_context,
                "backupContext": backup_context,
            }
        )

    def backup_run(self, run: BackupRun) -> dict[str, Any]:
        error = {"kind": "sql#operationError", **run.error} if run.error else None
        return _clean(
            {
                "kind": "sql#backupRun",
                "id": str(run.id),
                "instance": run.instance,
                "status": run.status,
                "type": run.type,
                "backupKind": "SNAPSHOT",
                "description": run.description,
                "databaseVersion": f"POSTGRES_{self.major}",
                "location": run.location,
                "enqueuedTime": timestamp(run.enqueued_time),
                "windowStartTime": timestamp(run.enqueued_time),
                "startTime": timestamp(run.start_time),
                "endTime": timestamp(run.end_time),
                "error": error,
                "selfLink": f"{self.api}/instances/{run.instance}/backupRuns/{run.id}",
            }
        )


def page(items: list[Any], request: Request, kind: str, default_size: int) -> dict[str, Any]:
    """One page of `items`; `nextPageToken` only when more follow (GAPIC pagers stop on its absence)."""
    try:
        size = int(request.arg("maxResults") or default_size)
        start = int(request.arg("pageToken") or 0)
    except ValueError as exc:
        raise ApiError(400, f"Invalid request: bad maxResults or pageToken ({exc}).") from exc
    if size <= 0 or start < 0:
        raise ApiError(400, "Invalid request: maxResults must be positive and pageToken valid.")
    body: dict[str, Any] = {"kind": kind, "items": items[start : start + size]}
    if start + size < len(items):
        body["nextPageToken"] = str(start + size)
    return body


def matches_filter(resource: dict[str, Any], expression: str | None) -> bool:
    """A small subset of Cloud SQL's list filter: `field.path:value` or `field.path=value` terms, ANDed.

    `settings.userLabels.purpose:restore-drill state:RUNNABLE`; a value of `*` means "has the field".
    """
    for term in (expression or "").split():
        if term.upper() == "AND":
            continue
        found = re.fullmatch(r"([\w.\-]+)(?::|=)(.+)", term)
        if not found:
            raise ApiError(
                400,
                f"Invalid request: filter term {term!r} is not `field:value` (the sandbox supports AND only).",
            )
        value: Any = resource
        for part in found.group(1).split("."):
            value = value.get(part) if isinstance(value, dict) else None
        wanted = found.group(2).strip('"')
        if value is None or (wanted != "*" and str(value) != wanted):
            return False
    return True
