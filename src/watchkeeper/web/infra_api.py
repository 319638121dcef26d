"""``/api/v1/infra``: the infrastructure stage's platforms, resources, plans and journal,
and what operators ask of it.

    GET  /platforms, /resources, /plan, /operations, /operations/{id}      viewer
    POST /operations/{id}/confirm|skip, /apply, /unprotect, /adopt,
         /platforms/{name}/accept, /hold/confirm                           operator

Thin routes over the `Infra` port (`watchkeeper.infra.views.InfraView`), whose answers
are already JSON. Bodies are closed models (an unknown field is a 422 naming it); the
port raises the request errors the app maps in one place: an unknown job, slot, machine
or platform is a 404, a job no longer pending a 409, a bad argument a 422.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field

from watchkeeper.errors import InvalidArgument
from watchkeeper.jobs.states import JobState
from watchkeeper.web.inventory_api import ErrorOut, states_arg
from watchkeeper.web.listing import Listing, Offset, PathId, listing, whole
from watchkeeper.web.operations import Requirement, author
from watchkeeper.web.ports import Infra

#: The longest name or id a body or path may carry (resource, slot, cloud id, platform).
MAX_NAME = 255

Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME)]
STATE_HELP = ", ".join(s.value for s in JobState) + " (repeat or a,b)"

#: The error answers of the infrastructure routes, by the errors each may raise.
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorOut}}
BAD: dict[int | str, dict[str, Any]] = {422: {"model": ErrorOut}}
DECIDE: dict[int | str, dict[str, Any]] = NOT_FOUND | {409: {"model": ErrorOut}}
ASK: dict[int | str, dict[str, Any]] = DECIDE | BAD


class PlanOut(BaseModel):
    """The last plan of each platform, and the infrastructure held for an operator."""

    plans: list[dict[str, Any]]
    #: ``{"reason", "version", "resources": {name: count}}``, or null when none is held.
    hold: dict[str, Any] | None


class ApplyIn(BaseModel):
    """Observe and plan now; ``only`` these resources (default: every one)."""

    model_config = ConfigDict(extra="forbid")

    only: list[Name] = Field(default_factory=list, max_length=1000)


class ApplyOut(BaseModel):
    #: The platforms that are observed and planned now.
    platforms: list[str]


class TargetIn(BaseModel):
    """A slot (``web-2``) or a cloud id (``i-0abc...``)."""

    model_config = ConfigDict(extra="forbid")

    target: Name


class AcceptOut(BaseModel):
    platform: str
    accepted: bool


class HoldOut(BaseModel):
    confirmed: bool


def infra_router(infra: Infra, *, viewer: Requirement, operator: Requirement) -> APIRouter:
    """The routes under ``/api/v1/infra``: reads for ``viewer``, asks for ``operator``
    (whose principal each ask records as its author)."""
    api = APIRouter(prefix="/api/v1/infra", dependencies=[Depends(viewer)], tags=["infrastructure"])
    acts = [Depends(operator)]

    # --- reading --------------------------------------------------------------------------

    @api.get("/platforms", response_model=Listing[dict[str, Any]])
    async def platforms() -> dict[str, Any]:
        """Each platform: provider, zone, state (KNOWN, UNKNOWN, NEVER) and why, the last
        observation's time, latency and error rate, machines, lookalikes, breaker."""
        return whole(infra.platforms())

    @api.get("/resources", response_model=Listing[dict[str, Any]])
    async def resources() -> dict[str, Any]:
        """Each resource: desired count, converged slots, drift, its ``infra:NAME`` check
        and its slots with the machines filling them."""
        return whole(infra.resources())

    @api.get("/plan", response_model=PlanOut)
    async def plan() -> PlanOut:
        return PlanOut(plans=infra.plans(), hold=infra.hold())

    @api.get("/operations", response_model=Listing[dict[str, Any]], responses=BAD)
    async def operations(
        state: Annotated[list[str] | None, Query(description=STATE_HELP)] = None,
        resource: Annotated[str | None, Query(max_length=MAX_NAME)] = None,
        limit: int = Query(100, ge=1, le=1000),
        offset: Offset = 0,
    ) -> dict[str, Any]:
        """The journal of changes, newest first, each with who confirmed it (``decided_by``)."""
        wanted = states_arg(state)
        try:
            states = [JobState(s.lower()) for s in wanted] if wanted else None
        except ValueError as exc:
            raise InvalidArgument("state", str(exc)) from exc
        items, total = await infra.operations(
            states=states, resource=resource or None, limit=limit, offset=offset
        )
        return listing(items, total=total, offset=offset, limit=limit)

    @api.get("/operations/{job_id}", responses=NOT_FOUND)
    async def operation(job_id: PathId) -> dict[str, Any]:
        """One change with its audit trail, oldest entry first."""
        return await infra.operation(job_id)

    # --- asking ---------------------------------------------------------------------------

    @api.post("/operations/{job_id}/confirm", dependencies=acts, responses=DECIDE)
    async def confirm(job_id: PathId, request: Request) -> dict[str, Any]:
        """Run a change that waits for an operator (a destroy, what ``confirm`` names)."""
        return await infra.decide(job_id, run=True, author=author(request))

    @api.post("/operations/{job_id}/skip", dependencies=acts, responses=DECIDE)
    async def skip(job_id: PathId, request: Request) -> dict[str, Any]:
        """Leave a pending change undone; the next plan proposes it again if still needed."""
        return await infra.decide(job_id, run=False, author=author(request))

    @api.post(
        "/apply",
        response_model=ApplyOut,
        status_code=status.HTTP_202_ACCEPTED,
        dependencies=acts,
        responses=ASK,
    )
    async def apply(request: Request, body: ApplyIn | None = None) -> ApplyOut:
        """Observe and plan now (closing open breakers); the body is optional."""
        only = body.only if body is not None else []
        return ApplyOut(platforms=await infra.apply(only, author(request)))

    @api.post("/unprotect", dependencies=acts, responses=ASK)
    async def unprotect(body: TargetIn, request: Request) -> dict[str, Any]:
        """Lift protection from one of our machines (by slot or cloud id)."""
        return await infra.unprotect(body.target, author(request))

    @api.post("/adopt", dependencies=acts, responses=ASK)
    async def adopt(body: TargetIn, request: Request) -> dict[str, Any]:
        """Take ownership of a lookalike: our resource tag, not our owner tag."""
        return await infra.adopt(body.target, author(request))

    @api.post(
        "/platforms/{name}/accept", response_model=AcceptOut, dependencies=acts, responses=ASK
    )
    async def accept(
        name: Annotated[str, Path(min_length=1, max_length=MAX_NAME)], request: Request
    ) -> AcceptOut:
        """Trust an observation that saw none of the machines the inventory knew."""
        await infra.accept(name, author(request))
        return AcceptOut(platform=name, accepted=True)

    @api.post("/hold/confirm", response_model=HoldOut, dependencies=acts, responses=ASK)
    async def confirm_hold(request: Request) -> HoldOut:
        """Put the held infrastructure (a shrink past ``max_destroy``) in force."""
        await infra.confirm_hold(author(request))
        return HoldOut(confirmed=True)

    return api
