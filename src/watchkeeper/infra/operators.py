"""What operators ask of the infrastructure stage: confirm or skip a change, apply now,
lift protection, adopt a lookalike, trust an empty observation, accept a held document.

Each is a write the stage's loop then acts on (it is woken); each says who asked, in the
journal's audit and in the log. A mix-in of `InfraService`, which owns the state named
below.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace

from watchkeeper.errors import Conflict, NotFound
from watchkeeper.infra import repository
from watchkeeper.infra.desired import Desired
from watchkeeper.infra.planner import LIVE_STATES
from watchkeeper.infra.providers.base import Machine
from watchkeeper.infra.status import PlatformState
from watchkeeper.jobs.queue import JobQueue, NewJob, QueuedJob
from watchkeeper.jobs.states import JobState
from watchkeeper.store.db import Database

logger = logging.getLogger(__name__)


class Operators:
    """The operator's requests; the attributes are `InfraService`'s."""

    db: Database
    owner: str
    desired: Desired
    held: repository.DesiredRecord | None
    journal: JobQueue
    _clock: Callable[[], float]
    _platforms: dict[str, PlatformState]
    _protected: dict[str, frozenset[str]]
    _live: dict[int, QueuedJob]
    _wake: asyncio.Event

    async def _accept(self, new: Desired, version: int | None, now: float) -> None:
        """Put ``new`` in force (a configuration, or a held one confirmed)."""
        self.desired = new
        await repository.put_desired(self.db, repository.ACCEPTED, new, now=now, version=version)
        if self.held is not None:
            self.held = None
            await repository.drop_desired(self.db, repository.HELD)

    # --- operators ------------------------------------------------------------------------

    async def decide(self, job_id: int, *, run: bool, author: str) -> QueuedJob:
        """Confirm (run) or skip a pending change."""
        now = self._clock()
        to = JobState.QUEUED if run else JobState.SKIPPED
        moved = await self.journal.move(
            job_id, to, expect=[JobState.PENDING], now=now,
            event="confirmed" if run else "skipped",
            note=f"{'confirmed' if run else 'skipped'} by {author}", author=author,
        )  # fmt: skip
        if moved is None:
            found = await self.journal.get(job_id)
            if found is None:
                raise NotFound(f"no infrastructure job {job_id}")
            raise Conflict(f"infrastructure job {job_id} is {found.state.value}, not pending")
        if run:
            self._live[moved.id] = moved
        else:
            self._live.pop(moved.id, None)
        self._wake.set()
        return moved

    async def apply_now(self, only: Sequence[str] = (), *, author: str) -> list[str]:
        """Observe and plan now (only ``only``'s resources when given); close breakers."""
        unknown = [name for name in only if name not in self.desired.resources]
        if unknown:
            raise NotFound(f"no resource {unknown[0]!r} in the infrastructure in force")
        now = self._clock()
        platforms = {self.desired.resources[n].platform for n in only} or set(
            self.desired.platforms
        )
        for name in platforms:
            state = self._platforms.setdefault(name, PlatformState())
            state.next_observe = now
            state.breaker_until = 0.0
            state.failures = 0
            state.only = frozenset(only) if only else None
        logger.info(
            "infrastructure apply asked by %s: %s", author, ", ".join(sorted(platforms)),
            extra={"action": "infra_apply"},
        )  # fmt: skip
        self._wake.set()
        return sorted(platforms)

    async def unprotect(self, target: str, *, author: str) -> QueuedJob:
        """Lift protection from the machine filling slot (or with cloud id) ``target``."""
        platform, machine = self._find(target)
        now = self._clock()
        await repository.unprotect(self.db, platform, machine.cloud_id)
        self._protected = await repository.protected(self.db)
        return await self._operator_job(
            platform, machine, "unprotect", f"unprotect {machine.slot or machine.cloud_id}: "
            f"asked by {author}", author, now,
        )  # fmt: skip

    async def adopt(self, target: str, *, author: str) -> QueuedJob:
        """Take ownership of a lookalike (our resource tag, not our owner tag)."""
        for name, state in self._platforms.items():
            last = state.last
            for machine in last.lookalikes if last else ():
                if target in (machine.cloud_id, machine.slot) and machine.resource:
                    return await self._operator_job(
                        name, machine, "adopt",
                        f"adopt {machine.cloud_id} as {machine.slot}: asked by {author}",
                        author, self._clock(),
                    )  # fmt: skip
        raise NotFound(f"no unowned machine {target!r} with our resource tag was observed")

    async def accept(self, platform: str, *, author: str) -> None:
        """Trust the platform's last observation even though it saw nothing."""
        state = self._platforms.get(platform)
        if state is None or platform not in self.desired.platforms:
            raise NotFound(f"no platform {platform!r}")
        if state.inventory is not None:
            state.inventory = replace(state.inventory, machines=())
            await repository.save_inventory(self.db, state.inventory)
        state.next_observe = self._clock()
        logger.warning(
            "platform %s: %s accepted an empty observation", platform, author,
            extra={"action": "infra_accept", "platform": platform},
        )  # fmt: skip
        self._wake.set()

    async def _operator_job(
        self, platform: str, machine: Machine, op: str, reason: str, author: str, now: float
    ) -> QueuedJob:
        zone = self.desired.platforms[platform].zone
        job = await self.journal.enqueue(
            NewJob(
                kind="infra",
                owner=machine.resource,
                subject=machine.slot or machine.cloud_id,
                zone=zone,
                spec={
                    "op": op,
                    "platform": platform,
                    "cloud_id": machine.cloud_id,
                    "reason": reason,
                    "slot": machine.slot,
                },
                key=f"{machine.resource}|{machine.slot}|{op}|{machine.cloud_id}",
                meta={"platform": platform, "reason": reason, "author": author},
            ),
            now=now,
            output=reason,
        )
        self._live[job.id] = job
        self._wake.set()
        return job

    def _find(self, target: str) -> tuple[str, Machine]:
        for name, state in self._platforms.items():
            for machine in state.inventory.machines if state.inventory else ():
                if machine.owner == self.owner and target in (machine.cloud_id, machine.slot) and (
                    machine.state in LIVE_STATES
                ):  # fmt: skip
                    return name, machine
        raise NotFound(f"no machine of ours is {target!r} (a slot or a cloud id)")

    async def confirm_hold(self, author: str) -> Desired:
        """An operator accepts the held infrastructure: it is in force from now."""
        held = self.held
        if held is None:
            raise NotFound("no infrastructure is held")
        now = self._clock()
        await self._accept(held.desired, held.version, now)
        for state in self._platforms.values():  # plan the confirmed one at once
            state.next_observe = min(state.next_observe, now)
        logger.warning(
            "held infrastructure confirmed by %s", author, extra={"action": "infra_hold_confirmed"}
        )
        self._wake.set()
        return held.desired
