"""The small HTTP core every sandbox stand-in is built on.

A stand-in (Cloud Storage, Cloud Run, Cloud SQL Admin, Slack) is a subclass of `StandIn` that declares
its API in one route table and keeps its state behind a store object, in the manner of
fsouza/fake-gcs-server. This module gives all of them the same things:

- a threaded HTTP/1.1 server bound to loopback only;
- Google-shaped JSON error bodies (`ApiError`);
- a request log and fault injection, reachable under `/_sandbox/...` apart from the API:

  ``GET    /_sandbox/requests``  every API request so far: method, path, query, status
  ``DELETE /_sandbox/requests``  forget them
  ``POST   /_sandbox/faults``    add a fault: ``{"method": "PATCH", "path": "regex", "status": 503,
                                 "times": 3, "latency_ms": 0, "message": "..."}``; ``times`` counts
                                 the calls it affects (default 1, -1 for all); ``status`` 0 with
                                 ``latency_ms`` only adds latency and lets the call through
  ``DELETE /_sandbox/faults``    remove all faults
  ``GET    /_sandbox/health``    ``{"ok": true}``
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

LOOPBACK = "127.0.0.1"

# gRPC-style status names, as Google's JSON error bodies carry them.
_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    412: "FAILED_PRECONDITION",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}

# Legacy `errors[].reason` values Google's JSON APIs use for each status.
_REASONS = {
    400: "invalid",
    401: "required",
    403: "forbidden",
    404: "notFound",
    409: "conflict",
    412: "conditionNotMet",
    429: "rateLimitExceeded",
    500: "backendError",
    503: "backendError",
}


class ApiError(Exception):
    """An error answer in Google's JSON shape: ``{"error": {"code", "message", "status", "errors"}}``."""

    def __init__(self, code: int, message: str, reason: str | None = None, status: str | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or _REASONS.get(code, "unknown")
        self.status = status or _STATUS_NAMES.get(code, "UNKNOWN")

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "code": self.code,
                "message": self.message,
                "status": self.status,
                "errors": [{"domain": "global", "reason": self.reason, "message": self.message}],
            }
        }


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    params: dict[str, str] = field(default_factory=dict)

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def json(self) -> dict[str, Any]:
        if not self.body:
            return {}
        try:
            value = json.loads(self.body)
        except ValueError as exc:
            raise ApiError(400, f"Invalid JSON payload received. {exc}", reason="parseError") from exc
        if not isinstance(value, dict):
            raise ApiError(400, "Invalid JSON payload received. Expected an object.", reason="parseError")
        return value


@dataclass
class Response:
    status: int = 200
    body: bytes | dict | list | None = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json; charset=UTF-8"

    def encoded(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body).encode()


Handler = Callable[[Request], Response | dict | list | None]


@dataclass
class Route:
    method: str
    # A regex with named groups, matched against the path as sent (still percent-encoded, so an
    # object name holding "/" as %2F stays one segment); the groups are decoded into Request.params.
    pattern: str
    handler: Handler

    def __post_init__(self) -> None:
        self.regex = re.compile(self.pattern + r"\Z")


@dataclass
class Fault:
    method: str | None
    path: re.Pattern[str]
    status: int
    times: int
    latency_ms: int
    message: str

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and bool(self.path.search(path))


class FaultBook:
    """Faults injected by tests: "the next N calls to this route answer 503", "add latency"."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(
        self,
        path: str = ".*",
        method: str | None = None,
        status: int = 503,
        times: int = 1,
        latency_ms: int = 0,
        message: str = "The service is currently unavailable (injected by the sandbox).",
    ) -> None:
        with self._lock:
            self._faults.append(Fault(method, re.compile(path), status, times, latency_ms, message))

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    if fault.times > 0:
                        fault.times -= 1
                        if fault.times == 0:
                            self._faults.remove(fault)
                    return fault
        return None


class StandIn:
    """Base of every stand-in: subclasses fill `routes()` and may override `error_body()`."""

    name = "stand-in"

    def __init__(self) -> None:
        self.faults = FaultBook()
        self.request_log: list[dict[str, Any]] = []
        self._log_lock = threading.Lock()
        self._routes = self.routes()
        self._server: ThreadingHTTPServer | None = None

    # -- what subclasses declare -------------------------------------------------------------
    def routes(self) -> list[Route]:
        raise NotImplementedError

    def control_routes(self) -> list[Route]:
        """Extra `/_sandbox/...` routes of one stand-in (e.g. "fail the next operation")."""
        return []

    def error_body(self, error: ApiError) -> dict[str, Any]:
        return error.body()

    # -- serving -----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._server is not None, f"{self.name} is not serving"
        return f"http://{LOOPBACK}:{self._server.server_address[1]}"

    def serve(self, port: int = 0) -> str:
        """Serve on loopback in a daemon thread; return the base URL."""
        standin = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # Headers and body go out in two writes; with Nagle on, the body waits for the
                # client's delayed ACK: ~40 ms per request on loopback.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                response = standin.dispatch(self.command, self.path, dict(self.headers.items()), body)
                payload = response.encoded() if self.command != "HEAD" else b""
                self.send_response(response.status)
                if response.body is not None:
                    self.send_header("Content-Type", response.content_type)
                for key, value in response.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if payload:
                    self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
                pass

        server = ThreadingHTTPServer((LOOPBACK, port), _Handler)
        server.daemon_threads = True
        self._server = server
        threading.Thread(target=server.serve_forever, name=f"sandbox-{self.name}", daemon=True).start()
        return self.url

    def shutdown(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # -- dispatch ----------------------------------------------------------------------------
    def dispatch(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> Response:
        split = urlsplit(raw_path)
        path = split.path
        query = parse_qs(split.query, keep_blank_values=True)
        request = Request(method, path, query, {k.lower(): v for k, v in headers.items()}, body)
        if path.startswith("/_sandbox/"):
            return self._run(request, self._control_table(), logged=False)
        fault = self.faults.take(method, path)
        if fault is not None:
            if fault.latency_ms:
                time.sleep(fault.latency_ms / 1000)
            if fault.status:
                response = Response(fault.status, self.error_body(ApiError(fault.status, fault.message)))
                self._log(request, response.status)
                return response
        return self._run(request, self._routes, logged=True)

    def _run(self, request: Request, table: list[Route], logged: bool) -> Response:
        try:
            response = self._route(request, table)
        except ApiError as error:
            response = Response(error.code, self.error_body(error))
        if logged:
            self._log(request, response.status)
        return response

    def _route(self, request: Request, table: list[Route]) -> Response:
        path_matched = False
        for route in table:
            match = route.regex.match(request.path)
            if not match:
                continue
            path_matched = True
            if route.method != request.method:
                continue
            request.params = {k: unquote(v) for k, v in match.groupdict().items() if v is not None}
            result = route.handler(request)
            return result if isinstance(result, Response) else Response(200, result)
        if path_matched:
            raise ApiError(405, f"Method {request.method} is not allowed on {request.path}.")
        raise ApiError(404, f"Not Found: {request.method} {request.path}", reason="notFound")

    def _log(self, request: Request, status: int) -> None:
        entry = {
            "time": time.time(),
            "method": request.method,
            "path": request.path,
            "query": {k: v[0] if len(v) == 1 else v for k, v in request.query.items()},
            "status": status,
        }
        with self._log_lock:
            self.request_log.append(entry)

    # -- control routes ----------------------------------------------------------------------
    def _control_table(self) -> list[Route]:
        return [
            Route("GET", "/_sandbox/health", lambda r: {"ok": True, "standin": self.name}),
            Route("GET", "/_sandbox/requests", lambda r: {"requests": list(self.request_log)}),
            Route("DELETE", "/_sandbox/requests", self._clear_log),
            Route("POST", "/_sandbox/faults", self._add_fault),
            Route("DELETE", "/_sandbox/faults", self._clear_faults),
            *self.control_routes(),
        ]

    def _clear_log(self, request: Request) -> dict:
        with self._log_lock:
            self.request_log.clear()
        return {"ok": True}

    def _add_fault(self, request: Request) -> dict:
        spec = request.json()
        allowed = {"path", "method", "status", "times", "latency_ms", "message"}
        unknown = set(spec) - allowed
        if unknown:
            raise ApiError(400, f"Unknown fault fields {sorted(unknown)}; allowed: {sorted(allowed)}")
        self.faults.add(**spec)
        return {"ok": True}

    def _clear_faults(self, request: Request) -> dict:
        self.faults.clear()
        return {"ok": True}
