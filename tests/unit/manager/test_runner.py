"""The engine runner with a fake job server and a clock the test moves."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fixtures.database import ImportDocument
from watchkeeper import store
from watchkeeper.document.diff import ConfigDiff, Delta
from watchkeeper.document.normalize import CheckRecord
from watchkeeper.engine import CheckStatus, StateChange, StateType, Step
from watchkeeper.engine.observed import Observed
from watchkeeper.errors import StoreError
from watchkeeper.jobs.payloads import ActionPayload
from watchkeeper.logs import NOTICE
from watchkeeper.manager.intake import IntakeOutcome, check_candidate
from watchkeeper.manager.runner import EngineRunner, Interpret
from watchkeeper.manager.summary import summarize
from watchkeeper.results import CheckOutcome, CheckState
from watchkeeper.transport.protocol import Job, Result

T0 = 1_764_000_000.0


class FakeServer:
    """Zone ``core`` has a worker; it takes jobs while ``accepting``, remembering them."""

    def __init__(self) -> None:
        self.jobs: list[Job] = []
        self.accepting = True
        self.online = {"core"}
        self.port = 0

    async def start(self) -> None:
        pass

    async def aclose(self) -> None:
        pass

    async def submit(self, job: Job) -> bool:
        if not self.accepting:
            return False
        self.jobs.append(job)
        return True

    def zone_online(self, zone: str) -> bool:
        return zone in self.online


DOC = {
    "schema": "watchkeeper/v1",
    "zones": [{"name": "core"}],
    "hosts": [{"name": "h1", "address": "127.0.0.1", "zone": "core"}],
    "services": [
        {"name": "ssh", "hosts": ["h1"], "interval": "10s", "max_attempts": 1,
         "check": {"kind": "tcp", "port": 22}},
    ],
}  # fmt: skip


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


Setup = tuple[EngineRunner, FakeServer, list[str], Clock]


@pytest.fixture
async def runner(tmp_path: Path) -> AsyncIterator[Setup]:
    db = store.Database.for_data_dir(tmp_path)
    await db.migrate()
    server, lines, clock = FakeServer(), list[str](), Clock()
    r = EngineRunner(db, lambda _: server, clock=clock, on_summary=lines.append)  # type: ignore[arg-type,return-value]
    await r.start()
    yield r, server, lines, clock
    await db.aclose()


def _import(r: EngineRunner) -> None:
    snap = check_candidate(json.dumps(DOC).encode()).snapshot
    assert snap is not None
    diff = ConfigDiff(objects={}, checks=Delta(added=list(snap.checks)))
    outcome = IntakeOutcome(source="t", content_hash="x", accepted=True, diff=diff, created=True)
    r.config_imported(outcome, snap)


async def test_dispatches_records_and_summarises(
    runner: Setup,
) -> None:
    r, server, lines, clock = runner
    _import(r)
    await r._turn()
    assert r.zones == frozenset({"core"})
    for _ in range(12):  # ten seconds of ticks: the check's phase falls somewhere in them
        clock.now += 1
        await r._turn()
    assert len(server.jobs) == 1
    job = server.jobs[0]
    assert job.payload.key == "h1!ssh" and job.zone == "core" and job.payload.check["port"] == 22
    assert job.deadline > clock.now

    result = Result(job_id=job.job_id, token=job.token, state=2, output="refused",
                    started=0, finished=0)  # fmt: skip
    r.result_received("embedded", result)
    r.result_received("embedded", result)  # a duplicate counts once
    await r._turn()
    status = r.engine.statuses["h1!ssh"]
    assert status.state is CheckState.CRITICAL and not status.pending
    assert lines[-1] == "1 check: 1 CRITICAL (h1!ssh)"


async def test_a_job_no_worker_takes_is_marked_not_run_at_once(
    runner: Setup,
) -> None:
    r, server, _, clock = runner
    _import(r)
    await r._turn()  # the zone is seen online
    server.accepting = False  # but its worker is full by the time the check is due
    for _ in range(12):
        clock.now += 1
        await r._turn()
    status = r.engine.statuses["h1!ssh"]
    assert (status.pending, status.stale) == (True, True)  # no result is not a bad result
    assert status.not_run.startswith("no worker of zone ")
    assert summarize(r.engine.statuses).endswith("; 1 not run")


async def test_a_zone_losing_its_workers_is_said_once_each_way(
    runner: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    r, server, _, clock = runner
    caplog.set_level(logging.INFO, "watchkeeper.manager.runner")
    _import(r)

    async def turns(seconds: int) -> list[tuple[int, str]]:
        caplog.clear()
        for _ in range(seconds):
            clock.now += 1
            await r._turn()
        return [(x.levelno, x.getMessage()) for x in caplog.records if "zone" in x.getMessage()]

    assert await turns(1) == [(logging.INFO, "zone core has a worker")]  # its first: no news
    server.online = set()
    assert await turns(30) == [
        (logging.WARNING, "zone core lost its last worker: its checks wait up to 60 s for one")
    ]
    server.online = {"core"}  # back within the grace: nothing was missed
    assert await turns(1) == [(NOTICE, "zone core has a worker again")]
    server.online = set()
    lines = await turns(120)
    assert [level for level, _ in lines] == [logging.WARNING, logging.WARNING]
    assert lines[1][1] == (
        "zone core has had no worker for 60 s: its 1 check(s) are not run (their last "
        "states are kept, marked stale) until one connects"
    )
    server.online = {"core"}
    assert await turns(1) == [(NOTICE, "zone core has a worker again; its checks run again")]


def test_summary_names_the_worst_problems_first() -> None:
    def status(key: str, state: CheckState) -> CheckStatus:
        return CheckStatus.initial(key, 0).evolve(state=state, pending=False)

    statuses = {
        "a": status("a", CheckState.OK),
        "b": status("b", CheckState.WARNING),
        "c": status("c", CheckState.CRITICAL),
        "d": CheckStatus.initial("d", 0),
    }
    assert summarize(statuses) == "4 checks: 1 OK, 1 WARNING, 1 CRITICAL, 1 PENDING (c, b)"
    assert summarize({}) == "0 checks: "


RETRYING = {
    "schema": "watchkeeper/v1",
    "zones": [{"name": "core"}],
    "hosts": [
        {"name": "h1", "address": "127.0.0.1", "zone": "core",
         "check": {"check": {"kind": "tcp", "port": 7}, "interval": "10s", "max_attempts": 1}},
    ],
    "services": [
        {"name": "ssh", "hosts": ["h1"], "interval": "10s", "retry_interval": "2s",
         "max_attempts": 3, "check": {"kind": "tcp", "port": 22}},
    ],
}  # fmt: skip


async def _started(db: store.Database, clock: Clock) -> tuple[EngineRunner, FakeServer]:
    server = FakeServer()
    r = EngineRunner(db, lambda _: server, clock=clock)  # type: ignore[arg-type,return-value]
    await r.start()
    return r, server


async def _stopped(r: EngineRunner) -> None:
    """Stop ``run`` the way the manager does: by cancelling it (it saves what is left)."""
    task = asyncio.create_task(r.run())
    # One yield runs the new task up to its first await: deterministic, not a timing guess
    # (cancelled before that, run() would never start, and nothing would be saved).
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def _answer(r: EngineRunner, server: FakeServer, clock: Clock, key: str, state: int) -> None:
    """Move the clock a second a turn until ``key`` is dispatched, then answer with ``state``."""
    sent = [job for job in server.jobs if job.payload.key == key]
    for _ in range(30):
        clock.now += 1
        await r._turn()
        jobs = [job for job in server.jobs if job.payload.key == key]
        if len(jobs) > len(sent):
            job = jobs[-1]
            result = Result(job_id=job.job_id, token=job.token, state=state,
                            output=f"state {state}", started=0, finished=0)  # fmt: skip
            r.result_received("w1", result)
            await r._turn()
            return
    raise AssertionError(f"{key} was not dispatched within 30 s")


async def test_a_restart_restores_soft_state_and_attempt_exactly(
    db: store.Database, import_document: ImportDocument
) -> None:
    await import_document(RETRYING)
    clock = Clock()
    first, server = await _started(db, clock)
    await _answer(first, server, clock, "h1!ssh", 2)
    await _answer(first, server, clock, "h1!ssh", 2)
    before = first.engine.statuses["h1!ssh"]
    assert (before.state, before.state_type, before.attempt) == (
        CheckState.CRITICAL,
        StateType.SOFT,
        2,
    )
    await _stopped(first)

    clock.now += 30  # the manager was down for a while
    second, server = await _started(db, clock)
    assert second.engine.statuses["h1!ssh"] == before
    await _answer(second, server, clock, "h1!ssh", 2)  # the third CRITICAL in a row
    after = second.engine.statuses["h1!ssh"]
    assert (after.state, after.state_type, after.attempt) == (
        CheckState.CRITICAL,
        StateType.HARD,
        3,
    )
    assert after.last_hard_state is CheckState.CRITICAL and after.last_hard_change == clock.now
    await _stopped(second)

    async with db.session() as session:
        history = await store.list_state_history(session, check_key="h1!ssh")
    assert [
        (e.state, e.state_type, e.attempt, e.previous_state, e.hard_change) for e in history
    ] == [
        ("CRITICAL", StateType.HARD, 3, "CRITICAL", True),
        ("CRITICAL", StateType.SOFT, 1, None, False),
    ]


async def test_host_changes_are_history_but_a_restart_makes_none_up(
    db: store.Database, import_document: ImportDocument
) -> None:
    await import_document(RETRYING)
    clock = Clock()
    first, server = await _started(db, clock)
    await _answer(first, server, clock, "h1", 2)  # the host check fails: h1 is DOWN
    await _stopped(first)
    second, _ = await _started(db, clock)  # rebuilds h1 as DOWN from its saved host check
    await _stopped(second)

    async with db.session() as session:
        history = await store.list_state_history(session, check_key="h1")
    assert [(e.kind, e.state, e.previous_state, e.hard_change) for e in history] == [
        (store.HistoryKind.HOST, "DOWN", "UP", True),
        (store.HistoryKind.CHECK, "CRITICAL", None, True),
    ]
    assert history[0].at == history[1].at and history[0].attempt is None


async def test_unsaved_history_waits_for_the_store_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def change(n: int) -> StateChange:
        return StateChange(key="h1!a", at=T0 + n, from_state=None, from_type=None,
                           to_state=CheckState.CRITICAL, to_type=StateType.SOFT, attempt=1,
                           hard=False, output=str(n))  # fmt: skip

    async def down(*args: object, **kwargs: object) -> int:
        raise StoreError("database error at test: it is down")

    db = store.Database.for_data_dir(tmp_path)
    try:
        await db.migrate()
        r = EngineRunner(db, lambda _: FakeServer(), max_unsaved_changes=3)  # type: ignore[arg-type,return-value]
        with monkeypatch.context() as patched:
            patched.setattr(store, "save_check_states", down)
            r._carry_out(Step(changes=(change(1), change(2))), T0)
            await r._flush()
            r._carry_out(Step(changes=(change(3), change(4), change(5))), T0)
            await r._flush()
        dropped = [rec for rec in caplog.records if rec.__dict__.get("action") == "history_dropped"]
        assert len(dropped) == 1 and "dropping the oldest" in dropped[0].getMessage()

        await r._flush()  # the store is back: what was kept goes, in order
        async with db.session() as session:
            history = await store.list_state_history(session)
        assert [e.output for e in history] == ["5", "4", "3"]
        assert "2 state change(s) were dropped" in caplog.text
    finally:
        await db.aclose()


# --- the seam to the stages after the engine ------------------------------------------------


class Recorder:
    """A downstream stage that keeps what it was told."""

    def __init__(self, *, fail: bool = False) -> None:
        self.seen: list[Observed] = []
        self.fail = fail

    def observe(self, observed: Observed, now: float) -> None:
        self.seen.append(observed)
        if self.fail:
            raise RuntimeError("a bug in a stage")

    async def run(self) -> None:
        """A recorder has nothing slow to do."""


async def _seam_runner(
    tmp_path: Path, stages: list[Recorder], interpret: Interpret | None = None
) -> tuple[EngineRunner, FakeServer, Clock, store.Database]:
    db = store.Database.for_data_dir(tmp_path)
    await db.migrate()
    server, clock = FakeServer(), Clock()
    r = EngineRunner(
        db,
        lambda _: server,  # type: ignore[arg-type,return-value]
        clock=clock,
        downstream=stages,
        interpret=interpret,
    )
    await r.start()
    return r, server, clock, db


async def _first_job(r: EngineRunner, server: FakeServer, clock: Clock) -> Job:
    _import(r)
    await r._turn()
    while not server.jobs:
        clock.now += 1
        await r._turn()
    return server.jobs[-1]


async def test_every_stage_sees_each_turns_results_and_changes_even_when_one_fails(
    tmp_path: Path,
) -> None:
    broken, healthy = Recorder(fail=True), Recorder()

    def thresholds(record: CheckRecord, outcome: CheckOutcome, now: float) -> CheckOutcome:
        # A stand-in for the document's thresholds: it only marks what it saw.
        return CheckOutcome(state=CheckState.WARNING, output=f"{outcome.output} (interpreted)")

    r, server, clock, db = await _seam_runner(tmp_path, [broken, healthy], thresholds)
    # Start tells every stage what runs (nothing yet here), marked as loading, not news.
    assert [(o.loading, dict(o.checks or {})) for o in healthy.seen] == [(True, {})]
    job = await _first_job(r, server, clock)
    imported = [o for o in healthy.seen if o.checks is not None and not o.loading]
    assert [list(o.checks or {}) for o in imported] == [["h1!ssh"]]
    before = len(healthy.seen)
    r.result_received(
        "w", Result(job_id=job.job_id, token=job.token, state=0, output="fine", started=0,
                    finished=0, metrics=[]),
    )  # fmt: skip
    await r._turn()
    [turn] = healthy.seen[before:]
    [result] = turn.results
    assert result.key == "h1!ssh" and result.record.host == "h1"
    assert result.raw.state is CheckState.OK and result.outcome.state is CheckState.WARNING
    assert result.outcome.output == "fine (interpreted)"
    [change] = turn.changes
    assert change.to_state is CheckState.WARNING
    assert [s.key for s in turn.statuses] == ["h1!ssh"]
    assert len(broken.seen) == len(healthy.seen)  # the failing stage was told too
    await db.aclose()


async def test_action_jobs_go_to_their_callback_not_the_engine(tmp_path: Path) -> None:
    r, server, clock, db = await _seam_runner(tmp_path, [Recorder()])
    done: list[tuple[Result | None, str | None, str | None]] = []

    def keep(result: Result | None, why: str | None, worker: str | None) -> None:
        done.append((result, why, worker))

    payload = ActionPayload(action={"kind": "command", "command": ["true"]})
    action = Job(job_id="rem-1-1", zone="core", deadline=clock.now + 30, payload=payload)
    assert await r.submit_action(action, keep)
    r.result_received("w", Result(job_id="rem-1-1", token=0, state=0, output="started",
                                  started=0, finished=0))  # fmt: skip
    await r._turn()
    assert [(res.output if res else None, why, w) for res, why, w in done] == [
        ("started", None, "w")
    ]
    lost = action.model_copy(update={"job_id": "rem-1-2"})
    assert await r.submit_action(lost, keep)
    r.job_lost(lost, "no worker for zone core")
    await r._turn()
    assert done[-1] == (None, "no worker for zone core", None)
    assert r.engine.statuses == {}  # the engine never saw either
    server.accepting = False
    refused = action.model_copy(update={"job_id": "rem-1-3"})
    assert not await r.submit_action(refused, keep)
    assert len(done) == 2
    await db.aclose()


async def test_check_now_runs_the_check_at_the_next_turn(tmp_path: Path) -> None:
    r, server, clock, db = await _seam_runner(tmp_path, [])
    job = await _first_job(r, server, clock)
    r.result_received("w", Result(job_id=job.job_id, token=job.token, state=0, output="ok",
                                  started=0, finished=0))  # fmt: skip
    await r._turn()
    assert not r.check_now("h1!nope")
    assert r.check_now("h1!ssh")
    await r._turn()
    assert len(server.jobs) == 2 and server.jobs[-1].payload.key == "h1!ssh"
    await db.aclose()
