"""A check's status says why its latest runs did not happen.

``check_states.not_run`` holds the reason (``no worker for zone dmz``) while no worker could
run the check; empty otherwise. The check's state and output stay those of its last real
result, so a restart restores both the state and why it is not fresh.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("check_states") as batch:
        batch.add_column(
            sa.Column("not_run", sa.String(length=512), server_default="", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("check_states") as batch:
        batch.drop_column("not_run")
