"""The database handle and the migrations, on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from watchkeeper import store
from watchkeeper.errors import StoreError
from watchkeeper.store import tables


def _drift(connection: sa.Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, tables.Base.metadata))


async def test_the_migrations_build_exactly_the_models(db: store.Database) -> None:
    async with db.session() as session:
        connection = await session.connection()
        assert await connection.run_sync(_drift) == []
        head = await session.scalar(sa.text("SELECT version_num FROM alembic_version"))
    assert head == "0014"


async def test_migrating_again_changes_nothing(db: store.Database) -> None:
    await db.migrate()
    async with db.session() as session:
        assert await session.scalar(sa.text("SELECT count(*) FROM alembic_version")) == 1


async def test_begin_commits_and_rolls_back(db: store.Database) -> None:
    t = tables.source_status
    row = {"name": "a", "ok": True, "consecutive_failures": 0}
    async with db.begin() as session:
        await session.execute(sa.insert(t).values(row))
    with pytest.raises(RuntimeError, match="changed my mind"):
        async with db.begin() as session:
            await session.execute(sa.insert(t).values({**row, "name": "b"}))
            raise RuntimeError("changed my mind")

    async with db.session() as session:
        assert (await session.scalars(sa.select(t.c.name))).all() == ["a"]


async def test_database_errors_become_store_errors_naming_the_database(
    db: store.Database,
) -> None:
    with pytest.raises(StoreError, match=r"^database error at ") as caught:
        async with db.begin() as session:  # a state for a check that does not exist
            await session.execute(
                sa.insert(tables.check_states).values(check_key="nope", state="OK")
            )
    assert db.url in caught.value.message
    assert isinstance(caught.value.__cause__, sa.exc.IntegrityError)


async def test_sqlite_connections_are_set_up_for_a_server(tmp_path: Path) -> None:
    db = store.Database.for_data_dir(tmp_path / "data")
    try:
        async with db.session() as session:
            pragmas = {
                name: await session.scalar(sa.text(f"PRAGMA {name}"))
                for name in ("journal_mode", "foreign_keys", "synchronous", "busy_timeout")
            }
    finally:
        await db.aclose()
    assert pragmas == {
        "journal_mode": "wal",
        "foreign_keys": 1,
        "synchronous": 1,  # NORMAL
        "busy_timeout": 5000,
    }
    assert (tmp_path / "data" / "watchkeeper.db").exists()


async def test_the_sqlite_file_is_made_private_by_the_first_session_not_before(
    tmp_path: Path,
) -> None:
    db = store.Database.for_data_dir(tmp_path / "data")
    try:
        assert list((tmp_path / "data").iterdir()) == []  # a failed start leaves nothing
        async with db.begin() as session:
            await session.execute(sa.text("CREATE TABLE t (x INTEGER)"))
        modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "data").iterdir()}
    finally:
        await db.aclose()
    assert modes["watchkeeper.db"] == 0o600
    assert set(modes.values()) == {0o600}, modes  # -wal and -shm copy the file's mode


async def test_sqlite_writers_take_the_lock_when_they_begin(tmp_path: Path) -> None:
    """``BEGIN IMMEDIATE``: a second writer waits at BEGIN, never fails half-way."""
    db = store.Database.for_data_dir(tmp_path)
    other = sqlite3.connect(tmp_path / "watchkeeper.db", timeout=0, isolation_level=None)
    try:
        async with db.session():
            other.execute("BEGIN IMMEDIATE")  # a reader holds no write lock
            other.execute("ROLLBACK")
        async with db.begin():
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
    finally:
        other.close()
        await db.aclose()
