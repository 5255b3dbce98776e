"""The audit store: append-only, hash-chained, tamper evident, safe under concurrent writers."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from typer.testing import CliRunner

from cli.main import app
from tasks.audit import REDACTED, AuditStore, redact


def _append(store: AuditStore, n: int = 1, **extra) -> None:
    for i in range(n):
        store.append(
            event="started",
            flow="deploy",
            environment="sandbox",
            outcome="running",
            parameters={"image": f"img:{i}"},
            **extra,
        )


def _tamper(dsn: str, statement: str) -> None:
    """What an administrator going around the triggers could do."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("ALTER TABLE audit_records DISABLE TRIGGER USER")
        conn.execute(statement)
        conn.execute("ALTER TABLE audit_records ENABLE TRIGGER USER")


def test_a_fresh_chain_verifies(fresh_database):
    store = AuditStore(fresh_database)
    _append(store, 3)
    check = store.verify()
    assert check.ok and check.records == 3
    assert [r["seq"] for r in store.records()] == [1, 2, 3]


def test_the_table_refuses_updates_deletes_and_truncate(fresh_database):
    store = AuditStore(fresh_database)
    _append(store, 2)
    with psycopg.connect(fresh_database, autocommit=True) as conn:
        for statement in (
            "UPDATE audit_records SET actor = 'x'",
            "DELETE FROM audit_records",
            "TRUNCATE audit_records",
        ):
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                conn.execute(statement)
    assert store.verify().ok


@pytest.mark.parametrize(
    ("statement", "broken_seq", "reason"),
    [
        ("UPDATE audit_records SET actor = 'mallory' WHERE seq = 2", 2, "altered"),
        ('UPDATE audit_records SET parameters = \'{"image": "evil"}\' WHERE seq = 3', 3, "altered"),
        ("DELETE FROM audit_records WHERE seq = 2", 2, "missing"),
        ("DELETE FROM audit_records WHERE seq = 4", 4, "removed"),
    ],
    ids=["edited-actor", "edited-parameters", "deleted-middle", "deleted-newest"],
)
def test_verify_names_the_first_broken_record(fresh_database, statement, broken_seq, reason):
    store = AuditStore(fresh_database)
    _append(store, 4)
    _tamper(fresh_database, statement)
    check = store.verify()
    assert not check.ok
    assert check.first_broken_seq == broken_seq
    assert reason in check.reason


def test_cli_verify_exits_non_zero_on_a_broken_chain(fresh_database):
    store = AuditStore(fresh_database)
    _append(store, 3)
    runner = CliRunner()
    ok = runner.invoke(app, ["audit", "verify", "--dsn", fresh_database])
    assert ok.exit_code == 0, ok.output
    assert "intact: 3 records" in ok.output
    _tamper(fresh_database, "UPDATE audit_records SET outcome = 'completed' WHERE seq = 1")
    broken = runner.invoke(app, ["audit", "verify", "--dsn", fresh_database])
    assert broken.exit_code == 1
    assert "record 1" in broken.output


def test_cli_list_filters_by_flow(fresh_database):
    store = AuditStore(fresh_database)
    _append(store, 2)
    store.append(event="started", flow="nightly-backup", environment="sandbox", outcome="running")
    result = CliRunner().invoke(
        app, ["audit", "list", "--dsn", fresh_database, "--flow", "nightly-backup", "--since", "1h"]
    )
    assert result.exit_code == 0, result.output
    assert result.output.count("nightly-backup") == 1
    assert "deploy" not in result.output


def test_concurrent_writers_keep_one_valid_chain(fresh_database):
    AuditStore(fresh_database).ensure_schema()

    def writer(worker: int) -> None:
        store = AuditStore(fresh_database)
        for i in range(15):
            store.append(
                event="started",
                flow=f"flow-{worker}",
                environment="sandbox",
                outcome="running",
                parameters={"i": i},
            )

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(writer, range(8)))
    check = AuditStore(fresh_database).verify()
    assert check.ok and check.records == 120


def test_secrets_are_redacted_before_they_are_stored(fresh_database):
    store = AuditStore(fresh_database)
    store.append(
        event="started",
        flow="deploy",
        environment="sandbox",
        outcome="running",
        parameters={
            "image": "x",
            "env": {"DB_PASSWORD": "hunter2", "LOG_LEVEL": "info"},
            "slack_token": "xoxb-1",
        },
    )
    (record,) = store.records()
    assert record["parameters"] == {
        "image": "x",
        "env": {"DB_PASSWORD": REDACTED, "LOG_LEVEL": "info"},
        "slack_token": REDACTED,
    }
    assert "hunter2" not in str(redact({"nested": [{"api_key": "hunter2"}]}))
