"""``watchkeeper infra plan|apply|confirm|skip|unprotect|adopt|accept|confirm-hold|operations``,
and the infrastructure part of ``watchkeeper plan``.

The ``infra`` commands ask the *running* manager, through its API (``/api/v1/infra``):
the stage's plans and journal live in its memory and store, and what an operator asks
is carried out by its loop. ``--url`` (default ``http://127.0.0.1:8470``, the manager's
``--http``) names it; the token is ``--token``, else ``WATCHKEEPER_TOKEN``, else the
manager token in ``<data-dir>/api-token`` (readable on the manager's machine only). Reads
need a viewer, the rest an operator, whose name the journal records.

Exit codes: 0 done; 1 the manager cannot be reached (or failed: 5xx); 2 the manager
refused (4xx: its message is printed, ``no infrastructure operation 7``) or the command
line is wrong.

``watchkeeper plan DOC`` needs no manager: `preview` plans the candidate's platforms and
resources against what the store last saw of each platform (its inventory), with the
protection recorded there, as the stage would at its next observation.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import httpx

from watchkeeper.commands import manager_client
from watchkeeper.commands.common import emit_json
from watchkeeper.commands.exits import EXIT_INVALID, EXIT_OK, EXIT_USAGE
from watchkeeper.document.normalize import Snapshot
from watchkeeper.errors import StoreError
from watchkeeper.infra import repository
from watchkeeper.infra.desired import Desired
from watchkeeper.infra.planner import Observation, PlanInput
from watchkeeper.infra.planner import plan as plan_platform
from watchkeeper.infra.status import shrink_reason
from watchkeeper.infra.views import plan_dict
from watchkeeper.store.db import Database

API = "/api/v1/infra"
#: Action ops in the order a resource's line lists them; ``+`` and ``-`` for the counts.
OP_ORDER = ("create", "destroy", "start", "resize", "protect", "unprotect", "adopt")
MARKS = {"create": "+", "destroy": "-"}


# --- talking to the manager ---------------------------------------------------------------


class _Failed(Exception):
    """A request that did not get a 2xx answer; ``code`` is the command's exit code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


async def _request(
    args: argparse.Namespace,
    method: str,
    path: str,
    *,
    body: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
) -> Any:
    """One call to the manager's API; its JSON answer, or `_Failed`."""
    async with manager_client.client(args) as client:
        try:
            response = await client.request(method, API + path, json=body, params=params)
        except httpx.TransportError as exc:
            raise _Failed(
                EXIT_INVALID, f"cannot reach the manager at {args.url}: {exc or type(exc).__name__}"
            ) from exc
    if response.is_success:
        return response.json()
    code = EXIT_USAGE if response.is_client_error else EXIT_INVALID
    raise _Failed(code, f"{manager_client.detail(response)} (HTTP {response.status_code})")


async def _run(
    args: argparse.Namespace,
    method: str,
    path: str,
    show: manager_client.Show,
    *,
    body: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
) -> int:
    try:
        answer = await _request(args, method, path, body=body, params=params)
    except _Failed as failed:
        print(f"watchkeeper: {failed}", file=sys.stderr)
        return failed.code
    if args.format == "json":
        emit_json(answer)
    else:
        show(answer)
    return EXIT_OK


# --- the commands -------------------------------------------------------------------------


async def plan(args: argparse.Namespace) -> int:
    def show(answer: Mapping[str, Any]) -> None:
        lines = plan_lines(answer.get("plans") or [])
        hold = answer.get("hold")
        if hold:
            counts = ", ".join(f"{n} x{c}" for n, c in sorted(hold["resources"].items()))
            lines.append(f"held: configuration {hold.get('version')}: {hold['reason']}")
            lines.append(f"  it asks for {counts or 'no resources'}")
        print("\n".join(lines) if lines else "no plan yet: no platform has been observed")

    return await _run(args, "GET", "/plan", show)


async def apply(args: argparse.Namespace) -> int:
    def show(answer: Mapping[str, Any]) -> None:
        listed = ", ".join(answer.get("platforms") or []) or "no platform"
        print(f"observing and planning now: {listed}")

    return await _run(args, "POST", "/apply", show, body={"only": list(args.only)})


def _job_line(job: Mapping[str, Any]) -> str:
    where = f" on {job['platform']}" if job.get("platform") else ""
    machine = f" ({job['cloud_id']})" if job.get("cloud_id") else ""
    return f"change {job['id']}: {job.get('op')} {job.get('slot')}{machine}{where}: {job['state']}"


async def confirm(args: argparse.Namespace) -> int:
    return await _run(
        args, "POST", f"/operations/{args.id}/confirm", lambda job: print(_job_line(job))
    )


async def skip(args: argparse.Namespace) -> int:
    return await _run(
        args, "POST", f"/operations/{args.id}/skip", lambda job: print(_job_line(job))
    )


async def unprotect(args: argparse.Namespace) -> int:
    def show(job: Mapping[str, Any]) -> None:
        print(f"protection of {args.target} lifted; {_job_line(job)}")

    return await _run(args, "POST", "/unprotect", show, body={"target": args.target})


async def adopt(args: argparse.Namespace) -> int:
    def show(job: Mapping[str, Any]) -> None:
        print(f"adopting {args.target}; {_job_line(job)}")

    return await _run(args, "POST", "/adopt", show, body={"target": args.target})


async def accept(args: argparse.Namespace) -> int:
    def show(answer: Mapping[str, Any]) -> None:
        print(f"platform {answer['platform']}: the empty observation is accepted")

    return await _run(args, "POST", f"/platforms/{quote(args.target, safe='')}/accept", show)


async def confirm_hold(args: argparse.Namespace) -> int:
    def show(answer: Mapping[str, Any]) -> None:
        print("the held infrastructure is in force now")

    return await _run(args, "POST", "/hold/confirm", show)


async def operations(args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"limit": args.limit}
    if args.state:
        params["state"] = list(args.state)
    if args.resource:
        params["resource"] = args.resource

    def show(page: Mapping[str, Any]) -> None:
        items = page.get("items") or []
        if not items:
            print("no infrastructure change matches", file=sys.stderr)
        for job in items:
            print(
                f"{job['id']:>6}  {job['state']:<11} {job.get('op') or '':<9} "
                f"{job.get('platform') or '-'}  {job.get('slot') or '-'}  "
                f"{job.get('cloud_id') or '-'}  by {job.get('decided_by') or '-'}  "
                f"{job.get('reason') or ''}".rstrip()
            )
        if page.get("total", 0) > len(items):
            print(f"({len(items)} of {page['total']}; --limit shows more)", file=sys.stderr)

    return await _run(args, "GET", "/operations", show, params=params)


# --- plans as lines -----------------------------------------------------------------------


def plan_lines(plans: Sequence[Mapping[str, Any]], indent: str = "") -> list[str]:
    """Plans (`views.plan_dict`) as lines: per platform its knowledge, per resource its
    changes (``infrastructure: web +1 (web-2)``) with each action's reason, refusals and
    lookalikes."""
    lines: list[str] = []
    for found in plans:
        if found.get("observed") is False:  # `preview`: the store has no inventory of it
            state = f": not observed yet: creates all {found['slots']}"
        else:
            state = f" ({found['knowledge']}): {found['summary']}"
        lines.append(f"{indent}platform {found['platform']}{state}")
        if found.get("reason"):
            lines.append(f"{indent}  {found['reason']}")
        by_resource: dict[str, list[Mapping[str, Any]]] = {}
        for action in found.get("actions") or ():
            by_resource.setdefault(action["resource"] or "?", []).append(action)
        for resource, actions in by_resource.items():
            lines.append(f"{indent}  infrastructure: {resource} {_changes(actions)}")
            for action in actions:
                waits = " [waits for an operator]" if action.get("confirm") else ""
                lines.append(f"{indent}    {action['reason']}{waits}")
        for refusal in found.get("refusals") or ():
            lines.append(f"{indent}  refused: {refusal['reason']}")
        for machine in found.get("lookalikes") or ():
            lines.append(
                f"{indent}  lookalike {machine['cloud_id']}: resource {machine['resource']}, "
                f"slot {machine['slot'] or '-'}, owner {machine['owner'] or 'none'} (left alone)"
            )
    return lines


def _changes(actions: Sequence[Mapping[str, Any]]) -> str:
    """``+2 (web-1, web-2)``, ``-1 (web-2)``, ``start 1 (web-0)``: one resource's actions."""
    slots: dict[str, list[str]] = {}
    for action in actions:
        slots.setdefault(action["op"], []).append(action["slot"] or action["cloud_id"] or "?")
    ordered = sorted(slots, key=lambda op: OP_ORDER.index(op) if op in OP_ORDER else 99)
    parts = []
    for op in ordered:
        mark = MARKS.get(op)
        count = f"{mark}{len(slots[op])}" if mark else f"{op} {len(slots[op])}"
        parts.append(f"{count} ({', '.join(slots[op])})")
    return " ".join(parts)


# --- watchkeeper plan DOC: the infrastructure part, offline --------------------------------


async def preview(db: Database | None, snapshot: Snapshot, *, now: float) -> dict[str, Any]:
    """What the candidate's infrastructure would do against the store's inventories.

    ``plans`` per platform (as the API's), each with ``observed`` (whether the store has
    an inventory of it: without one every slot is a create) and ``slots``; ``held``: why
    the stage would hold the candidate for an operator (it removes more slots than a
    platform's ``max_destroy``), or ""; ``left``: platforms in force that the candidate
    drops (their machines are no longer managed, and left as they are); ``note``: why the
    store could not tell (an old schema), or "".
    """
    objects = snapshot.objects
    candidate = Desired.from_specs(
        [r.spec for r in objects.get("platforms", {}).values()],
        [r.spec for r in objects.get("infrastructure", {}).values()],
    )
    accepted: Desired | None = None
    inventories: dict[str, repository.Inventory] = {}
    protected: dict[str, frozenset[str]] = {}
    owner, note = "", ""
    if db is not None:
        try:
            record = await repository.desired(db)
            accepted = record.desired if record is not None else None
            inventories = await repository.inventories(db)
            protected = await repository.protected(db)
            if any(i.machines for i in inventories.values()):
                # Machines were seen, so the manager made the id already: this only reads it.
                owner = await repository.cluster_id(db, now=now)
        except StoreError as exc:
            note = f"the store keeps no infrastructure yet ({exc.message}); run db upgrade"
    plans = []
    for name, platform in candidate.platforms.items():
        inventory = inventories.get(name)
        machines = inventory.machines if inventory is not None else ()
        found = plan_platform(
            PlanInput(
                desired=candidate,
                platform=platform,
                observation=Observation(platform=name, machines=machines),
                owner=owner,
                protected=protected.get(name, frozenset()),
            )
        )
        plans.append(
            plan_dict(found)
            | {"observed": inventory is not None, "slots": candidate.slot_count(name)}
        )
    held = shrink_reason(accepted, candidate, {}) if accepted and accepted.resources else ""
    left = sorted(set(accepted.platforms) - set(candidate.platforms)) if accepted else []
    return {"plans": plans, "held": held, "left": left, "note": note}


def preview_lines(found: Mapping[str, Any]) -> list[str]:
    """`preview` as the lines ``watchkeeper plan`` prints after the configuration diff."""
    plans = found.get("plans") or []
    if not plans and not found.get("left"):
        return []
    lines = ["Infrastructure, against what the store last saw of each platform:"]
    if found.get("note"):
        lines.append(f"  {found['note']}")
    lines.extend(plan_lines(plans, indent="  "))
    for name in found.get("left") or ():
        lines.append(
            f"  platform {name} leaves the document: its machines are no longer managed "
            "(left as they are)"
        )
    if found.get("held"):
        lines.append(f"  held for an operator: {found['held']}")
    return lines
