"""The tcp executor: connect, optionally over TLS, optionally send and expect, like check_tcp.

Built on ``loop.create_connection`` with a small protocol rather than streams: this
executor is meant to run thousands of checks a second, and a StreamReader/StreamWriter
pair per check costs more than the check. Results mirror check_tcp so thresholds and
habits carry over: perfdata ``time=<s>s;;;0;<timeout>`` (the whole exchange, as
check_tcp measures it), an unexpected reply is WARNING, a refused or timed-out
connection is CRITICAL, and an unresolvable name is UNKNOWN.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from typing import ClassVar, Literal

from pydantic import BaseModel

from watchkeeper.document.fields import Port, Strict
from watchkeeper.plugins import CHECKS
from watchkeeper.results import CheckOutcome, CheckState, Metric
from watchkeeper.worker.executors.base import SpecExecutor, outcome

#: Bytes of reply kept for ``expect``; the reply is searched within them.
MAX_REPLY = 64 * 1024
#: Seconds allowed for an orderly close (a TLS close_notify) before the socket is aborted.
CLOSE_GRACE = 1.0


class _Probe(asyncio.Protocol):
    """Collects the reply until ``expect`` shows up, the peer closes, or the cap is hit."""

    def __init__(self, loop: asyncio.AbstractEventLoop, expect: bytes | None) -> None:
        self.reply = bytearray()
        self.expect = expect
        #: True when ``expect`` was seen, False when the reply ended without it.
        self.matched: asyncio.Future[bool] = loop.create_future()
        self.lost: asyncio.Future[None] = loop.create_future()

    def data_received(self, data: bytes) -> None:
        if self.matched.done():
            return
        self.reply += data[: MAX_REPLY - len(self.reply)]
        if self.expect is not None and self.expect in self.reply:
            self.matched.set_result(True)
        elif len(self.reply) >= MAX_REPLY:
            self.matched.set_result(False)

    def eof_received(self) -> bool:
        if not self.matched.done():
            self.matched.set_result(False)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.matched.done():
            self.matched.set_result(False)
        if not self.lost.done():
            self.lost.set_result(None)


class TcpCheck(Strict):
    """Connect to a TCP port of the host; optionally send a string and expect a reply."""

    kind: Literal["tcp"]
    port: Port
    send: str | None = None
    expect: str | None = None
    tls: bool = False


@CHECKS.register
class TcpExecutor(SpecExecutor[TcpCheck]):
    """Checks a TCP port. ``verify`` applies to ``tls``: True (system CAs), False, or a context."""

    kind: ClassVar[str] = "tcp"
    Config: ClassVar[type[BaseModel]] = TcpCheck
    label: ClassVar[str] = "TCP"

    def __init__(self, *, verify: bool | ssl.SSLContext = True) -> None:
        self._verify = verify
        self._ssl: ssl.SSLContext | None = None

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:  # loading the CA store costs milliseconds: once per executor
            if isinstance(self._verify, ssl.SSLContext):
                self._ssl = self._verify
            else:
                self._ssl = ssl.create_default_context()
                if not self._verify:
                    self._ssl.check_hostname = False
                    self._ssl.verify_mode = ssl.CERT_NONE
        return self._ssl

    async def check(
        self,
        spec: TcpCheck,
        *,
        address: str,
        timeout: float,  # noqa: ASYNC109
    ) -> CheckOutcome:
        where = host_port(address, spec.port)
        expect = spec.expect.encode() if spec.expect is not None else None
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        stage = "connecting to"
        probe: _Probe | None = None

        def failed(state: CheckState, why: str) -> CheckOutcome:
            text = f"TCP {state.name} - {why}"
            return outcome(state, text, duration=time.perf_counter() - started)

        try:
            async with asyncio.timeout(timeout):
                transport, probe = await loop.create_connection(
                    lambda: _Probe(loop, expect),
                    address,
                    spec.port,
                    ssl=self._ssl_context() if spec.tls else None,
                    server_hostname=address if spec.tls else None,
                )
                try:
                    if spec.send is not None:
                        transport.write(spec.send.encode())
                    if expect is not None:
                        stage = "waiting for a reply from"
                        matched = await probe.matched
                finally:
                    await _close(transport, probe, tls=spec.tls)
        except TimeoutError:
            return failed(CheckState.CRITICAL, f"timed out after {timeout:g}s {stage} {where}")
        except socket.gaierror as exc:
            return failed(CheckState.UNKNOWN, f"cannot resolve {address}: {exc.strerror}")
        except ssl.SSLError as exc:
            reason = exc.reason or exc.strerror or exc
            return failed(CheckState.CRITICAL, f"TLS handshake failed ({reason}) with {where}")
        except OSError as exc:
            return failed(CheckState.CRITICAL, f"{_describe(exc)} on {where}")
        elapsed = time.perf_counter() - started
        metrics = (Metric(label="time", value=elapsed, uom="s", min=0.0, max=float(timeout)),)
        reply = _first_line(probe.reply) if expect is not None else ""
        if expect is not None and not matched:
            text = f"TCP WARNING - unexpected response from {where}: {reply or '(nothing)'}"
            return outcome(CheckState.WARNING, text, metrics=metrics, duration=elapsed)
        text = f"TCP OK - {elapsed:.3f} second response time on {where}"
        if reply:
            text += f" [{reply}]"
        return outcome(CheckState.OK, text, metrics=metrics, duration=elapsed)


def host_port(address: str, port: int) -> str:
    """``host:port``, with IPv6 literals in brackets."""
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


async def _close(transport: asyncio.Transport, probe: _Probe, *, tls: bool) -> None:
    """Close politely (FIN, TLS close_notify); only TLS needs waiting for."""
    transport.close()
    if not tls:
        return
    try:
        async with asyncio.timeout(CLOSE_GRACE):
            await asyncio.shield(probe.lost)
    except TimeoutError:
        transport.abort()


def _describe(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if exc.strerror:
        return exc.strerror.lower()
    return str(exc)  # "Multiple exceptions: ..." when every address of a name failed


def _first_line(data: bytes | bytearray) -> str:
    line = bytes(data).split(b"\n", 1)[0].decode("utf-8", "replace").strip()
    return line[:80] + ("…" if len(line) > 80 else "")
