"""The pages of what is running now: overview, services, hosts, one host, one service,
and the infrastructure.

Lists come from the read models in `watchkeeper.web.views` (memory only; one page of
rows is built per request), the service page adds the stored state history and the
metric list. Live blocks (counts, problems, a list's table, a service's state) are the
same templates rendered alone: htmx polls them, so a refresh costs one read-model call.
The infrastructure page and a slot host's machine line read the `Infra` port, and the
page's deployments part the `Deploy` port (`infra_ui_router`, served with or without
either: without, the page says so).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response, status

from watchkeeper import store
from watchkeeper.errors import NotFound
from watchkeeper.jobs.states import JobState
from watchkeeper.telemetry import repository as telemetry_store
from watchkeeper.web import views
from watchkeeper.web.listing import MAX_ID
from watchkeeper.web.ports import Deploy, Infra, ReadModel
from watchkeeper.web.security import Principal, Role, Security
from watchkeeper.web.ui.actions import deploy_actions_router, infra_actions_router
from watchkeeper.web.ui.formatting import split_output
from watchkeeper.web.ui.requirements import Requirement, principal_of
from watchkeeper.web.ui.templating import is_htmx, render

#: Rows per page of the service and host lists.
PAGE_SIZE = 100
#: The overview lists at most this many problems (the service list has them all).
PROBLEMS_SHOWN = 200
#: State history entries shown on a host or service page.
HISTORY_SHOWN = 50
#: The graph ranges the service page offers, in seconds; the API picks the tier by range.
RANGES = {"6h": 6 * 3600, "1d": 86_400, "7d": 7 * 86_400, "30d": 30 * 86_400, "1y": 365 * 86_400}
DEFAULT_RANGE = "1d"
SORT_LABELS = {"name": "name", "severity": "severity", "age": "oldest change", "recent": "newest"}
#: Infrastructure operations shown: the latest, and those waiting for an operator.
OPERATIONS_SHOWN = 50
PENDING_SHOWN = 100


def _states(values: list[str] | None) -> list[str]:
    """``state=CRITICAL&state=WARNING`` or ``state=CRITICAL,WARNING``, upper-cased."""
    found: list[str] = []
    for value in values or []:
        found.extend(part.strip().upper() for part in value.split(",") if part.strip())
    return found


def _blank(value: str | None) -> str | None:
    return value if value else None


def pages_router(db: store.Database, read: ReadModel, *, viewer: Requirement) -> APIRouter:
    """``/``, ``/services``, ``/hosts``, ``/hosts/{name}``, ``/services/{key}`` and parts."""
    router = APIRouter(dependencies=[Depends(viewer)], include_in_schema=False)

    def overview_context() -> dict[str, Any]:
        # One pass over the checks for counts and problems: the page everyone keeps open.
        summary = views.overview(read, now=time.time(), limit=PROBLEMS_SHOWN)
        rows = summary.problems
        unhandled = [r for r in rows if r.state_type == "HARD" and not r.handled]
        others = [r for r in rows if not (r.state_type == "HARD" and not r.handled)]
        return {
            "service_counts": summary.services,
            "host_counts": summary.hosts,
            "unhandled": unhandled,
            "others": others,
            "shown_limit": PROBLEMS_SHOWN,
            "offline_zones": summary.offline_zones,
        }

    @router.get("/")
    async def overview(request: Request) -> Response:
        return render(request, "ui/overview.html", principal_of(request), **overview_context())

    @router.get("/parts/overview")
    async def overview_part(request: Request) -> Response:
        return render(
            request, "ui/parts/overview_live.html", principal_of(request), **overview_context()
        )

    def list_page(
        request: Request, kind: str, found: views.Page[Any], page: int, **context: Any
    ) -> Response:
        """A page of the service or host list; htmx asks for the table alone (live updates)."""
        template = f"ui/parts/{kind[:-1]}_table.html" if is_htmx(request) else f"ui/{kind}.html"
        return render(
            request,
            template,
            principal_of(request),
            rows=found,
            page=page,
            pages=max(1, -(-found.total // PAGE_SIZE)),
            zones=sorted(read.zones),  # the zones checks run in: no walk over the checks
            **context,
        )

    @router.get("/services")
    async def services(
        request: Request,
        q: str | None = None,
        state: Annotated[list[str] | None, Query()] = None,
        host: str | None = None,
        zone: str | None = None,
        unhandled: bool = False,
        sort: str = "name",
        page: Annotated[int, Query(ge=1, le=MAX_ID)] = 1,
    ) -> Response:
        wanted = _states(state)
        found = views.service_rows(
            read,
            now=time.time(),
            q=_blank(q),
            host=_blank(host),
            zone=_blank(zone),
            states=wanted,
            unhandled=unhandled,
            sort=sort,
            offset=(page - 1) * PAGE_SIZE,
            limit=PAGE_SIZE,
        )
        return list_page(
            request, "services", found, page,
            filters={"q": q or "", "state": wanted, "host": host or "", "zone": zone or "",
                     "unhandled": unhandled, "sort": sort},
            sorts=SORT_LABELS,
        )  # fmt: skip

    @router.get("/hosts")
    async def hosts(
        request: Request,
        q: str | None = None,
        state: Annotated[list[str] | None, Query()] = None,
        zone: str | None = None,
        page: Annotated[int, Query(ge=1, le=MAX_ID)] = 1,
    ) -> Response:
        wanted = _states(state)
        found = views.host_rows(
            read,
            now=time.time(),
            q=_blank(q),
            zone=_blank(zone),
            states=wanted,
            offset=(page - 1) * PAGE_SIZE,
            limit=PAGE_SIZE,
        )
        filters = {"q": q or "", "state": wanted, "zone": zone or ""}
        return list_page(request, "hosts", found, page, filters=filters)

    @router.get("/hosts/{name}")
    async def host(request: Request, name: str) -> Response:
        principal = principal_of(request)
        now = time.time()
        found = views.host_detail(read, name, now=now)
        if found is None:
            return _not_found(request, principal, f"No host {name!r} is running.")
        row, checks = found
        own = next((c for c in checks if c.service is None), None)
        async with db.session() as session:
            # The host's own states (UP, DOWN): its host check's results are on its page.
            history = await store.list_state_history(
                session, check_key=name, kind=store.HistoryKind.HOST, limit=HISTORY_SHOWN
            )
        downtimes = [d for d in await read.list_downtimes() if d.host == name]
        if is_htmx(request):
            return render(
                request, "ui/parts/host_checks.html", principal, host=row, checks=checks, own=own
            )
        return render(
            request,
            "ui/host.html",
            principal,
            host=row,
            checks=checks,
            own=own,
            history=history,
            downtimes=downtimes,
        )

    @router.get("/services/{key}")
    async def service(
        request: Request, key: str, range_: Annotated[str, Query(alias="range")] = DEFAULT_RANGE
    ) -> Response:
        principal = principal_of(request)
        row = views.service_detail(read, key, now=time.time())
        if row is None:
            return _not_found(request, principal, f"No check {key!r} is running.")
        async with db.session() as session:
            history = await store.list_state_history(
                session, check_key=key, kind=store.HistoryKind.CHECK, limit=HISTORY_SHOWN
            )
            metrics = await telemetry_store.list_metrics(session, key)
        alarms = await read.list_alarms(open_only=True, key=key)
        downtimes = [d for d in await read.list_downtimes() if d.covers(row.host, row.service)]
        found_check = read.check(key)
        if found_check is None:
            return _not_found(request, principal, f"No check {key!r} is running.")
        record = found_check[0]
        labels = record.spec.get("labels") or {}
        return render(
            request,
            "ui/service.html",
            principal,
            row=row,
            output=split_output(row.output),
            history=history,
            metrics=metrics,
            alarms=alarms,
            downtimes=downtimes,
            labels={str(k): str(v) for k, v in labels.items()},
            interval=record.spec.get("interval"),
            ranges=list(RANGES),
            graph_range=range_ if range_ in RANGES else DEFAULT_RANGE,
            range_seconds=RANGES.get(range_, RANGES[DEFAULT_RANGE]),
        )

    @router.get("/parts/services/{key}/state")
    async def service_state(request: Request, key: str) -> Response:
        principal = principal_of(request)
        row = views.service_detail(read, key, now=time.time())
        if row is None:
            return _not_found(request, principal, f"No check {key!r} is running.")
        alarms = await read.list_alarms(open_only=True, key=key)
        return render(
            request,
            "ui/parts/service_state.html",
            principal,
            row=row,
            output=split_output(row.output),
            alarms=alarms,
        )

    return router


def _not_found(request: Request, principal: Principal, message: str) -> Response:
    return render(
        request, "ui/not_found.html", principal, status_code=status.HTTP_404_NOT_FOUND,
        message=message,
    )  # fmt: skip


def _dated(item: Mapping[str, Any]) -> dict[str, Any]:
    """An `Infra` answer with its ISO times (``at``, ``*_at``, ``*_until``) as datetimes,
    which the templates' ``when`` and ``timestamp`` take."""
    out = dict(item)
    for key, value in item.items():
        if isinstance(value, str) and value and (key == "at" or key.endswith(("_at", "_until"))):
            with contextlib.suppress(ValueError):
                out[key] = datetime.fromisoformat(value)
    return out


def infra_ui_router(
    infra: Infra | None, security: Security, *, deploy: Deploy | None = None
) -> APIRouter:
    """``/infrastructure`` and a slot host's machine line (viewer), and the buttons behind
    them (operator; an agent key's approve and reject: admin); ``infra`` and ``deploy``
    are None when the manager runs no infrastructure or deployment stage."""
    viewer = security.require(Role.VIEWER, page=True)
    operator = security.require(Role.OPERATOR, page=True)
    admin = security.require(Role.ADMIN, page=True)
    router = APIRouter(include_in_schema=False)
    router.include_router(infra_actions_router(infra, operator=operator))
    router.include_router(deploy_actions_router(deploy, operator=operator, admin=admin))
    router.include_router(infra_pages_router(infra, viewer=viewer, deploy=deploy))
    return router


async def _deploy_context(deploy: Deploy | None, principal: Principal) -> dict[str, Any]:
    """The page's deployments part: None (no stage), or each deployment with its hosts,
    and the agent keys waiting for an admin (with the buttons for admins only)."""
    if deploy is None:
        return {"deployments": None, "agent_keys": [], "can_approve": False}
    return {
        "deployments": [
            d | {"hosts": [_dated(h) for h in d["hosts"]]} for d in deploy.deployments()
        ],
        "agent_keys": [_dated(k) for k in await deploy.pending_keys()],
        "can_approve": principal.allows(Role.ADMIN),
    }


def infra_pages_router(
    infra: Infra | None, *, viewer: Requirement, deploy: Deploy | None = None
) -> APIRouter:
    """``/infrastructure[?op=ID]`` and ``/parts/hosts/{name}/machine``."""
    router = APIRouter(dependencies=[Depends(viewer)], include_in_schema=False)

    @router.get("/infrastructure")
    async def infrastructure(
        request: Request, op: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None
    ) -> Response:
        principal = principal_of(request)
        deployments = await _deploy_context(deploy, principal)
        if infra is None:
            return render(
                request, "ui/infrastructure.html", principal, available=False, **deployments
            )
        pending, _ = await infra.operations(states=[JobState.PENDING], limit=PENDING_SHOWN)
        latest, total = await infra.operations(limit=OPERATIONS_SHOWN)
        chosen = None
        if op is not None:
            try:
                found = await infra.operation(op)
            except NotFound as exc:
                return _not_found(request, principal, exc.message)
            chosen = _dated(found) | {"audit": [_dated(a) for a in found.get("audit", ())]}
        return render(
            request,
            "ui/infrastructure.html",
            principal,
            available=True,
            platforms=[_dated(p) for p in infra.platforms()],
            resources=infra.resources(),
            plans=infra.plans(),
            hold=infra.hold(),
            pending=[_dated(j) for j in pending],
            operations=[_dated(j) for j in latest],
            operations_total=total,
            chosen=chosen,
            **deployments,
        )

    @router.get("/parts/hosts/{name}/machine")
    async def host_machine(request: Request, name: str) -> Response:
        """The line a slot host's page shows (htmx); 204, nothing drawn, for any other."""
        machine = infra.host_machine(name) if infra is not None else None
        if machine is None:
            return Response(status_code=status.HTTP_204_NO_CONTENT)
        return render(
            request,
            "ui/parts/host_machine.html",
            principal_of(request),
            host_name=name,
            machine=machine,
        )

    return router
