"""What the infrastructure stage keeps in the store, besides its jobs (queue ``infra``).

    cluster_id             the owner tag of everything we make, created once per store
    inventories / save_inventory
                           each platform's last observation, and the last good one
    protected / protect / unprotect
                           protection a document asked for: sticky, lifted by operators
    desired / put_desired / drop_desired
                           the infrastructure in force (``accepted``) and one ``held``

No state file: the platform's tags are the truth, and these rows are what the manager
last saw of it, for the guards and the UI.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from watchkeeper.clock import from_epoch, to_epoch
from watchkeeper.infra.desired import Desired
from watchkeeper.infra.providers.base import Machine
from watchkeeper.store import tables
from watchkeeper.store.db import Database

ACCEPTED = "accepted"
HELD = "held"


@dataclass(frozen=True, slots=True, kw_only=True)
class Inventory:
    """A platform's last observation, as kept."""

    platform: str
    machines: tuple[Machine, ...] = ()
    observed_at: float | None = None
    good_at: float | None = None
    error: str = ""
    latency_ms: float | None = None
    observations: int = 0
    failures: int = 0

    @property
    def error_rate(self) -> float:
        return self.failures / self.observations if self.observations else 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class DesiredRecord:
    desired: Desired
    reason: str = ""
    version: int | None = None
    updated_at: float = 0.0
    raw: Mapping[str, Any] = field(default_factory=dict)


async def cluster_id(db: Database, *, now: float) -> str:
    """This store's owner id; made on first use. Two managers starting together on one
    store may each insert one: both then read the oldest, so they agree."""
    first = (
        sa.select(tables.cluster.c.id)
        .order_by(tables.cluster.c.created_at, tables.cluster.c.id)
        .limit(1)
    )
    async with db.session() as session:
        found = await session.scalar(first)
    if found:
        return str(found)
    async with db.begin() as session:
        made = "wk" + secrets.token_hex(8)
        await session.execute(sa.insert(tables.cluster).values(id=made, created_at=from_epoch(now)))
    async with db.session() as session:
        return str(await session.scalar(first))


async def inventories(db: Database) -> dict[str, Inventory]:
    async with db.session() as session:
        rows = (await session.execute(sa.select(tables.infra_inventory))).all()
    return {
        row.platform: Inventory(
            platform=row.platform,
            machines=tuple(Machine.from_json(m) for m in row.machines or ()),
            observed_at=to_epoch(row.observed_at),
            good_at=to_epoch(row.good_at),
            error=row.error,
            latency_ms=row.latency_ms,
            observations=row.observations,
            failures=row.failures,
        )
        for row in rows
    }


async def save_inventory(db: Database, inventory: Inventory) -> None:
    values = {
        "observed_at": None if inventory.observed_at is None else from_epoch(inventory.observed_at),
        "machines": [m.to_json() for m in inventory.machines],
        "good_at": None if inventory.good_at is None else from_epoch(inventory.good_at),
        "error": inventory.error,
        "latency_ms": inventory.latency_ms,
        "observations": inventory.observations,
        "failures": inventory.failures,
    }
    table = tables.infra_inventory
    async with db.begin() as session:
        done = await session.execute(
            sa.update(table).where(table.c.platform == inventory.platform).values(**values)
        )
        if not getattr(done, "rowcount", 0):
            await session.execute(sa.insert(table).values(platform=inventory.platform, **values))


async def drop_inventories(db: Database, keep: Sequence[str]) -> None:
    """Forget the inventories of platforms the document no longer has."""
    table = tables.infra_inventory
    async with db.begin() as session:
        await session.execute(sa.delete(table).where(table.c.platform.not_in(list(keep))))


async def protected(db: Database) -> dict[str, frozenset[str]]:
    """Platform -> the cloud ids whose protection is recorded."""
    async with db.session() as session:
        rows = (await session.execute(sa.select(tables.infra_protection))).all()
    found: dict[str, set[str]] = {}
    for row in rows:
        found.setdefault(row.platform, set()).add(row.cloud_id)
    return {platform: frozenset(ids) for platform, ids in found.items()}


async def protect(db: Database, platform: str, machine: Machine, *, now: float) -> None:
    table = tables.infra_protection
    async with db.begin() as session:
        exists = await session.scalar(
            sa.select(table.c.cloud_id).where(
                table.c.platform == platform, table.c.cloud_id == machine.cloud_id
            )
        )
        if exists is None:
            await session.execute(
                sa.insert(table).values(
                    platform=platform,
                    cloud_id=machine.cloud_id,
                    resource=machine.resource,
                    slot=machine.slot,
                    since=from_epoch(now),
                )
            )


async def unprotect(db: Database, platform: str, cloud_id: str) -> bool:
    table = tables.infra_protection
    async with db.begin() as session:
        done = await session.execute(
            sa.delete(table).where(table.c.platform == platform, table.c.cloud_id == cloud_id)
        )
    return bool(getattr(done, "rowcount", 0))


async def desired(db: Database, name: str = ACCEPTED) -> DesiredRecord | None:
    table = tables.infra_desired
    async with db.session() as session:
        row = (await session.execute(sa.select(table).where(table.c.name == name))).first()
    if row is None:
        return None
    raw = row.desired or {}
    return DesiredRecord(
        desired=Desired.from_specs(raw.get("platforms", []), raw.get("resources", [])),
        reason=row.reason,
        version=row.version,
        updated_at=row.updated_at.timestamp(),
        raw=raw,
    )


async def put_desired(
    db: Database,
    name: str,
    value: Desired,
    *,
    now: float,
    reason: str = "",
    version: int | None = None,
) -> None:
    table = tables.infra_desired
    values = {
        "desired": value.to_json(),
        "reason": reason,
        "version": version,
        "updated_at": from_epoch(now),
    }
    async with db.begin() as session:
        done = await session.execute(sa.update(table).where(table.c.name == name).values(**values))
        if not getattr(done, "rowcount", 0):
            await session.execute(sa.insert(table).values(name=name, **values))


async def drop_desired(db: Database, name: str) -> bool:
    table = tables.infra_desired
    async with db.begin() as session:
        done = await session.execute(sa.delete(table).where(table.c.name == name))
    return bool(getattr(done, "rowcount", 0))
