"""The command channel: run the document's ``command`` with the notification on stdin.

Standard input is `Notification.as_dict` as JSON (the webhook's body) and a newline, closed
after it: ``cat >> notifications.jsonl`` keeps one notification per line.
The environment is the manager's (or the context's ``environ``) plus ``WATCHKEEPER_KIND``,
``WATCHKEEPER_KEY``, ``WATCHKEEPER_HOST``, ``WATCHKEEPER_SERVICE``, ``WATCHKEEPER_STATE``
and ``WATCHKEEPER_SUBJECT``, for scripts that would rather not parse JSON.

The command runs in a session of its own, so a timeout kills the whole process group,
pipelines and children included. Exit 0 is delivered; any other exit, a signal or a
timeout is retried (most scripts fail for transient reasons: a chat API down, a network
blip); a program that cannot be started is not.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from typing import ClassVar, Literal

from pydantic import BaseModel, Field

from watchkeeper.document.fields import Command, Name, Strict
from watchkeeper.notify.channels.base import ChannelContext, DeliveryOutcome, clip
from watchkeeper.notify.channels.webhook import encode
from watchkeeper.notify.notification import Notification
from watchkeeper.plugins import CHANNELS

#: Output kept per stream for the delivery log; the rest is read and dropped.
MAX_OUTPUT = 4096
#: After SIGKILL, how long to wait for the group before giving up on it.
KILL_GRACE = 2.0


def notification_env(notification: Notification) -> dict[str, str]:
    """The ``WATCHKEEPER_*`` variables a command gets besides its JSON input."""
    return {
        "WATCHKEEPER_KIND": notification.kind.value,
        "WATCHKEEPER_KEY": notification.key,
        "WATCHKEEPER_HOST": notification.host,
        "WATCHKEEPER_SERVICE": notification.service or "",
        "WATCHKEEPER_STATE": notification.state,
        "WATCHKEEPER_SUBJECT": notification.subject,
    }


class CommandChannel(Strict):
    """Run a command with the notification as JSON on standard input."""

    name: Name = Field(description="Unique among objects of this kind.")
    kind: Literal["command"]
    command: Command


@CHANNELS.register
class CommandSender:
    """Runs ``command`` (argv, no shell) once per notification (see the module docstring)."""

    kind: ClassVar[str] = "command"
    Config: ClassVar[type[BaseModel]] = CommandChannel

    def __init__(self, spec: CommandChannel, context: ChannelContext) -> None:
        self.name = spec.name
        self.spec = spec
        self._context = context

    async def deliver(self, notification: Notification) -> DeliveryOutcome:
        argv = self.spec.command
        base = os.environ if self._context.environ is None else self._context.environ
        env = {**base, **notification_env(notification)}
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                start_new_session=True,
            )
        except FileNotFoundError:
            return DeliveryOutcome.failed(f"command not found: {argv[0]}")
        except PermissionError:
            return DeliveryOutcome.failed(f"command not executable: {argv[0]}")
        except OSError as exc:
            return DeliveryOutcome.failed(f"cannot run {argv[0]}: {exc.strerror or exc}")
        seconds = self._context.timeout
        try:
            async with asyncio.timeout(seconds):
                stdout, stderr = await _communicate(process, encode(notification) + b"\n")
        except TimeoutError:
            await _kill(process)
            return DeliveryOutcome.retry(
                f"{argv[0]} did not finish within {seconds:g}s and was killed", status="timeout"
            )
        except BaseException:  # cancelled: leave nothing running
            await _kill(process)
            raise
        code = process.returncode
        if code == 0:
            return DeliveryOutcome.delivered("exit 0")
        said = (stderr or stdout).decode("utf-8", "replace").strip()
        how = f"was killed by {_signal_name(-code)}" if code and code < 0 else f"exited {code}"
        status = f"signal {-code}" if code and code < 0 else f"exit {code}"
        return DeliveryOutcome.retry(
            f"{argv[0]} {how}" + (f": {clip(said)}" if said else ""), status=status
        )


async def _communicate(process: asyncio.subprocess.Process, data: bytes) -> tuple[bytes, bytes]:
    """Feed ``data``, read both streams (keeping `MAX_OUTPUT` of each), wait for the exit.

    A command that never reads its input must not block us: a broken pipe is ignored.
    """
    assert process.stdin and process.stdout and process.stderr

    async def feed() -> None:
        assert process.stdin
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            process.stdin.write(data)
            await process.stdin.drain()
        process.stdin.close()

    async def drain(stream: asyncio.StreamReader) -> bytes:
        kept = bytearray()
        while chunk := await stream.read(65536):
            kept += chunk[: max(MAX_OUTPUT - len(kept), 0)]
        return bytes(kept)

    _, out, err = await asyncio.gather(feed(), drain(process.stdout), drain(process.stderr))
    await process.wait()
    return out, err


async def _kill(process: asyncio.subprocess.Process) -> None:
    """Kill the command's whole group and reap it, within `KILL_GRACE`."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(KILL_GRACE):
            await process.wait()


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
