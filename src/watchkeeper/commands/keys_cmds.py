"""Commands about SSH keys: ``keys`` (the manager's host key) and ``worker-key add|list|revoke``.

Enrolment is a manager-side command, not part of the document: the document comes from an
external source, and whoever controls that source must not be able to let a new key serve
a zone. A running manager re-checks connected keys every heartbeat interval, so a revoke
made here closes that worker's connection within one interval.
"""

from __future__ import annotations

import argparse
import re
import sys
from datetime import UTC, datetime
from pathlib import Path

from watchkeeper import store
from watchkeeper.commands.common import EXIT_OK, database, database_exists, emit_json
from watchkeeper.document.models import NAME_PATTERN
from watchkeeper.document.problems import did_you_mean
from watchkeeper.errors import UsageError
from watchkeeper.transport import keys


def split_list(text: str | None) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``, keeping order and dropping repeats."""
    items = [item.strip() for item in (text or "").split(",")]
    return list(dict.fromkeys(item for item in items if item))


def parse_labels(text: str | None) -> dict[str, str]:
    """``"role=web,tier=1"`` -> ``{"role": "web", "tier": "1"}``; `UsageError` otherwise."""
    labels: dict[str, str] = {}
    for item in split_list(text):
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"label {item!r} is not NAME=VALUE")
        labels[name.strip()] = value.strip()
    return labels


def enrolment_warnings(
    zones: list[str], agent_for: str | None, running: dict[str, list[str]]
) -> list[str]:
    """What an enrolment names that the running configuration lacks (a typo, or early).

    Not an error: a key may be enrolled before the document that brings its zone.
    """
    if not running["zones"]:
        return []  # no configuration imported yet: nothing to compare with
    found = [
        f"zone {zone!r} is not in the running configuration"
        f"{did_you_mean(zone, running['zones'])}; the key serves it once a document has it"
        for zone in zones
        if zone not in running["zones"]
    ]
    if agent_for is not None and agent_for not in running["hosts"]:
        found.append(
            f"host {agent_for!r} is not in the running configuration"
            f"{did_you_mean(agent_for, running['hosts'])}"
        )
    return found


async def host_key(args: argparse.Namespace) -> int:
    key = keys.load_or_create_host_key(Path(args.data_dir))
    print(keys.fingerprint(key))
    print(f"host key: {keys.host_key_path(Path(args.data_dir)).absolute()}", file=sys.stderr)
    return EXIT_OK


async def worker_key_add(args: argparse.Namespace) -> int:
    zones = split_list(args.zones)
    if not zones:
        raise UsageError("a worker key needs at least one zone: --zones ZONE[,ZONE...]")
    labels = parse_labels(args.labels)
    agent_for = args.agent_for
    if agent_for is not None and not re.fullmatch(NAME_PATTERN, agent_for):
        raise UsageError(f"--agent-for: {agent_for!r} is not a host name of the document")
    key = keys.read_public_key_file(Path(args.public_key))
    db = database(args)
    try:
        await db.migrate()
        async with db.session() as session:
            running = {
                kind: [o.name for o in await store.list_objects(session, kind)]
                for kind in ("zones", "hosts")
            }
        added = await store.add_worker_key(
            db,
            name=args.name,
            public_key=keys.canonical_public_key(key),
            fingerprint=keys.fingerprint(key),
            zones=zones,
            labels=labels,
            agent_for=agent_for,
            now=datetime.now(UTC),
        )
    except store.WorkerKeyConflict as exc:
        raise UsageError(exc.message) from exc
    finally:
        await db.aclose()
    for warning in enrolment_warnings(zones, agent_for, running):
        print(f"warning: {warning}", file=sys.stderr)
    if args.format == "json":
        emit_json(added.as_dict())
    else:
        role = "" if added.agent_for is None else f" as the agent of host {added.agent_for}"
        print(
            f"enrolled {added.name} ({added.fingerprint}) for zones {', '.join(added.zones)}{role}"
        )
    return EXIT_OK


async def worker_key_list(args: argparse.Namespace) -> int:
    rows: list[store.WorkerKey] = []
    if database_exists(args):
        db = database(args)
        try:
            await db.migrate()
            async with db.session() as session:
                rows = await store.list_worker_keys(session)
        finally:
            await db.aclose()
    if args.format == "json":
        emit_json([row.as_dict() for row in rows])
        return EXIT_OK
    if not rows:
        print("no worker keys are enrolled", file=sys.stderr)
    for row in rows:
        labels = ",".join(f"{k}={v}" for k, v in sorted(row.labels.items())) or "-"
        state = f"revoked {row.revoked_at:%Y-%m-%d %H:%M}" if row.revoked_at else "active"
        agent = "" if row.agent_for is None else f"  agent-for={row.agent_for}"
        print(
            f"{row.name}  {row.fingerprint}  zones={','.join(row.zones)}  labels={labels}"
            f"{agent}  {state}"
        )
    return EXIT_OK


async def worker_key_revoke(args: argparse.Namespace) -> int:
    db = database(args)
    try:
        await db.migrate()
        revoked = await store.revoke_worker_key(db, args.name, now=datetime.now(UTC))
    finally:
        await db.aclose()
    if revoked is None:
        raise UsageError(f"no worker key named {args.name!r}")
    print(f"revoked {revoked.name} ({revoked.fingerprint})")
    return EXIT_OK
