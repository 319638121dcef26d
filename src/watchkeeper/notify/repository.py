"""The notification delivery log: every attempt of every notification on every channel.

The notifier hands attempts over in batches (`record_deliveries`, one transaction each);
the API reads them back newest first with filters and an id cursor (`list_deliveries`);
`prune_deliveries` ages them out. Nothing refers to checks or alarms by foreign key: the
log of a removed check or channel stays readable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from watchkeeper.store import bulk, tables
from watchkeeper.store.db import Database

#: How long the log is kept by default (`prune_deliveries`).
DELIVERY_RETENTION = timedelta(days=90)
#: Rows per prune transaction, so writers get the database between batches.
PRUNE_BATCH = bulk.PRUNE_BATCH


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryAttempt:
    """One attempt to deliver one notification through one channel.

    ``id`` is None until the attempt is written; read back, it increases with every attempt
    written and is the paging cursor of `list_deliveries`.
    """

    #: `NotificationKind` value (``problem``, ``recovery``...).
    notification_kind: str
    #: The check key (``host!service``) or host the notification is about.
    key: str
    #: The state the notification reported.
    state: str
    alarm_id: int | None = None
    #: The channel's name in the document (possibly one the document does not have).
    channel: str
    #: 1 for the first attempt of this notification on this channel.
    attempt: int
    #: When the attempt started (aware UTC).
    at: datetime
    success: bool
    #: The destination's word: ``HTTP 503``, ``SMTP 250``, ``exit 1``; None if it said none.
    status: str | None = None
    #: Why it failed; None on success.
    error: str | None = None
    #: Seconds the attempt took.
    duration: float
    id: int | None = None

    @classmethod
    def from_row(cls, row: tables.NotificationDeliveryRow) -> DeliveryAttempt:
        return cls(
            id=row.id,
            notification_kind=row.notification_kind,
            key=row.check_key,
            state=row.state,
            alarm_id=row.alarm_id,
            channel=row.channel,
            attempt=row.attempt,
            at=row.at,
            success=row.success,
            status=row.status,
            error=row.error,
            duration=row.duration,
        )

    def log_context(self) -> dict[str, Any]:
        return {
            "kind": self.notification_kind,
            "key": self.key,
            "channel": self.channel,
            "attempt": self.attempt,
            "success": self.success,
            "status": self.status,
        }

    def as_dict(self) -> dict[str, Any]:
        """The JSON form the API returns."""
        return {
            "id": self.id,
            "notification_kind": self.notification_kind,
            "key": self.key,
            "state": self.state,
            "alarm_id": self.alarm_id,
            "channel": self.channel,
            "attempt": self.attempt,
            "at": self.at.isoformat(),
            "success": self.success,
            "status": self.status,
            "error": self.error,
            "duration": self.duration,
        }


async def record_deliveries(db: Database, attempts: Sequence[DeliveryAttempt]) -> None:
    """Append ``attempts`` to the log in one transaction."""
    if not attempts:
        return
    async with db.begin() as session:
        await session.execute(
            sa.insert(tables.notification_deliveries), [_row(a) for a in attempts]
        )


async def list_deliveries(
    session: AsyncSession,
    *,
    key: str | None = None,
    channel: str | None = None,
    success: bool | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    before_id: int | None = None,
) -> list[DeliveryAttempt]:
    """Attempts newest (highest id) first, at most ``limit`` of them.

    ``since`` is inclusive and ``until`` exclusive. For the next page pass the last
    attempt's id as ``before_id``.
    """
    stmt = _deliveries(key, channel, success, since, until, limit, before_id).limit(limit)
    return [DeliveryAttempt.from_row(row) for row in await session.scalars(stmt)]


async def page_deliveries(
    session: AsyncSession,
    *,
    key: str | None = None,
    channel: str | None = None,
    success: bool | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
    before_id: int | None = None,
) -> bulk.Listed[DeliveryAttempt]:
    """A page of `list_deliveries` and how many attempts match (one count more)."""
    stmt = _deliveries(key, channel, success, since, until, limit, before_id)
    return await bulk.listed(session, stmt, DeliveryAttempt.from_row, limit=limit, offset=offset)


def _deliveries(
    key: str | None,
    channel: str | None,
    success: bool | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    before_id: int | None,
) -> sa.Select[Any]:
    if limit < 1:
        raise ValueError(f"limit must be positive, not {limit}")
    row = tables.NotificationDeliveryRow
    stmt = sa.select(row).order_by(row.id.desc())
    if key is not None:
        stmt = stmt.where(row.check_key == key)
    if channel is not None:
        stmt = stmt.where(row.channel == channel)
    if success is not None:
        stmt = stmt.where(row.success == success)
    if since is not None:
        stmt = stmt.where(row.at >= since)
    if until is not None:
        stmt = stmt.where(row.at < until)
    if before_id is not None:
        stmt = stmt.where(row.id < before_id)
    return stmt


async def prune_deliveries(db: Database, *, older_than: datetime, batch: int = PRUNE_BATCH) -> int:
    """Delete attempts from before ``older_than``; returns how many went."""
    return await bulk.prune(db, tables.notification_deliveries, older_than=older_than, batch=batch)


def _row(attempt: DeliveryAttempt) -> dict[str, Any]:
    return {
        "notification_kind": attempt.notification_kind,
        "check_key": attempt.key,
        "state": attempt.state,
        "alarm_id": attempt.alarm_id,
        "channel": attempt.channel,
        "attempt": attempt.attempt,
        "at": attempt.at,
        "success": attempt.success,
        "status": attempt.status,
        "error": attempt.error,
        "duration": attempt.duration,
    }
