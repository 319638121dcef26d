"""The http executor: status, body match, latency and certificate lifetime, like check_http.

One httpx client per executor (per TLS server name, see `_client`) keeps connections
alive between checks, so a check every few seconds does not pay a handshake each time.
Perfdata is check_http's ``time=<s>s;;;0;<timeout> size=<bytes>B;;;0`` plus, when
``certificate_days`` is set, ``cert_days=<days>;<N>:;0:`` so the same range evaluator
can alert on it. The body is read up to ``max_body`` bytes (decoded); ``body_contains``
is searched there. Proxies from the environment are ignored: a check measures the target.
"""

from __future__ import annotations

import asyncio
import math
import os
import socket
import ssl
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, ClassVar, Literal

import httpx
from pydantic import BaseModel, Field

from watchkeeper.document.fields import Port, SecretRef, Strict
from watchkeeper.errors import SecretError
from watchkeeper.plugins import CHECKS
from watchkeeper.results import CheckOutcome, CheckState, Metric
from watchkeeper.secrets import resolve_secret
from watchkeeper.worker.executors.base import SpecExecutor, outcome
from watchkeeper.worker.executors.tcp import host_port

#: Decoded body bytes kept for ``body_contains``; reading stops there.
DEFAULT_MAX_BODY = 1024 * 1024
USER_AGENT = "watchkeeper-http-check"


class HttpCheck(Strict):
    """Request a URL on the host; check status, body, latency and certificate lifetime."""

    kind: Literal["http"]
    port: Port | None = Field(default=None, description="Default 80, or 443 with tls.")
    path: str = Field(default="/", pattern=r"^/")
    tls: bool = False
    method: Literal["GET", "HEAD", "POST"] = "GET"
    host_header: str | None = None
    expect_status: list[Annotated[int, Field(ge=100, le=599)]] = Field(
        default_factory=lambda: [200]
    )
    body_contains: str | None = None
    certificate_days: Annotated[int, Field(ge=0)] | None = Field(
        default=None, description="With tls: WARNING when the certificate expires sooner."
    )
    bearer_token: SecretRef | None = None


@CHECKS.register
class HttpExecutor(SpecExecutor[HttpCheck]):
    """Checks an HTTP(S) endpoint on the host's address.

    ``verify``: True (system CAs), False (tests, self-signed lab gear), a CA bundle path
    or an `ssl.SSLContext`. ``environ`` is where ``env:`` secrets are looked up.
    """

    kind: ClassVar[str] = "http"
    Config: ClassVar[type[BaseModel]] = HttpCheck
    label: ClassVar[str] = "HTTP"

    def __init__(
        self,
        *,
        verify: bool | str | ssl.SSLContext = True,
        max_body: int = DEFAULT_MAX_BODY,
        environ: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if isinstance(verify, str):
            verify = ssl.create_default_context(cafile=verify)
        self._verify = verify
        self._max_body = max_body
        self._environ = environ
        self._transport = transport
        self._clients: dict[str | None, httpx.AsyncClient] = {}

    def _client(self, server_name: str | None) -> httpx.AsyncClient:
        """A client per TLS server name: a pooled connection is reused only for its own SNI."""
        client = self._clients.get(server_name)
        if client is None:
            client = self._clients[server_name] = httpx.AsyncClient(
                verify=self._verify,
                transport=self._transport,
                follow_redirects=False,
                trust_env=False,
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=100),
                headers={"User-Agent": USER_AGENT},
            )
        return client

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()

    async def check(
        self,
        spec: HttpCheck,
        *,
        address: str,
        timeout: float,  # noqa: ASYNC109
    ) -> CheckOutcome:
        started = time.perf_counter()
        if any(char in address for char in "/@?#[]"):  # would change the URL, not just the host
            return outcome(CheckState.UNKNOWN, f"HTTP UNKNOWN - invalid address {address!r}")

        def failed(state: CheckState, why: str) -> CheckOutcome:
            return outcome(
                state, f"HTTP {state.name} - {why}", duration=time.perf_counter() - started
            )

        headers = {}
        if spec.host_header:
            headers["Host"] = spec.host_header
        if spec.bearer_token:
            try:
                token = resolve_secret(spec.bearer_token, self._environ)
            except SecretError as exc:
                return failed(CheckState.UNKNOWN, f"bearer_token: {exc.message}")
            headers["Authorization"] = f"Bearer {token}"
        default_port = 443 if spec.tls else 80
        port = spec.port or default_port
        netloc = host_port(address, port)
        if port == default_port:  # as httpx writes it, so messages match the request
            netloc = netloc.rsplit(":", 1)[0]
        url = f"{'https' if spec.tls else 'http'}://{netloc}{spec.path}"
        server_name = _server_name(spec.host_header) if spec.tls else None
        extensions = {"sni_hostname": server_name} if server_name else {}
        client = self._client(server_name)
        body = bytearray()
        size = 0
        expires = None
        try:
            async with asyncio.timeout(timeout):
                request = client.build_request(
                    spec.method, url, headers=headers, timeout=timeout, extensions=extensions
                )
                response = await client.send(request, stream=True)
                try:
                    expires = _not_after(response) if spec.certificate_days is not None else None
                    async for chunk in response.aiter_bytes():
                        size += len(chunk)
                        body += chunk[: self._max_body - len(body)]
                        if size >= self._max_body:
                            break
                finally:
                    await response.aclose()
        except (TimeoutError, httpx.TimeoutException):
            return failed(CheckState.CRITICAL, f"timed out after {timeout:g}s on {url}")
        except httpx.HTTPError as exc:
            state, why = _describe(exc)
            return failed(state, f"{why} on {url}")
        except httpx.InvalidURL as exc:
            return failed(CheckState.UNKNOWN, f"invalid URL {url}: {exc}")
        elapsed = time.perf_counter() - started
        status_line = f"{response.http_version} {response.status_code} {response.reason_phrase}"
        metrics = [
            Metric(label="time", value=elapsed, uom="s", min=0.0, max=float(timeout)),
            Metric(label="size", value=float(size), uom="B", min=0.0),
        ]
        state, problems = CheckState.OK, []
        if response.status_code not in spec.expect_status:
            state = CheckState.CRITICAL
            wanted = ", ".join(str(code) for code in spec.expect_status)
            problems.append(f"status {response.status_code}, expected {wanted}")
        if spec.body_contains is not None and spec.body_contains.encode() not in body:
            state = CheckState.CRITICAL
            problems.append(f"body does not contain {spec.body_contains!r}")
        if spec.certificate_days is not None and spec.tls:
            cert_state, text, metric = _certificate(expires, spec.certificate_days)
            if cert_state.severity > state.severity:
                state = cert_state
            if cert_state is not CheckState.OK:
                problems.append(text)
            metrics.extend([metric] if metric else [])
        summary = f"{status_line} - {size} bytes in {elapsed:.3f} second response time"
        text = f"HTTP {state.name} - " + "; ".join([*problems, summary])
        return outcome(state, text, metrics=tuple(metrics), duration=elapsed)


def _server_name(host_header: str | None) -> str | None:
    """The TLS server name a Host header implies: its name without the port; IPs have none."""
    if not host_header or host_header.startswith("["):
        return None
    name, _, port = host_header.rpartition(":")
    return name if name and port.isdigit() else host_header


def _not_after(response: httpx.Response) -> datetime | None:
    """The expiry of the server certificate, read even when it was not verified."""
    stream = response.extensions.get("network_stream")
    ssl_object = stream.get_extra_info("ssl_object") if stream is not None else None
    if ssl_object is None:
        return None
    verified = ssl_object.getpeercert()
    if verified:  # a parsed dict only exists when the chain was verified
        return datetime.fromtimestamp(ssl.cert_time_to_seconds(verified["notAfter"]), UTC)
    der = ssl_object.getpeercert(binary_form=True)
    if der is None:
        return None
    try:  # cryptography comes with asyncssh; the ssl module cannot parse DER itself
        from cryptography import x509
    except ImportError:
        return None
    return x509.load_der_x509_certificate(der).not_valid_after_utc


def _certificate(expires: datetime | None, days: int) -> tuple[CheckState, str, Metric | None]:
    if expires is None:
        return CheckState.UNKNOWN, "certificate expiry not available", None
    left = (expires - datetime.now(UTC)).total_seconds() / 86400
    metric = Metric(label="cert_days", value=round(left, 3), warn=f"{days}:", crit="0:")
    when = expires.strftime("%Y-%m-%d %H:%M UTC")
    if left < 0:
        return CheckState.CRITICAL, f"certificate expired on {when}", metric
    if left < days:
        return (
            CheckState.WARNING,
            f"certificate expires in {math.floor(left)} days ({when})",
            metric,
        )
    return CheckState.OK, "", metric


def _describe(exc: httpx.HTTPError) -> tuple[CheckState, str]:
    """Map an httpx error to a state and a short reason (third-party errors end here)."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLError):
            reason = getattr(cause, "verify_message", None) or cause.reason or cause
            return CheckState.CRITICAL, f"TLS handshake failed ({reason})"
        if isinstance(cause, socket.gaierror):
            return CheckState.UNKNOWN, f"cannot resolve the address ({cause.strerror})"
        if isinstance(cause, ConnectionRefusedError):
            return CheckState.CRITICAL, "connection refused"
        if isinstance(cause, OSError) and cause.errno is not None:
            return CheckState.CRITICAL, os.strerror(cause.errno).lower()
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.LocalProtocolError):
        return CheckState.UNKNOWN, f"cannot make the request: {exc}"
    reason = str(exc).rstrip(".")
    return CheckState.CRITICAL, f"{type(exc).__name__}: {reason}" if reason else type(exc).__name__
