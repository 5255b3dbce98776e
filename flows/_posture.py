"""The DR posture of an environment, as one table artifact (stable key) refreshed by every backup,
replication and drill run: is there a recent verified backup, is DR keeping up, does restore work?"""

from __future__ import annotations

from datetime import UTC, datetime

from prefect.artifacts import create_table_artifact

from blocks import OpsEnvironment
from flows._audited import audit_store


def _age(iso: str | None, now: datetime) -> str:
    if not iso:
        return "-"
    hours = (now - datetime.fromisoformat(iso)).total_seconds() / 3600
    return f"{hours:.1f} h"


def dr_posture_rows(records: list[dict], now: datetime) -> list[dict]:
    """The posture table from audit records (oldest first): the newest fact of each kind wins."""
    backup = replication = drill = None
    for record in records:
        summary = record["summary"]
        if record["event"] != "finished":
            continue
        if record["flow"] == "nightly-backup" and record["outcome"] == "completed" and "backup" in summary:
            backup = summary["backup"]
        if record["flow"] == "replicate-backups" and "replication" in summary:
            replication = {
                **summary["replication"],
                "at": record["recorded_at"].isoformat(),
                "outcome": record["outcome"],
            }
        if record["flow"] == "restore-drill" and "drill" in summary:
            drill = summary["drill"]
    return [
        {
            "check": "last verified backup",
            "value": backup["manifest"] if backup else "none",
            "age": _age(backup["finished_at"] if backup else None, now),
        },
        {
            "check": "replication lag",
            "value": f"{replication['lag_seconds']:.0f} s ({replication['outcome']})"
            if replication
            else "never replicated",
            "age": _age(replication["at"] if replication else None, now),
        },
        {
            "check": "last restore drill",
            "value": ("passed" if drill["passed"] else "FAILED") if drill else "never drilled",
            "age": _age(drill["finished_at"] if drill else None, now),
        },
        {
            "check": "drill RTO",
            "value": f"{drill['rto_seconds']} s" if drill and drill["rto_seconds"] else "-",
            "age": "",
        },
        {
            "check": "drill recovery-point age (RPO)",
            "value": f"{drill['rpo_seconds']} s" if drill and drill["rpo_seconds"] else "-",
            "age": "",
        },
    ]


def publish_dr_posture(environment: OpsEnvironment, environment_name: str) -> None:
    records = [
        r
        for r in audit_store(environment).records(environment=environment_name, limit=500)
        if r["flow"] in ("nightly-backup", "replicate-backups", "restore-drill")
    ]
    create_table_artifact(
        key=f"dr-posture-{environment_name}".lower().replace("_", "-"),
        table=dr_posture_rows(records, datetime.now(UTC)),
        description=f"DR posture of {environment_name}: backups, replication, restore drills",
    )
