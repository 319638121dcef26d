"""The http executor through httpx.MockTransport: status, body, headers, secrets, errors.

Real sockets (keep-alive, TLS and certificate lifetime, SNI) are in
tests/integration/test_executors.py.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from watchkeeper.results import CheckState, Metric
from watchkeeper.worker.executors import HttpExecutor
from watchkeeper.worker.executors.http import _server_name

Handler = Callable[[httpx.Request], httpx.Response]
Factory = Callable[..., HttpExecutor]


@pytest.fixture
async def make() -> AsyncIterator[Factory]:
    made: list[HttpExecutor] = []

    def factory(handler: Handler, **kwargs: Any) -> HttpExecutor:
        executor = HttpExecutor(transport=httpx.MockTransport(handler), **kwargs)
        made.append(executor)
        return executor

    yield factory
    for executor in made:
        await executor.aclose()


def check(**fields: Any) -> dict[str, Any]:
    return {"kind": "http", **fields}


async def test_ok_with_check_http_metrics(make: Factory) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=b"hello world")

    out = await make(handler).run(check(path="/health"), address="192.0.2.1", timeout=5)
    assert out.state is CheckState.OK
    assert out.output.startswith("HTTP OK - HTTP/1.1 200 OK - 11 bytes in ")
    assert out.output.endswith(" second response time")
    time_, size = out.metrics
    assert (time_.label, time_.uom, time_.min, time_.max) == ("time", "s", 0.0, 5.0)
    assert size == Metric(label="size", value=11.0, uom="B", min=0.0)
    (request,) = seen
    assert str(request.url) == "http://192.0.2.1/health"
    assert request.method == "GET"
    assert request.headers["user-agent"] == "watchkeeper-http-check"
    assert "authorization" not in request.headers


async def test_url_port_method_host_header_and_ipv6(make: Factory) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    executor = make(handler)
    spec = check(port=8080, method="HEAD", host_header="app.example", expect_status=[204])
    out = await executor.run(spec, address="2001:db8::1", timeout=5)
    assert out.state is CheckState.OK
    assert str(seen[0].url) == "http://[2001:db8::1]:8080/"
    assert seen[0].method == "HEAD"
    assert seen[0].headers["host"] == "app.example"
    await executor.run(check(tls=True), address="192.0.2.1", timeout=5)
    assert str(seen[1].url) == "https://192.0.2.1/"


async def test_unexpected_status_is_critical(make: Factory) -> None:
    out = await make(lambda r: httpx.Response(503, content=b"down")).run(
        check(expect_status=[200, 301]), address="192.0.2.1", timeout=5
    )
    assert out.state is CheckState.CRITICAL
    assert out.output.startswith(
        "HTTP CRITICAL - status 503, expected 200, 301; HTTP/1.1 503 Service Unavailable - 4 bytes"
    )
    assert [m.label for m in out.metrics] == ["time", "size"]


async def test_body_contains(make: Factory) -> None:
    executor = make(lambda r: httpx.Response(200, content="ünïcode status: green".encode()))
    ok = await executor.run(check(body_contains="ï"), address="192.0.2.1", timeout=5)
    assert ok.state is CheckState.OK
    bad = await executor.run(check(body_contains="red"), address="192.0.2.1", timeout=5)
    assert bad.state is CheckState.CRITICAL
    assert bad.output.startswith("HTTP CRITICAL - body does not contain 'red'; HTTP/1.1 200 OK")


async def test_body_is_read_up_to_the_cap(make: Factory) -> None:
    body = b"x" * 5000 + b"needle"
    executor = make(lambda r: httpx.Response(200, content=body), max_body=1000)
    out = await executor.run(check(body_contains="needle"), address="192.0.2.1", timeout=5)
    assert out.state is CheckState.CRITICAL
    assert out.metrics[1].value <= len(body)


async def test_bearer_token_comes_from_the_reference(make: Factory) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    executor = make(handler, environ={"WK_TOKEN": "s3cr3t-value"})
    out = await executor.run(check(bearer_token="env:WK_TOKEN"), address="192.0.2.1", timeout=5)
    assert out.state is CheckState.OK
    assert seen[0].headers["authorization"] == "Bearer s3cr3t-value"

    missing = await executor.run(check(bearer_token="env:WK_NOPE"), address="192.0.2.1", timeout=5)
    assert missing.state is CheckState.UNKNOWN
    assert missing.output.startswith("HTTP UNKNOWN - bearer_token: ")
    assert "WK_NOPE" in missing.output
    assert len(seen) == 1  # nothing was sent without the token


async def test_secret_values_never_reach_the_output(make: Factory) -> None:
    executor = make(lambda r: httpx.Response(401), environ={"WK_TOKEN": "s3cr3t-value"})
    out = await executor.run(check(bearer_token="env:WK_TOKEN"), address="192.0.2.1", timeout=5)
    assert out.state is CheckState.CRITICAL
    assert "s3cr3t" not in out.output + out.long_output


@pytest.mark.parametrize(
    ("error", "state", "text"),
    [
        (httpx.ConnectError("refused"), CheckState.CRITICAL, "ConnectError: refused"),
        (httpx.ReadTimeout("slow"), CheckState.CRITICAL, "timed out after 5s"),
        (
            httpx.RemoteProtocolError("Server disconnected."),
            CheckState.CRITICAL,
            "RemoteProtocolError: Server disconnected",
        ),
        (httpx.UnsupportedProtocol("nope"), CheckState.UNKNOWN, "cannot make the request: nope"),
    ],
)
async def test_transport_errors(
    make: Factory, error: Exception, state: CheckState, text: str
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error

    out = await make(handler).run(check(), address="192.0.2.1", timeout=5)
    assert out.state is state
    assert out.output.startswith(f"HTTP {state.name} - {text}")
    assert out.output.endswith("on http://192.0.2.1/")


async def test_causes_are_mapped(make: Factory) -> None:
    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("x") from ConnectionRefusedError(111, "Connection refused")

    def tls(request: httpx.Request) -> httpx.Response:
        cause = ssl.SSLCertVerificationError(1, "certificate verify failed")
        cause.verify_message = "self-signed certificate"
        raise httpx.ConnectError("x") from cause

    out = await make(refused).run(check(), address="192.0.2.1", timeout=5)
    assert out.output == "HTTP CRITICAL - connection refused on http://192.0.2.1/"
    out = await make(tls).run(check(tls=True), address="192.0.2.1", timeout=5)
    assert out.output == (
        "HTTP CRITICAL - TLS handshake failed (self-signed certificate) on https://192.0.2.1/"
    )


async def test_certificate_days_without_a_tls_stream_is_unknown(make: Factory) -> None:
    out = await make(lambda r: httpx.Response(200)).run(
        check(tls=True, certificate_days=30), address="192.0.2.1", timeout=5
    )
    assert out.state is CheckState.UNKNOWN
    assert out.output.startswith("HTTP UNKNOWN - certificate expiry not available; HTTP/1.1 200")


async def test_invalid_spec_is_unknown(make: Factory) -> None:
    out = await make(lambda r: httpx.Response(200)).run(
        check(path="no-slash"), address="192.0.2.1", timeout=5
    )
    assert out.state is CheckState.UNKNOWN
    assert out.output.startswith("HTTP UNKNOWN - invalid check: path")


async def test_one_client_per_tls_server_name(make: Factory) -> None:
    executor = make(lambda r: httpx.Response(200))
    for spec in (check(), check(host_header="a.example"), check(tls=True, host_header="a.example")):
        await executor.run(spec, address="192.0.2.1", timeout=5)
    assert set(executor._clients) == {None, "a.example"}


@pytest.mark.parametrize(
    ("host_header", "name"),
    [
        (None, None),
        ("app.example", "app.example"),
        ("app.example:8443", "app.example"),
        ("[2001:db8::1]:443", None),
        ("[2001:db8::1]", None),
    ],
)
def test_server_name_from_host_header(host_header: str | None, name: str | None) -> None:
    assert _server_name(host_header) == name


@pytest.mark.parametrize("address", ["user@192.0.2.1", "192.0.2.1/x", "[::1]", "h?q", "h#f"])
async def test_addresses_that_would_bend_the_url_are_refused(make: Factory, address: str) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    out = await make(handler).run(check(), address=address, timeout=5)
    assert (out.state, out.output) == (
        CheckState.UNKNOWN,
        f"HTTP UNKNOWN - invalid address {address!r}",
    )
    assert seen == []
