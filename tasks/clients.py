"""The one place that turns an environment block into Google Cloud, Slack and PostgreSQL clients.

Run and Cloud SQL Admin use the REST transport (sqladmin_v1 has no REST transport at all, so the
v1beta4 surface is the one that works over HTTP). In the sandbox every client gets anonymous
credentials: with service-account credentials the storage client first fetches a token from Google,
which hangs offline.
"""

from __future__ import annotations

from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials, Credentials
from google.cloud import run_v2, sqladmin_v1beta4, storage
from prefect.blocks.core import Block

from blocks import OpsEnvironment


def load_environment(name: str) -> OpsEnvironment:
    """The environment block saved under `name`."""
    environment = Block.load(f"ops-environment/{name}")
    if not isinstance(environment, OpsEnvironment):
        raise TypeError(
            f"block ops-environment/{name} is a {type(environment).__name__}, not an OpsEnvironment"
        )
    return environment


def credentials(environment: OpsEnvironment) -> Credentials:
    if environment.anonymous_credentials:
        return AnonymousCredentials()
    return environment.gcp_credentials.get_credentials_from_service_account()


def _options(endpoint: str | None) -> ClientOptions | None:
    return ClientOptions(api_endpoint=endpoint) if endpoint else None


def _rest_client(client_class, environment: OpsEnvironment, endpoint: str | None):
    return client_class(
        transport="rest", credentials=credentials(environment), client_options=_options(endpoint)
    )


def services_client(environment: OpsEnvironment) -> run_v2.ServicesClient:
    return _rest_client(run_v2.ServicesClient, environment, environment.cloud_run.api_endpoint)


def revisions_client(environment: OpsEnvironment) -> run_v2.RevisionsClient:
    return _rest_client(run_v2.RevisionsClient, environment, environment.cloud_run.api_endpoint)


def sql_instances_client(environment: OpsEnvironment) -> sqladmin_v1beta4.SqlInstancesServiceClient:
    return _rest_client(
        sqladmin_v1beta4.SqlInstancesServiceClient, environment, environment.cloud_sql.api_endpoint
    )


def sql_backup_runs_client(environment: OpsEnvironment) -> sqladmin_v1beta4.SqlBackupRunsServiceClient:
    return _rest_client(
        sqladmin_v1beta4.SqlBackupRunsServiceClient, environment, environment.cloud_sql.api_endpoint
    )


def sql_operations_client(environment: OpsEnvironment) -> sqladmin_v1beta4.SqlOperationsServiceClient:
    return _rest_client(
        sqladmin_v1beta4.SqlOperationsServiceClient, environment, environment.cloud_sql.api_endpoint
    )


def storage_client(environment: OpsEnvironment) -> storage.Client:
    return storage.Client(
        project=environment.project,
        credentials=credentials(environment),
        client_options=_options(environment.storage.api_endpoint),
    )
