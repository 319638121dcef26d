"""HttpSource through httpx.MockTransport: status mapping, redirects, secrets, headers.

The same source against a real socket is in tests/integration/test_http_source.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from watchkeeper import __version__
from watchkeeper.errors import SourceRejected, SourceTimeout, SourceUnavailable
from watchkeeper.sources.http import HttpSource, display_url

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
URL = "https://config.example/doc.json"

Handler = Callable[[httpx.Request], httpx.Response]
Factory = Callable[..., HttpSource]


@pytest.fixture
async def make_source() -> AsyncIterator[Factory]:
    opened: list[HttpSource] = []

    def make(handler: Handler, url: str = URL, **kwargs: Any) -> HttpSource:
        source = HttpSource(
            url, transport=httpx.MockTransport(handler), clock=lambda: NOW, **kwargs
        )
        opened.append(source)
        return source

    yield make
    for source in opened:
        await source.aclose()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://alice:pw@host.example:8443/a/b?x=1", "https://host.example:8443/a/b?x=1"),
        ("http://token@[::1]:80/doc", "http://[::1]:80/doc"),
        ("http://host/doc", "http://host/doc"),
    ],
)
def test_display_url_drops_credentials(url: str, shown: str) -> None:
    assert display_url(url) == shown


async def test_sends_user_agent_and_builds_the_candidate(make_source: Factory) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=b"{}", headers={"ETag": '"v1"'})

    candidate = await make_source(handler).fetch()
    assert candidate is not None
    assert (candidate.body, candidate.source, candidate.fetched_at) == (b"{}", URL, NOW)
    assert candidate.etag == '"v1"'
    assert seen[0].headers["User-Agent"] == f"watchkeeper/{__version__}"
    assert "If-None-Match" not in seen[0].headers


async def test_same_bytes_without_validators_are_unchanged(make_source: Factory) -> None:
    bodies = iter([b"{}", b"{}", b'{"a": 1}'])

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=next(bodies))

    source = make_source(handler)
    assert await source.fetch() is not None
    assert await source.fetch() is None
    changed = await source.fetch()
    assert changed is not None and changed.body == b'{"a": 1}'


@pytest.mark.parametrize(
    ("status", "error", "text"),
    [
        (500, SourceUnavailable, "500 Internal Server Error"),
        (503, SourceUnavailable, "503 Service Unavailable"),
        (429, SourceUnavailable, "429 Too Many Requests"),
        (408, SourceUnavailable, "408 Request Timeout"),
        (404, SourceRejected, "404 Not Found"),
        (403, SourceRejected, "403 Forbidden"),
        (300, SourceRejected, "300 Multiple Choices"),
    ],
)
async def test_status_mapping(
    make_source: Factory, status: int, error: type[Exception], text: str
) -> None:
    source = make_source(lambda request: httpx.Response(status))
    with pytest.raises(error) as info:
        await source.fetch()
    assert str(info.value) == f"GET {URL}: {text}"


async def test_304_to_a_first_request_is_not_success(make_source: Factory) -> None:
    source = make_source(lambda request: httpx.Response(304))
    with pytest.raises(SourceUnavailable, match="unconditional"):
        await source.fetch()


async def test_redirects_are_followed_up_to_five(make_source: Factory) -> None:
    hops: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        hops.append(request.url.path)
        n = len(hops)
        if n <= 5:
            return httpx.Response(302, headers={"Location": f"/hop{n}"})
        return httpx.Response(200, content=b"{}")

    candidate = await make_source(handler).fetch()
    assert candidate is not None and hops[-1] == "/hop5"


async def test_a_redirect_loop_is_rejected(make_source: Factory) -> None:
    source = make_source(lambda request: httpx.Response(302, headers={"Location": "/again"}))
    with pytest.raises(SourceRejected, match="more than 5 redirects") as info:
        await source.fetch()
    assert isinstance(info.value.__cause__, httpx.TooManyRedirects)


@pytest.mark.parametrize(
    ("exc", "error", "text"),
    [
        (httpx.ConnectError("connection refused"), SourceUnavailable, "connection refused"),
        (httpx.ReadTimeout("read timed out"), SourceTimeout, "timed out (read timed out)"),
        (httpx.ConnectTimeout(""), SourceTimeout, "timed out (ConnectTimeout)"),
        (httpx.RemoteProtocolError("peer closed"), SourceUnavailable, "peer closed"),
    ],
)
async def test_transport_errors_are_mapped_with_their_cause(
    make_source: Factory, exc: httpx.HTTPError, error: type[Exception], text: str
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    with pytest.raises(error) as info:
        await make_source(handler).fetch()
    assert str(info.value) == f"GET {URL}: {text}"
    assert info.value.__cause__ is exc


async def test_credentials_in_the_url_never_reach_a_message(make_source: Factory) -> None:
    url = "https://alice:pw-s3cret@config.example/doc.json"
    source = make_source(lambda request: httpx.Response(500), url=url)
    assert source.name == URL
    with pytest.raises(SourceUnavailable) as info:
        await source.fetch()
    assert "pw-s3cret" not in str(info.value)


async def test_bearer_token_secret_is_resolved_at_each_fetch(
    make_source: Factory, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("first\n")
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["Authorization"])
        return httpx.Response(200, content=b"{}")

    source = make_source(handler, bearer_token=f"file:{token_file}")
    await source.fetch()
    token_file.write_text("rotated\n")
    await source.fetch()
    assert seen == ["Bearer first", "Bearer rotated"]


async def test_an_unresolvable_token_is_a_rejected_source(
    make_source: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WK_UNIT_MISSING_TOKEN", raising=False)
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200)

    source = make_source(handler, bearer_token="env:WK_UNIT_MISSING_TOKEN")
    with pytest.raises(SourceRejected, match="WK_UNIT_MISSING_TOKEN is not set"):
        await source.fetch()
    assert calls == []  # no request goes out without the token
