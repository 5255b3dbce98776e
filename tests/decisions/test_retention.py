"""Retention picks over dates: grandfather-father-son, newest verified kept, minimum kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tasks.decisions.retention import BackupSet, pick_backup_runs_to_delete, pick_retention

START = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # a Monday


def nightly(days: int, verified: bool = True) -> list[BackupSet]:
    return [BackupSet(f"b{i:03d}", START - timedelta(days=i), verified) for i in range(days)]


def test_daily_only_keeps_the_last_n_days():
    pick = pick_retention(nightly(10), keep_daily=3, keep_weekly=0, keep_monthly=0, minimum_keep=1)
    assert sorted(pick.keep) == ["b000", "b001", "b002"]
    assert pick.delete == [f"b{i:03d}" for i in range(9, 2, -1)]  # oldest first


def test_weekly_keeps_the_newest_of_each_iso_week():
    pick = pick_retention(nightly(21), keep_daily=1, keep_weekly=3, keep_monthly=0, minimum_keep=1)
    # Mon 23 Nov is its own week; then Sun 22 Nov and Sun 15 Nov close the two weeks before.
    assert sorted(pick.keep) == ["b000", "b001", "b008"]


def test_monthly_keeps_the_newest_of_each_month():
    pick = pick_retention(nightly(70), keep_daily=0, keep_weekly=0, keep_monthly=3, minimum_keep=1)
    assert {START - timedelta(days=int(k[1:])) for k in pick.keep} == {
        START,
        datetime(2026, 10, 31, 2, tzinfo=UTC),
        datetime(2026, 9, 30, 2, tzinfo=UTC),
    }


def test_several_backups_a_day_keep_the_newest_of_the_day():
    backups = [BackupSet("late", START + timedelta(hours=10)), BackupSet("early", START)]
    pick = pick_retention(backups, keep_daily=1, keep_weekly=0, keep_monthly=0, minimum_keep=1)
    assert list(pick.keep) == ["late"] and pick.delete == ["early"]


@pytest.mark.parametrize(
    ("daily", "weekly", "monthly", "minimum", "kept"),
    [(0, 0, 0, 1, 1), (0, 0, 0, 3, 3), (1, 0, 0, 5, 5), (7, 4, 12, 3, 10)],
)
def test_never_below_the_minimum_and_never_the_newest_verified(daily, weekly, monthly, minimum, kept):
    pick = pick_retention(nightly(30), daily, weekly, monthly, minimum)
    assert len(pick.keep) == kept
    assert "b000" in pick.keep


def test_the_newest_verified_survives_when_newer_ones_failed_verification():
    backups = nightly(3, verified=False)[:2] + [BackupSet("good", START - timedelta(days=5))]
    pick = pick_retention(backups, keep_daily=0, keep_weekly=0, keep_monthly=0, minimum_keep=1)
    assert pick.keep["good"] == "newest verified backup"
    # Unverified sets newer than it are left alone (one may be a run still in progress).
    assert set(pick.keep) == {"good", "b000", "b001"} and pick.delete == []


def test_no_backups_no_decisions():
    assert pick_retention([], 7, 4, 12, 3).delete == []


def test_on_demand_backup_runs_beyond_the_cap():
    assert pick_backup_runs_to_delete(["r5", "r4", "r3", "r2"], keep=2) == ["r3", "r2"]
    assert pick_backup_runs_to_delete(["r1"], keep=0) == []  # never the last one
