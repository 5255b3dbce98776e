"""The storage stand-in's records and their wire shapes: Bucket and Object as the JSON API spells them.

Records are plain dataclasses the store keeps; `bucket_resource` / `object_resource` render them exactly
as storage.v1 does (int64 as strings, RFC 3339 times with milliseconds, base64 hashes), and checking of
names and writable fields lives here too, so every entry point (HTTP or Python) refuses the same things.
"""

from __future__ import annotations

import base64
import hashlib
import re
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import google_crc32c

from sandbox.http import ApiError

STORAGE_CLASSES = (
    "STANDARD",
    "NEARLINE",
    "COLDLINE",
    "ARCHIVE",
    "MULTI_REGIONAL",
    "REGIONAL",
    "DURABLE_REDUCED_AVAILABILITY",
)
MULTI_REGIONS = {"US", "EU", "ASIA"}
DUAL_REGIONS = {"NAM4", "EUR4", "EUR5", "EUR7", "EUR8", "ASIA1"}

# Object fields a caller may set; anything else known to the Object schema is output-only and ignored
# (the client sends back what an earlier get returned). A name outside the schema is refused.
WRITABLE_OBJECT_FIELDS = {
    "contentType",
    "metadata",
    "cacheControl",
    "contentDisposition",
    "contentEncoding",
    "contentLanguage",
    "customTime",
    "temporaryHold",
    "eventBasedHold",
}
KNOWN_OBJECT_FIELDS = WRITABLE_OBJECT_FIELDS | {
    "acl", "bucket", "componentCount", "contexts", "crc32c", "customerEncryption", "etag", "generation",
    "hardDeleteTime", "id", "kind", "kmsKeyName", "md5Hash", "mediaLink", "metageneration", "name", "owner",
    "restoreToken", "retention", "retentionExpirationTime", "selfLink", "size", "softDeleteTime",
    "storageClass", "timeCreated", "timeDeleted", "timeFinalized", "timeStorageClassUpdated", "updated",
}  # fmt: skip
KNOWN_BUCKET_FIELDS = {
    "acl", "autoclass", "billing", "cors", "customPlacementConfig", "defaultEventBasedHold",
    "defaultObjectAcl", "encryption", "etag", "generation", "hardDeleteTime", "hierarchicalNamespace",
    "iamConfiguration", "id", "ipFilter", "kind", "labels", "lifecycle", "location", "locationType",
    "logging", "metageneration", "name", "objectRetention", "owner", "projectNumber", "retentionPolicy",
    "rpo", "satisfiesPZI", "satisfiesPZS", "selfLink", "softDeletePolicy", "softDeleteTime",
    "storageClass", "timeCreated", "updated", "versioning", "website",
}  # fmt: skip

_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]")
_IP_LIKE = re.compile(r"\d+\.\d+\.\d+\.\d+")


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def crc32c_b64(data: bytes) -> str:
    return base64.b64encode(google_crc32c.Checksum(data).digest()).decode()


def md5_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def project_number(project: str) -> str:
    # Stable per project name, 12 digits like a real project number.
    return str(100000000000 + zlib.crc32(project.encode()) % 900000000000)


@dataclass(eq=False)  # identity: two versions are never "equal", and comparing data would be slow
class ObjectVersion:
    """One generation of one object; immutable but for metadata patches (which bump metageneration)."""

    bucket: str
    name: str
    generation: int
    data: bytes
    crc32c: str
    md5_hash: str | None  # None for composite objects, as GCS
    storage_class: str
    time_created: str
    fields: dict[str, Any]  # the writable fields (contentType, metadata, ...) as the API spells them
    metageneration: int = 1
    updated: str = ""
    time_deleted: str | None = None  # set when the version becomes noncurrent
    component_count: int | None = None
    rendered: dict[str, Any] | None = field(default=None, repr=False)  # cache: listings render a lot

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def content_type(self) -> str:
        return self.fields.get("contentType") or "application/octet-stream"

    @property
    def etag(self) -> str:
        return base64.b64encode(f"{self.generation}/{self.metageneration}".encode()).decode().rstrip("=")


@dataclass(eq=False)
class Bucket:
    name: str
    project: str
    location: str
    storage_class: str
    versioning: bool
    time_created: str
    labels: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # lifecycle etc.: kept and returned, not acted on
    metageneration: int = 1
    updated: str = ""
    live: dict[str, ObjectVersion] = field(default_factory=dict)
    noncurrent: dict[str, list[ObjectVersion]] = field(default_factory=dict)  # oldest first
    names: list[str] = field(default_factory=list)  # sorted: every name with any version, for listings

    @property
    def location_type(self) -> str:
        if self.location in MULTI_REGIONS:
            return "multi-region"
        return "dual-region" if self.location in DUAL_REGIONS else "region"

    def is_empty(self) -> bool:
        return not self.names


def bucket_resource(bucket: Bucket, base_url: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "storage#bucket",
        "selfLink": f"{base_url}/storage/v1/b/{bucket.name}",
        "id": bucket.name,
        "name": bucket.name,
        "projectNumber": project_number(bucket.project),
        "metageneration": str(bucket.metageneration),
        "location": bucket.location,
        "locationType": bucket.location_type,
        "storageClass": bucket.storage_class,
        "etag": base64.b64encode(f"bucket/{bucket.metageneration}".encode()).decode().rstrip("="),
        "timeCreated": bucket.time_created,
        "updated": bucket.updated or bucket.time_created,
        "versioning": {"enabled": bucket.versioning},
        "iamConfiguration": {
            "bucketPolicyOnly": {"enabled": False},
            "uniformBucketLevelAccess": {"enabled": False},
            "publicAccessPrevention": "inherited",
        },
    }
    if bucket.location_type != "region":
        body["rpo"] = "DEFAULT"
    if bucket.labels:
        body["labels"] = dict(bucket.labels)
    body.update(bucket.extra)
    return body


def object_resource(version: ObjectVersion, base_url: str) -> dict[str, Any]:
    """The Object as GCS returns it (projection=noAcl). Cached on the version; callers must not mutate."""
    cached = version.rendered
    if cached is not None and cached["selfLink"].startswith(base_url + "/"):
        return cached
    quoted = quote(version.name, safe="")
    body: dict[str, Any] = {
        "kind": "storage#object",
        "id": f"{version.bucket}/{version.name}/{version.generation}",
        "selfLink": f"{base_url}/storage/v1/b/{version.bucket}/o/{quoted}",
        # The client downloads from mediaLink once it has it, so it must lead back to the stand-in.
        "mediaLink": f"{base_url}/download/storage/v1/b/{version.bucket}/o/{quoted}"
        f"?generation={version.generation}&alt=media",
        "name": version.name,
        "bucket": version.bucket,
        "generation": str(version.generation),
        "metageneration": str(version.metageneration),
        "contentType": version.content_type,
        "storageClass": version.storage_class,
        "size": str(version.size),
        "crc32c": version.crc32c,
        "etag": version.etag,
        "timeCreated": version.time_created,
        "updated": version.updated or version.time_created,
        "timeStorageClassUpdated": version.time_created,
        "timeFinalized": version.time_created,
    }
    if version.md5_hash is not None:
        body["md5Hash"] = version.md5_hash
    if version.component_count is not None:
        body["componentCount"] = version.component_count
    if version.time_deleted is not None:
        body["timeDeleted"] = version.time_deleted
    for key, value in version.fields.items():
        if key != "contentType" and value is not None:
            body[key] = value
    version.rendered = body
    return body


def check_bucket_name(name: Any) -> str:
    if (
        not isinstance(name, str)
        or not _BUCKET_NAME.fullmatch(name)
        or ".." in name
        or (len(name) > 63 and "." not in name)
        or any(len(part) > 63 for part in name.split("."))
        or name.startswith("goog")
        or _IP_LIKE.fullmatch(name)
    ):
        raise ApiError(400, f"Invalid bucket name: '{name}'", reason="invalid")
    return name


def check_object_name(name: Any) -> str:
    if not isinstance(name, str) or not name:
        raise ApiError(400, "Required", reason="required")
    if len(name.encode()) > 1024 or "\r" in name or "\n" in name or name in (".", ".."):
        raise ApiError(400, f"Invalid object name: '{name[:100]}'", reason="invalid")
    return name


def check_storage_class(value: Any) -> str:
    if value not in STORAGE_CLASSES:
        raise ApiError(
            400, f"Invalid argument: storageClass '{value}' is not one of {', '.join(STORAGE_CLASSES)}."
        )
    return value


def unknown_field(name: str) -> ApiError:
    return ApiError(
        400, f'Invalid JSON payload received. Unknown name "{name}": Cannot find field.', reason="invalid"
    )


def writable_object_fields(body: dict[str, Any], patch: bool = False) -> dict[str, Any]:
    """The writable Object fields of a request body, type-checked; output-only ones dropped.

    With `patch`, a null value means "remove" and `metadata` keys set to null are removed one by one.
    """
    chosen: dict[str, Any] = {}
    for key, value in body.items():
        if key not in KNOWN_OBJECT_FIELDS:
            raise unknown_field(key)
        if key not in WRITABLE_OBJECT_FIELDS:
            continue
        if value is None:
            chosen[key] = None
        elif key == "metadata":
            if not isinstance(value, dict) or not all(
                isinstance(v, str) or (patch and v is None) for v in value.values()
            ):
                raise ApiError(400, "Invalid argument: metadata must map strings to strings.")
            chosen[key] = dict(value)
        elif key in ("temporaryHold", "eventBasedHold"):
            if not isinstance(value, bool):
                raise ApiError(400, f"Invalid value for {key}: expected a boolean.")
            chosen[key] = value
        elif not isinstance(value, str):
            raise ApiError(400, f"Invalid value for {key}: expected a string.")
        else:
            chosen[key] = value
    return chosen
