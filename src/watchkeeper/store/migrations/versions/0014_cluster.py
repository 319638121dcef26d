"""The cluster: the leader's term, its history, every manager's heartbeat; the term of a
check state's writer.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

#: Plain types here, not the application's: a migration must not change when the code does.
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    leader = op.create_table(
        "cluster_leader",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("term", sa.BigInteger(), nullable=False),
        sa.Column("node", sa.String(length=128), nullable=False),
        sa.Column("since", TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cluster_leader")),
    )
    op.bulk_insert(leader, [{"id": 1, "term": 0, "node": "", "since": None}])
    op.create_table(
        "leader_terms",
        sa.Column("term", sa.BigInteger(), nullable=False),
        sa.Column("node", sa.String(length=128), nullable=False),
        sa.Column("previous", sa.String(length=128), nullable=False),
        sa.Column("since", TIMESTAMP, nullable=False),
        sa.Column("ended_at", TIMESTAMP, nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("term", name=op.f("pk_leader_terms")),
    )
    op.create_table(
        "cluster_nodes",
        sa.Column("node", sa.String(length=128), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("term", sa.BigInteger(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("jobs", sa.Text(), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("started_at", TIMESTAMP, nullable=False),
        sa.Column("heartbeat_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("node", name=op.f("pk_cluster_nodes")),
    )
    with op.batch_alter_table("check_states") as batch:
        batch.add_column(sa.Column("term", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("check_states") as batch:
        batch.drop_column("term")
    op.drop_table("cluster_nodes")
    op.drop_table("leader_terms")
    op.drop_table("cluster_leader")
