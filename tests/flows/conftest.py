"""The sandbox for flow tests: every stand-in started in-process once per session, its environment
block saved to the session's Prefect server, and helpers to read the stand-ins' state over HTTP."""

from __future__ import annotations

import itertools

import httpx
import pytest

from blocks import CanaryPolicy
from cli.sandbox_env import sandbox_environment
from sandbox.core import Sandbox
from tests.conftest import world_readable_tmpdir

# Sandbox-sized canary: enough probe samples per step in well under a second.
TEST_CANARY = CanaryPolicy(
    steps=[10, 50, 100],
    soak_seconds=0.6,
    probe_interval_seconds=0.01,
    min_samples=20,
    health_attempts=3,
    max_p95_latency_ms=200,
    health_interval_seconds=0.2,
    ready_deadline_seconds=15,
    approval_timeout_seconds=20,
    lock_timeout_seconds=60,
)


@pytest.fixture(scope="session")
def sandbox(prefect_server):
    sb = Sandbox(world_readable_tmpdir("opsflows-sandbox-") / "state", run_startup_deadline_s=2.0)
    description = sb.start()
    environment = sandbox_environment(description)
    environment.canary = TEST_CANARY
    environment.save("sandbox", overwrite=True)
    sb.environment = environment
    yield sb
    sb.stop()


_service_numbers = itertools.count(1)


@pytest.fixture
def service(sandbox):
    """A fresh Cloud Run service of its own (one Ready revision at 100%), added to the environment."""
    name = f"svc{next(_service_numbers)}"
    sandbox.run.seed_service(name, image=f"sandbox/{name}:v1")
    sandbox.environment.cloud_run.services.append(name)
    sandbox.environment.save("sandbox", overwrite=True)
    return name


@pytest.fixture(autouse=True)
def _clean_faults(request):
    yield
    if "sandbox" in request.fixturenames:
        sb = request.getfixturevalue("sandbox")
        for standin in (sb.run, sb.storage, sb.slack, sb.sql):
            httpx.delete(standin.url + "/_sandbox/faults")
