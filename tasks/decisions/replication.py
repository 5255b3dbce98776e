"""What DR replication copies and deletes, and how far behind the DR copy is.

Deletion is where mirrors destroy backups (gsutil#234 wiped a destination after a 404 on the source;
rclone#4298 a home directory from an empty source): deletions happen only when asked, never after a
failed or empty source listing, and never beyond the caps — the run fails loudly instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from tasks.errors import UnsafeOperation


@dataclass(frozen=True)
class ObjectInfo:
    name: str
    size: int
    crc32c: str
    updated: datetime | None = None
    generation: int | None = None


@dataclass(frozen=True)
class ReplicationDiff:
    missing: list[str]  # in the source, not in DR
    changed: list[str]  # in both, different size or crc32c
    unchanged: list[str]
    extraneous: list[str]  # in DR only

    @property
    def to_copy(self) -> list[str]:
        return self.missing + self.changed


def diff(source: dict[str, ObjectInfo], dr: dict[str, ObjectInfo]) -> ReplicationDiff:
    missing, changed, unchanged = [], [], []
    for name in sorted(source):
        theirs = dr.get(name)
        if theirs is None:
            missing.append(name)
        elif (theirs.size, theirs.crc32c) != (source[name].size, source[name].crc32c):
            changed.append(name)
        else:
            unchanged.append(name)
    extraneous = sorted(set(dr) - set(source))
    return ReplicationDiff(missing, changed, unchanged, extraneous)


def plan_deletions(
    extraneous: list[str],
    source_count: int,
    dr_count: int,
    listings_complete: bool,
    delete_extraneous: bool,
    max_delete_count: int,
    max_delete_fraction: float,
) -> list[str]:
    """The DR objects to delete; raises UnsafeOperation rather than delete beyond the guards."""
    if not delete_extraneous or not extraneous:
        return []
    if not listings_complete:
        raise UnsafeOperation("a bucket listing failed: refusing to delete anything from DR")
    if source_count == 0:
        raise UnsafeOperation(
            f"the source lists no objects but DR holds {dr_count}: refusing to mirror an empty source "
            "(a wrong prefix or a failed read would wipe the DR copy)"
        )
    fraction_cap = math.floor(max_delete_fraction * dr_count)
    if len(extraneous) > max_delete_count or len(extraneous) > fraction_cap:
        raise UnsafeOperation(
            f"would delete {len(extraneous)} of {dr_count} DR objects, above the caps "
            f"(max {max_delete_count} objects, {max_delete_fraction:.0%} = {fraction_cap}); nothing was deleted"
        )
    return list(extraneous)


def replication_lag_seconds(source: dict[str, ObjectInfo], not_replicated: list[str], now: datetime) -> float:
    """How far behind DR is: the age of the oldest source object DR still lacks (0 when none)."""
    times = [source[name].updated for name in not_replicated if source[name].updated is not None]
    return max(0.0, (now - min(times)).total_seconds()) if times else 0.0
