"""The canary deploy against the sandbox: real run_v2 clients, real revision processes, real Prefect.

Every failure must end with the exact prior traffic split (revisions, percents, tags) and a Failed run.
"""

from __future__ import annotations

import asyncio
import threading

import psycopg
import pytest
from prefect.client.schemas.sorting import FlowRunSort

from flows.deploy import deploy
from tests.flows.helpers import audit_records, clear_log, inject, mutations, run_id, served, service_traffic


def test_happy_path_moves_10_50_100_and_promotes(sandbox, service):
    before = served(sandbox, service)
    state = deploy("sandbox", service, f"sandbox/{service}:v2", requested_by="ci", return_state=True)
    assert state.is_completed(), state.message
    result = state.result()
    candidate = result["candidate"]
    assert service_traffic(sandbox, service) == [(candidate, 100, "")]
    assert [step["percent"] for step in result["steps"]] == [10, 50, 100]
    assert all(step["samples"] >= 20 and step["passed"] for step in result["steps"])
    finished = audit_records(sandbox, run_id(state))[-1]
    assert finished["outcome"] == "completed" and finished["actor"] == "ci"
    assert finished["summary"]["before"]["traffic"] == [
        {"type": "REVISION", "percent": 100, "revision": next(iter(before))}
    ]
    assert finished["summary"]["stable_traffic"]["traffic"] == [
        {"type": "REVISION", "percent": 100, "revision": candidate}
    ]
    # Three traffic steps through PATCHes with an update mask; the candidate's template sent once.
    patches = [m for m in mutations(sandbox.run) if m["method"] == "PATCH" and service in m["path"]]
    masks = [m["query"].get("updateMask") for m in patches]
    assert masks.count("template,traffic") == 1 and masks.count("traffic") == 4  # 3 steps + promotion


@pytest.mark.parametrize(
    ("env", "failure", "soak"),
    [
        ({"SANDBOX_HEALTHY": "false"}, "failed its health check", None),
        ({"SANDBOX_ERROR_RATE": "0.5"}, "error rate", None),
        # Slow answers need a window long enough to collect the minimum samples; it fails as soon as it has.
        ({"SANDBOX_LATENCY_MS": "350"}, "p95 latency", 30),
        ({"SANDBOX_READY": "false"}, "never became Ready", None),
    ],
    ids=["unhealthy", "error-rate", "latency", "never-ready"],
)
def test_a_bad_candidate_restores_the_exact_prior_split(sandbox, service, env, failure, soak):
    # A prior split with a tag and two revisions: the restore must bring back exactly this.
    first = deploy("sandbox", service, f"sandbox/{service}:v2", return_state=True)
    assert first.is_completed(), first.message
    prior = service_traffic(sandbox, service)
    sandbox.slack.messages.clear()
    state = deploy("sandbox", service, f"sandbox/{service}:v3", env=env, soak_seconds=soak, return_state=True)
    assert state.is_failed()
    assert failure in state.message
    assert service_traffic(sandbox, service) == prior
    finished = audit_records(sandbox, run_id(state))[-1]
    assert finished["outcome"] == "failed" and failure in finished["error"]
    assert finished["summary"]["after"]["rolled_back"] is True
    assert any(service in m["text"] and "failed" in m["text"] for m in sandbox.slack.messages)


def test_no_samples_is_a_failure_never_a_pass(sandbox, service):
    prior = service_traffic(sandbox, service)
    state = deploy("sandbox", service, f"sandbox/{service}:v2", soak_seconds=0.0, return_state=True)
    assert state.is_failed() and "no data is a fail" in state.message
    assert service_traffic(sandbox, service) == prior


def test_api_503_bursts_are_retried(sandbox, service):
    inject(sandbox.run, method="PATCH", path=f"/services/{service}$", status=503, times=2)
    state = deploy("sandbox", service, f"sandbox/{service}:v2", return_state=True)
    assert state.is_completed(), state.message
    statuses = [
        m["status"] for m in mutations(sandbox.run) if m["method"] == "PATCH" and service in m["path"]
    ]
    assert statuses[:3] == [503, 503, 200]


@pytest.mark.parametrize("status", [400, 409])
def test_api_400_and_409_are_not_retried_and_change_nothing(sandbox, service, status):
    prior = service_traffic(sandbox, service)
    clear_log(sandbox.run)
    inject(sandbox.run, method="PATCH", path=f"/services/{service}$", status=status, times=1)
    state = deploy("sandbox", service, f"sandbox/{service}:v2", return_state=True)
    assert state.is_failed()
    patches = [m for m in mutations(sandbox.run) if m["method"] == "PATCH"]
    # The refused template update, then only the restore of the prior split.
    assert patches[0]["status"] == status
    assert [p["query"].get("updateMask") for p in patches[1:]] == ["traffic"]
    assert service_traffic(sandbox, service) == prior


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"image": "not an image"}, "not a container image reference"),
        ({"image": "sandbox/app"}, "with a tag or digest"),
        ({"canary_steps": [50, 10, 100]}, "strictly increasing"),
        ({"canary_steps": [10, 50]}, "end at 100"),
        ({"env": {"1BAD": "x"}}, "not valid"),
        ({"service": "no-such-service"}, "is not one of this environment's services"),
        ({"run_migrations": True, "migrations_dir": "/nonexistent"}, "does not exist"),
    ],
)
def test_bad_parameters_fail_before_any_api_mutation(sandbox, service, kwargs, message):
    clear_log(sandbox.run)
    params = {"service": service, "image": f"sandbox/{service}:v2", **kwargs}
    state = deploy("sandbox", return_state=True, **params)
    assert state.is_failed() and message in state.message
    assert "nothing was changed" in state.message
    assert mutations(sandbox.run) == []


def test_dry_run_changes_nothing_and_shows_the_plan(sandbox, service):
    clear_log(sandbox.run)
    state = deploy("sandbox", service, f"sandbox/{service}:v2", dry_run=True, return_state=True)
    assert state.is_completed()
    plan = state.result()["plan"]
    assert [sum(t["percent"] for t in step if t.get("tag") == "candidate") for step in plan] == [10, 50, 100]
    assert mutations(sandbox.run) == []


def test_migrations_are_applied_before_the_candidate(sandbox, service, tmp_path):
    (tmp_path / "0003_coupons.sql").write_text(
        "CREATE TABLE coupons (code text PRIMARY KEY, percent_off int);"
    )
    state = deploy(
        "sandbox",
        service,
        f"sandbox/{service}:v2",
        run_migrations=True,
        migrations_dir=str(tmp_path),
        return_state=True,
    )
    assert state.is_completed(), state.message
    finished = audit_records(sandbox, run_id(state))[-1]
    assert finished["summary"]["facts"]["migrations applied"] == ["0003_coupons"]
    with psycopg.connect(sandbox.environment.migrations_dsn.get_secret_value()) as conn:
        assert conn.execute("SELECT to_regclass('coupons') IS NOT NULL").fetchone()[0]
        conn.execute("DROP TABLE coupons")
        conn.execute("DELETE FROM schema_migrations WHERE version = '0003_coupons'")


def _resume_when_paused(run_holder: dict, approve: bool) -> None:
    from prefect import get_client
    from prefect.flow_runs import resume_flow_run

    async def wait_and_resume():
        async with get_client() as client:
            for _ in range(600):
                runs = await client.read_flow_runs(limit=5, sort=FlowRunSort.START_TIME_DESC)
                paused = [r for r in runs if r.state and r.state.is_paused()]
                if paused:
                    run_holder["id"] = paused[0].id
                    await resume_flow_run(paused[0].id, run_input={"approve": approve, "note": "looks good"})
                    return
                await asyncio.sleep(0.1)

    asyncio.run(wait_and_resume())


@pytest.mark.parametrize("approve", [True, False])
def test_approval_gate_before_full_traffic(sandbox, service, approve):
    prior = service_traffic(sandbox, service)
    holder: dict = {}
    approver = threading.Thread(target=_resume_when_paused, args=(holder, approve))
    approver.start()
    state = deploy("sandbox", service, f"sandbox/{service}:v2", approve_before_full=True, return_state=True)
    approver.join()
    if approve:
        assert state.is_completed(), state.message
        assert served(sandbox, service) == {state.result()["candidate"]: 100}
    else:
        assert state.is_failed() and "was refused" in state.message
        assert service_traffic(sandbox, service) == prior


def test_no_answer_to_the_approval_rolls_back(sandbox, service):
    prior = service_traffic(sandbox, service)
    sandbox.environment.canary.approval_timeout_seconds = 3
    sandbox.environment.save("sandbox", overwrite=True)
    try:
        state = deploy(
            "sandbox", service, f"sandbox/{service}:v2", approve_before_full=True, return_state=True
        )
    finally:
        sandbox.environment.canary.approval_timeout_seconds = 20
        sandbox.environment.save("sandbox", overwrite=True)
    assert state.is_failed()
    assert service_traffic(sandbox, service) == prior
