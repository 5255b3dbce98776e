"""Replication diffs and the guards around deletions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tasks.decisions.replication import ObjectInfo, diff, plan_deletions, replication_lag_seconds
from tasks.errors import UnsafeOperation

NOW = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)


def objects(*specs) -> dict[str, ObjectInfo]:
    return {name: ObjectInfo(name, size, crc, NOW - timedelta(hours=age)) for name, size, crc, age in specs}


def test_diff_by_name_size_and_crc32c():
    source = objects(("a", 1, "x", 1), ("b", 2, "y", 1), ("c", 3, "z", 1), ("d", 4, "w", 1))
    dr = objects(("a", 1, "x", 1), ("b", 2, "DIFFERENT", 1), ("c", 30, "z", 1), ("old", 5, "v", 1))
    result = diff(source, dr)
    assert result.missing == ["d"]
    assert result.changed == ["b", "c"]
    assert result.unchanged == ["a"]
    assert result.extraneous == ["old"]
    assert result.to_copy == ["d", "b", "c"]


GUARDS = dict(max_delete_count=10, max_delete_fraction=0.5)


@pytest.mark.parametrize(
    ("extraneous", "source_count", "dr_count", "complete", "asked", "outcome"),
    [
        (["x"], 10, 11, True, False, []),  # not asked: nothing
        (["x"], 10, 11, True, True, ["x"]),
        (["x"], 0, 1, True, True, "empty source"),
        (["x"], 10, 11, False, True, "listing failed"),
        ([f"x{i}" for i in range(11)], 100, 111, True, True, "above the caps"),  # count cap
        ([f"x{i}" for i in range(6)], 4, 10, True, True, "above the caps"),  # fraction cap: 6 > 5
        ([f"x{i}" for i in range(5)], 5, 10, True, True, [f"x{i}" for i in range(5)]),
    ],
)
def test_plan_deletions(extraneous, source_count, dr_count, complete, asked, outcome):
    if isinstance(outcome, str):
        with pytest.raises(UnsafeOperation, match=outcome):
            plan_deletions(extraneous, source_count, dr_count, complete, asked, **GUARDS)
    else:
        assert plan_deletions(extraneous, source_count, dr_count, complete, asked, **GUARDS) == outcome


def test_lag_is_the_age_of_the_oldest_object_dr_lacks():
    source = objects(("a", 1, "x", 5), ("b", 1, "y", 2), ("c", 1, "z", 1))
    assert replication_lag_seconds(source, ["b", "c"], NOW) == 2 * 3600
    assert replication_lag_seconds(source, [], NOW) == 0
