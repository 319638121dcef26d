"""HttpSource and Poller against a real HTTP/1.1 server on 127.0.0.1.

The server is a few lines on `asyncio.start_server`: each test scripts the replies and
reads back the requests exactly as they arrived on the socket.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from tests.waiting import wait_until
from watchkeeper.document.validate import parse_json
from watchkeeper.errors import (
    SourceRejected,
    SourceTimeout,
    SourceTooLarge,
    SourceUnavailable,
)
from watchkeeper.sources import Candidate, HttpSource, Poller, open_source

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
LAST_MODIFIED = "Wed, 01 May 2024 10:00:00 GMT"
DOC = b'{"schema": "watchkeeper/v1"}'


@dataclass(frozen=True, slots=True, kw_only=True)
class Reply:
    status: int = 200
    reason: str = "OK"
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    #: Send the body as this many chunks of ``body`` with no Content-Length.
    chunks: int | None = None
    #: Accept the request and never answer.
    hang: bool = False


@dataclass(frozen=True, slots=True)
class Seen:
    target: str
    headers: dict[str, str]  # names in lower case


class LocalServer:
    """A tiny HTTP/1.1 responder: one request per connection, replies from a script."""

    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self.requests: list[Seen] = []
        self.aborted = 0  # responses the client cut off mid-body
        self._closing = asyncio.Event()
        self._handlers: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    def url(self, path: str = "/doc.json", userinfo: str = "") -> str:
        return f"http://{userinfo}127.0.0.1:{self.port}{path}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and finish every open exchange; safe to call twice."""
        if self._server is None:
            return
        server, self._server = self._server, None
        self._closing.set()
        server.close()
        await asyncio.gather(*self._handlers)
        await server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line, *lines = head.decode("latin-1").split("\r\n")
            headers = {}
            for line in filter(None, lines):
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            self.requests.append(Seen(request_line.split(" ")[1], headers))
            reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
            if reply.hang:
                await self._closing.wait()
                return
            await self._send(writer, reply)
        except (ConnectionError, asyncio.IncompleteReadError):
            self.aborted += 1
        finally:
            writer.close()
            with suppress(ConnectionError):
                await writer.wait_closed()
            self._handlers.discard(task)

    async def _send(self, writer: asyncio.StreamWriter, reply: Reply) -> None:
        headers = {"Connection": "close", **reply.headers}
        if reply.chunks is None:
            headers.setdefault("Content-Length", str(len(reply.body)))
        else:
            headers["Transfer-Encoding"] = "chunked"
        head = f"HTTP/1.1 {reply.status} {reply.reason}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        writer.write(head.encode("latin-1"))
        if reply.chunks is None:
            writer.write(reply.body)
        else:
            for _ in range(reply.chunks):
                writer.write(b"%x\r\n%s\r\n" % (len(reply.body), reply.body))
                await writer.drain()
            writer.write(b"0\r\n\r\n")
        await writer.drain()


@pytest.fixture
async def start_server() -> AsyncIterator[Callable[[], Awaitable[LocalServer]]]:
    started: list[LocalServer] = []

    async def start() -> LocalServer:
        server = LocalServer()
        await server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        await server.stop()


@pytest.fixture
async def server(start_server: Callable[[], Awaitable[LocalServer]]) -> LocalServer:
    return await start_server()


def http_source(url: str, **kwargs: object) -> HttpSource:
    source = open_source(url, clock=lambda: NOW, **kwargs)  # type: ignore[arg-type]
    assert isinstance(source, HttpSource)
    return source


async def test_200_then_304_with_etag(server: LocalServer) -> None:
    server.replies = [
        Reply(body=DOC, headers={"ETag": '"v1"'}),
        Reply(status=304, reason="Not Modified", headers={"ETag": '"v1"'}),
    ]
    async with aclosing(http_source(server.url())) as source:
        first = await source.fetch()
        assert first is not None
        assert (first.body, first.etag, first.source) == (DOC, '"v1"', server.url())
        assert await source.fetch() is None
    assert "if-none-match" not in server.requests[0].headers
    assert server.requests[1].headers["if-none-match"] == '"v1"'
    assert server.requests[1].headers["user-agent"].startswith("watchkeeper/")


async def test_last_modified_goes_back_as_if_modified_since(server: LocalServer) -> None:
    server.replies = [
        Reply(body=DOC, headers={"Last-Modified": LAST_MODIFIED}),
        Reply(status=304, reason="Not Modified"),
        Reply(body=b"{}", headers={"Last-Modified": "Thu, 02 May 2024 10:00:00 GMT"}),
    ]
    async with aclosing(http_source(server.url())) as source:
        first = await source.fetch()
        assert first is not None and first.last_modified == LAST_MODIFIED
        assert await source.fetch() is None
        changed = await source.fetch()
        assert changed is not None and changed.body == b"{}"
    assert [r.headers.get("if-modified-since") for r in server.requests] == [
        None,
        LAST_MODIFIED,
        LAST_MODIFIED,
    ]


async def test_500_is_unavailable(server: LocalServer) -> None:
    server.replies = [Reply(status=500, reason="Internal Server Error", body=b"oops")]
    async with aclosing(http_source(server.url())) as source:
        with pytest.raises(SourceUnavailable) as info:
            await source.fetch()
    assert info.value.message == f"GET {server.url()}: 500 Internal Server Error"


async def test_404_is_rejected(server: LocalServer) -> None:
    server.replies = [Reply(status=404, reason="Not Found")]
    async with aclosing(http_source(server.url())) as source:
        with pytest.raises(SourceRejected, match="404 Not Found"):
            await source.fetch()


async def test_a_server_that_never_answers_is_a_timeout(server: LocalServer) -> None:
    server.replies = [Reply(hang=True)]
    async with aclosing(http_source(server.url(), timeout=0.2)) as source:
        started = time.monotonic()
        with pytest.raises(SourceTimeout, match=r"^GET http://127\.0\.0\.1:\d+/doc\.json: "):
            await source.fetch()
    assert time.monotonic() - started < 5.0


async def test_a_connection_refused_is_unavailable(server: LocalServer) -> None:
    url = server.url()
    await server.stop()  # nothing listens on the port any more
    async with aclosing(http_source(url)) as source:
        with pytest.raises(SourceUnavailable, match=f"^GET {url}: "):
            await source.fetch()


async def test_oversized_body_with_content_length_is_refused_before_reading(
    server: LocalServer,
) -> None:
    server.replies = [Reply(body=b"x" * 5000)]
    async with aclosing(http_source(server.url(), max_bytes=1000)) as source:
        with pytest.raises(SourceTooLarge, match="Content-Length 5000"):
            await source.fetch()


async def test_oversized_body_without_content_length_is_cut_off(server: LocalServer) -> None:
    chunk = b"x" * 65536
    server.replies = [Reply(body=chunk, chunks=100_000)]  # 6.5 GB if anyone read it all
    async with aclosing(http_source(server.url(), max_bytes=100_000)) as source:
        with pytest.raises(SourceTooLarge, match="more than 100000 bytes received"):
            await source.fetch()
    await wait_until(lambda: server.aborted, what="the server saw the connection reset")


async def test_a_chunked_body_under_the_cap_is_delivered(server: LocalServer) -> None:
    server.replies = [Reply(body=b"ab", chunks=3)]
    async with aclosing(http_source(server.url(), max_bytes=6)) as source:
        candidate = await source.fetch()
    assert candidate is not None and candidate.body == b"ababab"


async def test_bearer_token_from_env_arrives_and_stays_out_of_messages(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WK_TEST_SOURCE_TOKEN", "tok-s3cret")
    server.replies = [
        Reply(body=DOC),
        Reply(status=401, reason="Unauthorized", body=b"bad token tok-s3cret"),
        Reply(status=502, reason="Bad Gateway"),
    ]
    bearer = "env:WK_TEST_SOURCE_TOKEN"
    async with aclosing(http_source(server.url(), bearer_token=bearer)) as source:
        assert await source.fetch() is not None
        errors = []
        for _ in range(2):
            with pytest.raises((SourceRejected, SourceUnavailable)) as info:
                await source.fetch()
            errors.append(info.value.message)
    assert [r.headers["authorization"] for r in server.requests] == ["Bearer tok-s3cret"] * 3
    assert errors == [
        f"GET {server.url()}: 401 Unauthorized",
        f"GET {server.url()}: 502 Bad Gateway",
    ]


async def test_credentials_in_the_url_are_sent_but_never_shown(server: LocalServer) -> None:
    server.replies = [Reply(status=500, reason="Internal Server Error")]
    async with aclosing(http_source(server.url(userinfo="alice:pw-s3cret@"))) as source:
        assert source.name == server.url()
        with pytest.raises(SourceUnavailable) as info:
            await source.fetch()
    assert "pw-s3cret" not in info.value.message
    assert server.requests[0].headers["authorization"].startswith("Basic ")


async def test_redirects_are_followed_but_the_token_stays_home(
    start_server: Callable[[], Awaitable[LocalServer]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WK_TEST_SOURCE_TOKEN", "tok-s3cret")
    home, elsewhere = await start_server(), await start_server()
    home.replies = [
        Reply(status=302, reason="Found", headers={"Location": "/moved.json"}),
        Reply(status=302, reason="Found", headers={"Location": elsewhere.url()}),
    ]
    elsewhere.replies = [Reply(body=DOC)]
    source = http_source(home.url(), bearer_token="env:WK_TEST_SOURCE_TOKEN")
    async with aclosing(source):
        candidate = await source.fetch()
    assert candidate is not None and candidate.body == DOC
    assert [r.target for r in home.requests] == ["/doc.json", "/moved.json"]
    assert all(r.headers["authorization"] == "Bearer tok-s3cret" for r in home.requests)
    assert "authorization" not in elsewhere.requests[0].headers  # another origin


async def test_poller_reports_invalid_json_as_rejected_and_goes_on(server: LocalServer) -> None:
    """The source delivers bytes; the intake refuses them; the source is still healthy."""
    server.replies = [
        Reply(body=b"{not json", headers={"ETag": '"bad"'}),
        Reply(status=304, reason="Not Modified"),
        Reply(body=DOC, headers={"ETag": '"good"'}),
    ]
    taken: list[Candidate] = []

    async def intake(candidate: Candidate) -> None:
        parse_json(candidate.body)  # raises DocumentUnreadable
        taken.append(candidate)

    sleeps: list[float] = []

    async def sleep(delay: float) -> None:
        sleeps.append(delay)

    async with aclosing(http_source(server.url())) as source:
        poller = Poller(
            source, intake, interval=30.0, clock=lambda: NOW, sleep=sleep, rng=random.Random(1)
        )
        statuses = [await poller.poll_once() for _ in range(3)]

    assert [s.ok for s in statuses] == [True, True, True]
    assert [s.consecutive_failures for s in statuses] == [0, 0, 0]
    assert statuses[0].last_rejection is not None
    assert statuses[0].last_rejection.startswith("not valid JSON")
    assert statuses[1].last_rejection == statuses[0].last_rejection
    assert statuses[2].last_rejection is None
    assert [c.etag for c in taken] == ['"good"']
    assert server.requests[1].headers["if-none-match"] == '"bad"'


async def test_poller_keeps_the_configuration_while_the_server_fails(server: LocalServer) -> None:
    server.replies = [
        Reply(body=DOC, headers={"ETag": '"v1"'}),
        Reply(status=503, reason="Service Unavailable"),
        Reply(status=503, reason="Service Unavailable"),
        Reply(status=304, reason="Not Modified"),
    ]
    taken: list[bytes] = []

    async def intake(candidate: Candidate) -> None:
        taken.append(candidate.body)

    async with aclosing(http_source(server.url())) as source:
        poller = Poller(source, intake, interval=30.0, clock=lambda: NOW, rng=random.Random(1))
        statuses = [await poller.poll_once() for _ in range(4)]

    assert [(s.ok, s.consecutive_failures) for s in statuses] == [
        (True, 0),
        (False, 1),
        (False, 2),
        (True, 0),
    ]
    assert statuses[2].last_error == f"GET {server.url()}: 503 Service Unavailable"
    assert taken == [DOC]  # the 304 after recovery keeps what we have; nothing re-imported
