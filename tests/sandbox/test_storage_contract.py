"""Contract of the Cloud Storage stand-in, driven through the real google-cloud-storage client.

Every behaviour the product's DR safety rests on and the public emulator gets wrong is pinned here:
preconditions, generations and noncurrent versions, paging, bucket location, and rewrites that take
several calls.
"""

from __future__ import annotations

import base64
import io
import os

import google_crc32c
import pytest
from google.api_core import exceptions

from sandbox.http import ApiError
from tests.sandbox.storage_support import (
    DR_REGION,
    FAST_RETRY,
    PROJECT,
    REGION,
    bucket_name,
    requests_to,
    running_stand_in,
)

MIB = 1024 * 1024


def crc32c(data: bytes) -> str:
    return base64.b64encode(google_crc32c.Checksum(data).digest()).decode()


@pytest.fixture(scope="module")
def stand_in():
    yield from running_stand_in()


@pytest.fixture(scope="module")
def client(stand_in):
    return stand_in.client()


def make_bucket(client, location: str = REGION, versioning: bool = False):
    bucket = client.bucket(bucket_name())
    bucket.versioning_enabled = versioning
    return client.create_bucket(bucket, location=location)


# -- buckets ----------------------------------------------------------------------------------------
def test_bucket_keeps_location_uppercase_versioning_and_storage_class(client):
    created = client.bucket(bucket_name())
    created.versioning_enabled = True
    created.storage_class = "NEARLINE"
    created = client.create_bucket(created, location="europe-north1")
    fetched = client.get_bucket(created.name)
    assert (fetched.location, fetched.location_type) == (DR_REGION, "region")
    assert fetched.versioning_enabled is True and fetched.storage_class == "NEARLINE"
    assert fetched.time_created is not None and fetched.metageneration == 1
    assert created.name in [b.name for b in client.list_buckets()]
    assert client.create_bucket(bucket_name()).location == "US"  # GCS's default


def test_bucket_errors_duplicate_missing_and_not_empty(client):
    bucket = make_bucket(client)
    with pytest.raises(exceptions.Conflict):
        client.create_bucket(bucket.name)
    with pytest.raises(exceptions.NotFound):
        client.get_bucket("no-such-bucket")
    assert client.lookup_bucket("no-such-bucket") is None
    bucket.blob("x").upload_from_string(b"x")
    with pytest.raises(exceptions.Conflict):
        bucket.delete()
    bucket.blob("x").delete()
    bucket.delete()
    assert not bucket.exists()


def test_bucket_patch_turns_versioning_on(client):
    bucket = make_bucket(client)
    bucket.versioning_enabled = True
    bucket.patch()
    assert client.get_bucket(bucket.name).versioning_enabled is True
    assert bucket.metageneration == 2


# -- objects: upload, download, checksums ------------------------------------------------------------
def test_multipart_upload_records_checksums_metadata_and_generations(client):
    bucket = make_bucket(client)
    blob = bucket.blob("db/2024-01-01.sql.gz")
    blob.metadata = {"instance": "pg1"}
    blob.upload_from_string(b"dump bytes", content_type="application/gzip", if_generation_match=0)
    got = bucket.get_blob("db/2024-01-01.sql.gz")
    assert got.generation == blob.generation and got.metageneration == 1
    assert (got.size, got.content_type, got.metadata) == (10, "application/gzip", {"instance": "pg1"})
    assert got.crc32c == crc32c(b"dump bytes")
    assert got.md5_hash == base64.b64encode(__import__("hashlib").md5(b"dump bytes").digest()).decode()
    assert got.component_count is None and got.storage_class == "STANDARD"
    assert got.id == f"{bucket.name}/db/2024-01-01.sql.gz/{got.generation}"
    assert got.download_as_bytes(checksum="crc32c") == b"dump bytes"
    assert got.download_as_bytes(checksum="md5") == b"dump bytes"


def test_generations_increase(client):
    bucket = make_bucket(client)
    generations = []
    for body in (b"1", b"2", b"3"):
        blob = bucket.blob("counter")
        blob.upload_from_string(body)
        generations.append(blob.generation)
    assert generations == sorted(set(generations))


def test_resumable_upload_in_chunks(stand_in, client):
    bucket = make_bucket(client)
    data = os.urandom(700_000)
    blob = bucket.blob("big.bin")
    blob.chunk_size = 256 * 1024
    blob.upload_from_file(io.BytesIO(data), content_type="application/octet-stream", if_generation_match=0)
    puts = requests_to(stand_in, "PUT", f"/upload/storage/v1/b/{bucket.name}/o")
    assert [p["status"] for p in puts] == [308, 308, 200]
    assert blob.size == len(data) and blob.crc32c == crc32c(data)
    assert bucket.blob("big.bin").download_as_bytes(checksum="crc32c") == data
    again = bucket.blob("big.bin")
    again.chunk_size = 256 * 1024
    with pytest.raises(exceptions.PreconditionFailed):
        again.upload_from_file(io.BytesIO(data), if_generation_match=0)


def test_range_downloads(client):
    bucket = make_bucket(client)
    blob = bucket.blob("digits")
    blob.upload_from_string(b"0123456789")
    assert blob.download_as_bytes(start=2, end=5) == b"2345"
    assert blob.download_as_bytes(start=7) == b"789"
    assert blob.download_as_bytes(start=8, end=100) == b"89"
    chunked = bucket.blob("digits", chunk_size=256 * 1024)
    assert chunked.download_as_bytes(checksum="crc32c") == b"0123456789"


def test_missing_object_is_not_found(client):
    bucket = make_bucket(client)
    assert bucket.get_blob("nope") is None
    assert not bucket.blob("nope").exists()
    with pytest.raises(exceptions.NotFound) as raised:
        bucket.blob("nope").download_as_bytes()
    assert raised.value.code == 404
    with pytest.raises(exceptions.NotFound):
        bucket.blob("nope").delete()


# -- preconditions ----------------------------------------------------------------------------------
def test_preconditions_on_upload_get_download_patch_delete(client):
    bucket = make_bucket(client)
    blob = bucket.blob("manifest.json")
    blob.upload_from_string(b"{}", if_generation_match=0)
    generation, wrong = blob.generation, blob.generation + 1
    with pytest.raises(exceptions.PreconditionFailed):
        bucket.blob("manifest.json").upload_from_string(b"{1}", if_generation_match=0)
    with pytest.raises(exceptions.PreconditionFailed):
        bucket.blob("manifest.json").upload_from_string(b"{1}", if_generation_match=wrong)
    with pytest.raises(exceptions.PreconditionFailed):
        bucket.get_blob("manifest.json", if_generation_match=wrong)
    with pytest.raises(exceptions.PreconditionFailed):
        bucket.blob("manifest.json").download_as_bytes(if_generation_match=wrong)
    with pytest.raises(exceptions.PreconditionFailed):
        bucket.blob("manifest.json").download_as_bytes(if_metageneration_match=2)
    with pytest.raises(exceptions.PreconditionFailed):
        blob.patch(if_metageneration_match=7)
    with pytest.raises(exceptions.PreconditionFailed):
        bucket.blob("manifest.json").delete(if_generation_match=wrong)
    # Nothing above changed anything.
    assert bucket.get_blob("manifest.json").download_as_bytes() == b"{}"
    assert bucket.get_blob("manifest.json", if_generation_match=generation).metageneration == 1
    bucket.blob("manifest.json").upload_from_string(b"{2}", if_generation_match=generation)
    with pytest.raises(exceptions.PreconditionFailed):  # the generation we had is gone now
        bucket.blob("manifest.json").delete(if_generation_match=generation)
    current = bucket.get_blob("manifest.json")
    bucket.blob("manifest.json").delete(if_generation_match=current.generation)
    assert bucket.get_blob("manifest.json") is None


def test_not_match_preconditions_answer_not_modified(client):
    bucket = make_bucket(client)
    blob = bucket.blob("a")
    blob.upload_from_string(b"a")
    with pytest.raises(exceptions.NotModified):
        bucket.get_blob("a", if_generation_not_match=blob.generation)
    with pytest.raises(exceptions.NotModified):
        bucket.get_blob("a", if_metageneration_not_match=1)
    assert bucket.get_blob("a", if_generation_not_match=blob.generation + 1) is not None
    assert bucket.blob("a").download_as_bytes() == b"a"  # the connection is still usable


# -- versions ---------------------------------------------------------------------------------------
def test_versioned_bucket_keeps_noncurrent_generations(client):
    bucket = make_bucket(client, versioning=True)
    first, second = bucket.blob("state"), bucket.blob("state")
    first.upload_from_string(b"v1")
    second.upload_from_string(b"v2")
    listed = list(client.list_blobs(bucket, versions=True))
    assert [(b.name, b.generation) for b in listed] == [
        ("state", first.generation),
        ("state", second.generation),
    ]
    assert listed[0].time_deleted is not None and listed[1].time_deleted is None
    assert [b.generation for b in client.list_blobs(bucket)] == [second.generation]
    assert bucket.blob("state", generation=first.generation).download_as_bytes() == b"v1"
    assert bucket.get_blob("state", generation=first.generation).size == 2
    assert bucket.get_blob("state", generation=first.generation + 12345) is None
    with pytest.raises(exceptions.NotFound):
        bucket.blob("state", generation=first.generation + 12345).download_as_bytes()

    bucket.blob("state").delete()  # the live one becomes noncurrent
    assert list(client.list_blobs(bucket)) == []
    assert len(list(client.list_blobs(bucket, versions=True))) == 2
    bucket.blob("state", generation=first.generation).delete()  # that generation goes for good
    assert [b.generation for b in client.list_blobs(bucket, versions=True)] == [second.generation]
    with pytest.raises(exceptions.Conflict):
        bucket.delete()  # noncurrent versions still count


def test_unversioned_bucket_drops_old_generation(client):
    bucket = make_bucket(client)
    first = bucket.blob("state")
    first.upload_from_string(b"v1")
    bucket.blob("state").upload_from_string(b"v2")
    assert len(list(client.list_blobs(bucket, versions=True))) == 1
    with pytest.raises(exceptions.NotFound):
        bucket.blob("state", generation=first.generation).download_as_bytes()


# -- listing ----------------------------------------------------------------------------------------
def test_listing_pages_prefix_and_delimiter(stand_in, client):
    bucket = make_bucket(client)
    for i in range(25):
        stand_in.store.write_object(bucket.name, f"db/{i:02d}.sql", b"x")
    for name in ("logs/a", "logs/b", "top"):
        stand_in.store.write_object(bucket.name, name, b"y")
    path = f"/storage/v1/b/{bucket.name}/o"
    names = [b.name for b in client.list_blobs(bucket, prefix="db/", page_size=10)]
    assert names == [f"db/{i:02d}.sql" for i in range(25)]
    assert len(requests_to(stand_in, "GET", path)) == 3
    assert len(list(client.list_blobs(bucket, max_results=4))) == 4

    iterator = client.list_blobs(bucket, delimiter="/")
    assert [b.name for b in iterator] == ["top"]
    assert iterator.prefixes == {"db/", "logs/"}
    iterator = client.list_blobs(bucket, delimiter="/", page_size=1)
    assert [b.name for b in iterator] == ["top"] and iterator.prefixes == {"db/", "logs/"}

    ranged = client.list_blobs(bucket, start_offset="db/20", end_offset="db/23")
    assert [b.name for b in ranged] == ["db/20.sql", "db/21.sql", "db/22.sql"]


# -- metadata patch ---------------------------------------------------------------------------------
def test_patch_merges_metadata_and_bumps_metageneration(client):
    bucket = make_bucket(client)
    blob = bucket.blob("obj")
    blob.metadata = {"keep": "1", "drop": "2"}
    blob.upload_from_string(b"data", content_type="text/plain")
    generation = blob.generation
    blob.metadata = {"drop": None, "new": "3"}
    blob.patch(if_metageneration_match=1)
    assert blob.metageneration == 2 and blob.generation == generation
    got = bucket.get_blob("obj")
    assert got.metadata == {"keep": "1", "new": "3"} and got.content_type == "text/plain"
    got.content_type = "application/json"
    got.patch()
    assert bucket.get_blob("obj").content_type == "application/json"
    assert bucket.get_blob("obj").updated >= got.time_created


# -- server-side copies -----------------------------------------------------------------------------
def rewrite_all(dst, src, **kwargs) -> int:
    token, calls = None, 0
    while True:
        token, done, total = dst.rewrite(src, token=token, **kwargs)
        calls += 1
        if token is None:
            assert done == total
            return calls


def test_rewrite_across_locations_takes_several_calls(stand_in, client):
    primary, dr = make_bucket(client, REGION), make_bucket(client, DR_REGION)
    src = primary.blob("db/dump.sql.gz")
    src.metadata = {"instance": "pg1"}
    src.upload_from_string(b"small dump", content_type="application/gzip")
    dst = dr.blob("db/dump.sql.gz")
    calls = rewrite_all(dst, src, if_generation_match=0, if_source_generation_match=src.generation)
    assert calls > 1
    path = f"/storage/v1/b/{primary.name}/o/db%2Fdump.sql.gz/rewriteTo/b/{dr.name}/o/db%2Fdump.sql.gz"
    assert len(requests_to(stand_in, "POST", path)) == calls
    copy = dr.get_blob("db/dump.sql.gz")
    assert (copy.crc32c, copy.md5_hash, copy.size) == (src.crc32c, src.md5_hash, src.size)
    assert (copy.content_type, copy.metadata) == ("application/gzip", {"instance": "pg1"})
    assert copy.generation != src.generation and copy.download_as_bytes() == b"small dump"
    assert client.get_bucket(dr.name).location == DR_REGION
    with pytest.raises(exceptions.PreconditionFailed):  # the copy exists now
        rewrite_all(dr.blob("db/dump.sql.gz"), src, if_generation_match=0)
    with pytest.raises(exceptions.PreconditionFailed):  # the source moved on
        rewrite_all(
            dr.blob("other"), src, if_generation_match=0, if_source_generation_match=src.generation + 1
        )


def test_rewrite_within_a_location_is_one_call_unless_big(stand_in, client):
    bucket = make_bucket(client)
    small = bucket.blob("small")
    small.upload_from_string(b"tiny")
    assert rewrite_all(bucket.blob("small-copy"), small, if_generation_match=0) == 1
    big_data = os.urandom(2 * MIB + 1000)
    stand_in.store.write_object(bucket.name, "big", big_data)
    big = bucket.get_blob("big")
    assert rewrite_all(bucket.blob("big-copy"), big, if_generation_match=0) == 3  # 1 MiB per call
    assert bucket.blob("big-copy").download_as_bytes(checksum="crc32c") == big_data


def test_rewrite_of_a_pinned_noncurrent_generation(client):
    bucket = make_bucket(client, versioning=True)
    old = bucket.blob("x")
    old.upload_from_string(b"old")
    bucket.blob("x").upload_from_string(b"new")
    dst = make_bucket(client, DR_REGION).blob("x")
    rewrite_all(dst, bucket.blob("x", generation=old.generation), if_generation_match=0)
    assert dst.download_as_bytes() == b"old"


def test_copy_blob_and_compose(client):
    bucket = make_bucket(client)
    a, b = bucket.blob("a"), bucket.blob("b")
    a.metadata = {"m": "1"}
    a.upload_from_string(b"hello ", content_type="text/plain")
    b.upload_from_string(b"world")
    copied = bucket.copy_blob(a, bucket, "a-copy", if_generation_match=0)
    assert (copied.crc32c, copied.metadata, copied.content_type) == (a.crc32c, {"m": "1"}, "text/plain")
    composite = bucket.blob("ab")
    composite.content_type = "text/plain"
    composite.compose([a, b], if_generation_match=0)
    got = bucket.get_blob("ab")
    assert got.component_count == 2 and got.md5_hash is None
    assert got.crc32c == crc32c(b"hello world") and got.download_as_bytes() == b"hello world"
    assert got.download_as_bytes(checksum="crc32c") == b"hello world"


# -- faults -----------------------------------------------------------------------------------------
def test_injected_503s_are_retried_by_the_client(stand_in, client):
    bucket = make_bucket(client)
    bucket.blob("obj").upload_from_string(b"x")
    path = f"/storage/v1/b/{bucket.name}/o/obj"
    stand_in.faults.add(path=f"^{path}$", method="GET", status=503, times=2)
    assert bucket.get_blob("obj", retry=FAST_RETRY).size == 1
    assert [e["status"] for e in requests_to(stand_in, "GET", path)][-3:] == [503, 503, 200]


# -- the Python API other stand-ins use ---------------------------------------------------------------
def test_store_python_api(stand_in, client):
    store = stand_in.store
    name = bucket_name("py")
    created = store.create_bucket(name, location="europe-west1", versioning=True)
    assert created["location"] == REGION and created["versioning"] == {"enabled": True}
    assert client.get_bucket(name).versioning_enabled is True
    written = store.write_object(
        name, "exports/pg1.sql.gz", b"\x1f\x8b", "application/gzip", if_generation_match=0
    )
    assert written["crc32c"] == crc32c(b"\x1f\x8b") and written["contentType"] == "application/gzip"
    blob = client.bucket(name).get_blob("exports/pg1.sql.gz")
    assert str(blob.generation) == written["generation"]
    assert store.read_object(name, "exports/pg1.sql.gz") == b"\x1f\x8b"
    with pytest.raises(ApiError) as raised:
        store.write_object(name, "exports/pg1.sql.gz", b"again", if_generation_match=0)
    assert raised.value.code == 412
    with pytest.raises(ApiError) as raised:
        store.read_object(name, "missing")
    assert raised.value.code == 404
    with pytest.raises(ApiError) as raised:
        store.write_object("no-such-bucket", "x", b"")
    assert raised.value.code == 404
    with pytest.raises(ApiError) as raised:
        store.create_bucket(name, location="US")
    assert raised.value.code == 409
    assert store.read_object(name, "exports/pg1.sql.gz") == b"\x1f\x8b"
    assert PROJECT == client.project
