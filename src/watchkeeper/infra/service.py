"""The infrastructure stage: observe every platform, plan, apply, and report, forever.

    every poll:  observe job ─▶ a worker of the platform's zone ─▶ machines (or a failure)
                    │
                 inventory ─▶ planner.plan (pure) ─▶ actions, refusals, reports
                    │
                 journal (queue ``infra``): new actions queued, or pending an operator;
                 pending ones no longer planned skipped; queued ones dispatched
                    │
                 result ─▶ succeeded / failed (circuit breaker) ─▶ observe again soon

No state file: the platform's tags are the truth (owner, resource, slot, op id). A change
job is at most once (``once``): lost with its worker, or found dispatched after a manager
restart, it is *verifying* until the next observation, which decides: if the plan no
longer wants that change it happened (``succeeded``), else it did not (``failed``, and
the plan makes a new job). A create is found by its slot tag, so a lost create is never
made twice, whatever the platform does with idempotency tokens (moto ignores them).

The document's infrastructure reaches this stage through `configure`; one that would
remove more machines from a platform than its ``max_destroy`` is *held*: the accepted
infrastructure stays in force until an operator confirms the held one (`confirm_hold`).
Everything here runs in `run`'s loop, one `step` at a time (which tests call directly);
`configure` and the job callbacks only post events.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, cast

from watchkeeper.backoff import backoff_ceiling
from watchkeeper.document.normalize import infra_key
from watchkeeper.document.slots import slot_index
from watchkeeper.infra import repository
from watchkeeper.infra.desired import Desired, DesiredPlatform
from watchkeeper.infra.operators import Operators
from watchkeeper.infra.planner import (
    LIVE_STATES,
    Knowledge,
    Observation,
    Op,
    Plan,
    PlanInput,
    plan,
)
from watchkeeper.infra.providers.base import Machine
from watchkeeper.infra.status import PlatformState, outcome, report_outcome, shrink_reason
from watchkeeper.jobs.payloads import InfraOp, InfraPayload
from watchkeeper.jobs.queue import AuditEntry, JobQueue, NewJob, QueueConnector, QueuedJob
from watchkeeper.jobs.states import LIVE, JobState
from watchkeeper.latch import FailureLatch, step_forever
from watchkeeper.logs import NOTICE
from watchkeeper.results import CheckOutcome, CheckState
from watchkeeper.store.db import Database
from watchkeeper.transport.protocol import Job, Result

logger = logging.getLogger(__name__)

#: The journal of changes, and the queue of observations.
QUEUE = "infra"
OBSERVE_QUEUE = "observe"

#: Told how an infra job ended: its result or None and why it was lost, and the worker.
JobDone = Callable[[Result | None, str | None, str | None], None]


class JobRunner(Protocol):
    """What this stage needs of the engine runner (`EngineRunner` has it)."""

    async def submit_action(self, job: Job, done: JobDone) -> bool: ...

    def check_now(self, key: str) -> bool: ...

    def has_worker(self, zone: str) -> bool: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class InfraSettings:
    #: Seconds an observation may take on the worker.
    observe_timeout: float = 60.0
    #: Seconds one change may take (a resize stops, modifies and starts).
    apply_timeout: float = 300.0
    #: Beyond a job's deadline, how long its lease waits for a late result.
    result_grace: float = 15.0
    #: Change jobs in flight per platform at once.
    concurrency: int = 4
    #: The circuit breaker's first pause, doubling per opening, at most `breaker_max`.
    breaker_base: float = 30.0
    breaker_max: float = 900.0
    #: After a change succeeded, observe again this soon to confirm it.
    confirm_after: float = 1.0


@dataclass(frozen=True, slots=True)
class _Ended:
    job_id: int
    result: Result | None
    reason: str | None
    worker: str | None


class InfraService(Operators):
    """Reconciles the document's infrastructure with what its platforms hold."""

    def __init__(
        self,
        db: Database,
        connector: QueueConnector,
        *,
        settings: InfraSettings | None = None,
        clock: Callable[[], float] = time.time,
        drain: Callable[[str, str, float], Awaitable[None]] | None = None,
    ) -> None:
        self.db = db
        self.settings = settings or InfraSettings()
        self.journal = JobQueue(connector, QUEUE)
        self.observations = JobQueue(connector, OBSERVE_QUEUE)
        self.runner: JobRunner | None = None
        self.owner = ""
        self.desired = Desired()
        self.held: repository.DesiredRecord | None = None
        self._clock = clock
        self._drain = drain
        self._platforms: dict[str, PlatformState] = {}
        self._protected: dict[str, frozenset[str]] = {}
        self._live: dict[int, QueuedJob] = {}
        self._events: deque[Any] = deque()
        self._wake = asyncio.Event()
        self._started = False
        self._slots: tuple[tuple[Any, ...], dict[str, tuple[str, str, Machine]]] | None = None
        self._latch = FailureLatch(
            logger,
            "infrastructure cannot reach the store, will retry: %s",
            "infrastructure reaches the store again",
            action="infra_store",
        )

    # --- wiring ---------------------------------------------------------------------------

    def attach(self, runner: JobRunner) -> None:
        self.runner = runner

    def configure(
        self,
        platforms: Iterable[Mapping[str, Any]],
        resources: Iterable[Mapping[str, Any]],
        version: int | None = None,
    ) -> None:
        """A new configuration's infrastructure (from an import, or the store at start)."""
        self._events.append(("configure", Desired.from_specs(platforms, resources), version))
        self._wake.set()

    # --- what the engine runner asks (inside its loop: memory only) -----------------------

    def check_outcome(self, check: Mapping[str, Any]) -> CheckOutcome | str:
        """The ``infra:NAME`` check: OK converged, WARNING drift, CRITICAL failed applies,
        UNKNOWN when the platform cannot be observed; a string (why it does not run yet)
        before the first observation."""
        name = str(check.get("resource"))
        resource = self.desired.resources.get(name)
        platform_name = str(check.get("platform"))
        state = self._platforms.get(platform_name)
        if resource is None:
            if self.held is not None and name in self.held.desired.resources:
                return outcome(CheckState.WARNING, f"held: {self.held.reason}")
            return "not in the infrastructure in force yet"
        if state is None or state.last is None:
            waiting = state.waiting if state is not None else ""
            return waiting or f"waiting for the first observation of platform {platform_name}"
        report = next((r for r in state.last.reports if r.resource == name), None)
        if report is None:
            return f"waiting for the first observation of platform {platform_name}"
        jobs = [j for j in self._live.values() if j.owner == name]
        pending = sum(1 for j in jobs if j.state is JobState.PENDING)
        return report_outcome(report, state, self._clock(), pending, len(jobs) - pending)

    def slot_address(self, host: str) -> str | None:
        """The address of the machine filling slot ``host``, from the last inventory."""
        found = self._slot_index().get(host)
        if found is None:
            return None
        _, resource, machine = found
        if machine.state not in ("running", "pending", "unknown"):
            return None
        public = self.desired.resources[resource].address == "public"
        return (machine.public_address if public else machine.address) or None

    def machine_of(self, host: str) -> tuple[str, Machine] | None:
        """(platform, machine) filling slot ``host``, for the host's page."""
        found = self._slot_index().get(host)
        return None if found is None else (found[0], found[2])

    def _slot_index(self) -> dict[str, tuple[str, str, Machine]]:
        """Slot host -> (platform, resource, its live machine of ours), rebuilt only when
        the desired infrastructure or an inventory was replaced: pages ask per check."""
        key = (self.desired, *(s.inventory for s in self._platforms.values()))
        cached = self._slots
        if (
            cached is not None
            and len(cached[0]) == len(key)
            and all(a is b for a, b in zip(cached[0], key, strict=True))
        ):
            return cached[1]
        index: dict[str, tuple[str, str, Machine]] = {}
        for name, resource in self.desired.resources.items():
            state = self._platforms.get(resource.platform)
            for machine in state.inventory.machines if state and state.inventory else ():
                if (
                    machine.owner == self.owner
                    and machine.resource == name
                    and machine.state in LIVE_STATES
                    and slot_index(name, machine.slot) is not None
                ):
                    index[machine.slot] = (resource.platform, name, machine)
        self._slots = (key, index)
        return index

    # --- the loop -------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the owner id, the desired infrastructure in force, the inventories and
        protection; mark what a previous run left dispatched as verifying."""
        now = self._clock()
        self.owner = await repository.cluster_id(self.db, now=now)
        accepted = await repository.desired(self.db, repository.ACCEPTED)
        if accepted is not None:
            self.desired = accepted.desired
        self.held = await repository.desired(self.db, repository.HELD)
        for name, inventory in (await repository.inventories(self.db)).items():
            self._platforms.setdefault(name, PlatformState()).inventory = inventory
        self._protected = await repository.protected(self.db)
        for job in await self.observations.list_jobs(states=LIVE):
            await self.observations.move(
                job, JobState.SKIPPED, now=now, event="skipped", note="the manager restarted"
            )
        for job in await self.journal.list_jobs(states=LIVE):
            if job.state is JobState.DISPATCHED:
                moved = await self.journal.move(
                    job, JobState.VERIFYING, now=now, event="interrupted",
                    note="the manager stopped while it may have been running: the next "
                    "observation decides whether it happened",
                )  # fmt: skip
                job = moved or job
            self._live[job.id] = job
        self._started = True

    async def run(self, interval: float = 0.5) -> None:
        """Steps until cancelled; a store failure is logged once and retried."""
        await step_forever(self.step, self._wake, self._latch, interval)

    async def step(self) -> None:
        """Events first (configuration, results), then due observations and dispatches."""
        if not self._started:
            await self.start()
        while self._events:
            event = self._events.popleft()
            if isinstance(event, _Ended):
                await self._ended(event)
            else:
                await self._configure(event[1], event[2])
        now = self._clock()
        await self._expire(now)
        for name, platform in self.desired.platforms.items():
            state = self._platforms.setdefault(name, PlatformState())
            if state.observing is None and now >= state.next_observe:
                if self.runner is not None and not self.runner.has_worker(platform.zone):
                    state.waiting = f"waiting for a worker of zone {platform.zone}"
                    continue  # not an observation that failed: nobody could make it yet
                state.waiting = ""
                await self._observe(platform, state, now)
            await self._dispatch(platform, state, now)

    async def _expire(self, now: float) -> None:
        """Jobs whose lease lapsed with no answer: the job server gives a lease up at the
        deadline without a word, so this is where an unanswered job ends. An observation
        counts as failed; a change is lost (verifying), and the next observation decides."""
        for name, state in self._platforms.items():
            if state.observing is not None and now > state.observe_lease:
                job_id, state.observing = state.observing, None
                await self._observation_ended(
                    name, state, _Ended(job_id, None, "no answer before its lease ran out", None),
                    now,
                )  # fmt: skip
        for job in list(self._live.values()):
            if job.state is JobState.DISPATCHED and job.lease_until and now > job.lease_until:
                await self._ended(_Ended(job.id, None, "no answer before its lease ran out", None))

    # --- configuration --------------------------------------------------------------------

    async def _configure(self, new: Desired, version: int | None) -> None:
        now = self._clock()
        shrink = shrink_reason(self.desired, new, self._platforms)
        if shrink and self.desired.resources:
            self.held = repository.DesiredRecord(desired=new, reason=shrink, version=version)
            await repository.put_desired(
                self.db, repository.HELD, new, now=now, reason=shrink, version=version
            )
            logger.warning(
                "infrastructure of configuration %s held: %s", version, shrink,
                extra={"action": "infra_held"},
            )  # fmt: skip
            # Platforms' own settings (zone, options, poll) still follow the document.
            self.desired = Desired(
                platforms={**self.desired.platforms, **new.platforms},
                resources=self.desired.resources,
            )
        else:
            await self._accept(new, version, now)
        await repository.drop_inventories(self.db, list(self.desired.platforms))
        for name in list(self._platforms):
            if name not in self.desired.platforms:
                del self._platforms[name]
        for state in self._platforms.values():
            state.next_observe = min(state.next_observe, now)

    # --- observing ------------------------------------------------------------------------

    async def _observe(self, platform: DesiredPlatform, state: PlatformState, now: float) -> None:
        state.next_observe = now + platform.poll
        job = await self.observations.enqueue(
            NewJob(
                kind="infra",
                owner=platform.name,
                subject=platform.name,
                zone=platform.zone,
                spec={"op": "observe"},
                key=f"observe|{platform.name}",
                once=False,
            ),
            now=now,
            output=f"observe {platform.name}",
        )
        payload = InfraPayload(
            op="observe", platform=dict(platform.spec), owner=self.owner,
            timeout=self.settings.observe_timeout,
        )  # fmt: skip
        deadline = now + self.settings.observe_timeout + 5.0
        marked = await self.observations.move(
            job, JobState.DISPATCHED, now=now, event="dispatched", note=None,
            lease_until=deadline + self.settings.result_grace,
        )  # fmt: skip
        if marked is None:
            return
        state.observing = job.id
        state.observe_lease = deadline + self.settings.result_grace
        state.observe_sent = now
        sent = self.runner is not None and await self.runner.submit_action(
            Job(job_id=marked.wire_id, zone=platform.zone, payload=payload, deadline=deadline),
            self._done(job.id),
        )
        if not sent:
            state.observing = None
            await self.observations.move(
                marked, JobState.FAILED, now=now, event="not_sent",
                note=f"no worker of zone {platform.zone} could take it",
            )  # fmt: skip
            await self._observed(
                platform,
                state,
                Observation(
                    platform=platform.name,
                    error=f"no worker of zone {platform.zone} could take the observe job",
                    at=now,
                ),
                latency=None,
            )

    async def _observed(
        self,
        platform: DesiredPlatform,
        state: PlatformState,
        observation: Observation,
        latency: float | None,
    ) -> None:
        """Keep the observation, decide lost jobs, plan, and write the plan's jobs."""
        now = self._clock()
        old = state.inventory or repository.Inventory(platform=platform.name)
        known = sum(1 for m in old.machines if m.owner == self.owner and m.state in LIVE_STATES)
        live = [j for j in self._live.values() if _platform_of(j) == platform.name]
        verifying = [j for j in live if j.state is JobState.VERIFYING]
        given = PlanInput(
            desired=self.desired,
            platform=platform,
            observation=observation,
            owner=self.owner,
            known=known,
            protected=self._protected.get(platform.name, frozenset()),
            # Only changes in flight make a slot busy: a queued or pending job's action is
            # planned again with the same key (and kept), or not (and skipped).
            busy=frozenset(_slot_of(j) for j in live if j.state is JobState.DISPATCHED),
            only=state.only,
            destroyed=frozenset(state.destroyed),
        )
        result = plan(given)
        good = result.knowledge is Knowledge.KNOWN
        state.inventory = replace(
            old,
            machines=observation.machines if good else old.machines,
            observed_at=now,
            good_at=now if good else old.good_at,
            error="" if good else (result.reason or observation.error),
            latency_ms=latency if latency is not None else old.latency_ms,
            observations=old.observations + 1,
            failures=old.failures + (0 if good else 1),
        )
        await repository.save_inventory(self.db, state.inventory)
        if good:
            await self._resolve(verifying, result, now)
            if verifying:
                busy = frozenset(
                    _slot_of(j) for j in self._live.values()
                    if _platform_of(j) == platform.name and j.state is JobState.DISPATCHED
                )  # fmt: skip
                result = plan(replace(given, busy=busy))
            await self._write(platform, result, now, state.only)
            state.only = None
        elif state.last is None or state.last.reason != result.reason:  # once per reason
            logger.warning(
                "platform %s is UNKNOWN: %s", platform.name, result.reason,
                extra={"action": "infra_unknown", "platform": platform.name},
            )  # fmt: skip
        if good and state.last is not None and state.last.knowledge is Knowledge.UNKNOWN:
            logger.log(
                NOTICE, "platform %s is observed again", platform.name,
                extra={"action": "infra_known", "platform": platform.name},
            )  # fmt: skip
        previous, state.last = state.last, result
        self._recheck(previous, result)

    async def _resolve(self, verifying: Sequence[QueuedJob], result: Plan, now: float) -> None:
        """Jobs whose result was lost: the observation says whether they happened."""
        wanted = {a.key for a in result.actions}
        for job in verifying:
            happened = job.key not in wanted
            to = JobState.SUCCEEDED if happened else JobState.FAILED
            note = (
                "confirmed by observation: the platform shows it done"
                if happened
                else "not done, by observation: the plan makes a new job for it"
            )
            moved = await self.journal.move(
                job, to, now=now, event="verified" if happened else "not_done", note=note,
                output=note,
            )  # fmt: skip
            self._live.pop(job.id, None)
            if moved is not None and happened:
                await self._effects(moved, None)

    async def _write(
        self, platform: DesiredPlatform, result: Plan, now: float, only: frozenset[str] | None
    ) -> None:
        """Queue (or hold for an operator) each new action; skip what is no longer planned."""
        wanted = {a.key: a for a in result.actions}
        for job in list(self._live.values()):
            if _platform_of(job) != platform.name or job.key in wanted:
                continue
            if job.spec.get("op") in ("unprotect", "adopt"):
                continue  # an operator's, not the plan's
            selected = only is None or job.owner in only
            if job.state in (JobState.PENDING, JobState.QUEUED) and selected:
                moved = await self.journal.move(
                    job, JobState.SKIPPED, now=now, event="skipped",
                    note="no longer needed: the latest plan does not have it", author="system",
                )  # fmt: skip
                if moved is not None:
                    self._live.pop(job.id, None)
        have = {j.key for j in self._live.values()}
        for action in result.actions:
            if action.key in have:
                continue
            resource = self.desired.resources.get(action.resource)
            spec: dict[str, Any] = {
                "op": action.op.value,
                "platform": platform.name,
                "cloud_id": action.cloud_id,
                "size": action.size,
                "reason": action.reason,
            }
            if action.op is Op.CREATE and resource is not None:
                spec.update(
                    image=resource.image,
                    protect=resource.protect,
                    labels=dict(resource.labels),
                    options=dict(resource.options),
                    index=slot_index(resource.name, action.slot) or 0,
                )
            job = await self.journal.enqueue(
                NewJob(
                    kind="infra",
                    owner=action.resource,
                    subject=action.slot or action.cloud_id or "",
                    zone=platform.zone,
                    spec=spec,
                    state=JobState.PENDING if action.confirm else JobState.QUEUED,
                    key=action.key,
                    meta={"platform": platform.name, "reason": action.reason},
                ),
                now=now,
                output=action.reason + (" (waits for an operator)" if action.confirm else ""),
            )
            self._live[job.id] = job
            logger.log(
                logging.WARNING if action.op is Op.DESTROY else logging.INFO,
                "infrastructure %s: %s", "pending" if action.confirm else "queued", action.reason,
                extra={"action": "infra_planned", "platform": platform.name, "job": job.id},
            )  # fmt: skip

    # --- applying -------------------------------------------------------------------------

    async def _dispatch(self, platform: DesiredPlatform, state: PlatformState, now: float) -> None:
        if now < state.breaker_until:
            return
        if self.runner is not None and not self.runner.has_worker(platform.zone):
            return  # queued jobs wait for a worker of the zone
        mine = [j for j in self._live.values() if _platform_of(j) == platform.name]
        # One change per slot in flight: a plan may want two for one machine (start it and
        # protect it); the second waits for the first, wherever the two would have run.
        flying = [j for j in mine if j.state is JobState.DISPATCHED]
        busy, count = {_slot_of(j) for j in flying}, len(flying)
        for job in sorted(mine, key=lambda j: j.id):
            if count >= self.settings.concurrency:
                return
            if job.state is not JobState.QUEUED or _slot_of(job) in busy:
                continue
            if await self._send(platform, job, now):
                busy.add(_slot_of(job))
                count += 1

    async def _send(self, platform: DesiredPlatform, job: QueuedJob, now: float) -> bool:
        spec = job.spec
        op = str(spec["op"])
        if op == "destroy" and self._drain is not None and job.subject:
            await self._drain(job.subject, f"infrastructure: {spec.get('reason')}", now)
        deadline = now + self.settings.apply_timeout + 5.0
        marked = await self.journal.move(
            job, JobState.DISPATCHED, now=now, event="dispatched",
            note=f"{op} sent to a worker of zone {platform.zone} (op {job.queue[:3]}-{job.id})",
            lease_until=deadline + self.settings.result_grace,
        )  # fmt: skip
        if marked is None:
            self._live.pop(job.id, None)
            return False
        self._live[job.id] = marked
        payload = InfraPayload(
            op=cast("InfraOp", op),
            platform=dict(platform.spec),
            owner=self.owner,
            resource=job.owner,
            slot=_slot_of(job),
            index=int(spec.get("index") or 0),
            cloud_id=spec.get("cloud_id"),
            op_id=marked.wire_id,
            size=spec.get("size"),
            image=spec.get("image"),
            protect=bool(spec.get("protect")),
            labels=dict(spec.get("labels") or {}),
            options=dict(spec.get("options") or {}),
            timeout=self.settings.apply_timeout,
        )
        wire = Job(
            job_id=marked.wire_id, zone=platform.zone, payload=payload, deadline=deadline,
            once=True,  # a change that may have run is never re-sent to a peer
        )  # fmt: skip
        if self.runner is not None and await self.runner.submit_action(wire, self._done(job.id)):
            await self.journal.record_audit([AuditEntry(
                at=now, queue=QUEUE, owner=job.owner, subject=job.subject, event="dispatched",
                output=f"{op} sent to a worker of zone {platform.zone} (op {marked.wire_id})",
                job_id=job.id, outcome=JobState.DISPATCHED.value,
            )])  # fmt: skip
            return True
        back = await self.journal.move(
            marked, JobState.QUEUED, now=now, event="requeued", note=None
        )
        if back is not None:
            self._live[job.id] = back
        return False

    def _done(self, job_id: int) -> JobDone:
        def done(result: Result | None, reason: str | None, worker: str | None) -> None:
            self._events.append(_Ended(job_id, result, reason, worker))
            self._wake.set()

        return done

    async def _ended(self, event: _Ended) -> None:
        now = self._clock()
        for name, state in self._platforms.items():
            if state.observing == event.job_id:
                state.observing = None
                await self._observation_ended(name, state, event, now)
                return
        job = self._live.get(event.job_id)
        if job is None:
            return
        platform = self.desired.platforms.get(_platform_of(job))
        state = self._platforms.setdefault(_platform_of(job), PlatformState())
        state.changed_at = now  # observations sent before now may not show this change
        if event.result is None:
            moved = await self.journal.move(
                job, JobState.VERIFYING, now=now, event="lost",
                note=f"lost: {event.reason}; the next observation decides whether it happened",
                worker=event.worker,
            )  # fmt: skip
            if moved is not None:
                self._live[job.id] = moved
            self._soon(_platform_of(job), now)
            return
        ok = event.result.state == CheckState.OK.value
        to = JobState.SUCCEEDED if ok else JobState.FAILED
        moved = await self.journal.move(
            job, to, now=now, event="succeeded" if ok else "failed",
            note=event.result.output, output=event.result.output, worker=event.worker,
        )  # fmt: skip
        self._live.pop(job.id, None)
        if ok and moved is not None:
            state.failures = 0
            state.openings = 0
            await self._effects(moved, event.result.data)
        elif not ok:
            state.failures += 1
            state.last_error = event.result.output
            limit = platform.limits.failures if platform is not None else 3
            if state.failures >= limit and now >= state.breaker_until:  # open once
                state.openings += 1
                pause = backoff_ceiling(
                    state.openings, base=self.settings.breaker_base, cap=self.settings.breaker_max
                )
                state.breaker_until = now + pause
                logger.error(
                    "platform %s: %d failed changes in a row, applies paused for %.0fs: %s",
                    _platform_of(job), state.failures, pause, event.result.output,
                    extra={"action": "infra_breaker", "platform": _platform_of(job)},
                )  # fmt: skip
        self._soon(_platform_of(job), now)

    async def _observation_ended(
        self, name: str, state: PlatformState, event: _Ended, now: float
    ) -> None:
        platform = self.desired.platforms.get(name)
        job = await self.observations.get(event.job_id)
        result = event.result
        if job is not None:
            ok = result is not None and result.state == CheckState.OK.value
            await self.observations.move(
                job, JobState.SUCCEEDED if ok else JobState.FAILED, now=now,
                event="observed" if ok else "failed",
                note=None if ok else (result.output if result else f"lost: {event.reason}"),
                output=result.output if result else event.reason, worker=event.worker,
            )  # fmt: skip
        if platform is None:
            return
        if result is None:
            observation = Observation(platform=name, error=f"lost: {event.reason}", at=now)
        elif result.state != CheckState.OK.value or result.data is None:
            observation = Observation(platform=name, error=result.output, at=now)
        elif state.observe_sent < state.changed_at:
            # It may have listed the machines before a change that has ended since landed:
            # planning on it would make a create again, or call a lost one not done.
            state.next_observe = min(state.next_observe, now)
            logger.debug(
                "platform %s: observation sent before the last change ended, observing again",
                name,
            )
            return
        else:
            machines = tuple(Machine.from_json(m) for m in result.data.get("machines", []))
            observation = Observation(platform=name, machines=machines, at=now)
        latency = None if result is None else (result.finished - result.started) * 1000
        await self._observed(platform, state, observation, latency)

    async def _effects(self, job: QueuedJob, data: Mapping[str, Any] | None) -> None:
        """What a change that happened means for the inventory and protection."""
        platform = _platform_of(job)
        state = self._platforms.setdefault(platform, PlatformState())
        op = job.spec.get("op")
        machine = Machine.from_json(data["machine"]) if data and data.get("machine") else None
        if op == "destroy" and job.spec.get("cloud_id"):
            state.destroyed.add(str(job.spec["cloud_id"]))
        if machine is not None and state.inventory is not None:
            others = [m for m in state.inventory.machines if m.cloud_id != machine.cloud_id]
            if op != "destroy":
                others.append(machine)
            state.inventory = replace(state.inventory, machines=tuple(others))
            await repository.save_inventory(self.db, state.inventory)
        resource = self.desired.resources.get(job.owner)
        protect = op == "protect" or (op == "create" and resource is not None and resource.protect)
        if protect and machine is not None:
            await repository.protect(self.db, platform, machine, now=self._clock())
            self._protected = await repository.protected(self.db)

    def _soon(self, platform: str, now: float) -> None:
        state = self._platforms.get(platform)
        if state is not None:
            state.next_observe = min(state.next_observe, now + self.settings.confirm_after)

    def _recheck(self, previous: Plan | None, current: Plan) -> None:
        """Run the ``infra:NAME`` checks at once when their report changed."""
        if self.runner is None:
            return
        before = {r.resource: r for r in previous.reports} if previous else {}
        for report in current.reports:
            if before.get(report.resource) != report:
                self.runner.check_now(infra_key(report.resource))

    # --- views ----------------------------------------------------------------------------

    def platform_states(self) -> dict[str, PlatformState]:
        return dict(self._platforms)

    def last_plans(self) -> dict[str, Plan]:
        return {n: s.last for n, s in self._platforms.items() if s.last is not None}

    def preview(self, desired: Desired) -> dict[str, Plan]:
        """What ``desired`` would do against the last inventories (``watchkeeper plan``)."""
        out = {}
        for name, platform in desired.platforms.items():
            state = self._platforms.get(name) or PlatformState()
            machines = state.inventory.machines if state.inventory else ()
            out[name] = plan(
                PlanInput(
                    desired=desired,
                    platform=platform,
                    observation=Observation(platform=name, machines=machines),
                    owner=self.owner,
                    protected=self._protected.get(name, frozenset()),
                )
            )
        return out

    def protected_ids(self) -> dict[str, frozenset[str]]:
        return dict(self._protected)


def _platform_of(job: QueuedJob) -> str:
    return str(job.meta.get("platform") or job.spec.get("platform") or "")


def _slot_of(job: QueuedJob) -> str:
    return str(job.spec.get("slot") or job.subject)
