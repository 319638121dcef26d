"""Agent keys: a worker key may be bound to the one host whose local checks it serves.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("worker_keys") as batch:
        batch.add_column(sa.Column("agent_for", sa.String(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("worker_keys") as batch:
        batch.drop_column("agent_for")
