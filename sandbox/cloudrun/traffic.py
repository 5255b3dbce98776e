"""Traffic targets: the checks Cloud Run makes on `Service.traffic`, and what they resolve to.

The rules (DESIGN.md §3): percents sum to 100; tags are unique DNS labels; a tag and the service name
together fit in 46 characters (they form the tag URL's DNS label); a named revision must exist;
`LATEST` follows the latest *Ready* revision; no traffic at all means 100% to LATEST. Pinning traffic
to named revisions is what makes a new revision start at 0%: nothing here moves traffic by itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from sandbox.cloudrun.store import LATEST, REVISION, Routed
from sandbox.cloudrun.wire import FieldError

TAG = re.compile(r"[a-z](?:[-a-z0-9]*[a-z0-9])?")
MAX_TAG_AND_SERVICE = 46


def normalise(
    traffic: list[dict[str, Any]], service: str, known_revisions: Iterable[str]
) -> list[dict[str, Any]]:
    """Validated traffic with explicit types and short revision names; raises FieldError (400)."""
    known = set(known_revisions)
    targets: list[dict[str, Any]] = []
    tags: dict[str, int] = {}
    total = 0
    for index, entry in enumerate(traffic):
        where = f"service.traffic[{index}]"
        revision = _short_revision(entry.get("revision", ""), service, where)
        kind = entry.get("type") or "TRAFFIC_TARGET_ALLOCATION_TYPE_UNSPECIFIED"
        if kind == "TRAFFIC_TARGET_ALLOCATION_TYPE_UNSPECIFIED":
            kind = REVISION if revision else LATEST
        if kind not in (LATEST, REVISION):
            raise FieldError(f"{where}.type", f"Invalid traffic target type {kind!r}.")
        if kind == LATEST and revision:
            raise FieldError(f"{where}.revision", f"Must not be set when type is {LATEST}.")
        if kind == REVISION and not revision:
            raise FieldError(f"{where}.revision", f"Required when type is {REVISION}.")
        if kind == REVISION and revision not in known:
            raise FieldError(
                f"{where}.revision",
                f"Revision '{revision}' does not exist or is deleted. "
                "Update all traffic to route to currently available revisions.",
            )
        percent = int(entry.get("percent", 0))
        if not 0 <= percent <= 100:
            raise FieldError(f"{where}.percent", f"Percent must be between 0 and 100, got {percent}.")
        total += percent
        tag = entry.get("tag", "")
        if tag:
            _check_tag(tag, service, f"{where}.tag")
            if tag in tags:
                raise FieldError(
                    "service.traffic",
                    f"Multiple definitions for tag '{tag}': traffic[{tags[tag]}].tag, traffic[{index}].tag.",
                )
            tags[tag] = index
        targets.append(
            {
                key: value
                for key, value in {"type": kind, "revision": revision, "percent": percent, "tag": tag}.items()
                if value
            }
        )
    if targets and total != 100:
        raise FieldError("service.traffic", f"Traffic targets sum to {total}, want 100.")
    return targets


def _short_revision(revision: str, service: str, where: str) -> str:
    if "/" not in revision:
        return revision
    found = re.fullmatch(r"projects/[^/]+/locations/[^/]+/services/([^/]+)/revisions/([^/]+)", revision)
    if not found or found.group(1) != service:
        raise FieldError(
            f"{where}.revision", f"Revision '{revision}' does not belong to service '{service}'."
        )
    return found.group(2)


def _check_tag(tag: str, service: str, where: str) -> None:
    if not TAG.fullmatch(tag):
        raise FieldError(
            where,
            f"Tag '{tag}' is not a valid DNS label: use lowercase letters, digits and '-', "
            "start with a letter and do not end with '-'.",
        )
    if len(tag) + len(service) > MAX_TAG_AND_SERVICE:
        raise FieldError(
            where,
            f"traffic tag '{tag}' and service name '{service}' together are too long. Combined traffic "
            f"tag and service name cannot exceed {MAX_TAG_AND_SERVICE} characters.",
        )


def resolve(traffic: list[dict[str, Any]], latest_ready: str) -> list[Routed]:
    """What the targets mean right now: LATEST becomes the latest Ready revision."""
    if not traffic:
        return [Routed(LATEST, latest_ready, 100)]
    return [
        Routed(
            t["type"],
            latest_ready if t["type"] == LATEST else t["revision"],
            t.get("percent", 0),
            t.get("tag", ""),
        )
        for t in traffic
    ]


def referenced(traffic: list[dict[str, Any]]) -> set[str]:
    """Revisions the spec names explicitly (they cannot be deleted)."""
    return {t["revision"] for t in traffic if t.get("type") == REVISION}
