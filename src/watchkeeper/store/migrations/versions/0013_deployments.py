"""Deployments: each deployed host's last runs, rollouts halted, agent keys pending.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

#: Plain types here, not the application's: a migration must not change when the code does.
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "deploy_status",
        sa.Column("deployment", sa.String(length=128), nullable=False),
        sa.Column("host", sa.String(length=128), nullable=False),
        sa.Column("status", sa.JSON(), nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("deployment", "host", name=op.f("pk_deploy_status")),
    )
    op.create_table(
        "deploy_rollouts",
        sa.Column("deployment", sa.String(length=128), nullable=False),
        sa.Column("halted", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("deployment", name=op.f("pk_deploy_rollouts")),
    )
    op.create_table(
        "pending_agent_keys",
        sa.Column("host", sa.String(length=128), nullable=False),
        sa.Column("deployment", sa.String(length=128), nullable=False),
        sa.Column("zone", sa.String(length=128), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.String(length=128), nullable=False),
        sa.Column("seen_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("host", name=op.f("pk_pending_agent_keys")),
    )


def downgrade() -> None:
    op.drop_table("pending_agent_keys")
    op.drop_table("deploy_rollouts")
    op.drop_table("deploy_status")
