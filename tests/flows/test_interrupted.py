"""Runs stopped from outside: cancelled from the UI/API mid-soak, or killed outright mid-canary.

Only deployment runs can be cancelled (a direct call is never stopped), so these tests serve the deploy
flow from a separate process, as a worker would run it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prefect import get_client
from prefect.client.schemas.objects import StateType
from prefect.deployments import run_deployment
from prefect.settings import PREFECT_API_URL
from prefect.states import Cancelling

from flows.deploy import deploy
from tasks.audit import AuditStore
from tasks.locks import service_lock_name
from tests.flows.helpers import audit_records, service_traffic

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def served_deploy(sandbox, tmp_path_factory):
    """`deploy` served as deployment 'deploy/interrupt-test' by a separate process (log kept on failure)."""
    log = open(tmp_path_factory.mktemp("served") / "serve.log", "w")  # noqa: SIM115 - closed below
    env = dict(os.environ, PREFECT_API_URL=PREFECT_API_URL.value())
    process = subprocess.Popen(
        [sys.executable, "-c", "from flows.deploy import deploy; deploy.serve(name='interrupt-test')"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            asyncio.run(_read_deployment("deploy/interrupt-test"))
            break
        except Exception:  # noqa: BLE001 - not registered yet
            time.sleep(0.5)
    yield "deploy/interrupt-test"
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=30)
    log.close()


async def _read_deployment(name: str):
    async with get_client() as client:
        return await client.read_deployment_by_name(name)


async def _state(flow_run_id):
    async with get_client() as client:
        return (await client.read_flow_run(flow_run_id)).state


async def _cancel(flow_run_id):
    async with get_client() as client:
        await client.set_flow_run_state(flow_run_id, Cancelling(), force=True)


def wait_until(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def candidate_serving(sandbox, service) -> bool:
    return any(tag == "candidate" and percent > 0 for _, percent, tag in service_traffic(sandbox, service))


def test_cancelling_mid_soak_restores_the_prior_split(sandbox, service, served_deploy):
    prior = service_traffic(sandbox, service)
    flow_run = run_deployment(
        served_deploy,
        parameters={
            "environment": "sandbox",
            "service": service,
            "image": f"sandbox/{service}:v2",
            "soak_seconds": 20,
        },
        timeout=0,
    )
    wait_until(lambda: candidate_serving(sandbox, service), 90, "the canary's first step")
    asyncio.run(_cancel(flow_run.id))
    final = wait_until(
        lambda: (s := asyncio.run(_state(flow_run.id))).type == StateType.CANCELLED and s, 90, "Cancelled"
    )
    assert final.type == StateType.CANCELLED
    assert service_traffic(sandbox, service) == prior
    assert audit_records(sandbox, flow_run.id)[-1]["outcome"] == "cancelled"
    assert any("deploy" in m["text"] and "cancelled" in m["text"] for m in sandbox.slack.messages)


def test_a_run_killed_mid_canary_is_healed_by_the_next_run(sandbox, service):
    prior = service_traffic(sandbox, service)
    env = dict(os.environ, PREFECT_API_URL=PREFECT_API_URL.value())
    code = (
        "from flows.deploy import deploy; "
        f"deploy('sandbox', '{service}', 'sandbox/{service}:v2', soak_seconds=30)"
    )
    victim = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_until(lambda: candidate_serving(sandbox, service), 90, "the canary's first step")
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()
    assert candidate_serving(sandbox, service)  # the leftovers of a dead run
    store = AuditStore(sandbox.environment.audit_dsn.get_secret_value())
    (dead,) = {
        r["flow_run_id"] for r in store.records(flow="deploy") if r["parameters"].get("service") == service
    }
    assert [r["event"] for r in store.records(flow_run_id=dead)] == [
        "started",
        "checkpoint",
    ]  # no end: it crashed

    # The dead holder's lock lease would free itself within 60 s; an operator frees it at once.
    async def free_lock():
        async with get_client() as client:
            await client.delete_global_concurrency_limit_by_name(service_lock_name("sandbox", service))

    asyncio.run(free_lock())
    state = deploy("sandbox", service, f"sandbox/{service}:v3", return_state=True)
    assert state.is_completed(), state.message
    finished = audit_records(sandbox, state.state_details.flow_run_id)[-1]
    assert any("leftovers of a run that did not finish" in note for note in finished["notes"])
    # Healed first (to the checkpointed prior split), then deployed normally.
    assert finished["summary"]["before"]["traffic"] == [
        {"type": "REVISION", "percent": p, "revision": r} | ({"tag": t} if t else {}) for r, p, t in prior
    ]
