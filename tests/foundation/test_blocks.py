"""Environment blocks: validation, the sandbox/production wall, secrets, and a round trip through Prefect."""

from __future__ import annotations

import json

import httpx
import pytest
from prefect_gcp import GcpCredentials
from pydantic import ValidationError

from blocks import CanaryPolicy, OpsEnvironment
from tasks.clients import credentials, load_environment
from tests.support.keys import throwaway_service_account

SECRETS = ("validator-secret", "drill-secret", "xoxb-production", "audit-secret")


def production(**overrides) -> OpsEnvironment:
    fields = dict(
        project="acme-prod",
        region="europe-west1",
        dr_region="europe-north1",
        gcp_credentials=GcpCredentials(service_account_info=throwaway_service_account("acme-prod")),
        cloud_run={"services": ["api"]},
        cloud_sql={
            "instance": "app-db",
            "databases": ["shop"],
            "validation_user": "validator",
            "validation_password": "validator-secret",
            "drill_password": "drill-secret",
        },
        storage={"primary_bucket": "acme-backups", "dr_bucket": "acme-backups-dr"},
        slack={"channel": "#ops", "bot_token": "xoxb-production"},
        audit_dsn="postgresql://audit:audit-secret@db.internal/audit",
    )
    fields.update(overrides)
    return OpsEnvironment(**fields)


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ([], "empty"),
        ([10, 10, 100], "strictly increasing"),
        ([50, 10, 100], "strictly increasing"),
        ([10, 50], "end at 100"),
        ([0, 100], "between 1 and 100"),
        ([10, 150], "between 1 and 100"),
    ],
)
def test_canary_steps_are_checked(steps, message):
    with pytest.raises(ValidationError, match=message):
        CanaryPolicy(steps=steps)


def test_production_pointing_at_loopback_is_refused():
    with pytest.raises(ValidationError, match="not a sandbox but points at loopback"):
        production(storage={"primary_bucket": "a", "dr_bucket": "b", "api_endpoint": "http://127.0.0.1:4443"})
    with pytest.raises(ValidationError, match="slack.api_url"):
        production(slack={"bot_token": "x", "api_url": "http://localhost:9/api/"})


def test_production_without_a_service_account_is_refused():
    with pytest.raises(ValidationError, match="no service account"):
        production(gcp_credentials=None)
    with pytest.raises(ValidationError, match="anonymous credentials are for the sandbox only"):
        production(anonymous_credentials=True)


def test_validation_errors_do_not_echo_secrets():
    with pytest.raises(ValidationError) as error:
        production(gcp_credentials=None)
    assert not any(secret in str(error.value) for secret in SECRETS)


def test_repr_hides_every_secret():
    text = repr(production())
    assert not any(secret in text for secret in SECRETS)
    assert "PRIVATE KEY" not in text


def test_production_uses_the_service_account_without_touching_the_network():
    creds = credentials(production())
    assert creds.service_account_email == "opsflows@acme-prod.iam.gserviceaccount.com"
    assert not creds.valid  # no token was fetched


def test_round_trip_through_the_prefect_server(prefect_server):
    original = production()
    original.save("acme-production", overwrite=True)
    loaded = load_environment("acme-production")
    assert loaded.cloud_sql.validation_password.get_secret_value() == "validator-secret"
    assert loaded.slack.bot_token.get_secret_value() == "xoxb-production"
    assert loaded.audit_dsn.get_secret_value() == original.audit_dsn.get_secret_value()
    assert loaded.gcp_credentials.service_account_info.get_secret_value()["client_email"].startswith(
        "opsflows@"
    )
    assert loaded.canary == original.canary

    # What the API (and so the UI) shows: secrets masked.
    from prefect.settings import PREFECT_API_URL

    api = PREFECT_API_URL.value()
    document = httpx.get(
        f"{api}/block_types/slug/ops-environment/block_documents/name/acme-production"
    ).json()
    shown = json.dumps(document)
    assert not any(secret in shown for secret in SECRETS)
    assert document["data"]["audit_dsn"] == "********"


def test_unknown_environment_is_a_clear_error(prefect_server):
    with pytest.raises(ValueError, match="no-such-env"):
        load_environment("no-such-env")


def test_block_types_register_both_ways(prefect_server):
    import os
    import subprocess
    import sys

    from prefect.settings import PREFECT_API_URL
    from typer.testing import CliRunner

    from cli.main import app

    result = CliRunner().invoke(app, ["blocks", "register"])
    assert result.exit_code == 0 and "registered ops-environment" in result.output
    env = dict(os.environ, PREFECT_API_URL=PREFECT_API_URL.value())
    done = subprocess.run(
        [sys.executable, "-m", "prefect", "block", "register", "-m", "blocks"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ops-environment" in done.stdout.replace("Ops Environment", "ops-environment")
