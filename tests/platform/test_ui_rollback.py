"""The on-call path: a rollback started from the Prefect UI's run form, in headless Chromium."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from flows.deploy import deploy
from tasks.audit import AuditStore
from tests.flows.helpers import served

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is missing: `make test` installs it (apt-get install chromium)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-quic",
            ],
        )
        yield chromium
        chromium.close()


def test_rollback_from_the_ui_run_form(platform, sandbox, service, browser):
    (original,) = served(sandbox, service)
    deploy("sandbox", service, f"sandbox/{service}:v2")
    platform.save_environment(sandbox.environment)
    deployment = httpx.get(f"{platform.api}/deployments/name/rollback/sandbox").json()

    page = browser.new_page(viewport={"width": 1400, "height": 1600})
    page.goto(f"{platform.ui}/deployments/deployment/{deployment['id']}/run", wait_until="networkidle")
    fields = {
        label: page.locator("textarea").nth(i)
        for i, label in enumerate(["environment", "service", "reason", "to_revision", "requested_by"])
    }
    for label in fields:  # the form is the flow's signature, in order, with its help text
        assert page.get_by_text(label, exact=False).first.is_visible()
    fields["service"].fill(service)
    fields["reason"].fill("INC-4242: checkout 500s after v2")
    fields["requested_by"].fill("on-call via UI")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "ui-rollback-form.png"), full_page=True)
    page.get_by_role("button", name="Submit").click()

    run = _wait_for_run(platform.api, deployment["id"])
    assert run["state"]["type"] == "COMPLETED", run["state"]
    assert served(sandbox, service) == {original: 100}
    (finished,) = [
        r
        for r in AuditStore(sandbox.environment.audit_dsn.get_secret_value()).records(flow_run_id=run["id"])
        if r["event"] == "finished"
    ]
    assert finished["summary"]["facts"]["reason"] == "INC-4242: checkout 500s after v2"
    assert finished["actor"] == "on-call via UI"
    assert finished["trigger"].startswith("deployment run")


def _wait_for_run(api: str, deployment_id: str, timeout_s: float = 240) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        runs = httpx.post(
            f"{api}/flow_runs/filter",
            json={
                "deployments": {"id": {"any_": [deployment_id]}},
                "limit": 1,
                "sort": "EXPECTED_START_TIME_DESC",
            },
        ).json()
        if runs and runs[0]["state"]["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            return runs[0]
        time.sleep(1)
    raise AssertionError("the rollback started from the UI did not finish")
