"""Which connected worker gets a job: a pure decision, tested without sockets.

A worker is eligible when its *enrolled* zones include the job's zone, its enrolled labels
carry every label the job requires, its agent enrolment matches the job's (an agent job
goes only to that host's agent, and an agent gets nothing else), it has said hello, is
accepting, is not draining, and holds fewer leases than its capacity (its concurrency, or
the fewer slots it offers under pressure). Among the eligible the least loaded wins: one
not under pressure first, then fewest leases per offered slot, then lowest reported load
per core (to 0.1, so noise does not decide), then the one that got a job least recently,
which spreads a burst round-robin across a zone's cluster instead of piling it on
whoever sorts first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol, TypeVar


class Routable(Protocol):
    """What routing reads of a worker connection."""

    @property
    def zones(self) -> frozenset[str]: ...
    @property
    def labels(self) -> Mapping[str, str]: ...
    @property
    def agent_for(self) -> str | None: ...
    @property
    def ready(self) -> bool:
        """Said hello, accepting and not draining."""
        ...

    @property
    def leased(self) -> int: ...
    @property
    def concurrency(self) -> int: ...
    @property
    def capacity(self) -> int:
        """Leases it may hold now: its concurrency, fewer under pressure."""
        ...

    @property
    def load(self) -> float: ...
    @property
    def last_assigned(self) -> int: ...


W = TypeVar("W", bound=Routable)


def serves(
    worker: Routable, zone: str, requires: Mapping[str, str], agent: str | None = None
) -> bool:
    """Whether the worker's enrolment allows this zone, agent and the required labels."""
    return (
        worker.agent_for == agent
        and zone in worker.zones
        and all(worker.labels.get(name) == value for name, value in requires.items())
    )


def choose(
    workers: Iterable[W], *, zone: str, requires: Mapping[str, str], agent: str | None = None
) -> W | None:
    """The least-loaded eligible worker for a job, or None when no worker can take it."""
    best: W | None = None
    best_rank: tuple[bool, float, float, int] | None = None
    for worker in workers:
        if not worker.ready or worker.leased >= worker.capacity:
            continue
        if not serves(worker, zone, requires, agent):
            continue
        rank = (
            worker.capacity < worker.concurrency,
            worker.leased / worker.capacity,
            round(worker.load, 1),
            worker.last_assigned,
        )
        if best_rank is None or rank < best_rank:
            best, best_rank = worker, rank
    return best
