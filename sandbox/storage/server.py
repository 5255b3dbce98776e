"""The Cloud Storage JSON API stand-in: the one route table and its handlers.

Driven by the real google-cloud-storage client (``StorageStandIn().client()``) and by Google's own
discovery client. State lives in the store (store.py); uploads' wire format in uploads.py; copies in
copies.py; listings in listing.py. Paths come in three prefixes, as on GCS: ``/storage/v1`` (JSON),
``/upload/storage/v1`` (and ``/resumable/upload/...``, which the discovery client uses) for media in,
``/download/storage/v1`` for media out.

Error bodies are GCS's: ``{"error": {"code", "message", "errors": [{"domain", "reason", "message"}]}}``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from sandbox.http import ApiError, Request, Response, Route, StandIn
from sandbox.storage import fields as partial
from sandbox.storage.buckets import BucketHandlers
from sandbox.storage.copies import MIB, Copier
from sandbox.storage.listing import MAX_RESULTS, ListQuery
from sandbox.storage.preconditions import Preconditions, query_int
from sandbox.storage.resources import check_object_name, writable_object_fields
from sandbox.storage.store import Store
from sandbox.storage.uploads import (
    ResumableUploads,
    parse_goog_hash,
    parse_json_object,
    parse_multipart,
    verify_hashes,
)

API = r"/storage/v1"
BUCKET = API + r"/b/(?P<bucket>[^/]+)"
OBJECT = BUCKET + r"/o/(?P<object>[^/]+)"
DESTINATION = r"/b/(?P<dst_bucket>[^/]+)/o/(?P<dst_object>[^/]+)"
UPLOAD = r"(?:/resumable)?/upload/storage/v1/b/(?P<bucket>[^/]+)/o"
DOWNLOAD = r"/download/storage/v1/b/(?P<bucket>[^/]+)/o/(?P<object>[^/]+)"
NOT_AN_UPLOAD = (
    "Upload requests must include an uploadType URL parameter and a URL path beginning with /upload/"
)


def storage_client(url: str, project: str = "sandbox-project") -> storage.Client:
    """The real google.cloud.storage client aimed at a stand-in at `url` (anonymous, no env vars)."""
    return storage.Client(
        project=project, credentials=AnonymousCredentials(), client_options={"api_endpoint": url}
    )


class StorageStandIn(BucketHandlers, StandIn):
    """Cloud Storage JSON API v1 on loopback.

    `project`: the project of buckets made through the Python API (`store.create_bucket`).
    `rewrite_bytes_per_call`: how many bytes one objects.rewrite call copies at most (default 1 MiB);
    see copies.py for when a rewrite takes several calls.
    """

    name = "storage"

    def __init__(self, project: str = "sandbox-project", rewrite_bytes_per_call: int = MIB):
        self.project = project
        self.store = Store(project)
        self.copier = Copier(self.store, rewrite_bytes_per_call)
        self.uploads = ResumableUploads()
        super().__init__()

    def client(self, project: str | None = None) -> storage.Client:
        return storage_client(self.url, project or self.project)

    def serve(self, port: int = 0) -> str:
        url = super().serve(port)
        self.store.base_url = url
        return url

    def routes(self) -> list[Route]:
        json = self._json
        return [
            Route("GET", API + r"/b", json(self.list_buckets)),
            Route("POST", API + r"/b", json(self.insert_bucket)),
            Route("GET", BUCKET, json(self.get_bucket)),
            Route("PATCH", BUCKET, json(self.patch_bucket)),
            Route("PUT", BUCKET, json(self.patch_bucket)),
            Route("DELETE", BUCKET, self.delete_bucket),
            Route("GET", BUCKET + r"/o", json(self.list_objects)),
            Route("POST", BUCKET + r"/o", self.not_an_upload),
            Route("GET", OBJECT, json(self.get_object)),
            Route("PATCH", OBJECT, json(self.patch_object)),
            Route("PUT", OBJECT, json(self.update_object)),
            Route("DELETE", OBJECT, self.delete_object),
            Route("POST", OBJECT + r"/rewriteTo" + DESTINATION, json(self.rewrite)),
            Route("POST", OBJECT + r"/copyTo" + DESTINATION, json(self.copy)),
            Route("POST", OBJECT + r"/compose", json(self.compose)),
            Route("POST", UPLOAD, json(self.upload)),
            Route("PUT", UPLOAD, json(self.upload_chunk)),
            Route("DELETE", UPLOAD, self.cancel_upload),
            Route("GET", DOWNLOAD, self.download),
        ]

    # -- what every answer shares ------------------------------------------------------------------
    def error_body(self, error: ApiError) -> dict[str, Any]:
        # GCS's JSON API sends no "status" string, only code, message and the legacy errors[].
        body = error.body()
        del body["error"]["status"]
        return body

    def dispatch(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> Response:
        response = super().dispatch(method, raw_path, headers, body)
        if response.status == 304:
            # A 304 never has a body: the client would not read one, and the bytes left on the kept-alive
            # connection would be taken as the start of the next answer.
            response.body = None
        return response

    def _json(self, handler: Callable[[Request], Any]) -> Callable[[Request], Any]:
        """Apply the ``fields`` partial-response selection to a JSON answer."""

        def answer(request: Request) -> Any:
            result = handler(request)
            spec = request.arg("fields")
            if not spec or request.arg("alt") == "media":
                return result
            if isinstance(result, Response):
                if isinstance(result.body, dict):
                    result.body = partial.select(result.body, partial.parse(spec))
                return result
            return partial.select(result, partial.parse(spec)) if isinstance(result, dict) else result

        return answer

    # -- objects -----------------------------------------------------------------------------------
    def not_an_upload(self, request: Request) -> Response:
        self.store.bucket(request.params["bucket"])
        raise ApiError(400, NOT_AN_UPLOAD, reason="wrongUrlForUpload")

    def list_objects(self, request: Request) -> dict:
        unsupported = [p for p in ("matchGlob", "includeFoldersAsPrefixes") if request.arg(p)]
        if (request.arg("softDeleted") or "").lower() == "true":
            unsupported.append("softDeleted")
        if unsupported:
            raise ApiError(400, f"The sandbox does not implement {', '.join(unsupported)} on objects.list.")
        max_results = query_int(request.query, "maxResults")
        if max_results is not None and max_results < 0:
            raise ApiError(400, "Invalid argument: maxResults must be a positive integer.")
        query = ListQuery(
            prefix=request.arg("prefix", "") or "",
            delimiter=request.arg("delimiter", "") or "",
            # The client sends "True"; the discovery client and curl send "true".
            versions=(request.arg("versions") or "").lower() == "true",
            start_offset=request.arg("startOffset", "") or "",
            end_offset=request.arg("endOffset", "") or "",
            include_trailing_delimiter=(request.arg("includeTrailingDelimiter") or "").lower() == "true",
            max_results=max_results or MAX_RESULTS,
            page_token=request.arg("pageToken", "") or "",
        )
        return self.store.list_objects(request.params["bucket"], query)

    def get_object(self, request: Request) -> Any:
        if request.arg("alt") == "media":
            return self.download(request)
        version = self.store.get_object(
            request.params["bucket"],
            request.params["object"],
            query_int(request.query, "generation"),
            Preconditions.from_query(request.query),
        )
        return self.store.render(version)

    def patch_object(self, request: Request, replace: bool = False) -> dict:
        version = self.store.patch_object(
            request.params["bucket"],
            request.params["object"],
            query_int(request.query, "generation"),
            writable_object_fields(request.json(), patch=not replace),
            Preconditions.from_query(request.query),
            replace=replace,
        )
        return self.store.render(version)

    def update_object(self, request: Request) -> dict:
        return self.patch_object(request, replace=True)

    def delete_object(self, request: Request) -> Response:
        self.store.delete_object(
            request.params["bucket"],
            request.params["object"],
            query_int(request.query, "generation"),
            Preconditions.from_query(request.query),
        )
        return Response(204)

    def rewrite(self, request: Request) -> dict:
        return self.copier.rewrite(
            (request.params["bucket"], request.params["object"]),
            (request.params["dst_bucket"], request.params["dst_object"]),
            query_int(request.query, "sourceGeneration"),
            Preconditions.from_query(request.query, source=True),
            Preconditions.from_query(request.query),
            request.json(),
            request.arg("rewriteToken") or None,
            query_int(request.query, "maxBytesRewrittenPerCall"),
        )

    def copy(self, request: Request) -> dict:
        return self.copier.copy(
            (request.params["bucket"], request.params["object"]),
            (request.params["dst_bucket"], request.params["dst_object"]),
            query_int(request.query, "sourceGeneration"),
            Preconditions.from_query(request.query, source=True),
            Preconditions.from_query(request.query),
            request.json(),
        )

    def compose(self, request: Request) -> dict:
        check_object_name(request.params["object"])
        return self.copier.compose(
            request.params["bucket"],
            request.params["object"],
            request.json(),
            Preconditions.from_query(request.query),
        )

    # -- media in ----------------------------------------------------------------------------------
    def upload(self, request: Request) -> Any:
        bucket = request.params["bucket"]
        self.store.bucket(bucket)
        kind = request.arg("uploadType")
        conditions = Preconditions.from_query(request.query)
        if kind == "media":
            name = request.arg("name")
            data = request.body
            fields = {"contentType": request.headers.get("content-type") or "application/octet-stream"}
            hashes = parse_goog_hash(request.headers.get("x-goog-hash"))
            crc32c, md5 = hashes.get("crc32c"), hashes.get("md5")
        elif kind == "multipart":
            metadata, data, media_type = parse_multipart(
                request.headers.get("content-type", ""), request.body
            )
            name = metadata.get("name") or request.arg("name")
            fields = writable_object_fields(metadata)
            fields.setdefault("contentType", media_type or "application/octet-stream")
            crc32c, md5 = metadata.get("crc32c"), metadata.get("md5Hash")
        elif kind == "resumable":
            return self._start_resumable(request, bucket, conditions)
        else:
            raise ApiError(400, f"Invalid upload type '{kind}': expected media, multipart or resumable.")
        if request.arg("contentEncoding"):
            fields["contentEncoding"] = request.arg("contentEncoding")
        check_object_name(name)
        verify_hashes(data, crc32c, md5)
        return self.store.render(self.store.insert_object(bucket, name, data, fields, conditions))

    def _start_resumable(self, request: Request, bucket: str, conditions: Preconditions) -> Response:
        metadata = parse_json_object(request.body)
        name = check_object_name(metadata.get("name") or request.arg("name"))
        fields = writable_object_fields(metadata)
        fields.setdefault(
            "contentType", request.headers.get("x-upload-content-type") or "application/octet-stream"
        )
        if request.arg("contentEncoding"):
            fields["contentEncoding"] = request.arg("contentEncoding")
        self.store.check_live(bucket, name, conditions)  # fail early; checked again when it completes
        declared = request.headers.get("x-upload-content-length")
        session = self.uploads.start(
            bucket=bucket,
            name=name,
            fields=fields,
            conditions=conditions,
            crc32c=metadata.get("crc32c"),
            md5=metadata.get("md5Hash"),
            total=int(declared) if declared and declared.isdigit() else None,
        )
        location = (
            f"{self.store.base_url}/upload/storage/v1/b/{bucket}/o?uploadType=resumable"
            f"&name={quote(name, safe='')}&upload_id={session.upload_id}"
        )
        return Response(200, None, {"Location": location, "X-GUploader-UploadID": session.upload_id})

    def upload_chunk(self, request: Request) -> Any:
        session = self.uploads.get(request.arg("upload_id"))
        if session.bucket != request.params["bucket"]:
            raise ApiError(404, f"No such upload session: {session.upload_id}", reason="notFound")
        with session.busy:
            if session.result is not None:
                return session.result  # a resent last chunk, or a status query after the end
            self.uploads.receive(session, request.headers.get("content-range"), request.body)
            if not session.complete:
                return Response(308, None, session.range_header())
            data = bytes(session.received)
            hashes = parse_goog_hash(request.headers.get("x-goog-hash"))
            verify_hashes(data, hashes.get("crc32c", session.crc32c), hashes.get("md5", session.md5))
            version = self.store.insert_object(
                session.bucket, session.name, data, session.fields, session.conditions
            )
            session.result = self.store.render(version)
            return session.result

    def cancel_upload(self, request: Request) -> Response:
        self.uploads.cancel(request.arg("upload_id"))
        return Response(499)  # what GCS answers to a cancelled session

    # -- media out ---------------------------------------------------------------------------------
    def download(self, request: Request) -> Response:
        version = self.store.get_object(
            request.params["bucket"],
            request.params["object"],
            query_int(request.query, "generation"),
            Preconditions.from_query(request.query),
        )
        size = version.size
        hashes = f"crc32c={version.crc32c}" + (f",md5={version.md5_hash}" if version.md5_hash else "")
        headers = {
            "X-Goog-Hash": hashes,
            "X-Goog-Generation": str(version.generation),
            "X-Goog-Metageneration": str(version.metageneration),
            "X-Goog-Stored-Content-Length": str(size),
            "X-Goog-Stored-Content-Encoding": version.fields.get("contentEncoding") or "identity",
            "X-Goog-Storage-Class": version.storage_class,
            "ETag": version.etag,
            "Accept-Ranges": "bytes",
        }
        wanted = _byte_range(request.headers.get("range"), size)
        if wanted is None:
            return Response(200, version.data, headers, content_type=version.content_type)
        if wanted == ():
            error = ApiError(
                416, "The requested range cannot be satisfied.", reason="requestedRangeNotSatisfiable"
            )
            return Response(416, self.error_body(error), {"Content-Range": f"bytes */{size}"})
        start, end = wanted
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        return Response(206, version.data[start : end + 1], headers, content_type=version.content_type)


def _byte_range(header: str | None, size: int) -> tuple[int, int] | tuple[()] | None:
    """(start, end) of a ``Range: bytes=...`` header; () when unsatisfiable; None to send it all."""
    if not header or not header.strip().lower().startswith("bytes=") or "," in header:
        return None
    first, _, last = header.strip()[6:].partition("-")
    try:
        if not first:  # bytes=-N: the last N bytes
            count = int(last)
            return (max(size - count, 0), size - 1) if count > 0 and size > 0 else ()
        start = int(first)
        end = min(int(last), size - 1) if last else size - 1
    except ValueError:
        return None
    if start >= size or end < start:
        return ()
    return start, end
