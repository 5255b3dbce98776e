"""The DR posture table is built from the audit trail: the newest fact of each kind wins."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flows._posture import dr_posture_rows

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def record(flow, outcome, summary, hours_ago):
    return {
        "flow": flow,
        "event": "finished",
        "outcome": outcome,
        "summary": summary,
        "recorded_at": NOW - timedelta(hours=hours_ago),
    }


def test_posture_rows():
    backup = {"manifest": "app-db/m-1.json", "finished_at": (NOW - timedelta(hours=10)).isoformat()}
    rows = dr_posture_rows(
        [
            record(
                "nightly-backup",
                "completed",
                {"backup": {"manifest": "old", "finished_at": NOW.isoformat()}},
                30,
            ),
            record("nightly-backup", "completed", {"backup": backup}, 10),
            record(
                "nightly-backup", "failed", {}, 2
            ),  # a failed night does not replace the last verified one
            record("replicate-backups", "completed", {"replication": {"lag_seconds": 0.0}}, 1),
            record(
                "restore-drill",
                "failed",
                {
                    "drill": {
                        "passed": False,
                        "rto_seconds": 80.5,
                        "rpo_seconds": 3600.0,
                        "finished_at": (NOW - timedelta(hours=5)).isoformat(),
                    }
                },
                5,
            ),
        ],
        NOW,
    )
    table = {row["check"]: (row["value"], row["age"]) for row in rows}
    assert table["last verified backup"] == ("app-db/m-1.json", "10.0 h")
    assert table["replication lag"] == ("0 s (completed)", "1.0 h")
    assert table["last restore drill"] == ("FAILED", "5.0 h")
    assert table["drill RTO"][0] == "80.5 s"


def test_posture_without_history():
    values = [row["value"] for row in dr_posture_rows([], NOW)]
    assert values[:3] == ["none", "never replicated", "never drilled"]
