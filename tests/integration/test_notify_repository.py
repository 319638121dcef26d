"""The notification delivery log on SQLite and PostgreSQL: writes, filters, paging, pruning."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from watchkeeper import store
from watchkeeper.notify import repository as notifications_store
from watchkeeper.notify.repository import DeliveryAttempt

T = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def _attempt(
    n: int, *, key: str = "web1!http", channel: str = "ops", ok: bool = True
) -> DeliveryAttempt:
    return DeliveryAttempt(
        notification_kind="problem",
        key=key,
        state="CRITICAL",
        alarm_id=None if n % 2 else n,
        channel=channel,
        attempt=1,
        at=T + timedelta(minutes=n),
        success=ok,
        status="HTTP 200" if ok else "HTTP 503",
        error=None if ok else "HTTP 503 Service Unavailable",
        duration=0.25,
    )


async def test_attempts_round_trip_newest_first(db: store.Database) -> None:
    written = [_attempt(n) for n in range(3)]
    await notifications_store.record_deliveries(db, written)
    await notifications_store.record_deliveries(db, [])
    async with db.session() as session:
        read = await notifications_store.list_deliveries(session)
    assert [a.at for a in read] == [T + timedelta(minutes=n) for n in (2, 1, 0)]
    assert read[0].id is not None and read[0].id > (read[1].id or 0)
    assert [a.__class__(**{**a.as_dict(), "at": a.at, "id": None}) for a in read] == list(
        reversed(written)
    )
    assert read[0].as_dict()["at"] == "2025-01-01T12:02:00+00:00"


def minute(found: list[DeliveryAttempt]) -> list[int]:
    return [int((a.at - T).total_seconds() // 60) for a in found]


async def test_filters_and_paging(db: store.Database) -> None:
    await notifications_store.record_deliveries(
        db,
        [
            _attempt(0, key="a"),
            _attempt(1, key="a", ok=False),
            _attempt(2, key="b", channel="mail"),
            _attempt(3, key="a", channel="mail", ok=False),
            _attempt(4, key="a"),
        ],
    )
    async with db.session() as session:
        by_key = await notifications_store.list_deliveries(session, key="a")
        failed = await notifications_store.list_deliveries(session, success=False)
        mail = await notifications_store.list_deliveries(session, channel="mail", key="a")
        page1 = await notifications_store.list_deliveries(session, limit=2)
        page2 = await notifications_store.list_deliveries(session, limit=2, before_id=page1[-1].id)
        window = await notifications_store.list_deliveries(
            session, since=T + timedelta(minutes=1), until=T + timedelta(minutes=3)
        )
    assert minute(by_key) == [4, 3, 1, 0]
    assert minute(failed) == [3, 1]
    assert minute(mail) == [3]
    assert minute(page1) == [4, 3] and minute(page2) == [2, 1]
    assert minute(window) == [2, 1]
    with pytest.raises(ValueError, match="limit"):
        await notifications_store.list_deliveries(session, limit=0)


async def test_prune_removes_only_old_attempts(db: store.Database) -> None:
    await notifications_store.record_deliveries(db, [_attempt(n) for n in range(5)])
    deleted = await notifications_store.prune_deliveries(
        db, older_than=T + timedelta(minutes=3), batch=2
    )
    assert deleted == 3
    async with db.session() as session:
        left = await notifications_store.list_deliveries(session)
    assert [a.at for a in left] == [T + timedelta(minutes=4), T + timedelta(minutes=3)]
