"""The Cloud Run front end: one loopback port serving every service URL and tag URL.

    http://127.0.0.1:{port}/_run/{service}/health        → a revision picked by the traffic percents
    http://127.0.0.1:{port}/_run/{tag}---{service}/      → the tagged revision, always

The `/_run/{host}` prefix stands for the `https://{tag}---{service}-<hash>.a.run.app` host names that
cannot exist offline; the rest of the path and the query go to the revision's process unchanged. The
split is a weighted random choice per request, as Cloud Run's is. A URL whose revision has no running,
Ready process answers 503; an unknown service or tag 404. Being a `StandIn`, the ingress also has a
request log and fault injection under `/_sandbox/...` (a 503 burst on a service URL, added latency).
"""

from __future__ import annotations

import http.client
import random
from collections import deque
from collections.abc import Callable
from urllib.parse import urlencode

from sandbox.http import ApiError, Request, Response, Route, StandIn

HOST = r"/_run/(?P<host>[^/]+)(?P<rest>/.*)?"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "content-length"}
# The front end writes these itself.
OWN_HEADERS = {"content-type", "server", "date"}

# route(service, tag) → [(revision key, percent)] for a service URL, [(key, 100)] for a tag URL,
# [] when the tag or service does not exist; port(key) → the process port or None.
Router = Callable[[str, str], list[tuple[str, int]] | None]


class Ingress(StandIn):
    name = "cloudrun-ingress"

    def __init__(self, route: Router, port_of: Callable[[str], int | None], timeout_s: float = 60.0):
        self._route_to = route
        self._port_of = port_of
        self.timeout_s = timeout_s
        super().__init__()
        # Probes send thousands of requests: keep the newest only.
        self.request_log = deque(maxlen=5000)  # type: ignore[assignment]

    def routes(self) -> list[Route]:
        return [Route(method, HOST, self.proxy) for method in METHODS]

    def proxy(self, request: Request) -> Response:
        host = request.params["host"]
        tag, _, service = host.rpartition("---")
        targets = self._route_to(service, tag)
        if targets is None:
            raise ApiError(404, f"Service '{service}' does not exist.")
        if not targets and tag:
            raise ApiError(404, f"Tag '{tag}' does not exist on service '{service}'.")
        if not targets:
            raise ApiError(503, f"Service '{service}' has no Ready revision serving traffic yet.")
        keys = [key for key, _ in targets]
        key = (
            random.choices(keys, weights=[percent for _, percent in targets])[0] if len(keys) > 1 else keys[0]
        )
        port = self._port_of(key)
        if port is None:
            raise ApiError(
                503, f"Revision '{key.rsplit('/', 1)[-1]}' has no instance ready to serve this request."
            )
        rest = request.path[len("/_run/") + len(request.path.split("/")[2]) :] or "/"
        if request.query:
            rest += "?" + urlencode({k: v for k, v in request.query.items()}, doseq=True)
        headers = {k: v for k, v in request.headers.items() if k not in HOP_BY_HOP and k != "host"}
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=self.timeout_s)
        try:
            connection.request(request.method, rest, body=request.body or None, headers=headers)
            answer = connection.getresponse()
            body = answer.read()
        except (OSError, http.client.HTTPException) as exc:
            raise ApiError(503, f"The revision's instance did not answer: {exc}") from exc
        finally:
            connection.close()
        out_headers = {k: v for k, v in answer.getheaders() if k.lower() not in HOP_BY_HOP | OWN_HEADERS}
        return Response(
            answer.status,
            body,
            headers=out_headers,
            content_type=answer.getheader("Content-Type", "application/octet-stream"),
        )
