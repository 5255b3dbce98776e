"""The audit trail: append-only, hash-chained records of every run, in PostgreSQL.

Each record stores the hash of the record before it, and its own hash over its content, so an edited
row breaks its own hash and a removed row breaks the chain (sequence numbers are contiguous, and a
one-row head table holds the newest sequence and hash, so a removed last row shows too). Triggers
refuse UPDATE, DELETE and TRUNCATE; the hashes catch whoever goes around them.

Writers serialise on the head row (`SELECT ... FOR UPDATE`), so concurrent runs keep one valid chain.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

GENESIS = "0" * 64

# Each entry is applied once, in order; the applied count lives in audit_schema.
_MIGRATIONS = [
    """
    CREATE TABLE audit_records (
        seq          bigint PRIMARY KEY,
        recorded_at  timestamptz NOT NULL,
        event        text NOT NULL CHECK (event IN ('started', 'checkpoint', 'finished')),
        flow         text NOT NULL,
        deployment   text,
        environment  text,
        flow_run_id  text,
        run_url      text,
        trigger      text,
        actor        text,
        parameters   jsonb NOT NULL DEFAULT '{}',
        outcome      text NOT NULL,
        summary      jsonb NOT NULL DEFAULT '{}',
        error        text,
        notes        jsonb NOT NULL DEFAULT '[]',
        prev_hash    text NOT NULL,
        hash         text NOT NULL
    );
    CREATE INDEX audit_records_run ON audit_records (flow_run_id);
    CREATE INDEX audit_records_flow_env ON audit_records (flow, environment, recorded_at);
    CREATE TABLE audit_head (
        only_row  boolean PRIMARY KEY DEFAULT true CHECK (only_row),
        seq       bigint NOT NULL,
        hash      text NOT NULL
    );
    INSERT INTO audit_head (seq, hash) VALUES (0, '0000000000000000000000000000000000000000000000000000000000000000');
    CREATE FUNCTION audit_records_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'audit_records is append-only (% refused)', TG_OP;
    END $$;
    CREATE TRIGGER audit_records_no_update BEFORE UPDATE OR DELETE ON audit_records
        FOR EACH ROW EXECUTE FUNCTION audit_records_append_only();
    CREATE TRIGGER audit_records_no_truncate BEFORE TRUNCATE ON audit_records
        FOR EACH STATEMENT EXECUTE FUNCTION audit_records_append_only();
    """,
]

_HASHED_FIELDS = (
    "seq",
    "recorded_at",
    "event",
    "flow",
    "deployment",
    "environment",
    "flow_run_id",
    "run_url",
    "trigger",
    "actor",
    "parameters",
    "outcome",
    "summary",
    "error",
    "notes",
    "prev_hash",
)
_SECRET_NAME = re.compile(r"pass|secret|token|key|dsn|credential", re.IGNORECASE)
REDACTED = "********"


def redact(parameters: Any) -> Any:
    """Parameters as they may be stored: values under secret-looking names replaced."""
    if isinstance(parameters, dict):
        return {
            key: REDACTED if _SECRET_NAME.search(str(key)) and value not in (None, "") else redact(value)
            for key, value in parameters.items()
        }
    if isinstance(parameters, list):
        return [redact(item) for item in parameters]
    if hasattr(parameters, "get_secret_value"):
        return REDACTED
    return parameters


def _canonical(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def record_hash(record: dict[str, Any]) -> str:
    content = {name: record.get(name) for name in _HASHED_FIELDS}
    content["recorded_at"] = _timestamp(content["recorded_at"])
    payload = json.dumps(_canonical(content), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


def _timestamp(value: datetime | str) -> str:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.astimezone(UTC).isoformat(timespec="microseconds")


@dataclass
class ChainCheck:
    ok: bool
    records: int
    first_broken_seq: int | None = None
    reason: str = ""


class AuditStore:
    """The audit records of one PostgreSQL database (the environment's `audit_dsn`)."""

    def __init__(self, dsn: str):
        self.dsn = dsn
        self._schema_ready = False

    def _connect(self) -> psycopg.Connection:
        return psycopg.connect(self.dsn, row_factory=dict_row, connect_timeout=10)

    def ensure_schema(self) -> None:
        if self._schema_ready:
            return
        with self._connect() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('opsflows-audit-schema'))")
            conn.execute("CREATE TABLE IF NOT EXISTS audit_schema (applied integer NOT NULL)")
            row = conn.execute("SELECT applied FROM audit_schema").fetchone()
            applied = row["applied"] if row else 0
            for migration in _MIGRATIONS[applied:]:
                conn.execute(migration)
            if row is None:
                conn.execute("INSERT INTO audit_schema (applied) VALUES (%s)", (len(_MIGRATIONS),))
            else:
                conn.execute("UPDATE audit_schema SET applied = %s", (len(_MIGRATIONS),))
        self._schema_ready = True

    def append(self, **fields: Any) -> dict[str, Any]:
        """Append one record; returns it with its sequence number and hashes."""
        self.ensure_schema()
        with self._connect() as conn:
            head = conn.execute("SELECT seq, hash FROM audit_head FOR UPDATE").fetchone()
            record = {name: fields.get(name) for name in _HASHED_FIELDS}
            record.update(
                seq=head["seq"] + 1,
                prev_hash=head["hash"],
                recorded_at=datetime.now(UTC),
                parameters=_canonical(redact(fields.get("parameters") or {})),
                summary=_canonical(fields.get("summary") or {}),
                notes=_canonical(fields.get("notes") or []),
            )
            record["hash"] = record_hash(record)
            columns = list(record)
            conn.execute(
                f"INSERT INTO audit_records ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})",
                [Jsonb(record[c]) if c in ("parameters", "summary", "notes") else record[c] for c in columns],
            )
            conn.execute("UPDATE audit_head SET seq = %s, hash = %s", (record["seq"], record["hash"]))
        return record

    def records(
        self,
        flow: str | None = None,
        environment: str | None = None,
        since: datetime | None = None,
        flow_run_id: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Records in chain order (oldest first), optionally filtered."""
        self.ensure_schema()
        where, args = [], []
        for column, value in (("flow", flow), ("environment", environment), ("flow_run_id", flow_run_id)):
            if value is not None:
                where.append(f"{column} = %s")
                args.append(value)
        if since is not None:
            where.append("recorded_at >= %s")
            args.append(since)
        sql = "SELECT * FROM audit_records"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq"
        if limit is not None:
            sql = f"SELECT * FROM ({sql} DESC LIMIT {int(limit)}) newest ORDER BY seq"
        with self._connect() as conn:
            return conn.execute(sql, args).fetchall()

    def has_finished(self, flow_run_id: str) -> bool:
        self.ensure_schema()
        with self._connect() as conn:
            row = conn.execute(
                "SELECT 1 FROM audit_records WHERE flow_run_id = %s AND event = 'finished' LIMIT 1",
                (flow_run_id,),
            ).fetchone()
        return row is not None

    def stable_traffic_history(self, environment: str, service: str, limit: int = 20) -> list[list[dict]]:
        """The traffic lists recorded as stable for a service, newest first (checkpoints and ends)."""
        self.ensure_schema()
        with self._connect() as conn:
            rows = conn.execute(
                """
                SELECT summary->'stable_traffic'->'traffic' AS traffic FROM audit_records
                WHERE environment = %s AND summary->'stable_traffic'->>'service' = %s
                ORDER BY seq DESC LIMIT %s
                """,
                (environment, service, limit),
            ).fetchall()
        return [row["traffic"] for row in rows]

    def verify(self) -> ChainCheck:
        """Walk the whole chain; name the first record that was altered, removed or inserted."""
        self.ensure_schema()
        with self._connect() as conn:
            head = conn.execute("SELECT seq, hash FROM audit_head").fetchone()
            rows = conn.execute("SELECT * FROM audit_records ORDER BY seq").fetchall()
        previous_hash, expected_seq = GENESIS, 1
        for row in rows:
            if row["seq"] != expected_seq:
                return ChainCheck(
                    False,
                    len(rows),
                    expected_seq,
                    f"record {expected_seq} is missing (next present is {row['seq']})",
                )
            if row["prev_hash"] != previous_hash:
                return ChainCheck(
                    False, len(rows), row["seq"], f"record {row['seq']} does not follow its predecessor"
                )
            if record_hash(row) != row["hash"]:
                return ChainCheck(
                    False, len(rows), row["seq"], f"record {row['seq']} was altered after it was written"
                )
            previous_hash, expected_seq = row["hash"], expected_seq + 1
        if head["seq"] != expected_seq - 1 or head["hash"] != previous_hash:
            return ChainCheck(
                False,
                len(rows),
                expected_seq,
                f"the chain ends at record {expected_seq - 1} but {head['seq']} were written: newest records removed",
            )
        return ChainCheck(True, len(rows))
