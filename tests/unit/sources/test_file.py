"""FileSource: change detection by stat then content, missing and oversized files."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from watchkeeper.errors import SourceTooLarge, SourceUnavailable
from watchkeeper.sources.file import FileSource

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
AN_HOUR_AGO_NS = time.time_ns() - 3600 * 10**9


def source_for(path: Path, max_bytes: int = 1024) -> FileSource:
    return FileSource(path, max_bytes=max_bytes, clock=lambda: NOW)


async def test_first_fetch_delivers_then_unchanged_is_none(tmp_path: Path) -> None:
    path = tmp_path / "doc.json"
    path.write_bytes(b'{"a": 1}')
    source = source_for(path)
    candidate = await source.fetch()
    assert candidate is not None
    assert (candidate.body, candidate.source, candidate.fetched_at) == (b'{"a": 1}', str(path), NOW)
    assert source.name == str(path)
    assert await source.fetch() is None
    await source.aclose()


async def test_changed_content_is_a_new_candidate(tmp_path: Path) -> None:
    path = tmp_path / "doc.json"
    path.write_bytes(b'{"a": 1}')
    source = source_for(path)
    await source.fetch()
    path.write_bytes(b'{"a": 22}')
    candidate = await source.fetch()
    assert candidate is not None and candidate.body == b'{"a": 22}'


async def test_identical_rewrite_is_not_a_candidate(tmp_path: Path) -> None:
    path = tmp_path / "doc.json"
    path.write_bytes(b'{"a": 1}')
    os.utime(path, ns=(AN_HOUR_AGO_NS, AN_HOUR_AGO_NS))
    source = source_for(path)
    await source.fetch()
    path.write_bytes(b'{"a": 1}')  # new mtime, same bytes
    assert await source.fetch() is None


async def test_save_by_rename_is_caught(tmp_path: Path) -> None:
    path = tmp_path / "doc.json"
    path.write_bytes(b'{"a": 1}')
    os.utime(path, ns=(AN_HOUR_AGO_NS, AN_HOUR_AGO_NS))
    source = source_for(path)
    await source.fetch()
    new = tmp_path / "doc.json.tmp"
    new.write_bytes(b'{"a": 2}')
    os.utime(new, ns=(AN_HOUR_AGO_NS, AN_HOUR_AGO_NS))  # same mtime and size: only the inode
    new.replace(path)
    candidate = await source.fetch()
    assert candidate is not None and candidate.body == b'{"a": 2}'


async def test_an_old_unchanged_stat_is_trusted_without_reading(tmp_path: Path) -> None:
    path = tmp_path / "doc.json"
    path.write_bytes(b'{"a": 1}')
    os.utime(path, ns=(AN_HOUR_AGO_NS, AN_HOUR_AGO_NS))
    source = source_for(path)
    await source.fetch()
    path.write_bytes(b'{"a": 2}')  # same size and inode; forge the old mtime back
    os.utime(path, ns=(AN_HOUR_AGO_NS, AN_HOUR_AGO_NS))
    assert await source.fetch() is None  # the cheap check said "unchanged": nothing read


async def test_a_freshly_written_file_is_reread_even_if_the_stat_looks_the_same(
    tmp_path: Path,
) -> None:
    """Two writes inside one coarse mtime tick keep (mtime, size, inode): compare the bytes."""
    path = tmp_path / "doc.json"
    recent = time.time_ns()
    path.write_bytes(b'{"a": 1}')
    os.utime(path, ns=(recent, recent))
    source = source_for(path)
    await source.fetch()
    path.write_bytes(b'{"a": 2}')
    os.utime(path, ns=(recent, recent))
    candidate = await source.fetch()
    assert candidate is not None and candidate.body == b'{"a": 2}'


async def test_missing_file_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "nope.json"
    with pytest.raises(SourceUnavailable) as info:
        await source_for(path).fetch()
    assert info.value.message == f"cannot read {path}: No such file or directory"
    assert isinstance(info.value.__cause__, FileNotFoundError)


async def test_a_directory_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(SourceUnavailable, match="Is a directory"):
        await source_for(tmp_path).fetch()


async def test_too_large_then_back_under_the_cap(tmp_path: Path) -> None:
    path = tmp_path / "doc.json"
    path.write_bytes(b"x" * 11)
    source = source_for(path, max_bytes=10)
    with pytest.raises(SourceTooLarge, match="10-byte cap"):
        await source.fetch()
    path.write_bytes(b"x" * 10)
    candidate = await source.fetch()
    assert candidate is not None and len(candidate.body) == 10


async def test_a_file_that_disappears_and_returns_unchanged_is_not_new(tmp_path: Path) -> None:
    path = tmp_path / "doc.json"
    path.write_bytes(b'{"a": 1}')
    source = source_for(path)
    await source.fetch()
    path.unlink()
    with pytest.raises(SourceUnavailable):
        await source.fetch()
    path.write_bytes(b'{"a": 1}')
    assert await source.fetch() is None
