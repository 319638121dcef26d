"""The initial schema: configuration versions, rejections, objects, checks, states, sources.

Revision ID: 0001
Revises:
Create Date: 2025-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

#: Plain types here, not the application's: a migration must not change when the code does.
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "config_versions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("warnings", sa.JSON(), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_config_versions")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        op.f("ix_config_versions_content_hash"), "config_versions", ["content_hash"], unique=False
    )
    op.create_table(
        "rejected_candidates",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=True),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("first_seen", TIMESTAMP, nullable=False),
        sa.Column("last_seen", TIMESTAMP, nullable=False),
        sa.Column("times", sa.Integer(), nullable=False),
        sa.Column("problems", sa.JSON(), nullable=False),
        sa.Column("document", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rejected_candidates")),
        sa.UniqueConstraint(
            "content_hash", "source", name=op.f("uq_rejected_candidates_content_hash_source")
        ),
    )
    op.create_table(
        "source_status",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("last_attempt", TIMESTAMP, nullable=True),
        sa.Column("last_success", TIMESTAMP, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("etag", sa.Text(), nullable=True),
        sa.Column("last_modified", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_source_status")),
    )
    op.create_table(
        "config_objects",
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["config_versions.id"],
            name=op.f("fk_config_objects_version_id_config_versions"),
        ),
        sa.PrimaryKeyConstraint("kind", "name", name=op.f("pk_config_objects")),
    )
    op.create_table(
        "checks",
        sa.Column("key", sa.String(length=257), nullable=False),
        sa.Column("host", sa.String(length=128), nullable=False),
        sa.Column("service", sa.String(length=128), nullable=True),
        sa.Column("zone", sa.String(length=128), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["config_versions.id"],
            name=op.f("fk_checks_version_id_config_versions"),
        ),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_checks")),
    )
    op.create_index(op.f("ix_checks_host"), "checks", ["host"], unique=False)
    op.create_index(op.f("ix_checks_zone"), "checks", ["zone"], unique=False)
    op.create_table(
        "check_states",
        sa.Column("check_key", sa.String(length=257), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("hard", sa.Boolean(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("output", sa.Text(), nullable=True),
        sa.Column("last_check", TIMESTAMP, nullable=True),
        sa.Column("last_change", TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(
            ["check_key"],
            ["checks.key"],
            name=op.f("fk_check_states_check_key_checks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("check_key", name=op.f("pk_check_states")),
    )


def downgrade() -> None:
    op.drop_table("check_states")
    op.drop_index(op.f("ix_checks_zone"), table_name="checks")
    op.drop_index(op.f("ix_checks_host"), table_name="checks")
    op.drop_table("checks")
    op.drop_table("config_objects")
    op.drop_table("source_status")
    op.drop_table("rejected_candidates")
    op.drop_index(op.f("ix_config_versions_content_hash"), table_name="config_versions")
    op.drop_table("config_versions")
