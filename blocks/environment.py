"""The environment block: everything a flow needs to act on one environment, loaded by name.

Production configuration must never be able to point at the sandbox: loopback endpoints and anonymous
credentials are accepted only by an environment marked `sandbox`, and refused with a clear error
everywhere else.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from prefect.blocks.core import Block
from prefect_gcp import GcpCredentials
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from blocks.policies import CanaryPolicy, DrillPolicy, RecoveryObjectives, RetentionPolicy


def is_loopback(url: str) -> bool:
    host = urlsplit(url if "://" in url else f"//{url}").hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class CloudRunSettings(BaseModel):
    """The Cloud Run services this environment deploys."""

    services: list[str] = Field(
        default_factory=list, description="Cloud Run service names opsflows may deploy."
    )
    api_endpoint: str | None = Field(
        default=None, description="Override of the Cloud Run Admin API endpoint (leave empty for Google's)."
    )


class CloudSqlSettings(BaseModel):
    """The Cloud SQL for PostgreSQL instance that is backed up, and how to reach its databases."""

    instance: str = Field(description="Cloud SQL instance name (not the connection name).")
    databases: list[str] = Field(description="Databases to export every night.")
    validation_user: str = Field(description="Read-only database user for row counts and schema checks.")
    validation_password: SecretStr = Field(description="Password of the read-only validation user.")
    drill_user: str = Field(
        default="postgres",
        description="User the restore drill creates on, and connects to, its scratch instance.",
    )
    drill_password: SecretStr = Field(description="Password set for the drill user on scratch instances.")
    database_port: int = Field(default=5432, description="PostgreSQL port of the instances' IP addresses.")
    api_endpoint: str | None = Field(
        default=None, description="Override of the Cloud SQL Admin API endpoint (leave empty for Google's)."
    )


class StorageSettings(BaseModel):
    """Where exports live, and their copy in the disaster-recovery region."""

    primary_bucket: str = Field(description="Bucket the nightly exports are written to (primary region).")
    dr_bucket: str = Field(description="Bucket in the DR region that replication keeps a copy in.")
    api_endpoint: str | None = Field(
        default=None,
        description="Override of the Cloud Storage JSON API endpoint (leave empty for Google's).",
    )


class SlackSettings(BaseModel):
    """Where notifications go. A bot token (chat.postMessage) or an incoming webhook."""

    channel: str = Field(default="#ops", description="Channel for notifications (with a bot token).")
    bot_token: SecretStr | None = Field(default=None, description="Slack bot token (xoxb-...).")
    webhook_url: SecretStr | None = Field(default=None, description="Slack incoming webhook URL.")
    api_url: str | None = Field(
        default=None, description="Override of the Slack Web API base URL (leave empty for Slack's)."
    )


class OpsEnvironment(Block):
    """One environment opsflows acts on: Google Cloud project and regions, the Cloud Run services,
    the Cloud SQL instance, the backup buckets, Slack, the audit store and the policies."""

    _block_type_slug = "ops-environment"
    _block_type_name = "Ops Environment"
    # Validation errors must not echo the input: it holds passwords and tokens.
    model_config = ConfigDict(hide_input_in_errors=True)

    sandbox: bool = Field(
        default=False,
        description="Only the embedded sandbox sets this: it allows loopback endpoints and anonymous credentials.",
    )
    project: str = Field(description="Google Cloud project id.")
    region: str = Field(
        description="Primary region (Cloud Run services, Cloud SQL instance, primary bucket)."
    )
    dr_region: str = Field(
        description="Disaster-recovery region (DR bucket, restore drill scratch instances)."
    )
    gcp_credentials: GcpCredentials | None = Field(
        default=None, description="Service account used for every Google API call."
    )
    anonymous_credentials: bool = Field(
        default=False, description="Call the APIs without credentials. Sandbox only."
    )
    cloud_run: CloudRunSettings = Field(default_factory=CloudRunSettings, description="Cloud Run services.")
    cloud_sql: CloudSqlSettings = Field(description="Cloud SQL instance and database access.")
    storage: StorageSettings = Field(description="Backup buckets.")
    slack: SlackSettings = Field(default_factory=SlackSettings, description="Slack notifications.")
    audit_dsn: SecretStr = Field(
        description="PostgreSQL connection URL of the audit store (append-only, hash-chained records)."
    )
    migrations_dsn: SecretStr | None = Field(
        default=None,
        description="PostgreSQL connection URL used by deploys that apply SQL migrations (run_migrations).",
    )
    canary: CanaryPolicy = Field(default_factory=CanaryPolicy, description="Canary analysis and rollback.")
    retention: RetentionPolicy = Field(default_factory=RetentionPolicy, description="Backup retention.")
    objectives: RecoveryObjectives = Field(default_factory=RecoveryObjectives, description="RTO and RPO.")
    drill: DrillPolicy = Field(default_factory=DrillPolicy, description="Restore drill settings.")

    @model_validator(mode="after")
    def _production_never_points_at_the_sandbox(self) -> OpsEnvironment:
        if self.sandbox:
            return self
        endpoints = {
            "cloud_run.api_endpoint": self.cloud_run.api_endpoint,
            "cloud_sql.api_endpoint": self.cloud_sql.api_endpoint,
            "storage.api_endpoint": self.storage.api_endpoint,
            "slack.api_url": self.slack.api_url,
        }
        loopback = [f"{field}={url}" for field, url in endpoints.items() if url and is_loopback(url)]
        if loopback:
            raise ValueError(
                f"environment for project {self.project!r} is not a sandbox but points at loopback "
                f"({', '.join(loopback)}); clear the override or mark the environment as the sandbox"
            )
        if self.anonymous_credentials or self.gcp_credentials is None:
            raise ValueError(
                f"environment for project {self.project!r} is not a sandbox and has no service account: "
                "set gcp_credentials (anonymous credentials are for the sandbox only)"
            )
        return self
