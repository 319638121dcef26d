"""The store's tables, as SQLAlchemy declarative models; migrations must build exactly these.

Rows stay inside the store: repository functions turn them into the frozen values of
`watchkeeper.store.values`. Bulk writes use the Core tables (``ROW.__table__``), never per-row
ORM flushes, which is why `table()` exists.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: Longest object name the document allows, and the longest check key (``host!service``).
NAME_LENGTH = 128
CHECK_KEY_LENGTH = 2 * NAME_LENGTH + 1
HASH_LENGTH = 64


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on both databases.

    SQLite keeps no zone, so values are normalised to UTC going in and marked UTC coming out;
    a naive datetime is refused rather than guessed.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass an aware UTC time")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime: UTCDateTime(),
        dict[str, Any]: sa.JSON(),
        list[Any]: sa.JSON(),
    }


class ConfigVersionRow(Base):
    """An accepted configuration: the document as received and what it changed."""

    __tablename__ = "config_versions"
    #: Version ids are shown to people and logged: SQLite must never reuse one.
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    content_hash: Mapped[str] = mapped_column(sa.String(HASH_LENGTH), index=True)
    source: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime]
    summary: Mapped[dict[str, Any]]
    warnings: Mapped[list[Any]]
    document: Mapped[str] = mapped_column(sa.Text)


class RejectedCandidateRow(Base):
    """A refused candidate; the same content from the same source is one row with a count."""

    __tablename__ = "rejected_candidates"
    __table_args__ = (sa.UniqueConstraint("content_hash", "source"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    content_hash: Mapped[str | None] = mapped_column(sa.String(HASH_LENGTH))
    source: Mapped[str] = mapped_column(sa.Text)
    first_seen: Mapped[datetime]
    last_seen: Mapped[datetime]
    times: Mapped[int] = mapped_column(sa.Integer)
    problems: Mapped[list[Any]]
    document: Mapped[str | None] = mapped_column(sa.Text)


class ConfigObjectRow(Base):
    """A named object of the running configuration (zone, host, service, ...)."""

    __tablename__ = "config_objects"

    kind: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(NAME_LENGTH), primary_key=True)
    hash: Mapped[str] = mapped_column(sa.String(HASH_LENGTH))
    spec: Mapped[dict[str, Any]]
    #: The version that last added or changed this object.
    version_id: Mapped[int] = mapped_column(sa.ForeignKey("config_versions.id"))


class CheckRow(Base):
    """A schedulable check of the running configuration, every setting resolved."""

    __tablename__ = "checks"

    key: Mapped[str] = mapped_column(sa.String(CHECK_KEY_LENGTH), primary_key=True)
    host: Mapped[str] = mapped_column(sa.String(NAME_LENGTH), index=True)
    service: Mapped[str | None] = mapped_column(sa.String(NAME_LENGTH))
    zone: Mapped[str] = mapped_column(sa.String(NAME_LENGTH), index=True)
    hash: Mapped[str] = mapped_column(sa.String(HASH_LENGTH))
    spec: Mapped[dict[str, Any]]
    #: The version that last added or changed this check.
    version_id: Mapped[int] = mapped_column(sa.ForeignKey("config_versions.id"))


class CheckStateRow(Base):
    """Runtime state of a check; it lives as long as its check, across imports that keep it."""

    __tablename__ = "check_states"

    check_key: Mapped[str] = mapped_column(
        sa.String(CHECK_KEY_LENGTH),
        sa.ForeignKey("checks.key", ondelete="CASCADE"),
        primary_key=True,
    )
    state: Mapped[str] = mapped_column(sa.String(16))
    hard: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    attempt: Mapped[int] = mapped_column(sa.Integer, default=0)
    output: Mapped[str | None] = mapped_column(sa.Text)
    last_check: Mapped[datetime | None]
    last_change: Mapped[datetime | None]
    pending: Mapped[bool] = mapped_column(sa.Boolean, default=False, server_default=sa.false())
    stale: Mapped[bool] = mapped_column(sa.Boolean, default=False, server_default=sa.false())
    host_problem: Mapped[bool] = mapped_column(sa.Boolean, default=False, server_default=sa.false())
    #: NULL (with ``last_hard_change``) only in rows written before migration 0003.
    last_hard_state: Mapped[str | None] = mapped_column(sa.String(16))
    last_hard_change: Mapped[datetime | None]


class StateHistoryRow(Base):
    """One state change of a check (``kind`` "check") or of a host ("host"); ids follow time.

    No foreign key to ``checks``: history outlives the check and goes by age only. A host's
    entries carry its host check's key (the host name) and HostState names, and no attempt.
    """

    __tablename__ = "state_history"
    #: Ids are paging cursors: SQLite must never reuse one after a prune.
    __table_args__ = (sa.Index(None, "check_key", "at"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    check_key: Mapped[str] = mapped_column(sa.String(CHECK_KEY_LENGTH))
    kind: Mapped[str] = mapped_column(sa.String(8))
    at: Mapped[datetime] = mapped_column(index=True)
    state: Mapped[str] = mapped_column(sa.String(16))
    #: "soft" or "hard" (`StateType` values).
    state_type: Mapped[str] = mapped_column(sa.String(4))
    attempt: Mapped[int | None] = mapped_column(sa.Integer)
    output: Mapped[str] = mapped_column(sa.Text)
    #: None for a check's first result.
    previous_state: Mapped[str | None] = mapped_column(sa.String(16))
    #: The last hard state changed: the entries notifications act on.
    hard_change: Mapped[bool] = mapped_column(sa.Boolean)


class SourceStatusRow(Base):
    """The last poll of a source, so a failing source is visible, not just logged."""

    __tablename__ = "source_status"

    name: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    ok: Mapped[bool] = mapped_column(sa.Boolean)
    last_attempt: Mapped[datetime | None]
    last_success: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    consecutive_failures: Mapped[int] = mapped_column(sa.Integer, default=0)
    etag: Mapped[str | None] = mapped_column(sa.Text)
    last_modified: Mapped[str | None] = mapped_column(sa.Text)


class WorkerKeyRow(Base):
    """A worker's SSH public key and the zones it may serve; revoked rows stay for audit."""

    __tablename__ = "worker_keys"

    name: Mapped[str] = mapped_column(sa.String(NAME_LENGTH), primary_key=True)
    #: OpenSSH one-line form without comment (``ssh-ed25519 AAAA...``).
    public_key: Mapped[str] = mapped_column(sa.Text, unique=True)
    fingerprint: Mapped[str] = mapped_column(sa.String(128))
    zones: Mapped[list[Any]]
    labels: Mapped[dict[str, Any]]
    #: The host this key's agent serves; set only for agent keys (``--agent-for``).
    agent_for: Mapped[str | None] = mapped_column(sa.String(NAME_LENGTH))
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


def table(model: type[Base]) -> sa.Table:
    """The Core table of a model, for bulk statements."""
    found = model.__table__
    assert isinstance(found, sa.Table)
    return found


config_versions = table(ConfigVersionRow)
rejected_candidates = table(RejectedCandidateRow)
config_objects = table(ConfigObjectRow)
checks = table(CheckRow)
check_states = table(CheckStateRow)
state_history = table(StateHistoryRow)
source_status = table(SourceStatusRow)
worker_keys = table(WorkerKeyRow)
