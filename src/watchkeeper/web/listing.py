"""The one answer of every list route: ``{"total", "offset", "limit", "items"}``.

``total`` counts every match of the filters given, ``items`` is the page (``offset``
skipped, at most ``limit``). Lists that page by id as well (``before_id``, the logs) count
the matches before that id.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Path, Query
from pydantic import BaseModel

T = TypeVar("T")

#: The largest id the store holds (a signed 64-bit integer): a larger one is a 422, never a
#: query the database refuses with a 500.
MAX_ID = 2**63 - 1
#: An id in a path (``/alarms/{alarm_id}``).
PathId = Annotated[int, Path(ge=1, le=MAX_ID, description="an id (1 to 2^63-1)")]
#: An id in a query (``before_id``: the page before that id).
QueryId = Annotated[int | None, Query(ge=1, le=MAX_ID, description="page before this id")]
#: How many matches a page skips.
Offset = Annotated[int, Query(ge=0, le=MAX_ID, description="matches to skip")]


class Listing(BaseModel, Generic[T]):
    """One page of a list, and how many matched in all."""

    total: int
    offset: int
    limit: int
    items: list[T]


def listing(items: Sequence[Any], *, total: int, offset: int, limit: int) -> dict[str, Any]:
    return {"total": total, "offset": offset, "limit": limit, "items": list(items)}


def whole(items: Sequence[Any]) -> dict[str, Any]:
    """A list served whole (short by nature: zones, workers, sources) as a page."""
    return listing(items, total=len(items), offset=0, limit=len(items))
