"""Restore drill decisions: which recovery point to restore, how a restored database compares with its
manifest, and whether the recovery objectives were met.

Recovery-point selection follows AWS Backup's restore testing (LATEST_WITHIN_WINDOW,
RANDOM_WITHIN_WINDOW), plus an explicit pick by id.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from tasks.errors import InvalidInput

LATEST = "latest"
RANDOM = "random"


@dataclass(frozen=True)
class RecoveryPoint:
    key: str  # manifest object name, or backup run id as a string
    taken_at: datetime


def pick_recovery_point(
    points: list[RecoveryPoint], selection: str, now: datetime, window_days: float, rng: random.Random
) -> RecoveryPoint:
    """`latest` or `random` within the last `window_days`, or the point whose key is `selection`."""
    if selection not in (LATEST, RANDOM):
        for point in points:
            if point.key == selection or point.key.endswith("/" + selection):
                return point
        raise InvalidInput(
            f"recovery point {selection!r} not found among {len(points)} available; nothing was created"
        )
    in_window = sorted(
        (p for p in points if now - timedelta(days=window_days) <= p.taken_at <= now),
        key=lambda p: p.taken_at,
        reverse=True,
    )
    if not in_window:
        raise InvalidInput(
            f"no recovery point within the last {window_days:g} days ({len(points)} older or none); nothing was created"
        )
    return in_window[0] if selection == LATEST else rng.choice(in_window)


@dataclass(frozen=True)
class Check:
    name: str
    expected: object
    actual: object
    passed: bool

    def as_dict(self) -> dict:
        return {"check": self.name, "expected": self.expected, "actual": self.actual, "passed": self.passed}


def compare_with_manifest(
    database: str,
    manifest: dict,
    fingerprint: str,
    counts: dict[str, int],
    migrations_head: str | None,
    tolerance: dict[str, float],
) -> list[Check]:
    """Schema fingerprint, every table's row count (within its tolerance), and the migrations head."""
    checks = [
        Check(
            f"{database}: schema fingerprint",
            manifest["schema_fingerprint"][:16],
            fingerprint[:16],
            fingerprint == manifest["schema_fingerprint"],
        ),
        Check(
            f"{database}: migrations head",
            manifest.get("migrations_head"),
            migrations_head,
            migrations_head == manifest.get("migrations_head"),
        ),
    ]
    expected_counts: dict[str, int] = manifest["row_counts"]
    for table in sorted(set(expected_counts) | set(counts)):
        expected, actual = expected_counts.get(table), counts.get(table)
        allowed = tolerance.get(table, tolerance.get(table.split(".", 1)[-1], 0.0))
        if expected is None or actual is None:
            passed = False
        else:
            passed = abs(actual - expected) <= allowed * max(expected, 1)
        checks.append(Check(f"{database}: rows in {table}", expected, actual, passed))
    return checks


@dataclass(frozen=True)
class Objectives:
    rto_seconds: float
    rpo_seconds: float
    rto_met: bool
    rpo_met: bool


def measure_objectives(
    drill_started: datetime,
    validated: datetime,
    recovery_point_time: datetime,
    rto_target_s: float,
    rpo_target_s: float,
) -> Objectives:
    """RTO: drill start → validated restore. RPO: the recovery point's age when the drill started."""
    rto = (validated - drill_started).total_seconds()
    rpo = (drill_started - recovery_point_time).total_seconds()
    return Objectives(rto, rpo, rto <= rto_target_s, rpo <= rpo_target_s)
