"""The sandbox's front door to Cloud Run services: one loopback port serving every service URL and tag URL.

`http://127.0.0.1:PORT/_run/<service>/...` splits requests across revisions by the traffic percentages;
`http://127.0.0.1:PORT/_run/<tag>---<service>/...` reaches the tagged revision only (the `---` form
is Cloud Run's own tag URL shape). The rest of the path is passed to the revision's instance.
"""

from __future__ import annotations

import http.client
import random
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from sandbox.http import LOOPBACK
from sandbox.run.instances import Instances
from sandbox.run.store import RunStore, is_ready


class Ingress:
    def __init__(self, store: RunStore, instances: Instances):
        self.store = store
        self.instances = instances
        self._server: ThreadingHTTPServer | None = None

    def url_for(self, service: str, tag: str = "") -> str:
        assert self._server is not None, "the ingress is not serving"
        host = f"{tag}---{service}" if tag else service
        return f"http://{LOOPBACK}:{self._server.server_address[1]}/_run/{host}"

    def pick(self, host: str) -> str | None:
        """The revision that answers a request to `host` (service or tag---service)."""
        tag, _, service = host.rpartition("---")
        with self.store.lock:
            record = self.store.services.get(service)
            if record is None:
                return None
            targets = [
                (rev, percent, t)
                for rev, percent, t in self.store.resolved(record)
                if rev in record.revisions and is_ready(record.revisions[rev])
            ]
        if tag:
            return next((rev for rev, _, t in targets if t == tag), None)
        weighted = [(rev, percent) for rev, percent, _ in targets if percent > 0]
        if not weighted:
            return None
        return random.choices([r for r, _ in weighted], weights=[p for _, p in weighted])[0]

    def serve(self) -> None:
        ingress = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_GET(self) -> None:  # noqa: N802 - stdlib name
                _, _, rest = self.path.partition("/_run/")
                host, _, path = rest.partition("/")
                revision = ingress.pick(host)
                instance = ingress.instances.get(revision) if revision else None
                status, body = 503, b'{"error": "no revision is serving this URL"}'
                if instance is not None:
                    try:
                        connection = http.client.HTTPConnection(LOOPBACK, instance.port, timeout=30)
                        connection.request("GET", "/" + path)
                        answer = connection.getresponse()
                        status, body = answer.status, answer.read()
                        connection.close()
                    except OSError:
                        status, body = 503, b'{"error": "the revision instance did not answer"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        server.daemon_threads = True
        self._server = server
        threading.Thread(target=server.serve_forever, name="sandbox-run-ingress", daemon=True).start()

    def shutdown(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
