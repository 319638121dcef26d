"""Where the job server learns what a worker key may do: the `KeyRegistry` seam.

The server asks one question, "which enrolment, if any, does this public key have?", on
every authentication and again periodically for connected workers (so a revocation made
by another process, ``watchkeeper worker-key revoke``, closes connections within one
interval). `StoreKeyRegistry` answers from the database; `MemoryKeyRegistry` is the fake
for tests and for an embedded worker that needs no store.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from watchkeeper import store


@dataclass(frozen=True, slots=True, kw_only=True)
class Enrolment:
    """What an authenticated key grants: a name, the zones it serves, its labels.

    ``agent_for`` makes the key a host's agent: it then receives that host's ``agent``
    checks (in its enrolled zones) and nothing else.
    """

    name: str
    public_key: str
    zones: frozenset[str]
    labels: Mapping[str, str] = field(default_factory=dict)
    agent_for: str | None = None

    def log_context(self) -> dict[str, Any]:
        context: dict[str, Any] = {"name": self.name, "zones": sorted(self.zones)}
        if self.agent_for is not None:
            context["agent_for"] = self.agent_for
        return context


class KeyRegistry(Protocol):
    """Looks up enrolments. Lifecycle: one per job server, shared by all its connections."""

    async def lookup(self, public_key: str) -> Enrolment | None:
        """The live (not revoked) enrolment of a canonical one-line public key, or None."""
        ...


class MemoryKeyRegistry:
    """An in-memory `KeyRegistry`: `add` and `revoke` take effect at the next lookup."""

    def __init__(self) -> None:
        self._by_key: dict[str, Enrolment] = {}

    def add(
        self,
        name: str,
        public_key: str,
        zones: Iterable[str],
        labels: Mapping[str, str] | None = None,
        *,
        agent_for: str | None = None,
    ) -> Enrolment:
        if any(e.name == name for e in self._by_key.values()):
            raise ValueError(f"worker key {name!r} is already enrolled")
        enrolment = Enrolment(
            name=name,
            public_key=public_key,
            zones=frozenset(zones),
            labels=dict(labels or {}),
            agent_for=agent_for,
        )
        self._by_key[public_key] = enrolment
        return enrolment

    def revoke(self, name: str) -> bool:
        for key, enrolment in list(self._by_key.items()):
            if enrolment.name == name:
                del self._by_key[key]
                return True
        return False

    async def lookup(self, public_key: str) -> Enrolment | None:
        return self._by_key.get(public_key)


class StoreKeyRegistry:
    """A `KeyRegistry` over the store's ``worker_keys`` table; revoked keys find nothing."""

    def __init__(self, db: store.Database) -> None:
        self._db = db

    async def lookup(self, public_key: str) -> Enrolment | None:
        async with self._db.session() as session:
            found = await store.find_by_public_key(session, public_key)
        if found is None or found.revoked:
            return None
        return Enrolment(
            name=found.name,
            public_key=found.public_key,
            zones=frozenset(found.zones),
            labels=found.labels,
            agent_for=found.agent_for,
        )
