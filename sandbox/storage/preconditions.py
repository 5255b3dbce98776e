"""Generation and metageneration preconditions, as the JSON API applies them.

The product's safety rests on these (create-only writes with ifGenerationMatch=0, deletes and
replication copies pinned to the generation that was listed), and the public emulator ignores them, so
they follow Google's documented rules exactly (cloud.google.com/storage/docs/request-preconditions):

- ``ifGenerationMatch`` / ``ifMetagenerationMatch`` fail with **412** conditionNotMet;
  ``ifGenerationMatch=0`` means "no live object": it fails when one exists.
- ``ifGenerationNotMatch`` / ``ifMetagenerationNotMatch`` fail with **304 Not Modified** (the client
  raises ``google.api_core.exceptions.NotModified``); when no live object exists they fail too, so
  ``ifGenerationNotMatch=0`` means "only if an object exists".
- rewrite/copy/compose take the same four for the source with ``ifSource...`` names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sandbox.http import ApiError
from sandbox.storage.resources import ObjectVersion

FAILED = "At least one of the pre-conditions you specified did not hold."


@dataclass(frozen=True)
class Preconditions:
    generation_match: int | None = None
    generation_not_match: int | None = None
    metageneration_match: int | None = None
    metageneration_not_match: int | None = None

    @classmethod
    def from_query(cls, query: Mapping[str, Sequence[str]], source: bool = False) -> Preconditions:
        stem = "ifSource" if source else "if"
        return cls(
            generation_match=_int(query, f"{stem}GenerationMatch"),
            generation_not_match=_int(query, f"{stem}GenerationNotMatch"),
            metageneration_match=_int(query, f"{stem}MetagenerationMatch"),
            metageneration_not_match=_int(query, f"{stem}MetagenerationNotMatch"),
        )

    @property
    def empty(self) -> bool:
        return self == Preconditions()

    def check(self, current: ObjectVersion | None) -> None:
        """Raise the answer GCS gives if these do not hold for `current` (None: no live object)."""
        generation = current.generation if current is not None else 0
        if self.generation_match is not None and self.generation_match != generation:
            raise ApiError(412, FAILED, reason="conditionNotMet")
        if self.metageneration_match is not None and (
            current is None or self.metageneration_match != current.metageneration
        ):
            raise ApiError(412, FAILED, reason="conditionNotMet")
        if self.generation_not_match is not None and (
            current is None or self.generation_not_match == current.generation
        ):
            raise ApiError(304, "Not Modified", reason="notModified")
        if self.metageneration_not_match is not None and (
            current is None or self.metageneration_not_match == current.metageneration
        ):
            raise ApiError(304, "Not Modified", reason="notModified")


def _int(query: Mapping[str, Sequence[str]], name: str) -> int | None:
    values = query.get(name)
    if not values or values[0] == "":
        return None
    try:
        return int(values[0])
    except ValueError:
        raise ApiError(400, f"Invalid argument: {name} must be an integer, got '{values[0]}'.") from None


def query_int(query: Mapping[str, Sequence[str]], name: str) -> int | None:
    """An int64 query parameter (generation, maxResults...), 400 when it is not one."""
    return _int(query, name)
