"""A zone's workers as operators need to see them: how many, their slots, and failover.

A zone's checks run on any of its connected workers (the job server spreads them by free
slots and moves a lost worker's jobs to a peer), so what a zone can carry is the sum of its
workers' slots, and a zone that has checks but exactly one worker runs them with no
failover: when that worker goes, its in-flight jobs have nowhere to go and the zone waits.
A zone with no worker at all is already reported by its `ZoneStatus` (WAITING, OFFLINE).

Pure: a function of the connected workers and the engine's zone statuses, read through a
small Protocol so the engine never imports the transport that owns the workers.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from watchkeeper.engine.zones import ZoneStatus
from watchkeeper.jobs.pools import pool_agent


class Member(Protocol):
    """What the count reads of a connected worker (`transport.workers.WorkerInfo` has it)."""

    @property
    def zones(self) -> Collection[str]: ...
    @property
    def agent_for(self) -> str | None: ...
    @property
    def capacity(self) -> int:
        """Slots it offers now: its concurrency, fewer under pressure."""
        ...

    @property
    def in_flight(self) -> int: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class ZoneCapacity:
    """One zone's connected workers, their slots now, and what an operator should know."""

    zone: str
    workers: int
    #: Slots its workers offer now; a worker of several zones counts in each (shared).
    capacity: int
    #: Of those, held by jobs (of any of the worker's zones).
    in_use: int
    warnings: tuple[str, ...] = ()


def no_failover(zone: str) -> str:
    return f"zone {zone} has 1 worker: no failover"


def zone_capacity(
    workers: Iterable[Member], statuses: Mapping[str, ZoneStatus]
) -> dict[str, ZoneCapacity]:
    """Every zone with checks (a key of ``statuses``) or a connected worker, by name.

    Agents are left out: an agent serves only its host's ``agent:HOST`` pool, by design
    alone, and adds no slot to a zone.
    """
    counts: dict[str, list[int]] = {z: [0, 0, 0] for z in statuses if pool_agent(z) is None}
    for worker in workers:
        if worker.agent_for is not None:
            continue
        for zone in worker.zones:
            count = counts.setdefault(zone, [0, 0, 0])
            count[0] += 1
            count[1] += worker.capacity
            count[2] += worker.in_flight
    return {
        zone: ZoneCapacity(
            zone=zone,
            workers=n,
            capacity=slots,
            in_use=used,
            warnings=(no_failover(zone),) if n == 1 and zone in statuses else (),
        )
        for zone, (n, slots, used) in sorted(counts.items())
    }
