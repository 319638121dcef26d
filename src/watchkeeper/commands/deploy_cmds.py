"""``watchkeeper deploy status|check|apply``, and the deployments part of ``watchkeeper plan``.

The ``deploy`` commands ask the *running* manager, through its API (``/api/v1/deploy``),
exactly as ``watchkeeper infra`` does (the same ``--url``, ``--token``, ``--data-dir``
discovery of the manager and its token): each host's last run lives in the stage's
memory, and a check or an apply is carried out by its loop. Reads need a viewer, check
and apply an operator. Approving an agent's key is ``watchkeeper worker-key approve``.

Exit codes: 0 done; 1 the manager cannot be reached (or failed: 5xx); 2 the manager
refused (4xx: its message is printed, ``no deployment 'bse' (deployments: base)``) or
the command line is wrong.

``watchkeeper plan DOC`` needs no manager: `preview` holds the candidate's deployments
against the last run the store keeps of each host (`watchkeeper.deploy.plan`).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from watchkeeper import __version__
from watchkeeper.commands import manager_client
from watchkeeper.deploy import plan as deploy_plan
from watchkeeper.deploy import repository
from watchkeeper.deploy.desired import desired
from watchkeeper.deploy.rollout import Status
from watchkeeper.document.normalize import Snapshot
from watchkeeper.errors import StoreError, WatchkeeperError
from watchkeeper.store.db import Database
from watchkeeper.transport import keys

API = "/api/v1/deploy"

# --- talking to the manager ---------------------------------------------------------------


async def _run(
    args: argparse.Namespace,
    method: str,
    path: str,
    show: manager_client.Show,
    *,
    body: Mapping[str, Any] | None = None,
) -> int:
    """One call to ``/api/v1/deploy``; its answer shown (or printed as JSON)."""
    return await manager_client.call(args, method, API + path, show, body=body)


def _segment(name: str) -> str:
    return quote(name, safe="")


# --- the commands -------------------------------------------------------------------------


def policy(deployment: Mapping[str, Any]) -> str:
    """``drift repair, every 10 min, max_concurrent 5, max_failures 0``."""
    every = float(deployment.get("every") or 0)
    minutes = f"{every / 60:g} min" if every >= 60 else f"{every:g} s"
    return (
        f"drift {deployment['drift']}, every {minutes}, max_concurrent "
        f"{deployment['max_concurrent']}, max_failures {deployment['max_failures']}"
    )


def host_line(host: Mapping[str, Any], *, now: float) -> str:
    """``legacy1  WARNING   drift: would change /etc/motd (repairing)  [check 3 min ago]``."""
    details = []
    if host.get("at"):
        at = datetime.fromisoformat(str(host["at"])).timestamp()
        details.append(f"{host.get('mode')} {deploy_plan.ago(now - at)}")
    else:
        details.append("never run")
    if host.get("agent_version"):
        details.append(f"agent {host['agent_version']}")
    if host.get("running"):
        details.append(f"{host['running']} running")
    if host.get("waiting") and host["waiting"] != host.get("summary"):
        details.append(str(host["waiting"]))
    return f"{host['host']}  {host['state']:<8}  {host['summary']}  [{', '.join(details)}]"


def deployment_lines(deployment: Mapping[str, Any], *, now: float) -> list[str]:
    hosts = deployment.get("hosts") or []
    lines = [
        f"deploy {deployment['name']}: {len(hosts)} host{'' if len(hosts) == 1 else 's'} "
        f"({policy(deployment)})"
    ]
    if deployment.get("halted"):
        lines.append(
            f"  rollout halted: {deployment['halted']}; resume: watchkeeper deploy apply "
            f"{deployment['name']}"
        )
    lines.extend(f"  {host_line(h, now=now)}" for h in hosts)
    return lines


async def status(args: argparse.Namespace) -> int:
    def show_one(deployment: Mapping[str, Any]) -> None:
        print("\n".join(deployment_lines(deployment, now=time.time())))

    def show_all(page: Mapping[str, Any]) -> None:
        items = page.get("items") or []
        if not items:
            print("no deployment is in force", file=sys.stderr)
        for deployment in items:
            show_one(deployment)

    if args.name is not None:
        return await _run(args, "GET", f"/deployments/{_segment(args.name)}", show_one)
    return await _run(args, "GET", "/deployments", show_all)


def _body(args: argparse.Namespace) -> dict[str, Any] | None:
    return {"host": args.host} if args.host is not None else None


async def check(args: argparse.Namespace) -> int:
    def show(answer: Mapping[str, Any]) -> None:
        listed = ", ".join(answer.get("hosts") or []) or "no host"
        print(f"deploy {args.name}: checking {listed} now")

    path = f"/deployments/{_segment(args.name)}/check"
    return await _run(args, "POST", path, show, body=_body(args))


async def apply(args: argparse.Namespace) -> int:
    def show(answer: Mapping[str, Any]) -> None:
        listed = ", ".join(answer.get("hosts") or []) or "no host"
        print(f"deploy {args.name}: applying {listed} now (a check first, then what it finds)")

    path = f"/deployments/{_segment(args.name)}/apply"
    return await _run(args, "POST", path, show, body=_body(args))


# --- watchkeeper plan DOC: the deployments part, offline -----------------------------------


def host_fingerprint(data_dir: Path) -> str:
    """The fingerprint of the manager's host key in ``data_dir`` (the agents' pin, part of
    each host's digest), or "" when there is none; never creates one."""
    if not keys.host_key_path(data_dir).exists():
        return ""
    try:
        return keys.fingerprint(keys.load_or_create_host_key(data_dir))
    except WatchkeeperError:
        return ""  # unreadable: every host then shows as changed, which is the safe side


async def preview(
    db: Database | None, snapshot: Snapshot, *, data_dir: Path
) -> deploy_plan.Preview:
    """The candidate's deployments against each host's last run the store keeps, with the
    digests the manager of ``data_dir`` would give them (its version and host key)."""
    objects = snapshot.objects
    found = desired(
        [r.spec for r in objects.get("deployments", {}).values()],
        [r.spec for r in objects.get("hosts", {}).values()],
        version=__version__,
        fingerprint=host_fingerprint(Path(data_dir)),
    )
    statuses: dict[tuple[str, str], Status] = {}
    halts: dict[str, str] = {}
    note = ""
    if db is not None:
        try:
            statuses = await repository.statuses(db)
            halts = await repository.halts(db)
        except StoreError as exc:
            note = f"the store keeps no deployment runs yet ({exc.message}); run db upgrade"
    return deploy_plan.preview(found, statuses, halts=halts, note=note)


def preview_lines(found: deploy_plan.Preview) -> list[str]:
    """`preview` as the lines ``watchkeeper plan`` prints after the infrastructure's."""
    return deploy_plan.lines(found, now=time.time())
