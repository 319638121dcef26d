"""Operator actions from the pages: acknowledge, downtime, check now, remediation, the
infrastructure's (confirm or skip a change, apply now, unprotect, adopt, accept an
empty observation, confirm a held document), and the deployments' (check or apply now;
an admin's approve or reject of an agent key).

Each route takes an urlencoded form (htmx sends the CSRF token in ``X-CSRF-Token``; a
plain form sends ``csrf_token``), calls the same stage method as the REST API in
`web.operations`, and answers htmx with a one-line flash fragment plus the
``HX-Trigger: wk-changed`` event that makes the live blocks refresh at once. Without htmx
it redirects back (``next``, a path on this site). Bad input is a 422 flash naming the
field; an action that no longer applies (nothing to acknowledge) a 409; an unknown job or
downtime a 404: the request errors raised here or by the operations port become that
flash in `watchkeeper.web.errors`.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.responses import RedirectResponse

from watchkeeper.document.durations import parse_duration
from watchkeeper.errors import InvalidArgument, NotFound
from watchkeeper.web.listing import PathId
from watchkeeper.web.ports import Deploy, Infra, Operations
from watchkeeper.web.security import csrf
from watchkeeper.web.security.redirects import safe_next
from watchkeeper.web.ui.flash import flash
from watchkeeper.web.ui.requirements import Requirement, principal_of
from watchkeeper.web.ui.templating import PAGE_HEADERS, is_htmx

#: The event htmx fires on the body after an action; live blocks listen for it.
CHANGED_EVENT = "wk-changed"
#: How long a downtime lasts when the form names no duration.
DEFAULT_DOWNTIME = "2h"
#: Where the infrastructure buttons send a plain form back to.
INFRA_PAGE = "/infrastructure"
#: The longest slot, cloud id or resource name a form may carry.
MAX_NAME = 255


class FormError(InvalidArgument):
    """A form field has a value the action cannot use."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(field, message)
        self.field = field


class Form:
    """An urlencoded form body, field by field (first value wins)."""

    def __init__(self, fields: dict[str, list[str]]) -> None:
        self._fields = fields

    @classmethod
    async def read(cls, request: Request) -> Form:
        return cls(csrf.parse_form(await request.body()))

    def text(self, name: str, default: str = "") -> str:
        values = self._fields.get(name)
        return values[0].strip() if values else default

    def has(self, name: str) -> bool:
        return name in self._fields

    def flag(self, name: str) -> bool:
        return self.text(name).lower() in ("on", "true", "1", "yes")


def seconds_of(field: str, text: str) -> float:
    """A duration field: ``90m``, ``2h``, ``1d`` (a bare number is minutes)."""
    value = text.strip().lower()
    if value.replace(".", "", 1).isdigit():
        value += "m"
    try:
        found = parse_duration(value).total_seconds()
    except ValueError as exc:
        raise FormError(field, str(exc)) from exc
    if found <= 0:
        raise FormError(field, "must be longer than zero")
    return found


def moment_of(field: str, text: str, now: float) -> float:
    """A ``datetime-local`` field read as UTC (``2026-01-01T12:00``); empty means now."""
    if not text:
        return now
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise FormError(field, f"{text!r} is not a date and time (YYYY-MM-DDTHH:MM)") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    found = parsed.timestamp()
    if not math.isfinite(found):
        raise FormError(field, "is out of range")
    return found


def done(request: Request, form: Form, message: str, *, fallback: str) -> Response:
    """The answer to an action that worked: a flash for htmx, else a redirect back."""
    if is_htmx(request):
        return Response(
            flash(message),
            media_type="text/html",
            headers=PAGE_HEADERS | {"hx-trigger": CHANGED_EVENT},
        )
    return RedirectResponse(safe_next(form.text("next") or fallback), status.HTTP_303_SEE_OTHER)


def actions_router(ops: Operations, *, operator: Requirement) -> APIRouter:
    """The POST routes behind the pages' buttons; every one needs the operator role."""
    router = APIRouter(dependencies=[Depends(operator)], include_in_schema=False)

    def service_page(key: str) -> str:
        return f"/services/{key}"

    @router.post("/services/{key}/acknowledge")
    async def acknowledge(request: Request, key: str) -> Response:
        form = await Form.read(request)
        comment = form.text("comment") or request.headers.get("hx-prompt", "").strip()
        if not comment:
            raise FormError("comment", "say why (it is shown to everyone)")
        expires_in = form.text("expires")
        expires = time.time() + seconds_of("expires", expires_in) if expires_in else None
        acked = await ops.acknowledge(
            key,
            principal_of(request).name,
            comment,
            sticky=form.flag("sticky") if form.has("sticky") else True,
            expires=expires,
        )
        noun = "alarm" if len(acked) == 1 else "alarms"
        return done(
            request, form, f"Acknowledged {key} ({len(acked)} {noun}).", fallback=service_page(key)
        )

    @router.post("/services/{key}/unacknowledge")
    async def unacknowledge(request: Request, key: str) -> Response:
        form = await Form.read(request)
        cleared = await ops.unacknowledge(key)
        message = f"Removed the acknowledgement of {key}." if cleared else f"{key}: none to remove."
        return done(request, form, message, fallback=service_page(key))

    @router.post("/services/{key}/check-now")
    async def check_now(request: Request, key: str) -> Response:
        form = await Form.read(request)
        if not ops.check_now(key):
            raise NotFound(f"No check {key!r} is running.")
        return done(request, form, f"{key} is queued to run now.", fallback=service_page(key))

    @router.post("/downtimes")
    async def schedule(request: Request) -> Response:
        form = await Form.read(request)
        host, service = form.text("host"), form.text("service") or None
        if not host:
            raise FormError("host", "name the host")
        start = moment_of("start", form.text("start"), time.time())
        length = seconds_of("duration", form.text("duration") or DEFAULT_DOWNTIME)
        comment = form.text("comment")
        if not comment:
            raise FormError("comment", "say why (it is shown to everyone)")
        made = await ops.schedule_downtime(
            host, service, start, start + length, principal_of(request).name, comment
        )
        return done(
            request, form, f"Downtime {made.id} scheduled for {made.key}.", fallback="/downtimes"
        )

    @router.post("/downtimes/{downtime_id}/cancel")
    async def cancel(request: Request, downtime_id: PathId) -> Response:
        form = await Form.read(request)
        await ops.cancel_downtime(downtime_id)
        return done(request, form, f"Downtime {downtime_id} cancelled.", fallback="/downtimes")

    @router.post("/remediation/{job_id}/run")
    async def run(request: Request, job_id: PathId) -> Response:
        form = await Form.read(request)
        await ops.run_pending(job_id, principal_of(request).name)
        return done(request, form, f"Remediation job {job_id} queued.", fallback="/remediation")

    @router.post("/remediation/{job_id}/skip")
    async def skip(request: Request, job_id: PathId) -> Response:
        form = await Form.read(request)
        await ops.skip_pending(job_id, principal_of(request).name, form.text("reason"))
        return done(request, form, f"Remediation job {job_id} skipped.", fallback="/remediation")

    return router


def _name(field: str, text: str) -> str:
    if not text:
        raise FormError(field, "name a slot or a cloud id")
    if len(text) > MAX_NAME:
        raise FormError(field, f"is longer than {MAX_NAME} characters")
    return text


def infra_actions_router(infra: Infra | None, *, operator: Requirement) -> APIRouter:
    """The infrastructure page's buttons, each the same port call as ``/api/v1/infra``."""
    router = APIRouter(
        prefix="/infrastructure", dependencies=[Depends(operator)], include_in_schema=False
    )

    def stage() -> Infra:
        if infra is None:
            raise NotFound("This manager runs no infrastructure stage.")
        return infra

    @router.post("/operations/{job_id}/confirm")
    async def confirm(request: Request, job_id: PathId) -> Response:
        form = await Form.read(request)
        job = await stage().decide(job_id, run=True, author=principal_of(request).name)
        what = f"{job.get('op')} {job.get('slot')}"
        return done(
            request, form, f"Infrastructure change {job_id} ({what}) confirmed.",
            fallback=INFRA_PAGE,
        )  # fmt: skip

    @router.post("/operations/{job_id}/skip")
    async def skip(request: Request, job_id: PathId) -> Response:
        form = await Form.read(request)
        await stage().decide(job_id, run=False, author=principal_of(request).name)
        return done(request, form, f"Infrastructure change {job_id} skipped.", fallback=INFRA_PAGE)

    @router.post("/apply")
    async def apply(request: Request) -> Response:
        form = await Form.read(request)
        only = [_name("only", n) for n in form.text("only").replace(",", " ").split()]
        platforms = await stage().apply(only, principal_of(request).name)
        listed = ", ".join(platforms) or "no platform"
        return done(request, form, f"Observing and planning now: {listed}.", fallback=INFRA_PAGE)

    @router.post("/unprotect")
    async def unprotect(request: Request) -> Response:
        form = await Form.read(request)
        target = _name("target", form.text("target"))
        job = await stage().unprotect(target, principal_of(request).name)
        return done(
            request, form, f"Protection of {target} lifted (change {job.get('id')}).",
            fallback=INFRA_PAGE,
        )  # fmt: skip

    @router.post("/adopt")
    async def adopt(request: Request) -> Response:
        form = await Form.read(request)
        target = _name("target", form.text("target"))
        job = await stage().adopt(target, principal_of(request).name)
        return done(
            request, form, f"Adopting {target} (change {job.get('id')}).", fallback=INFRA_PAGE
        )

    @router.post("/platforms/{name}/accept")
    async def accept(request: Request, name: str) -> Response:
        form = await Form.read(request)
        await stage().accept(_name("name", name), principal_of(request).name)
        return done(
            request, form, f"Platform {name}: the empty observation is accepted.",
            fallback=INFRA_PAGE,
        )  # fmt: skip

    @router.post("/hold/confirm")
    async def confirm_hold(request: Request) -> Response:
        form = await Form.read(request)
        await stage().confirm_hold(principal_of(request).name)
        return done(request, form, "The held infrastructure is in force now.", fallback=INFRA_PAGE)

    return router


def deploy_actions_router(
    deploy: Deploy | None, *, operator: Requirement, admin: Requirement
) -> APIRouter:
    """The deployments' buttons on the infrastructure page, each the same port call as
    ``/api/v1/deploy``: check or apply (operator), approve or reject a key (admin)."""
    router = APIRouter(prefix="/infrastructure", include_in_schema=False)

    def stage() -> Deploy:
        if deploy is None:
            raise NotFound("This manager runs no deployment stage.")
        return deploy

    def host_of(form: Form) -> str | None:
        host = form.text("host")
        if len(host) > MAX_NAME:
            raise FormError("host", f"is longer than {MAX_NAME} characters")
        return host or None

    @router.post("/deployments/{name}/check", dependencies=[Depends(operator)])
    async def check(request: Request, name: str) -> Response:
        form = await Form.read(request)
        hosts = stage().request(name, host_of(form), "check", principal_of(request).name)
        listed = ", ".join(hosts) or "no host"
        return done(
            request, form, f"Deployment {name}: checking {listed} now.", fallback=INFRA_PAGE
        )

    @router.post("/deployments/{name}/apply", dependencies=[Depends(operator)])
    async def apply(request: Request, name: str) -> Response:
        form = await Form.read(request)
        hosts = stage().request(name, host_of(form), "apply", principal_of(request).name)
        listed = ", ".join(hosts) or "no host"
        return done(
            request, form, f"Deployment {name}: a check, then an apply, of {listed} now.",
            fallback=INFRA_PAGE,
        )  # fmt: skip

    @router.post("/agent-keys/{host}/approve", dependencies=[Depends(admin)])
    async def approve(request: Request, host: str) -> Response:
        form = await Form.read(request)
        made = await stage().approve(host, principal_of(request).name)
        message = (
            f"Approved {host}: enrolled {made['name']} ({made['fingerprint']}) for zone "
            f"{', '.join(made['zones'])} as the agent of host {host}."
        )
        return done(request, form, " ".join([message, *made["notes"]]), fallback=INFRA_PAGE)

    @router.post("/agent-keys/{host}/reject", dependencies=[Depends(admin)])
    async def reject(request: Request, host: str) -> Response:
        form = await Form.read(request)
        made = await stage().reject(host, principal_of(request).name)
        return done(
            request, form, f"Rejected the agent key {made['fingerprint']} of {host}.",
            fallback=INFRA_PAGE,
        )  # fmt: skip

    return router
