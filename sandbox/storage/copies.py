"""Server-side copies: objects.rewrite (with its token loop), objects.copyTo and objects.compose.

Rewrite is what the product's DR replication uses, and the public emulator always finishes it in one
call, so a flow that mishandles ``rewriteToken`` would pass there and lose objects in production. Here,
as on GCS, one call may copy only part of the object:

- within one location and storage class, an object no bigger than the per-call budget is copied in
  one call (GCS copies only metadata then);
- anything bigger takes ``ceil(size / budget)`` calls, the budget being the stand-in's
  ``rewrite_bytes_per_call`` (default 1 MiB) or the caller's ``maxBytesRewrittenPerCall``;
- a copy between buckets in different locations (or storage classes) moves data, and never finishes in
  its first call, however small, so every cross-region copy runs the token loop at least twice.

Every call but the last answers ``{"done": false, "rewriteToken": ...}``; the last creates the object
(checking the destination preconditions again, atomically) and answers ``done: true`` with it. The
token pins the source generation read on the first call. Copies keep the source's bytes, crc32c, md5
(none for composites), contentType and metadata unless the request body sets them.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from sandbox.http import ApiError
from sandbox.storage.preconditions import Preconditions
from sandbox.storage.resources import ObjectVersion, check_object_name, unknown_field, writable_object_fields
from sandbox.storage.store import Store

MIB = 1024 * 1024
MAX_COMPOSE_SOURCES = 32
MAX_COMPONENTS = 1024


def _encode_token(state: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode()).decode()


def _decode_token(token: str, source: list[str], destination: list[str]) -> dict[str, Any]:
    try:
        state = json.loads(base64.urlsafe_b64decode(token.encode()))
        valid = state["src"] == source and state["dst"] == destination
        int(state["gen"]), int(state["done"])
    except (ValueError, TypeError, KeyError):
        valid = False
    if not valid:
        raise ApiError(400, "Invalid argument: the rewrite token is not valid for this request.")
    return state


class Copier:
    def __init__(self, store: Store, rewrite_bytes_per_call: int = MIB):
        if rewrite_bytes_per_call <= 0:
            raise ValueError("rewrite_bytes_per_call must be positive")
        self.store = store
        self.rewrite_bytes_per_call = rewrite_bytes_per_call

    def rewrite(
        self,
        source: tuple[str, str],
        destination: tuple[str, str],
        source_generation: int | None,
        source_conditions: Preconditions,
        conditions: Preconditions,
        body: dict[str, Any],
        token: str | None,
        max_bytes_per_call: int | None,
    ) -> dict[str, Any]:
        if max_bytes_per_call is not None and (max_bytes_per_call <= 0 or max_bytes_per_call % MIB):
            raise ApiError(400, f"maxBytesRewrittenPerCall must be a positive multiple of {MIB}.")
        overrides = writable_object_fields(body)
        check_object_name(destination[1])
        state = _decode_token(token, list(source), list(destination)) if token else None
        generation = int(state["gen"]) if state else source_generation
        original = self.store.get_object(*source, generation, source_conditions)
        self.store.check_live(*destination, conditions)
        source_bucket, destination_bucket = self.store.bucket(source[0]), self.store.bucket(destination[0])
        moves_data = (
            source_bucket.location != destination_bucket.location
            or original.storage_class != destination_bucket.storage_class
        )
        done_before = int(state["done"]) if state else 0
        step = min(max_bytes_per_call or self.rewrite_bytes_per_call, original.size - done_before)
        first_of_a_data_move = state is None and moves_data
        if first_of_a_data_move:
            step = min(step, original.size // 2)
        done_after = done_before + step
        answer: dict[str, Any] = {
            "kind": "storage#rewriteResponse",
            "totalBytesRewritten": str(done_after),
            "objectSize": str(original.size),
        }
        if done_after < original.size or first_of_a_data_move:
            progress = {"src": list(source), "dst": list(destination), "gen": original.generation}
            return {**answer, "done": False, "rewriteToken": _encode_token({**progress, "done": done_after})}
        copy = self._copy(original, destination, overrides, conditions)
        return {**answer, "done": True, "resource": self.store.render(copy)}

    def copy(
        self,
        source: tuple[str, str],
        destination: tuple[str, str],
        source_generation: int | None,
        source_conditions: Preconditions,
        conditions: Preconditions,
        body: dict[str, Any],
    ) -> dict[str, Any]:
        """objects.copyTo: the whole copy in one call."""
        overrides = writable_object_fields(body)
        check_object_name(destination[1])
        original = self.store.get_object(*source, source_generation, source_conditions)
        return self.store.render(self._copy(original, destination, overrides, conditions))

    def compose(
        self, bucket: str, name: str, body: dict[str, Any], conditions: Preconditions
    ) -> dict[str, Any]:
        """objects.compose: a composite object (componentCount, crc32c, and no md5Hash, as GCS)."""
        for key in body:
            if key not in ("kind", "sourceObjects", "destination", "deleteSourceObjects"):
                raise unknown_field(key)
        sources = body.get("sourceObjects")
        if not isinstance(sources, list) or not sources:
            raise ApiError(400, "Required: sourceObjects.", reason="required")
        if len(sources) > MAX_COMPOSE_SOURCES:
            raise ApiError(
                400,
                f"The number of source components provided ({len(sources)}) exceeds the "
                f"maximum ({MAX_COMPOSE_SOURCES}).",
            )
        destination = body.get("destination") or {}
        if not isinstance(destination, dict):
            raise ApiError(400, "Invalid argument: destination must be an object.")
        fields = writable_object_fields(destination)
        parts: list[ObjectVersion] = []
        for entry in sources:
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                raise ApiError(400, "Required: sourceObjects[].name.", reason="required")
            generation = entry.get("generation")
            match = (entry.get("objectPreconditions") or {}).get("ifGenerationMatch")
            try:
                generation = int(generation) if generation is not None else None
                wanted = Preconditions(generation_match=int(match) if match is not None else None)
            except (TypeError, ValueError):
                raise ApiError(400, "Invalid argument: generations must be integers.") from None
            parts.append(self.store.get_object(bucket, entry["name"], generation, wanted))
        components = sum(p.component_count or 1 for p in parts)
        if components > MAX_COMPONENTS:
            raise ApiError(
                400, f"The resulting object would have {components} components, more than {MAX_COMPONENTS}."
            )
        data = b"".join(p.data for p in parts)
        composite = self.store.insert_object(
            bucket, name, data, fields, conditions, md5_hash=None, component_count=components
        )
        if body.get("deleteSourceObjects"):
            gone = {(p.name, p.generation) for p in parts if p.name != name}
            for part_name, generation in sorted(gone):
                self.store.delete_object(bucket, part_name, generation, Preconditions())
        return self.store.render(composite)

    def _copy(
        self,
        original: ObjectVersion,
        destination: tuple[str, str],
        overrides: dict[str, Any],
        conditions: Preconditions,
    ) -> ObjectVersion:
        return self.store.insert_object(
            *destination,
            original.data,
            {**original.fields, **overrides},
            conditions,
            crc32c=original.crc32c,
            md5_hash=original.md5_hash,
            component_count=original.component_count,
        )
