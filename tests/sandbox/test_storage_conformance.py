"""The storage stand-in judged by Google's own storage.v1 discovery document.

A discovery-based client (googleapiclient) drives every method the product relies on, and every body
the stand-in answered is checked strictly against the document's schemas: an unknown field, an int64
sent as a number or a wrong type fails.
"""

from __future__ import annotations

import pytest
from googleapiclient.errors import HttpError
from googleapiclient.http import MediaInMemoryUpload

from tests.sandbox.storage_support import bucket_name, running_stand_in
from tests.support.discovery import SchemaChecker, discovery_client

SCHEMA_OF = {
    "storage.buckets.insert": "Bucket",
    "storage.buckets.get": "Bucket",
    "storage.buckets.patch": "Bucket",
    "storage.buckets.list": "Buckets",
    "storage.objects.insert": "Object",
    "storage.objects.get": "Object",
    "storage.objects.patch": "Object",
    "storage.objects.list": "Objects",
    "storage.objects.rewrite": "RewriteResponse",
    "storage.objects.copy": "Object",
    "storage.objects.compose": "Object",
}


@pytest.fixture(scope="module")
def stand_in():
    yield from running_stand_in(rewrite_bytes_per_call=1024 * 1024)


def test_every_answer_matches_the_discovery_schemas(stand_in):
    recorded: list = []
    api = discovery_client("storage.v1", stand_in.url, recorder=recorded)
    primary, dr = bucket_name("conf"), bucket_name("conf-dr")
    buckets, objects = api.buckets(), api.objects()

    made = buckets.insert(
        project="p1", body={"name": primary, "location": "europe-west1", "versioning": {"enabled": True}}
    ).execute()
    assert made["location"] == "EUROPE-WEST1"
    buckets.insert(project="p1", body={"name": dr, "location": "EU", "labels": {"role": "dr"}}).execute()
    buckets.get(bucket=dr).execute()
    buckets.patch(bucket=dr, body={"labels": {"tier": "cold"}}).execute()
    assert {b["name"] for b in buckets.list(project="p1").execute()["items"]} >= {primary, dr}

    media = MediaInMemoryUpload(b"plain media", mimetype="text/plain")
    objects.insert(bucket=primary, name="db/a.sql", media_body=media).execute()
    with_metadata = MediaInMemoryUpload(b"multipart media", mimetype="application/gzip")
    objects.insert(
        bucket=primary, body={"name": "db/b.sql.gz", "metadata": {"k": "v"}}, media_body=with_metadata
    ).execute()
    resumable = MediaInMemoryUpload(
        b"r" * 300_000, mimetype="application/octet-stream", resumable=True, chunksize=256 * 1024
    )
    objects.insert(bucket=primary, body={"name": "db/c.bin"}, media_body=resumable).execute()
    objects.insert(bucket=primary, name="db/a.sql", media_body=media).execute()  # a noncurrent version

    objects.get(bucket=primary, object="db/a.sql").execute()
    objects.list(bucket=primary, prefix="db/", versions=True).execute()
    objects.list(bucket=primary, delimiter="/").execute()
    objects.list(bucket=primary, maxResults=1).execute()
    objects.patch(bucket=primary, object="db/b.sql.gz", body={"metadata": {"k2": "v2"}}).execute()

    rewrite = {
        "sourceBucket": primary,
        "sourceObject": "db/b.sql.gz",
        "destinationBucket": dr,  # another location: several calls
        "destinationObject": "db/b.sql.gz",
        "body": {},
        "ifGenerationMatch": 0,
    }
    answer = objects.rewrite(**rewrite).execute()
    while not answer["done"]:
        answer = objects.rewrite(**rewrite, rewriteToken=answer["rewriteToken"]).execute()
    assert answer["resource"]["metadata"] == {"k": "v", "k2": "v2"}
    objects.copy(
        sourceBucket=primary,
        sourceObject="db/a.sql",
        destinationBucket=primary,
        destinationObject="copy.sql",
        body={},
    ).execute()
    objects.compose(
        destinationBucket=primary,
        destinationObject="ab",
        body={
            "sourceObjects": [{"name": "db/a.sql"}, {"name": "copy.sql"}],
            "destination": {"contentType": "text/plain"},
        },
    ).execute()
    objects.delete(bucket=primary, object="ab").execute()
    with pytest.raises(HttpError) as raised:
        objects.get(bucket=primary, object="ab").execute()
    assert raised.value.resp.status == 404

    checker = SchemaChecker("storage.v1")
    methods = {method for method, _, _ in recorded}
    assert methods >= set(SCHEMA_OF) | {"storage.objects.delete"}
    rewrites = [body for method, _, body in recorded if method == "storage.objects.rewrite"]
    assert len(rewrites) > 1 and "resource" in rewrites[-1]
    problems = [
        (method, uri, problem)
        for method, uri, body in recorded
        if method in SCHEMA_OF
        for problem in checker.errors(SCHEMA_OF[method], body)
    ]
    assert problems == []
    # The rewrite's finished object is an Object too.
    assert checker.errors("Object", rewrites[-1]["resource"]) == []


def test_error_bodies_carry_googles_shape(stand_in):
    api = discovery_client("storage.v1", stand_in.url)
    with pytest.raises(HttpError) as raised:
        api.objects().get(bucket="no-such-bucket", object="x").execute()
    assert raised.value.resp.status == 404
    assert raised.value.error_details == [
        {"domain": "global", "reason": "notFound", "message": "The specified bucket does not exist."}
    ]
