"""Alarms: the alarm lifecycle, acknowledgements and scheduled downtimes.

``alarms`` holds one row per problem (a check's state, or one metric of a check), with its
acknowledgement inline: an alarm has at most one at a time. Alarm ids come from the alarm
book, not the database. ``alarm_events`` is each alarm's timeline. ``downtimes`` ids are
the database's and never reused.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

#: Plain types here, not the application's: a migration must not change when the code does.
TIMESTAMP = sa.DateTime(timezone=True)
#: BIGINT on PostgreSQL; SQLite only autoincrements a primary key declared INTEGER.
EVENT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "alarms",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("check_key", sa.String(length=257), nullable=False),
        sa.Column("metric", sa.String(length=255), nullable=True),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("host", sa.String(length=128), nullable=False),
        sa.Column("service", sa.String(length=128), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("output", sa.Text(), nullable=False),
        sa.Column("opened_at", TIMESTAMP, nullable=False),
        sa.Column("resolved_at", TIMESTAMP, nullable=True),
        sa.Column("acknowledged_at", TIMESTAMP, nullable=True),
        sa.Column("acknowledged_by", sa.String(length=128), nullable=True),
        sa.Column("ack_comment", sa.Text(), nullable=True),
        sa.Column("ack_sticky", sa.Boolean(), nullable=True),
        sa.Column("ack_expires", TIMESTAMP, nullable=True),
        sa.Column("last_notified_at", TIMESTAMP, nullable=True),
        sa.Column("notified", sa.Boolean(), nullable=False),
        sa.Column("suppressed", sa.Text(), nullable=True),
        sa.Column("flapping", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alarms")),
    )
    op.create_index(
        op.f("ix_alarms_check_key_opened_at"), "alarms", ["check_key", "opened_at"], unique=False
    )
    op.create_index(op.f("ix_alarms_resolved_at"), "alarms", ["resolved_at"], unique=False)

    op.create_table(
        "alarm_events",
        sa.Column("id", EVENT_ID, autoincrement=True, nullable=False),
        sa.Column("alarm_id", sa.Integer(), nullable=False),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["alarm_id"],
            ["alarms.id"],
            name=op.f("fk_alarm_events_alarm_id_alarms"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alarm_events")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_alarm_events_alarm_id"), "alarm_events", ["alarm_id"], unique=False)

    op.create_table(
        "downtimes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("host", sa.String(length=128), nullable=False),
        sa.Column("service", sa.String(length=128), nullable=True),
        sa.Column("start_at", TIMESTAMP, nullable=False),
        sa.Column("end_at", TIMESTAMP, nullable=False),
        sa.Column("author", sa.String(length=128), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("cancelled_at", TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_downtimes")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_downtimes_host"), "downtimes", ["host"], unique=False)
    op.create_index(op.f("ix_downtimes_end_at"), "downtimes", ["end_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_downtimes_end_at"), table_name="downtimes")
    op.drop_index(op.f("ix_downtimes_host"), table_name="downtimes")
    op.drop_table("downtimes")
    op.drop_index(op.f("ix_alarm_events_alarm_id"), table_name="alarm_events")
    op.drop_table("alarm_events")
    op.drop_index(op.f("ix_alarms_resolved_at"), table_name="alarms")
    op.drop_index(op.f("ix_alarms_check_key_opened_at"), table_name="alarms")
    op.drop_table("alarms")
