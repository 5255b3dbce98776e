"""Restore drills against the sandbox: the DR copy restored into a real scratch PostgreSQL, validated,
and always torn down."""

from __future__ import annotations

import json
import threading
import time

import pytest

from flows.backup import nightly_backup
from flows.restore_drill import DRILL_LABEL, EXPIRES_LABEL, restore_drill
from tasks.cloud_sql import InstanceInfo, check_deletable, delete_instance
from tasks.errors import UnsafeOperation
from tests.flows.helpers import audit_records, clear_log, mutations, run_id


@pytest.fixture(scope="module")
def backed_up(sandbox):
    """A verified backup, replicated to DR."""
    state = nightly_backup("sandbox", return_state=True)
    assert state.is_completed(), state.message
    return state.result()


def instances(sandbox) -> dict[str, dict]:
    clients = sandbox.sql.clients()
    pages = clients.instances.list({"project": sandbox.environment.project}).pages
    return {i.name: dict(i.settings.user_labels) for page in pages for i in page.items}


def drill_instances(sandbox) -> list[str]:
    return [name for name in instances(sandbox) if name.startswith("app-db-drill-")]


@pytest.fixture
def environment(sandbox):
    """The sandbox environment; tests may change it, and it is put back afterwards."""
    original = sandbox.environment.model_copy(deep=True)
    yield sandbox.environment
    sandbox.environment = original
    original.save("sandbox", overwrite=True)


def test_drill_from_the_dr_copy_passes_and_cleans_up(sandbox, backed_up):
    state = restore_drill("sandbox", requested_by="sre", return_state=True)
    assert state.is_completed(), state.message
    assert drill_instances(sandbox) == []
    finished = audit_records(sandbox, run_id(state))[-1]
    drill = finished["summary"]["drill"]
    assert drill["passed"] is True and drill["rto_seconds"] > 0 and drill["failed_checks"] == []
    assert set(drill["phases"]) >= {"create scratch instance", "restore", "validate", "teardown"}
    assert finished["summary"]["facts"]["teardown"].startswith("deleted app-db-drill-")
    # The scratch instance lived in the DR region.
    creates = [
        m for m in mutations(sandbox.sql) if m["method"] == "POST" and m["path"].endswith("/instances")
    ]
    assert creates


def test_drill_from_a_backup_run(sandbox, backed_up):
    state = restore_drill("sandbox", source="backup_run", return_state=True)
    assert state.is_completed(), state.message
    assert drill_instances(sandbox) == []


def _dr_bucket(sandbox):
    return sandbox.storage.client().bucket(sandbox.environment.storage.dr_bucket)


def test_a_corrupted_dr_object_fails_before_any_restore(sandbox, backed_up):
    export = backed_up["objects"][0]["name"]
    blob = _dr_bucket(sandbox).blob(export)
    original = blob.download_as_bytes()
    blob.upload_from_string(original[:-10] + b"corrupted!")
    clear_log(sandbox.sql)
    try:
        state = restore_drill("sandbox", recovery_point=backed_up["manifest"], return_state=True)
    finally:
        blob.upload_from_string(original)
    assert state.is_failed() and "differs from the manifest" in state.message
    assert not [m for m in mutations(sandbox.sql) if m["path"].endswith("/instances")]


def test_a_table_missing_after_restore_fails_with_expected_and_actual(sandbox, backed_up):
    manifest_blob = _dr_bucket(sandbox).blob(backed_up["manifest"])
    original = manifest_blob.download_as_bytes()
    manifest = json.loads(original)
    manifest["databases"]["shop"]["row_counts"]["public.invoices"] = 42
    manifest_blob.upload_from_string(json.dumps(manifest))
    try:
        state = restore_drill("sandbox", recovery_point=backed_up["manifest"], return_state=True)
    finally:
        manifest_blob.upload_from_string(original)
    assert state.is_failed()
    assert "rows in public.invoices: expected 42, found None" in state.message
    assert drill_instances(sandbox) == []


def test_a_failed_import_is_reported_and_torn_down(sandbox, backed_up):
    sandbox.sql.fail_next_operation(operation_type="IMPORT", message="ERROR: out of disk")
    state = restore_drill("sandbox", return_state=True)
    assert state.is_failed() and "out of disk" in state.message
    assert drill_instances(sandbox) == []
    assert audit_records(sandbox, run_id(state))[-1]["summary"]["facts"]["teardown"].startswith("deleted")


def test_postgres_stopping_mid_validation_fails_the_drill_and_teardown_still_happens(
    sandbox, backed_up, environment
):
    environment.drill.sql_checks = {"slow check": "SELECT pg_sleep(3) IS NOT NULL"}
    environment.save("sandbox", overwrite=True)

    def stop_scratch_postgres_during_validation():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ops = sandbox.sql.clients().operations.list({"project": sandbox.environment.project})
            imports = [
                o
                for o in ops
                if o.operation_type.name == "IMPORT"
                and o.status.name == "DONE"
                and o.target_id.startswith("app-db-drill-")
                and o.target_id in drill_instances(sandbox)
            ]
            if imports:
                time.sleep(1.0)  # inside the 3 s check
                sandbox.sql.stop_instance_postgres(imports[0].target_id)
                return
            time.sleep(0.1)

    stopper = threading.Thread(target=stop_scratch_postgres_during_validation)
    stopper.start()
    state = restore_drill("sandbox", return_state=True)
    stopper.join()
    assert state.is_failed() and "slow check" in state.message
    assert drill_instances(sandbox) == []


def test_an_objective_breach_fails_the_run(sandbox, backed_up, environment):
    environment.objectives.rto_seconds = 0.001
    environment.save("sandbox", overwrite=True)
    state = restore_drill("sandbox", return_state=True)
    assert state.is_failed() and "RTO" in state.message and "objective" in state.message
    assert drill_instances(sandbox) == []


def test_keep_on_failure_labels_the_instance_to_expire(sandbox, backed_up, environment):
    environment.objectives.rto_seconds = 0.001
    environment.save("sandbox", overwrite=True)
    state = restore_drill("sandbox", keep_on_failure=True, return_state=True)
    assert state.is_failed()
    (kept,) = drill_instances(sandbox)
    assert EXPIRES_LABEL in instances(sandbox)[kept]
    assert audit_records(sandbox, run_id(state))[-1]["summary"]["facts"]["teardown"].startswith(
        f"kept {kept}"
    )
    # The next drill's sweep removes it once it has expired; here: expire it now.
    clients = sandbox.sql.clients()
    clients.instances.patch(
        {
            "project": sandbox.environment.project,
            "instance": kept,
            "body": {"settings": {"user_labels": {EXPIRES_LABEL: "1"}}},
        }
    )
    time.sleep(0.5)
    environment.objectives.rto_seconds = 4 * 3600
    environment.save("sandbox", overwrite=True)
    swept = restore_drill("sandbox", return_state=True)
    assert swept.is_completed(), swept.message
    assert kept in audit_records(sandbox, run_id(swept))[-1]["summary"]["facts"]["orphans deleted"]
    assert drill_instances(sandbox) == []


def test_orphan_sweep_touches_only_labelled_and_prefixed_instances(sandbox, backed_up):
    clients = sandbox.sql.clients()
    project = sandbox.environment.project

    def create(name, labels):
        sandbox.sql.create_instance(name, "europe-north1", databases=[], labels=labels)

    create("app-db-drill-20200101-orphan", {DRILL_LABEL: "true", EXPIRES_LABEL: "1"})
    create("app-db-drill-20200101-nolabel", {EXPIRES_LABEL: "1"})
    create("reporting-db", {DRILL_LABEL: "true", EXPIRES_LABEL: "1"})
    state = restore_drill("sandbox", return_state=True)
    assert state.is_completed(), state.message
    names = instances(sandbox)
    assert "app-db-drill-20200101-orphan" not in names
    assert {"app-db-drill-20200101-nolabel", "reporting-db"} <= set(names)
    for name in ("app-db-drill-20200101-nolabel", "reporting-db"):
        clients.instances.delete({"project": project, "instance": name})


def test_the_guard_refuses_instances_without_label_or_prefix(sandbox):
    for info in (
        InstanceInfo("app-db", "europe-west1", "RUNNABLE", {DRILL_LABEL: "true"}, None, "POSTGRES_15", None),
        InstanceInfo("app-db-drill-x", "europe-north1", "RUNNABLE", {}, None, "POSTGRES_15", None),
    ):
        with pytest.raises(UnsafeOperation, match="refusing to delete"):
            check_deletable(info, DRILL_LABEL, "app-db-drill-")
    production = InstanceInfo("app-db", "europe-west1", "RUNNABLE", {}, None, "POSTGRES_15", None)
    with pytest.raises(UnsafeOperation):
        delete_instance.fn(sandbox.environment, production, DRILL_LABEL, "app-db-drill-")
    assert "app-db" in instances(sandbox)


def test_dry_run_creates_nothing(sandbox, backed_up):
    clear_log(sandbox.sql)
    state = restore_drill("sandbox", dry_run=True, return_state=True)
    assert state.is_completed() and state.result()["would_create"].startswith("app-db-drill-")
    assert mutations(sandbox.sql) == []
