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
#: Longest reason a check did not run that is kept (`check_states.not_run`).
NOT_RUN_LENGTH = 512


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
    #: Why the latest runs did not happen (no worker), or "" (migration 0011).
    not_run: Mapped[str] = mapped_column(sa.String(NOT_RUN_LENGTH), default="", server_default="")
    host_problem: Mapped[bool] = mapped_column(sa.Boolean, default=False, server_default=sa.false())
    #: NULL (with ``last_hard_change``) only in rows written before migration 0003.
    last_hard_state: Mapped[str | None] = mapped_column(sa.String(16))
    last_hard_change: Mapped[datetime | None]
    #: The leader term of the manager that wrote the row (migration 0014); NULL without HA.
    term: Mapped[int | None] = mapped_column(sa.BigInteger)


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


# --- telemetry (migration 0005) -------------------------------------------------------------
#: Longest perfdata label and unit a series keeps (longer ones are not recorded).
METRIC_LENGTH = 255
UOM_LENGTH = 32


class TelemetrySeriesRow(Base):
    """One metric of one check, by label and unit: points refer to it by its integer id.

    A unit change starts a new series (values in ms and in s must not share a graph).
    """

    __tablename__ = "telemetry_series"
    __table_args__ = (sa.UniqueConstraint("check_key", "metric", "uom"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    check_key: Mapped[str] = mapped_column(sa.String(CHECK_KEY_LENGTH))
    metric: Mapped[str] = mapped_column(sa.String(METRIC_LENGTH))
    uom: Mapped[str] = mapped_column(sa.String(UOM_LENGTH))


class TelemetryPointRow(Base):
    """A raw point: epoch milliseconds and value, clustered by series then time.

    WITHOUT ROWID on SQLite, so the primary key is the table (about 20 bytes a point) and
    a series' range is one contiguous read. No foreign key: a check per insert would halve
    the ingest rate, and series are never deleted.
    """

    __tablename__ = "telemetry_points"
    __table_args__ = {"sqlite_with_rowid": False}

    series_id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    at: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    value: Mapped[float] = mapped_column(sa.Double)


class _TelemetryBucket:
    """The columns of a rollup tier: count, sum, min, max and last of a bucket."""

    series_id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    #: The bucket's start, epoch milliseconds.
    bucket: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    samples: Mapped[int] = mapped_column(sa.Integer)
    total: Mapped[float] = mapped_column(sa.Double)
    minimum: Mapped[float] = mapped_column(sa.Double)
    maximum: Mapped[float] = mapped_column(sa.Double)
    latest: Mapped[float] = mapped_column(sa.Double)


class TelemetryFiveMinuteRow(_TelemetryBucket, Base):
    """5-minute buckets, rolled up from raw points once their bucket is closed."""

    __tablename__ = "telemetry_5m"
    __table_args__ = {"sqlite_with_rowid": False}


class TelemetryHourlyRow(_TelemetryBucket, Base):
    """1-hour buckets, folded from the 5-minute tier once their hour is rolled up."""

    __tablename__ = "telemetry_1h"
    __table_args__ = {"sqlite_with_rowid": False}


class TelemetryRollupRow(Base):
    """How far a tier is rolled up: every bucket before ``done_until`` (ms) is written."""

    __tablename__ = "telemetry_rollups"

    tier: Mapped[str] = mapped_column(sa.String(8), primary_key=True)
    done_until: Mapped[int] = mapped_column(sa.BigInteger)


telemetry_series = table(TelemetrySeriesRow)
telemetry_points = table(TelemetryPointRow)
telemetry_5m = table(TelemetryFiveMinuteRow)
telemetry_1h = table(TelemetryHourlyRow)
telemetry_rollups = table(TelemetryRollupRow)
# (end of telemetry tables)


# --- alarms, acknowledgements, downtimes (migration 0006) ----------------------------------
#: Longest metric label an alarm names (as telemetry's series do).
ALARM_METRIC_LENGTH = 255


class AlarmRow(Base):
    """One problem of a check (``metric`` NULL) or of one of its metrics, open to resolved.

    Ids are given by the alarm book (from the highest saved one), not by the database:
    alarms are made inside the engine loop and written in batches afterwards.
    """

    __tablename__ = "alarms"
    __table_args__ = (sa.Index(None, "check_key", "opened_at"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    check_key: Mapped[str] = mapped_column(sa.String(CHECK_KEY_LENGTH))
    metric: Mapped[str | None] = mapped_column(sa.String(ALARM_METRIC_LENGTH))
    #: "state" or "metric" (`AlarmKind` values).
    kind: Mapped[str] = mapped_column(sa.String(8))
    host: Mapped[str] = mapped_column(sa.String(NAME_LENGTH))
    service: Mapped[str | None] = mapped_column(sa.String(NAME_LENGTH))
    #: CRITICAL, WARNING, UNKNOWN, DOWN, UNREACHABLE.
    state: Mapped[str] = mapped_column(sa.String(16))
    output: Mapped[str] = mapped_column(sa.Text)
    opened_at: Mapped[datetime]
    #: NULL while the alarm is open: the index finds the open ones.
    resolved_at: Mapped[datetime | None] = mapped_column(index=True)
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by: Mapped[str | None] = mapped_column(sa.String(NAME_LENGTH))
    ack_comment: Mapped[str | None] = mapped_column(sa.Text)
    ack_sticky: Mapped[bool | None] = mapped_column(sa.Boolean)
    ack_expires: Mapped[datetime | None]
    last_notified_at: Mapped[datetime | None]
    notified: Mapped[bool] = mapped_column(sa.Boolean)
    suppressed: Mapped[str | None] = mapped_column(sa.Text)
    flapping: Mapped[bool] = mapped_column(sa.Boolean)


class AlarmEventRow(Base):
    """One step of an alarm's timeline: opened, state changed, acknowledged, notified..."""

    __tablename__ = "alarm_events"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    alarm_id: Mapped[int] = mapped_column(
        sa.ForeignKey("alarms.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime]
    #: `EventKind` value.
    kind: Mapped[str] = mapped_column(sa.String(16))
    detail: Mapped[str] = mapped_column(sa.Text)


class DowntimeRow(Base):
    """A scheduled downtime of a host (``service`` NULL: with its services) or a service."""

    __tablename__ = "downtimes"
    #: Downtime ids are shown to people ("in downtime 12"): SQLite must never reuse one.
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    host: Mapped[str] = mapped_column(sa.String(NAME_LENGTH), index=True)
    service: Mapped[str | None] = mapped_column(sa.String(NAME_LENGTH))
    start_at: Mapped[datetime]
    end_at: Mapped[datetime] = mapped_column(index=True)
    author: Mapped[str] = mapped_column(sa.String(NAME_LENGTH))
    comment: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime]
    cancelled_at: Mapped[datetime | None]


alarms = table(AlarmRow)
alarm_events = table(AlarmEventRow)
downtimes = table(DowntimeRow)
# (end of alarm tables)


# --- notification deliveries (migration 0007) ----------------------------------------------
class NotificationDeliveryRow(Base):
    """One attempt to deliver one notification through one channel; ids follow time.

    No foreign keys: the log outlives checks, alarms and channels, and goes by age only.
    """

    __tablename__ = "notification_deliveries"
    #: Ids are paging cursors: SQLite must never reuse one after a prune.
    __table_args__ = (sa.Index(None, "check_key", "at"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    #: `NotificationKind` value: problem, recovery, reminder...
    notification_kind: Mapped[str] = mapped_column(sa.String(32))
    check_key: Mapped[str] = mapped_column(sa.String(CHECK_KEY_LENGTH))
    #: The state the notification reported (CRITICAL, OK, DOWN...).
    state: Mapped[str] = mapped_column(sa.String(16))
    alarm_id: Mapped[int | None] = mapped_column(sa.BigInteger)
    channel: Mapped[str] = mapped_column(sa.String(NAME_LENGTH), index=True)
    #: 1 for the first attempt of this notification on this channel.
    attempt: Mapped[int] = mapped_column(sa.Integer)
    at: Mapped[datetime] = mapped_column(index=True)
    success: Mapped[bool] = mapped_column(sa.Boolean)
    #: The destination's word: ``HTTP 503``, ``SMTP 250``, ``exit 1``.
    status: Mapped[str | None] = mapped_column(sa.String(64))
    error: Mapped[str | None] = mapped_column(sa.Text)
    #: Seconds the attempt took.
    duration: Mapped[float] = mapped_column(sa.Float)


notification_deliveries = table(NotificationDeliveryRow)
# (end of notification tables)


# --- the job queue and its audit (migration 0010) ------------------------------------------
#: The live states of a queued job (`watchkeeper.jobs.states.LIVE_STATES`): a key is unique
#: among the live jobs of a queue.
LIVE_JOB_STATES = ("dispatched", "pending", "queued", "verifying")
_LIVE_KEY = sa.text("state IN ('dispatched', 'pending', 'queued', 'verifying')")


class JobRow(Base):
    """One queued job of one stage (``queue``), from written to its outcome.

    Written before dispatch and moved through its states with conditional updates
    (``WHERE state IN ...``), so an operator's run/skip and the dispatch loop cannot both
    win. ``key`` makes enqueueing idempotent: unique among a queue's live jobs.
    """

    __tablename__ = "jobs"
    __table_args__ = (
        sa.Index(None, "queue", "owner", "subject"),
        sa.Index(
            "uq_jobs_live_key",
            "queue",
            "key",
            unique=True,
            sqlite_where=_LIVE_KEY,
            postgresql_where=_LIVE_KEY,
        ),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    #: The stage that owns it: ``remediation`` (infrastructure and deployments next).
    queue: Mapped[str] = mapped_column(sa.String(32))
    #: The payload kind it becomes on the wire: ``action``.
    kind: Mapped[str] = mapped_column(sa.String(32))
    key: Mapped[str | None] = mapped_column(sa.String(CHECK_KEY_LENGTH + NAME_LENGTH + 2))
    #: What made it (a rule) and what it acts on (a check key).
    owner: Mapped[str] = mapped_column(sa.String(NAME_LENGTH))
    subject: Mapped[str] = mapped_column(sa.String(CHECK_KEY_LENGTH))
    zone: Mapped[str] = mapped_column(sa.String(NAME_LENGTH))
    #: The work as the document wrote it (an action object).
    spec: Mapped[dict[str, Any]]
    #: The owner's facts about it (a remediation's host, service and trigger).
    meta: Mapped[dict[str, Any]]
    #: `JobState` value: pending, queued, dispatched, verifying, succeeded, ...
    state: Mapped[str] = mapped_column(sa.String(16), index=True)
    once: Mapped[bool] = mapped_column(sa.Boolean)
    attempts: Mapped[int] = mapped_column(sa.Integer)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    dispatched_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    lease_until: Mapped[datetime | None]
    worker: Mapped[str | None] = mapped_column(sa.String(NAME_LENGTH))
    #: The work's output, then its verification's.
    output: Mapped[str | None] = mapped_column(sa.Text)
    #: Who ran or skipped a pending job, or "system".
    decided_by: Mapped[str | None] = mapped_column(sa.String(NAME_LENGTH))


class JobAuditRow(Base):
    """One step of a job, or one decision that made none; ids follow time."""

    __tablename__ = "job_audit"
    __table_args__ = (sa.Index(None, "queue", "subject", "at"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    at: Mapped[datetime] = mapped_column(index=True)
    queue: Mapped[str] = mapped_column(sa.String(32))
    #: The job the step belongs to; None for decisions that made no job (holds, breakers).
    job_id: Mapped[int | None] = mapped_column(sa.Integer, index=True)
    owner: Mapped[str] = mapped_column(sa.String(NAME_LENGTH))
    #: A subject, or ``*`` for a decision about a whole owner (circuit breaker).
    subject: Mapped[str] = mapped_column(sa.String(CHECK_KEY_LENGTH))
    #: What happened: queued, pending, dispatched, action_succeeded, resolved, skipped...
    event: Mapped[str] = mapped_column(sa.String(32))
    #: The job state after the step, when it has one.
    outcome: Mapped[str | None] = mapped_column(sa.String(16))
    worker: Mapped[str | None] = mapped_column(sa.String(NAME_LENGTH))
    author: Mapped[str | None] = mapped_column(sa.String(NAME_LENGTH))
    output: Mapped[str] = mapped_column(sa.Text)


jobs = table(JobRow)
job_audit = table(JobAuditRow)
# (end of job tables)


# --- users, sessions, API tokens (migration 0009) ------------------------------------------
class UserRow(Base):
    """A local account; ``role`` is a `Role` value. Removing one removes its sessions and tokens."""

    __tablename__ = "users"

    name: Mapped[str] = mapped_column(sa.String(NAME_LENGTH), primary_key=True)
    #: argon2id, self-describing (``$argon2id$v=19$...``).
    password_hash: Mapped[str] = mapped_column(sa.Text)
    role: Mapped[str] = mapped_column(sa.String(16))
    disabled: Mapped[bool] = mapped_column(sa.Boolean, default=False, server_default=sa.false())
    created_at: Mapped[datetime]
    password_changed_at: Mapped[datetime]
    last_login_at: Mapped[datetime | None]


class UserSessionRow(Base):
    """A login session; the cookie holds a random id, this row only its SHA-256."""

    __tablename__ = "user_sessions"

    id_hash: Mapped[str] = mapped_column(sa.String(HASH_LENGTH), primary_key=True)
    user_name: Mapped[str] = mapped_column(
        sa.String(NAME_LENGTH), sa.ForeignKey("users.name", ondelete="CASCADE"), index=True
    )
    csrf_token: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    #: The absolute end; the idle end follows from ``last_seen_at``.
    expires_at: Mapped[datetime] = mapped_column(index=True)
    address: Mapped[str | None] = mapped_column(sa.String(64))


class ApiTokenRow(Base):
    """A user's API token (only its SHA-256 is kept); revoked rows stay for audit."""

    __tablename__ = "api_tokens"
    #: Ids are shown and used to revoke: SQLite must never reuse one.
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(sa.String(HASH_LENGTH), unique=True)
    #: ``wk_`` and a few characters, to tell tokens apart in a list.
    prefix: Mapped[str] = mapped_column(sa.String(16))
    name: Mapped[str] = mapped_column(sa.String(NAME_LENGTH))
    owner: Mapped[str] = mapped_column(
        sa.String(NAME_LENGTH), sa.ForeignKey("users.name", ondelete="CASCADE"), index=True
    )
    #: At most the owner's role when made; the owner's current role caps it at use.
    role: Mapped[str] = mapped_column(sa.String(16))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


users = table(UserRow)
user_sessions = table(UserSessionRow)
api_tokens = table(ApiTokenRow)
# (end of user tables)


# --- infrastructure (migration 0012) -------------------------------------------------------
class ClusterRow(Base):
    """This store's identity: one row, made at the first start and never changed.

    ``id`` is the owner tag on every machine the infrastructure stage makes; whatever
    lacks it is not ours (a lookalike) and is never touched.
    """

    __tablename__ = "cluster"

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    created_at: Mapped[datetime]


class InfraInventoryRow(Base):
    """A platform's last observation: the machines it holds, or why it could not say."""

    __tablename__ = "infra_inventory"

    platform: Mapped[str] = mapped_column(sa.String(NAME_LENGTH), primary_key=True)
    #: When the last observation (good or failed) came back.
    observed_at: Mapped[datetime | None]
    #: The last good observation's machines (`Machine.to_json`), kept through failures.
    machines: Mapped[list[Any]]
    #: When ``machines`` was observed.
    good_at: Mapped[datetime | None]
    #: The last failure's message; empty while observations succeed.
    error: Mapped[str] = mapped_column(sa.Text)
    #: The last observation's latency, and counts for the error rate.
    latency_ms: Mapped[float | None] = mapped_column(sa.Float)
    observations: Mapped[int] = mapped_column(sa.Integer)
    failures: Mapped[int] = mapped_column(sa.Integer)


class InfraProtectionRow(Base):
    """Protection a document asked for, recorded so a later document cannot lift it."""

    __tablename__ = "infra_protection"

    platform: Mapped[str] = mapped_column(sa.String(NAME_LENGTH), primary_key=True)
    cloud_id: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    resource: Mapped[str] = mapped_column(sa.String(NAME_LENGTH))
    slot: Mapped[str] = mapped_column(sa.String(NAME_LENGTH))
    since: Mapped[datetime]


class InfraDesiredRow(Base):
    """The infrastructure the reconciler works towards, and one held back for an operator.

    ``accepted`` is the row in force; ``held`` is a newer document's infrastructure that
    would remove more machines than a platform's ``max_destroy``: it waits for
    ``watchkeeper infra confirm-hold`` while the accepted one stays in force.
    """

    __tablename__ = "infra_desired"

    name: Mapped[str] = mapped_column(sa.String(16), primary_key=True)
    desired: Mapped[dict[str, Any]]
    reason: Mapped[str] = mapped_column(sa.Text)
    version: Mapped[int | None] = mapped_column(sa.Integer)
    updated_at: Mapped[datetime]


cluster = table(ClusterRow)
infra_inventory = table(InfraInventoryRow)
infra_protection = table(InfraProtectionRow)
infra_desired = table(InfraDesiredRow)
# (end of infrastructure tables)


# --- deployments (migration 0013) ----------------------------------------------------------
class DeployStatusRow(Base):
    """What the last runs on one host of a deployment found (`deploy.rollout.Status`)."""

    __tablename__ = "deploy_status"

    deployment: Mapped[str] = mapped_column(sa.String(NAME_LENGTH), primary_key=True)
    host: Mapped[str] = mapped_column(sa.String(NAME_LENGTH), primary_key=True)
    status: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime]


class DeployRolloutRow(Base):
    """A deployment's rollout: halted after too many failures, until resumed."""

    __tablename__ = "deploy_rollouts"

    deployment: Mapped[str] = mapped_column(sa.String(NAME_LENGTH), primary_key=True)
    halted: Mapped[bool] = mapped_column(sa.Boolean)
    reason: Mapped[str] = mapped_column(sa.Text)
    updated_at: Mapped[datetime]


class PendingAgentKeyRow(Base):
    """An agent's public key a deploy brought back, waiting for an admin's approval.

    The document can ask for an agent; only ``watchkeeper worker-key approve HOST`` (or
    the UI's button, for admins) turns this into an enrolment (``worker_keys``).
    """

    __tablename__ = "pending_agent_keys"

    host: Mapped[str] = mapped_column(sa.String(NAME_LENGTH), primary_key=True)
    deployment: Mapped[str] = mapped_column(sa.String(NAME_LENGTH))
    zone: Mapped[str] = mapped_column(sa.String(NAME_LENGTH))
    public_key: Mapped[str] = mapped_column(sa.Text)
    fingerprint: Mapped[str] = mapped_column(sa.String(128))
    seen_at: Mapped[datetime]


deploy_status = table(DeployStatusRow)
deploy_rollouts = table(DeployRolloutRow)
pending_agent_keys = table(PendingAgentKeyRow)
# (end of deployment tables)


# --- the cluster (migration 0014) -------------------------------------------------------------


class ClusterLeaderRow(Base):
    """The one row of the leader's term: a new leader bumps it, every leader-only write
    reads it ``FOR SHARE`` and compares (`watchkeeper.cluster.fence`)."""

    __tablename__ = "cluster_leader"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    term: Mapped[int] = mapped_column(sa.BigInteger)
    node: Mapped[str] = mapped_column(sa.String(NAME_LENGTH))
    since: Mapped[datetime | None]


class LeaderTermRow(Base):
    """One term: who led, after whom, since when, until when and why it began (the
    takeover audit)."""

    __tablename__ = "leader_terms"

    term: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    node: Mapped[str] = mapped_column(sa.String(NAME_LENGTH))
    previous: Mapped[str] = mapped_column(sa.String(NAME_LENGTH))
    since: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    reason: Mapped[str] = mapped_column(sa.Text)


class ClusterNodeRow(Base):
    """A manager of the cluster, as its last heartbeat left it."""

    __tablename__ = "cluster_nodes"

    node: Mapped[str] = mapped_column(sa.String(NAME_LENGTH), primary_key=True)
    role: Mapped[str] = mapped_column(sa.String(16))
    term: Mapped[int] = mapped_column(sa.BigInteger)
    url: Mapped[str] = mapped_column(sa.Text)
    jobs: Mapped[str] = mapped_column(sa.Text)
    pid: Mapped[int] = mapped_column(sa.Integer)
    version: Mapped[str] = mapped_column(sa.String(64))
    started_at: Mapped[datetime]
    heartbeat_at: Mapped[datetime]


cluster_leader = table(ClusterLeaderRow)
leader_terms = table(LeaderTermRow)
cluster_nodes = table(ClusterNodeRow)
