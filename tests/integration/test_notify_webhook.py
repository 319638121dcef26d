"""Webhook delivery against a real HTTP receiver on 127.0.0.1, recorded on SQLite and PostgreSQL.

The receiver is a few lines of asyncio that speak just enough HTTP/1.1 (keep-alive included)
and answer from a script, so each test says exactly what the far end does.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from watchkeeper import store
from watchkeeper.notify import repository as notifications_store
from watchkeeper.notify.channels import sign, verify
from watchkeeper.notify.notification import Notification, NotificationKind
from watchkeeper.notify.notifier import Notifier, NotifierSettings

T0 = 1_764_000_000.0
SECRET = "s3cret-signing-key"
ENV = {"HOOK_SECRET": SECRET, "HOOK_TOKEN": "tok-123"}


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Answers each request with the next scripted (status, headers); the last one repeats."""

    script: list[tuple[int, dict[str, str]]]
    requests: list[Request] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/ops?source=test"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                line, *lines = head.decode("latin-1").split("\r\n")
                method, path, _ = line.split(" ", 2)
                headers = {
                    k.strip().lower(): v.strip()
                    for k, _, v in (h.partition(":") for h in lines if h)
                }
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.requests.append(Request(method, path, headers, body))
                status, extra = self.script[min(len(self.requests), len(self.script)) - 1]
                text = b'{"error": "nope"}' if status >= 300 else b"ok"
                out = [f"HTTP/1.1 {status} X", f"Content-Length: {len(text)}"]
                out += [f"{k}: {v}" for k, v in extra.items()]
                writer.write(("\r\n".join(out) + "\r\n\r\n").encode() + text)
                await writer.drain()
        writer.close()


@contextlib.asynccontextmanager
async def receiver(*script: tuple[int, dict[str, str]]) -> AsyncIterator[Receiver]:
    found = Receiver(list(script))
    server = await asyncio.start_server(found.handle, "127.0.0.1", 0)
    found.port = server.sockets[0].getsockname()[1]
    try:
        yield found
    finally:
        server.close()


class FakeTime:
    def __init__(self) -> None:
        self.now = T0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
async def make(db: store.Database) -> AsyncIterator[tuple[Notifier, FakeTime]]:
    time_ = FakeTime()
    notifier = Notifier(
        db,
        settings=NotifierSettings(backoff_base=10, max_attempts=5),
        environ=ENV,
        clock=time_.clock,
        sleep=time_.sleep,
    )
    yield notifier, time_
    await notifier.aclose()


def _note(kind: NotificationKind = NotificationKind.PROBLEM) -> Notification:
    return Notification(
        kind=kind,
        key="web1!http",
        host="web1",
        service="http",
        state="CRITICAL",
        output="HTTP CRITICAL - 503 Service Unavailable",
        at=T0,
        channels=("ops",),
        alarm_id=42,
        details={"attempt": 3, "rule": "hard"},
    )


def _channel(url: str, **extra: object) -> dict[str, object]:
    return {"name": "ops", "kind": "webhook", "url": url, **extra}


async def test_503_twice_then_accepted_makes_three_signed_attempts(
    db: store.Database, make: tuple[Notifier, FakeTime]
) -> None:
    notifier, time_ = make
    async with receiver((503, {}), (503, {}), (204, {})) as far:
        notifier.configure(
            [
                _channel(
                    far.url,
                    secret="env:HOOK_SECRET",
                    bearer_token="env:HOOK_TOKEN",
                    headers={"X-Team": "ops"},
                )
            ]
        )
        notification = _note()
        await notifier.deliver(notification)
        await notifier.join()

    assert len(far.requests) == 3
    for number, request in enumerate(far.requests):
        assert (request.method, request.path) == ("POST", "/hooks/ops?source=test")
        assert orjson.loads(request.body) == notification.as_dict()
        assert request.headers["content-type"] == "application/json"
        assert request.headers["authorization"] == "Bearer tok-123"
        assert request.headers["x-team"] == "ops"
        assert request.headers["x-watchkeeper-event"] == "problem"
        signed_at = verify(SECRET, request.headers["x-watchkeeper-signature"], request.body)
        assert signed_at == int(T0 + sum(time_.sleeps[:number]))  # each attempt signed afresh
        assert (
            verify("another key", request.headers["x-watchkeeper-signature"], request.body) is None
        )
    assert len({r.headers["x-watchkeeper-delivery"] for r in far.requests}) == 1

    async with db.session() as session:
        log = await notifications_store.list_deliveries(session, key="web1!http")
    assert [(a.attempt, a.success, a.status) for a in reversed(log)] == [
        (1, False, "HTTP 503"),
        (2, False, "HTTP 503"),
        (3, True, "HTTP 204"),
    ]
    first = log[-1]
    assert first.error is not None and first.error.startswith("HTTP 503")
    assert (first.channel, first.notification_kind, first.state, first.alarm_id) == (
        "ops",
        "problem",
        "CRITICAL",
        42,
    )
    expected = [T0, T0 + time_.sleeps[0], T0 + sum(time_.sleeps)]
    assert [a.at.timestamp() for a in reversed(log)] == pytest.approx(expected, abs=1e-5)
    assert all(a.duration >= 0 for a in log)


async def test_a_400_is_not_retried(db: store.Database, make: tuple[Notifier, FakeTime]) -> None:
    notifier, time_ = make
    async with receiver((400, {})) as far:
        notifier.configure([_channel(far.url)])
        await notifier.deliver(_note())
        await notifier.join()
    assert len(far.requests) == 1
    assert "x-watchkeeper-signature" not in far.requests[0].headers  # no secret, no signature
    assert time_.sleeps == []
    async with db.session() as session:
        [attempt] = await notifications_store.list_deliveries(session)
    assert (attempt.success, attempt.status) == (False, "HTTP 400")
    assert attempt.error == 'HTTP 400 X: {"error": "nope"}'


async def test_429_waits_as_long_as_retry_after_asks(make: tuple[Notifier, FakeTime]) -> None:
    notifier, time_ = make
    async with receiver((429, {"Retry-After": "120"}), (200, {})) as far:
        notifier.configure([_channel(far.url)])
        attempts = await notifier.deliver(_note())
    assert [a.status for a in attempts] == ["HTTP 429", "HTTP 200"]
    assert time_.sleeps == [120]


async def test_redirects_are_not_followed(make: tuple[Notifier, FakeTime]) -> None:
    notifier, _ = make
    async with receiver((302, {"Location": "http://127.0.0.1:1/elsewhere"})) as far:
        notifier.configure([_channel(far.url)])
        [attempt] = await notifier.deliver(_note())
    assert attempt.status == "HTTP 302" and "not followed" in (attempt.error or "")


async def test_connection_errors_are_retried_until_the_limit(
    make: tuple[Notifier, FakeTime],
) -> None:
    notifier, time_ = make
    async with receiver((200, {})) as far:
        url = far.url  # the server is closed when this block ends: nothing listens there
    notifier.configure([_channel(url)])
    attempts = await notifier.deliver(_note())
    assert len(attempts) == 5 and not any(a.success for a in attempts)
    assert all(a.status is None for a in attempts)
    assert attempts[0].error is not None and attempts[0].error.startswith(
        "cannot reach http://127.0.0.1:"
    )
    assert "/hooks" not in attempts[0].error  # paths and queries may carry tokens
    assert len(time_.sleeps) == 4


async def test_a_missing_secret_fails_at_once_naming_the_reference(
    make: tuple[Notifier, FakeTime],
) -> None:
    notifier, _ = make
    async with receiver((200, {})) as far:
        notifier.configure([_channel(far.url, secret="env:NOT_SET_ANYWHERE")])
        [attempt] = await notifier.deliver(_note())
    assert far.requests == []
    assert (
        attempt.error == "secret: environment variable NOT_SET_ANYWHERE is not set "
        "(secret env:NOT_SET_ANYWHERE)"
    )


def test_the_documented_verification_recipe() -> None:
    """The receiver recipe in docs/notifications.md, run against what `sign` produces."""
    doc = (Path(__file__).parents[2] / "docs" / "notifications.md").read_text()
    section = doc.split("## Verifying a webhook signature", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(code, namespace)
    recipe = namespace["verify"]

    body = b'{"kind":"problem"}'
    now = int(time.time())
    assert recipe(SECRET, sign(SECRET, now, body), body)
    assert not recipe(SECRET, sign(SECRET, now, body), body + b" ")
    assert not recipe("another key", sign(SECRET, now, body), body)
    assert not recipe(SECRET, sign(SECRET, now - 3600, body), body)  # a replay
    assert not recipe(SECRET, "v1=abc", body)
