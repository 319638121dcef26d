"""The column types the tables share across SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy.dialects.postgresql.base import PGDialect
from sqlalchemy.dialects.sqlite.base import SQLiteDialect

from watchkeeper.store.tables import UTCDateTime

EAST = timezone(timedelta(hours=2))
PG = PGDialect()  # type: ignore[no-untyped-call]
SQLITE = SQLiteDialect()


def test_timestamps_go_in_as_utc() -> None:
    at = datetime(2025, 1, 1, 14, 0, tzinfo=EAST)
    on_pg = UTCDateTime().process_bind_param(at, PG)
    on_sqlite = UTCDateTime().process_bind_param(at, SQLITE)
    assert on_pg == at and on_pg is not None and on_pg.tzinfo is UTC
    assert on_sqlite == datetime(2025, 1, 1, 12, 0)  # SQLite keeps no zone: stored as UTC


def test_timestamps_come_out_aware_in_utc() -> None:
    from_sqlite = UTCDateTime().process_result_value(datetime(2025, 1, 1), SQLITE)
    from_pg = UTCDateTime().process_result_value(datetime(2025, 1, 1, 2, tzinfo=EAST), PG)
    assert from_sqlite == from_pg == datetime(2025, 1, 1, tzinfo=UTC)
    assert from_sqlite is not None and from_sqlite.tzinfo is UTC


def test_naive_timestamps_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        UTCDateTime().process_bind_param(datetime(2025, 1, 1), SQLITE)
