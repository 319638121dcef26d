"""The pages of what happened and who runs it: alarms, downtimes, remediation, workers,
configuration versions and rejected candidates.

These read the store (alarms and audit are written there) or the job server; each page
is one or two bounded queries. The configuration diff is the API's: the page draws
`document.compare.config_diff`, which ``GET /api/v1/config/diff`` answers with, and links
to that JSON.
"""

from __future__ import annotations

import json
import time
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from watchkeeper import store
from watchkeeper.document import compare
from watchkeeper.jobs.states import JobState
from watchkeeper.remediation import records as remediation_records
from watchkeeper.web import views
from watchkeeper.web.listing import MAX_ID, PathId
from watchkeeper.web.ports import ReadModel
from watchkeeper.web.ui.requirements import Requirement, principal_of
from watchkeeper.web.ui.templating import is_htmx, render

#: Resolved alarms shown under the open ones.
RECENT_RESOLVED = 100
#: Remediation jobs and audit entries shown.
JOBS_SHOWN = 100
AUDIT_SHOWN = 200
VERSIONS_SHOWN = 50
REJECTIONS_SHOWN = 50
#: The diff route the API serves; the diff page draws what it answers.
DIFF_API = "/api/v1/config/diff"


def records_router(db: store.Database, read: ReadModel, *, viewer: Requirement) -> APIRouter:
    """``/alarms``, ``/downtimes``, ``/remediation``, ``/workers`` and ``/config/...``."""
    router = APIRouter(dependencies=[Depends(viewer)], include_in_schema=False)
    alarms = read

    @router.get("/alarms")
    async def alarm_page(request: Request) -> Response:
        open_ = await alarms.list_alarms(open_only=True, limit=1000)
        recent = [
            a
            for a in await alarms.list_alarms(open_only=False, limit=RECENT_RESOLVED * 2)
            if a.resolved_at is not None
        ][:RECENT_RESOLVED]
        template = "ui/parts/alarm_tables.html" if is_htmx(request) else "ui/alarms.html"
        return render(request, template, principal_of(request), open=open_, resolved=recent)

    @router.get("/downtimes")
    async def downtime_page(request: Request, past: bool = False) -> Response:
        now = time.time()
        found = await alarms.list_downtimes(include_past=past)
        return render(
            request,
            "ui/downtimes.html",
            principal_of(request),
            downtimes=found,
            past=past,
            active={d.id for d in found if d.active(now)},
        )

    @router.get("/remediation")
    async def remediation_page(
        request: Request, job: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None
    ) -> Response:
        queue = read.remediation_queue
        pending = await remediation_records.list_jobs(
            queue, states=[JobState.PENDING], limit=JOBS_SHOWN
        )
        jobs = await remediation_records.list_jobs(queue, limit=JOBS_SHOWN)
        audit = await queue.list_audit(limit=AUDIT_SHOWN)
        chosen = None if job is None else await remediation_records.get_job(queue, job)
        trail = (
            []
            if chosen is None
            else list(reversed(await queue.list_audit(job_id=chosen.id, limit=1000)))
        )
        return render(
            request,
            "ui/remediation.html",
            principal_of(request),
            pending=pending,
            jobs=jobs,
            audit=audit,
            chosen=chosen,
            trail=trail,
        )

    @router.get("/workers")
    async def worker_page(request: Request) -> Response:
        template = "ui/parts/worker_tables.html" if is_htmx(request) else "ui/workers.html"
        return render(
            request,
            template,
            principal_of(request),
            workers=views.worker_rows(read),
            zones=views.zone_rows(read),
        )

    @router.get("/config")
    async def config_page(request: Request) -> Response:
        async with db.session() as session:
            current = await store.current_version(session)
            versions = await store.list_versions(session, limit=VERSIONS_SHOWN)
            rejected = await store.list_rejections(session, limit=REJECTIONS_SHOWN)
            sources = await store.list_source_statuses(session)
        return render(
            request,
            "ui/config.html",
            principal_of(request),
            current=current,
            versions=versions,
            rejected=rejected,
            sources=sources,
        )

    @router.get("/config/versions/{version_id}")
    async def version_page(request: Request, version_id: PathId) -> Response:
        principal = principal_of(request)
        async with db.session() as session:
            found = await store.get_version(session, version_id)
            previous = await store.list_versions(session, limit=1, offset=0)
        if found is None:
            return render(
                request, "ui/not_found.html", principal, status_code=status.HTTP_404_NOT_FOUND,
                message=f"No configuration version {version_id}.",
            )  # fmt: skip
        return render(
            request,
            "ui/version.html",
            principal,
            version=found,
            document=json.dumps(found.document, indent=2, sort_keys=True),
            newest=previous[0].id if previous else None,
        )

    @router.get("/config/diff")
    async def diff_page(
        request: Request,
        from_: Annotated[int | None, Query(alias="from", ge=1, le=MAX_ID)] = None,
        to: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    ) -> Response:
        """Two versions compared by `compare.config_diff` (the API's diff, drawn as tables)."""
        principal = principal_of(request)
        async with db.session() as session:
            newer = await _version_or_current(session, to)
            older = None
            if from_ is not None:
                older = await store.get_version(session, from_)
            elif newer is not None:
                recent = await store.list_versions(session, limit=VERSIONS_SHOWN)
                before = next((v.id for v in recent if v.id < newer.id), None)
                older = None if before is None else await store.get_version(session, before)
        if newer is None or older is None or newer.document is None or older.document is None:
            return render(
                request, "ui/not_found.html", principal, status_code=status.HTTP_404_NOT_FOUND,
                message="Pick two stored versions to compare (from=ID&to=ID).",
            )  # fmt: skip
        return render(
            request,
            "ui/diff.html",
            principal,
            older=older,
            newer=newer,
            diff=compare.config_diff(older.document, newer.document),
            diff_api=f"{DIFF_API}?from={older.id}&to={newer.id}",
        )

    return router


async def _version_or_current(
    session: AsyncSession, version_id: int | None
) -> store.ConfigVersion | None:
    """The version asked for (with its document), or the current one."""
    if version_id is None:
        current = await store.current_version(session)
        if current is None:
            return None
        version_id = current.id
    return await store.get_version(session, version_id)
