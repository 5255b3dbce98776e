"""HTTP probes against a service or a revision's tagged URL: health checks and soak-window probing."""

from __future__ import annotations

import time

import httpx
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.decisions.canary import Probe, Thresholds, Verdict, judge
from tasks.errors import CanaryFailed


@task(name="health-check", cache_policy=NO_CACHE)
def health_check(url: str, path: str, attempts: int, interval_s: float, what: str) -> int:
    """GET url+path until it answers 2xx; returns the attempts used. Raises CanaryFailed after `attempts`."""
    logger = get_run_logger()
    last = ""
    with httpx.Client(timeout=10) as client:
        for attempt in range(1, attempts + 1):
            try:
                response = client.get(url.rstrip("/") + path)
                if response.is_success:
                    return attempt
                last = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
            logger.info("health check %d/%d of %s: %s", attempt, attempts, what, last)
            if attempt < attempts:
                time.sleep(interval_s)
    raise CanaryFailed(f"{what} failed its health check {attempts} times at {url}{path} (last: {last})")


@task(name="probe-candidate", cache_policy=NO_CACHE)
def probe_candidate(url: str, window_s: float, interval_s: float, thresholds: Thresholds) -> Verdict:
    """Send requests to `url` for `window_s` and judge them; stop at the first sample that fails the window.

    A request that gets no answer counts as an error with the full timeout as its latency.
    """
    timeout_s = max(2 * thresholds.max_p95_latency_ms / 1000, 1.0)
    probes: list[Probe] = []
    deadline = time.monotonic() + window_s
    with httpx.Client(timeout=timeout_s) as client:
        while True:
            started = time.monotonic()
            try:
                status = client.get(url).status_code
                probes.append(
                    Probe(ok=status < 500, latency_ms=(time.monotonic() - started) * 1000, status=status)
                )
            except httpx.HTTPError:
                probes.append(Probe(ok=False, latency_ms=timeout_s * 1000))
            window_over = time.monotonic() >= deadline
            verdict = judge(probes, thresholds, window_over)
            if verdict.passed is not None:
                return verdict
            time.sleep(interval_s)
