"""A connected worker as the job server tracks it, and the snapshot the API shows.

`ConnectedWorker` is mutable and owned by the server's event loop; its zones and labels are
the enrolment's (what the key grants), its hello only adds what the worker *claims*, which
`WorkerInfo` shows beside the grants so an operator can spot a misconfigured worker.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from watchkeeper.transport import protocol
from watchkeeper.transport.registry import Enrolment
from watchkeeper.transport.session import Peer


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerInfo:
    """A connected worker, for the API: enrolled grants, its claims, and how busy it is."""

    name: str
    zones: tuple[str, ...]
    labels: dict[str, str]
    agent_for: str | None
    claimed_zones: tuple[str, ...]
    claimed_labels: dict[str, str]
    version: str
    concurrency: int
    #: Slots it offers now: ``concurrency``, or fewer while under pressure.
    capacity: int
    in_flight: int
    load: float
    last_seen: float
    accepting: bool
    reason: str
    draining: bool


@dataclass(eq=False, slots=True)
class ConnectedWorker:
    """One authenticated connection; mutable, owned by the server's event loop."""

    enrolment: Enrolment
    peer: Peer
    hello: protocol.Hello | None = None
    jobs: set[str] = field(default_factory=set)
    load: float = 0.0
    accepting: bool = True
    #: Slots the worker offers in its last heartbeat (None: its whole concurrency).
    offered: int | None = None
    reason: str = ""
    draining: bool = False
    last_seen_wall: float = field(default_factory=time.time)
    #: Monitor ticks in a row without a message from the worker (see `JobServer._tick`).
    silent_ticks: int = 0
    last_assigned: int = 0

    @property
    def name(self) -> str:
        return self.enrolment.name

    @property
    def zones(self) -> frozenset[str]:
        return self.enrolment.zones

    @property
    def labels(self) -> Mapping[str, str]:
        return self.enrolment.labels

    @property
    def agent_for(self) -> str | None:
        return self.enrolment.agent_for

    @property
    def ready(self) -> bool:
        return self.hello is not None and self.accepting and not self.draining

    @property
    def leased(self) -> int:
        return len(self.jobs)

    @property
    def concurrency(self) -> int:
        return 1 if self.hello is None else self.hello.concurrency

    @property
    def capacity(self) -> int:
        """The leases it may hold now: its concurrency, or what it offers under pressure."""
        offered = self.offered
        return self.concurrency if offered is None else min(offered, self.concurrency)

    def info(self) -> WorkerInfo:
        hello = self.hello
        return WorkerInfo(
            name=self.name,
            zones=tuple(sorted(self.zones)),
            labels=dict(self.labels),
            agent_for=self.agent_for,
            claimed_zones=tuple(hello.zones) if hello else (),
            claimed_labels=dict(hello.labels) if hello else {},
            version=hello.version if hello else "",
            concurrency=self.concurrency,
            capacity=self.capacity,
            in_flight=self.leased,
            load=self.load,
            last_seen=self.last_seen_wall,
            accepting=self.accepting,
            reason=self.reason,
            draining=self.draining,
        )
