"""The storage stand-in over raw HTTP: error shapes, bad input, paging keys, headers and the resumable
protocol, i.e. what a client library hides but a flow's correctness still depends on."""

from __future__ import annotations

import base64
import json

import google_crc32c
import httpx
import pytest
from google.api_core import exceptions

from tests.sandbox.storage_support import FAST_RETRY, bucket_name, requests_to, running_stand_in


def crc32c(data: bytes) -> str:
    return base64.b64encode(google_crc32c.Checksum(data).digest()).decode()


@pytest.fixture(scope="module")
def stand_in():
    yield from running_stand_in()


@pytest.fixture(scope="module")
def http(stand_in):
    with httpx.Client(base_url=stand_in.url, timeout=10) as client:
        yield client


@pytest.fixture
def bucket(stand_in) -> str:
    name = bucket_name("wire")
    stand_in.store.create_bucket(name, location="europe-west1", versioning=True)
    return name


def multipart(metadata: dict, media: bytes, boundary: str = "b0und") -> tuple[bytes, dict]:
    body = (
        (
            f"--{boundary}\r\ncontent-type: application/json; charset=UTF-8\r\n\r\n{json.dumps(metadata)}\r\n"
            f"--{boundary}\r\ncontent-type: text/plain\r\n\r\n"
        ).encode()
        + media
        + f"\r\n--{boundary}--".encode()
    )
    return body, {"Content-Type": f'multipart/related; boundary="{boundary}"'}


def assert_error(response: httpx.Response, code: int, reason: str, message: str | None = None) -> dict:
    assert response.status_code == code, response.text
    error = response.json()["error"]
    assert set(error) == {"code", "message", "errors"}  # GCS's shape: no "status"
    assert error["code"] == code and error["errors"][0]["reason"] == reason
    assert error["errors"][0]["domain"] == "global"
    if message is not None:
        assert error["message"] == message
    return error


# -- errors -----------------------------------------------------------------------------------------
def test_not_found_bodies(http, bucket):
    assert_error(
        http.get(f"/storage/v1/b/{bucket}/o/db%2Fmissing"),
        404,
        "notFound",
        f"No such object: {bucket}/db/missing",
    )
    assert_error(
        http.get("/storage/v1/b/no-such-bucket"), 404, "notFound", "The specified bucket does not exist."
    )
    assert_error(http.get("/storage/v1/b/no-such-bucket/o"), 404, "notFound")
    assert_error(
        http.post("/upload/storage/v1/b/no-such-bucket/o?uploadType=media&name=x", content=b"x"),
        404,
        "notFound",
    )
    assert_error(http.get("/storage/v1/nothing/here"), 404, "notFound")


def test_bad_bucket_inserts(http):
    def insert(body, project="p1"):
        return http.post("/storage/v1/b", params={"project": project} if project else {}, content=body)

    assert_error(insert(b"{not json"), 400, "parseError")
    assert_error(insert(b"[1, 2]"), 400, "parseError")
    assert_error(insert(json.dumps({"name": "Bad_Name!"}).encode()), 400, "invalid")
    assert_error(insert(json.dumps({"name": "ab"}).encode()), 400, "invalid")
    assert_error(insert(json.dumps({"name": "goog-bucket"}).encode()), 400, "invalid")
    assert_error(insert(json.dumps({"name": "ok-name", "locaton": "EU"}).encode()), 400, "invalid")
    assert_error(insert(json.dumps({"name": "ok-name", "storageClass": "FAST"}).encode()), 400, "invalid")
    assert_error(insert(json.dumps({"name": "ok-name", "versioning": True}).encode()), 400, "invalid")
    assert_error(insert(json.dumps({"name": "ok-name"}).encode(), project=None), 400, "required")
    created = insert(json.dumps({"name": "ok-name", "location": "asia-east1"}).encode())
    assert created.status_code == 200 and created.json()["location"] == "ASIA-EAST1"
    assert_error(insert(json.dumps({"name": "ok-name"}).encode()), 409, "conflict")


def test_bad_uploads(http, bucket):
    upload = f"/upload/storage/v1/b/{bucket}/o"
    assert_error(
        http.post(upload, params={"uploadType": "chunky", "name": "x"}, content=b"x"), 400, "invalid"
    )
    assert_error(http.post(upload, params={"name": "x"}, content=b"x"), 400, "invalid")
    assert_error(http.post(f"/storage/v1/b/{bucket}/o", content=b"{}"), 400, "wrongUrlForUpload")
    assert_error(http.post(upload, params={"uploadType": "media"}, content=b"x"), 400, "required")
    body, headers = multipart({"name": "x", "crc32c": crc32c(b"other")}, b"data")
    error = assert_error(
        http.post(upload, params={"uploadType": "multipart"}, content=body, headers=headers), 400, "invalid"
    )
    assert "CRC32C" in error["message"]
    body, headers = multipart({"name": "x", "colour": "red"}, b"data")
    assert_error(
        http.post(upload, params={"uploadType": "multipart"}, content=body, headers=headers), 400, "invalid"
    )
    assert_error(
        http.post(upload, params={"uploadType": "multipart"}, content=b"junk", headers=headers),
        400,
        "invalid",
    )
    assert http.get(f"/storage/v1/b/{bucket}/o/x").status_code == 404  # nothing half-written


def test_multipart_and_media_uploads(http, bucket):
    upload = f"/upload/storage/v1/b/{bucket}/o"
    body, headers = multipart(
        {"name": "dir/m.txt", "metadata": {"a": "b"}, "crc32c": crc32c(b"data")}, b"data"
    )
    made = http.post(
        upload, params={"uploadType": "multipart", "ifGenerationMatch": "0"}, content=body, headers=headers
    )
    assert made.status_code == 200
    resource = made.json()
    assert (
        resource["name"] == "dir/m.txt"
        and resource["size"] == "4"
        and resource["contentType"] == "text/plain"
    )
    assert isinstance(resource["generation"], str) and resource["metageneration"] == "1"
    assert resource["mediaLink"].startswith(str(http.base_url))
    media = http.post(
        upload,
        params={"uploadType": "media", "name": "raw"},
        content=b"\x00\x01",
        headers={"Content-Type": "application/x-bin"},
    )
    assert media.json()["contentType"] == "application/x-bin" and media.json()["crc32c"] == crc32c(
        b"\x00\x01"
    )


def test_preconditions_over_http(http, bucket):
    upload = f"/upload/storage/v1/b/{bucket}/o"
    first = http.post(upload, params={"uploadType": "media", "name": "p"}, content=b"1").json()
    again = http.post(
        upload, params={"uploadType": "media", "name": "p", "ifGenerationMatch": "0"}, content=b"2"
    )
    assert_error(
        again, 412, "conditionNotMet", "At least one of the pre-conditions you specified did not hold."
    )
    assert_error(http.get(f"/storage/v1/b/{bucket}/o/p", params={"ifGenerationMatch": "abc"}), 400, "invalid")
    not_modified = http.get(
        f"/storage/v1/b/{bucket}/o/p", params={"ifGenerationNotMatch": first["generation"]}
    )
    assert not_modified.status_code == 304 and not_modified.content == b""
    assert http.get(f"/storage/v1/b/{bucket}/o/p").status_code == 200  # same connection still in step
    deleted = http.delete(f"/storage/v1/b/{bucket}/o/p", params={"ifMetagenerationMatch": "1"})
    assert deleted.status_code == 204 and deleted.content == b""


# -- listing ----------------------------------------------------------------------------------------
def test_next_page_token_is_absent_on_the_last_page(http, stand_in, bucket):
    for i in range(5):
        stand_in.store.write_object(bucket, f"o{i}", b"x")
    pages, token = [], None
    while True:
        params = {"maxResults": "2", **({"pageToken": token} if token else {})}
        page = http.get(f"/storage/v1/b/{bucket}/o", params=params).json()
        pages.append([item["name"] for item in page["items"]])
        token = page.get("nextPageToken")
        if "nextPageToken" not in page:
            break
        assert token  # never an empty string
    assert pages == [["o0", "o1"], ["o2", "o3"], ["o4"]]
    exact = http.get(f"/storage/v1/b/{bucket}/o", params={"maxResults": "5"}).json()
    assert len(exact["items"]) == 5 and "nextPageToken" not in exact
    empty = http.get(f"/storage/v1/b/{bucket}/o", params={"prefix": "zzz"}).json()
    assert empty == {"kind": "storage#objects"}
    assert_error(http.get(f"/storage/v1/b/{bucket}/o", params={"pageToken": "%%%"}), 400, "invalid")
    assert_error(http.get(f"/storage/v1/b/{bucket}/o", params={"matchGlob": "**.sql"}), 400, "invalid")


def test_versions_listing_takes_true_in_any_case(http, stand_in, bucket):
    stand_in.store.write_object(bucket, "v", b"1")
    stand_in.store.write_object(bucket, "v", b"2")
    for value in ("True", "true"):
        items = http.get(f"/storage/v1/b/{bucket}/o", params={"versions": value}).json()["items"]
        assert len(items) == 2 and "timeDeleted" in items[0] and "timeDeleted" not in items[1]
    assert len(http.get(f"/storage/v1/b/{bucket}/o", params={"versions": "false"}).json()["items"]) == 1


def test_fields_selects_a_partial_response(http, stand_in, bucket):
    stand_in.store.write_object(bucket, "f1", b"x")
    stand_in.store.write_object(bucket, "f2", b"x")
    page = http.get(
        f"/storage/v1/b/{bucket}/o", params={"fields": "items(name,size),nextPageToken", "maxResults": "1"}
    )
    assert page.json() == {
        "items": [{"name": "f1", "size": "1"}],
        "nextPageToken": page.json()["nextPageToken"],
    }
    assert http.get(f"/storage/v1/b/{bucket}/o/f1", params={"fields": "name"}).json() == {"name": "f1"}


# -- downloads --------------------------------------------------------------------------------------
def test_download_headers_and_ranges(http, stand_in, bucket):
    written = stand_in.store.write_object(bucket, "a b/ü.txt", b"0123456789", "text/plain")
    path = f"/download/storage/v1/b/{bucket}/o/a%20b%2F%C3%BC.txt"
    full = http.get(path, params={"alt": "media"})
    assert full.status_code == 200 and full.content == b"0123456789"
    assert full.headers["content-type"] == "text/plain"
    assert full.headers["x-goog-hash"] == f"crc32c={written['crc32c']},md5={written['md5Hash']}"
    assert full.headers["x-goog-generation"] == written["generation"]
    assert full.headers["x-goog-stored-content-length"] == "10"
    part = http.get(path, params={"alt": "media"}, headers={"Range": "bytes=3-5"})
    assert part.status_code == 206 and part.content == b"345"
    assert part.headers["content-range"] == "bytes 3-5/10"
    assert http.get(path, params={"alt": "media"}, headers={"Range": "bytes=-2"}).content == b"89"
    beyond = http.get(path, params={"alt": "media"}, headers={"Range": "bytes=20-"})
    assert beyond.status_code == 416 and beyond.headers["content-range"] == "bytes */10"
    json_path = f"/storage/v1/b/{bucket}/o/a%20b%2F%C3%BC.txt"
    assert http.get(json_path, params={"alt": "media"}).content == b"0123456789"
    assert http.get(path, params={"alt": "media", "generation": "1"}).status_code == 404


# -- resumable protocol -----------------------------------------------------------------------------
def test_resumable_session_step_by_step(http, bucket):
    data = bytes(range(256)) * 2048  # 512 KiB
    start = http.post(
        f"/upload/storage/v1/b/{bucket}/o",
        params={"uploadType": "resumable", "ifGenerationMatch": "0"},
        json={"name": "r.bin", "metadata": {"k": "v"}},
        headers={"x-upload-content-type": "application/x-r", "x-upload-content-length": str(len(data))},
    )
    assert start.status_code == 200 and "upload_id=" in start.headers["location"]
    session = start.headers["location"]
    status = http.put(session, headers={"Content-Range": "bytes */*"})
    assert status.status_code == 308 and "range" not in status.headers
    half = 256 * 1024
    first = http.put(session, content=data[:half], headers={"Content-Range": f"bytes 0-{half - 1}/*"})
    assert first.status_code == 308 and first.headers["range"] == f"bytes=0-{half - 1}"
    gap = http.put(session, content=b"x", headers={"Content-Range": f"bytes {half + 10}-{half + 10}/*"})
    assert_error(gap, 400, "invalid")
    wrong = http.put(
        session,
        content=data[half:],
        headers={
            "Content-Range": f"bytes {half}-{len(data) - 1}/{len(data)}",
            "x-goog-hash": f"crc32c={crc32c(b'no')}",
        },
    )
    assert_error(wrong, 400, "invalid")
    last = http.put(
        session,
        content=data[half:],
        headers={
            "Content-Range": f"bytes {half}-{len(data) - 1}/{len(data)}",
            "x-goog-hash": f"crc32c={crc32c(data)}",
        },
    )
    assert last.status_code == 200, last.text
    made = last.json()
    assert (made["size"], made["contentType"], made["metadata"]) == (
        str(len(data)),
        "application/x-r",
        {"k": "v"},
    )
    assert http.put(session, headers={"Content-Range": "bytes */*"}).json() == made  # finished stays finished
    assert_error(http.put(session.replace("upload_id=", "upload_id=nope"), content=b""), 404, "notFound")


# -- rewrite tokens ---------------------------------------------------------------------------------
def test_rewrite_token_round_trip_and_tampering(http, stand_in, bucket):
    other = bucket_name("wire-dr")
    stand_in.store.create_bucket(other, location="us-central1")
    stand_in.store.write_object(bucket, "src", b"payload")
    path = f"/storage/v1/b/{bucket}/o/src/rewriteTo/b/{other}/o/dst"
    first = http.post(path, params={"ifGenerationMatch": "0"}, json={}).json()
    assert first["kind"] == "storage#rewriteResponse" and first["done"] is False
    assert first["objectSize"] == "7" and "resource" not in first
    assert_error(http.post(path, params={"rewriteToken": "garbage"}, json={}), 400, "invalid")
    elsewhere = f"/storage/v1/b/{bucket}/o/src/rewriteTo/b/{other}/o/elsewhere"
    assert_error(
        http.post(elsewhere, params={"rewriteToken": first["rewriteToken"]}, json={}), 400, "invalid"
    )
    assert_error(http.post(path, params={"maxBytesRewrittenPerCall": "1000"}, json={}), 400, "invalid")
    done = http.post(
        path, params={"ifGenerationMatch": "0", "rewriteToken": first["rewriteToken"]}, json={}
    ).json()
    assert done["done"] is True and done["totalBytesRewritten"] == "7" and "rewriteToken" not in done
    assert done["resource"]["bucket"] == other and done["resource"]["crc32c"] == crc32c(b"payload")


# -- control routes ---------------------------------------------------------------------------------
def test_fault_injection_then_client_retry(http, stand_in, bucket):
    stand_in.store.write_object(bucket, "f", b"x")
    path = f"/storage/v1/b/{bucket}/o"
    assert http.post("/_sandbox/faults", json={"path": f"^{path}$", "status": 503, "times": 2}).json() == {
        "ok": True
    }
    assert [b.name for b in stand_in.client().list_blobs(bucket, retry=FAST_RETRY)] == ["f"]
    assert [e["status"] for e in requests_to(stand_in, "GET", path)] == [503, 503, 200]
    injected = [e for e in http.get("/_sandbox/requests").json()["requests"] if e["path"] == path]
    assert len(injected) == 3
    http.post("/_sandbox/faults", json={"path": f"^{path}$", "status": 503, "times": -1})
    with pytest.raises((exceptions.ServiceUnavailable, exceptions.RetryError)):
        list(stand_in.client().list_blobs(bucket, retry=None))
    http.delete("/_sandbox/faults")
    assert len(list(stand_in.client().list_blobs(bucket))) == 1
