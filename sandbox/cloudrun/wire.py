"""The run.v2 JSON wire format: request bodies in, response bodies out, errors in Google's shape.

Bodies are parsed with the API's own protobuf messages (google-cloud-run), so the stand-in accepts what
Google accepts: camelCase or snake_case names, enums as ints (the GAPIC REST client sends traffic
`"type": 2`) or names (the discovery client), int64 as strings or numbers; unknown fields and unknown
enum names are a 400. Handlers then see plain dicts with enum NAMES.

Every response goes back through the same messages: `$alt=json;enum-encoding=int` (sent by the GAPIC
clients) gets enums as ints, anything else gets names, which a discovery-based client needs. The round
trip also drops default values (false, 0, "") as Google's JSON does, and proves the body is one the
client can read: a misspelt field fails loudly here instead of being dropped by the client.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from google.protobuf import json_format

from sandbox.http import ApiError, Request

BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"


class FieldError(ApiError):
    """A 400 about one field: Google adds a BadRequest detail naming the field."""

    def __init__(self, field: str, message: str, status: str = "INVALID_ARGUMENT"):
        super().__init__(400, f"{field}: {message}", status=status)
        self.field = field
        self.description = message


def error_body(error: ApiError) -> dict[str, Any]:
    """Cloud Run's (AIP-193) error shape; unlike the older JSON APIs it has no `errors[]`."""
    body: dict[str, Any] = {"code": error.code, "message": error.message, "status": error.status}
    if isinstance(error, FieldError):
        violation = {"field": error.field, "description": error.description}
        body["details"] = [{"@type": BAD_REQUEST, "fieldViolations": [violation]}]
    return {"error": body}


def _message(message_class: Any) -> Any:
    # proto-plus classes (run_v2.Service) wrap a protobuf class; longrunning's are plain protobuf.
    return message_class.pb()() if hasattr(message_class, "pb") else message_class()


def parse_body(request: Request, message_class: Any, where: str) -> dict[str, Any]:
    text = request.body.decode("utf-8", errors="replace") if request.body else "{}"
    try:
        message = json_format.Parse(text, _message(message_class))
    except json_format.ParseError as exc:
        raise ApiError(400, f"Invalid JSON payload received at '{where}'. {exc}") from exc
    return json_format.MessageToDict(message)


def emit(body: dict[str, Any], message_class: Any, request: Request | None) -> dict[str, Any]:
    """`body` (enum names) as the client asked for it: enum ints with `enum-encoding=int`, else names."""
    ints = request is not None and "enum-encoding=int" in (request.arg("$alt") or "")
    message = json_format.ParseDict(body, _message(message_class))
    return json_format.MessageToDict(message, use_integers_for_enums=ints)


def timestamp(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond:06d}Z"


def clean(resource: dict[str, Any]) -> dict[str, Any]:
    """Without unset fields: Google leaves them out, and the protobuf parser refuses nulls."""
    return {key: value for key, value in resource.items() if value not in (None, "", [], {})}


def query_flag(request: Request, name: str) -> bool:
    value = (request.arg(name) or "false").lower()
    if value not in {"true", "false", "1", "0"}:
        raise ApiError(400, f"Invalid value at '{name}' (TYPE_BOOL), \"{request.arg(name)}\"")
    return value in {"true", "1"}


def page(items: list[Any], request: Request, key: str, default_size: int = 100) -> dict[str, Any]:
    """One page of `items`; `nextPageToken` only when more follow (an offset, opaque to clients)."""
    try:
        size = int(request.arg("pageSize") or default_size)
        start = int(request.arg("pageToken") or 0)
    except ValueError as exc:
        raise ApiError(400, f"Invalid pageSize or pageToken: {exc}") from exc
    if size <= 0:
        size = default_size
    if start < 0 or start > len(items):
        raise ApiError(400, "Invalid pageToken.")
    body: dict[str, Any] = {key: items[start : start + size]}
    if start + size < len(items):
        body["nextPageToken"] = str(start + size)
    return body
