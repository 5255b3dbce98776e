"""The `sandbox` environment block, built from the running sandbox's description."""

from __future__ import annotations

from typing import Any

from blocks import (
    CanaryPolicy,
    CloudRunSettings,
    CloudSqlSettings,
    OpsEnvironment,
    SlackSettings,
    StorageSettings,
)


def sandbox_environment(description: dict[str, Any]) -> OpsEnvironment:
    """Everything points at the sandbox's loopback stand-ins, with anonymous credentials.

    The canary policy is the seeds' thresholds with sandbox-sized waits, so a demo deploy takes
    seconds, not the minutes production soaks for.
    """
    return OpsEnvironment(
        sandbox=True,
        anonymous_credentials=True,
        project=description["project"],
        region=description["region"],
        dr_region=description["dr_region"],
        cloud_run=CloudRunSettings(services=description["services"], api_endpoint=description["run_api"]),
        cloud_sql=CloudSqlSettings(
            instance=description["instances"][0],
            databases=description["databases"],
            validation_user=description["validation_user"],
            validation_password=description["validation_password"],
            drill_password=description["drill_password"],
            database_port=description["sql_port"],
            api_endpoint=description["sqladmin_api"],
        ),
        storage=StorageSettings(
            primary_bucket=description["buckets"]["primary"],
            dr_bucket=description["buckets"]["dr"],
            api_endpoint=description["storage_api"],
        ),
        slack=SlackSettings(
            channel="#ops-sandbox", bot_token=description["slack_token"], api_url=description["slack_api"]
        ),
        audit_dsn=description["audit_dsn"],
        migrations_dsn=description["migrations_dsn"],
        canary=CanaryPolicy(
            soak_seconds=3,
            probe_interval_seconds=0.05,
            min_samples=20,
            health_attempts=5,
            health_interval_seconds=0.5,
            ready_deadline_seconds=30,
            approval_timeout_seconds=60,
            lock_timeout_seconds=120,
        ),
    )
