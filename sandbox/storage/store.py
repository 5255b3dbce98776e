"""Buckets, objects and their generations, behind one lock; no HTTP in here.

The stand-in's handlers call it, and so do other stand-ins through three stable methods (the Cloud SQL
stand-in's exports and imports): `create_bucket`, `read_object` and `write_object`. Errors are
`ApiError`s with the codes and messages GCS uses, so a Python caller sees what an HTTP caller would.

Generations are int64s from a store-wide clock in microseconds (as GCS's are), strictly increasing, so
"newer" always compares greater. With bucket versioning on, an overwritten or deleted live object is
kept as a noncurrent version (with ``timeDeleted``) until deleted by generation.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from typing import Any

from sandbox.http import ApiError
from sandbox.storage.listing import ListQuery, list_page
from sandbox.storage.preconditions import Preconditions
from sandbox.storage.resources import (
    Bucket,
    ObjectVersion,
    bucket_resource,
    check_bucket_name,
    check_object_name,
    check_storage_class,
    crc32c_b64,
    md5_b64,
    now,
    object_resource,
)

PUBLIC_BASE = "https://storage.googleapis.com"
NO_BUCKET = "The specified bucket does not exist."


def no_object(bucket: str, name: str) -> ApiError:
    return ApiError(404, f"No such object: {bucket}/{name}", reason="notFound")


class Store:
    def __init__(self, project: str = "sandbox-project") -> None:
        self.default_project = project
        # Where selfLink/mediaLink point; the stand-in sets its own URL when it starts serving.
        self.base_url = PUBLIC_BASE
        self.lock = threading.RLock()
        self._buckets: dict[str, Bucket] = {}
        self._last_generation = 0

    # -- the Python API other stand-ins use ----------------------------------------------------------
    def create_bucket(
        self,
        name: str,
        location: str = "US",
        versioning: bool = False,
        storage_class: str = "STANDARD",
        project: str | None = None,
        labels: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Create a bucket and return its resource; 409 if the name is taken (names are global)."""
        check_bucket_name(name)
        if not isinstance(location, str) or not location.strip():
            raise ApiError(400, "Invalid argument: location must be a non-empty string.")
        check_storage_class(storage_class)
        created = now()
        bucket = Bucket(
            name=name,
            project=project or self.default_project,
            location=location.strip().upper(),
            storage_class=storage_class,
            versioning=bool(versioning),
            time_created=created,
            labels=dict(labels or {}),
            extra=dict(extra or {}),
            updated=created,
        )
        with self.lock:
            if name in self._buckets:
                raise ApiError(
                    409,
                    "Your previous request to create the named bucket succeeded and you already own it.",
                    reason="conflict",
                )
            self._buckets[name] = bucket
            return bucket_resource(bucket, self.base_url)

    def read_object(self, bucket: str, name: str) -> bytes:
        """The live object's bytes; 404 when the bucket or the object does not exist."""
        return self.get_object(bucket, name).data

    def write_object(
        self,
        bucket: str,
        name: str,
        data: bytes,
        content_type: str = "application/octet-stream",
        if_generation_match: int | None = None,
    ) -> dict[str, Any]:
        """Write a new generation; 412 if `if_generation_match` does not hold (0: must not exist)."""
        version = self.insert_object(
            bucket,
            name,
            bytes(data),
            {"contentType": content_type},
            Preconditions(generation_match=if_generation_match),
        )
        return self.render(version)

    # -- buckets -------------------------------------------------------------------------------------
    def bucket(self, name: str) -> Bucket:
        with self.lock:
            found = self._buckets.get(name)
            if found is None:
                raise ApiError(404, NO_BUCKET, reason="notFound")
            return found

    def bucket_resource(self, name: str) -> dict[str, Any]:
        with self.lock:
            return bucket_resource(self.bucket(name), self.base_url)

    def list_buckets(self, project: str, prefix: str = "") -> list[dict[str, Any]]:
        with self.lock:
            chosen = [b for b in self._buckets.values() if b.project == project and b.name.startswith(prefix)]
            return [bucket_resource(b, self.base_url) for b in sorted(chosen, key=lambda b: b.name)]

    def patch_bucket(self, name: str, changes: dict[str, Any], metageneration_match: int | None) -> dict:
        with self.lock:
            bucket = self.bucket(name)
            if metageneration_match is not None and metageneration_match != bucket.metageneration:
                raise ApiError(
                    412,
                    "At least one of the pre-conditions you specified did not hold.",
                    reason="conditionNotMet",
                )
            if "versioning" in changes:
                bucket.versioning = bool((changes["versioning"] or {}).get("enabled"))
            if "labels" in changes:
                labels = {**bucket.labels, **(changes["labels"] or {})}
                bucket.labels = {k: v for k, v in labels.items() if v is not None}
            if "storageClass" in changes:
                bucket.storage_class = check_storage_class(changes["storageClass"])
            for key, value in changes.get("extra", {}).items():
                bucket.extra[key] = value
            bucket.metageneration += 1
            bucket.updated = now()
            return bucket_resource(bucket, self.base_url)

    def delete_bucket(self, name: str) -> None:
        with self.lock:
            bucket = self.bucket(name)
            if not bucket.is_empty():  # noncurrent versions count too, as on GCS
                raise ApiError(409, "The bucket you tried to delete is not empty.", reason="conflict")
            del self._buckets[name]

    # -- objects -------------------------------------------------------------------------------------
    def render(self, version: ObjectVersion) -> dict[str, Any]:
        with self.lock:
            return object_resource(version, self.base_url)

    def get_object(
        self, bucket: str, name: str, generation: int | None = None, conditions: Preconditions | None = None
    ) -> ObjectVersion:
        """The live version, or exactly `generation` (live or noncurrent); 404 when there is none."""
        with self.lock:
            found = self._find(self.bucket(bucket), name, generation)
            if found is None:
                raise no_object(bucket, name)
            if conditions is not None:
                conditions.check(found)
            return found

    def check_live(self, bucket: str, name: str, conditions: Preconditions) -> None:
        """Check `conditions` against the live object (None if there is none) without changing anything."""
        with self.lock:
            conditions.check(self.bucket(bucket).live.get(name))

    def insert_object(
        self,
        bucket: str,
        name: str,
        data: bytes,
        fields: dict[str, Any],
        conditions: Preconditions | None = None,
        *,
        crc32c: str | None = None,
        md5_hash: str | None = "",
        component_count: int | None = None,
    ) -> ObjectVersion:
        """Store `data` as the new live generation of `name`.

        `crc32c`/`md5_hash` are passed when they are already known (copies); `md5_hash=None` leaves
        it out, as GCS does for composite objects.
        """
        check_object_name(name)
        version = ObjectVersion(
            bucket=bucket,
            name=name,
            generation=0,
            data=data,
            crc32c=crc32c or crc32c_b64(data),
            md5_hash=md5_b64(data) if md5_hash == "" else md5_hash,
            storage_class="",
            time_created="",
            fields={k: v for k, v in fields.items() if v is not None},
            component_count=component_count,
        )
        with self.lock:
            target = self.bucket(bucket)
            current = target.live.get(name)
            if conditions is not None:
                conditions.check(current)
            version.generation = self._next_generation()
            version.storage_class = target.storage_class
            version.time_created = version.updated = now()
            if current is not None:
                self._retire(target, current, version.time_created)
            else:
                self._add_name(target, name)
            target.live[name] = version
            return version

    def patch_object(
        self,
        bucket: str,
        name: str,
        generation: int | None,
        changes: dict[str, Any],
        conditions: Preconditions,
        replace: bool = False,
    ) -> ObjectVersion:
        """Apply writable-field `changes` (PATCH merges, `replace` is PUT); bumps metageneration."""
        with self.lock:
            version = self.get_object(bucket, name, generation, conditions)
            fields = {} if replace else dict(version.fields)
            for key, value in changes.items():
                if key == "metadata" and not replace and isinstance(value, dict):
                    merged = {**(fields.get("metadata") or {}), **value}
                    fields["metadata"] = {k: v for k, v in merged.items() if v is not None} or None
                else:
                    fields[key] = value
            version.fields = {k: v for k, v in fields.items() if v is not None}
            version.metageneration += 1
            version.updated = now()
            version.rendered = None
            return version

    def delete_object(
        self, bucket: str, name: str, generation: int | None, conditions: Preconditions
    ) -> None:
        """Without `generation`: the live version goes (kept as noncurrent if versioning is on).
        With it: exactly that generation goes, for good."""
        with self.lock:
            target = self.bucket(bucket)
            version = self.get_object(bucket, name, generation, conditions)
            if target.live.get(name) is version:
                del target.live[name]
                if generation is None:
                    self._retire(target, version, now())
            else:
                older = target.noncurrent[name]
                older[:] = [v for v in older if v is not version]
                if not older:
                    del target.noncurrent[name]
            if name not in target.live and name not in target.noncurrent:
                target.names.pop(bisect_left(target.names, name))

    def list_objects(self, bucket: str, query: ListQuery) -> dict[str, Any]:
        """One page of objects.list, as the `Objects` resource."""
        with self.lock:
            page = list_page(self.bucket(bucket), query)
            body: dict[str, Any] = {"kind": "storage#objects"}
            if page.prefixes:
                body["prefixes"] = page.prefixes
            if page.items:  # GCS leaves both keys out rather than sending empty lists
                body["items"] = [object_resource(v, self.base_url) for v in page.items]
        if page.next_token is not None:
            body["nextPageToken"] = page.next_token
        return body

    # -- internals -----------------------------------------------------------------------------------
    def _find(self, bucket: Bucket, name: str, generation: int | None) -> ObjectVersion | None:
        live = bucket.live.get(name)
        if generation is None or (live is not None and live.generation == generation):
            return live
        for version in bucket.noncurrent.get(name, ()):
            if version.generation == generation:
                return version
        return None

    def _retire(self, bucket: Bucket, version: ObjectVersion, when: str) -> None:
        """`version` stops being live: with versioning on it is kept as noncurrent, else it is gone."""
        if bucket.versioning:
            version.time_deleted = when
            version.rendered = None
            bucket.noncurrent.setdefault(version.name, []).append(version)

    def _add_name(self, bucket: Bucket, name: str) -> None:
        index = bisect_left(bucket.names, name)
        if index == len(bucket.names) or bucket.names[index] != name:
            bucket.names.insert(index, name)

    def _next_generation(self) -> int:
        self._last_generation = max(int(time.time() * 1_000_000), self._last_generation + 1)
        return self._last_generation
