"""Helpers of the bulk writer that need no database (the writes are tested on both DBs)."""

from __future__ import annotations

from watchkeeper.store import bulk


def test_chunks_cover_everything_in_order() -> None:
    assert [list(c) for c in bulk.chunks("abcdefg", 3)] == [["a", "b", "c"], ["d", "e", "f"], ["g"]]
    assert list(bulk.chunks([], 3)) == []


def test_nonempty_keeps_every_row_and_spots_none() -> None:
    rows = bulk._nonempty(iter([(1,), (2,)]))
    assert rows is not None and list(rows) == [(1,), (2,)]
    assert bulk._nonempty(iter([])) is None
