"""A document served over http(s), fetched with conditional requests.

The server's validators from the last 200 (``ETag``, ``Last-Modified``) go back as
``If-None-Match`` / ``If-Modified-Since``, so an unchanged document costs a 304 and no body.
The body is streamed and dropped as soon as it passes the size cap, so a runaway server
cannot exhaust the manager's memory. httpx errors are mapped to `SourceError` here and
only here; messages name the URL without its credentials and never the bearer token.
"""

from __future__ import annotations

import asyncio
import hashlib
from urllib.parse import urlsplit, urlunsplit

import httpx

from watchkeeper import __version__
from watchkeeper.clock import Clock, utcnow
from watchkeeper.errors import (
    SecretError,
    SourceError,
    SourceRejected,
    SourceTimeout,
    SourceTooLarge,
    SourceUnavailable,
)
from watchkeeper.secrets import resolve_secret
from watchkeeper.sources.base import DEFAULT_MAX_BYTES, Candidate

MAX_REDIRECTS = 5
USER_AGENT = f"watchkeeper/{__version__}"

#: 4xx answers that mean "later", not "never": they are reported as unavailable.
_TRANSIENT_4XX = frozenset({408, 425, 429})


def display_url(url: str) -> str:
    """The URL without ``user:password@``, fit for logs, messages and the API."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


class HttpSource:
    """Polls one URL through a single `httpx.AsyncClient` (one connection pool).

    ``timeout`` bounds each network step *and* the whole fetch, so a server that drips
    bytes slowly is a timeout too. ``bearer_token`` is a secret reference (``env:NAME``,
    ``file:/path``) resolved at each fetch, so a rotated token is picked up without a
    restart. ``transport`` is the seam for tests (`httpx.MockTransport`).
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 10.0,
        max_bytes: int = DEFAULT_MAX_BYTES,
        bearer_token: str | None = None,
        clock: Clock = utcnow,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url
        self.timeout = timeout
        self.max_bytes = max_bytes
        self._bearer_token = bearer_token
        self._clock = clock
        self._name = display_url(url)
        self._client = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(timeout),
            follow_redirects=True,
            max_redirects=MAX_REDIRECTS,
            headers={"User-Agent": USER_AGENT},
        )
        self._etag: str | None = None
        self._last_modified: str | None = None
        self._digest: bytes | None = None

    @property
    def name(self) -> str:
        return self._name

    async def fetch(self) -> Candidate | None:
        headers = self._request_headers()
        try:
            async with asyncio.timeout(self.timeout):
                return await self._fetch(headers)
        except TimeoutError as exc:
            raise SourceTimeout(
                f"GET {self.name}: no complete answer within {self.timeout:g} s"
            ) from exc
        except httpx.TimeoutException as exc:
            raise SourceTimeout(f"GET {self.name}: timed out ({_cause(exc)})") from exc
        except httpx.TooManyRedirects as exc:
            raise SourceRejected(f"GET {self.name}: more than {MAX_REDIRECTS} redirects") from exc
        except httpx.HTTPError as exc:
            raise SourceUnavailable(f"GET {self.name}: {_cause(exc)}") from exc

    async def aclose(self) -> None:
        await self._client.aclose()

    def _request_headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        if self._bearer_token is not None:
            try:
                token = resolve_secret(self._bearer_token)
            except SecretError as exc:
                raise SourceRejected(f"GET {self.name}: bearer token: {exc.message}") from exc
            headers["Authorization"] = f"Bearer {token}"
        if self._digest is not None:  # validators only once we hold the body they describe
            if self._etag is not None:
                headers["If-None-Match"] = self._etag
            if self._last_modified is not None:
                headers["If-Modified-Since"] = self._last_modified
        return headers

    async def _fetch(self, headers: dict[str, str]) -> Candidate | None:
        async with self._client.stream("GET", self.url, headers=headers) as response:
            if response.status_code == 304 and self._digest is not None:
                return None
            self._check_status(response)
            body = await self._read_capped(response)
            etag = response.headers.get("ETag")
            last_modified = response.headers.get("Last-Modified")
        self._etag, self._last_modified = etag, last_modified
        digest = hashlib.sha256(body).digest()
        if digest == self._digest:  # a server without validators resent the same bytes
            return None
        self._digest = digest
        return Candidate(
            body=body,
            source=self.name,
            fetched_at=self._clock(),
            etag=etag,
            last_modified=last_modified,
        )

    def _check_status(self, response: httpx.Response) -> None:
        status = response.status_code
        if 200 <= status < 300:
            return
        what = f"GET {self.name}: {status} {response.reason_phrase}".rstrip()
        if status >= 500 or status in _TRANSIENT_4XX:
            raise SourceUnavailable(what)
        if status == 304:
            raise SourceUnavailable(f"{what} to an unconditional request")
        raise SourceRejected(what)

    async def _read_capped(self, response: httpx.Response) -> bytes:
        length = response.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > self.max_bytes:
            raise self._too_large(f"Content-Length {length}")
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > self.max_bytes:
                raise self._too_large(f"more than {self.max_bytes} bytes received")
            chunks.append(chunk)
        return b"".join(chunks)

    def _too_large(self, detail: str) -> SourceError:
        return SourceTooLarge(f"GET {self.name}: over the {self.max_bytes}-byte cap ({detail})")


def _cause(exc: httpx.HTTPError) -> str:
    """The exception's own words, or its class name when httpx left it blank."""
    text = str(exc)
    inner = exc.__cause__ or exc.__context__
    if not text and inner is not None:
        text = str(inner)
    return text or type(exc).__name__
