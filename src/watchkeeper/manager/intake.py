"""One path for every candidate, polled or pushed: parse, validate, flatten, import or reject.

Candidates are taken one at a time (a lock), so two sources or a push during a poll cannot
interleave imports. The CPU-heavy steps run in a thread to keep the event loop responsive
while a large document is checked.

The running manager runs what the store says is current, whoever imported it: a
``watchkeeper import`` from the command line, another manager on the same database. The
intake remembers which version it handed to the engine; `follow` (called every poll)
compares it with the store's current version and, when another process imported a newer
one, hands that one over the same way, with the difference computed from the hashes.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from watchkeeper import store
from watchkeeper.document import models
from watchkeeper.document.diff import ConfigDiff, diff
from watchkeeper.document.normalize import Hashes, Snapshot, SnapshotCache, snapshot
from watchkeeper.document.problems import Problem, Severity
from watchkeeper.document.validate import Validated, ValidationCache, parse_json, validate
from watchkeeper.errors import DocumentUnreadable

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class IntakeOutcome:
    """What became of one candidate."""

    source: str
    content_hash: str
    accepted: bool
    problems: list[Problem] = field(default_factory=list)
    version_id: int | None = None
    created: bool = False
    diff: ConfigDiff | None = None
    #: Seconds spent parsing, validating and flattening, and then importing.
    check_seconds: float = 0.0
    import_seconds: float = 0.0

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity is Severity.ERROR]


@dataclass(frozen=True, slots=True, kw_only=True)
class Checked:
    """A candidate after the pure steps: validated and, when valid, flattened."""

    validated: Validated
    snapshot: Snapshot | None


def check_candidate(
    body: bytes,
    cache: ValidationCache | None = None,
    snapshot_cache: SnapshotCache | None = None,
) -> Checked:
    """Parse, validate and flatten; raise `DocumentUnreadable` for a body that is not JSON."""
    with gc_paused():
        validated = validate(parse_json(body), cache=cache)
        flat = None
        if validated.document is not None:
            flat = snapshot(validated.document, snapshot_cache, validated.origins)
    return Checked(validated=validated, snapshot=flat)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while building a large, acyclic object graph.

    A 100,000-object document otherwise triggers hundreds of collections that each walk
    the growing heap: validation time doubles. Nothing built here forms cycles, so the
    pause loses nothing; the long-lived result is then frozen out of later collections.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
        gc.freeze()


#: Called after a candidate created a new version, with the snapshot it imported: how the
#: engine learns what changed without reading the store back.
ImportHook = Callable[[IntakeOutcome, Snapshot], None]


class ConfigIntake:
    """Accepts candidates into a store; remembers validated objects between candidates."""

    def __init__(
        self,
        db: store.Database,
        *,
        clock: Callable[[], datetime],
        on_import: ImportHook | None = None,
    ) -> None:
        self._db = db
        self._clock = clock
        self.on_import = on_import
        self._cache = ValidationCache()
        self._snapshot_cache = SnapshotCache()
        self._lock = asyncio.Lock()
        #: The version the engine was last handed, and the hashes of what it runs.
        self.version_id: int | None = None
        self._hashes: Hashes | None = None

    async def start(self) -> None:
        """Remember what the store runs now, before the engine loads it."""
        async with self._lock, self._db.session() as session:
            current = await store.current_version(session)
            self._hashes = await store.running_hashes(session)
        self.version_id = None if current is None else current.id

    async def follow(self) -> bool:
        """Hand over the store's current version if another process imported it; whether
        it did."""
        async with self._lock:
            async with self._db.session() as session:
                current = await store.current_version(session)
                if current is None or current.id == self.version_id:
                    return False
                hashes = await store.running_hashes(session)
                checks = {record.key: record for record in await store.list_checks(session)}
                objects = {
                    kind: {r.name: r for r in await store.list_objects(session, kind)}
                    for kind in models.SECTIONS
                }
            changes = diff(self._hashes or Hashes(), hashes)
            self.version_id, self._hashes = current.id, hashes
            logger.info(
                "configuration version %s was imported by another process (%s): applying it",
                current.id,
                current.source,
                extra={"action": "config_followed", "version": current.id},
            )
            if self.on_import is not None:
                outcome = IntakeOutcome(
                    source=current.source,
                    content_hash=current.content_hash,
                    accepted=True,
                    version_id=current.id,
                    created=True,
                    diff=changes,
                )
                self.on_import(outcome, Snapshot(objects=objects, checks=checks))
            return True

    async def submit(self, body: bytes, *, source: str) -> IntakeOutcome:
        """Take a candidate through validation and import; never raises for a bad document."""
        async with self._lock:
            started = time.perf_counter()
            try:
                checked = await asyncio.to_thread(
                    check_candidate, body, self._cache, self._snapshot_cache
                )
            except DocumentUnreadable as exc:
                digest = hashlib.sha256(body).hexdigest()
                problems = [Problem(pointer="", message=exc.message)]
                await self._reject(digest, source, problems, body)
                return IntakeOutcome(
                    source=source, content_hash=digest, accepted=False, problems=problems
                )
            validated = checked.validated
            if checked.snapshot is None:
                await self._reject(validated.content_hash, source, validated.problems, body)
                return IntakeOutcome(
                    source=source,
                    content_hash=validated.content_hash,
                    accepted=False,
                    problems=validated.problems,
                )
            checked_at = time.perf_counter()
            outcome = await store.import_snapshot(
                self._db,
                snapshot=checked.snapshot,
                content_hash=validated.content_hash,
                document_json=body.decode("utf-8", errors="replace"),
                source=source,
                warnings=validated.warnings,
                now=self._clock(),
            )
            if outcome.created:
                logger.info(
                    "imported configuration version %s from %s: %s",
                    outcome.version.id,
                    source,
                    outcome.diff.summary(),
                    extra={"action": "config_imported", "version": outcome.version.id},
                )
            done = time.perf_counter()
            result = IntakeOutcome(
                source=source,
                content_hash=validated.content_hash,
                accepted=True,
                problems=validated.problems,
                version_id=outcome.version.id,
                created=outcome.created,
                diff=outcome.diff,
                check_seconds=checked_at - started,
                import_seconds=done - checked_at,
            )
            if outcome.created:
                self.version_id = outcome.version.id
                self._hashes = checked.snapshot.hashes()
                if self.on_import is not None:
                    self.on_import(result, checked.snapshot)
            return result

    async def _reject(self, digest: str, source: str, problems: list[Problem], body: bytes) -> None:
        errors = [p for p in problems if p.severity is Severity.ERROR]
        logger.warning(
            "rejected candidate from %s: %d problem(s), first: %s",
            source,
            len(errors),
            errors[0] if errors else "?",
            extra={"action": "config_rejected", "source": source},
        )
        await store.record_rejection(
            self._db,
            content_hash=digest,
            source=source,
            problems=problems,
            document=body.decode("utf-8", errors="replace"),
            now=self._clock(),
        )
