"""Which verified backups to keep: grandfather-father-son, with floors no schedule can go below.

Semantics as restic's `--keep-daily/--keep-weekly/--keep-monthly`: for each of the last N days (weeks,
months) that have a backup, keep the newest one of that day (week, month). On top of that: the newest
verified backup is never deleted, and at least `minimum_keep` backups always remain.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class BackupSet:
    """One night's export set (its manifest and objects), identified by `key`."""

    key: str
    taken_at: datetime
    verified: bool = True


@dataclass(frozen=True)
class RetentionPick:
    keep: dict[str, str]  # key → why it is kept
    delete: list[str]  # keys, oldest first


def _newest_per_bucket(
    backups: list[BackupSet], bucket: Callable[[datetime], Hashable], count: int
) -> list[BackupSet]:
    picked: list[BackupSet] = []
    seen: set[Hashable] = set()
    for backup in backups:  # newest first
        period = bucket(backup.taken_at)
        if period in seen:
            continue
        if len(seen) == count:
            break
        seen.add(period)
        picked.append(backup)
    return picked


def pick_retention(
    backups: list[BackupSet], keep_daily: int, keep_weekly: int, keep_monthly: int, minimum_keep: int
) -> RetentionPick:
    newest_first = sorted(backups, key=lambda b: b.taken_at, reverse=True)
    verified = [b for b in newest_first if b.verified]
    keep: dict[str, str] = {}

    def mark(items: list[BackupSet], why: str) -> None:
        for item in items:
            keep.setdefault(item.key, why)

    if verified:
        mark(verified[:1], "newest verified backup")
    mark(_newest_per_bucket(verified, lambda t: t.date(), keep_daily), "daily")
    mark(_newest_per_bucket(verified, lambda t: t.isocalendar()[:2], keep_weekly), "weekly")
    mark(_newest_per_bucket(verified, lambda t: (t.year, t.month), keep_monthly), "monthly")
    for backup in verified + [b for b in newest_first if not b.verified]:
        if len(keep) >= minimum_keep:
            break
        keep.setdefault(backup.key, "minimum kept")
    # An unverified set is kept too while nothing verified is newer: it may be a run still in progress.
    for backup in newest_first:
        if backup.verified:
            break
        keep.setdefault(backup.key, "newer than the newest verified backup")
    delete = [b.key for b in reversed(newest_first) if b.key not in keep]
    return RetentionPick(keep=keep, delete=delete)


def pick_backup_runs_to_delete(on_demand_runs_newest_first: list[str], keep: int) -> list[str]:
    """On-demand backup runs opsflows created, beyond the newest `keep` (automated runs never reach here)."""
    return on_demand_runs_newest_first[max(keep, 1) :]
