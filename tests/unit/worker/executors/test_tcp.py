"""The tcp executor's failure mapping, with the connection itself faked.

Real listeners (plain, TLS, send/expect, IPv6) are in tests/integration/test_executors.py.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from watchkeeper.results import CheckState
from watchkeeper.worker.executors import TcpExecutor
from watchkeeper.worker.executors.tcp import host_port


def fail_with(monkeypatch: pytest.MonkeyPatch, error: BaseException | None) -> None:
    loop = asyncio.get_running_loop()

    async def create_connection(*args: Any, **kwargs: Any) -> Any:
        if error is None:
            await asyncio.sleep(3600)  # a SYN nobody answers
        raise error  # type: ignore[misc]

    monkeypatch.setattr(loop, "create_connection", create_connection)


@pytest.mark.parametrize(
    ("error", "state", "output"),
    [
        (
            ConnectionRefusedError(111, "Connection refused"),
            CheckState.CRITICAL,
            "TCP CRITICAL - connection refused on 192.0.2.1:22",
        ),
        (
            OSError(113, "No route to host"),
            CheckState.CRITICAL,
            "TCP CRITICAL - no route to host on 192.0.2.1:22",
        ),
        (
            OSError("Multiple exceptions: [Errno 111] a, [Errno 111] b"),
            CheckState.CRITICAL,
            "TCP CRITICAL - Multiple exceptions: [Errno 111] a, [Errno 111] b on 192.0.2.1:22",
        ),
        (
            socket.gaierror(-2, "Name or service not known"),
            CheckState.UNKNOWN,
            "TCP UNKNOWN - cannot resolve 192.0.2.1: Name or service not known",
        ),
        (
            None,
            CheckState.CRITICAL,
            "TCP CRITICAL - timed out after 0.05s connecting to 192.0.2.1:22",
        ),
    ],
)
async def test_connection_failures(
    monkeypatch: pytest.MonkeyPatch, error: BaseException | None, state: CheckState, output: str
) -> None:
    fail_with(monkeypatch, error)
    out = await TcpExecutor().run({"kind": "tcp", "port": 22}, address="192.0.2.1", timeout=0.05)
    assert (out.state, out.output, out.metrics) == (state, output, ())
    assert out.duration >= 0


async def test_invalid_spec_is_unknown() -> None:
    out = await TcpExecutor().run({"kind": "tcp", "port": 0}, address="x", timeout=1)
    assert out.state is CheckState.UNKNOWN
    assert out.output.startswith("TCP UNKNOWN - invalid check: port")


def test_host_port_brackets_ipv6() -> None:
    assert host_port("192.0.2.1", 80) == "192.0.2.1:80"
    assert host_port("web1.example", 80) == "web1.example:80"
    assert host_port("2001:db8::1", 443) == "[2001:db8::1]:443"
