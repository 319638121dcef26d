"""Migration 0010 moves remediation jobs and audit into the job queue, and back.

Run against a scratch database of each backend: the 0009 tables are filled as a running
0.1 manager left them, then upgraded; ids, states and the trail must survive, and a new
job must get a fresh id (the PostgreSQL sequences follow the copied ids).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from psycopg import sql
from sqlalchemy.engine import make_url

from watchkeeper.store.db import MIGRATIONS_DIR, async_url

AT = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def scratch_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'mig.db'}"
        return
    admin_url: str = request.getfixturevalue("pg_admin_url")
    name = f"wk_mig_{uuid.uuid4().hex[:12]}"
    admin = make_url(admin_url).set(drivername="postgresql").render_as_string(False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def _engine(url: str) -> sa.Engine:
    sync = async_url(url)
    sync = sync.set(drivername="sqlite" if sync.get_backend_name() == "sqlite" else sync.drivername)
    return sa.create_engine(sync)


def _migrate(engine: sa.Engine, revision: str, *, down: bool = False) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, revision)


def test_remediation_jobs_become_queue_jobs_and_come_back(scratch_url: str) -> None:
    engine = _engine(scratch_url)
    try:
        _migrate(engine, "0009")
        with engine.begin() as conn:
            for id_, state, dispatched in ((3, "succeeded", AT), (7, "queued", None)):
                conn.execute(
                    sa.text(
                        "INSERT INTO remediation_jobs (id, rule, target, host, service, zone, "
                        "action, state, trigger, created_at, updated_at, dispatched_at) VALUES "
                        "(:id, 'restart', :target, 'web1', 'http', 'core', :action, :state, "
                        "'CRITICAL', :at, :at, :dispatched)"
                    ),
                    {"id": id_, "target": f"web{id_}!http", "state": state, "at": AT,
                     "dispatched": dispatched, "action": '{"kind": "command", "command": ["x"]}'},
                )  # fmt: skip
            conn.execute(
                sa.text(
                    "INSERT INTO remediation_audit (id, at, job_id, rule, target, event, "
                    "outcome, output) VALUES (41, :at, 3, 'restart', 'web3!http', 'resolved', "
                    "'succeeded', 're-check OK')"
                ),
                {"at": AT},
            )
        _migrate(engine, "head")
        with engine.begin() as conn:
            jobs = conn.execute(
                sa.text(
                    "SELECT id, queue, owner, subject, state, key, attempts FROM jobs ORDER BY id"
                )
            ).all()
            audit = conn.execute(
                sa.text("SELECT id, queue, owner, subject, job_id FROM job_audit")
            ).all()
            conn.execute(
                sa.text(
                    "INSERT INTO jobs (queue, kind, owner, subject, zone, spec, meta, state, once, "
                    "attempts, created_at, updated_at) VALUES ('remediation', 'action', 'r', 's', "
                    "'core', '{}', '{}', 'queued', true, 0, :at, :at)"
                ),
                {"at": AT},
            )
            fresh = conn.execute(sa.text("SELECT max(id) FROM jobs")).scalar_one()
        assert [tuple(j) for j in jobs] == [
            (3, "remediation", "restart", "web3!http", "succeeded", None, 1),
            (7, "remediation", "restart", "web7!http", "queued", "restart|web7!http", 0),
        ]
        assert [tuple(a) for a in audit] == [(41, "remediation", "restart", "web3!http", 3)]
        assert fresh == 8
        _migrate(engine, "0009", down=True)
        with engine.begin() as conn:
            back = conn.execute(
                sa.text("SELECT id, rule, target, host, trigger FROM remediation_jobs ORDER BY id")
            ).all()
        assert [tuple(b) for b in back] == [
            (3, "restart", "web3!http", "web1", "CRITICAL"),
            (7, "restart", "web7!http", "web1", "CRITICAL"),
            (8, "r", "s", "s", "CRITICAL"),
        ]
    finally:
        engine.dispose()
