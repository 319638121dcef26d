"""The manager prunes the logs that grow without bound, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from watchkeeper import store
from watchkeeper.engine import StateChange, StateType
from watchkeeper.infra.service import OBSERVE_QUEUE
from watchkeeper.jobs.queue import AuditEntry, JobQueue, NewJob
from watchkeeper.jobs.states import JobState
from watchkeeper.manager.stages import Stages
from watchkeeper.notify import repository as delivery_store
from watchkeeper.results import CheckState
from watchkeeper.store.jobs import SqlQueueConnector

NOW = datetime(2026, 12, 1, tzinfo=UTC)
DAY = timedelta(days=1)


def change(at: datetime) -> StateChange:
    return StateChange(
        key="h1!web", at=at.timestamp(), from_state=CheckState.OK, from_type=StateType.HARD,
        to_state=CheckState.CRITICAL, to_type=StateType.HARD, attempt=1, hard=True,
        output="down",
    )  # fmt: skip


def delivery(at: datetime) -> delivery_store.DeliveryAttempt:
    return delivery_store.DeliveryAttempt(
        notification_kind="problem", key="h1!web", state="CRITICAL", channel="ops",
        attempt=1, at=at, success=True, duration=0.1,
    )  # fmt: skip


def audit(at: datetime) -> AuditEntry:
    return AuditEntry(
        at=at.timestamp(), queue="remediation", owner="restart", subject="h1!web",
        event="queued", output="",
    )  # fmt: skip


async def test_records_older_than_their_retention_go_and_newer_ones_stay(
    db: store.Database,
) -> None:
    ages = (500 * DAY, 100 * DAY, DAY)
    await store.save_check_states(db, [], [change(NOW - age) for age in ages])
    await delivery_store.record_deliveries(db, [delivery(NOW - age) for age in ages])
    await SqlQueueConnector(db).record_audit([audit(NOW - age) for age in ages])

    observations = JobQueue(SqlQueueConnector(db), OBSERVE_QUEUE)
    ended = []
    for age in (3 * DAY, 2 * DAY, timedelta(hours=1)):  # two ended over a day ago
        job = await observations.enqueue(
            NewJob(kind="infra", owner="cloud", subject="cloud", zone="eu", spec={}, once=False),
            now=(NOW - age).timestamp(), output="observe cloud",
        )  # fmt: skip
        sent = await observations.move(
            job, JobState.DISPATCHED, now=(NOW - age).timestamp(), event="dispatched", note=None
        )
        assert sent is not None
        await observations.move(
            sent, JobState.SUCCEEDED, now=(NOW - age).timestamp(), event="observed", note=None
        )
        ended.append(job.id)
    live = await observations.enqueue(
        NewJob(kind="infra", owner="cloud", subject="x", zone="eu", spec={}, once=False),
        now=(NOW - 5 * DAY).timestamp(), output="observe",
    )  # fmt: skip

    stages = Stages(db)  # defaults: history 400 d, deliveries 90 d, audit 400 d, obs. 1 d
    assert await stages.prune(NOW.timestamp()) == {
        "state_history": 1,
        "deliveries": 2,
        "job_audit": 1,
        "observations": 2,
        "config_versions": 0,  # none imported (their pruning: test_store_config)
    }
    assert await stages.prune(NOW.timestamp()) == dict.fromkeys(
        ("state_history", "deliveries", "job_audit", "observations", "config_versions"), 0
    )
    kept = await observations.list_jobs()
    assert sorted(j.id for j in kept) == sorted([ended[-1], live.id])  # the recent, the live
    assert len(await observations.list_audit(limit=100)) == 2  # theirs only
    async with db.session() as session:
        history = await store.list_state_history(session)
        deliveries = await delivery_store.list_deliveries(session)
    assert sorted(NOW - h.at for h in history) == [DAY, 100 * DAY]
    assert [NOW - d.at for d in deliveries] == [DAY]
    entries = await SqlQueueConnector(db).list_audit("remediation")
    assert sorted(round((NOW.timestamp() - e.at) / 86400) for e in entries) == [1, 100]
