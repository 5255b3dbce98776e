"""Traffic decisions for canary deploys and rollbacks: pure functions over Cloud Run traffic targets.

A split is a tuple of `Target`s as Cloud Run's `Service.traffic` holds them. These functions decide
what to send; the tasks in tasks/cloud_run.py read and send it.
"""

from __future__ import annotations

from dataclasses import replace

from tasks.cloud_run import LATEST, REVISION, Split, Target, split_as_dicts, split_from_dicts
from tasks.errors import InvalidInput

__all__ = ["LATEST", "REVISION", "Split", "Target", "split_as_dicts", "split_from_dicts"]
# Cloud Run refuses tag + service name longer than this (the tag becomes part of a DNS label).
MAX_TAG_AND_SERVICE = 46


def served_revisions(split: Split) -> dict[str, int]:
    """Revision name → percent, for entries that carry traffic."""
    served: dict[str, int] = {}
    for target in split:
        if target.percent and target.revision:
            served[target.revision] = served.get(target.revision, 0) + target.percent
    return served


def pin_latest(split: Split, latest_ready_revision: str) -> Split:
    """The same split with LATEST entries pinned to the revision they resolve to now.

    A deploy creates a newer revision; a restored `LATEST` entry would then hand the traffic to the
    very candidate being rolled back. Pinning keeps "exact prior split" exact in what users get.
    An empty split means 100% to the latest ready revision.
    """
    if not split:
        return (Target(percent=100, revision=latest_ready_revision),)
    return tuple(
        replace(target, type=REVISION, revision=latest_ready_revision) if target.type == LATEST else target
        for target in split
    )


def check_tag(service: str, tag: str) -> None:
    if len(tag) + len(service) > MAX_TAG_AND_SERVICE:
        raise InvalidInput(
            f"tag {tag!r} with service {service!r} is {len(tag) + len(service)} characters; "
            f"Cloud Run allows at most {MAX_TAG_AND_SERVICE}"
        )
    if not tag.replace("-", "").isalnum() or not tag[0].isalpha() or tag != tag.lower():
        raise InvalidInput(
            f"tag {tag!r} must be lowercase letters, digits and dashes, starting with a letter"
        )


def with_candidate(stable: Split, candidate: str, tag: str) -> Split:
    """The stable split plus the candidate at 0% under `tag` (reachable only by its tagged URL)."""
    return (*without_tag(stable, tag), Target(percent=0, revision=candidate, tag=tag))


def without_tag(split: Split, tag: str) -> Split:
    """The split with `tag` dropped; an entry that carried only the tag (0%) is removed."""
    kept = []
    for target in split:
        if target.tag != tag:
            kept.append(target)
        elif target.percent:
            kept.append(replace(target, tag=None))
    return tuple(kept)


def canary_split(stable: Split, candidate: str, tag: str, percent: int) -> Split:
    """`percent` to the candidate (tagged); the stable entries share the rest in their old proportions.

    Shares are rounded by largest remainder so the total is exactly 100. Stable tags stay, at 0% when
    their share rounds to nothing, so tagged URLs keep working during the canary.
    """
    if not 0 <= percent <= 100:
        raise InvalidInput(f"canary percent must be within 0..100, got {percent}")
    base = [target for target in without_tag(stable, tag) if target.revision != candidate]
    weights = [target.percent for target in base]
    remaining = 100 - percent
    total = sum(weights)
    if remaining and not total:
        raise InvalidInput("the stable split serves no traffic; nothing to keep the remaining share on")
    exact = [remaining * weight / total if total else 0 for weight in weights]
    shares = [int(value) for value in exact]
    by_remainder = sorted(range(len(base)), key=lambda i: exact[i] - shares[i], reverse=True)
    for i in by_remainder[: remaining - sum(shares)]:
        shares[i] += 1
    rebalanced = [replace(target, percent=share) for target, share in zip(base, shares, strict=True)]
    kept = [target for target in rebalanced if target.percent or target.tag]
    return (*kept, Target(percent=percent, revision=candidate, tag=tag))


def promoted_split(stable: Split, candidate: str, tag: str) -> Split:
    """100% to the candidate, its canary tag dropped; other tags kept at 0% so their URLs still work."""
    tagged = tuple(
        replace(target, percent=0)
        for target in without_tag(stable, tag)
        if target.tag and target.revision != candidate
    )
    return (Target(percent=100, revision=candidate), *tagged)


def same_split(a: Split, b: Split) -> bool:
    """Equal as Cloud Run applies them: the same entries, whatever their order."""

    def key(split: Split) -> list[tuple]:
        return sorted((t.type, t.revision or "", t.percent, t.tag or "") for t in split)

    return key(a) == key(b)


def needs_healing(current: Split, last_stable: Split | None, candidate_tag: str) -> bool:
    """A dead run's leftovers: a candidate tag still set, or a split other than the recorded stable one."""
    if any(target.tag == candidate_tag for target in current):
        return True
    return last_stable is not None and not same_split(current, last_stable)


def rollback_split(current: Split, target_revision: str) -> Split:
    """100% to the target revision; existing tags kept at 0% (the target's own tag kept with it)."""
    tags = [
        replace(target, percent=0)
        for target in current
        if target.tag and target.revision and target.revision != target_revision
    ]
    own_tag = next((t.tag for t in current if t.revision == target_revision and t.tag), None)
    return (Target(percent=100, revision=target_revision, tag=own_tag), *tags)


def heal_target(current: Split, last_stable: Split | None, candidate_tag: str) -> Split:
    """Where a dead run's leftovers go back to: the recorded stable split, or, with no record, the
    current split without the candidate-tagged revisions (their share handed back proportionally)."""
    if last_stable is not None:
        return last_stable
    candidates = {t.revision for t in current if t.tag == candidate_tag}
    others = tuple(t for t in current if t.revision not in candidates)
    total = sum(t.percent for t in others)
    if not total:
        raise InvalidInput("cannot heal: only the candidate serves traffic and no stable split was recorded")
    placeholder = "__none__"
    healed = canary_split(others, placeholder, candidate_tag, 0)
    return tuple(t for t in healed if t.revision != placeholder)


def primary_revision(split: Split) -> str | None:
    """The revision with the largest share (ties: the first listed)."""
    served = served_revisions(split)
    return max(served, key=served.get) if served else None


def pick_previous(
    current: Split, stable_history: list[Split], revisions_newest_first: list[tuple[str, bool]]
) -> str | None:
    """The revision that served before the current one.

    From the recorded stable splits first (they know which revisions really served; a canary that
    failed never did). Without history: the newest Ready revision created before the current one.
    `revisions_newest_first` holds (name, ready) pairs.
    """
    now = primary_revision(current)
    for split in stable_history:
        earlier = primary_revision(split)
        if earlier and earlier != now:
            return earlier
    names = [name for name, _ in revisions_newest_first]
    older = names[names.index(now) + 1 :] if now in names else []
    ready = dict(revisions_newest_first)
    return next((name for name in older if ready[name]), None)
