"""Nightly backup against the sandbox: real Cloud SQL stand-in (real PostgreSQL), real storage stand-in."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from flows.backup import nightly_backup
from sandbox.seed import ROW_COUNTS
from tests.flows.helpers import audit_records, clear_log, mutations, run_id


def primary(sandbox):
    return sandbox.storage.client().bucket(sandbox.environment.storage.primary_bucket)


def manifest_of(sandbox, state) -> dict:
    name = state.result()["manifest"]
    return json.loads(primary(sandbox).blob(name).download_as_bytes())


def test_backup_writes_verified_exports_and_a_manifest(sandbox):
    state = nightly_backup("sandbox", replicate=False, return_state=True)
    assert state.is_completed(), state.message
    manifest = manifest_of(sandbox, state)
    (export,) = manifest["objects"]
    blob = primary(sandbox).get_blob(export["name"])
    assert (blob.size, blob.crc32c) == (export["size"], export["crc32c"]) and blob.size > 0
    today = datetime.now(UTC)
    assert export["name"].startswith(f"app-db/{today:%Y/%m/%d}/shop-") and export["name"].endswith(".sql.gz")
    assert b"CREATE TABLE public.orders" in gzip.decompress(blob.download_as_bytes())
    shop = manifest["databases"]["shop"]
    assert shop["row_counts"] == {f"public.{t}": n for t, n in ROW_COUNTS.items()} | {
        "public.schema_migrations": 2
    }
    assert shop["migrations_head"] == "0002_order_items"
    assert manifest["database_version"] == "POSTGRES_15"
    run = sandbox.sql.clients().backup_runs.get(
        {"project": sandbox.environment.project, "instance": "app-db", "id": manifest["backup_run_id"]}
    )
    assert (run.status.name, run.type_.name) == ("SUCCESSFUL", "ON_DEMAND")
    finished = audit_records(sandbox, run_id(state))[-1]
    assert (
        finished["outcome"] == "completed"
        and finished["summary"]["backup"]["manifest"] == state.result()["manifest"]
    )


def test_schema_fingerprint_is_stable_and_follows_the_schema(sandbox):
    first = manifest_of(sandbox, nightly_backup("sandbox", replicate=False, return_state=True))
    second = manifest_of(sandbox, nightly_backup("sandbox", replicate=False, return_state=True))
    fingerprint = first["databases"]["shop"]["schema_fingerprint"]
    assert second["databases"]["shop"]["schema_fingerprint"] == fingerprint
    dsn = sandbox.sql.instance_dsn("app-db", "shop")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("ALTER TABLE customers ADD COLUMN loyalty_tier text")
    try:
        third = manifest_of(sandbox, nightly_backup("sandbox", replicate=False, return_state=True))
        assert third["databases"]["shop"]["schema_fingerprint"] != fingerprint
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("ALTER TABLE customers DROP COLUMN loyalty_tier")


def test_an_operation_in_progress_is_waited_out_at_the_submit_call(sandbox):
    clients = sandbox.sql.clients()
    sandbox.sql.min_operation_seconds = 1.5
    try:
        busy = clients.instances.export(
            {
                "project": sandbox.environment.project,
                "instance": "app-db",
                "body": {
                    "export_context": {
                        "file_type": "SQL",
                        "databases": ["shop"],
                        "uri": f"gs://{sandbox.environment.storage.primary_bucket}/manual/{datetime.now(UTC):%H%M%S%f}.sql",
                    }
                },
            }
        )
        assert busy.status.name in ("PENDING", "RUNNING")
        clear_log(sandbox.sql)
        state = nightly_backup("sandbox", replicate=False, return_state=True)
    finally:
        sandbox.sql.min_operation_seconds = 0.0
    assert state.is_completed(), state.message
    inserts = [m["status"] for m in mutations(sandbox.sql) if m["path"].endswith("/backupRuns")]
    assert inserts[0] == 409 and inserts[-1] == 200


@pytest.mark.parametrize(
    ("operation", "stage"), [("BACKUP_VOLUME", "backup run"), ("EXPORT", "export of shop")]
)
def test_a_failed_backup_or_export_is_reported_not_hidden(sandbox, operation, stage):
    sandbox.slack.messages.clear()
    sandbox.sql.fail_next_operation(
        instance="app-db", operation_type=operation, message="disk quota exceeded"
    )
    state = nightly_backup("sandbox", replicate=False, return_state=True)
    assert state.is_failed()
    assert stage in state.message and "disk quota exceeded" in state.message
    assert audit_records(sandbox, run_id(state))[-1]["outcome"] == "failed"
    assert any("nightly-backup" in m["text"] and "disk quota" in m["text"] for m in sandbox.slack.messages)


def _old_set(sandbox, days_ago: int) -> str:
    """An export set as an earlier night left it: export object + manifest."""
    at = datetime.now(UTC) - timedelta(days=days_ago)
    stamp = at.strftime("%Y%m%dT%H%M%SZ")
    prefix = f"app-db/{at:%Y/%m/%d}"
    bucket = primary(sandbox)
    export = bucket.blob(f"{prefix}/shop-{stamp}.sql.gz")
    export.upload_from_string(gzip.compress(b"-- old dump\n"))
    manifest = {
        "objects": [{"name": export.name, "database": "shop", "size": export.size, "crc32c": export.crc32c}]
    }
    bucket.blob(f"{prefix}/manifest-{stamp}.json").upload_from_string(json.dumps(manifest))
    return f"{prefix}/manifest-{stamp}.json"


def test_retention_thins_old_sets_and_never_touches_automated_backups(sandbox):
    sandbox.sql.add_automated_backup("app-db", at=datetime.now(UTC) - timedelta(days=400))
    ancient = [_old_set(sandbox, days) for days in range(400, 412)]  # twelve nights, a year ago
    recent = _old_set(sandbox, 2)
    dry = nightly_backup("sandbox", dry_run=True, return_state=True)
    would_delete = set(dry.result()["would_delete"])
    # Some of the old nights go (GFS keeps the newest of each day/week/month); the newest of them, the
    # recent set and today's newest stay.
    assert would_delete & set(ancient) and not set(ancient) <= would_delete
    assert ancient[0] not in would_delete and recent not in would_delete
    assert all(primary(sandbox).get_blob(name) for name in ancient)  # the dry run deleted nothing

    state = nightly_backup("sandbox", replicate=False, return_state=True)
    assert state.is_completed(), state.message
    names = {b.name for b in primary(sandbox).list_blobs(prefix="app-db/")}
    assert not would_delete & names  # exactly what the dry run listed went (the new set is newer still)
    assert set(ancient) - would_delete <= names and recent in names
    runs = list(
        sandbox.sql.clients().backup_runs.list({"project": sandbox.environment.project, "instance": "app-db"})
    )
    assert any(r.type_.name == "AUTOMATED" for r in runs)
    ours = [
        r
        for r in runs
        if r.type_.name == "ON_DEMAND"
        and r.status.name == "SUCCESSFUL"
        and r.description.startswith("opsflows nightly backup")
    ]
    assert len(ours) <= sandbox.environment.retention.keep_on_demand_backup_runs
