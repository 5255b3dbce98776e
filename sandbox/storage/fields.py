"""Partial responses: the ``fields`` query parameter (``fields=items(name,size),nextPageToken``).

GCS returns only the named fields, and so must the stand-in: a listing asked for ``fields=items(name)``
has no ``nextPageToken`` in production either, and a flow that forgets it must fail here too. The
client sends ``fields=name`` on ``exists()``.
"""

from __future__ import annotations

from typing import Any

from sandbox.http import ApiError

Selection = dict[str, "Selection | None"]  # None: the whole value


def parse(spec: str) -> Selection:
    selection, index = _parse(spec, 0)
    if index != len(spec):
        raise ApiError(400, f"Invalid field selection {spec}", reason="invalidParameter")
    return selection


def _parse(spec: str, index: int) -> tuple[Selection, int]:
    selection: Selection = {}
    while index < len(spec):
        start = index
        while index < len(spec) and spec[index] not in ",()/":
            index += 1
        name = spec[start:index].strip()
        if not name:
            raise ApiError(400, f"Invalid field selection {spec}", reason="invalidParameter")
        sub: Selection | None = None
        if index < len(spec) and spec[index] == "(":
            sub, index = _parse(spec, index + 1)
            if index >= len(spec) or spec[index] != ")":
                raise ApiError(400, f"Invalid field selection {spec}", reason="invalidParameter")
            index += 1
        elif index < len(spec) and spec[index] == "/":
            sub, index = _parse_path(spec, index + 1)
        previous = selection.get(name, {})
        selection[name] = None if sub is None or previous is None else {**previous, **sub}
        if index < len(spec) and spec[index] == ")":
            return selection, index
        if index < len(spec) and spec[index] == ",":
            index += 1
    return selection, index


def _parse_path(spec: str, index: int) -> tuple[Selection, int]:
    """``a/b/c``: one field at each level."""
    start = index
    while index < len(spec) and spec[index] not in ",()/":
        index += 1
    name = spec[start:index].strip()
    if not name:
        raise ApiError(400, f"Invalid field selection {spec}", reason="invalidParameter")
    if index < len(spec) and spec[index] == "/":
        sub, index = _parse_path(spec, index + 1)
        return {name: sub}, index
    if index < len(spec) and spec[index] == "(":
        sub, index = _parse(spec, index + 1)
        return {name: sub}, index + 1
    return {name: None}, index


def select(body: Any, selection: Selection) -> Any:
    if isinstance(body, list):
        return [select(item, selection) for item in body]
    if not isinstance(body, dict):
        return body
    chosen = {}
    for name, sub in selection.items():
        if name == "*":
            return body
        if name in body:
            chosen[name] = body[name] if sub is None else select(body[name], sub)
    return chosen
