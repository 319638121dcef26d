"""The ssh executor: run a command or plugin on the host over SSH, like check_by_ssh.

The remote command's exit status and output are read exactly as the plugin executor reads
a local plugin's (`plugin_outcome`): 0-3 is the state, the first line the summary, then
long output and perfdata. Everything that stops the command from running (refused
connection, DNS, authentication, host key, timeout) is UNKNOWN with a line naming it,
e.g. ``SSH UNKNOWN - host key of 10.0.0.2:22 does not match known_hosts (...)``.

Authentication is the check's private key only: no password, agent, keyboard-interactive
or ``~/.ssh/config``. The key reference is resolved on every check, so a rotated key file
takes effect at once; parsing is cached by content.

Host keys come from one OpenSSH known_hosts file (`default_known_hosts_path`). ``strict``
needs the host's key there (``[host]:port`` lines for ports other than 22). ``accept-new``
records an unknown host's key (a plain, unhashed OpenSSH line appended under an exclusive
`flock`, so concurrent first contacts write one line) and trusts it from then on. A key
that differs from a recorded one is refused in both modes.

One connection per (address, port, user, key) serves every check, one channel each, at
most `DEFAULT_MAX_SESSIONS` at a time because OpenSSH's ``MaxSessions`` defaults to 10.
A connection that closes (or stops answering keepalives) is dropped and the next check
reconnects; one left unused for ``idle_timeout`` seconds is closed. A check that times out
retires its connection: sshd holds the abandoned session's slot until the command exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import fcntl
import hashlib
import logging
import os
import shlex
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import ClassVar, Literal

import asyncssh
from pydantic import BaseModel, Field

from watchkeeper.document.fields import Command, PluginState, Port, SecretRef, Strict
from watchkeeper.errors import SecretError
from watchkeeper.plugins import CHECKS
from watchkeeper.results import CheckOutcome, CheckState
from watchkeeper.secrets import resolve_secret
from watchkeeper.worker.executors.base import SpecExecutor, outcome
from watchkeeper.worker.executors.plugin import (
    DEFAULT_MAX_OUTPUT,
    Outcomes,
    ProcessResult,
    plugin_outcome,
)
from watchkeeper.worker.executors.tcp import host_port

logger = logging.getLogger(__name__)

#: Overrides where the known_hosts file is (default ``~/.ssh/known_hosts``).
KNOWN_HOSTS_ENV = "WATCHKEEPER_SSH_KNOWN_HOSTS"
#: Channels open at once per connection; below OpenSSH's default ``MaxSessions 10``.
DEFAULT_MAX_SESSIONS = 8
#: Seconds an unused connection stays open.
DEFAULT_IDLE_TIMEOUT = 60.0
#: Parsed private keys kept, by content; old ones go first when a key is rotated.
KEY_CACHE_SIZE = 32
#: Seconds of silence before a keepalive; three unanswered ones close a dead connection.
KEEPALIVE_INTERVAL = 15.0
#: sshd answers a channel open in milliseconds: one pending this long means a dead peer.
OPEN_PATIENCE = 1.0

#: (address, port, user, key fingerprint): what one pooled connection serves.
PoolKey = tuple[str, int, str, str]


def default_known_hosts_path(environ: Mapping[str, str] | None = None) -> Path:
    """``$WATCHKEEPER_SSH_KNOWN_HOSTS``, else the worker user's ``~/.ssh/known_hosts``."""
    env = os.environ if environ is None else environ
    configured = env.get(KNOWN_HOSTS_ENV)
    return Path(configured) if configured else Path.home() / ".ssh" / "known_hosts"


class HostKeyStatus(enum.Enum):
    """What a known_hosts file says about the key a host offers."""

    #: The file lists this key for the host.
    KNOWN = "known"
    #: The file lists no key for the host: strict refuses, accept-new records it.
    UNKNOWN = "unknown"
    #: The file lists other keys for the host: refused in every mode.
    CHANGED = "changed"


def host_key_status(
    known: asyncssh.SSHKnownHosts, host: str, addr: str, port: int, key: asyncssh.SSHKey
) -> HostKeyStatus:
    """Look ``key`` up as OpenSSH does (``[host]:port`` when the port is not 22).

    As in asyncssh, a host's lines without a port also vouch for its other ports unless
    a ``[host]:port`` line exists.
    """
    keys, ca_keys, *_ = known.match(host, addr, None if port == 22 else port)
    if key in keys:
        return HostKeyStatus.KNOWN
    return HostKeyStatus.CHANGED if keys or ca_keys else HostKeyStatus.UNKNOWN


def known_hosts_line(host: str, port: int, key: asyncssh.SSHKey) -> str:
    """The line OpenSSH appends for a new host (unhashed): ``[host]:port alg base64``."""
    pattern = host if port == 22 else f"[{host}]:{port}"
    algorithm, blob = key.export_public_key("openssh").decode().split()[:2]
    return f"{pattern} {algorithm} {blob}\n"


class KnownHostsFile:
    """An OpenSSH known_hosts file: parsed once per change, appended to under a lock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._cached: tuple[tuple[int, int, int], asyncssh.SSHKnownHosts] | None = None

    def load(self) -> asyncssh.SSHKnownHosts:
        """The current entries (none if the file is missing); `OSError`, `ValueError`."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return asyncssh.SSHKnownHosts()
        signature = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        if self._cached is None or self._cached[0] != signature:
            text = self.path.read_text(encoding="utf-8")
            self._cached = (signature, asyncssh.import_known_hosts(text))
        return self._cached[1]

    def accept_new(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> HostKeyStatus:
        """Record ``key`` for ``host`` unless the file knows the host; return the status before.

        Read and append happen under an exclusive `flock`, so checks racing to the same
        new host (in this process or another) write one line, and a key recorded by the
        winner is compared, not overwritten. Creates the directory 0700 and the file 0600.
        """
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        flags = os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
        with open(os.open(self.path, flags, 0o600), "rb+") as file:
            fcntl.flock(file, fcntl.LOCK_EX)  # released when the file closes
            text = file.read().decode("utf-8")
            status = host_key_status(asyncssh.import_known_hosts(text), host, addr, port, key)
            if status is HostKeyStatus.UNKNOWN:
                separator = "" if not text or text.endswith("\n") else "\n"
                file.write((separator + known_hosts_line(host, port, key)).encode())
        return status


class _Unusable(Exception):
    """The command could not run; the message is the line after ``SSH UNKNOWN - ``."""


class _Client(asyncssh.SSHClient):
    """Judges the host key during key exchange and reports a closed connection."""

    def __init__(
        self,
        *,
        file: KnownHostsFile,
        known: asyncssh.SSHKnownHosts,
        accept_new: bool,
        where: str,
        on_lost: Callable[[asyncssh.SSHClientConnection | None], None],
    ) -> None:
        self._file = file
        self._known = known
        self._accept_new = accept_new
        self._where = where
        self._on_lost = on_lost
        self._connection: asyncssh.SSHClientConnection | None = None
        #: Why the host key was refused, for the check's output.
        self.refusal: str | None = None

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        # asyncssh asks only about keys the file does not list for the host.
        status = host_key_status(self._known, host, addr, port, key)
        path = self._file.path
        if status is HostKeyStatus.UNKNOWN and self._accept_new:
            try:
                status = self._file.accept_new(host, addr, port, key)
            except (OSError, ValueError) as exc:
                why = getattr(exc, "strerror", None) or exc
                self.refusal = f"cannot record the host key of {self._where} in {path}: {why}"
                return False
            if status is HostKeyStatus.UNKNOWN:
                logger.info(
                    "recorded the host key of %s (%s) in %s",
                    self._where,
                    key.get_fingerprint("sha256"),
                    path,
                    extra={"action": "ssh_host_key_recorded", "host": self._where},
                )
                return True
        if status is HostKeyStatus.KNOWN:  # recorded meanwhile by a racing check
            return True
        offered = f"it offered {key.get_algorithm()} {key.get_fingerprint('sha256')}"
        if status is HostKeyStatus.CHANGED:
            self.refusal = (
                f"host key of {self._where} does not match known_hosts ({path}; {offered})"
            )
        else:
            missing = "" if path.exists() else ", which does not exist"
            self.refusal = (
                f"host key of {self._where} is not in known_hosts ({path}{missing}) and "
                f"known_hosts is strict ({offered})"
            )
        return False

    def validate_host_ca_key(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> bool:
        self.refusal = (
            f"{self._where} offered a host certificate whose CA is not a @cert-authority "
            f"in known_hosts ({self._file.path})"
        )
        return False

    def connection_made(self, conn: asyncssh.SSHClientConnection) -> None:
        self._connection = conn

    def connection_lost(self, exc: Exception | None) -> None:
        self._on_lost(self._connection)


class _Output(asyncssh.SSHClientSession[bytes]):
    """One check's progress: its stage, the output up to a cap, and the channel's close."""

    def __init__(self, max_output: int) -> None:
        #: What the check was doing, for the timeout message ("connecting to", ...).
        self.stage = "connecting to"
        self.stdout = bytearray()
        self.stderr = bytearray()
        self.truncated = False
        self.error: Exception | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._max = max_output

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        buffer = self.stderr if datatype == asyncssh.EXTENDED_DATA_STDERR else self.stdout
        room = self._max - len(buffer)
        buffer += data[: max(room, 0)]
        self.truncated = self.truncated or len(data) > room

    def connection_lost(self, exc: Exception | None) -> None:
        self.error = exc
        if not self.closed.done():
            self.closed.set_result(None)

    def text(self) -> str:
        """What the command wrote so far, for a timed-out check's long output."""
        return (bytes(self.stdout) + bytes(self.stderr)).decode("utf-8", "replace").strip()


class _Pooled:
    """One connection (being made, or made) and the checks using it."""

    __slots__ = ("connect", "idle", "sessions", "users")

    def __init__(self, connect: asyncio.Task[asyncssh.SSHClientConnection], sessions: int):
        self.connect = connect
        self.sessions = asyncio.Semaphore(sessions)
        self.users = 0
        self.idle: asyncio.TimerHandle | None = None

    def connection(self) -> asyncssh.SSHClientConnection | None:
        task = self.connect
        if task.done() and not task.cancelled() and task.exception() is None:
            return task.result()
        return None


@dataclass(frozen=True, slots=True)
class _Key:
    """A parsed private key; its fingerprint is part of the pool key."""

    key: asyncssh.SSHKey
    fingerprint: str


class SshCheck(Strict):
    """Run a command or plugin on the host over SSH, like check_by_ssh."""

    kind: Literal["ssh"]
    command: Command
    user: str = "watchkeeper"
    port: Port = 22
    key: SecretRef = Field(description="Private key the worker uses, as a secret reference.")
    known_hosts: Literal["strict", "accept-new"] = Field(
        default="strict", description="strict: the host key must be known; accept-new: TOFU."
    )
    out_of_bounds_state: PluginState | None = Field(
        default=None,
        description=(
            "State given when the remote command exits outside 0-3 or dies by a signal. "
            "Default: the document's defaults, else CRITICAL, as Nagios Core does."
        ),
    )


@CHECKS.register
class SshExecutor(SpecExecutor[SshCheck]):
    """Runs ``command`` on the host over SSH, on pooled connections.

    ``known_hosts_path`` defaults to `default_known_hosts_path`; ``environ`` is where
    ``env:`` key references and that default are looked up; ``max_sessions`` caps the
    channels per connection (keep it below the servers' ``MaxSessions``).
    """

    kind: ClassVar[str] = "ssh"
    Config: ClassVar[type[BaseModel]] = SshCheck
    label: ClassVar[str] = "SSH"

    def __init__(
        self,
        *,
        known_hosts_path: Path | None = None,
        environ: Mapping[str, str] | None = None,
        max_sessions: int = DEFAULT_MAX_SESSIONS,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        max_output: int = DEFAULT_MAX_OUTPUT,
    ) -> None:
        self._environ = environ
        self.known_hosts = KnownHostsFile(known_hosts_path or default_known_hosts_path(environ))
        self._max_sessions = max_sessions
        self._idle_timeout = idle_timeout
        self._max_output = max_output
        self._pool: dict[PoolKey, _Pooled] = {}
        #: Every connection not closed yet, pooled or retired (still serving its checks).
        self._live: set[asyncssh.SSHClientConnection] = set()
        self._keys: dict[bytes, _Key] = {}

    @property
    def connections(self) -> int:
        """Open pooled connections."""
        return sum(entry.connection() is not None for entry in self._pool.values())

    async def check(
        self,
        spec: SshCheck,
        *,
        address: str,
        timeout: float,  # noqa: ASYNC109
    ) -> CheckOutcome:
        started = time.perf_counter()
        where = host_port(address, spec.port)
        output = _Output(self._max_output)

        def unknown(why: str, long_output: str = "") -> CheckOutcome:
            duration = time.perf_counter() - started
            text = f"SSH UNKNOWN - {why}"
            return outcome(CheckState.UNKNOWN, text, long_output=long_output, duration=duration)

        try:
            key = self._load_key(spec.key)
            async with asyncio.timeout(timeout):
                returncode = await self._execute(
                    (address, spec.port, spec.user, key.fingerprint),
                    spec,
                    key,
                    timeout=timeout,
                    output=output,
                )
        except TimeoutError:
            return unknown(f"timed out after {timeout:g}s {output.stage} {where}", output.text())
        except _Unusable as exc:
            return unknown(str(exc))
        result = ProcessResult(
            returncode=returncode,
            stdout=bytes(output.stdout),
            stderr=bytes(output.stderr),
            truncated=output.truncated,
            duration=time.perf_counter() - started,
        )
        # A timeout of the connection or the command is UNKNOWN above, as check_by_ssh's.
        states = Outcomes(timeout=CheckState.UNKNOWN, out_of_bounds=Outcomes.of(spec).out_of_bounds)
        return plugin_outcome(result, timeout=timeout, states=states)

    async def aclose(self) -> None:
        pool, self._pool = self._pool, {}
        for entry in pool.values():
            if entry.idle is not None:
                entry.idle.cancel()
            entry.connect.cancel()  # no-op once connected
        await asyncio.gather(*(entry.connect for entry in pool.values()), return_exceptions=True)
        live, self._live = list(self._live), set()
        for connection in live:
            connection.close()
        await asyncio.gather(*(c.wait_closed() for c in live), return_exceptions=True)

    def _load_key(self, ref: str) -> _Key:
        try:
            text = resolve_secret(ref, self._environ)
        except SecretError as exc:
            raise _Unusable(f"cannot read the key: {exc.message}") from exc
        digest = hashlib.sha256(text.encode()).digest()
        key = self._keys.get(digest)
        if key is None:
            try:
                parsed = asyncssh.import_private_key(text)
            except (asyncssh.KeyImportError, ValueError) as exc:
                raise _Unusable(f"the key {ref} is not a usable private key: {exc}") from exc
            key = _Key(parsed, parsed.get_fingerprint("sha256"))
            if len(self._keys) >= KEY_CACHE_SIZE:
                del self._keys[next(iter(self._keys))]
            self._keys[digest] = key
        return key

    async def _execute(
        self,
        pool_key: PoolKey,
        spec: SshCheck,
        key: _Key,
        *,
        timeout: float,  # noqa: ASYNC109
        output: _Output,
    ) -> int | None:
        """Run the command on the pooled connection; its exit status (negative: signal)."""
        where = host_port(pool_key[0], pool_key[1])
        entry = self._checkout(pool_key, spec, key, timeout)
        try:
            connection = await asyncio.shield(entry.connect)
            output.stage = "waiting for a free session on"
            async with entry.sessions:
                output.stage = "opening a session on"
                opening = time.monotonic()
                try:
                    channel, _ = await connection.create_session(
                        lambda: output, shlex.join(spec.command), encoding=None
                    )
                except asyncio.CancelledError:
                    self._retire(pool_key, entry)  # the channel may still open and run
                    if time.monotonic() - opening >= OPEN_PATIENCE:
                        connection.close()  # no answer for this long: a dead peer
                    raise
                except asyncssh.ChannelOpenError as exc:
                    self._retire(pool_key, entry)  # its sessions are used up
                    raise _Unusable(
                        f"{where} refused a session ({exc.reason}); is its MaxSessions "
                        f"below {self._max_sessions}?"
                    ) from exc
                except (OSError, asyncssh.Error) as exc:
                    self._drop(pool_key, entry)
                    raise _Unusable(f"connection to {where} failed: {_reason(exc)}") from exc
                output.stage = "running the command on"
                try:
                    channel.write_eof()  # stdin is empty, as /dev/null is for plugins
                    await output.closed
                except BaseException:
                    _abandon(channel)
                    self._retire(pool_key, entry)
                    raise
                if output.error is not None:
                    raise _Unusable(f"connection to {where} lost: {_reason(output.error)}")
                return channel.get_returncode()
        finally:
            self._checkin(pool_key, entry)

    async def _connect(
        self,
        pool_key: PoolKey,
        spec: SshCheck,
        key: _Key,
        timeout: float,  # noqa: ASYNC109
    ) -> asyncssh.SSHClientConnection:
        address, port, user, fingerprint = pool_key
        where = host_port(address, port)
        try:
            known = self.known_hosts.load()
        except (OSError, ValueError) as exc:
            why = getattr(exc, "strerror", None) or exc
            raise _Unusable(f"cannot use known_hosts {self.known_hosts.path}: {why}") from exc
        client = _Client(
            file=self.known_hosts,
            known=known,
            accept_new=spec.known_hosts == "accept-new",
            where=where,
            on_lost=partial(self._lost, pool_key, asyncio.current_task()),
        )
        try:
            connection = await asyncssh.connect(
                address,
                port,
                username=user,
                client_keys=[key.key],
                known_hosts=known,
                client_factory=lambda: client,
                connect_timeout=timeout,
                keepalive_interval=KEEPALIVE_INTERVAL,
                config=None,
                password=None,
                agent_path=None,
                kbdint_auth=False,
                preferred_auth="publickey",
                gss_auth=False,
                gss_kex=False,
                x509_trusted_certs=None,
            )
        except asyncssh.HostKeyNotVerifiable as exc:
            raise _Unusable(client.refusal or f"host key of {where} refused: {exc.reason}") from exc
        except asyncssh.PermissionDenied as exc:
            raise _Unusable(
                f"authentication as {user} on {where} failed: key {fingerprint} refused"
            ) from exc
        except TimeoutError as exc:  # asyncssh's connect_timeout
            raise _Unusable(f"timed out after {timeout:g}s connecting to {where}") from exc
        except socket.gaierror as exc:
            raise _Unusable(f"cannot resolve {address}: {exc.strerror}") from exc
        except ConnectionRefusedError as exc:
            raise _Unusable(f"connection refused by {where}") from exc
        except (OSError, asyncssh.Error) as exc:
            raise _Unusable(f"cannot connect to {where}: {_reason(exc)}") from exc
        self._live.add(connection)
        return connection

    def _checkout(self, pool_key: PoolKey, spec: SshCheck, key: _Key, timeout: float) -> _Pooled:
        entry = self._pool.get(pool_key)
        if entry is None:
            task = asyncio.create_task(self._connect(pool_key, spec, key, timeout))
            entry = self._pool[pool_key] = _Pooled(task, self._max_sessions)
            task.add_done_callback(partial(self._connected, pool_key, entry))
        if entry.idle is not None:
            entry.idle.cancel()
            entry.idle = None
        entry.users += 1
        return entry

    def _checkin(self, pool_key: PoolKey, entry: _Pooled) -> None:
        entry.users -= 1
        if entry.users or not entry.connect.done():
            return
        if self._pool.get(pool_key) is entry:
            self._idle_later(pool_key, entry)
        elif (connection := entry.connection()) is not None:
            connection.close()  # retired, and its last check is done

    def _connected(self, pool_key: PoolKey, entry: _Pooled, task: asyncio.Task[object]) -> None:
        if task.cancelled() or task.exception() is not None:  # retrieved: no stray warning
            self._forget(pool_key, task)
        elif entry.users == 0 and self._pool.get(pool_key) is entry:
            self._idle_later(pool_key, entry)  # every check that wanted it timed out

    def _idle_later(self, pool_key: PoolKey, entry: _Pooled) -> None:
        loop = asyncio.get_running_loop()
        entry.idle = loop.call_later(self._idle_timeout, self._drop, pool_key, entry)

    def _lost(
        self,
        pool_key: PoolKey,
        task: asyncio.Task[object] | None,
        connection: asyncssh.SSHClientConnection | None,
    ) -> None:
        if connection is not None:
            self._live.discard(connection)
        self._forget(pool_key, task)

    def _forget(self, pool_key: PoolKey, task: asyncio.Task[object] | None) -> None:
        """Take a failed or closed connection out of the pool; the next check reconnects."""
        entry = self._pool.get(pool_key)
        if entry is not None and entry.connect is task:
            del self._pool[pool_key]
            if entry.idle is not None:
                entry.idle.cancel()

    def _retire(self, pool_key: PoolKey, entry: _Pooled) -> None:
        """New checks get a new connection; this one closes when its last check is done.

        After a timeout, sshd keeps the abandoned session (and its ``MaxSessions`` slot)
        until the command exits, which for root logins may be never: only a new
        connection is sure to have room.
        """
        self._forget(pool_key, entry.connect)

    def _drop(self, pool_key: PoolKey, entry: _Pooled) -> None:
        """Forget ``entry`` and close its connection now (idle, or broken)."""
        self._forget(pool_key, entry.connect)
        if (connection := entry.connection()) is not None:
            connection.close()


def _abandon(channel: asyncssh.SSHClientChannel[bytes]) -> None:
    """Stop a command we no longer wait for: OpenSSH kills the session's process group."""
    with contextlib.suppress(OSError):
        channel.kill()
    channel.close()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, asyncssh.Error):
        return exc.reason
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__
