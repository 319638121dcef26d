"""The plugin executor: any executable that speaks the Nagios plugin API.

Exit code 0-3 is the state, the first line of output is the summary, later lines are long
output, and perfdata follows ``|`` (`watchkeeper.telemetry.parse_output`).

Spawning is the hot path, so on Linux `run_process` uses ``posix_spawn`` (vfork + exec,
no Python in between) and waits on a pidfd and the two pipes with plain loop readers: no
child watcher, no threads, no StreamReader, which beats asyncio's own subprocess
machinery by a wide margin (``bench/bench_executors.py``). Elsewhere it falls back to
``loop.subprocess_exec``, which `install_child_watcher` speeds up.

Every plugin runs in a session of its own, so a timeout kills the whole group, shell
pipelines and their children included. On the fast path, whatever a plugin leaves running
in its group is killed when it exits, before it is reaped (so its id cannot be reused
meanwhile), and the result is the plugin's as soon as it exits: what it wrote is already
in the pipes, which are drained then and closed, so a daemon it started (even one that
left its session and still holds the pipes) does not delay the result, as in Nagios.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

from pydantic import BaseModel, Field

from watchkeeper.document.fields import Command, PluginState, Strict
from watchkeeper.plugins import CHECKS
from watchkeeper.results import CheckOutcome, CheckState
from watchkeeper.telemetry.perfdata import parse_output
from watchkeeper.worker.executors.base import SpecExecutor, outcome

#: Debian's monitoring-plugins first, so ``["check_disk", ...]`` works as in Nagios.
DEFAULT_PATH = (
    "/usr/lib/nagios/plugins:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)
#: What every plugin gets, and no more: predictable output whoever started the worker.
DEFAULT_ENV = {"PATH": DEFAULT_PATH, "LANG": "C", "LC_ALL": "C"}
#: Output kept per stream; the rest is read and dropped so the plugin never blocks.
DEFAULT_MAX_OUTPUT = 64 * 1024
#: After SIGKILL, how long to wait for the group to go before giving up on its pipes.
KILL_GRACE = 1.0
#: Distinct dropped perfdata items remembered (and so logged once), at most.
MAX_DROPPED_NOTES = 10_000

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Outcomes:
    """The states of the two ways a plugin run can go wrong (both CRITICAL, as in Nagios)."""

    timeout: CheckState = CheckState.CRITICAL
    out_of_bounds: CheckState = CheckState.CRITICAL

    @classmethod
    def of(cls, spec: object) -> Outcomes:
        """From a check's ``timeout_state`` and ``out_of_bounds_state``, where set."""
        timeout = getattr(spec, "timeout_state", None)
        bounds = getattr(spec, "out_of_bounds_state", None)
        return cls(
            timeout=CheckState[timeout] if timeout else CheckState.CRITICAL,
            out_of_bounds=CheckState[bounds] if bounds else CheckState.CRITICAL,
        )


def _fast_spawn_available() -> bool:
    if not (sys.platform == "linux" and hasattr(os, "posix_spawn")):
        return False
    try:
        os.close(os.pidfd_open(os.getpid()))  # Linux 5.3+
    except (AttributeError, OSError):
        return False
    return True


FAST_SPAWN = _fast_spawn_available()


def install_child_watcher() -> str:
    """Make asyncio subprocesses cheaper; call once from the worker's running loop.

    On Python 3.11 the default `ThreadedChildWatcher` starts a thread per child.
    `PidfdChildWatcher` waits on a pidfd in the loop instead (the 3.12 default). This
    serves the fallback path and any other ``asyncio`` subprocess in the worker; the fast
    path needs no watcher. Returns the class name of the watcher in use.
    """
    if sys.version_info >= (3, 12) or sys.platform == "win32":
        return "default"  # 3.12 picks pidfd itself, and deprecates child watchers
    current = asyncio.get_child_watcher()
    if isinstance(current, asyncio.PidfdChildWatcher) or not FAST_SPAWN:
        return type(current).__name__
    watcher = asyncio.PidfdChildWatcher()
    watcher.attach_loop(asyncio.get_running_loop())
    asyncio.set_child_watcher(watcher)
    return type(watcher).__name__


@dataclass(frozen=True, slots=True, kw_only=True)
class ProcessResult:
    """How a process ended and what it wrote."""

    #: Exit code; negative for a signal; ``None`` when timed out or the status was lost.
    returncode: int | None
    stdout: bytes
    stderr: bytes
    timed_out: bool = False
    #: Some output was over the cap and was dropped.
    truncated: bool = False
    duration: float = 0.0


async def run_process(
    argv: Sequence[str],
    *,
    timeout: float,  # noqa: ASYNC109 - a timed-out plugin is a result, not an exception
    env: Mapping[str, str],
    max_output: int = DEFAULT_MAX_OUTPUT,
    fast: bool | None = None,
) -> ProcessResult:
    """Run ``argv`` (no shell) with stdin on /dev/null, in a new session, within ``timeout``.

    Raises `OSError` when the program cannot be started (`FileNotFoundError`,
    `PermissionError`); everything after the start is in the result.
    """
    started = time.perf_counter()
    if fast if fast is not None else FAST_SPAWN:
        child = _PidfdChild(argv, env, max_output)
        await child.wait(timeout)
        rc, out, err, timed_out, truncated = child.result()
    else:
        rc, out, err, timed_out, truncated = await _run_transport(argv, env, max_output, timeout)
    return ProcessResult(
        returncode=rc,
        stdout=out,
        stderr=err,
        timed_out=timed_out,
        truncated=truncated,
        duration=time.perf_counter() - started,
    )


def resolve_program(program: str, path: str) -> str:
    """Find ``program`` as execvp would, in ``path`` (the child's PATH, not ours)."""
    if "/" in program:
        return program
    found = None
    for directory in path.split(os.pathsep):
        candidate = os.path.join(directory or ".", program)
        if os.path.isfile(candidate):
            if os.access(candidate, os.X_OK):
                return candidate
            found = found or candidate  # execvp reports EACCES if nothing better turns up
    if found is None:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)
    return found


def _killpg(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


class _PidfdChild:
    """One posix_spawn'ed child, driven by loop readers on its pipes and its pidfd."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], max_output: int) -> None:
        self._loop = asyncio.get_running_loop()
        self._max = max_output
        path = resolve_program(argv[0], env.get("PATH", os.defpath))
        fds: list[int] = []
        try:
            out_r, out_w = os.pipe2(os.O_CLOEXEC)
            fds += (out_r, out_w)
            err_r, err_w = os.pipe2(os.O_CLOEXEC)
            fds += (err_r, err_w)
            self._pid = os.posix_spawn(
                path,
                list(argv),
                env,
                file_actions=[
                    (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                    (os.POSIX_SPAWN_DUP2, out_w, 1),
                    (os.POSIX_SPAWN_DUP2, err_w, 2),
                ],
                setsid=True,
                setsigmask=(),
                setsigdef=(signal.SIGPIPE, signal.SIGXFSZ),  # Python ignores them; undo
            )
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        os.close(out_w)
        os.close(err_w)
        try:
            self._pidfd = os.pidfd_open(self._pid)
        except OSError:  # out of descriptors: leave no unwatched child behind
            _killpg(self._pid)
            os.waitpid(self._pid, 0)
            os.close(out_r)
            os.close(err_r)
            raise
        os.set_blocking(out_r, False)
        os.set_blocking(err_r, False)
        self._buffers = {out_r: bytearray(), err_r: bytearray()}
        self._open = {out_r, err_r}
        self._truncated = False
        self._exited = False
        self._returncode: int | None = None
        self._timed_out = False
        self._done: asyncio.Future[None] = self._loop.create_future()
        self._timers: list[asyncio.TimerHandle] = []
        for fd in self._open:
            self._loop.add_reader(fd, self._read, fd)
        self._loop.add_reader(self._pidfd, self._reap)

    async def wait(self, seconds: float) -> None:
        self._timers.append(self._loop.call_later(seconds, self._deadline))
        try:
            await self._done
        except BaseException:  # cancelled: leave nothing running; the pidfd reader reaps
            self._kill()
            self._close_pipes()
            raise
        finally:
            for timer in self._timers:
                timer.cancel()

    def result(self) -> tuple[int | None, bytes, bytes, bool, bool]:
        out, err = self._buffers.values()
        return self._returncode, bytes(out), bytes(err), self._timed_out, self._truncated

    def _read(self, fd: int) -> None:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            buffer = self._buffers[fd]
            room = self._max - len(buffer)
            buffer += data[: max(room, 0)]
            self._truncated = self._truncated or len(data) > room
            return
        self._close_pipe(fd)
        self._finish_if_done()

    def _reap(self) -> None:
        self._loop.remove_reader(self._pidfd)
        _killpg(self._pid)  # leftovers, while the zombie still holds the group's id
        try:
            _, status = os.waitpid(self._pid, 0)
            self._returncode = os.waitstatus_to_exitcode(status)
        except ChildProcessError:
            self._returncode = None  # reaped by someone else's waitpid(-1)
        os.close(self._pidfd)
        self._exited = True
        # Everything the plugin wrote is in the pipes now; what comes later is a daemon's.
        for fd in list(self._open):
            self._drain(fd)
        self._close_pipes()
        self._finish_if_done()

    def _drain(self, fd: int) -> None:
        """Read what a pipe holds now, without waiting for its writers to close it."""
        while fd in self._open:
            try:
                data = os.read(fd, 65536)
            except (BlockingIOError, OSError):
                return
            if not data:
                return
            buffer = self._buffers[fd]
            room = self._max - len(buffer)
            buffer += data[: max(room, 0)]
            self._truncated = self._truncated or len(data) > room

    def _deadline(self) -> None:
        if self._exited:
            return
        self._timed_out = True
        self._kill()
        self._timers.append(self._loop.call_later(KILL_GRACE, self._give_up))

    def _give_up(self) -> None:
        """The group is still not gone (a process in D state): stop waiting for it."""
        self._close_pipes()
        if not self._done.done():
            self._done.set_result(None)

    def _kill(self) -> None:
        if not self._exited:
            _killpg(self._pid)

    def _close_pipe(self, fd: int) -> None:
        if fd in self._open:
            self._open.discard(fd)
            self._loop.remove_reader(fd)
            os.close(fd)

    def _close_pipes(self) -> None:
        for fd in list(self._open):
            self._close_pipe(fd)

    def _finish_if_done(self) -> None:
        if self._exited and not self._open and not self._done.done():
            self._done.set_result(None)


class _Collector(asyncio.SubprocessProtocol):
    def __init__(self, max_output: int, done: asyncio.Future[None]) -> None:
        self.buffers = {1: bytearray(), 2: bytearray()}
        self.truncated = False
        self._max = max_output
        self._done = done

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        buffer = self.buffers[fd]
        room = self._max - len(buffer)
        buffer += data[: max(room, 0)]
        self.truncated = self.truncated or len(data) > room

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._done.done():
            self._done.set_result(None)


async def _run_transport(
    argv: Sequence[str], env: Mapping[str, str], max_output: int, seconds: float
) -> tuple[int | None, bytes, bytes, bool, bool]:
    """The portable path: asyncio's own subprocess machinery and child watcher."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    transport, collector = await loop.subprocess_exec(
        lambda: _Collector(max_output, done),
        *argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(env),
        start_new_session=True,
    )
    timed_out = False
    try:
        try:
            await asyncio.wait_for(asyncio.shield(done), seconds)
        except TimeoutError:
            timed_out = transport.get_returncode() is None
        if timed_out:
            await _kill_and_reap(transport, done)
    except asyncio.CancelledError:
        await _kill_and_reap(transport, done)
        raise
    finally:
        transport.close()
    out, err = collector.buffers[1], collector.buffers[2]
    rc = None if timed_out else transport.get_returncode()
    return rc, bytes(out), bytes(err), timed_out, collector.truncated


async def _kill_and_reap(
    transport: asyncio.SubprocessTransport, done: asyncio.Future[None]
) -> None:
    """Kill the group and give the watcher a moment to reap, so no zombie outlives the check."""
    if transport.get_returncode() is None:
        _killpg(transport.get_pid())
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(done), KILL_GRACE)


class PluginCheck(Strict):
    """Run a Nagios-compatible plugin on the worker (exit code 0-3, output, perfdata)."""

    kind: Literal["plugin"]
    command: Command
    timeout_state: PluginState | None = Field(
        default=None,
        description=(
            "State given when the plugin exceeds its timeout (Nagios's "
            "service_check_timeout_state). Default: the document's defaults, else CRITICAL."
        ),
    )
    out_of_bounds_state: PluginState | None = Field(
        default=None,
        description=(
            "State given when the plugin exits outside 0-3 (126: not executable, 127: not "
            "found), dies by a signal or cannot be run. Default: the document's defaults, "
            "else CRITICAL, as Nagios Core does."
        ),
    )


@CHECKS.register
class PluginExecutor(SpecExecutor[PluginCheck]):
    """Runs ``command`` with a minimal, predictable environment.

    The environment is PATH (`DEFAULT_PATH`), LANG and LC_ALL=C (so decimal points are
    points), and the target's address as WATCHKEEPER_ADDRESS and NAGIOS_HOSTADDRESS
    (Nagios's environment macro); ``env`` replaces the first three.
    """

    kind: ClassVar[str] = "plugin"
    Config: ClassVar[type[BaseModel]] = PluginCheck
    label: ClassVar[str] = "PLUGIN"

    def __init__(
        self,
        *,
        env: Mapping[str, str] | None = None,
        max_output: int = DEFAULT_MAX_OUTPUT,
        fast: bool | None = None,
    ) -> None:
        self._env = dict(DEFAULT_ENV if env is None else env)
        self._max_output = max_output
        self._fast = fast
        #: (command, perfdata item) already logged as dropped.
        self._dropped: set[tuple[tuple[str, ...], str]] = set()

    async def check(
        self,
        spec: PluginCheck,
        *,
        address: str,
        timeout: float,  # noqa: ASYNC109
    ) -> CheckOutcome:
        return await self.run_command(
            spec.command, address=address, timeout=timeout, states=Outcomes.of(spec)
        )

    async def run_command(
        self,
        argv: Sequence[str],
        *,
        address: str,
        timeout: float,  # noqa: ASYNC109
        states: Outcomes | None = None,
    ) -> CheckOutcome:
        """Run a plugin command line; the seam the ssh and agent executors can share."""
        states = states or Outcomes()
        env = {**self._env, "WATCHKEEPER_ADDRESS": address, "NAGIOS_HOSTADDRESS": address}
        started = time.perf_counter()
        try:
            result = await run_process(
                argv, timeout=timeout, env=env, max_output=self._max_output, fast=self._fast
            )
        except FileNotFoundError:
            return _unusable(127, f"plugin not found: {argv[0]}", states, started)
        except PermissionError:
            return _unusable(126, f"plugin not executable: {argv[0]}", states, started)
        except OSError as exc:
            message = f"cannot run plugin {argv[0]}: {exc.strerror or exc}"
            return _unusable(126, message, states, started)
        outcome = plugin_outcome(result, timeout=timeout, states=states)
        self._note_dropped(argv, result.stdout)
        return outcome

    def _note_dropped(self, argv: Sequence[str], stdout: bytes) -> None:
        """Log each perfdata item a plugin writes that cannot be kept, once per command."""
        dropped = parse_output(stdout.decode("utf-8", "replace")).dropped
        if not dropped:
            return
        command = tuple(argv)
        for item, reason in dropped:
            key = (command, item)
            if key in self._dropped or len(self._dropped) >= MAX_DROPPED_NOTES:
                continue
            self._dropped.add(key)
            logger.warning(
                "perfdata item %r of %s dropped: %s (said once per command)",
                item,
                " ".join(command),
                reason,
                extra={"action": "perfdata_dropped"},
            )


def plugin_outcome(
    result: ProcessResult, *, timeout: float, states: Outcomes | None = None
) -> CheckOutcome:
    """Interpret a finished plugin the way Nagios Core 4 does (``base/checks.c``).

    A timeout gives ``states.timeout`` (Nagios's ``service_check_timeout_state``); an exit
    outside 0-3 (126, 127 and the rest), a death by signal or a lost status give
    ``states.out_of_bounds``; both CRITICAL unless set. A plugin that wrote only to stderr
    reads "(No output on stdout) stderr: ...", as in Nagios.
    """
    states = states or Outcomes()
    stdout = result.stdout.decode("utf-8", "replace")
    stderr = result.stderr.decode("utf-8", "replace").strip()
    parsed = parse_output(stdout)
    if result.timed_out:
        output = f"(Check timed out after {timeout:.2f} seconds)"
        long_output = "\n".join(part for part in (parsed.output, parsed.long_output) if part)
        return outcome(states.timeout, output, long_output=long_output, duration=result.duration)
    code = result.returncode
    output, long_output = parsed.output, parsed.long_output
    if not stdout.strip() and stderr:
        first, _, rest = stderr.partition("\n")
        output, long_output = f"(No output on stdout) stderr: {first}", rest.strip()
    note = _exit_note(code)
    if note:
        state = states.out_of_bounds
        output = " ".join(part for part in (note, output) if part)
    else:
        assert code is not None
        state = CheckState(code)
        output = output or _NO_OUTPUT
    if stderr and stdout.strip() and (note or state is CheckState.UNKNOWN):
        long_output = f"{long_output}\n{stderr}" if long_output else stderr
    if result.truncated:
        long_output += "\n(output truncated)"
    return outcome(
        state,
        output,
        long_output=long_output,
        metrics=parsed.metrics,
        duration=result.duration,
    )


_NO_OUTPUT = "(No output returned from plugin)"


def _exit_note(code: int | None) -> str:
    """What Nagios says about an exit that is not 0-3; empty for a normal one."""
    if code is None:
        return "(Check did not exit properly: its status was lost)"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"(Check did not exit properly: killed by {name})"
    if code == 126:
        return "(Return code of 126 is out of bounds. Check if plugin is executable)"
    if code == 127:
        return "(Return code of 127 is out of bounds. Check if plugin exists)"
    if code > 3:
        return f"(Return code of {code} is out of bounds)"
    return ""


def _unusable(code: int, message: str, states: Outcomes, started: float) -> CheckOutcome:
    """A plugin that could not be started reads as Nagios's 126 or 127 would."""
    duration = time.perf_counter() - started
    return outcome(states.out_of_bounds, f"{_exit_note(code)} {message}", duration=duration)
