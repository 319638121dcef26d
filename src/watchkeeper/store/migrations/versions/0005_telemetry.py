"""Telemetry: metric series, raw points and the 5-minute and 1-hour rollup tiers.

Points and buckets are keyed by (series id, epoch milliseconds) and, on SQLite, stored
WITHOUT ROWID: the primary key is the table, so a point costs about 20 bytes and a series'
time range is one contiguous read. ``telemetry_rollups`` records how far each tier is
rolled up.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

#: Plain types here, not the application's: a migration must not change when the code does.
MILLIS = sa.BigInteger()
VALUE: sa.Double[float] = sa.Double()


def _bucket_table(name: str) -> None:
    op.create_table(
        name,
        sa.Column("series_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("bucket", MILLIS, autoincrement=False, nullable=False),
        sa.Column("samples", sa.Integer(), nullable=False),
        sa.Column("total", VALUE, nullable=False),
        sa.Column("minimum", VALUE, nullable=False),
        sa.Column("maximum", VALUE, nullable=False),
        sa.Column("latest", VALUE, nullable=False),
        sa.PrimaryKeyConstraint("series_id", "bucket", name=op.f(f"pk_{name}")),
        sqlite_with_rowid=False,
    )


def upgrade() -> None:
    op.create_table(
        "telemetry_series",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("check_key", sa.String(length=257), nullable=False),
        sa.Column("metric", sa.String(length=255), nullable=False),
        sa.Column("uom", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_telemetry_series")),
        sa.UniqueConstraint(
            "check_key", "metric", "uom", name=op.f("uq_telemetry_series_check_key_metric_uom")
        ),
    )
    op.create_table(
        "telemetry_points",
        sa.Column("series_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("at", MILLIS, autoincrement=False, nullable=False),
        sa.Column("value", VALUE, nullable=False),
        sa.PrimaryKeyConstraint("series_id", "at", name=op.f("pk_telemetry_points")),
        sqlite_with_rowid=False,
    )
    _bucket_table("telemetry_5m")
    _bucket_table("telemetry_1h")
    op.create_table(
        "telemetry_rollups",
        sa.Column("tier", sa.String(length=8), nullable=False),
        sa.Column("done_until", MILLIS, nullable=False),
        sa.PrimaryKeyConstraint("tier", name=op.f("pk_telemetry_rollups")),
    )


def downgrade() -> None:
    for name in (
        "telemetry_rollups",
        "telemetry_1h",
        "telemetry_5m",
        "telemetry_points",
        "telemetry_series",
    ):
        op.drop_table(name)
