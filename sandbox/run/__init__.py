"""Cloud Run Admin API v2 stand-in (server.py), the ingress serving service and tag URLs (ingress.py),
and the demo app every revision runs as a real local process (app.py)."""

from sandbox.run.server import CloudRunStandIn

__all__ = ["CloudRunStandIn"]
