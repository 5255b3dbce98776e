"""Cloud Run Admin API v2 stand-in: each revision a real local process behind a local ingress.

run = CloudRunStandIn(startup_deadline_s=1.0)
url = run.serve()
run.seed_service("api", image="sandbox/api:v1")          # one Ready revision at 100%
services, revisions = run.clients()                      # the real GAPIC clients, REST transport
httpx.get(services.get_service(name=run.service_name("api")).uri + "/health")
run.shutdown()                                           # stops every revision process

The names are loaded lazily: `python -m sandbox.cloudrun.app` (a revision's process) must start in
milliseconds, without importing the Google client libraries the stand-in needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sandbox.cloudrun.control import RunClients
    from sandbox.cloudrun.server import CloudRunStandIn

__all__ = ["CloudRunStandIn", "RunClients"]


def __getattr__(name: str) -> Any:
    if name == "CloudRunStandIn":
        from sandbox.cloudrun.server import CloudRunStandIn

        return CloudRunStandIn
    if name == "RunClients":
        from sandbox.cloudrun.control import RunClients

        return RunClients
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
