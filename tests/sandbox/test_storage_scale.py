"""The storage stand-in under load: 10,000-object listings, stable page tokens, racing writers."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from google.api_core import exceptions

from sandbox.http import ApiError
from sandbox.storage.listing import ListQuery
from sandbox.storage.preconditions import Preconditions
from tests.sandbox.storage_support import bucket_name, requests_to, running_stand_in

OBJECTS = 10_000


@pytest.fixture(scope="module")
def stand_in():
    yield from running_stand_in()


@pytest.fixture(scope="module")
def big_bucket(stand_in) -> str:
    name = bucket_name("scale")
    stand_in.store.create_bucket(name, location="europe-west1", versioning=True)
    for i in range(OBJECTS):
        stand_in.store.write_object(name, f"db/{i:05d}.sql.gz", b"x" * 64, "application/gzip")
    return name


def test_listing_ten_thousand_objects_is_quick_and_paged(stand_in, big_bucket):
    client = stand_in.client()
    path = f"/storage/v1/b/{big_bucket}/o"
    for _ in range(3):
        started = time.perf_counter()
        names = [blob.name for blob in client.list_blobs(big_bucket)]
        elapsed = time.perf_counter() - started
        assert len(names) == OBJECTS and names == sorted(names)
        assert elapsed < 3.0, f"listing {OBJECTS} objects took {elapsed:.2f}s"
    assert len(requests_to(stand_in, "GET", path)) == 3 * (OBJECTS // 1000)  # 1000 per page, no extra call
    started = time.perf_counter()
    tail = list(client.list_blobs(big_bucket, prefix="db/0999", page_size=5))
    assert len(tail) == 10 and time.perf_counter() - started < 1.0


def test_page_token_survives_changes_between_pages(stand_in, big_bucket):
    pages = stand_in.client().list_blobs(big_bucket, prefix="db/000", page_size=4).pages
    first = [blob.name for blob in next(pages)]
    assert first == [f"db/{i:05d}.sql.gz" for i in range(4)]
    stand_in.store.write_object(big_bucket, "db/00000.sql.gz", b"rewritten")  # already listed
    stand_in.store.write_object(big_bucket, "db/00004a.sql.gz", b"new, after the cursor")
    second = [blob.name for blob in next(pages)]
    assert second == ["db/00004.sql.gz", "db/00004a.sql.gz", "db/00005.sql.gz", "db/00006.sql.gz"]


def test_racing_create_only_writers_make_exactly_one_object(stand_in):
    name = bucket_name("race")
    stand_in.store.create_bucket(name, location="europe-west1")
    client = stand_in.client()

    def write(i: int) -> str:
        try:
            client.bucket(name).blob("lock").upload_from_string(f"writer {i}", if_generation_match=0)
            return "won"
        except exceptions.PreconditionFailed:
            return "lost"

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(write, range(16)))
    assert outcomes.count("won") == 1 and outcomes.count("lost") == 15
    assert len(list(client.list_blobs(name, versions=True))) == 1

    def python_write(i: int) -> int:
        try:
            stand_in.store.write_object(name, "py-lock", b"x", if_generation_match=0)
            return 1
        except ApiError as error:
            assert error.code == 412
            return 0

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert sum(pool.map(python_write, range(32))) == 1


def _all_pages(store, bucket: str, **query) -> tuple[list[tuple[str, str]], list[str]]:
    items, prefixes, token = [], [], ""
    while True:
        page = store.list_objects(bucket, ListQuery(page_token=token, **query))
        items += [(item["name"], item["generation"]) for item in page.get("items", [])]
        prefixes += page.get("prefixes", [])
        if "nextPageToken" not in page:
            return items, prefixes
        token = page["nextPageToken"]


@pytest.mark.parametrize("page_size", [1, 2, 3, 7, 1000])
def test_paged_listing_matches_a_full_scan(stand_in, page_size):
    """Whatever the page size, paging gives every entry exactly once: a replication diff built from a
    listing that skipped or repeated names would copy too little or delete too much."""
    name = bucket_name("scan")
    store = stand_in.store
    store.create_bucket(name, location="europe-west1", versioning=True)
    names = ["a", "a/", "a/1", "a/2/x", "a/2/y", "a/3", "b", "b/1", "c/1/2", "dd", "d/"]
    for object_name in names:
        store.write_object(name, object_name, b"1")
    for object_name in ("a/1", "b", "dd"):
        store.write_object(name, object_name, b"2")  # noncurrent versions
    store.delete_object(name, "dd", None, Preconditions())  # only noncurrent versions left
    bucket = store.bucket(name)
    live = [(n, str(bucket.live[n].generation)) for n in sorted(bucket.live)]
    every = [
        (n, str(v.generation))
        for n in bucket.names
        for v in [*bucket.noncurrent.get(n, []), *([bucket.live[n]] if n in bucket.live else [])]
    ]

    assert _all_pages(store, name, max_results=page_size) == (live, [])
    assert _all_pages(store, name, max_results=page_size, versions=True) == (every, [])
    items, prefixes = _all_pages(store, name, max_results=page_size, delimiter="/")
    assert items == [e for e in live if "/" not in e[0]] and prefixes == ["a/", "b/", "c/", "d/"]
    items, prefixes = _all_pages(store, name, max_results=page_size, delimiter="/", prefix="a/")
    assert [n for n, _ in items] == ["a/", "a/1", "a/3"] and prefixes == ["a/2/"]
    items, _ = _all_pages(store, name, max_results=page_size, start_offset="a/2", end_offset="b/1")
    assert [n for n, _ in items] == ["a/2/x", "a/2/y", "a/3", "b"]
