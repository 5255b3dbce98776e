"""Recovery-point picks (as AWS Backup's LATEST/RANDOM_WITHIN_WINDOW), manifest comparisons, RTO/RPO."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from tasks.decisions.recovery import (
    RecoveryPoint,
    compare_with_manifest,
    measure_objectives,
    pick_recovery_point,
)
from tasks.errors import InvalidInput

NOW = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)
POINTS = [RecoveryPoint(f"app-db/m-{d}.json", NOW - timedelta(days=d, hours=4)) for d in (0, 1, 2, 10, 40)]


@pytest.mark.parametrize(
    ("selection", "window", "expected"),
    [
        ("latest", 30, "app-db/m-0.json"),
        ("app-db/m-10.json", 30, "app-db/m-10.json"),
        ("m-40.json", 30, "app-db/m-40.json"),  # explicit ids ignore the window
    ],
)
def test_pick_latest_and_explicit(selection, window, expected):
    assert pick_recovery_point(POINTS, selection, NOW, window, random.Random(1)).key == expected


def test_pick_random_stays_within_the_window_and_covers_it():
    picks = {pick_recovery_point(POINTS, "random", NOW, 5, random.Random(seed)).key for seed in range(50)}
    assert picks == {"app-db/m-0.json", "app-db/m-1.json", "app-db/m-2.json"}


@pytest.mark.parametrize(
    ("selection", "window", "message"), [("latest", 0.1, "no recovery point"), ("nope", 30, "not found")]
)
def test_pick_errors(selection, window, message):
    with pytest.raises(InvalidInput, match=message):
        pick_recovery_point(POINTS, selection, NOW, window, random.Random(1))


MANIFEST = {
    "schema_fingerprint": "abc" * 10,
    "migrations_head": "0002",
    "row_counts": {"public.orders": 1000, "public.events": 500},
}


def test_compare_passes_on_equal_facts():
    checks = compare_with_manifest(
        "shop", MANIFEST, "abc" * 10, {"public.orders": 1000, "public.events": 500}, "0002", {}
    )
    assert all(c.passed for c in checks) and len(checks) == 4


def test_compare_reports_expected_and_actual():
    checks = compare_with_manifest("shop", MANIFEST, "zzz" * 10, {"public.orders": 999}, "0001", {})
    failed = {c.name: (c.expected, c.actual) for c in checks if not c.passed}
    assert failed == {
        "shop: schema fingerprint": (MANIFEST["schema_fingerprint"][:16], ("zzz" * 10)[:16]),
        "shop: migrations head": ("0002", "0001"),
        "shop: rows in public.orders": (1000, 999),
        "shop: rows in public.events": (500, None),  # a table missing after restore
    }


def test_tolerance_per_table_for_live_written_tables():
    counts = {"public.orders": 1000, "public.events": 510}
    assert all(
        c.passed
        for c in compare_with_manifest("shop", MANIFEST, "abc" * 10, counts, "0002", {"events": 0.05})
    )
    assert not all(c.passed for c in compare_with_manifest("shop", MANIFEST, "abc" * 10, counts, "0002", {}))


def test_objectives():
    start = NOW
    result = measure_objectives(
        start, start + timedelta(minutes=30), start - timedelta(hours=4), 3600, 26 * 3600
    )
    assert (result.rto_seconds, result.rpo_seconds, result.rto_met, result.rpo_met) == (
        1800,
        4 * 3600,
        True,
        True,
    )
    assert not measure_objectives(start, start + timedelta(hours=5), start, 4 * 3600, 1).rto_met
