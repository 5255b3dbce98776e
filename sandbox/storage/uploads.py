"""The wire side of uploads: multipart/related bodies, resumable sessions, and checksum checks.

What google-cloud-storage 3.17 sends:
- ``uploadType=multipart`` (small objects): ``multipart/related; boundary="..."`` with a JSON part
  (``name``, ``contentType``, ``metadata``, and the ``crc32c`` the client computed) and a media part.
- ``uploadType=resumable`` (``blob.chunk_size`` set, or large files): a POST with the JSON metadata
  and ``x-upload-content-type``/``x-upload-content-length`` headers, answered with a ``Location``
  holding ``upload_id``; then PUTs of chunks with ``Content-Range: bytes a-b/total`` (``/*`` while the
  size is unknown), each answered 308 with ``Range: bytes=0-<last byte kept>`` until the final one, which
  carries ``x-goog-hash: crc32c=...`` and gets 200 with the object. ``Content-Range: bytes */*`` asks
  how far an upload got (the client's recovery after a failed chunk).
A checksum the client sent that does not match the bytes is refused with 400, as GCS does, so a
corrupted upload never becomes an object.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any

from sandbox.http import ApiError
from sandbox.storage.preconditions import Preconditions
from sandbox.storage.resources import crc32c_b64, md5_b64

_BOUNDARY = re.compile(r'boundary=(?:"([^"]+)"|([^;\s]+))', re.IGNORECASE)
_CONTENT_RANGE = re.compile(r"bytes (?:(\d+)-(\d+)|\*)/(\d+|\*)")
_HASH = re.compile(r"\s*(crc32c|md5)=([A-Za-z0-9+/=]+)\s*")


def parse_multipart(content_type: str, body: bytes) -> tuple[dict[str, Any], bytes, str | None]:
    """(metadata, media, media content type) of a multipart/related upload body."""
    found = _BOUNDARY.search(content_type or "")
    if not content_type.lower().startswith("multipart/related") or found is None:
        raise ApiError(400, "Invalid multipart request: expected multipart/related with a boundary.")
    delimiter = b"--" + (found.group(1) or found.group(2)).encode()
    sections = body.split(delimiter)
    if len(sections) < 3 or not sections[-1].startswith(b"--"):
        raise ApiError(400, f"Invalid multipart request with {max(len(sections) - 2, 0)} mime parts.")
    parts = []
    for section in sections[1:-1]:
        # Line breaks are CRLF from the storage client and bare LF from googleapiclient's email
        # generator; GCS takes both. The break before a delimiter belongs to the delimiter.
        section = _strip_break(section, leading=True)
        crlf, lf = section.find(b"\r\n\r\n"), section.find(b"\n\n")
        if crlf >= 0 and (lf < 0 or crlf <= lf):
            head, content = section[:crlf], section[crlf + 4 :]
        elif lf >= 0:
            head, content = section[:lf], section[lf + 2 :]
        else:
            raise ApiError(400, "Invalid multipart request: a part has no headers/body separator.")
        headers = {}
        for line in head.decode("latin-1").splitlines():
            key, _, value = line.partition(":")
            if key.strip():
                headers[key.strip().lower()] = value.strip()
        parts.append((headers, _strip_break(content, leading=False)))
    if len(parts) != 2:
        raise ApiError(400, f"Invalid multipart request with {len(parts)} mime parts.")
    (_, metadata_bytes), (media_headers, media) = parts
    metadata = parse_json_object(metadata_bytes)
    return metadata, media, media_headers.get("content-type")


def _strip_break(data: bytes, leading: bool) -> bytes:
    for newline in (b"\r\n", b"\n"):
        if leading and data.startswith(newline):
            return data[len(newline) :]
        if not leading and data.endswith(newline):
            return data[: -len(newline)]
    return data


def parse_json_object(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw) if raw.strip() else {}
    except ValueError as exc:
        raise ApiError(400, f"Invalid JSON payload received. {exc}", reason="parseError") from exc
    if not isinstance(value, dict):
        raise ApiError(400, "Invalid JSON payload received. Expected an object.", reason="parseError")
    return value


def parse_goog_hash(header: str | None) -> dict[str, str]:
    """``x-goog-hash: crc32c=...,md5=...`` as {"crc32c": ..., "md5": ...}."""
    hashes: dict[str, str] = {}
    for item in (header or "").split(","):
        found = _HASH.fullmatch(item)
        if found:
            hashes[found.group(1)] = found.group(2)
    return hashes


def verify_hashes(data: bytes, crc32c: str | None, md5: str | None) -> None:
    if crc32c is not None:
        actual = crc32c_b64(data)
        if _normal(crc32c) != actual:
            raise ApiError(400, f'Provided CRC32C "{crc32c}" doesn\'t match calculated CRC32C "{actual}".')
    if md5 is not None:
        actual = md5_b64(data)
        if _normal(md5) != actual:
            raise ApiError(400, f'Provided MD5 hash "{md5}" doesn\'t match calculated MD5 hash "{actual}".')


def _normal(b64: str) -> str:
    try:
        return base64.b64encode(base64.b64decode(b64, validate=True)).decode()
    except ValueError:
        raise ApiError(400, f'Invalid checksum "{b64}": expected base64.') from None


@dataclass
class Session:
    upload_id: str
    bucket: str
    name: str
    fields: dict[str, Any]
    conditions: Preconditions
    crc32c: str | None = None
    md5: str | None = None
    total: int | None = None
    received: bytearray = field(default_factory=bytearray)
    result: dict[str, Any] | None = None  # the object, once the upload finished
    # One PUT at a time per session, so a resent last chunk cannot create the object twice.
    busy: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def complete(self) -> bool:
        return self.total is not None and len(self.received) == self.total

    def range_header(self) -> dict[str, str]:
        """308's Range: what was kept so far (no header at all before the first byte)."""
        return {"Range": f"bytes=0-{len(self.received) - 1}"} if self.received else {}


class ResumableUploads:
    """Open resumable sessions by upload_id."""

    def __init__(self) -> None:
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def start(self, **kwargs: Any) -> Session:
        session = Session(upload_id=secrets.token_urlsafe(24), **kwargs)
        with self._lock:
            self._sessions[session.upload_id] = session
        return session

    def get(self, upload_id: str | None) -> Session:
        with self._lock:
            session = self._sessions.get(upload_id or "")
        if session is None:
            raise ApiError(404, f"No such upload session: {upload_id}", reason="notFound")
        return session

    def cancel(self, upload_id: str | None) -> None:
        with self._lock:
            if self._sessions.pop(upload_id or "", None) is None:
                raise ApiError(404, f"No such upload session: {upload_id}", reason="notFound")

    def receive(self, session: Session, content_range: str | None, chunk: bytes) -> None:
        """Add one PUT's bytes to `session` (a resent overlap is skipped, a gap refused)."""
        if content_range is None:  # one PUT with the whole media
            content_range = f"bytes 0-{len(chunk) - 1}/{len(chunk)}" if chunk else "bytes */0"
        found = _CONTENT_RANGE.fullmatch(content_range.strip())
        if found is None:
            raise ApiError(400, f"Invalid Content-Range header: '{content_range}'.")
        first, last, total = found.groups()
        with self._lock:
            if first is not None:
                start, end = int(first), int(last)
                if end < start or len(chunk) != end - start + 1:
                    raise ApiError(
                        400, f"Content-Range {content_range} does not match the {len(chunk)} bytes sent."
                    )
                if start > len(session.received):
                    raise ApiError(
                        400,
                        f"Invalid request: the chunk starts at byte {start} but only "
                        f"{len(session.received)} bytes were received.",
                    )
                session.received += chunk[len(session.received) - start :]
            elif chunk:
                raise ApiError(
                    400, f"Content-Range {content_range} sends no bytes but the body has {len(chunk)}."
                )
            if total != "*":
                if session.total is not None and int(total) != session.total:
                    raise ApiError(400, f"The upload's size was {session.total}, not {total}.")
                session.total = int(total)
            if session.total is not None and len(session.received) > session.total:
                raise ApiError(
                    400, f"Received {len(session.received)} bytes, more than the {session.total} declared."
                )
