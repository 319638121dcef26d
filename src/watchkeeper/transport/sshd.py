"""The SSH side of the job server: who may log in, and the one session they may open.

Authentication is by public key only, looked up in the server's `KeyRegistry`; every other
method, and every other kind of request (shell, exec, pty, SFTP, SCP, forwarding of TCP or
Unix sockets either way, tun/tap), is refused when asked, before anything runs. What
arrives on the job subsystem is handed to a `Hub` (the `JobServer`), which decides.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import asyncssh

from watchkeeper.errors import WatchkeeperError
from watchkeeper.transport import protocol
from watchkeeper.transport.keys import canonical_public_key
from watchkeeper.transport.registry import Enrolment, KeyRegistry
from watchkeeper.transport.session import FramedSession
from watchkeeper.transport.workers import ConnectedWorker

logger = logging.getLogger(__name__)


class Hub(Protocol):
    """What the SSH glue reports to: the job server."""

    registry: KeyRegistry

    def attach(self, worker: ConnectedWorker) -> None: ...
    def detach(self, worker: ConnectedWorker, why: str) -> None: ...
    def handle(self, worker: ConnectedWorker, message: protocol.Message) -> None: ...
    def first_refusal(self, fingerprint: str) -> bool: ...


class SSHServer(asyncssh.SSHServer):
    """One SSH connection: public-key auth against the registry, one job session."""

    def __init__(self, server: Hub) -> None:
        self._server = server
        self._conn: asyncssh.SSHServerConnection | None = None
        self._candidate: Enrolment | None = None
        self._sessions: list[JobSession] = []

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn

    def connection_lost(self, exc: Exception | None) -> None:
        for session in self._sessions:
            self._server.detach(session.worker, str(exc) if exc else "connection closed")

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return False

    def kbdint_auth_supported(self) -> bool:
        return False

    def host_based_auth_supported(self) -> bool:
        return False

    def public_key_auth_supported(self) -> bool:
        return True

    async def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        try:
            enrolment = await self._server.registry.lookup(canonical_public_key(key))
        except WatchkeeperError as exc:
            logger.warning("cannot look up worker key: %s; refusing it", exc.message)
            return False
        if enrolment is None:
            fingerprint = key.get_fingerprint("sha256")
            if self._server.first_refusal(fingerprint):
                logger.warning(
                    "refused unknown or revoked worker key %s (the worker calls itself %s); "
                    "enrol it with `watchkeeper worker-key add`; said once an hour per key",
                    fingerprint,
                    username,
                    extra={"action": "worker_key_refused"},
                )
            return False
        # asyncssh asks again for every auth request, signed ones included, one request
        # at a time: the last key accepted before auth completes is the one that signed.
        self._candidate = enrolment
        return True

    def session_requested(self) -> Any:
        if self._conn is None or self._candidate is None:
            return False
        if any(s.started for s in self._sessions):
            return False  # one job session per connection
        session = JobSession(self._server, self._conn, self._candidate)
        self._sessions.append(session)
        return self._conn.create_server_channel(encoding=None), session

    def connection_requested(self, *args: object) -> bool:
        return False

    def server_requested(self, *args: object) -> bool:
        return False

    def unix_connection_requested(self, *args: object) -> bool:
        return False

    def unix_server_requested(self, *args: object) -> bool:
        return False

    def tun_requested(self, *args: object) -> bool:
        return False

    def tap_requested(self, *args: object) -> bool:
        return False


class JobSession(FramedSession, asyncssh.SSHServerSession[bytes]):
    """The ``watchkeeper-jobs@v1`` subsystem; every other session request is refused."""

    def __init__(
        self, server: Hub, conn: asyncssh.SSHServerConnection, enrolment: Enrolment
    ) -> None:
        super().__init__(conn)
        self._server = server
        self.worker = ConnectedWorker(enrolment=enrolment, peer=self)
        self.started = False

    def pty_requested(self, *args: object) -> bool:
        return False

    def shell_requested(self) -> bool:
        return False

    def exec_requested(self, command: str) -> bool:
        return False

    def subsystem_requested(self, subsystem: str) -> bool:
        return subsystem == protocol.SUBSYSTEM

    def session_started(self) -> None:
        self.started = True
        self._server.attach(self.worker)

    def on_message(self, message: protocol.Message) -> None:
        self._server.handle(self.worker, message)

    def on_closed(self, why: str) -> None:
        self._server.detach(self.worker, why)
