"""DR replication against the storage stand-in (paging, preconditions, multi-call rewrites, real crc32c)."""

from __future__ import annotations

import itertools

import httpx
import pytest

from flows.replicate import replicate_backups
from tests.flows.helpers import audit_records, clear_log, inject, mutations, run_id

_prefixes = itertools.count(1)


@pytest.fixture
def prefix(sandbox):
    """A prefix of its own, holding a few source objects (one bigger than a rewrite call's budget)."""
    name = f"replication-test-{next(_prefixes)}/"
    bucket = sandbox.storage.client().bucket(sandbox.environment.storage.primary_bucket)
    for i in range(5):
        bucket.blob(f"{name}obj-{i}.sql.gz").upload_from_string(f"export {i} ".encode() * 100)
    bucket.blob(f"{name}big.sql.gz").upload_from_string(b"x" * (3 * 1024 * 1024 + 17))
    return name


def buckets(sandbox):
    client = sandbox.storage.client()
    return client.bucket(sandbox.environment.storage.primary_bucket), client.bucket(
        sandbox.environment.storage.dr_bucket
    )


def listing(bucket, prefix) -> dict:
    return {b.name: (b.size, b.crc32c) for b in bucket.list_blobs(prefix=prefix)}


def rewrites(sandbox) -> list[dict]:
    return [m for m in mutations(sandbox.storage) if "/rewriteTo/" in m["path"]]


def test_first_copy_then_only_changes(sandbox, prefix):
    source, dr = buckets(sandbox)
    clear_log(sandbox.storage)
    state = replicate_backups("sandbox", prefix=prefix, return_state=True)
    assert state.is_completed(), state.message
    assert listing(dr, prefix) == listing(source, prefix)
    # Across regions, the 3 MiB object took several rewrite calls (token loop), all server-side.
    assert len(rewrites(sandbox)) > 6
    assert state.result()["copied"] == 6 and state.result()["lag_seconds"] == 0

    clear_log(sandbox.storage)
    again = replicate_backups("sandbox", prefix=prefix, return_state=True)
    assert again.result()["copied"] == 0 and rewrites(sandbox) == []

    source.blob(f"{prefix}obj-new.sql.gz").upload_from_string(b"tonight")
    clear_log(sandbox.storage)
    third = replicate_backups("sandbox", prefix=prefix, return_state=True)
    assert third.result()["copied"] == 1 and {r["path"] for r in rewrites(sandbox)} == {
        r["path"] for r in rewrites(sandbox) if "obj-new" in r["path"]
    }
    finished = audit_records(sandbox, run_id(third))[-1]
    assert finished["summary"]["facts"]["copied"] == 1 and finished["summary"]["facts"]["skipped"] == 6


def test_a_corrupted_dr_object_is_detected_and_repaired(sandbox, prefix):
    source, dr = buckets(sandbox)
    replicate_backups("sandbox", prefix=prefix)
    dr.blob(f"{prefix}obj-2.sql.gz").upload_from_string(b"bit rot")
    state = replicate_backups("sandbox", prefix=prefix, verify_all=True, return_state=True)
    assert state.is_completed() and state.result()["copied"] == 1
    assert listing(dr, prefix) == listing(source, prefix)


def test_503_bursts_on_rewrite_are_retried(sandbox, prefix):
    inject(sandbox.storage, path="/rewriteTo/", status=503, times=3)
    state = replicate_backups("sandbox", prefix=prefix, return_state=True)
    assert state.is_completed(), state.message
    source, dr = buckets(sandbox)
    assert listing(dr, prefix) == listing(source, prefix)


def test_an_empty_source_never_wipes_dr(sandbox, prefix):
    _, dr = buckets(sandbox)
    replicate_backups("sandbox", prefix=prefix)
    for blob in list(buckets(sandbox)[0].list_blobs(prefix=prefix)):
        blob.delete()
    before = listing(dr, prefix)
    clear_log(sandbox.storage)
    state = replicate_backups(
        "sandbox",
        prefix=prefix,
        delete_extraneous=True,
        max_delete=100,
        max_delete_fraction=1.0,
        return_state=True,
    )
    assert state.is_failed() and "refusing to mirror an empty source" in state.message
    assert listing(dr, prefix) == before
    assert not [m for m in mutations(sandbox.storage) if m["method"] == "DELETE"]


def test_deletions_only_when_asked_and_within_the_caps(sandbox, prefix):
    _, dr = buckets(sandbox)
    replicate_backups("sandbox", prefix=prefix)
    for i in range(3):
        dr.blob(f"{prefix}stale-{i}").upload_from_string(b"gone from the source")
    assert replicate_backups("sandbox", prefix=prefix).get("deleted") == 0  # not asked
    capped = replicate_backups(
        "sandbox", prefix=prefix, delete_extraneous=True, max_delete=2, return_state=True
    )
    assert capped.is_failed() and "above the caps" in capped.message
    assert len(listing(dr, prefix)) == 9
    done = replicate_backups(
        "sandbox",
        prefix=prefix,
        delete_extraneous=True,
        max_delete=5,
        max_delete_fraction=0.5,
        return_state=True,
    )
    assert done.is_completed() and done.result()["deleted"] == 3
    assert len(listing(dr, prefix)) == 6


def test_dry_run_changes_nothing(sandbox, prefix):
    clear_log(sandbox.storage)
    state = replicate_backups("sandbox", prefix=prefix, dry_run=True, return_state=True)
    assert state.is_completed() and len(state.result()["would_copy"]) == 6
    assert mutations(sandbox.storage) == []


def test_listings_longer_than_one_page(sandbox):
    prefix = "paging-test/"
    source, dr = buckets(sandbox)
    for i in range(1050):
        source.blob(f"{prefix}{i:05d}").upload_from_string(b"p")
    clear_log(sandbox.storage)
    state = replicate_backups("sandbox", prefix=prefix, return_state=True)
    assert state.is_completed() and state.result()["copied"] == 1050
    log = [
        m
        for m in httpx.get(sandbox.storage.url + "/_sandbox/requests").json()["requests"]
        if m["method"] == "GET" and m["path"].endswith(f"/b/{source.name}/o")
    ]
    assert [bool(m["query"].get("pageToken")) for m in log] == [False, True]  # two pages of the source
    assert len(listing(dr, prefix)) == 1050
