"""Per-service locks: a Prefect global concurrency limit of 1 per environment and service.

`strict=True` always: with Prefect's default, a limit that does not exist means no lock at all, with
only a log line to say so. A holder that dies keeps the slot until its lease runs out (60 s, the
shortest the server accepts); a live holder renews it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from prefect import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists

LEASE_SECONDS = 60


def service_lock_name(environment: str, service: str) -> str:
    return f"opsflows-service-{environment}-{service}"


def ensure_lock(name: str) -> None:
    with get_client(sync_client=True) as client:
        try:
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
        except ObjectAlreadyExists:
            pass


@contextmanager
def service_lock(environment: str, service: str, timeout_s: float) -> Iterator[None]:
    """Hold the service's lock; waits up to `timeout_s` for a deploy or rollback already running."""
    name = service_lock_name(environment, service)
    ensure_lock(name)
    with concurrency(name, occupy=1, strict=True, timeout_seconds=timeout_s, lease_duration=LEASE_SECONDS):
        yield
