"""Slack stand-in: the Web API's chat.postMessage and incoming webhooks, recording every message.

Tests read what was posted from ``GET /_sandbox/slack/messages`` and make Slack fail with the common
fault routes (``POST /_sandbox/faults {"status": 500, "times": 3}``); error answers then carry
Slack's shape (``{"ok": false, "error": ...}``), not Google's.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any
from urllib.parse import parse_qs

from sandbox.http import ApiError, Request, Response, Route, StandIn

_SLACK_ERRORS = {429: "ratelimited", 500: "internal_error", 503: "service_unavailable"}


class SlackStandIn(StandIn):
    name = "slack"

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        super().__init__()

    def routes(self) -> list[Route]:
        return [
            Route("POST", r"/api/chat\.postMessage", self.post_message),
            Route("POST", r"/services/(?P<hook>.+)", self.webhook),
        ]

    def control_routes(self) -> list[Route]:
        return [
            Route("GET", "/_sandbox/slack/messages", lambda r: {"messages": list(self.messages)}),
            Route("DELETE", "/_sandbox/slack/messages", self._clear),
        ]

    def error_body(self, error: ApiError) -> dict[str, Any]:
        return {"ok": False, "error": _SLACK_ERRORS.get(error.code, "fatal_error")}

    def _record(self, via: str, payload: dict[str, Any]) -> dict[str, Any]:
        message = {"via": via, "time": time.time(), **payload}
        with self._lock:
            self.messages.append(message)
        return message

    def post_message(self, request: Request) -> Response:
        if request.headers.get("content-type", "").startswith("application/json"):
            payload = json.loads(request.body or b"{}")
        else:
            payload = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
        if not request.headers.get("authorization", "").startswith("Bearer "):
            return Response(200, {"ok": False, "error": "not_authed"})
        if not payload.get("channel"):
            return Response(200, {"ok": False, "error": "channel_not_found"})
        if not payload.get("text") and not payload.get("blocks"):
            return Response(200, {"ok": False, "error": "no_text"})
        message = self._record("chat.postMessage", payload)
        ts = f"{message['time']:.6f}"
        return Response(
            200,
            {
                "ok": True,
                "channel": payload["channel"],
                "ts": ts,
                "message": {"text": payload.get("text"), "ts": ts},
            },
        )

    def webhook(self, request: Request) -> Response:
        try:
            payload = json.loads(request.body or b"{}")
        except ValueError:
            return Response(400, b"invalid_payload", content_type="text/plain")
        if not payload.get("text") and not payload.get("blocks"):
            return Response(400, b"no_text", content_type="text/plain")
        self._record("webhook", {"hook": request.params["hook"], **payload})
        return Response(200, b"ok", content_type="text/plain")

    def _clear(self, request: Request) -> dict:
        with self._lock:
            self.messages.clear()
        return {"ok": True}
