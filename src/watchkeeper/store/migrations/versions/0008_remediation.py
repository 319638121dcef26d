"""Remediation: persisted remediation jobs and their audit trail.

``remediation_jobs`` holds one row per attempt, written before dispatch; ``remediation_audit``
one row per step or decision (skips included). The audit has no foreign key to the jobs:
it outlives them and goes by age only.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

#: Plain types here, not the application's: a migration must not change when the code does.
TIMESTAMP = sa.DateTime(timezone=True)
#: BIGINT on PostgreSQL; SQLite only autoincrements a primary key declared INTEGER.
AUDIT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "remediation_jobs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("rule", sa.String(length=128), nullable=False),
        sa.Column("target", sa.String(length=257), nullable=False),
        sa.Column("host", sa.String(length=128), nullable=False),
        sa.Column("service", sa.String(length=128), nullable=True),
        sa.Column("zone", sa.String(length=128), nullable=False),
        sa.Column("action", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("trigger", sa.String(length=144), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.Column("dispatched_at", TIMESTAMP, nullable=True),
        sa.Column("finished_at", TIMESTAMP, nullable=True),
        sa.Column("worker", sa.String(length=128), nullable=True),
        sa.Column("output", sa.Text(), nullable=True),
        sa.Column("decided_by", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_remediation_jobs")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_remediation_jobs_rule_target"), "remediation_jobs", ["rule", "target"])
    op.create_index(op.f("ix_remediation_jobs_state"), "remediation_jobs", ["state"])
    op.create_table(
        "remediation_audit",
        sa.Column("id", AUDIT_ID, autoincrement=True, nullable=False),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("rule", sa.String(length=128), nullable=False),
        sa.Column("target", sa.String(length=257), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("worker", sa.String(length=128), nullable=True),
        sa.Column("author", sa.String(length=128), nullable=True),
        sa.Column("output", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_remediation_audit")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_remediation_audit_at"), "remediation_audit", ["at"])
    op.create_index(op.f("ix_remediation_audit_job_id"), "remediation_audit", ["job_id"])
    op.create_index(op.f("ix_remediation_audit_target_at"), "remediation_audit", ["target", "at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_remediation_audit_target_at"), table_name="remediation_audit")
    op.drop_index(op.f("ix_remediation_audit_job_id"), table_name="remediation_audit")
    op.drop_index(op.f("ix_remediation_audit_at"), table_name="remediation_audit")
    op.drop_table("remediation_audit")
    op.drop_index(op.f("ix_remediation_jobs_state"), table_name="remediation_jobs")
    op.drop_index(op.f("ix_remediation_jobs_rule_target"), table_name="remediation_jobs")
    op.drop_table("remediation_jobs")
