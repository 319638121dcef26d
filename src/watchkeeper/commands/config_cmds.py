"""Commands about the document: validate, schema, plan, import, versions, rejections, db."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from watchkeeper import store
from watchkeeper.commands import deploy_cmds, infra_cmds
from watchkeeper.commands.common import database, database_exists, emit_json, read_candidate
from watchkeeper.commands.exits import EXIT_INVALID, EXIT_OK
from watchkeeper.document.diff import ConfigDiff, Delta, diff, summary_text
from watchkeeper.document.jsonschema import json_schema_text
from watchkeeper.document.normalize import Hashes, Snapshot
from watchkeeper.document.problems import Problem
from watchkeeper.document.reference import reference_markdown
from watchkeeper.errors import DocumentUnreadable
from watchkeeper.manager.intake import Checked, ConfigIntake, check_candidate

T = TypeVar("T")

#: How many names per kind a text plan lists before it says "and N more".
PLAN_LIST_LIMIT = 20


def _check(body: bytes) -> Checked | Problem:
    try:
        return check_candidate(body)
    except DocumentUnreadable as exc:
        return Problem(pointer="", message=exc.message)


def _print_problems(problems: list[Problem]) -> None:
    for problem in problems:
        prefix = "warning: " if problem.severity.value == "warning" else ""
        print(f"{prefix}{problem}")


def _counts(snapshot: Snapshot) -> dict[str, int]:
    counts = {kind: len(objs) for kind, objs in snapshot.objects.items() if objs}
    counts["checks"] = len(snapshot.checks)
    return counts


async def validate(args: argparse.Namespace) -> int:
    body, name = await read_candidate(args)
    checked = _check(body)
    if isinstance(checked, Problem):
        if args.format == "json":
            emit_json({"valid": False, "source": name, "errors": [checked.as_dict()]})
        else:
            print(checked)
        return EXIT_INVALID
    validated = checked.validated
    if args.format == "json":
        emit_json(
            {
                "valid": validated.ok,
                "source": name,
                "content_hash": validated.content_hash,
                "errors": [p.as_dict() for p in validated.errors],
                "warnings": [p.as_dict() for p in validated.warnings],
                "counts": _counts(checked.snapshot) if checked.snapshot else None,
            }
        )
        return EXIT_OK if validated.ok else EXIT_INVALID
    _print_problems(validated.errors + validated.warnings)
    if checked.snapshot is None:
        print(f"{name}: invalid, {len(validated.errors)} error(s)", file=sys.stderr)
        return EXIT_INVALID
    counts = ", ".join(f"{n} {kind}" for kind, n in _counts(checked.snapshot).items())
    print(f"{name}: valid ({counts}); {len(validated.warnings)} warning(s)", file=sys.stderr)
    return EXIT_OK


async def schema(args: argparse.Namespace) -> int:
    sys.stdout.write(json_schema_text() if args.format == "json" else reference_markdown())
    return EXIT_OK


async def plan(args: argparse.Namespace) -> int:
    body, name = await read_candidate(args)
    checked = _check(body)
    if isinstance(checked, Problem) or checked.snapshot is None:
        problems = [checked] if isinstance(checked, Problem) else checked.validated.errors
        _print_problems(problems)
        print(f"{name}: invalid, nothing to plan", file=sys.stderr)
        return EXIT_INVALID
    current: dict[str, Any] | None = None
    if database_exists(args):  # plan never creates a database
        db = database(args)
        try:
            result = await store.plan(db, checked.snapshot)
            async with db.session() as session:
                version = await store.current_version(session)
            infra = await infra_cmds.preview(db, checked.snapshot, now=time.time())
            deployments = await deploy_cmds.preview(db, checked.snapshot, data_dir=args.data_dir)
        finally:
            await db.aclose()
        if version is not None:
            current = {"id": version.id, "content_hash": version.content_hash}
    else:
        result = diff(Hashes(), checked.snapshot.hashes())
        infra = await infra_cmds.preview(None, checked.snapshot, now=time.time())
        deployments = await deploy_cmds.preview(None, checked.snapshot, data_dir=args.data_dir)
    identical = current is not None and current["content_hash"] == checked.validated.content_hash
    if args.format == "json":
        emit_json(
            {
                "source": name,
                "current_version": current,
                "content_hash": checked.validated.content_hash,
                "identical": identical,
                "summary": result.summary(),
                "objects": {k: _delta_dict(d) for k, d in result.objects.items() if d},
                "checks": _delta_dict(result.checks),
                "infrastructure": infra,
                "deployments": deployments.as_dict(),
            }
        )
        return EXIT_OK
    against = f"version {current['id']}" if current else "an empty configuration"
    print(f"Plan for {name} against {against}:")
    if identical or result.empty:
        print("  no changes")
    else:
        _print_plan(result)
    # The platforms may differ from the document even when the document does not change.
    for line in infra_cmds.preview_lines(infra):
        print(line)
    # So may the hosts' software: the last run of each tells whether its plan still holds.
    for line in deploy_cmds.preview_lines(deployments):
        print(line)
    return EXIT_OK


def _delta_dict(delta: Delta) -> dict[str, list[str]]:
    return {"added": delta.added, "changed": delta.changed, "removed": delta.removed}


def _print_plan(result: ConfigDiff) -> None:
    for kind, delta in [*result.objects.items(), ("checks", result.checks)]:
        if not delta:
            continue
        counts = delta.counts()
        print(f"  {kind}: +{counts['added']} ~{counts['changed']} -{counts['removed']}")
        for mark, names in (("+", delta.added), ("~", delta.changed), ("-", delta.removed)):
            for item in names[:PLAN_LIST_LIMIT]:
                print(f"    {mark} {item}")
            if len(names) > PLAN_LIST_LIMIT:
                print(f"    {mark} … and {len(names) - PLAN_LIST_LIMIT} more")


async def import_(args: argparse.Namespace) -> int:
    body, name = await read_candidate(args)
    db = database(args)
    try:
        await db.migrate()
        intake = ConfigIntake(db, clock=lambda: datetime.now(UTC))
        outcome = await intake.submit(body, source=name)
    finally:
        await db.aclose()
    if args.format == "json":
        emit_json(
            {
                "accepted": outcome.accepted,
                "created": outcome.created,
                "version": outcome.version_id,
                "content_hash": outcome.content_hash,
                "summary": outcome.diff.summary() if outcome.diff else None,
                "problems": [p.as_dict() for p in outcome.problems],
            }
        )
    elif not outcome.accepted:
        _print_problems(outcome.errors)
        print(f"{name}: rejected, {len(outcome.errors)} error(s); nothing changed", file=sys.stderr)
    elif not outcome.created:
        print(f"{name}: identical to version {outcome.version_id}; nothing to do")
    else:
        _print_problems([p for p in outcome.problems if p not in outcome.errors])
        summary = outcome.diff.summary() if outcome.diff else {}
        print(f"{name}: imported as version {outcome.version_id}: {summary_text(summary)}")
    return EXIT_OK if outcome.accepted else EXIT_INVALID


async def _read_list(args: argparse.Namespace, fetch: Callable[..., Awaitable[list[T]]]) -> list[T]:
    """Rows from a listing function; none when there is no database yet (never create one)."""
    if not database_exists(args):
        return []
    db = database(args)
    try:
        async with db.session() as session:
            return await fetch(session, limit=args.limit, offset=0)
    finally:
        await db.aclose()


async def versions(args: argparse.Namespace) -> int:
    rows = await _read_list(args, store.list_versions)
    if not rows and args.format == "text":
        print("no configuration has been imported yet", file=sys.stderr)
    if args.format == "json":
        emit_json([_version_dict(v) for v in rows])
        return EXIT_OK
    for v in rows:
        print(
            f"{v.id:>5}  {v.created_at:%Y-%m-%d %H:%M:%S}  {v.content_hash[:12]}  "
            f"{v.source}  {summary_text(v.summary)}"
        )
    return EXIT_OK


def _version_dict(v: store.ConfigVersion) -> dict[str, Any]:
    return {
        "id": v.id,
        "content_hash": v.content_hash,
        "source": v.source,
        "created_at": v.created_at.isoformat(),
        "summary": v.summary,
    }


async def rejections(args: argparse.Namespace) -> int:
    rows = await _read_list(args, store.list_rejections)
    if not rows and args.format == "text":
        print("no candidate has been rejected", file=sys.stderr)
    if args.format == "json":
        emit_json([r.as_dict() for r in rows])
        return EXIT_OK
    for r in rows:
        print(f"{r.id:>5}  {r.last_seen:%Y-%m-%d %H:%M:%S}  x{r.times}  {r.source}")
        for problem in r.problems[:10]:
            print(f"         {problem['pointer'] or '/'}: {problem['message']}")
    return EXIT_OK


async def db_upgrade(args: argparse.Namespace) -> int:
    db = database(args)
    try:
        await db.migrate()
    finally:
        await db.aclose()
    print(f"database {db.url} is at the latest schema")
    return EXIT_OK
