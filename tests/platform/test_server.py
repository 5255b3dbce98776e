"""A production-shaped Prefect server: on PostgreSQL, with API auth. Also the pin smoke tests: the
fastapi pin (list calls answer, not 422) and the SQLAlchemy pin (cron schedules create runs)."""

from __future__ import annotations

import subprocess
import sys

import httpx
import psycopg

from tests.platform.conftest import ROOT, start_server, stop

AUTH = "admin:opsflows-test-secret"
FLOW = """
import asyncio
from prefect import flow, get_client
from prefect.client.schemas.schedules import CronSchedule

@flow
def hello():
    return "hello"

assert hello() == "hello"

async def check():
    async with get_client() as client:
        runs = await client.read_flow_runs(limit=1)  # 422 with fastapi 0.151-0.154
        assert runs and runs[0].state.is_completed()
        flow_id = runs[0].flow_id
        deployment = await client.create_deployment(
            flow_id=flow_id, name="every-minute", entrypoint="x.py:hello",
            schedules=[{"schedule": CronSchedule(cron="* * * * *", timezone="Europe/Berlin"), "active": True}])
        for _ in range(60):  # SQLAlchemy 2.1 breaks the scheduler: no run is ever created
            scheduled = await client.read_flow_runs(limit=5)
            if any(r.deployment_id == deployment for r in scheduled):
                return
            await asyncio.sleep(1)
        raise SystemExit("the scheduler created no run for a cron deployment")

asyncio.run(check())
"""


def test_server_on_postgresql_with_auth(postgres, tmp_path):
    with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS prefect_server WITH (FORCE)")
        conn.execute("CREATE DATABASE prefect_server")
    database = postgres.dsn("prefect_server").replace("postgresql://", "postgresql+asyncpg://")
    server, api, env = start_server(
        tmp_path,
        {
            "PREFECT_API_DATABASE_CONNECTION_URL": database,
            "PREFECT_SERVER_API_AUTH_STRING": AUTH,
            "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "1",
        },
    )
    try:
        refused = httpx.post(f"{api}/flows/filter", json={})
        assert refused.status_code == 401
        client_env = dict(env, PREFECT_API_AUTH_STRING=AUTH)
        done = subprocess.run(
            [sys.executable, "-c", FLOW],
            env=client_env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        with psycopg.connect(postgres.dsn("prefect_server")) as conn:  # it really is the PostgreSQL database
            assert conn.execute("SELECT count(*) FROM flow_run").fetchone()[0] >= 1
    finally:
        stop(server)
