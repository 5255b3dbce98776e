"""Traffic plans: plain functions, plain tables."""

from __future__ import annotations

import pytest

from tasks.decisions.traffic import (
    LATEST,
    Target,
    canary_split,
    check_tag,
    heal_target,
    needs_healing,
    pick_previous,
    pin_latest,
    promoted_split,
    rollback_split,
    same_split,
    served_revisions,
    with_candidate,
)
from tasks.errors import InvalidInput

R = Target  # short for the tables


@pytest.mark.parametrize(
    ("stable", "percent", "expected"),
    [
        ((R(100, "a"),), 10, {"a": 90, "c": 10}),
        ((R(100, "a"),), 100, {"c": 100}),
        ((R(50, "a"), R(50, "b")), 10, {"a": 45, "b": 45, "c": 10}),
        ((R(50, "a"), R(50, "b")), 15, {"a": 43, "b": 42, "c": 15}),  # largest remainder, total exactly 100
        ((R(90, "a"), R(10, "b")), 50, {"a": 45, "b": 5, "c": 50}),
        ((R(34, "a"), R(33, "b"), R(33, "d")), 1, {"a": 33, "b": 33, "d": 33, "c": 1}),
    ],
)
def test_canary_split_keeps_stable_proportions_and_sums_to_100(stable, percent, expected):
    split = canary_split(stable, "c", "candidate", percent)
    assert served_revisions(split) == expected
    assert sum(t.percent for t in split) == 100
    assert [t.tag for t in split if t.revision == "c"] == ["candidate"]


def test_canary_split_keeps_stable_tags_at_zero():
    split = canary_split((R(100, "a", tag="blue"),), "c", "candidate", 100)
    assert R(0, "a", tag="blue") in split


def test_with_candidate_adds_a_zero_percent_tagged_entry_and_replaces_an_old_one():
    stable = (R(100, "a"), R(0, "old", tag="candidate"))
    assert with_candidate(stable, "c", "candidate") == (R(100, "a"), R(0, "c", tag="candidate"))


def test_promoted_split_drops_the_candidate_tag_and_keeps_others():
    stable = (R(90, "a", tag="blue"), R(10, "c", tag="candidate"))
    assert promoted_split(stable, "c", "candidate") == (R(100, "c"), R(0, "a", tag="blue"))


@pytest.mark.parametrize(
    ("split", "latest", "expected"),
    [
        ((), "a", (R(100, "a"),)),
        ((R(100, None, type=LATEST),), "a", (R(100, "a"),)),
        ((R(80, None, type=LATEST), R(20, "b", tag="x")), "a", (R(80, "a"), R(20, "b", tag="x"))),
        ((R(100, "b"),), "a", (R(100, "b"),)),
    ],
)
def test_pin_latest_names_the_revision_latest_resolves_to(split, latest, expected):
    assert pin_latest(split, latest) == expected


@pytest.mark.parametrize(
    ("current", "last_stable", "heal"),
    [
        ((R(100, "a"),), (R(100, "a"),), False),
        ((R(100, "a"),), None, False),
        ((R(90, "a"), R(10, "c", tag="candidate")), (R(100, "a"),), True),
        ((R(100, "a"), R(0, "c", tag="candidate")), None, True),
        ((R(50, "a"), R(50, "b")), (R(100, "a"),), True),
        ((R(50, "b"), R(50, "a")), (R(50, "a"), R(50, "b")), False),  # order does not matter
    ],
)
def test_needs_healing(current, last_stable, heal):
    assert needs_healing(current, last_stable, "candidate") is heal


def test_rollback_split_moves_everything_and_keeps_tags():
    current = (R(100, "b"), R(0, "a", tag="blue"), R(0, "x", tag="qa"))
    assert same_split(rollback_split(current, "a"), (R(100, "a", tag="blue"), R(0, "x", tag="qa")))


@pytest.mark.parametrize("tag", ["x" * 40, "Candidate", "9lives", "has_underscore"])
def test_bad_tags_are_refused(tag):
    with pytest.raises(InvalidInput):
        check_tag("service-name", tag)


def test_as_dict_round_trip():
    target = R(10, "a", tag="t")
    assert Target.from_dict(target.as_dict()) == target
    assert R(100, None, type=LATEST).as_dict() == {"percent": 100, "type": "LATEST"}


@pytest.mark.parametrize(
    ("current", "last_stable", "expected"),
    [
        ((R(90, "a"), R(10, "c", tag="candidate")), (R(100, "a"),), {"a": 100}),
        ((R(90, "a"), R(10, "c", tag="candidate")), None, {"a": 100}),
        ((R(45, "a"), R(45, "b"), R(10, "c", tag="candidate")), None, {"a": 50, "b": 50}),
        ((R(100, "a"), R(0, "c", tag="candidate")), None, {"a": 100}),
    ],
)
def test_heal_target(current, last_stable, expected):
    healed = heal_target(current, last_stable, "candidate")
    assert served_revisions(healed) == expected
    assert all(t.tag != "candidate" for t in healed)


def test_heal_target_refuses_when_only_the_candidate_serves_and_nothing_was_recorded():
    with pytest.raises(InvalidInput, match="cannot heal"):
        heal_target((R(100, "c", tag="candidate"),), None, "candidate")


@pytest.mark.parametrize(
    ("current", "history", "revisions", "expected"),
    [
        # history knows: b served before c (the failed canary d never served)
        ((R(100, "c"),), [(R(100, "c"),), (R(100, "b"),)], [("d", False), ("c", True), ("b", True)], "b"),
        # no history: newest Ready revision older than the current one
        ((R(100, "c"),), [], [("d", True), ("c", True), ("b", False), ("a", True)], "a"),
        ((R(100, "a"),), [], [("b", True), ("a", True)], None),  # nothing older
        ((R(10, "c"), R(90, "b")), [], [("c", True), ("b", True), ("a", True)], "a"),
    ],
)
def test_pick_previous(current, history, revisions, expected):
    assert pick_previous(current, history, revisions) == expected
