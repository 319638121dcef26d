"""The command channel with real processes: JSON on stdin, environment, exits and timeouts."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests.waiting import wait_until
from watchkeeper.notify.channels import ChannelContext, DeliveryResult, build_channel
from watchkeeper.notify.notification import Notification, NotificationKind

NOTE = Notification(
    kind=NotificationKind.PROBLEM,
    key="db1",
    host="db1",
    service=None,
    state="DOWN",
    output="PING CRITICAL - Packet loss = 100%",
    at=1_764_000_000.0,
    channels=("script",),
)
ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PAGER_TOKEN": "t0k"}


@pytest.fixture
async def context() -> AsyncIterator[ChannelContext]:
    async with httpx.AsyncClient() as http:
        yield ChannelContext(http=http, environ=ENV, timeout=5.0)


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


async def test_the_command_gets_the_json_and_the_environment(
    context: ChannelContext, tmp_path: Path
) -> None:
    out = tmp_path / "got.json"
    code = (
        "import json, os, sys\n"
        "data = json.load(sys.stdin)\n"
        "env = {k: v for k, v in os.environ.items() if k.startswith(('WATCHKEEPER_', 'PAGER'))}\n"
        f"open({str(out)!r}, 'w').write(json.dumps({{'data': data, 'env': env}}))\n"
    )
    channel = build_channel(
        {"name": "script", "kind": "command", "command": _python(code)}, context
    )
    outcome = await channel.deliver(NOTE)
    assert (outcome.result, outcome.status) == (DeliveryResult.DELIVERED, "exit 0")
    got = orjson.loads(out.read_bytes())
    assert got["data"] == NOTE.as_dict()
    assert got["env"] == {
        "PAGER_TOKEN": "t0k",
        "WATCHKEEPER_KIND": "problem",
        "WATCHKEEPER_KEY": "db1",
        "WATCHKEEPER_HOST": "db1",
        "WATCHKEEPER_SERVICE": "",
        "WATCHKEEPER_STATE": "DOWN",
        "WATCHKEEPER_SUBJECT": "PROBLEM: db1 is DOWN",
    }


async def test_a_failing_exit_is_retried_with_what_it_said(context: ChannelContext) -> None:
    code = "import sys; sys.stdin.read(); print('chat API said 502', file=sys.stderr); sys.exit(3)"
    channel = build_channel(
        {"name": "script", "kind": "command", "command": _python(code)}, context
    )
    outcome = await channel.deliver(NOTE)
    assert (outcome.result, outcome.status) == (DeliveryResult.RETRY, "exit 3")
    assert outcome.error == f"{sys.executable} exited 3: chat API said 502"


async def test_a_command_that_ignores_its_input_still_succeeds(context: ChannelContext) -> None:
    channel = build_channel({"name": "s", "kind": "command", "command": ["true"]}, context)
    assert (await channel.deliver(NOTE)).ok


async def test_a_missing_program_is_not_retried(context: ChannelContext) -> None:
    channel = build_channel(
        {"name": "s", "kind": "command", "command": ["/nonexistent/notify-me"]}, context
    )
    outcome = await channel.deliver(NOTE)
    assert (outcome.result, outcome.error) == (
        DeliveryResult.FAILED,
        "command not found: /nonexistent/notify-me",
    )


async def test_a_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    script = f"sleep 60 & echo $! > {pid_file}; wait"
    async with httpx.AsyncClient() as http:
        context = ChannelContext(http=http, environ=ENV, timeout=0.5)
        channel = build_channel(
            {"name": "s", "kind": "command", "command": ["sh", "-c", script]}, context
        )
        outcome = await channel.deliver(NOTE)
    assert (outcome.result, outcome.status) == (DeliveryResult.RETRY, "timeout")
    assert outcome.error == "sh did not finish within 0.5s and was killed"
    child = int(pid_file.read_text())

    def gone() -> bool:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return True
        return Path(f"/proc/{child}/stat").read_text().split()[2] == "Z"  # killed, not reaped

    await wait_until(gone, what=f"the backgrounded child {child} to be killed")


async def test_notifications_appended_to_a_file_stay_one_per_line(
    context: ChannelContext, tmp_path: Path
) -> None:
    log = tmp_path / "notifications.jsonl"
    channel = build_channel(
        {"name": "log", "kind": "command", "command": ["/bin/sh", "-c", f"cat >> {log}"]},
        context,
    )
    for _ in range(2):
        outcome = await channel.deliver(NOTE)
        assert outcome.result is DeliveryResult.DELIVERED
    lines = log.read_text().splitlines()
    assert [orjson.loads(line) for line in lines] == [NOTE.as_dict(), NOTE.as_dict()]
