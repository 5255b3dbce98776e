"""Contract of the Cloud SQL Admin stand-in, driven through the real sqladmin_v1beta4 REST clients.

Every instance is a real PostgreSQL cluster on its own loopback address; assertions are on what a flow
could observe: operations, instances, backup runs, objects in storage and rows in the databases.
"""

from __future__ import annotations

import gzip

import httpx
import psycopg
import pytest
from google.api_core import exceptions

from sandbox.http import ApiError
from tests.sandbox.cloudsql_support import BUCKET, PROJECT, REGION, running_stand_in, succeeded, wait

ROWS = [(1, "apple"), (2, "pear"), (3, "plum")]


def connect(stand_in, instance: dict | object, database: str) -> psycopg.Connection:
    """Reach an instance the way a flow must: its PRIMARY address and the stand-in's one port."""
    addresses = instance["ipAddresses"] if isinstance(instance, dict) else instance.ip_addresses
    address = addresses[0]["ipAddress"] if isinstance(instance, dict) else addresses[0].ip_address
    return psycopg.connect(
        host=address, port=stand_in.sql_port, user="postgres", dbname=database, autocommit=True
    )


def rows(stand_in, name: str, database: str, table: str = "items") -> list[tuple]:
    with psycopg.connect(stand_in.instance_dsn(name, database)) as conn:
        return conn.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()


def table_exists(stand_in, name: str, database: str, table: str) -> bool:
    with psycopg.connect(stand_in.instance_dsn(name, database)) as conn:
        return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()[0]


@pytest.fixture(scope="module")
def stand_in():
    yield from running_stand_in()


@pytest.fixture(scope="module")
def clients(stand_in):
    return stand_in.clients()


@pytest.fixture(scope="module")
def source(stand_in, clients):
    """`src`, created through instances.insert, holding database `app` with three rows."""
    operation = clients.instances.insert(
        {
            "project": PROJECT,
            "body": {
                "name": "src",
                "region": REGION,
                "database_version": "POSTGRES_15",
                "settings": {"tier": "db-custom-1-3840", "user_labels": {"team": "ops"}},
            },
        }
    )
    assert operation.operation_type.name == "CREATE" and operation.status.name == "PENDING"
    succeeded(clients, operation)
    instance = clients.instances.get({"project": PROJECT, "instance": "src"})
    with connect(stand_in, instance, "postgres") as conn:
        conn.execute("CREATE DATABASE app")
    with connect(stand_in, instance, "app") as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL)")
        conn.execute("INSERT INTO items VALUES (1, 'apple'), (2, 'pear'), (3, 'plum')")
    return "src"


@pytest.fixture(scope="module")
def target(stand_in, source):
    """`dst`, seeded with the Python helper `sandbox up` uses: an empty `app` database."""
    stand_in.create_instance("dst", REGION, databases=["app"], labels={"purpose": "restore-target"})
    return "dst"


def export(clients, instance: str, uri: str, database: str = "app"):
    body = {"export_context": {"file_type": "SQL", "uri": uri, "databases": [database]}}
    return clients.instances.export({"project": PROJECT, "instance": instance, "body": body})


def import_(clients, instance: str, uri: str, database: str = "app"):
    body = {
        "import_context": {"file_type": "SQL", "uri": uri, "database": database, "import_user": "postgres"}
    }
    return clients.instances.import_({"project": PROJECT, "instance": instance, "body": body})


def test_insert_gives_a_runnable_instance_reachable_at_its_own_address(stand_in, clients, source):
    instance = clients.instances.get({"project": PROJECT, "instance": source})
    assert instance.state.name == "RUNNABLE"
    assert instance.database_version.name == "POSTGRES_15"
    assert instance.connection_name == f"{PROJECT}:{REGION}:src"
    assert instance.settings.user_labels == {"team": "ops"}
    address = instance.ip_addresses[0]
    assert address.type_.name == "PRIMARY" and address.ip_address.startswith("127.0.")
    assert address.ip_address != "127.0.0.1"
    with connect(stand_in, instance, "app") as conn:
        assert conn.execute("SELECT count(*) FROM items").fetchone()[0] == 3


def test_on_demand_backup_run_is_a_successful_real_dump(stand_in, clients, source):
    operation = clients.backup_runs.insert(
        {"project": PROJECT, "instance": source, "body": {"description": "drill"}}
    )
    assert operation.operation_type.name == "BACKUP_VOLUME"
    run_id = operation.backup_context.backup_id
    succeeded(clients, operation)
    run = clients.backup_runs.get({"project": PROJECT, "instance": source, "id": run_id})
    assert (run.status.name, run.type_.name, run.description) == ("SUCCESSFUL", "ON_DEMAND", "drill")
    assert run.backup_kind.name == "SNAPSHOT" and run.location == REGION
    assert run.enqueued_time <= run.start_time <= run.end_time
    dumps = list((stand_in.state_dir / "backups" / source / str(run_id)).glob("*.dump"))
    assert len(dumps) == 2  # `postgres` and `app`
    listed = [r.id for r in clients.backup_runs.list({"project": PROJECT, "instance": source})]
    assert run_id in listed


def test_export_writes_a_gzipped_plain_dump_and_never_overwrites(stand_in, clients, source):
    uri = f"gs://{BUCKET}/src/2026-11-23.sql.gz"
    done = succeeded(clients, export(clients, source, uri))
    assert done.operation_type.name == "EXPORT" and done.export_context.uri == uri
    assert done.start_time and done.end_time and done.target_id == source
    script = gzip.decompress(stand_in.storage.read_object(BUCKET, "src/2026-11-23.sql.gz")).decode()
    assert "CREATE TABLE public.items" in script and "COPY public.items" in script
    assert "OWNER TO" not in script and "GRANT " not in script  # --no-owner --no-privileges

    again = wait(clients, export(clients, source, uri))
    assert again.status.name == "DONE"
    assert "already exists" in again.error.errors[0].message


def test_import_into_another_instance_gives_the_same_rows(stand_in, clients, source, target):
    uri = f"gs://{BUCKET}/src/for-import.sql"
    succeeded(clients, export(clients, source, uri))
    done = succeeded(clients, import_(clients, target, uri))
    assert done.operation_type.name == "IMPORT" and done.import_context.database == "app"
    assert rows(stand_in, target, "app") == rows(stand_in, source, "app") == ROWS


def test_failed_import_ends_done_with_the_psql_error_and_leaves_nothing(stand_in, clients, target):
    broken = b"CREATE TABLE half_loaded (x int);\nINSERT INTO half_loaded VALUES (1);\nSELEC oops;\n"
    stand_in.storage.write_object(BUCKET, "broken.sql.gz", gzip.compress(broken))
    done = wait(clients, import_(clients, target, f"gs://{BUCKET}/broken.sql.gz"))
    assert done.status.name == "DONE"
    error = done.error.errors[0]
    assert error.code == "ERROR_RDBMS" and "syntax error" in error.message
    assert not table_exists(stand_in, target, "app", "half_loaded")


def test_restore_backup_overwrites_the_target_and_nothing_else(stand_in, clients, source, target):
    operation = clients.backup_runs.insert({"project": PROJECT, "instance": source, "body": {}})
    run_id = operation.backup_context.backup_id
    succeeded(clients, operation)
    with psycopg.connect(stand_in.instance_dsn(source, "app"), autocommit=True) as conn:
        conn.execute("CREATE TABLE after_backup (x int)")  # must survive: only the target is restored
    with psycopg.connect(stand_in.instance_dsn(target, "app"), autocommit=True) as conn:
        conn.execute("CREATE TABLE target_only (x int)")
    with psycopg.connect(stand_in.instance_dsn(target, "postgres"), autocommit=True) as conn:
        conn.execute("CREATE DATABASE scratch")

    body = {"restore_backup_context": {"backup_run_id": run_id, "instance_id": source, "project": PROJECT}}
    done = succeeded(
        clients, clients.instances.restore_backup({"project": PROJECT, "instance": target, "body": body})
    )
    assert done.operation_type.name == "RESTORE_VOLUME" and done.target_id == target

    assert rows(stand_in, target, "app") == ROWS
    assert not table_exists(stand_in, target, "app", "target_only")
    with psycopg.connect(stand_in.instance_dsn(target, "postgres")) as conn:
        databases = {r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE NOT datistemplate")}
    assert databases == {"postgres", "app"}  # the whole instance is replaced, as Cloud SQL does
    assert table_exists(stand_in, source, "app", "after_backup")


def test_clone_is_a_new_instance_with_copies_of_the_databases(stand_in, clients, source):
    body = {"clone_context": {"destination_instance_name": "src-clone"}}
    done = succeeded(clients, clients.instances.clone({"project": PROJECT, "instance": source, "body": body}))
    assert done.operation_type.name == "CLONE"
    clone = clients.instances.get({"project": PROJECT, "instance": "src-clone"})
    original = clients.instances.get({"project": PROJECT, "instance": source})
    assert clone.state.name == "RUNNABLE"
    assert clone.ip_addresses[0].ip_address != original.ip_addresses[0].ip_address
    assert rows(stand_in, "src-clone", "app") == ROWS
    with connect(stand_in, clone, "app") as conn:
        conn.execute("DELETE FROM items")
    assert rows(stand_in, source, "app") == ROWS


def test_delete_removes_the_instance_and_its_name_cannot_be_reused(stand_in, clients, source):
    stand_in.create_instance("short-lived", REGION, databases=[])
    address = (
        clients.instances.get({"project": PROJECT, "instance": "short-lived"}).ip_addresses[0].ip_address
    )
    operation = clients.instances.delete({"project": PROJECT, "instance": "short-lived"})
    assert operation.operation_type.name == "DELETE"
    succeeded(clients, operation)
    with pytest.raises(exceptions.NotFound) as missing:
        clients.instances.get({"project": PROJECT, "instance": "short-lived"})
    assert missing.value.errors[0]["reason"] == "instanceDoesNotExist"
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(
            host=address, port=stand_in.sql_port, user="postgres", dbname="postgres", connect_timeout=2
        )

    with pytest.raises(exceptions.Conflict) as reused:
        clients.instances.insert(
            {
                "project": PROJECT,
                "body": {"name": "short-lived", "region": REGION, "database_version": "POSTGRES_15"},
            }
        )
    assert reused.value.errors[0]["reason"] == "instanceAlreadyExists"
    assert "already exists" in reused.value.message


def test_second_mutation_while_one_runs_is_refused_with_operation_in_progress(stand_in, clients, source):
    stand_in.min_operation_seconds = 1.0
    try:
        running = clients.backup_runs.insert({"project": PROJECT, "instance": source, "body": {}})
        with pytest.raises(exceptions.Conflict) as refused:
            export(clients, source, f"gs://{BUCKET}/src/during-backup.sql")
        assert refused.value.errors[0]["reason"] == "operationInProgress"
        assert "another operation was already in progress" in refused.value.message
        status = clients.operations.get({"project": PROJECT, "operation": running.name}).status.name
        assert status in ("PENDING", "RUNNING")
    finally:
        stand_in.min_operation_seconds = 0.0
    succeeded(clients, running)
    succeeded(clients, export(clients, source, f"gs://{BUCKET}/src/after-backup.sql"))


def test_list_pagers_walk_every_page(clients, source, target):
    pages = clients.instances.list({"project": PROJECT, "max_results": 1}).pages
    names = [i.name for page in pages for i in page.items]
    assert {"src", "dst"} <= set(names) and len(names) == len(set(names))

    for _ in range(2):
        succeeded(clients, clients.backup_runs.insert({"project": PROJECT, "instance": target, "body": {}}))
    runs = list(clients.backup_runs.list({"project": PROJECT, "instance": target, "max_results": 1}))
    assert len(runs) >= 2 and [r.id for r in runs] == sorted((r.id for r in runs), reverse=True)

    operations = list(clients.operations.list({"project": PROJECT, "instance": target, "max_results": 2}))
    assert len(operations) >= 3 and {o.target_id for o in operations} == {target}


def test_patch_merges_user_labels(clients, target):
    body = {"settings": {"user_labels": {"expires": "2026-12-01"}}}
    operation = clients.instances.patch({"project": PROJECT, "instance": target, "body": body})
    assert operation.operation_type.name == "UPDATE"
    succeeded(clients, operation)
    instance = clients.instances.get({"project": PROJECT, "instance": target})
    assert instance.settings.user_labels == {"purpose": "restore-target", "expires": "2026-12-01"}


def test_automated_backups_come_from_the_python_side_and_can_be_backdated(stand_in, clients, target):
    from datetime import UTC, datetime

    run = stand_in.add_automated_backup(target, at=datetime(2026, 1, 2, 2, 0, tzinfo=UTC))
    assert run["type"] == "AUTOMATED" and run["status"] == "SUCCESSFUL"
    assert run["enqueuedTime"].startswith("2026-01-02T02:00:00")
    fetched = clients.backup_runs.get({"project": PROJECT, "instance": target, "id": int(run["id"])})
    assert fetched.type_.name == "AUTOMATED"


def test_injected_503_reaches_the_client_as_service_unavailable(stand_in, clients, source):
    httpx.post(
        f"{stand_in.url}/_sandbox/faults", json={"path": "/instances/src$", "method": "GET", "status": 503}
    )
    with pytest.raises(exceptions.ServiceUnavailable):
        clients.instances.get({"project": PROJECT, "instance": source})
    assert clients.instances.get({"project": PROJECT, "instance": source}).name == source


def test_fail_next_operation_ends_done_with_the_injected_error(stand_in, clients, source):
    spec = {"instance": source, "operation_type": "EXPORT", "message": "boom: disk full"}
    assert httpx.post(f"{stand_in.url}/_sandbox/sql/fail-next-operation", json=spec).status_code == 200
    done = wait(clients, export(clients, source, f"gs://{BUCKET}/src/never-written.sql"))
    assert done.error.errors[0].message == "boom: disk full"
    with pytest.raises(ApiError) as missing:
        stand_in.storage.read_object(BUCKET, "src/never-written.sql")
    assert missing.value.code == 404
    succeeded(clients, export(clients, source, f"gs://{BUCKET}/src/next-one-works.sql"))


def test_stopped_postgres_fails_connections_and_operations(stand_in, clients, target):
    httpx.post(f"{stand_in.url}/_sandbox/sql/stop-instance-postgres", json={"instance": target})
    try:
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(stand_in.instance_dsn(target, "app"), connect_timeout=2)
        done = wait(clients, export(clients, target, f"gs://{BUCKET}/dst/while-stopped.sql"))
        assert done.error.errors[0].code == "ERROR_RDBMS"
    finally:
        httpx.post(f"{stand_in.url}/_sandbox/sql/start-instance-postgres", json={"instance": target})
    with psycopg.connect(stand_in.instance_dsn(target, "app")) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_backup_run_delete_removes_only_that_run(stand_in, clients, target):
    automated = stand_in.add_automated_backup(target)
    operation = clients.backup_runs.insert(
        {"project": PROJECT, "instance": target, "body": {"description": "old"}}
    )
    run_id = operation.backup_context.backup_id
    succeeded(clients, operation)

    deleting = clients.backup_runs.delete({"project": PROJECT, "instance": target, "id": run_id})
    assert deleting.operation_type.name == "DELETE_VOLUME"
    succeeded(clients, deleting)
    with pytest.raises(exceptions.NotFound):
        clients.backup_runs.get({"project": PROJECT, "instance": target, "id": run_id})
    assert not (stand_in.state_dir / "backups" / target / str(run_id)).exists()
    kept = clients.backup_runs.get({"project": PROJECT, "instance": target, "id": int(automated["id"])})
    assert kept.status.name == "SUCCESSFUL"
