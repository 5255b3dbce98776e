"""Cloud Storage verbs: stat, list (all pages), write/read JSON, copy server-side, delete — with preconditions.

Copies use objects.rewrite (no object bytes pass through the worker) with `if_generation_match`, which
both protects a concurrent writer from being clobbered and turns on the client's built-in retry.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from google.api_core import exceptions as google_errors
from google.cloud import storage
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from blocks import OpsEnvironment
from tasks.clients import storage_client
from tasks.decisions.replication import ObjectInfo
from tasks.errors import VerificationFailed

# The client's DEFAULT_RETRY waits up to 120 s; a per-object failure after that is reported, not hidden.
COPY_THREADS = 16


def _info(blob: storage.Blob) -> ObjectInfo:
    return ObjectInfo(blob.name, int(blob.size or 0), blob.crc32c or "", blob.updated, blob.generation)


@task(name="stat-object", cache_policy=NO_CACHE)
def stat_object(environment: OpsEnvironment, bucket: str, name: str) -> ObjectInfo | None:
    blob = storage_client(environment).bucket(bucket).get_blob(name)
    return _info(blob) if blob is not None else None


@task(name="list-objects", cache_policy=NO_CACHE)
def list_objects(
    environment: OpsEnvironment, bucket: str, prefix: str = "", page_size: int = 1000
) -> dict[str, ObjectInfo]:
    """Every live object under `prefix`, across all pages. Raises if any page fails (never a partial list)."""
    blobs = storage_client(environment).list_blobs(bucket, prefix=prefix or None, page_size=page_size)
    return {blob.name: _info(blob) for blob in blobs}


@task(name="write-json", cache_policy=NO_CACHE)
def write_json(environment: OpsEnvironment, bucket: str, name: str, document: dict[str, Any]) -> ObjectInfo:
    """Create `name` (never overwrite: if_generation_match=0)."""
    blob = storage_client(environment).bucket(bucket).blob(name)
    blob.upload_from_string(
        json.dumps(document, indent=2, sort_keys=True, default=str),
        content_type="application/json",
        if_generation_match=0,
    )
    return _info(blob)


@task(name="read-json", cache_policy=NO_CACHE)
def read_json(environment: OpsEnvironment, bucket: str, name: str) -> dict[str, Any]:
    return json.loads(
        storage_client(environment).bucket(bucket).blob(name).download_as_bytes(checksum="crc32c")
    )


@dataclass
class CopyResult:
    name: str
    ok: bool
    bytes: int = 0
    calls: int = 0
    error: str = ""


def _copy_one(
    client: storage.Client, source_bucket: str, dest_bucket: str, source: ObjectInfo, dest: ObjectInfo | None
) -> CopyResult:
    src_blob = client.bucket(source_bucket).blob(source.name, generation=source.generation)
    dst_blob = client.bucket(dest_bucket).blob(source.name)
    # Replace exactly the DR generation we diffed against (0: it must still not exist).
    expected = dest.generation if dest is not None else 0
    token, calls = None, 0
    try:
        while True:
            token, _, _ = dst_blob.rewrite(
                src_blob,
                token=token,
                if_generation_match=expected,
                if_source_generation_match=source.generation,
            )
            calls += 1
            if token is None:
                break
        if dst_blob.crc32c != source.crc32c or int(dst_blob.size or 0) != source.size:
            return CopyResult(
                source.name, False, 0, calls, f"copy differs: crc32c {dst_blob.crc32c} != {source.crc32c}"
            )
        return CopyResult(source.name, True, source.size, calls)
    except google_errors.GoogleAPICallError as exc:
        return CopyResult(source.name, False, 0, calls, f"{type(exc).__name__}: {exc.message}")


@task(name="copy-objects", cache_policy=NO_CACHE)
def copy_objects(
    environment: OpsEnvironment,
    source_bucket: str,
    dest_bucket: str,
    sources: list[ObjectInfo],
    dests: dict[str, ObjectInfo],
    threads: int = COPY_THREADS,
) -> list[CopyResult]:
    """Server-side copies in a thread pool, each verified by crc32c; failures are returned, not raised."""
    client = storage_client(environment)
    with ThreadPoolExecutor(max_workers=threads) as pool:
        results = list(
            pool.map(lambda s: _copy_one(client, source_bucket, dest_bucket, s, dests.get(s.name)), sources)
        )
    failed = [r for r in results if not r.ok]
    if failed:
        get_run_logger().warning(
            "%d of %d copies failed, e.g. %s: %s", len(failed), len(results), failed[0].name, failed[0].error
        )
    return results


@task(name="delete-objects", cache_policy=NO_CACHE)
def delete_objects(environment: OpsEnvironment, bucket: str, objects: list[ObjectInfo]) -> list[str]:
    """Delete exactly the generations given (a newer write since the listing survives)."""
    client = storage_client(environment)
    deleted = []
    for info in objects:
        try:
            client.bucket(bucket).blob(info.name).delete(if_generation_match=info.generation)
            deleted.append(info.name)
        except (google_errors.NotFound, google_errors.PreconditionFailed) as exc:
            get_run_logger().warning("kept %s: %s", info.name, exc.message)
    return deleted


def check_object(info: ObjectInfo | None, what: str) -> ObjectInfo:
    if info is None or info.size <= 0 or not info.crc32c:
        raise VerificationFailed(f"{what} is missing, empty or has no crc32c: {info}")
    return info
