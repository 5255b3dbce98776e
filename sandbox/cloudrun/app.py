"""The sandbox demo app: what a revision's "container image" becomes on this machine.

    python sandbox/cloudrun/app.py --port 0 --parent-pid 1234 --image sandbox/api:v2

Standard library only, and run by file path with `python -I -S` by the stand-in, so a revision starts in
tens of milliseconds (importing the `sandbox` package would pull in the Google client libraries).
`python -m sandbox.cloudrun.app --port 8080` works as well.

Its behaviour comes from the revision's container env vars, so a deploy can ask for a bad build:

- ``SANDBOX_READY=false``   never listens: the revision never becomes Ready (Cloud Run's default startup
                            probe is a TCP connect, so "not listening" is exactly "not ready");
- ``SANDBOX_HEALTHY=false`` ``/health`` answers 503 (everything else still works);
- ``SANDBOX_ERROR_RATE=0.3`` that fraction of requests other than ``/health`` answer 500. Deterministic:
                            request n (counted from 1) fails when floor(n*rate) > floor((n-1)*rate),
                            so any 10 consecutive requests hold exactly 3 errors, and a test can count;
- ``SANDBOX_LATENCY_MS=800`` every answer (``/health`` included) waits that long first.

A bad value (``SANDBOX_ERROR_RATE=lots``) makes the container exit with status 1 at startup, as a real
container that cannot parse its configuration would: the revision fails to become Ready.

With ``--port 0`` the app binds a free port and prints ``LISTENING <port>`` on stdout once it accepts
connections (or one line saying why it cannot start); the stand-in waits for that line instead of
racing for a port number. The app exits when its parent goes away (``--parent-pid``): a test run
that is killed must not leave revisions behind. PR_SET_PDEATHSIG is no use here: it fires when the
*thread* that forked exits, and the stand-in starts revisions from short-lived request threads.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Behaviour:
    """The SANDBOX_* env vars, parsed once at startup."""

    def __init__(self, env: dict[str, str]):
        self.ready = _flag(env, "SANDBOX_READY")
        self.healthy = _flag(env, "SANDBOX_HEALTHY")
        self.error_rate = float(env.get("SANDBOX_ERROR_RATE", "0") or 0)
        if not 0.0 <= self.error_rate <= 1.0:
            raise ValueError(f"SANDBOX_ERROR_RATE must be between 0 and 1, got {self.error_rate}")
        self.latency_s = int(env.get("SANDBOX_LATENCY_MS", "0") or 0) / 1000
        self._count = 0
        self._lock = threading.Lock()

    def next_fails(self) -> tuple[int, bool]:
        with self._lock:
            self._count += 1
            n = self._count
        return n, math.floor(n * self.error_rate + 1e-9) > math.floor((n - 1) * self.error_rate + 1e-9)


def _flag(env: dict[str, str], name: str) -> bool:
    value = env.get(name, "true").strip().lower()
    if value not in {"true", "false", "1", "0", "yes", "no"}:
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return value in {"true", "1", "yes"}


def make_handler(behaviour: Behaviour, identity: dict[str, str]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "sandbox-demo-app/1"

        def _answer(self) -> None:
            if behaviour.latency_s:
                time.sleep(behaviour.latency_s)
            path = self.path.split("?", 1)[0]
            if path == "/health":
                status = 200 if behaviour.healthy else 503
                body = {"status": "ok" if behaviour.healthy else "unhealthy", **identity}
            else:
                n, fails = behaviour.next_fails()
                status = 500 if fails else 200
                body = {**identity, "path": path, "method": self.command, "request": n}
                if fails:
                    body["error"] = "injected by SANDBOX_ERROR_RATE"
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _answer

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
            pass

    return Handler


def _exit_with_parent(parent_pid: int) -> None:
    # Re-parenting (to init or a subreaper) is how a child learns that its parent died.
    while os.getppid() == parent_pid:
        time.sleep(0.3)
    os._exit(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
    parser.add_argument("--parent-pid", type=int, default=0)
    parser.add_argument("--image", default=os.environ.get("SANDBOX_IMAGE", "sandbox/demo-app"))
    args = parser.parse_args(argv)
    if args.parent_pid:
        threading.Thread(target=_exit_with_parent, args=(args.parent_pid,), daemon=True).start()
    try:
        behaviour = Behaviour(dict(os.environ))
    except ValueError as exc:
        # On stdout, where the stand-in reads: it becomes the revision's failure message.
        print(f"bad configuration: {exc}", flush=True)
        return 1
    if not behaviour.ready:
        while True:  # a container that never listens on its port
            time.sleep(3600)
    identity = {
        "service": os.environ.get("K_SERVICE", ""),
        "revision": os.environ.get("K_REVISION", ""),
        "image": args.image,
    }
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(behaviour, identity))
    server.daemon_threads = True
    print(f"LISTENING {server.server_address[1]}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
