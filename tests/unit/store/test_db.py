"""`watchkeeper.store.db` without a database server: URLs, masking, and failures to connect."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from watchkeeper import store
from watchkeeper.document.normalize import Snapshot
from watchkeeper.errors import ImportFailed, StoreError
from watchkeeper.store.db import async_url, mask


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("sqlite:///rel.db", "sqlite+aiosqlite:///rel.db"),
        ("sqlite:////var/lib/wk/wk.db", "sqlite+aiosqlite:////var/lib/wk/wk.db"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("postgresql://wk@db/wk", "postgresql+psycopg://wk@db/wk"),
        ("postgres://wk@db:6432/wk", "postgresql+psycopg://wk@db:6432/wk"),
        ("postgresql+psycopg://wk@db/wk", "postgresql+psycopg://wk@db/wk"),
        ("postgresql+psycopg2://wk@db/wk", "postgresql+psycopg://wk@db/wk"),
    ],
)
def test_user_urls_map_onto_the_async_drivers(given: str, used: str) -> None:
    assert async_url(given).render_as_string() == used


@pytest.mark.parametrize("url", ["mysql://wk@db/wk", "not a url", ""])
def test_other_urls_are_refused_with_what_to_use(url: str) -> None:
    with pytest.raises(StoreError, match="URL"):
        store.Database.from_url(url)


def test_unsupported_url_message_names_the_supported_ones() -> None:
    with pytest.raises(StoreError, match=r"use sqlite:///PATH or postgresql\+psycopg://"):
        async_url("mysql://wk:secret@db/wk")


def test_passwords_are_masked_for_display() -> None:
    db = store.Database.from_url("postgresql://wk:s3cret@db.example/wk")
    assert db.url == "postgresql+psycopg://wk:***@db.example/wk"
    assert "s3cret" not in repr(db)
    assert mask("postgresql://wk:s3cret@db/wk") == "postgresql://wk:***@db/wk"


def test_data_dir_is_created_and_holds_the_sqlite_file(tmp_path: Path) -> None:
    db = store.Database.for_data_dir(tmp_path / "a" / "b")
    assert (tmp_path / "a" / "b").is_dir()
    assert db.url.endswith("/a/b/watchkeeper.db") and db.dialect == "sqlite"


def test_a_data_dir_that_cannot_be_created_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreError, match="cannot create the data directory"):
        store.Database.for_data_dir(tmp_path / "file" / "sub")


async def test_an_unreachable_server_is_a_clear_store_error() -> None:
    db = store.Database.from_url("postgresql://wk:s3cret@127.0.0.1:1/wk?connect_timeout=2")
    try:
        with pytest.raises(StoreError) as caught:
            async with db.session():
                pass
    finally:
        await db.aclose()
    message = caught.value.message
    assert message.startswith("cannot connect to the database at postgresql+psycopg://wk:***@")
    assert "s3cret" not in message and "\n" not in message


async def test_an_unopenable_sqlite_file_is_a_clear_store_error(tmp_path: Path) -> None:
    db = store.Database.from_url(f"sqlite:///{tmp_path}/missing/dir/wk.db")
    try:
        with pytest.raises(StoreError, match=r"cannot connect .*unable to open database file"):
            await db.migrate()
    finally:
        await db.aclose()


async def test_an_import_that_cannot_reach_the_database_fails_as_an_import(
    tmp_path: Path,
) -> None:
    db = store.Database.from_url(f"sqlite:///{tmp_path}/missing/dir/wk.db")
    try:
        with pytest.raises(ImportFailed, match=r"rolled back.*cannot connect") as caught:
            await store.import_snapshot(
                db,
                snapshot=Snapshot(objects={}, checks={}),
                content_hash="0" * 64,
                document_json="{}",
                source="test",
                warnings=[],
                now=datetime(2025, 1, 1, tzinfo=UTC),
            )
    finally:
        await db.aclose()
    assert isinstance(caught.value.__cause__, StoreError)
