"""Test-wide fixtures and guards.

- No test can reach real credentials or a real Prefect server by accident: the environment is stripped
  of Google, Slack and Prefect API settings before anything imports Prefect.
- One real Prefect server (the test harness) per session; one PostgreSQL cluster for the audit store;
  the sandbox stand-ins, started in-process, once per session.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

for _key in list(os.environ):
    if _key.startswith(
        ("GOOGLE_APPLICATION_CREDENTIALS", "CLOUDSDK_", "SLACK_", "STORAGE_EMULATOR_HOST")
    ) or _key in (
        "PREFECT_API_URL",
        "PREFECT_API_KEY",
        "PREFECT_PROFILE",
    ):
        del os.environ[_key]
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="opsflows-prefect-home-")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
# google-cloud-storage 3.17 otherwise fires a hidden background GET of the bucket on first use, which
# shows up in the stand-ins' request logs and request counts.
os.environ["DISABLE_GCS_PYTHON_CLIENT_OTEL_BUCKET_METADATA"] = "true"

import itertools  # noqa: E402

import httpx  # noqa: E402
import psycopg  # noqa: E402
import pytest  # noqa: E402

from blocks import CanaryPolicy  # noqa: E402
from cli.sandbox_env import sandbox_environment  # noqa: E402
from sandbox.core import Sandbox  # noqa: E402
from sandbox.postgres import PostgresCluster  # noqa: E402

_REAL_WORLD_PREFIXES = ("GOOGLE_APPLICATION_CREDENTIALS", "CLOUDSDK_", "SLACK_", "STORAGE_EMULATOR_HOST")


@pytest.fixture(autouse=True)
def _no_real_credentials(monkeypatch):
    for key in list(os.environ):
        if key.startswith(_REAL_WORLD_PREFIXES):
            monkeypatch.delenv(key)


def world_readable_tmpdir(prefix: str) -> Path:
    """A temp dir the unprivileged PostgreSQL server user can reach (mkdtemp makes 0700)."""
    directory = Path(tempfile.mkdtemp(prefix=prefix))
    directory.chmod(0o755)
    return directory


@pytest.fixture(scope="session")
def prefect_server():
    """A real Prefect server for the whole session (the harness: ~10 s to start)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield


@pytest.fixture(scope="session")
def postgres():
    """A private PostgreSQL cluster for tests that need only a database (the audit store)."""
    cluster = PostgresCluster(world_readable_tmpdir("opsflows-pg-") / "cluster")
    cluster.start()
    yield cluster
    cluster.destroy()


@pytest.fixture
def fresh_database(postgres, request):
    """An empty database of its own for one test."""
    name = "t_" + "".join(ch if ch.isalnum() else "_" for ch in request.node.name.lower())[:50]
    with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return postgres.dsn(name)


# --- the sandbox, for flow and platform tests ---------------------------------------------------
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
