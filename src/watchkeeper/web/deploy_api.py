"""``/api/v1/deploy``: the deployments, each host's last run, and the agent keys that wait
for an admin.

    GET  /deployments, /deployments/{name}, /agent-keys                viewer
    POST /deployments/{name}/check|apply                                operator
    POST /agent-keys/{host}/approve|reject                              admin

Thin routes over the `Deploy` port (`watchkeeper.deploy.views.DeployView`). Approving
is an admin's act, not an operator's: an approved key is a worker that may run that
host's agent checks, and the document (which anyone controlling its source may change)
never grants one. An unknown deployment or host, or no pending key, is a 404 naming it;
a body with an unknown field a 422 naming it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Request, status
from pydantic import BaseModel, ConfigDict, Field

from watchkeeper.web.inventory_api import ErrorOut
from watchkeeper.web.listing import Listing, whole
from watchkeeper.web.operations import Requirement, author
from watchkeeper.web.ports import Deploy

#: The longest deployment or host name a path or body may carry.
MAX_NAME = 255

Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME)]
PathName = Annotated[str, Path(min_length=1, max_length=MAX_NAME)]
Mode = Literal["check", "apply"]

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorOut}}
ASK: dict[int | str, dict[str, Any]] = NOT_FOUND | {422: {"model": ErrorOut}}
ENROL: dict[int | str, dict[str, Any]] = ASK | {409: {"model": ErrorOut}}


class DeployHostOut(BaseModel):
    """One host of a deployment: its ``deploy:HOST`` state and what its last run found."""

    host: str
    address: str
    zone: str
    #: The ``deploy:HOST`` check: OK in sync, WARNING drift (or a key waiting), CRITICAL
    #: the last run failed, PENDING never run yet.
    state: Literal["OK", "WARNING", "CRITICAL", "UNKNOWN", "PENDING"]
    #: The check's line, or why the host has not run yet.
    summary: str
    mode: Mode | None
    #: When the last run ended.
    at: datetime | None
    ok: bool | None
    #: What the last check would change, or what the last apply changed.
    changes: list[str]
    error: str
    error_kind: str
    agent_version: str
    #: The run in flight, if any.
    running: Mode | None
    #: Why the host waits (no deploy worker of its zone, a lost job), if it does.
    waiting: str | None
    #: The fingerprint of its agent's key when that waits for an admin.
    pending_key: str | None


class DeploymentOut(BaseModel):
    """A deployment's policy, its halted rollout (the reason) and its hosts."""

    name: str
    drift: Literal["repair", "report"]
    #: Seconds between check-mode runs of each host.
    every: float
    max_concurrent: int
    max_failures: int
    halted: str | None
    hosts: list[DeployHostOut]


class HostIn(BaseModel):
    """One host of the deployment (default: every one)."""

    model_config = ConfigDict(extra="forbid")

    host: Name | None = None


class RequestOut(BaseModel):
    #: The hosts that get a run now (an apply runs a check first).
    hosts: list[str]


class PendingKeyOut(BaseModel):
    """An agent key a deploy brought back, waiting for an admin."""

    host: str
    deployment: str
    zone: str
    public_key: str
    fingerprint: str
    seen_at: datetime


class EnrolmentOut(BaseModel):
    """What a pending key became: the host's agent key, or a revoked (rejected) one."""

    host: str
    name: str
    fingerprint: str
    zones: list[str]
    agent_for: str | None
    revoked: bool
    #: What else was done (a previous agent key of the host revoked, ...).
    notes: list[str]


def deploy_router(
    deploy: Deploy, *, viewer: Requirement, operator: Requirement, admin: Requirement
) -> APIRouter:
    """The routes under ``/api/v1/deploy``: reads for ``viewer``, check and apply for
    ``operator`` (recorded as the author), approve and reject for ``admin``."""
    api = APIRouter(prefix="/api/v1/deploy", dependencies=[Depends(viewer)], tags=["deployments"])
    acts, admins = [Depends(operator)], [Depends(admin)]

    # --- reading --------------------------------------------------------------------------

    @api.get("/deployments", response_model=Listing[DeploymentOut])
    async def deployments() -> dict[str, Any]:
        """Every deployment in force, in document order, with each host's last run."""
        return whole(deploy.deployments())

    @api.get("/deployments/{name}", response_model=DeploymentOut, responses=NOT_FOUND)
    async def deployment(name: PathName) -> dict[str, Any]:
        return deploy.deployment(name)

    @api.get("/agent-keys", response_model=Listing[PendingKeyOut])
    async def agent_keys() -> dict[str, Any]:
        """The agent keys waiting for approval, by host."""
        return whole(await deploy.pending_keys())

    # --- asking ---------------------------------------------------------------------------

    def ask(name: str, body: HostIn | None, mode: Mode, request: Request) -> RequestOut:
        host = body.host if body is not None else None
        return RequestOut(hosts=deploy.request(name, host, mode, author(request)))

    @api.post(
        "/deployments/{name}/check",
        response_model=RequestOut,
        status_code=status.HTTP_202_ACCEPTED,
        dependencies=acts,
        responses=ASK,
    )
    async def check(name: PathName, request: Request, body: HostIn | None = None) -> RequestOut:
        """A check-mode run (the plan) of one host or all now, whatever ``every`` says."""
        return ask(name, body, "check", request)

    @api.post(
        "/deployments/{name}/apply",
        response_model=RequestOut,
        status_code=status.HTTP_202_ACCEPTED,
        dependencies=acts,
        responses=ASK,
    )
    async def apply(name: PathName, request: Request, body: HostIn | None = None) -> RequestOut:
        """A check, then an apply of what it finds, of one host or all, whatever ``drift``
        says; it also resumes a halted rollout."""
        return ask(name, body, "apply", request)

    @api.post(
        "/agent-keys/{host}/approve",
        response_model=EnrolmentOut,
        dependencies=admins,
        responses=ENROL,
    )
    async def approve(host: PathName, request: Request) -> dict[str, Any]:
        """Enrol the host's agent key for the host's zone, as that host's agent only."""
        return await deploy.approve(host, author(request))

    @api.post(
        "/agent-keys/{host}/reject",
        response_model=EnrolmentOut,
        dependencies=admins,
        responses=ENROL,
    )
    async def reject(host: PathName, request: Request) -> dict[str, Any]:
        """Refuse the host's agent key for good (kept as a revoked worker key)."""
        return await deploy.reject(host, author(request))

    return api
