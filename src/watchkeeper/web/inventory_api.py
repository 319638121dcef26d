"""``/api/v1`` reads of what the manager watches: overview, hosts, zones, workers, config diff.

Thin routes over the read models of `watchkeeper.web.views` (memory only, one pass) and,
for the diff, the store's stored documents (`watchkeeper.document.compare`). Viewers may
read all of it. A bad argument is a 422 naming it; an unknown host or version a 404.
A slot host (``web-2`` of resource ``web``) has no address in the document: with the
infrastructure port, its address is its machine's, and its detail names that machine.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from watchkeeper import store
from watchkeeper.document import compare
from watchkeeper.errors import NotFound
from watchkeeper.web import views
from watchkeeper.web.listing import MAX_ID, Listing, Offset, whole
from watchkeeper.web.ports import Infra, ReadModel
from watchkeeper.web.security import Principal

#: The largest page a list route gives.
MAX_LIMIT = 10_000

#: A route dependency that admits callers with a role and returns who they are.
Requirement = Callable[..., Awaitable[Principal]]
Sort = Literal["name", "severity", "age", "recent"]


class ErrorOut(BaseModel):
    """An error: a message naming the argument at fault (FastAPI's own request validation
    gives a list of problems, each with its location, instead)."""

    detail: str | list[dict[str, Any]]


#: The error answers of a route that checks its arguments itself as well.
ERRORS: dict[int | str, dict[str, Any]] = {422: {"model": ErrorOut}}


class ServiceOut(BaseModel):
    """One check now (`views.ServiceRow`)."""

    key: str
    host: str
    service: str | None
    zone: str
    state: str
    state_type: str
    attempt: int
    max_attempts: int
    output: str
    last_check: float | None
    last_state_change: float
    next_check: float | None
    acknowledged: bool
    in_downtime: bool
    flapping: bool
    stale: bool
    #: Why its latest runs did not happen (no worker could take them), or "": its state
    #: and output are then those of its last real result.
    not_run: str
    host_problem: bool
    silenced: str | None
    alarm_id: int | None
    severity: int


class ServicePage(BaseModel):
    total: int
    offset: int
    limit: int
    items: list[ServiceOut]


class HostOut(BaseModel):
    """One host now (`views.HostRow`)."""

    name: str
    address: str
    zone: str
    labels: dict[str, str]
    state: str
    output: str
    last_state_change: float | None
    services: dict[str, int]
    has_check: bool
    in_downtime: bool


class HostPage(BaseModel):
    total: int
    offset: int
    limit: int
    items: list[HostOut]


class HostDetail(HostOut):
    checks: list[ServiceOut]
    #: The machine filling a slot host (platform, cloud_id, state, size, address, ...);
    #: null for other hosts and for a slot no machine fills yet.
    machine: dict[str, Any] | None = None


class Overview(BaseModel):
    """Counts by state and the problems, worst and most urgent first (`views.problems`)."""

    services: dict[str, int]
    hosts: dict[str, int]
    #: Problems that are HARD, not acknowledged, not in downtime, their host up.
    unhandled: int
    problems: list[ServiceOut]
    #: Zones without a worker past the grace: their checks are not run.
    offline_zones: list[ZoneOut]


class ZoneOut(BaseModel):
    """A zone: its checks, its workers, and whether the checks can run (`views.ZoneRow`)."""

    name: str
    hosts: int
    checks: int
    workers_online: int
    #: online; waiting (no worker, within the grace: checks held); offline (no worker past
    #: the grace: checks not run, an alarm ``zone:NAME`` open).
    health: str
    #: Epoch seconds since it has had no worker; null while it has one.
    no_worker_since: float | None
    #: Its checks whose latest runs did not happen.
    not_run: int
    #: Slots its connected workers offer now (a worker of several zones counts in each).
    capacity: int
    #: Of those slots, how many hold a job now.
    in_use: int
    #: What the health does not say: ``zone NAME has 1 worker: no failover`` for a zone with
    #: checks and a single worker (none at all is its health: waiting, then offline).
    warnings: list[str]


class WorkerOut(BaseModel):
    """A connected worker: what it is enrolled for, what it claims, and how busy it is."""

    name: str
    zones: list[str]
    labels: dict[str, str]
    agent_for: str | None
    claimed_zones: list[str]
    claimed_labels: dict[str, str]
    version: str
    concurrency: int
    #: Slots it offers now: ``concurrency``, or fewer while under pressure (``reason``).
    capacity: int
    in_flight: int
    load: float
    #: Epoch seconds of its last message.
    last_seen: float
    accepting: bool
    #: Why it refuses jobs, when it does.
    reason: str
    draining: bool


class FieldChangeOut(BaseModel):
    pointer: str
    change: Literal["added", "removed", "changed"]
    old: Any = None
    new: Any = None


class ObjectChangeOut(BaseModel):
    name: str
    fields: list[FieldChangeOut]


class SectionDiffOut(BaseModel):
    section: str
    added: list[str]
    removed: list[str]
    changed: list[ObjectChangeOut]


class DiffOut(BaseModel):
    """How version ``to`` differs from version ``from``."""

    from_version: int
    to_version: int
    sections: list[SectionDiffOut]
    fields: list[FieldChangeOut]


def service_out(row: views.ServiceRow) -> ServiceOut:
    return ServiceOut.model_validate(row, from_attributes=True)


def host_out(row: views.HostRow, infra: Infra | None = None) -> HostOut:
    """A host; a slot host's (empty) document address is its machine's, when it has one."""
    out = HostOut.model_validate(row, from_attributes=True)
    if infra is not None and not out.address:
        out.address = infra.address(row.name) or ""
    return out


def states_arg(values: list[str] | None) -> list[str]:
    """``?state=A&state=B`` and ``?state=A,B`` alike."""
    return [part.strip() for value in values or () for part in value.split(",") if part.strip()]


def inventory_router(
    read: ReadModel, *, viewer: Requirement, infra: Infra | None = None
) -> APIRouter:
    """Overview, hosts, zones and workers of the running manager, for viewers; ``infra``
    gives slot hosts their machines' addresses."""
    api = APIRouter(prefix="/api/v1", dependencies=[Depends(viewer)], tags=["inventory"])

    @api.get("/overview", response_model=Overview)
    async def overview(
        limit: int = Query(200, ge=0, le=MAX_LIMIT, description="most problems listed"),
    ) -> Overview:
        found = views.overview(read, now=time.time(), limit=limit)
        return Overview(
            services=found.services,
            hosts=found.hosts,
            unhandled=found.unhandled,
            problems=[service_out(r) for r in found.problems],
            offline_zones=[
                ZoneOut.model_validate(z, from_attributes=True) for z in found.offline_zones
            ],
        )

    @api.get("/hosts", response_model=HostPage, responses=ERRORS)
    async def hosts(
        q: str | None = Query(None, description="part of the name or the address"),
        zone: str | None = None,
        state: Annotated[
            list[str] | None, Query(description="UP, DOWN, UNREACHABLE, PENDING (repeat or A,B)")
        ] = None,
        offset: Offset = 0,
        limit: int = Query(100, ge=1, le=MAX_LIMIT),
    ) -> HostPage:
        page = views.host_rows(
            read,
            now=time.time(),
            q=q,
            zone=zone,
            states=states_arg(state),
            offset=offset,
            limit=limit,
        )
        return HostPage(
            total=page.total,
            offset=page.offset,
            limit=page.limit,
            items=[host_out(h, infra) for h in page.items],
        )

    @api.get("/hosts/{name}", response_model=HostDetail, responses={404: {"model": ErrorOut}})
    async def host(name: str) -> HostDetail:
        found = views.host_detail(read, name, now=time.time())
        if found is None:
            raise NotFound(f"no host {name!r}")
        row, checks = found
        return HostDetail(
            **host_out(row, infra).model_dump(),
            checks=[service_out(c) for c in checks],
            machine=infra.host_machine(name) if infra is not None else None,
        )

    @api.get("/zones", response_model=Listing[ZoneOut])
    async def zones() -> dict[str, Any]:
        rows = views.zone_rows(read)
        return whole([ZoneOut.model_validate(z, from_attributes=True) for z in rows])

    @api.get("/workers", response_model=Listing[WorkerOut])
    async def workers() -> dict[str, Any]:
        rows = views.worker_rows(read)
        return whole([WorkerOut.model_validate(w, from_attributes=True) for w in rows])

    return api


def config_diff_router(db: store.Database, *, viewer: Requirement) -> APIRouter:
    """``GET /api/v1/config/diff``: needs only the store, so it is served without a runner."""
    api = APIRouter(prefix="/api/v1", dependencies=[Depends(viewer)], tags=["config"])

    @api.get("/config/diff", response_model=DiffOut, responses={404: {"model": ErrorOut}})
    async def config_diff(
        from_version: int = Query(alias="from", ge=1, le=MAX_ID, description="the older version"),
        to_version: int = Query(alias="to", ge=1, le=MAX_ID, description="the newer version id"),
    ) -> DiffOut:
        async with db.session() as session:
            old = await _document(session, "from", from_version)
            new = await _document(session, "to", to_version)
        found_diff = compare.config_diff(old, new)
        return DiffOut.model_validate(
            {
                "from_version": from_version,
                "to_version": to_version,
                "sections": found_diff.sections,
                "fields": found_diff.fields,
            },
            from_attributes=True,
        )

    return api


async def _document(session: AsyncSession, argument: str, version_id: int) -> dict[str, Any]:
    found = await store.get_version(session, version_id)
    if found is None or found.document is None:
        raise NotFound(f"{argument}: no version {version_id}")
    return found.document
