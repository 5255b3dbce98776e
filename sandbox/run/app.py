"""The sandbox demo app: what a "container image" becomes locally, one process per revision.

Its behaviour follows the revision's container env vars, so a deploy can ask for a bad build:
SANDBOX_HEALTHY=false (/health answers 503), SANDBOX_ERROR_RATE=0.3 (exactly that fraction of
requests answer 500, spread evenly), SANDBOX_LATENCY_MS=800 (added to every answer), SANDBOX_READY=false
(never listens, so the revision never becomes Ready). Stdlib only, so it starts in a blink.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def _watch_parent(parent: int) -> None:
    # Never outlive the stand-in that started us.
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)


def main() -> None:
    port = int(sys.argv[sys.argv.index("--port") + 1])
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()
    if os.environ.get("SANDBOX_READY", "true").lower() == "false":
        while True:
            time.sleep(60)
    healthy = os.environ.get("SANDBOX_HEALTHY", "true").lower() != "false"
    error_rate = float(os.environ.get("SANDBOX_ERROR_RATE", "0") or 0)
    latency = float(os.environ.get("SANDBOX_LATENCY_MS", "0") or 0) / 1000
    identity = {"revision": os.environ.get("K_REVISION", ""), "image": os.environ.get("SANDBOX_IMAGE", "")}
    counter = {"n": 0}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 - stdlib name
            if latency:
                time.sleep(latency)
            if self.path.startswith("/health"):
                status = 200 if healthy else 503
            else:
                with lock:
                    n = counter["n"] = counter["n"] + 1
                # The n-th request fails when it crosses a multiple of 1/error_rate: an exact rate.
                status = 500 if int(n * error_rate) > int((n - 1) * error_rate) else 200
            body = json.dumps({**identity, "status": status}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main()
