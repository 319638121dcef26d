"""The REST API of the running system: checks, history, metrics, alarms, remediation.

Reads come from the read model (current states, open alarms) or the store (history,
series, audit); operator actions go through the operations port, whose stages validate
and persist them. A bad argument is a 422 naming it; an unknown check, alarm, downtime or
job a 404; an action that no longer applies a 409 (`watchkeeper.web.errors`)."""

from __future__ import annotations

import dataclasses
import enum
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, status
from pydantic import BaseModel, Field

from watchkeeper import store
from watchkeeper.alarms import repository as alarm_store
from watchkeeper.document.normalize import CheckRecord
from watchkeeper.engine import CheckStatus
from watchkeeper.errors import InvalidArgument, NotFound
from watchkeeper.jobs.states import JobState
from watchkeeper.notify import repository as delivery_store
from watchkeeper.remediation import records as remediation_records
from watchkeeper.telemetry import repository as telemetry_store
from watchkeeper.telemetry.rollup import Tier
from watchkeeper.web import views
from watchkeeper.web.inventory_api import ERRORS, ServicePage, Sort, service_out, states_arg
from watchkeeper.web.listing import Listing, Offset, PathId, QueryId, listing, whole
from watchkeeper.web.ports import WebPorts
from watchkeeper.web.security import Principal
from watchkeeper.web.security.guard import STATE_KEY

#: A route dependency that admits callers with a role and returns who they are.
Requirement = Callable[..., Awaitable[Principal]]

DAY = 86_400.0


def jsonable(value: Any) -> Any:
    """Dataclasses, enums and containers as JSON values (enums by value)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value if not isinstance(value.value, int) else value.name
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def check_out(
    record: CheckRecord, status_: CheckStatus, next_check: float | None
) -> dict[str, Any]:
    return {
        "key": status_.key,
        "host": record.host,
        "service": record.service,
        "zone": record.zone,
        "state": "PENDING" if status_.pending else status_.state.name,
        "state_type": status_.state_type.value.upper(),
        "attempt": status_.attempt,
        "max_attempts": record.spec.get("max_attempts"),
        "output": status_.output,
        "stale": status_.stale,
        "host_problem": status_.host_problem,
        "last_check": status_.last_check,
        "last_state_change": status_.last_state_change,
        "next_check": next_check,
    }


class AcknowledgeIn(BaseModel):
    comment: str = Field(min_length=1, max_length=4000)
    sticky: bool = True
    #: Epoch seconds; the acknowledgement ends then even if the problem does not.
    expires: float | None = None


class DowntimeIn(BaseModel):
    host: str = Field(min_length=1)
    service: str | None = None
    #: Epoch seconds.
    start: float
    end: float
    comment: str = Field(min_length=1, max_length=4000)


class SkipIn(BaseModel):
    reason: str = Field(default="", max_length=4000)


def author(request: Request) -> str:
    """Who is acting: the principal the route's operator requirement admitted."""
    principal = getattr(request.state, STATE_KEY, None)
    return principal.name if isinstance(principal, Principal) else "unknown"


def operations_router(
    db: store.Database,
    ports: WebPorts,
    *,
    viewer: Requirement,
    operator: Requirement,
) -> APIRouter:
    """The routes under ``/api/v1`` for checks, alarms, downtimes, remediation, deliveries.

    Every route needs ``viewer``; the operator actions need ``operator``, whose principal
    is recorded as the author.
    """
    api = APIRouter(prefix="/api/v1", dependencies=[Depends(viewer)])
    acts = [Depends(operator)]
    read, ops = ports.read, ports.ops

    def known(key: str) -> tuple[CheckRecord, CheckStatus]:
        found = read.check(key)
        if found is None:
            raise NotFound(f"no check {key!r}")
        return found

    # --- checks -----------------------------------------------------------------------------

    @api.get("/checks", response_model=ServicePage, responses=ERRORS)
    async def checks(
        q: str | None = Query(None, description="part of the key or the output, any case"),
        host: str | None = None,
        zone: str | None = None,
        state: Annotated[
            list[str] | None,
            Query(description="OK, WARNING, CRITICAL, UNKNOWN, PENDING (repeat or A,B)"),
        ] = None,
        problems: bool = Query(False, description="only non-OK checks"),
        unhandled: bool = Query(
            False, description="only HARD problems not acknowledged, in downtime or host-down"
        ),
        sort: Annotated[
            Sort, Query(description="name, severity, age (oldest first), recent")
        ] = "name",
        limit: int = Query(500, ge=1, le=10_000),
        offset: Offset = 0,
    ) -> ServicePage:
        page = views.service_rows(
            read,
            now=time.time(),
            q=q,
            host=host,
            zone=zone,
            states=states_arg(state),
            problems=problems,
            unhandled=unhandled,
            sort=sort,
            offset=offset,
            limit=limit,
        )
        return ServicePage(
            total=page.total,
            offset=page.offset,
            limit=page.limit,
            items=[service_out(row) for row in page.items],
        )

    @api.get("/checks/{key}")
    async def check(key: str) -> dict[str, Any]:
        record, status_ = known(key)
        item = check_out(record, status_, read.next_due(key))
        item["silenced"] = read.silenced(key, time.time())
        return item

    @api.post("/checks/{key}/check-now", status_code=status.HTTP_202_ACCEPTED, dependencies=acts)
    async def check_now(key: str, request: Request) -> dict[str, Any]:
        known(key)
        ops.check_now(key)
        return {"key": key, "queued": True}

    @api.get("/checks/{key}/history", response_model=Listing[dict[str, Any]])
    async def history(
        key: str,
        limit: int = Query(100, ge=1, le=1000),
        offset: Offset = 0,
        before_id: QueryId = None,
    ) -> dict[str, Any]:
        async with db.session() as session:
            page = await store.page_state_history(
                session, check_key=key, limit=limit, offset=offset, before_id=before_id
            )
        items = [jsonable(e) for e in page.items]
        return listing(items, total=page.total, offset=offset, limit=limit)

    @api.get("/checks/{key}/metrics", response_model=Listing[dict[str, Any]])
    async def metrics(key: str) -> dict[str, Any]:
        async with db.session() as session:
            found = await telemetry_store.list_metrics(session, key)
        return whole([jsonable(m) for m in found])

    @api.get("/checks/{key}/metrics/{metric}", responses=ERRORS)
    async def series(
        key: str,
        metric: str,
        start: float | None = Query(None, description="epoch seconds; default end - 1 day"),
        end: float | None = Query(None, description="epoch seconds; default now"),
        tier: Annotated[
            Tier | None, Query(description="raw, 5m or 1h; default: by the range")
        ] = None,
    ) -> dict[str, Any]:
        until = time.time() if end is None else end
        since = until - DAY if start is None else start
        if since >= until:
            raise InvalidArgument("start", "must be before end")
        async with db.session() as session:
            found = await telemetry_store.query_series(
                session,
                key,
                metric,
                since,
                until,
                tier=tier,
                retention=read.retention,
            )
        if not found.found:
            raise NotFound(f"no metric {metric!r} of {key!r}")
        return jsonable(found)  # type: ignore[no-any-return]

    # --- alarms and acknowledgements --------------------------------------------------------

    @api.get("/alarms", response_model=Listing[dict[str, Any]])
    async def alarm_list(
        open_only: bool = Query(True, alias="open"),
        key: str | None = None,
        host: str | None = None,
        limit: int = Query(100, ge=1, le=1000),
        offset: Offset = 0,
        before_id: QueryId = None,
    ) -> dict[str, Any]:
        page = await read.page_alarms(
            open_only=open_only, key=key, host=host, limit=limit, offset=offset,
            before_id=before_id,
        )  # fmt: skip
        items = [jsonable(a) | {"phase": a.phase.value} for a in page.items]
        return listing(items, total=page.total, offset=offset, limit=limit)

    @api.get("/alarms/{alarm_id}")
    async def alarm(alarm_id: PathId) -> dict[str, Any]:
        async with db.session() as session:
            found = await alarm_store.get_alarm(session, alarm_id)
        if found is None:
            raise NotFound(f"no alarm {alarm_id}")
        events = await read.alarm_events(alarm_id)
        out: dict[str, Any] = jsonable(found)
        return out | {"phase": found.phase.value, "events": jsonable(events)}

    @api.post("/checks/{key}/acknowledge", dependencies=acts, responses=ERRORS)
    async def acknowledge(key: str, body: AcknowledgeIn, request: Request) -> list[dict[str, Any]]:
        known(key)
        acked = await ops.acknowledge(
            key, author(request), body.comment, sticky=body.sticky, expires=body.expires
        )
        return [jsonable(a) for a in acked]

    @api.delete("/checks/{key}/acknowledge", dependencies=acts)
    async def unacknowledge(key: str, request: Request) -> list[dict[str, Any]]:
        known(key)
        return [jsonable(a) for a in await ops.unacknowledge(key)]

    # --- downtimes --------------------------------------------------------------------------

    @api.get("/downtimes", response_model=Listing[dict[str, Any]])
    async def downtimes(include_past: bool = False) -> dict[str, Any]:
        return whole([jsonable(d) for d in await read.list_downtimes(include_past=include_past)])

    @api.post(
        "/downtimes", status_code=status.HTTP_201_CREATED, dependencies=acts, responses=ERRORS
    )
    async def schedule(body: DowntimeIn, request: Request) -> dict[str, Any]:
        made = await ops.schedule_downtime(
            body.host, body.service, body.start, body.end, author(request), body.comment
        )
        return jsonable(made)  # type: ignore[no-any-return]

    @api.delete("/downtimes/{downtime_id}", dependencies=acts)
    async def cancel(downtime_id: PathId, request: Request) -> dict[str, Any]:
        return jsonable(await ops.cancel_downtime(downtime_id))  # type: ignore[no-any-return]

    # --- remediation ------------------------------------------------------------------------

    @api.get("/remediation/jobs", response_model=Listing[dict[str, Any]], responses=ERRORS)
    async def remediation_jobs(
        state: Annotated[list[str] | None, Query()] = None,
        rule: str | None = None,
        target: str | None = None,
        limit: int = Query(100, ge=1, le=1000),
        offset: Offset = 0,
    ) -> dict[str, Any]:
        try:
            states = None if state is None else [JobState(s) for s in state]
        except ValueError as exc:
            raise InvalidArgument("state", str(exc)) from exc
        queue = read.remediation_queue
        jobs = await remediation_records.list_jobs(
            queue, states=states, rule=rule, target=target, limit=limit, offset=offset
        )
        total = await queue.count_jobs(states=states, owner=rule, subject=target)
        return listing([j.as_dict() for j in jobs], total=total, offset=offset, limit=limit)

    @api.get("/remediation/jobs/{job_id}")
    async def remediation_job(job_id: PathId) -> dict[str, Any]:
        job = await remediation_records.get_job(read.remediation_queue, job_id)
        if job is None:
            raise NotFound(f"no remediation job {job_id}")
        audit = await read.remediation_queue.list_audit(job_id=job_id, limit=1000)
        trail = [remediation_records.audit_dict(a) for a in reversed(audit)]
        return job.as_dict() | {"audit": trail}

    @api.get("/remediation/audit", response_model=Listing[dict[str, Any]])
    async def remediation_audit(
        rule: str | None = None,
        target: str | None = None,
        limit: int = Query(100, ge=1, le=1000),
        offset: Offset = 0,
        before_id: QueryId = None,
    ) -> dict[str, Any]:
        queue = read.remediation_queue
        entries = await queue.list_audit(
            owner=rule, subject=target, limit=limit, offset=offset, before_id=before_id
        )
        total = await queue.count_audit(owner=rule, subject=target, before_id=before_id)
        items = [remediation_records.audit_dict(e) for e in entries]
        return listing(items, total=total, offset=offset, limit=limit)

    @api.post("/remediation/jobs/{job_id}/run", dependencies=acts)
    async def run_pending(job_id: PathId, request: Request) -> dict[str, Any]:
        return (await ops.run_pending(job_id, author(request))).as_dict()

    @api.post("/remediation/jobs/{job_id}/skip", dependencies=acts)
    async def skip_pending(job_id: PathId, body: SkipIn, request: Request) -> dict[str, Any]:
        return (await ops.skip_pending(job_id, author(request), body.reason)).as_dict()

    # --- notifications ----------------------------------------------------------------------

    @api.get("/notifications/deliveries", response_model=Listing[dict[str, Any]])
    async def deliveries(
        key: str | None = None,
        channel: str | None = None,
        success: bool | None = None,
        limit: int = Query(100, ge=1, le=1000),
        offset: Offset = 0,
        before_id: QueryId = None,
    ) -> dict[str, Any]:
        async with db.session() as session:
            page = await delivery_store.page_deliveries(
                session, key=key, channel=channel, success=success, limit=limit,
                offset=offset, before_id=before_id,
            )  # fmt: skip
        items = [d.as_dict() for d in page.items]
        return listing(items, total=page.total, offset=offset, limit=limit)

    return api
