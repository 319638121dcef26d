"""The worker ``watchkeeper up`` runs inside the manager: same code, same SSH, no setup.

It is an ordinary `WorkerConnection` that dials the manager's own job server on loopback
with the host key pinned, so ``up`` exercises the path a remote worker takes. Only its
enrolment differs: its key lives in the data dir (``worker_ed25519_key``, mode 0600) and is
enrolled *in memory* (`EmbeddedRegistry`) for every zone the running checks are in, never
in the ``worker_keys`` table. The key is local and the manager already trusts itself, so
nothing needs recording for audit; and its zones follow the document on each import, which
a stored enrolment (meant to change only by an operator's hand) would not.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from pathlib import Path

import asyncssh

from watchkeeper.jobs.payloads import DEPLOY_REQUIRES
from watchkeeper.private import private_dir
from watchkeeper.transport import keys
from watchkeeper.transport.client import WorkerConnection, WorkerSettings
from watchkeeper.transport.registry import Enrolment, KeyRegistry
from watchkeeper.transport.server import JobServer
from watchkeeper.worker.deploy import DeployRunner
from watchkeeper.worker.executors import Executors
from watchkeeper.worker.runner import job_runner

logger = logging.getLogger(__name__)

WORKER_KEY_FILE = "worker_ed25519_key"
EMBEDDED_NAME = "embedded"
#: The embedded worker deploys too (`watchkeeper.deploy`): its enrolment carries the label.
DEPLOY_LABELS = DEPLOY_REQUIRES


def load_or_create_worker_key(data_dir: Path) -> Path:
    """The embedded worker's private key file in ``data_dir``, created (0600) if missing."""
    path = data_dir / WORKER_KEY_FILE
    private_dir(data_dir)
    keys.create_worker_key(path, comment="watchkeeper embedded worker", public=False)
    return path


class EmbeddedRegistry:
    """A `KeyRegistry` that knows the embedded worker's key and asks ``fallback`` for others."""

    def __init__(self, fallback: KeyRegistry, public_key: str) -> None:
        self._fallback = fallback
        self._public_key = public_key
        self.zones: frozenset[str] = frozenset()

    async def lookup(self, public_key: str) -> Enrolment | None:
        if public_key == self._public_key:
            return Enrolment(
                name=EMBEDDED_NAME, public_key=public_key, zones=self.zones, labels=DEPLOY_LABELS
            )
        return await self._fallback.lookup(public_key)


#: Checks the embedded worker runs at once (``up --concurrency``). More than a remote
#: worker's 8: it is the only worker of every zone, and a plugin mostly waits. At 10,000
#: checks every 5 s on 2 cores, 16 ran 659 checks/s with half the jobs not run in time,
#: 64 ran 773-1,000/s (two runs) for the same CPU (bench/bench_anchors.py).
EMBEDDED_CONCURRENCY = 64


class EmbeddedWorker:
    """The key, the enrolment and the connection of the worker inside ``up``."""

    def __init__(
        self, data_dir: Path, fallback: KeyRegistry, *, concurrency: int = EMBEDDED_CONCURRENCY
    ) -> None:
        self.key_path = load_or_create_worker_key(data_dir)
        public = keys.canonical_public_key(asyncssh.read_private_key(self.key_path))
        self.registry = EmbeddedRegistry(fallback, public)
        self.concurrency = concurrency
        self.server: JobServer | None = None
        self.connection: WorkerConnection | None = None
        self.executors = Executors()

    def set_zones(self, zones: Collection[str]) -> None:
        """Enrol for ``zones``; a connected worker reconnects to be granted the new set.

        The job server fixes a connection's zones at login, so a change means a new login:
        closing the connection makes the worker redial (after a short backoff).
        """
        new = frozenset(zones)
        if new == self.registry.zones:
            return
        self.registry.zones = new
        logger.info(
            "embedded worker enrolled for zones %s",
            ", ".join(sorted(new)) or "(none)",
            extra={"action": "embedded_worker_enrolled"},
        )
        if self.server is not None:
            self.server.regrant(EMBEDDED_NAME)

    def connect(self, server: JobServer, host_key: asyncssh.SSHKey) -> WorkerConnection:
        """The connection to ``server`` (already listening); the caller runs it."""
        self.server = server
        settings = WorkerSettings(
            host=server.dial_host,
            port=server.port,
            key_path=self.key_path,
            manager_fingerprint=keys.fingerprint(host_key),
            name=EMBEDDED_NAME,
            concurrency=self.concurrency,
            backoff_base=0.2,
            backoff_cap=5.0,
        )
        deploy = DeployRunner(state_dir=self.key_path.parent)
        self.connection = WorkerConnection(settings, job_runner(self.executors, deploy=deploy))
        return self.connection

    async def aclose(self) -> None:
        """Release the executors' pooled connections once the worker has stopped."""
        await self.executors.aclose()
