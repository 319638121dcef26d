"""Configuration versions, the running configuration, rejected candidates and source status.

An import compares record hashes only: it reads ``(kind, name, hash)`` and ``(key, hash)`` of
the running configuration, never its specs, and writes the difference with bulk statements
(see `watchkeeper.store.bulk`) in one transaction. Rows it does not touch keep their
runtime state; a failure leaves everything as it was.
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from watchkeeper.document.diff import ConfigDiff, Delta, diff
from watchkeeper.document.normalize import Hashes, ObjectRecord, Snapshot
from watchkeeper.document.problems import Problem
from watchkeeper.errors import ImportFailed, StoreError
from watchkeeper.store import bulk, tables
from watchkeeper.store.db import Database, reason
from watchkeeper.store.tables import ConfigVersionRow, RejectedCandidateRow, SourceStatusRow
from watchkeeper.store.values import ConfigVersion, ImportOutcome, Rejection, SourceStatus

#: A rejected candidate's document is kept up to this many bytes (UTF-8).
MAX_REJECTED_DOCUMENT_BYTES = 1024 * 1024

#: Called after each step of an import ("version", "deleted", "updated", "inserted"); a seam
#: for tests to fail an import half-way.
StepHook = Callable[[str], Awaitable[None]]


# --- reading ------------------------------------------------------------------------------


async def current_version(session: AsyncSession) -> ConfigVersion | None:
    """The running configuration's version (the latest), without its document."""
    row = await session.scalar(
        sa.select(ConfigVersionRow)
        .options(defer(ConfigVersionRow.document, raiseload=True))
        .order_by(ConfigVersionRow.id.desc())
        .limit(1)
    )
    return None if row is None else ConfigVersion.from_row(row)


async def running_hashes(session: AsyncSession) -> Hashes:
    """What a diff needs of the running configuration: hashes only, never specs."""
    objects: dict[str, dict[str, str]] = {}
    o, c = tables.config_objects.c, tables.checks.c
    for kind, name, hash_ in await bulk.fetch(session, sa.select(o.kind, o.name, o.hash)):
        objects.setdefault(kind, {})[name] = hash_
    checks = await bulk.fetch(session, sa.select(c.key, c.hash))
    return Hashes(objects=objects, checks=dict(checks))


async def plan(db: Database, snapshot: Snapshot) -> ConfigDiff:
    """What importing ``snapshot`` would change; writes nothing."""
    async with db.session() as session:
        running = await running_hashes(session)
    return diff(running, snapshot.hashes())


async def list_objects(session: AsyncSession, kind: str) -> list[ObjectRecord]:
    """The running configuration's objects of one section (``notifications``, ...), by name.

    Specs are the JSON as the document had it (durations as text): parse them with the
    section's model (``models.SECTIONS[kind]``) where typed values are needed.
    """
    o = tables.config_objects.c
    rows = await session.execute(
        sa.select(o.name, o.hash, o.spec).where(o.kind == kind).order_by(o.name)
    )
    return [ObjectRecord(kind=kind, name=name, hash=hash_, spec=spec) for name, hash_, spec in rows]


def _versions() -> sa.Select[Any]:
    return (
        sa.select(ConfigVersionRow)
        .options(defer(ConfigVersionRow.document, raiseload=True))
        .order_by(ConfigVersionRow.id.desc())
    )


async def list_versions(
    session: AsyncSession, *, limit: int = 50, offset: int = 0
) -> list[ConfigVersion]:
    """Versions newest first, without their documents."""
    rows = await session.scalars(_versions().limit(limit).offset(offset))
    return [ConfigVersion.from_row(r) for r in rows]


async def page_versions(
    session: AsyncSession, *, limit: int = 50, offset: int = 0
) -> bulk.Listed[ConfigVersion]:
    """A page of `list_versions` and how many versions there are."""
    return await bulk.listed(
        session, _versions(), ConfigVersion.from_row, limit=limit, offset=offset
    )


async def get_version(session: AsyncSession, version_id: int) -> ConfigVersion | None:
    """One version with its document, or None."""
    row = await session.get(ConfigVersionRow, version_id)
    return None if row is None else ConfigVersion.from_row(row, with_document=True)


async def list_rejections(
    session: AsyncSession, *, limit: int = 50, offset: int = 0
) -> list[Rejection]:
    """Rejected candidates, most recently seen first, without their documents."""
    return (await page_rejections(session, limit=limit, offset=offset)).items


async def page_rejections(
    session: AsyncSession, *, limit: int = 50, offset: int = 0
) -> bulk.Listed[Rejection]:
    """A page of rejected candidates and how many there are."""
    r = RejectedCandidateRow
    stmt = (
        sa.select(r)
        .options(defer(r.document, raiseload=True))
        .order_by(r.last_seen.desc(), r.id.desc())
    )
    return await bulk.listed(session, stmt, Rejection.from_row, limit=limit, offset=offset)


async def get_rejection(session: AsyncSession, rejection_id: int) -> Rejection | None:
    """One rejected candidate with its (possibly truncated) document, or None."""
    row = await session.get(RejectedCandidateRow, rejection_id)
    return None if row is None else Rejection.from_row(row, with_document=True)


async def list_source_statuses(session: AsyncSession) -> list[SourceStatus]:
    rows = await session.scalars(sa.select(SourceStatusRow).order_by(SourceStatusRow.name))
    return [SourceStatus.from_row(r) for r in rows]


# --- importing ----------------------------------------------------------------------------


async def import_snapshot(
    db: Database,
    *,
    snapshot: Snapshot,
    content_hash: str,
    document_json: str,
    source: str,
    warnings: list[Problem],
    now: datetime,
    _after_step: StepHook | None = None,
) -> ImportOutcome:
    """Make ``snapshot`` the running configuration as a new version, all or nothing.

    A candidate whose hash is the running version's is a no-op (``created`` False). Any
    failure rolls the transaction back and raises `ImportFailed` chained to the cause.
    """
    try:
        async with db.session() as session:  # the common case, an unchanged poll, takes no lock
            current = await current_version(session)
        if current is not None and current.content_hash == content_hash:
            return _unchanged(current, snapshot)
        async with db.begin() as session:
            await db.lock(session)
            current = await current_version(session)
            if current is not None and current.content_hash == content_hash:
                return _unchanged(current, snapshot)
            new = snapshot.hashes()
            change = diff(await _hashes_at(session, db, current), new)
            version = await _insert_version(
                session,
                content_hash=content_hash,
                source=source,
                summary=change.summary(),
                warnings=[p.as_dict() for p in warnings],
                document=document_json,
                now=now,
            )
            await _apply(session, snapshot, change, version.id, _after_step or _no_hook)
    except Exception as exc:
        cause = exc.message if isinstance(exc, StoreError) else reason(exc)
        raise ImportFailed(
            f"import from {source} rolled back, the running configuration is unchanged: {cause}"
        ) from exc
    _RUNNING[db] = _Running(version_id=version.id, hashes=new)
    return ImportOutcome(version=version, diff=change, created=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Running:
    """The hashes of the running configuration as of one version."""

    version_id: int
    hashes: Hashes


#: What the last import through each `Database` left running. Only imports change the
#: running configuration and each makes a new version, so while the latest version is still
#: this one the tables hold exactly these hashes: a warm manager's next import skips reading
#: 100,000 rows back. Another manager's import makes a newer version and the cache is ignored.
_RUNNING: weakref.WeakKeyDictionary[Database, _Running] = weakref.WeakKeyDictionary()


async def _hashes_at(session: AsyncSession, db: Database, current: ConfigVersion | None) -> Hashes:
    known = _RUNNING.get(db)
    if known is not None and current is not None and known.version_id == current.id:
        return known.hashes
    return await running_hashes(session)


def _unchanged(current: ConfigVersion, snapshot: Snapshot) -> ImportOutcome:
    empty = ConfigDiff(objects={kind: Delta() for kind in snapshot.objects}, checks=Delta())
    return ImportOutcome(version=current, diff=empty, created=False)


async def _no_hook(step: str) -> None:
    return None


async def _insert_version(
    session: AsyncSession,
    *,
    content_hash: str,
    source: str,
    summary: dict[str, Any],
    warnings: list[dict[str, Any]],
    document: str,
    now: datetime,
) -> ConfigVersion:
    t = tables.config_versions
    version_id: int | None = await session.scalar(
        sa.insert(t)
        .values(
            content_hash=content_hash,
            source=source,
            created_at=now,
            summary=summary,
            warnings=warnings,
            document=document,
        )
        .returning(t.c.id)
    )
    assert version_id is not None
    return ConfigVersion(
        id=version_id,
        content_hash=content_hash,
        source=source,
        created_at=now.astimezone(UTC),
        summary=summary,
        warnings=warnings,
    )


_OBJECT_KEY = ("kind", "name")
_OBJECT_COLUMNS = ("hash", "spec", "version_id")
_CHECK_KEY = ("key",)
_CHECK_COLUMNS = ("host", "service", "zone", "hash", "spec", "version_id")


async def _apply(
    session: AsyncSession, snapshot: Snapshot, change: ConfigDiff, version_id: int, step: StepHook
) -> None:
    """Write the difference: deletes, then updates, then inserts, each in bulk."""
    await step("version")
    o, c = tables.config_objects, tables.checks
    for kind, delta in change.objects.items():
        await bulk.delete(session, o, "name", delta.removed, o.c.kind == kind)
    await bulk.delete(session, c, "key", change.checks.removed)  # their states cascade
    await step("deleted")

    rows = _object_rows(snapshot, change, "changed", version_id)
    await bulk.update(session, o, _OBJECT_KEY, _OBJECT_COLUMNS, rows)
    rows = _check_rows(snapshot, change.checks.changed, version_id)
    await bulk.update(session, c, _CHECK_KEY, _CHECK_COLUMNS, rows)
    await step("updated")

    rows = _object_rows(snapshot, change, "added", version_id)
    await bulk.insert(session, o, [*_OBJECT_KEY, *_OBJECT_COLUMNS], rows)
    rows = _check_rows(snapshot, change.checks.added, version_id)
    await bulk.insert(session, c, [*_CHECK_KEY, *_CHECK_COLUMNS], rows)
    await step("inserted")


def _object_rows(
    snapshot: Snapshot, change: ConfigDiff, which: str, version_id: int
) -> Iterator[tuple[Any, ...]]:
    """Rows in `_OBJECT_KEY` + `_OBJECT_COLUMNS` order, made as they are written."""
    for kind, delta in change.objects.items():
        records = snapshot.objects[kind]
        for name in getattr(delta, which):
            record = records[name]
            yield (kind, name, record.hash, record.spec, version_id)


def _check_rows(
    snapshot: Snapshot, keys: Sequence[str], version_id: int
) -> Iterator[tuple[Any, ...]]:
    """Rows in `_CHECK_KEY` + `_CHECK_COLUMNS` order, made as they are written."""
    for key in keys:
        r = snapshot.checks[key]
        yield (key, r.host, r.service, r.zone, r.hash, r.spec, version_id)


# --- rejections and sources ---------------------------------------------------------------


def _insert(db: Database, table: sa.Table) -> postgresql.Insert | sqlite.Insert:
    """The dialect's INSERT, which knows ``ON CONFLICT``."""
    return postgresql.insert(table) if db.dialect == "postgresql" else sqlite.insert(table)


async def prune_versions(db: Database, *, keep_last: int, older_than: datetime) -> int:
    """Delete configuration versions beyond the last ``keep_last`` and older than
    ``older_than``; returns how many went.

    Never the current one (it is the last), nor one a running object or check still comes
    from (its ``version_id``): a version is the record of what the running state is made
    of, so only versions nothing runs from any more are history to prune.
    """
    if keep_last < 1:
        raise ValueError(f"keep_last must be at least 1, not {keep_last}")
    v, o, c = tables.config_versions.c, tables.config_objects.c, tables.checks.c
    newest = sa.select(v.id).order_by(v.id.desc()).limit(keep_last).subquery()
    in_use = sa.union(sa.select(o.version_id), sa.select(c.version_id)).subquery()
    doomed = sa.select(v.id).where(
        v.created_at < older_than,
        v.id.not_in(sa.select(newest.c.id)),
        v.id.not_in(sa.select(in_use.c.version_id)),
    )
    async with db.begin() as session:
        result = await session.execute(sa.delete(tables.config_versions).where(v.id.in_(doomed)))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def record_rejection(
    db: Database,
    *,
    content_hash: str | None,
    source: str,
    problems: list[Problem],
    document: str | None,
    now: datetime,
) -> int:
    """Record a refused candidate; the same content from the same source bumps one row.

    Returns the row's id. The document is cut to 1 MiB, enough to see what was sent.
    """
    t = tables.rejected_candidates
    stmt = _insert(db, t).values(
        content_hash=content_hash,
        source=source,
        first_seen=now,
        last_seen=now,
        times=1,
        problems=[p.as_dict() for p in problems],
        document=None if document is None else _truncate(document),
    )
    if content_hash is not None:
        stmt = stmt.on_conflict_do_update(
            index_elements=[t.c.content_hash, t.c.source],
            set_={
                "last_seen": stmt.excluded.last_seen,
                "times": t.c.times + 1,
                "problems": stmt.excluded.problems,
            },
        )
    async with db.begin() as session:
        rejection_id: int | None = await session.scalar(stmt.returning(t.c.id))
    assert rejection_id is not None
    return rejection_id


def _truncate(document: str) -> str:
    """The first `MAX_REJECTED_DOCUMENT_BYTES` of UTF-8, NULs replaced (PostgreSQL text has none).

    Only the head is encoded, however large the candidate.
    """
    head = document[:MAX_REJECTED_DOCUMENT_BYTES].replace("\x00", "\ufffd")
    data = head.encode("utf-8", errors="replace")[:MAX_REJECTED_DOCUMENT_BYTES]
    return data.decode("utf-8", errors="ignore")  # drops a character cut in half


async def record_source_status(
    db: Database,
    *,
    name: str,
    ok: bool,
    last_attempt: datetime | None,
    last_success: datetime | None,
    last_error: str | None,
    consecutive_failures: int,
    etag: str | None = None,
    last_modified: str | None = None,
) -> None:
    """Insert or replace the status row of source ``name``."""
    values: dict[str, Any] = {
        "ok": ok,
        "last_attempt": last_attempt,
        "last_success": last_success,
        "last_error": last_error,
        "consecutive_failures": consecutive_failures,
        "etag": etag,
        "last_modified": last_modified,
    }
    t = tables.source_status
    stmt = _insert(db, t).values(name=name, **values)
    stmt = stmt.on_conflict_do_update(
        index_elements=[t.c.name], set_={k: stmt.excluded[k] for k in values}
    )
    async with db.begin() as session:
        await session.execute(stmt)
