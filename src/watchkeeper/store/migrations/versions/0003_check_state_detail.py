"""Check state detail and state history: a restart restores every field; changes are kept.

``check_states`` gains the fields of the engine's status it lacked. Rows written before
this revision get ``pending`` from their state and no flags; their last hard state and its
time stay NULL, which readers take as "rebuild from state and hard".

``state_history`` is not tied to ``checks`` by a foreign key: the history of a removed check
is kept until it is pruned by age.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

#: Plain types here, not the application's: a migration must not change when the code does.
TIMESTAMP = sa.DateTime(timezone=True)
#: BIGINT on PostgreSQL; SQLite only autoincrements a primary key declared INTEGER.
HISTORY_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("check_states") as batch:
        for flag in ("pending", "stale", "host_problem"):
            batch.add_column(
                sa.Column(flag, sa.Boolean(), server_default=sa.false(), nullable=False)
            )
        batch.add_column(sa.Column("last_hard_state", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("last_hard_change", TIMESTAMP, nullable=True))
    states = sa.table("check_states", sa.column("state", sa.String), sa.column("pending"))
    op.execute(states.update().where(states.c.state == "PENDING").values(pending=sa.true()))

    op.create_table(
        "state_history",
        sa.Column("id", HISTORY_ID, autoincrement=True, nullable=False),
        sa.Column("check_key", sa.String(length=257), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("state_type", sa.String(length=4), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=True),
        sa.Column("output", sa.Text(), nullable=False),
        sa.Column("previous_state", sa.String(length=16), nullable=True),
        sa.Column("hard_change", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_state_history")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        op.f("ix_state_history_check_key_at"), "state_history", ["check_key", "at"], unique=False
    )
    op.create_index(op.f("ix_state_history_at"), "state_history", ["at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_state_history_at"), table_name="state_history")
    op.drop_index(op.f("ix_state_history_check_key_at"), table_name="state_history")
    op.drop_table("state_history")
    with op.batch_alter_table("check_states") as batch:
        for name in ("last_hard_change", "last_hard_state", "host_problem", "stale", "pending"):
            batch.drop_column(name)
