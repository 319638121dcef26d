"""Version history, rejected candidates and source status, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta, timezone
from typing import Any

import sqlalchemy as sa

from tests.fixtures.database import T0, ImportDocument
from watchkeeper import store
from watchkeeper.document.problems import Problem, Severity
from watchkeeper.store import tables
from watchkeeper.store.config import MAX_REJECTED_DOCUMENT_BYTES


def document(*services: str) -> dict[str, Any]:
    return {
        "schema": "watchkeeper/v1",
        "zones": [{"name": "core"}],
        "hosts": [{"name": "web1", "address": "192.0.2.10", "zone": "core"}],
        "services": [
            {"name": name, "hosts": ["web1"], "check": {"kind": "tcp", "port": 22}}
            for name in services
        ],
    }


PROBLEMS = [
    Problem(pointer="/hosts/0/zone", message="unknown zone 'nowhere'"),
    Problem(pointer="/services/1", message="matches no host", severity=Severity.WARNING),
]


async def count(db: store.Database, table: sa.Table) -> int:
    async with db.session() as session:
        return await session.scalar(sa.select(sa.func.count()).select_from(table)) or 0


# --- versions -------------------------------------------------------------------------------


async def test_versions_list_newest_first_in_pages(
    db: store.Database, import_document: ImportDocument
) -> None:
    raws = [document("ssh"), document("ssh", "smtp"), document("smtp")]
    for raw in raws:
        await import_document(raw)

    async with db.session() as session:
        first = await store.list_versions(session, limit=2)
        rest = await store.list_versions(session, limit=2, offset=2)
        past_end = await store.list_versions(session, limit=2, offset=3)
        second = await store.get_version(session, 2)
        missing = await store.get_version(session, 99)

    assert [v.id for v in first] == [3, 2] and [v.id for v in rest] == [1] and past_end == []
    assert all(v.document is None for v in first)  # listings leave the documents out
    assert [v.created_at for v in rest + first] == [T0 + timedelta(minutes=i) for i in (0, 2, 1)]
    assert second is not None and second.document == raws[1]
    assert second.summary == {
        "services": {"added": 1, "changed": 0, "removed": 0},
        "checks": {"added": 1, "changed": 0, "removed": 0},
    }
    assert missing is None


async def test_a_version_keeps_the_warnings_of_its_candidate(
    db: store.Database, import_document: ImportDocument
) -> None:
    raw = document("ssh")
    raw["services"].append({"name": "idle", "hosts": {"labels": {"role": "none"}}})
    raw["services"][-1]["check"] = {"kind": "ping"}

    outcome = await import_document(raw)

    assert outcome.version.warnings and outcome.version.warnings[0]["severity"] == "warning"
    async with db.session() as session:
        stored = await store.get_version(session, outcome.version.id)
    assert stored is not None and stored.warnings == outcome.version.warnings


async def test_times_come_back_in_utc(db: store.Database, import_document: ImportDocument) -> None:
    await import_document(document("ssh"))
    east = timezone(timedelta(hours=2))
    await store.record_source_status(
        db,
        name="file",
        ok=True,
        last_attempt=T0.astimezone(east),
        last_success=None,
        last_error=None,
        consecutive_failures=0,
    )
    async with db.session() as session:
        (version,) = await store.list_versions(session)
        (status,) = await store.list_source_statuses(session)
    assert version.created_at.utcoffset() == timedelta(0) and version.created_at == T0
    assert status.last_attempt is not None and status.last_attempt.tzinfo is not None
    assert status.last_attempt == T0 and status.last_attempt.utcoffset() == timedelta(0)


# --- rejections -----------------------------------------------------------------------------


async def test_a_rejection_is_recorded_with_its_problems_and_changes_nothing(
    db: store.Database, import_document: ImportDocument
) -> None:
    await import_document(document("ssh"))

    rejection_id = await store.record_rejection(
        db, content_hash="ab" * 32, source="file", problems=PROBLEMS, document="{}", now=T0
    )

    async with db.session() as session:
        found = await store.get_rejection(session, rejection_id)
        version = await store.current_version(session)
    assert found is not None
    assert found.problems == [p.as_dict() for p in PROBLEMS]
    assert (found.first_seen, found.last_seen, found.times) == (T0, T0, 1)
    assert found.document == "{}"
    assert version is not None and version.id == 1
    assert await count(db, tables.config_versions) == 1


async def test_the_same_rejection_again_is_counted_not_repeated(db: store.Database) -> None:
    later = T0 + timedelta(minutes=5)
    args: dict[str, Any] = {"problems": PROBLEMS, "document": "{}"}
    first = await store.record_rejection(db, content_hash="h1", source="a", now=T0, **args)
    again = await store.record_rejection(db, content_hash="h1", source="a", now=later, **args)
    other_source = await store.record_rejection(db, content_hash="h1", source="b", now=T0, **args)
    unhashed = [
        await store.record_rejection(db, content_hash=None, source="a", now=T0, **args)
        for _ in range(2)
    ]

    assert again == first
    assert len({first, other_source, *unhashed}) == 4
    async with db.session() as session:
        rows = await store.list_rejections(session)
        page = await store.list_rejections(session, limit=1, offset=1)
    bumped = next(r for r in rows if r.id == first)
    assert (bumped.first_seen, bumped.last_seen, bumped.times) == (T0, later, 2)
    assert rows[0].id == first  # most recently seen first
    assert bumped.document is None  # listings leave the documents out
    assert page == [rows[1]]
    assert bumped.as_dict()["last_seen"] == later.isoformat()


async def test_a_rejected_document_is_kept_up_to_one_mib(db: store.Database) -> None:
    huge = "é" * MAX_REJECTED_DOCUMENT_BYTES + "\x00"  # 2 MiB of UTF-8, and a NUL
    small = "{\x00}"

    big_id = await store.record_rejection(
        db, content_hash="big", source="a", problems=[], document=huge, now=T0
    )
    small_id = await store.record_rejection(
        db, content_hash="small", source="a", problems=[], document=small, now=T0
    )

    async with db.session() as session:
        big = await store.get_rejection(session, big_id)
        kept = await store.get_rejection(session, small_id)
    assert big is not None and big.document is not None
    assert len(big.document.encode()) == MAX_REJECTED_DOCUMENT_BYTES
    assert huge.startswith(big.document)
    assert kept is not None and kept.document == "{\ufffd}"  # PostgreSQL text holds no NUL


# --- sources --------------------------------------------------------------------------------


async def test_source_status_is_one_row_per_source_replaced_each_time(
    db: store.Database,
) -> None:
    later = T0 + timedelta(seconds=30)
    await store.record_source_status(
        db,
        name="https://cmdb/wk.json",
        ok=True,
        last_attempt=T0,
        last_success=T0,
        last_error=None,
        consecutive_failures=0,
        etag='"v1"',
        last_modified="Wed, 01 Jan 2025 12:00:00 GMT",
    )
    await store.record_source_status(
        db,
        name="https://cmdb/wk.json",
        ok=False,
        last_attempt=later,
        last_success=T0,
        last_error="HTTP 503",
        consecutive_failures=1,
        etag='"v1"',
    )
    await store.record_source_status(
        db,
        name="file:///etc/wk.json",
        ok=True,
        last_attempt=T0,
        last_success=T0,
        last_error=None,
        consecutive_failures=0,
    )

    async with db.session() as session:
        rows = await store.list_source_statuses(session)

    assert [r.name for r in rows] == ["file:///etc/wk.json", "https://cmdb/wk.json"]
    failing = rows[1]
    assert not failing.ok and failing.last_error == "HTTP 503"
    assert (failing.last_attempt, failing.last_success) == (later, T0)
    assert failing.consecutive_failures == 1
    assert (failing.etag, failing.last_modified) == ('"v1"', None)
