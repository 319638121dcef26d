"""Notifications: every delivery attempt of every notification.

``notification_deliveries`` is a log: no foreign keys (it outlives checks, alarms and
channels) and ids that are never reused, so they can page it.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

#: Plain types here, not the application's: a migration must not change when the code does.
TIMESTAMP = sa.DateTime(timezone=True)
#: BIGINT on PostgreSQL; SQLite only autoincrements a primary key declared INTEGER.
DELIVERY_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "notification_deliveries",
        sa.Column("id", DELIVERY_ID, autoincrement=True, nullable=False),
        sa.Column("notification_kind", sa.String(length=32), nullable=False),
        sa.Column("check_key", sa.String(length=257), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("alarm_id", sa.BigInteger(), nullable=True),
        sa.Column("channel", sa.String(length=128), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.Column("success", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=64), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("duration", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_deliveries")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        op.f("ix_notification_deliveries_check_key_at"),
        "notification_deliveries",
        ["check_key", "at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_notification_deliveries_at"), "notification_deliveries", ["at"], unique=False
    )
    op.create_index(
        op.f("ix_notification_deliveries_channel"),
        "notification_deliveries",
        ["channel"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_notification_deliveries_channel"), table_name="notification_deliveries")
    op.drop_index(op.f("ix_notification_deliveries_at"), table_name="notification_deliveries")
    op.drop_index(
        op.f("ix_notification_deliveries_check_key_at"), table_name="notification_deliveries"
    )
    op.drop_table("notification_deliveries")
