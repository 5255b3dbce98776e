"""Shared pieces of the storage stand-in's tests: one stand-in per module, fresh bucket names, the log."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

from google.cloud.storage.retry import DEFAULT_RETRY

from sandbox.storage import StorageStandIn

PROJECT = "contract-project"
REGION = "EUROPE-WEST1"
DR_REGION = "EUROPE-NORTH1"
# The client's own retry policy (same predicate: 429/500/502/503/504, connection errors), with
# delays short enough for a test; the default waits up to 1 s, then 2 s, ...
FAST_RETRY = DEFAULT_RETRY.with_delay(initial=0.01, maximum=0.05)

_names = itertools.count(1)


def running_stand_in(**kwargs: Any) -> Iterator[StorageStandIn]:
    """Body of each module's `stand_in` fixture."""
    stand_in = StorageStandIn(project=PROJECT, **kwargs)
    stand_in.serve()
    yield stand_in
    stand_in.shutdown()


def bucket_name(stem: str = "bkt") -> str:
    return f"{stem}-{next(_names)}"


def requests_to(stand_in: StorageStandIn, method: str, path: str) -> list[dict[str, Any]]:
    """Logged API requests with exactly this method and (still percent-encoded) path."""
    return [e for e in stand_in.request_log if e["method"] == method and e["path"] == path]
