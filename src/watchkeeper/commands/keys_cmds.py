"""Commands about SSH keys: ``keys`` (the manager's host key; ``keys export|import`` to
share it between the managers of a cluster) and ``worker-key add|list|revoke``, and
``worker-key pending|approve|reject`` (the agent keys deploys bring back).

Enrolment is a manager-side command, not part of the document: the document comes from an
external source, and whoever controls that source must not be able to let a new key serve
a zone. A running manager re-checks connected keys every heartbeat interval, so a revoke
made here closes that worker's connection within one interval. For the same reason a
deploy that installs an agent only *offers* its key: an admin approves it here (or on the
infrastructure page), which enrols it for the host's zone as that host's agent.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from watchkeeper import store
from watchkeeper.commands.common import database, database_exists, emit_json
from watchkeeper.commands.exits import EXIT_OK
from watchkeeper.deploy import repository as deploy_store
from watchkeeper.deploy.views import REJECT_NOTE, enrolment_dict
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


async def keygen(args: argparse.Namespace) -> int:
    """Create a worker key pair if missing; print the public key (to enrol, or approve)."""
    path = Path(args.file)
    made = keys.create_worker_key(path)
    public = keys.read_public_key_file(path.with_name(path.name + ".pub"))
    print(keys.canonical_public_key(public))
    print(
        f"{'created' if made else 'kept'} {path} ({keys.fingerprint(public)})",
        file=sys.stderr,
    )
    return EXIT_OK


async def host_key(args: argparse.Namespace) -> int:
    key = keys.load_or_create_host_key(Path(args.data_dir))
    print(keys.fingerprint(key))
    print(f"host key: {keys.host_key_path(Path(args.data_dir)).absolute()}", file=sys.stderr)
    return EXIT_OK


async def host_key_export(args: argparse.Namespace) -> int:
    """Write the host key to FILE (0600, never over a file unless --force), or stdout (-)."""
    data_dir = Path(args.data_dir)
    key = keys.read_host_key(data_dir)
    secret = key.export_private_key()
    if args.file == "-":
        sys.stdout.buffer.write(secret)
        sys.stdout.flush()
    else:
        target = Path(args.file)
        try:
            keys.write_private(target, secret, replace=args.force)
        except FileExistsError:
            raise UsageError(f"FILE: {target} exists; --force overwrites it") from None
        except OSError as exc:
            raise UsageError(f"FILE: cannot write {target}: {exc.strerror}") from exc
        print(f"exported {keys.fingerprint(key)} to {target}", file=sys.stderr)
    return EXIT_OK


async def host_key_import(args: argparse.Namespace) -> int:
    """Install FILE as this data dir's host key (0600); print its fingerprint."""
    key = keys.read_host_key_file(Path(args.file), argument="FILE")
    data_dir = Path(args.data_dir)
    changed = keys.install_host_key(data_dir, key, force=args.force)
    print(keys.fingerprint(key))
    path = keys.host_key_path(data_dir).absolute()
    if changed:
        print(f"installed as {path}; a running manager serves it once restarted", file=sys.stderr)
    else:
        print(f"{path} already holds this key", file=sys.stderr)
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
    rows = await _read_store(args, _worker_keys)
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


async def worker_key_pending(args: argparse.Namespace) -> int:
    """The agent keys deploys brought back, waiting for ``approve`` or ``reject``."""
    rows = await _read_store(args, deploy_store.pending_keys)
    if args.format == "json":
        emit_json([row.as_dict() for row in rows])
        return EXIT_OK
    if not rows:
        print("no agent key waits for approval", file=sys.stderr)
    for row in rows:
        seen = datetime.fromtimestamp(row.seen_at, UTC)
        print(
            f"{row.host}  {row.fingerprint}  zone={row.zone}  deployment={row.deployment}  "
            f"seen {seen:%Y-%m-%d %H:%M}"
        )
    return EXIT_OK


async def _no_pending(db: store.Database, host: str, exc: UsageError) -> UsageError:
    """The refusal of an approve or reject, saying when the host's agent is enrolled already
    (the usual reason: approved before)."""
    async with db.session() as session:
        enrolled = [
            k.name
            for k in await store.list_worker_keys(session, include_revoked=False)
            if k.agent_for == host
        ]
    if enrolled:
        return UsageError(f"{exc.message}; the agent of {host} is enrolled as {enrolled[0]}")
    return exc


async def worker_key_approve(args: argparse.Namespace) -> int:
    """Enrol a host's pending agent key for the host's zone, as that host's agent."""
    db = database(args)
    try:
        await db.migrate()
        try:
            added, notes = await deploy_store.approve(db, args.host, now=time.time())
        except UsageError as exc:
            raise await _no_pending(db, args.host, exc) from None
        except store.WorkerKeyConflict as exc:
            raise UsageError(exc.message) from exc
    finally:
        await db.aclose()
    if args.format == "json":
        emit_json(enrolment_dict(args.host, added, notes))
        return EXIT_OK
    print(
        f"approved {args.host}: enrolled {added.name} ({added.fingerprint}) for zone "
        f"{', '.join(added.zones)} as the agent of host {args.host}"
    )
    for note in notes:
        print(f"  {note}")
    return EXIT_OK


async def worker_key_reject(args: argparse.Namespace) -> int:
    """Refuse a host's pending agent key for good: kept as a revoked worker key."""
    db = database(args)
    try:
        await db.migrate()
        try:
            entry = await deploy_store.reject(db, args.host, now=time.time())
        except UsageError as exc:
            raise await _no_pending(db, args.host, exc) from None
        except store.WorkerKeyConflict as exc:
            raise UsageError(exc.message) from exc
        async with db.session() as session:
            kept = await store.find_by_public_key(session, entry.public_key)
    finally:
        await db.aclose()
    assert kept is not None, "reject keeps the key as a revoked worker key"
    if args.format == "json":
        emit_json(enrolment_dict(args.host, kept, [REJECT_NOTE]))
        return EXIT_OK
    print(f"rejected {args.host}: {entry.fingerprint} is kept as the revoked key {kept.name}")
    print(f"  {REJECT_NOTE}")
    return EXIT_OK


_Row = TypeVar("_Row")


async def _worker_keys(db: store.Database) -> list[store.WorkerKey]:
    async with db.session() as session:
        return await store.list_worker_keys(session)


async def _read_store(
    args: argparse.Namespace, read: Callable[[store.Database], Awaitable[list[_Row]]]
) -> list[_Row]:
    """What ``read`` finds in the store of ``args``; nothing when there is no store yet
    (a list command never creates one)."""
    if not database_exists(args):
        return []
    db = database(args)
    try:
        await db.migrate()
        return await read(db)
    finally:
        await db.aclose()
