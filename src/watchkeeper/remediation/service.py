"""The remediation stage: what it knows, one step at a time, and the operator's requests.

    EngineRunner ──observe(Observed)──▶ Targets (checks, problems) and re-check results
    AlarmBook ─────metric_alarm(...)──▶ metric problems
    API ──run_pending / skip_pending──▶ conditional moves of the job
                                        │
    run() every tick: step ─────────────┘
      1. action results and re-checks    planner.plan_ended / plan_recheck
      2. deadlines                       planner.plan_deadlines
      3. rules x problems ─▶ guardrails  planner.plan_matches
      4. queued jobs ─▶ concurrency      planner.plan_dispatch
    each decision carried out by the enforcer (queue, job server, notifications)

A job is written before anything is sent, and marked ``dispatched`` *before* it is handed
to the job server: a crash between the two leaves a job that says it may have run. At
start nothing is decided on what the last run saved, since a kill -9 loses the states it
had not flushed yet: every target with a job left live is *unverified* until it has a
fresh result (a re-check is asked for at once). Meanwhile its queued job waits (neither
sent nor skipped) and no rule opens a new one for it. A job that was dispatched or being
verified is never sent again (re-running a restart or a deploy that may already have
happened is the unsafe choice): it is verified by that fresh result, ``succeeded`` when
the target is OK, ``interrupted`` when it is still in trouble, and the guardrails count the
attempt, so the rule can try again after its cooldown if the problem stays. A queued job
whose target turns out OK is skipped; one whose target is still in trouble is sent, once.

`observe` only records in memory (it runs inside the engine loop); every decision, write
and dispatch happens in `run`, one tick at a time (`step`, which tests call directly).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from watchkeeper import store
from watchkeeper.backoff import backoff_delay
from watchkeeper.document import models
from watchkeeper.document.normalize import ObjectRecord
from watchkeeper.engine import Observed
from watchkeeper.errors import Conflict, NotFound, StoreError
from watchkeeper.jobs.payloads import ActionPayload
from watchkeeper.jobs.queue import AuditEntry, QueueConnector
from watchkeeper.jobs.states import LIVE, JobState
from watchkeeper.latch import FailureLatch
from watchkeeper.notify.notification import Notify
from watchkeeper.remediation import escalation, guardrails, planner
from watchkeeper.remediation.enforcer import ActionDone, ActionRunner, Enforcer
from watchkeeper.remediation.guardrails import Attempt
from watchkeeper.remediation.planner import (
    ActionEnded,
    Breaker,
    Close,
    Create,
    Decision,
    Dispatch,
    Episode,
    Finish,
    Live,
    Note,
    Silenced,
    Verify,
    closes_episode,
)
from watchkeeper.remediation.records import QUEUE, RemediationJob, remediation_queue
from watchkeeper.remediation.rules import Problem, Rule, parse_rules
from watchkeeper.remediation.targets import Recheck, Targets
from watchkeeper.results import CheckState
from watchkeeper.store.jobs import SqlQueueConnector
from watchkeeper.transport.protocol import Result

logger = logging.getLogger(__name__)


class RemediationJobNotFound(NotFound):
    """No remediation job has this id."""


class RemediationJobConflict(Conflict):
    """The remediation job is not in a state that allows this (already run or skipped)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RemediationSettings:
    """Service-wide limits; the per-rule ones are in the document."""

    #: Actions running at once over every rule.
    global_concurrency: int = guardrails.DEFAULT_GLOBAL_CONCURRENCY
    #: Seconds an action may run on its worker.
    action_timeout: float = 60.0
    #: Seconds past an action's deadline before its result is given up on.
    result_grace: float = 10.0
    #: Seconds to wait for the re-check after an action, beyond the check's own timeout.
    verify_timeout: float = 60.0
    #: Seconds a ``confirm`` job waits for an operator before it expires.
    pending_ttl: float = 24 * 3600.0
    #: Seconds a queued job may wait for a worker or a slot before it expires.
    queue_ttl: float = 3600.0
    #: Seconds between ticks of `run` when nothing wakes it earlier.
    tick_interval: float = 0.5
    #: First and longest back-off between tries of a job no worker could take.
    retry_base: float = 1.0
    retry_cap: float = 30.0

    def limits(self) -> planner.Limits:
        return planner.Limits(
            global_concurrency=self.global_concurrency,
            result_grace=self.result_grace,
            pending_ttl=self.pending_ttl,
            queue_ttl=self.queue_ttl,
        )


_Event = ActionEnded | Recheck


class RemediationService:
    """The remediation `Downstream`: construct, `attach` the runner, `configure`, `run`.

    ``runner`` may be given later with `attach` (the engine runner takes this service
    as a downstream, so one of them is made first). ``silenced(key, now)`` says why a
    target is to be left alone; ``notify`` queues escalations; ``clock`` is epoch seconds.
    Jobs go to the store's queue unless ``connector`` names another.
    """

    def __init__(
        self,
        db: store.Database,
        runner: ActionRunner | None,
        notify: Notify,
        *,
        silenced: Silenced | None = None,
        settings: RemediationSettings | None = None,
        clock: Callable[[], float] = time.time,
        connector: QueueConnector | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.db = db
        self.queue = remediation_queue(connector or SqlQueueConnector(db))
        self.enforcer = Enforcer(self.queue, notify, runner)
        self._silenced = silenced or (lambda key, now: None)
        self.settings = settings or RemediationSettings()
        self._clock = clock
        self._rng = rng or random.Random()
        self.rules: dict[str, Rule] = {}
        self._platforms: dict[str, dict[str, Any]] = {}
        #: The store's owner id (`watchkeeper.infra.repository.cluster_id`): platform
        #: actions touch only machines tagged with it.
        self.owner = ""
        self._configured = False
        self.targets = Targets()
        self._live: dict[int, Live] = {}
        self._attempts: dict[planner.Pair, list[Attempt]] = {}
        self._episodes: dict[planner.Pair, Episode] = {}
        self._breakers: dict[str, Breaker] = {}
        #: (rule, target) whose job an operator skipped or that expired: no new job until
        #: the target stops matching (the next problem is a new one).
        self._closed: set[planner.Pair] = set()
        #: Targets of jobs a previous run left, until this run has a result of theirs.
        self._unverified: set[str] = set()
        #: Of those, the ones whose re-check the runner has not taken yet.
        self._rechecks: set[str] = set()
        self._events: deque[_Event] = deque()
        self._audits: list[AuditEntry] = []
        self._wake = asyncio.Event()
        self._loaded = False
        self._latch = FailureLatch(
            logger,
            "remediation cannot use the store, will retry: %s",
            "remediation store recovered",
            action="remediation_store",
        )

    # --- wiring ---------------------------------------------------------------------------

    @property
    def runner(self) -> ActionRunner | None:
        return self.enforcer.runner

    def attach(self, runner: ActionRunner) -> None:
        self.enforcer.runner = runner

    def configure(
        self,
        remediations: Iterable[ObjectRecord | models.Remediation],
        actions: Iterable[ObjectRecord | models.Action] = (),
        platforms: Iterable[ObjectRecord | models.Platform] = (),
    ) -> list[str]:
        """Take the running configuration's rules (after every import); returns problems."""
        rules, problems = parse_rules(remediations, actions)
        for problem in problems:
            logger.warning(
                "remediation rule skipped: %s", problem, extra={"action": "remediation_rule"}
            )
        self.rules = {rule.name: rule for rule in rules}
        self._platforms = {}
        for platform in platforms:
            spec = (
                platform.spec
                if isinstance(platform, ObjectRecord)
                else platform.model_dump(mode="json", exclude_none=True)
            )
            self._platforms[str(spec.get("name"))] = dict(spec)
        self._episodes = {k: e for k, e in self._episodes.items() if k[0] in self.rules}
        self._breakers = {k: b for k, b in self._breakers.items() if k in self.rules}
        self._configured = True
        self._wake.set()
        return problems

    # --- what the engine loop and the alarm book call (cheap, in memory) -----------------

    def observe(self, observed: Observed, now: float) -> None:
        """Record checks, problems and re-check results; decisions wait for `step`."""
        verifying = [
            live.job.target for live in self._live.values() if live.job.state is JobState.VERIFYING
        ]
        self._events.extend(self.targets.observe(observed, verifying))
        if observed.checks is not None:  # a target no longer checked is decided by dispatch
            self._unverified &= observed.checks.keys()
            self._rechecks &= observed.checks.keys()
        for result in observed.results:  # a result of this run: what was saved is past
            self._unverified.discard(result.key)
            self._rechecks.discard(result.key)
        if observed:
            self._wake.set()

    def metric_alarm(self, key: str, metric: str, state: str, now: float) -> None:
        """A metric alarm of check ``key`` opened or changed (``state`` CRITICAL...) or
        cleared (``OK``); rules with ``when.metric`` act on it."""
        self.targets.metric_alarm(key, metric, state)
        self._wake.set()

    # --- the operator's API ---------------------------------------------------------------

    async def run_pending(self, job_id: int, author: str) -> RemediationJob:
        """Approve a pending job: it is queued and runs once a worker and a slot are free."""
        return await self._operator_move(
            job_id, "run", [JobState.PENDING], JobState.QUEUED, "approved",
            f"run by {author}", author, output=None,
        )  # fmt: skip

    async def skip_pending(self, job_id: int, author: str, reason: str = "") -> RemediationJob:
        """Skip a pending (or still queued) job: it never runs."""
        why = f"skipped by {author}" + (f": {reason}" if reason else "")
        return await self._operator_move(
            job_id, "skip", [JobState.PENDING, JobState.QUEUED], JobState.SKIPPED, "skipped",
            why, author, output=why,
        )  # fmt: skip

    async def _operator_move(
        self,
        job_id: int,
        verb: str,
        from_states: list[JobState],
        to: JobState,
        event: str,
        why: str,
        author: str,
        *,
        output: str | None,
    ) -> RemediationJob:
        job = await self.enforcer.move_by_id(
            job_id, from_states, to, now=self._clock(), event=event, note=why, output=output,
            author=author,
        )  # fmt: skip
        if job is None:
            current = await self.queue.get(job_id)
            if current is None:
                raise RemediationJobNotFound(f"no remediation job {job_id}")
            raise RemediationJobConflict(
                f"cannot {verb} remediation job {job_id}: it is {current.state.value}"
            )
        self._track(job)
        self._wake.set()
        return job

    # --- the loop -------------------------------------------------------------------------

    async def run(self) -> None:
        """Load what a previous run left, then tick until cancelled."""
        while not self._loaded:
            try:
                await self.load()
            except StoreError as exc:
                logger.warning("cannot load remediation jobs, will retry: %s", exc.message)
                await asyncio.sleep(self.settings.tick_interval * 4)
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.tick_interval):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.step()
            except StoreError as exc:
                self._latch.failed(exc.message)
            else:
                self._latch.succeeded()

    async def load(self) -> None:
        """Take up the jobs a previous run left: queued and pending go on, the rest stop."""
        now = self._clock()
        live = await self.queue.list_jobs(states=LIVE)
        window = max((r.window for r in self.rules.values()), default=0.0)
        history = await self.queue.dispatched_since(now - max(window, 24 * 3600.0))
        recent = await self.queue.list_jobs(limit=5000)
        async with self.db.session() as session:
            saved = await store.list_check_states(session)
        # The engine's first turn names the checks but not their saved statuses; take them
        # from the store, unless the engine told us newer ones meanwhile.
        self.targets.restore(saved)
        seen: set[planner.Pair] = set()
        for queued in recent:  # newest first: the last word on each rule and target
            job = RemediationJob(queued)
            pair = (job.rule, job.target)
            if pair not in seen:
                seen.add(pair)
                if closes_episode(job):
                    self._closed.add(pair)
        for queued in history:
            if queued.dispatched_at is None or not queued.state.final:
                continue  # live ones are taken up below
            self._attempts.setdefault((queued.owner, queued.subject), []).append(
                Attempt(queued.dispatched_at, queued.finished_at or queued.updated_at)
            )
        for queued in sorted(live, key=lambda j: j.id):
            job = RemediationJob(queued)
            if job.state in (JobState.QUEUED, JobState.PENDING):
                self._track(job)
                continue
            was = "running" if job.state is JobState.DISPATCHED else "being verified"
            note = (
                f"the manager stopped while the action was {was}; it may have run, so it is "
                "not run again: its target's next result decides"
            )
            if job.state is JobState.DISPATCHED:
                moved = await self.enforcer.move(
                    job, JobState.VERIFYING, now=now, event="interrupted", note=note
                )
                if moved is None:
                    continue
                job = moved
            else:
                self._audit(now, job.rule, job.target, "interrupted", note, job=job)
            self._track(job)
            live_job = self._live[job.id]
            live_job.restored = True
            live_job.verify_after = now
            # Its worker lets an action finish when the link drops: until the action's own
            # deadline a target still in trouble may yet be fixed by it.
            live_job.deadline = (job.dispatched_at or now) + self.settings.action_timeout + 5.0
            record = self.targets.checks.get(job.target)
            timeout = float(record.spec.get("timeout") or 0.0) if record is not None else 0.0
            live_job.verify_deadline = (
                max(now, live_job.deadline) + timeout + self.settings.verify_timeout
            )
            started = job.dispatched_at or job.updated_at
            self._attempts.setdefault((job.rule, job.target), []).append(Attempt(started, now))
        self._unverified = {lv.job.target for lv in self._live.values()}
        self._rechecks = set(self._unverified)
        self._loaded = True
        self._wake.set()

    async def step(self, now: float | None = None) -> None:
        """One tick: results, deadlines, new matches, dispatch; then write the audit."""
        if not self._loaded:
            return  # what a previous run left must be known before anything new is decided
        now = self._clock() if now is None else now
        for key in list(self._rechecks):  # once the runner runs the check: no result waits
            if self.enforcer.recheck(key):
                self._rechecks.discard(key)
        try:
            while self._events:
                event = self._events.popleft()
                if isinstance(event, ActionEnded):
                    decision = planner.plan_ended(event, self._live)
                    if decision is not None:
                        await self._carry_out(decision, now)
                else:
                    for decision in planner.plan_recheck(event, self._live):
                        await self._carry_out(decision, now)
            for decision in planner.plan_deadlines(self._live, now, self.settings.limits()):
                await self._carry_out(decision, now)
            if self._configured:
                plan = planner.plan_matches(self._memory(), now)
                self._episodes, self._breakers = plan.episodes, plan.breakers
                for decision in plan.decisions:
                    await self._carry_out(decision, now)
                self._closed &= plan.matching
                self._prune_attempts(now)
                if self.runner is not None:
                    for decision in planner.plan_dispatch(
                        self._memory(), now, self.settings.limits()
                    ):
                        await self._carry_out(decision, now)
        finally:
            await self._flush_audit()

    def _memory(self) -> planner.Memory:
        return planner.Memory(
            rules=self.rules,
            targets=self.targets,
            live=self._live,
            attempts=self._attempts,
            episodes=self._episodes,
            closed=self._closed,
            breakers=self._breakers,
            platforms=self._platforms,
            silenced=self._silenced,
            unverified=frozenset(self._unverified),
        )

    def _prune_attempts(self, now: float) -> None:
        for pair, attempts in list(self._attempts.items()):
            owner = self.rules.get(pair[0])
            kept = guardrails.prune(attempts, owner, now) if owner is not None else []
            if kept:
                self._attempts[pair] = kept
            else:
                del self._attempts[pair]

    # --- carrying decisions out -----------------------------------------------------------

    async def _carry_out(self, decision: Decision, now: float) -> None:
        if isinstance(decision, Create):
            await self._create(decision, now)
        elif isinstance(decision, Note):
            self._audit(now, decision.rule, decision.target, decision.event, decision.output)
        elif isinstance(decision, planner.BreakerTripped):
            self._tripped(decision, now)
        elif isinstance(decision, Verify):
            await self._verify(decision, now)
        elif isinstance(decision, Finish):
            await self._finish(decision, now)
        elif isinstance(decision, Close):
            await self._close(decision, now)
        else:
            await self._send(decision, now)

    async def _create(self, decision: Create, now: float) -> None:
        job = await self.enforcer.create(decision, now)
        self._track(job)
        logger.info(
            "remediation %s %s for %s",
            job.rule,
            job.state.value,
            job.target,
            extra={"action": "remediation_queued", "job": job.id},
        )

    def _tripped(self, decision: planner.BreakerTripped, now: float) -> None:
        rule = decision.rule
        self.enforcer.notify(
            escalation.breaker_notice(rule, decision.matched, self.targets.checks, now)
        )
        logger.warning(
            "remediation %s circuit breaker open: %d targets",
            rule.name,
            len(decision.matched),
            extra={"action": "remediation_circuit_open"},
        )

    async def _verify(self, decision: Verify, now: float) -> None:
        """The action is over (or lost): re-check the target; its next result decides."""
        live = self._live.get(decision.job_id)
        if live is None or live.job.state is not JobState.DISPATCHED:
            return
        job = live.job
        moved = await self.enforcer.move(
            job, JobState.VERIFYING, now=now, event=decision.event, note=decision.output,
            output=decision.output, worker=decision.worker,
        )  # fmt: skip
        if moved is None:
            return
        self._track(moved)
        live = self._live[job.id]
        live.verify_after = now
        record = self.targets.checks.get(job.target)
        timeout = float(record.spec.get("timeout") or 0.0) if record is not None else 0.0
        live.verify_deadline = now + timeout + self.settings.verify_timeout
        if not self.enforcer.recheck(job.target):
            await self._finish(
                Finish(job.id, JobState.FAILED, "failed",
                       f"{job.target} is no longer checked: the action's effect cannot be "
                       "verified"),
                now,
            )  # fmt: skip

    async def _finish(self, decision: Finish, now: float) -> None:
        live = self._live.get(decision.job_id)
        if live is None:
            return
        job, to = live.job, decision.to
        action_output = job.output or ""
        output = decision.output
        finished = await self.enforcer.move(
            job, to, now=now, event=decision.event, note=output,
            output=f"{action_output}\n{output}" if action_output else output,
        )  # fmt: skip
        if finished is None:
            return
        self._end_attempt(job, now)
        self._track(finished)
        if to in (JobState.FAILED, JobState.INTERRUPTED):
            self._escalate(finished, now, output)
        level = logging.INFO if to is JobState.SUCCEEDED else logging.WARNING
        logger.log(
            level,
            "remediation %s of %s %s: %s",
            job.rule,
            job.target,
            to.value,
            output,
            extra={"action": f"remediation_{to.value}", "job": job.id},
        )

    async def _close(self, decision: Close, now: float) -> None:
        """End a job that never ran (expired, skipped), from whatever state it is in now."""
        live = self._live.get(decision.job_id)
        if live is None:
            return
        closed = await self.enforcer.move(
            live.job, decision.to, now=now, event=decision.event, note=decision.why,
            output=decision.why, author=decision.author,
        )  # fmt: skip
        if closed is None:
            return
        self._track(closed)
        if decision.to is JobState.EXPIRED:
            self._escalate(closed, now, f"expired: {decision.why}")

    async def _send(self, decision: Dispatch, now: float) -> None:
        """Mark the job dispatched, then hand it over; put it back if nobody took it."""
        live = self._live.get(decision.job_id)
        record = None if live is None else self.targets.checks.get(live.job.target)
        if live is None or record is None or live.job.state is not JobState.QUEUED:
            return
        job = live.job
        timeout = self.settings.action_timeout
        deadline = now + timeout + 5.0
        marked = await self.enforcer.move(
            job, JobState.DISPATCHED, now=now, event="dispatched",
            note=None,  # written once a worker took it (see below)
            lease_until=deadline + self.settings.result_grace,
        )  # fmt: skip
        if marked is None:
            return
        self._track(marked)
        live = self._live[job.id]
        live.deadline = deadline
        platform = None
        if job.action.get("kind") == "platform":
            platform = self._platforms.get(str(job.action.get("platform")))
        payload = ActionPayload(
            action=job.action,
            host=job.host,
            service=job.service,
            address=str(record.spec.get("address") or ""),
            timeout=timeout,
            platform=platform,
            owner=self.owner,
        )
        # Counted before the await: an exception there leaves a job that may have gone.
        pair = (job.rule, job.target)
        self._attempts.setdefault(pair, []).append(Attempt(now))
        if not await self.enforcer.submit(marked, payload, deadline, self._done(job.id)):
            self._attempts[pair].pop()
            back = await self.enforcer.move(
                marked, JobState.QUEUED, now=now, event="requeued",
                note=None,  # no row per retry: the queued job says it waits
            )  # fmt: skip
            if back is not None:
                self._track(back)
                requeued = self._live[job.id]
                requeued.tries += 1
                requeued.next_try = now + backoff_delay(
                    requeued.tries,
                    base=self.settings.retry_base,
                    cap=self.settings.retry_cap,
                    rng=self._rng,
                )
                if requeued.tries == 1:
                    logger.info(
                        "remediation %s of %s waits for a worker of zone %s",
                        job.rule,
                        job.target,
                        job.zone,
                        extra={"action": "remediation_waiting", "job": job.id},
                    )
            return
        self._audit(
            now, job.rule, job.target, "dispatched",
            f"sent to a worker of zone {job.zone} as job {job.wire_id}", job=marked,
        )  # fmt: skip
        logger.info(
            "remediation %s of %s dispatched to zone %s",
            job.rule,
            job.target,
            job.zone,
            extra={"action": "remediation_dispatched", "job": job.id},
        )

    def _done(self, job_id: int) -> ActionDone:
        def done(result: Result | None, reason: str | None, worker: str | None) -> None:
            if result is None:
                ended = ActionEnded(job_id, None, "", reason, worker)
            else:
                text = result.output + (f"\n{result.long_output}" if result.long_output else "")
                ok = CheckState(result.state) is CheckState.OK
                ended = ActionEnded(job_id, ok, text, None, worker)
            self._events.append(ended)
            self._wake.set()

        return done

    def _end_attempt(self, job: RemediationJob, now: float) -> None:
        attempts = self._attempts.get((job.rule, job.target), [])
        for i, attempt in enumerate(attempts):
            if attempt.ended is None:
                attempts[i] = replace(attempt, ended=now)
                return

    # --- bookkeeping ----------------------------------------------------------------------

    def _track(self, job: RemediationJob) -> None:
        """Mirror a job's stored state in memory; final jobs leave."""
        if job.state.final:
            self._live.pop(job.id, None)
            if closes_episode(job):
                self._closed.add((job.rule, job.target))
            return
        live = self._live.get(job.id)
        if live is None:
            live = self._live[job.id] = Live(job)
        live.job = job
        if job.state is JobState.QUEUED and not live.queued_since:
            live.queued_since = job.updated_at

    def _audit(
        self,
        now: float,
        rule: str,
        target: str,
        event: str,
        output: str,
        *,
        job: RemediationJob | None = None,
    ) -> None:
        self._audits.append(
            AuditEntry(
                at=now,
                queue=QUEUE,
                owner=rule,
                subject=target,
                event=event,
                output=output,
                job_id=None if job is None else job.id,
                outcome=None if job is None else job.state.value,
                worker=None if job is None else job.worker,
            )
        )

    async def _flush_audit(self) -> None:
        if not self._audits:
            return
        batch, self._audits = self._audits, []
        try:
            await self.enforcer.record(batch)
        except StoreError:
            self._audits = batch + self._audits
            raise

    def _escalate(self, job: RemediationJob, now: float, why: str) -> None:
        self.enforcer.notify(
            escalation.job_escalation(
                job,
                rule=self.rules.get(job.rule),
                record=self.targets.checks.get(job.target),
                state=self.targets.state_word(job.target),
                attempts=self._attempts.get((job.rule, job.target), []),
                now=now,
                why=why,
            )
        )

    # --- for the API and tests ------------------------------------------------------------

    @property
    def live_jobs(self) -> Mapping[int, RemediationJob]:
        """Jobs not final yet, by id."""
        return {job_id: live.job for job_id, live in self._live.items()}

    def breaker_open(self, rule: str) -> bool:
        return self._breakers.get(rule, Breaker()).open

    def problems(self) -> list[Problem]:
        """Every target now in a problem state, and every open metric alarm."""
        return self.targets.problems()


__all__ = [
    "ActionDone",
    "ActionRunner",
    "RemediationJobConflict",
    "RemediationJobNotFound",
    "RemediationService",
    "RemediationSettings",
    "Silenced",
]
