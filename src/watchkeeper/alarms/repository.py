"""Alarms, their timelines and scheduled downtimes, so the alarm book outlives the process.

The `AlarmBook` decides in memory; `save_alarms` writes the alarms it changed (an upsert
by id: the book gives ids) with their new timeline events, one transaction per batch.
`list_alarms` (open ones at start) and `list_downtimes` (live ones at start) bring them
back, and `next_alarm_id` where the book's counter resumes. Downtimes are written at once
by the operator's request (`insert_downtime`, `cancel_downtime`): their ids are the
database's, shown to people and never reused.

Times are the book's epoch seconds and become UTC timestamps here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from watchkeeper.alarms.values import (
    Acknowledgement,
    Alarm,
    AlarmEvent,
    AlarmKind,
    Downtime,
    EventKind,
)
from watchkeeper.store import bulk, tables
from watchkeeper.store.db import Database

#: Rows per multi-row upsert: 19 parameters each stays well below SQLite's variable limit.
ROWS_PER_STATEMENT = 500

_ALARM_COLUMNS = (
    "check_key",
    "metric",
    "kind",
    "host",
    "service",
    "state",
    "output",
    "opened_at",
    "resolved_at",
    "acknowledged_at",
    "acknowledged_by",
    "ack_comment",
    "ack_sticky",
    "ack_expires",
    "last_notified_at",
    "notified",
    "suppressed",
    "flapping",
)


async def save_alarms(
    db: Database, alarms: Sequence[Alarm], events: Sequence[AlarmEvent] = ()
) -> None:
    """Upsert ``alarms`` (the latest of each id wins) and append ``events``, in one go."""
    if not alarms and not events:
        return
    latest = {alarm.id: alarm for alarm in alarms}
    table = tables.alarms
    async with db.begin() as session:
        insert = postgresql.insert(table) if db.dialect == "postgresql" else sqlite.insert(table)
        rows = [_alarm_row(alarm) for alarm in latest.values()]
        for part in bulk.chunks(rows, ROWS_PER_STATEMENT):
            stmt = insert.values(list(part))
            stmt = stmt.on_conflict_do_update(
                index_elements=[table.c.id],
                set_={name: stmt.excluded[name] for name in _ALARM_COLUMNS},
            )
            await session.execute(stmt)
        if events:
            await session.execute(
                sa.insert(tables.alarm_events),
                [
                    {
                        "alarm_id": event.alarm_id,
                        "at": _timestamp(event.at),
                        "kind": event.kind.value,
                        "detail": event.detail,
                    }
                    for event in events
                ],
            )


async def list_alarms(
    session: AsyncSession,
    *,
    open_only: bool = True,
    key: str | None = None,
    host: str | None = None,
    limit: int | None = None,
    before_id: int | None = None,
) -> list[Alarm]:
    """Alarms, newest (highest id) first; open ones only unless ``open_only`` is False.

    For the next page pass the last alarm's id as ``before_id``.
    """
    return (
        await page_alarms(
            session, open_only=open_only, key=key, host=host, limit=limit, before_id=before_id
        )
    ).items


async def page_alarms(
    session: AsyncSession,
    *,
    open_only: bool = True,
    key: str | None = None,
    host: str | None = None,
    limit: int | None = None,
    offset: int = 0,
    before_id: int | None = None,
) -> bulk.Listed[Alarm]:
    """A page of `list_alarms` and how many alarms match."""
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be positive, not {limit}")
    row = tables.AlarmRow
    stmt = sa.select(row).order_by(row.id.desc())
    if open_only:
        stmt = stmt.where(row.resolved_at.is_(None))
    if key is not None:
        stmt = stmt.where(row.check_key == key)
    if host is not None:
        stmt = stmt.where(row.host == host)
    if before_id is not None:
        stmt = stmt.where(row.id < before_id)
    return await bulk.listed(session, stmt, _alarm, limit=limit, offset=offset)


async def get_alarm(session: AsyncSession, alarm_id: int) -> Alarm | None:
    found = await session.get(tables.AlarmRow, alarm_id)
    return None if found is None else _alarm(found)


async def next_alarm_id(session: AsyncSession) -> int:
    """Where the book's id counter resumes: one above the highest id ever saved."""
    highest = await session.scalar(sa.select(sa.func.max(tables.alarms.c.id)))
    return 1 if highest is None else int(highest) + 1


async def list_alarm_events(session: AsyncSession, alarm_id: int) -> list[AlarmEvent]:
    """An alarm's timeline, oldest first."""
    e = tables.alarm_events.c
    rows = await session.execute(
        sa.select(e.alarm_id, e.at, e.kind, e.detail).where(e.alarm_id == alarm_id).order_by(e.id)
    )
    return [
        AlarmEvent(alarm_id=found_id, at=_seconds(at), kind=EventKind(kind), detail=detail)
        for found_id, at, kind, detail in rows
    ]


async def insert_downtime(
    db: Database,
    *,
    host: str,
    service: str | None,
    start: float,
    end: float,
    author: str,
    comment: str,
    created_at: float,
) -> Downtime:
    """Save a new downtime; the database gives its id."""
    async with db.begin() as session:
        row = tables.DowntimeRow(
            host=host,
            service=service,
            start_at=_timestamp(start),
            end_at=_timestamp(end),
            author=author,
            comment=comment,
            created_at=_timestamp(created_at),
        )
        session.add(row)
        await session.flush()
        return _downtime(row)


async def cancel_downtime(db: Database, downtime_id: int, at: float) -> Downtime | None:
    """Mark a downtime cancelled at ``at``; None when there is no such live downtime."""
    async with db.begin() as session:
        row = await session.get(tables.DowntimeRow, downtime_id)
        if row is None or row.cancelled_at is not None:
            return None
        row.cancelled_at = _timestamp(at)
        await session.flush()
        return _downtime(row)


async def list_downtimes(
    session: AsyncSession,
    *,
    live_at: float | None = None,
    host: str | None = None,
    include_cancelled: bool = False,
) -> list[Downtime]:
    """Downtimes by id; ``live_at``: only those not over by then (future ones included)."""
    row = tables.DowntimeRow
    stmt = sa.select(row).order_by(row.id)
    if live_at is not None:
        stmt = stmt.where(row.end_at > _timestamp(live_at))
    if host is not None:
        stmt = stmt.where(row.host == host)
    if not include_cancelled:
        stmt = stmt.where(row.cancelled_at.is_(None))
    return [_downtime(found) for found in await session.scalars(stmt)]


def _alarm_row(alarm: Alarm) -> dict[str, Any]:
    ack = alarm.acknowledgement
    return {
        "id": alarm.id,
        "check_key": alarm.key,
        "metric": alarm.metric,
        "kind": alarm.kind.value,
        "host": alarm.host,
        "service": alarm.service,
        "state": alarm.state,
        "output": alarm.output,
        "opened_at": _timestamp(alarm.opened_at),
        "resolved_at": _optional(alarm.resolved_at),
        "acknowledged_at": None if ack is None else _timestamp(ack.at),
        "acknowledged_by": None if ack is None else ack.author,
        "ack_comment": None if ack is None else ack.comment,
        "ack_sticky": None if ack is None else ack.sticky,
        "ack_expires": None if ack is None else _optional(ack.expires),
        "last_notified_at": _optional(alarm.last_notified_at),
        "notified": alarm.notified,
        "suppressed": alarm.suppressed,
        "flapping": alarm.flapping,
    }


def _alarm(row: tables.AlarmRow) -> Alarm:
    ack = None
    if row.acknowledged_at is not None:
        ack = Acknowledgement(
            author=row.acknowledged_by or "",
            comment=row.ack_comment or "",
            at=_seconds(row.acknowledged_at),
            sticky=bool(row.ack_sticky),
            expires=_optional_seconds(row.ack_expires),
        )
    return Alarm(
        id=row.id,
        key=row.check_key,
        metric=row.metric,
        kind=AlarmKind(row.kind),
        host=row.host,
        service=row.service,
        state=row.state,
        output=row.output,
        opened_at=_seconds(row.opened_at),
        acknowledgement=ack,
        resolved_at=_optional_seconds(row.resolved_at),
        last_notified_at=_optional_seconds(row.last_notified_at),
        notified=row.notified,
        suppressed=row.suppressed,
        flapping=row.flapping,
    )


def _downtime(row: tables.DowntimeRow) -> Downtime:
    return Downtime(
        id=row.id,
        host=row.host,
        service=row.service,
        start=_seconds(row.start_at),
        end=_seconds(row.end_at),
        author=row.author,
        comment=row.comment,
        created_at=_seconds(row.created_at),
        cancelled_at=_optional_seconds(row.cancelled_at),
    )


def _timestamp(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _optional(seconds: float | None) -> datetime | None:
    return None if seconds is None else _timestamp(seconds)


def _seconds(value: datetime) -> float:
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def _optional_seconds(value: datetime | None) -> float | None:
    return None if value is None else _seconds(value)
