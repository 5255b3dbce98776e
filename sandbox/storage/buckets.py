"""Bucket handlers of the storage stand-in (insert, get, list, patch, delete), mixed into the server.

Location is what DR checks read ("is the DR bucket really in another region?"), and the public
emulator answers "US" whatever was asked; here it is kept, upper-cased as GCS returns it.
"""

from __future__ import annotations

import base64
from typing import Any

from sandbox.http import ApiError, Request, Response
from sandbox.storage.listing import MAX_RESULTS
from sandbox.storage.preconditions import query_int
from sandbox.storage.resources import KNOWN_BUCKET_FIELDS, unknown_field
from sandbox.storage.store import Store

# Settings kept verbatim and returned, without the stand-in acting on them.
KEPT_AS_GIVEN = {"lifecycle", "cors", "website", "logging", "billing", "softDeletePolicy", "encryption"}


def _bucket_body(body: dict[str, Any]) -> dict[str, Any]:
    """The settable Bucket fields of a request body, type-checked; output-only ones dropped."""
    chosen: dict[str, Any] = {}
    for key in body:
        if key not in KNOWN_BUCKET_FIELDS:
            raise unknown_field(key)
    if "location" in body and not isinstance(body["location"], str):
        raise ApiError(400, "Invalid value for location: expected a string.")
    versioning = body.get("versioning")
    if versioning is not None:
        if not isinstance(versioning, dict) or not isinstance(versioning.get("enabled", False), bool):
            raise ApiError(400, 'Invalid value for versioning: expected {"enabled": true|false}.')
        chosen["versioning"] = versioning
    labels = body.get("labels")
    if labels is not None:
        if not isinstance(labels, dict) or not all(isinstance(v, str | None) for v in labels.values()):
            raise ApiError(400, "Invalid value for labels: expected a map of strings.")
        chosen["labels"] = labels
    if body.get("storageClass") is not None:
        chosen["storageClass"] = body["storageClass"]
    extra = {k: v for k, v in body.items() if k in KEPT_AS_GIVEN and v is not None}
    if any(not isinstance(v, dict | list) for v in extra.values()):
        raise ApiError(400, f"Invalid value in {sorted(extra)}: expected objects.")
    chosen["extra"] = extra
    return chosen


class BucketHandlers:
    store: Store
    project: str

    def list_buckets(self, request: Request) -> dict:
        project = request.arg("project")
        if not project:
            raise ApiError(400, "Required parameter: project", reason="required")
        buckets = self.store.list_buckets(project, request.arg("prefix", "") or "")
        limit = max(1, min(query_int(request.query, "maxResults") or MAX_RESULTS, MAX_RESULTS))
        token = request.arg("pageToken")
        if token:
            try:
                after = base64.urlsafe_b64decode(token.encode()).decode()
            except ValueError:
                raise ApiError(400, "Invalid argument: the page token is not valid.") from None
            buckets = [b for b in buckets if b["name"] > after]
        body: dict[str, Any] = {"kind": "storage#buckets"}
        if buckets:
            body["items"] = buckets[:limit]
        if len(buckets) > limit:  # absent on the last page: the client stops only then
            body["nextPageToken"] = base64.urlsafe_b64encode(buckets[limit - 1]["name"].encode()).decode()
        return body

    def insert_bucket(self, request: Request) -> dict:
        project = request.arg("project")
        if not project:
            raise ApiError(400, "Required parameter: project", reason="required")
        body = request.json()
        settings = _bucket_body(body)
        return self.store.create_bucket(
            body.get("name"),
            location=body.get("location") or "US",
            versioning=bool((settings.get("versioning") or {}).get("enabled")),
            storage_class=settings.get("storageClass") or "STANDARD",
            project=project,
            labels={k: v for k, v in (settings.get("labels") or {}).items() if v is not None},
            extra=settings["extra"],
        )

    def get_bucket(self, request: Request) -> dict:
        resource = self.store.bucket_resource(request.params["bucket"])
        wanted = query_int(request.query, "ifMetagenerationMatch")
        if wanted is not None and str(wanted) != resource["metageneration"]:
            raise ApiError(
                412,
                "At least one of the pre-conditions you specified did not hold.",
                reason="conditionNotMet",
            )
        return resource

    def patch_bucket(self, request: Request) -> dict:
        body = request.json()
        if (
            "location" in body
            and str(body["location"]).upper()
            != self.store.bucket_resource(request.params["bucket"])["location"]
        ):
            raise ApiError(400, "The bucket's location cannot be changed.", reason="invalid")
        return self.store.patch_bucket(
            request.params["bucket"], _bucket_body(body), query_int(request.query, "ifMetagenerationMatch")
        )

    def delete_bucket(self, request: Request) -> Response:
        self.store.delete_bucket(request.params["bucket"])
        return Response(204)
