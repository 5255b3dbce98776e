"""The Cloud SQL stand-in on the wire: raw HTTP (error shapes, enums as ints or names, bad bodies) and
conformance of every response to Google's own discovery document (sqladmin.v1beta4.json).
"""

from __future__ import annotations

import base64
import json
import time
from datetime import datetime

import httpx
import psycopg
import pytest

from tests.sandbox.cloudsql_support import BUCKET, PROJECT, REGION, running_stand_in
from tests.support.discovery import SchemaChecker, discovery_client

API = f"/sql/v1beta4/projects/{PROJECT}"

RESPONSE_SCHEMAS = {
    "sql.instances.get": "DatabaseInstance",
    "sql.instances.list": "InstancesListResponse",
    "sql.operations.get": "Operation",
    "sql.operations.list": "OperationsListResponse",
    "sql.backupRuns.get": "BackupRun",
    "sql.backupRuns.list": "BackupRunsListResponse",
}


@pytest.fixture(scope="module")
def stand_in():
    yield from running_stand_in()


@pytest.fixture(scope="module")
def instance(stand_in):
    stand_in.create_instance("wire", REGION, databases=["app"], labels={"team": "ops", "tier": "gold"})
    return "wire"


@pytest.fixture
def http(stand_in):
    with httpx.Client(base_url=stand_in.url, timeout=10) as client:
        yield client


def wait_raw(http, operation: dict, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while operation["status"] != "DONE":
        assert time.monotonic() < deadline
        time.sleep(0.05)
        operation = http.get(f"{API}/operations/{operation['name']}").json()
    return operation


def assert_cloud_sql_error(response: httpx.Response, code: int, reason: str | None = None) -> dict:
    assert response.status_code == code, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"]
    assert error["errors"][0]["domain"] == "global" and error["errors"][0]["message"] == error["message"]
    if reason is not None:
        assert error["errors"][0]["reason"] == reason
    return error


def test_not_found_errors_have_the_cloud_sql_shape(http, instance):
    assert_cloud_sql_error(http.get(f"{API}/instances/nope"), 404, "instanceDoesNotExist")
    assert_cloud_sql_error(http.post(f"{API}/instances/nope/export", json={}), 404, "instanceDoesNotExist")
    assert_cloud_sql_error(http.get(f"{API}/operations/no-such-operation"), 404)
    assert_cloud_sql_error(http.get(f"{API}/instances/{instance}/backupRuns/123"), 404)
    assert_cloud_sql_error(http.get(f"/sql/v1beta4/projects/other/instances/{instance}"), 403)


def test_request_enums_are_accepted_as_ints_and_as_names(http, instance):
    for file_type, uri in ((1, "as-int.sql"), ("SQL", "as-name.sql")):
        body = {"exportContext": {"fileType": file_type, "uri": f"gs://{BUCKET}/{uri}", "databases": ["app"]}}
        response = http.post(f"{API}/instances/{instance}/export", json=body)
        assert response.status_code == 200, response.text
        assert response.json()["exportContext"]["fileType"] == "SQL"  # names on the way out
        assert wait_raw(http, response.json()).get("error") is None


def test_enums_come_back_as_ints_when_the_client_asks_for_them(http, instance):
    as_ints = http.get(f"{API}/instances/{instance}", params={"$alt": "json;enum-encoding=int"}).json()
    assert (as_ints["state"], as_ints["databaseVersion"], as_ints["ipAddresses"][0]["type"]) == (1, 172, 1)
    as_names = http.get(f"{API}/instances/{instance}").json()
    assert (as_names["state"], as_names["databaseVersion"]) == ("RUNNABLE", "POSTGRES_15")
    assert as_ints["name"] == as_names["name"] and as_ints["settings"]["tier"] == as_names["settings"]["tier"]


@pytest.mark.parametrize(
    ("context", "fragment"),
    [
        ({"fileType": "SQLX", "uri": "gs://bkt/x.sql", "databases": ["app"]}, "Invalid enum value SQLX"),
        ({"fileType": 2, "uri": "gs://bkt/x.csv", "databases": ["app"]}, "'CSV' is not supported"),
        ({"fileType": 1, "uri": "gs://bkt/x.sql", "databases": ["app"], "colour": "red"}, "colour"),
        ({"fileType": 1, "uri": "/tmp/x.sql", "databases": ["app"]}, "gs://bucket/object"),
        ({"fileType": 1, "uri": "gs://bkt/x.sql", "databases": ["app", "postgres"]}, "exactly one database"),
        ({"fileType": 1, "uri": "gs://bkt/x.sql"}, "exactly one database"),
    ],
)
def test_bad_export_requests_are_400(http, instance, context, fragment):
    error = assert_cloud_sql_error(
        http.post(f"{API}/instances/{instance}/export", json={"exportContext": context}), 400
    )
    assert fragment in error["message"]


def test_sql_export_options_shape_the_dump(stand_in, http, instance):
    with psycopg.connect(stand_in.instance_dsn(instance, "app"), autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS kept (x int); CREATE TABLE IF NOT EXISTS skipped (y int)")
        conn.execute("INSERT INTO kept VALUES (42)")
    options = {
        "tables": ["kept"],
        "schemaOnly": True,
        "postgresExportOptions": {"clean": True, "ifExists": True},
    }
    body = {
        "exportContext": {
            "fileType": "SQL",
            "uri": f"gs://{BUCKET}/options.sql",
            "databases": ["app"],
            "sqlExportOptions": options,
        }
    }
    assert (
        wait_raw(http, http.post(f"{API}/instances/{instance}/export", json=body).json()).get("error") is None
    )
    script = stand_in.storage.read_object(BUCKET, "options.sql").decode()
    assert "CREATE TABLE public.kept" in script and "DROP TABLE IF EXISTS public.kept" in script
    assert "skipped" not in script and "COPY public.kept" not in script


def test_insert_refuses_what_this_machine_cannot_run(http):
    for version in (408, "POSTGRES_17", "MYSQL_8_0"):
        body = {"name": "newer", "region": REGION, "databaseVersion": version}
        error = assert_cloud_sql_error(http.post(f"{API}/instances", json=body), 400)
        assert "POSTGRES_15" in error["message"]
    error = assert_cloud_sql_error(http.post(f"{API}/instances", json={"name": "Bad_Name"}), 400)
    assert "Bad_Name" in error["message"]


def test_second_mutation_body_is_operation_in_progress(stand_in, http, instance):
    stand_in.min_operation_seconds = 1.0
    try:
        first = http.post(f"{API}/instances/{instance}/backupRuns", json={"description": "slow"}).json()
        assert first["status"] == "PENDING"
        response = http.post(f"{API}/instances/{instance}/backupRuns", json={})
        error = assert_cloud_sql_error(response, 409, "operationInProgress")
        assert error["message"] == "Operation failed because another operation was already in progress."
    finally:
        stand_in.min_operation_seconds = 0.0
    wait_raw(http, first)


def test_int64_and_timestamps_are_strings_on_the_wire(http, instance):
    operation = wait_raw(http, http.post(f"{API}/instances/{instance}/backupRuns", json={}).json())
    run_id = operation["backupContext"]["backupId"]
    assert isinstance(run_id, str) and run_id.isdigit()
    run = http.get(f"{API}/instances/{instance}/backupRuns/{run_id}").json()
    assert run["id"] == run_id and run["status"] == "SUCCESSFUL" and run["type"] == "ON_DEMAND"
    for key in ("enqueuedTime", "startTime", "endTime", "windowStartTime"):
        assert run[key].endswith("Z") and datetime.fromisoformat(run[key].replace("Z", "+00:00"))
    assert http.get(f"{API}/instances/{instance}/backupRuns/{int(run_id)}").status_code == 200


def test_patch_merges_labels_and_null_removes_one(http, instance):
    body = {"settings": {"userLabels": {"tier": None, "expires": "2026-12-01"}}}
    wait_raw(http, http.patch(f"{API}/instances/{instance}", json=body).json())
    labels = http.get(f"{API}/instances/{instance}").json()["settings"]["userLabels"]
    assert labels == {"team": "ops", "expires": "2026-12-01"}


def test_list_filter_selects_by_label_and_state(http, instance):
    def names(expression: str) -> list[str]:
        body = http.get(f"{API}/instances", params={"filter": expression}).json()
        return [i["name"] for i in body.get("items", [])]

    assert names("settings.userLabels.team:ops state:RUNNABLE") == [instance]
    assert names("settings.userLabels.team:nobody") == []
    assert_cloud_sql_error(http.get(f"{API}/instances", params={"filter": "(weird"}), 400)


def test_restoring_a_failed_backup_run_is_refused(stand_in, http, instance):
    stand_in.fail_next_operation(instance, "BACKUP_VOLUME", "snapshot failed")
    operation = wait_raw(http, http.post(f"{API}/instances/{instance}/backupRuns", json={}).json())
    run_id = operation["backupContext"]["backupId"]
    run = http.get(f"{API}/instances/{instance}/backupRuns/{run_id}").json()
    assert run["status"] == "FAILED" and run["error"]["message"] == "snapshot failed"
    body = {"restoreBackupContext": {"backupRunId": run_id, "instanceId": instance, "project": PROJECT}}
    error = assert_cloud_sql_error(http.post(f"{API}/instances/{instance}/restoreBackup", json=body), 400)
    assert "FAILED" in error["message"]


def test_operation_user_is_the_service_account_of_the_callers_token(http, instance):
    def b64(part: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(part).encode()).decode().rstrip("=")

    token = f"{b64({'alg': 'RS256'})}.{b64({'sub': 'opsflows@p.iam.gserviceaccount.com'})}.c2ln"
    headers = {"Authorization": f"Bearer {token}"}
    operation = http.post(f"{API}/instances/{instance}/backupRuns", json={}, headers=headers).json()
    assert operation["user"] == "opsflows@p.iam.gserviceaccount.com"
    assert wait_raw(http, operation)["user"] == "opsflows@p.iam.gserviceaccount.com"


def test_control_routes_validate_their_input(http, instance):
    bad_type = {"instance": instance, "operation_type": "EXPLODE"}
    assert http.post("/_sandbox/sql/fail-next-operation", json=bad_type).status_code == 400
    assert http.post("/_sandbox/sql/stop-instance-postgres", json={}).status_code == 400
    assert (
        http.post("/_sandbox/sql/operation-duration", json={"min_operation_seconds": -1}).status_code == 400
    )
    logged = http.get("/_sandbox/requests").json()["requests"]
    assert any(r["path"] == f"{API}/instances/{instance}" for r in logged)
    assert not any(r["path"].startswith("/_sandbox") for r in logged)


def test_discovery_client_responses_match_googles_schemas(stand_in, instance):
    recorder: list = []
    api = discovery_client("sqladmin.v1beta4", stand_in.url, recorder)

    def wait(operation: dict) -> dict:
        while operation["status"] != "DONE":
            time.sleep(0.05)
            operation = api.operations().get(project=PROJECT, operation=operation["name"]).execute()
        return operation

    created = (
        api.instances()
        .insert(
            project=PROJECT,
            body={
                "name": "discovered",
                "region": REGION,
                "databaseVersion": "POSTGRES_15",
                "settings": {"tier": "db-f1-micro"},
            },
        )
        .execute()
    )
    assert wait(created).get("error") is None
    api.instances().get(project=PROJECT, instance="discovered").execute()
    api.instances().list(project=PROJECT, maxResults=1).execute()
    wait(
        api.instances()
        .patch(project=PROJECT, instance=instance, body={"settings": {"userLabels": {"a": "b"}}})
        .execute()
    )
    wait(
        api.backupRuns()
        .insert(project=PROJECT, instance=instance, body={"description": "conformance"})
        .execute()
    )
    stand_in.fail_next_operation(instance, "BACKUP_VOLUME", "injected")
    failed = wait(api.backupRuns().insert(project=PROJECT, instance=instance, body={}).execute())
    assert failed["error"]["errors"][0]["message"] == "injected"
    api.backupRuns().get(project=PROJECT, instance=instance, id=failed["backupContext"]["backupId"]).execute()
    first_page = api.backupRuns().list(project=PROJECT, instance=instance, maxResults=2)
    runs = first_page.execute()
    assert runs["nextPageToken"]
    api.backupRuns().list_next(first_page, runs).execute()
    body = {"exportContext": {"fileType": "SQL", "uri": f"gs://{BUCKET}/disc.sql", "databases": ["app"]}}
    wait(api.instances().export(project=PROJECT, instance=instance, body=body).execute())
    body = {"importContext": {"fileType": "SQL", "uri": f"gs://{BUCKET}/disc.sql", "database": "app"}}
    wait(api.instances().import_(project=PROJECT, instance=instance, body=body).execute())
    api.operations().list(project=PROJECT, instance=instance).execute()
    wait(api.instances().delete(project=PROJECT, instance="discovered").execute())

    checker = SchemaChecker("sqladmin.v1beta4")
    checked = set()
    for method, uri, body in recorder:
        schema = RESPONSE_SCHEMAS.get(method, "Operation")
        assert checker.errors(schema, body) == [], (method, uri)
        checked.add(method)
    assert (
        set(RESPONSE_SCHEMAS) | {"sql.instances.insert", "sql.instances.export", "sql.instances.delete"}
        <= checked
    )


def test_failed_create_leaves_a_failed_instance_that_can_be_deleted(stand_in, http):
    stand_in.fail_next_operation("doomed", "CREATE", "Insufficient capacity in europe-west1-b.")
    created = wait_raw(http, http.post(f"{API}/instances", json={"name": "doomed", "region": REGION}).json())
    assert created["error"]["errors"][0]["message"] == "Insufficient capacity in europe-west1-b."
    assert http.get(f"{API}/instances/doomed").json()["state"] == "FAILED"
    body = {"exportContext": {"fileType": "SQL", "uri": f"gs://{BUCKET}/doomed.sql", "databases": ["app"]}}
    assert_cloud_sql_error(http.post(f"{API}/instances/doomed/export", json=body), 400)
    wait_raw(http, http.delete(f"{API}/instances/doomed").json())
    assert_cloud_sql_error(http.get(f"{API}/instances/doomed"), 404, "instanceDoesNotExist")


@pytest.mark.parametrize(
    ("uri", "database", "fragment"),
    [
        (f"gs://{BUCKET}/missing-db.sql", "nope", 'database "nope" does not exist'),
        ("gs://no-such-bucket/x.sql", "app", "no-such-bucket"),
    ],
)
def test_export_problems_found_while_running_end_done_with_an_error(http, instance, uri, database, fragment):
    body = {"exportContext": {"fileType": "SQL", "uri": uri, "databases": [database]}}
    done = wait_raw(http, http.post(f"{API}/instances/{instance}/export", json=body).json())
    assert done["status"] == "DONE" and fragment in done["error"]["errors"][0]["message"]


def test_import_of_a_missing_object_ends_done_with_an_error(http, instance):
    body = {"importContext": {"fileType": "SQL", "uri": f"gs://{BUCKET}/not-there.sql", "database": "app"}}
    done = wait_raw(http, http.post(f"{API}/instances/{instance}/import", json=body).json())
    assert "not-there.sql" in done["error"]["errors"][0]["message"]
