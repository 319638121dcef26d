"""The REST API of the configuration: versions, rejected candidates, sources, and push.

Routes are thin: they call the store's repository functions and the same intake that polled
candidates go through, and turn domain values into response models.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from watchkeeper import __version__, store
from watchkeeper.web import views
from watchkeeper.web.accounts_api import create_accounts_router
from watchkeeper.web.deploy_api import deploy_router
from watchkeeper.web.errors import install_error_handlers
from watchkeeper.web.infra_api import infra_router
from watchkeeper.web.inventory_api import config_diff_router, inventory_router
from watchkeeper.web.listing import Listing, Offset, PathId, listing, whole
from watchkeeper.web.login import create_login_router
from watchkeeper.web.metrics import metrics_router
from watchkeeper.web.operations import operations_router
from watchkeeper.web.ports import Cluster, Intake, WebPorts
from watchkeeper.web.security import Role, Security
from watchkeeper.web.standby import standby_gate

#: A pushed candidate larger than this is refused with 413 before it is read whole.
MAX_PUSH_BYTES = 64 * 1024 * 1024


class ProblemOut(BaseModel):
    pointer: str
    message: str
    severity: Literal["error", "warning"]


class VersionOut(BaseModel):
    id: int
    content_hash: str
    source: str
    created_at: datetime
    summary: dict[str, Any]
    warnings: list[dict[str, Any]] = Field(default_factory=list)


class VersionDetail(VersionOut):
    document: dict[str, Any] | None = None


class RejectionOut(BaseModel):
    id: int
    content_hash: str | None
    source: str
    first_seen: datetime
    last_seen: datetime
    times: int
    problems: list[dict[str, Any]]


class HealthOut(BaseModel):
    status: Literal["ok"]
    version: str


class SourceOut(BaseModel):
    name: str
    ok: bool
    last_attempt: datetime | None
    last_success: datetime | None
    last_error: str | None
    consecutive_failures: int


class PushResult(BaseModel):
    accepted: bool
    created: bool
    version: int | None
    content_hash: str
    summary: dict[str, Any] | None
    problems: list[ProblemOut]


def _version(v: store.ConfigVersion) -> VersionOut:
    return VersionOut(
        id=v.id,
        content_hash=v.content_hash,
        source=v.source,
        created_at=v.created_at,
        summary=v.summary,
        warnings=list(v.warnings),
    )


def create_app(
    db: store.Database,
    intake: Intake,
    token: str,
    *,
    ports: WebPorts | None = None,
    security: Security | None = None,
    cluster: Cluster | None = None,
) -> FastAPI:
    """Build the API; every route but the login form requires a caller with a role.

    Callers are users (a session cookie, or one of their API tokens) or scripts holding
    the manager's token (``token``, an admin). Viewers read; operators act (acknowledge,
    downtime, check now, remediation); admins push documents and manage users.

    With the ``ports`` of a running manager (`watchkeeper.web.ports`), the API also serves
    checks, history, metrics, alarms, downtimes, remediation and deliveries, the
    infrastructure and the deployments (when the ports have them), ``/metrics`` for
    Prometheus, and the pages. With the ``cluster`` of a clustered manager, a standby
    refuses leader-only requests (`watchkeeper.web.standby`) and ``/api/v1/cluster`` tells
    who leads.
    """
    security = security or Security(db, manager_token=token)
    gates = []
    if cluster is not None and cluster.ha:
        gates.append(
            Depends(
                standby_gate(
                    security, cluster.may_write, lambda: (cluster.leader, cluster.leader_url)
                )
            )
        )
    app = FastAPI(
        title="Watchkeeper API",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # served below, behind a login like every other route
        dependencies=gates,
    )
    viewer = security.require(Role.VIEWER)
    operator = security.require(Role.OPERATOR)
    admin = security.require(Role.ADMIN)
    api = APIRouter(prefix="/api/v1", dependencies=[Depends(viewer)])

    @api.get("/health", response_model=HealthOut, responses={503: {}})
    async def health() -> HealthOut:
        """The manager answers and reaches its database (``watchkeeper health`` asks this)."""
        try:
            async with db.session() as session:
                await store.current_version(session)
        except Exception as exc:  # any failure of the database is "not healthy"
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE, f"the database does not answer: {exc}"
            ) from exc
        return HealthOut(status="ok", version=__version__)

    if cluster is not None:

        @api.get("/cluster")
        async def cluster_status() -> dict[str, Any]:
            """This manager's role and term, every manager of the cluster with its last
            heartbeat, and the history of terms (who took over from whom, when)."""
            return await cluster.status()

    @api.get("/config/current", response_model=VersionOut)
    async def current() -> VersionOut:
        async with db.session() as session:
            version = await store.current_version(session)
        if version is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no configuration imported yet")
        return _version(version)

    @api.get("/config/versions", response_model=Listing[VersionOut])
    async def versions(limit: int = Query(50, ge=1, le=500), offset: Offset = 0) -> dict[str, Any]:
        async with db.session() as session:
            page = await store.page_versions(session, limit=limit, offset=offset)
        items = [_version(v) for v in page.items]
        return listing(items, total=page.total, offset=offset, limit=limit)

    @api.get("/config/versions/{version_id}", response_model=VersionDetail)
    async def version(version_id: PathId) -> VersionDetail:
        async with db.session() as session:
            found = await store.get_version(session, version_id)
        if found is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no version {version_id}")
        return VersionDetail(**_version(found).model_dump(), document=found.document)

    @api.get("/config/rejected", response_model=Listing[RejectionOut])
    async def rejected(limit: int = Query(50, ge=1, le=500), offset: Offset = 0) -> dict[str, Any]:
        async with db.session() as session:
            page = await store.page_rejections(session, limit=limit, offset=offset)
        items = [RejectionOut.model_validate(r, from_attributes=True) for r in page.items]
        return listing(items, total=page.total, offset=offset, limit=limit)

    @api.get("/sources", response_model=Listing[SourceOut])
    async def sources() -> dict[str, Any]:
        async with db.session() as session:
            rows = await store.list_source_statuses(session)
        return whole([SourceOut.model_validate(r, from_attributes=True) for r in rows])

    @api.post(
        "/config/candidates",
        response_model=PushResult,
        status_code=status.HTTP_201_CREATED,
        responses={200: {"model": PushResult}, 413: {}, 422: {"model": PushResult}},
        dependencies=[Depends(admin)],
    )
    async def push(request: Request) -> Any:
        """Push a candidate: the same validation and import as a polled one."""
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > MAX_PUSH_BYTES:
            raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, "document too large")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_PUSH_BYTES:
                raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, "document too large")
        client = request.client.host if request.client else "unknown"
        outcome = await intake.submit(body, source=f"api:push from {client}")
        result = PushResult(
            accepted=outcome.accepted,
            created=outcome.created,
            version=outcome.version_id,
            content_hash=outcome.content_hash,
            summary=outcome.diff.summary() if outcome.diff else None,
            problems=[ProblemOut.model_validate(p.as_dict()) for p in outcome.problems],
        )
        code = (
            status.HTTP_422_UNPROCESSABLE_CONTENT
            if not outcome.accepted
            else status.HTTP_201_CREATED
            if outcome.created
            else status.HTTP_200_OK
        )
        return JSONResponse(result.model_dump(mode="json"), status_code=code)

    @api.get("/openapi.json", include_in_schema=False)
    async def openapi() -> dict[str, Any]:
        return app.openapi()

    install_error_handlers(app)
    app.include_router(api)
    app.include_router(create_login_router(security))
    app.include_router(create_accounts_router(security))
    app.include_router(config_diff_router(db, viewer=viewer))
    if ports is not None:
        read = ports.read
        app.include_router(operations_router(db, ports, viewer=viewer, operator=operator))
        if ports.infra is not None:
            app.include_router(infra_router(ports.infra, viewer=viewer, operator=operator))
        if ports.deploy is not None:
            app.include_router(
                deploy_router(ports.deploy, viewer=viewer, operator=operator, admin=admin)
            )
        app.include_router(inventory_router(read, viewer=viewer, infra=ports.infra))
        app.include_router(
            metrics_router(
                read.checks,
                lambda: read.host_statuses().values(),
                read.latest_metrics,
                lambda: views.zone_rows(read),
                cluster.sample if cluster is not None else (lambda: None),
            ),
            dependencies=[Depends(viewer)],
        )
    # --- web pages ---
    # Imported here so that this block is the only place the pages touch the app.
    from fastapi.staticfiles import StaticFiles

    from watchkeeper.web.ui import STATIC, create_ui_router
    from watchkeeper.web.ui.cluster_page import cluster_ui_router
    from watchkeeper.web.ui.pages import infra_ui_router

    if ports is not None:
        app.include_router(create_ui_router(db, ports, security))
        app.include_router(infra_ui_router(ports.infra, security, deploy=ports.deploy))
        app.include_router(cluster_ui_router(cluster, security))
    app.mount("/static", StaticFiles(directory=STATIC), name="static")  # public: no data
    # --- end web pages ---
    return app
