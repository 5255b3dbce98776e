"""Every run leaves a trail: audit records, a markdown artifact, and a Slack message on failure.

Real Prefect (the session's test server), real PostgreSQL, the Slack stand-in over HTTP.
"""

from __future__ import annotations

import asyncio

import httpx
import psycopg
import pytest
from prefect import flow, get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

from blocks import CloudSqlSettings, OpsEnvironment, SlackSettings, StorageSettings
from flows._audited import audited_flow, current_report
from sandbox.slack import SlackStandIn
from tasks.audit import AuditStore
from tasks.notify import notify_slack


@pytest.fixture(scope="module")
def slack():
    standin = SlackStandIn()
    standin.serve()
    yield standin
    standin.shutdown()


@pytest.fixture(scope="module")
def audit_dsn(postgres):
    with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
        conn.execute('DROP DATABASE IF EXISTS "trail" WITH (FORCE)')
        conn.execute('CREATE DATABASE "trail"')
    return postgres.dsn("trail")


@pytest.fixture(scope="module")
def environment(prefect_server, slack, audit_dsn):
    env = OpsEnvironment(
        sandbox=True,
        anonymous_credentials=True,
        project="trail-project",
        region="europe-west1",
        dr_region="europe-north1",
        cloud_sql=CloudSqlSettings(
            instance="db",
            databases=["shop"],
            validation_user="v",
            validation_password="v-secret",
            drill_password="d-secret",
        ),
        storage=StorageSettings(primary_bucket="p", dr_bucket="d"),
        slack=SlackSettings(channel="#ops-test", bot_token="xoxb-trail-secret", api_url=slack.url + "/api/"),
        audit_dsn=audit_dsn,
    )
    env.save("trail-test", overwrite=True)
    return env


@pytest.fixture(autouse=True)
def _clean_slack(slack):
    slack.messages.clear()
    slack.faults.clear()
    slack.request_log.clear()


@audited_flow("trail-demo")
def trail_demo(environment: str, fail: bool = False, api_token: str = "", requested_by: str = "") -> str:
    report = current_report()
    report.before = {"traffic": {"rev-1": 100}}
    report.facts["objects copied"] = 3
    if fail:
        raise RuntimeError("the candidate answered 500")
    report.after = {"traffic": {"rev-2": 100}}
    return "done"


def _records(audit_dsn: str, run_id: str) -> list[dict]:
    return AuditStore(audit_dsn).records(flow_run_id=run_id)


def _artifacts(run_id: str) -> list:
    async def read():
        async with get_client() as client:
            return await client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
            )

    return asyncio.run(read())


def test_completed_run_leaves_start_and_end_records_and_an_artifact(environment, audit_dsn, slack):
    state = trail_demo("trail-test", api_token="tok-should-not-leak", requested_by="alice", return_state=True)
    assert state.is_completed()
    run_id = str(state.state_details.flow_run_id)
    started, finished = _records(audit_dsn, run_id)
    assert (started["event"], started["outcome"]) == ("started", "running")
    assert (finished["event"], finished["outcome"]) == ("finished", "completed")
    assert finished["actor"] == "alice"
    assert finished["trigger"] == "direct call"
    assert finished["parameters"]["api_token"] == "********"
    assert finished["summary"]["before"] == {"traffic": {"rev-1": 100}}
    assert finished["summary"]["after"] == {"traffic": {"rev-2": 100}}
    assert finished["summary"]["facts"] == {"objects copied": 3}
    assert finished["run_url"].endswith(run_id)
    (artifact,) = _artifacts(run_id)
    assert artifact.key == "trail-demo-trail-test-run"
    assert "**completed**" in artifact.data and "objects copied" in artifact.data
    assert "tok-should-not-leak" not in artifact.data
    assert slack.messages == []  # success is quiet unless a flow asks
    assert AuditStore(audit_dsn).verify().ok


def test_failed_run_is_recorded_with_its_error_and_notified(environment, audit_dsn, slack):
    state = trail_demo("trail-test", fail=True, return_state=True)
    assert state.is_failed()
    run_id = str(state.state_details.flow_run_id)
    finished = _records(audit_dsn, run_id)[-1]
    assert finished["outcome"] == "failed"
    assert finished["error"] == "RuntimeError: the candidate answered 500"
    assert finished["notes"] == []
    (message,) = slack.messages
    assert message["channel"] == "#ops-test"
    assert (
        "trail-demo" in message["text"] and "failed" in message["text"] and "answered 500" in message["text"]
    )
    assert run_id in message["text"]  # the run URL


def test_slack_down_does_not_fail_the_run_and_the_audit_says_so(environment, audit_dsn, slack):
    httpx.post(slack.url + "/_sandbox/faults", json={"status": 500, "times": -1})
    state = trail_demo("trail-test", fail=True, return_state=True)
    # The run fails for its own reason, not Slack's.
    assert state.is_failed() and "answered 500" in state.message
    finished = _records(audit_dsn, str(state.state_details.flow_run_id))[-1]
    assert len(finished["notes"]) == 1 and "Slack notification failed" in finished["notes"][0]
    # slack-sdk's ServerErrorRetryHandler retried before giving up (1 + 2 retries).
    posts = [r for r in slack.request_log if r["path"] == "/api/chat.postMessage"]
    assert len(posts) == 3


def test_unknown_environment_fails_before_anything_runs(environment):
    state = trail_demo("no-such-environment", return_state=True)
    assert state.is_failed()
    assert "no environment block named 'no-such-environment'" in state.message


def test_notify_delivers_through_a_webhook_and_survives_a_transient_error(environment, slack):
    httpx.post(slack.url + "/_sandbox/faults", json={"path": "/services/", "status": 503, "times": 1})

    @flow
    def send():
        settings = SlackSettings(webhook_url=slack.url + "/services/T000/B000/secret")
        return notify_slack(settings, "sandbox", "nightly-backup", "failed", {"database": "shop"}, None)

    delivery = send()
    assert delivery.delivered
    (message,) = slack.messages
    assert message["via"] == "webhook" and "nightly-backup" in message["text"]
