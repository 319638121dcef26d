"""Infrastructure: the store's cluster id, platform inventories, sticky protection, and
the desired infrastructure in force (and one held for an operator).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

#: Plain types here, not the application's: a migration must not change when the code does.
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "cluster",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cluster")),
    )
    op.create_table(
        "infra_inventory",
        sa.Column("platform", sa.String(length=128), nullable=False),
        sa.Column("observed_at", TIMESTAMP, nullable=True),
        sa.Column("machines", sa.JSON(), nullable=False),
        sa.Column("good_at", TIMESTAMP, nullable=True),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("observations", sa.Integer(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("platform", name=op.f("pk_infra_inventory")),
    )
    op.create_table(
        "infra_protection",
        sa.Column("platform", sa.String(length=128), nullable=False),
        sa.Column("cloud_id", sa.String(length=255), nullable=False),
        sa.Column("resource", sa.String(length=128), nullable=False),
        sa.Column("slot", sa.String(length=128), nullable=False),
        sa.Column("since", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("platform", "cloud_id", name=op.f("pk_infra_protection")),
    )
    op.create_table(
        "infra_desired",
        sa.Column("name", sa.String(length=16), nullable=False),
        sa.Column("desired", sa.JSON(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_infra_desired")),
    )


def downgrade() -> None:
    for name in ("infra_desired", "infra_protection", "infra_inventory", "cluster"):
        op.drop_table(name)
