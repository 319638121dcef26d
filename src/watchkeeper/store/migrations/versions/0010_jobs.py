"""The job queue: one table of persisted, leased jobs for every stage, and one audit trail.

``jobs`` replaces ``remediation_jobs`` (its rows become jobs of the ``remediation`` queue,
ids kept: they are shown to people and in the audit), ``job_audit`` replaces
``remediation_audit``. A job's ``key`` is unique among the live jobs of its queue (a
partial unique index), which makes enqueueing idempotent.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

#: Plain types here, not the application's: a migration must not change when the code does.
TIMESTAMP = sa.DateTime(timezone=True)
#: BIGINT on PostgreSQL; SQLite only autoincrements a primary key declared INTEGER.
AUDIT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
LIVE = sa.text("state IN ('dispatched', 'pending', 'queued', 'verifying')")
LIVE_STATES = ("dispatched", "pending", "queued", "verifying")


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("queue", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=387), nullable=True),
        sa.Column("owner", sa.String(length=128), nullable=False),
        sa.Column("subject", sa.String(length=257), nullable=False),
        sa.Column("zone", sa.String(length=128), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("meta", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("once", sa.Boolean(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.Column("dispatched_at", TIMESTAMP, nullable=True),
        sa.Column("finished_at", TIMESTAMP, nullable=True),
        sa.Column("lease_until", TIMESTAMP, nullable=True),
        sa.Column("worker", sa.String(length=128), nullable=True),
        sa.Column("output", sa.Text(), nullable=True),
        sa.Column("decided_by", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_jobs_queue_owner_subject"), "jobs", ["queue", "owner", "subject"])
    op.create_index(op.f("ix_jobs_state"), "jobs", ["state"])
    op.create_index(
        "uq_jobs_live_key",
        "jobs",
        ["queue", "key"],
        unique=True,
        sqlite_where=LIVE,
        postgresql_where=LIVE,
    )
    op.create_table(
        "job_audit",
        sa.Column("id", AUDIT_ID, autoincrement=True, nullable=False),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.Column("queue", sa.String(length=32), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("owner", sa.String(length=128), nullable=False),
        sa.Column("subject", sa.String(length=257), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("worker", sa.String(length=128), nullable=True),
        sa.Column("author", sa.String(length=128), nullable=True),
        sa.Column("output", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_audit")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_job_audit_at"), "job_audit", ["at"])
    op.create_index(op.f("ix_job_audit_job_id"), "job_audit", ["job_id"])
    op.create_index(op.f("ix_job_audit_queue_subject_at"), "job_audit", ["queue", "subject", "at"])
    _copy_remediation()
    op.drop_index(op.f("ix_remediation_audit_target_at"), table_name="remediation_audit")
    op.drop_index(op.f("ix_remediation_audit_job_id"), table_name="remediation_audit")
    op.drop_index(op.f("ix_remediation_audit_at"), table_name="remediation_audit")
    op.drop_table("remediation_audit")
    op.drop_index(op.f("ix_remediation_jobs_state"), table_name="remediation_jobs")
    op.drop_index(op.f("ix_remediation_jobs_rule_target"), table_name="remediation_jobs")
    op.drop_table("remediation_jobs")


def _copy_remediation() -> None:
    """Remediation jobs and audit, as jobs and audit of the ``remediation`` queue."""
    bind = op.get_bind()
    old = sa.table(
        "remediation_jobs",
        *(
            sa.column(name)
            for name in (
                "id", "rule", "target", "host", "service", "zone", "state", "trigger",
                "created_at", "updated_at", "dispatched_at", "finished_at", "worker",
                "output", "decided_by",
            )
        ),
        sa.column("action", sa.JSON()),
    )  # fmt: skip
    new = sa.table(
        "jobs",
        *(
            sa.column(name)
            for name in (
                "id", "queue", "kind", "key", "owner", "subject", "zone", "state", "once",
                "attempts", "created_at", "updated_at", "dispatched_at", "finished_at",
                "lease_until", "worker", "output", "decided_by",
            )
        ),
        sa.column("spec", sa.JSON()),
        sa.column("meta", sa.JSON()),
    )  # fmt: skip
    rows = [
        {
            "id": row.id,
            "queue": "remediation",
            "kind": "action",
            "key": f"{row.rule}|{row.target}" if row.state in LIVE_STATES else None,
            "owner": row.rule,
            "subject": row.target,
            "zone": row.zone,
            "spec": row.action,
            "meta": {"host": row.host, "service": row.service, "trigger": row.trigger},
            "state": row.state,
            "once": True,
            "attempts": 0 if row.dispatched_at is None else 1,
            "created_at": row.created_at,
            "updated_at": row.updated_at,
            "dispatched_at": row.dispatched_at,
            "finished_at": row.finished_at,
            "lease_until": None,
            "worker": row.worker,
            "output": row.output,
            "decided_by": row.decided_by,
        }
        for row in bind.execute(sa.select(old))
    ]
    if rows:
        bind.execute(sa.insert(new), rows)
    bind.execute(
        sa.text(
            "INSERT INTO job_audit (id, at, queue, job_id, owner, subject, event, outcome, "
            "worker, author, output) SELECT id, at, 'remediation', job_id, rule, target, "
            "event, outcome, worker, author, output FROM remediation_audit"
        )
    )
    if bind.dialect.name == "postgresql":  # explicit ids leave the sequences behind
        for table in ("jobs", "job_audit"):
            bind.execute(
                sa.text(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"COALESCE((SELECT max(id) FROM {table}), 0) + 1, false)"
                )
            )


def downgrade() -> None:
    """Back to 0009's tables: remediation jobs and audit come back; other queues are lost."""
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
    bind = op.get_bind()
    jobs = sa.table(
        "jobs",
        *(sa.column(n) for n in ("id", "queue", "owner", "subject", "zone", "state")),
        *(sa.column(n) for n in ("created_at", "updated_at", "dispatched_at", "finished_at")),
        *(sa.column(n) for n in ("worker", "output", "decided_by")),
        sa.column("spec", sa.JSON()),
        sa.column("meta", sa.JSON()),
    )
    old = sa.table(
        "remediation_jobs",
        *(sa.column(n) for n in ("id", "rule", "target", "host", "service", "zone", "state")),
        *(sa.column(n) for n in ("trigger", "created_at", "updated_at", "dispatched_at")),
        *(sa.column(n) for n in ("finished_at", "worker", "output", "decided_by")),
        sa.column("action", sa.JSON()),
    )
    rows = [
        {
            "id": row.id, "rule": row.owner, "target": row.subject,
            "host": (row.meta or {}).get("host") or row.subject.split("!")[0],
            "service": (row.meta or {}).get("service"), "zone": row.zone,
            "action": row.spec, "state": row.state,
            "trigger": (row.meta or {}).get("trigger") or "CRITICAL",
            "created_at": row.created_at, "updated_at": row.updated_at,
            "dispatched_at": row.dispatched_at, "finished_at": row.finished_at,
            "worker": row.worker, "output": row.output, "decided_by": row.decided_by,
        }
        for row in bind.execute(sa.select(jobs).where(jobs.c.queue == "remediation"))
    ]  # fmt: skip
    if rows:
        bind.execute(sa.insert(old), rows)
    bind.execute(
        sa.text(
            "INSERT INTO remediation_audit (id, at, job_id, rule, target, event, outcome, "
            "worker, author, output) SELECT id, at, job_id, owner, subject, event, outcome, "
            "worker, author, output FROM job_audit WHERE queue = 'remediation'"
        )
    )
    if bind.dialect.name == "postgresql":
        for table in ("remediation_jobs", "remediation_audit"):
            bind.execute(
                sa.text(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"COALESCE((SELECT max(id) FROM {table}), 0) + 1, false)"
                )
            )
    op.drop_index(op.f("ix_job_audit_queue_subject_at"), table_name="job_audit")
    op.drop_index(op.f("ix_job_audit_job_id"), table_name="job_audit")
    op.drop_index(op.f("ix_job_audit_at"), table_name="job_audit")
    op.drop_table("job_audit")
    op.drop_index("uq_jobs_live_key", table_name="jobs")
    op.drop_index(op.f("ix_jobs_state"), table_name="jobs")
    op.drop_index(op.f("ix_jobs_queue_owner_subject"), table_name="jobs")
    op.drop_table("jobs")
