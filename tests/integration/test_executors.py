"""The executors against real things: Debian's monitoring-plugins, processes, and local
listeners (plain TCP, TLS with a certificate made here, a keep-alive HTTP server).

Only 127.0.0.1 and ::1 are contacted. Every listener and every stray process a test makes
is closed or killed by the test, by its own handle or pid.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import signal
import socket
import ssl
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.waiting import wait_until
from watchkeeper.results import CheckState, Metric
from watchkeeper.worker.executors import (
    Executors,
    HttpExecutor,
    PingExecutor,
    PluginExecutor,
    TcpExecutor,
)
from watchkeeper.worker.executors.plugin import DEFAULT_MAX_OUTPUT, FAST_SPAWN

PLUGINS = Path("/usr/lib/nagios/plugins")
needs_plugins = pytest.mark.skipif(
    not (PLUGINS / "check_dummy").exists(), reason="needs monitoring-plugins-basic"
)


def alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie waiting for init to reap it counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


async def gone(pid: int) -> None:
    """SIGKILL is delivered asynchronously: wait for the kernel to finish the exit."""
    await wait_until(lambda: not alive(pid), what=f"process {pid} gone")


def pids_in(text: str) -> list[int]:
    return [int(word) for word in text.split() if word.isdigit()]


@pytest.fixture
def reap_strays() -> Iterator[list[int]]:
    """Pids a test started outside the executor's reach; killed at teardown."""
    strays: list[int] = []
    yield strays
    for pid in strays:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


# --- plugin -------------------------------------------------------------------------------

SPAWNS = [pytest.param(True, id="posix_spawn"), pytest.param(False, id="asyncio")]


@pytest.fixture(params=SPAWNS)
def plugin(request: pytest.FixtureRequest) -> PluginExecutor:
    if request.param and not FAST_SPAWN:
        pytest.skip("posix_spawn + pidfd needs Linux 5.3+")
    return PluginExecutor(fast=request.param)


def cmd(*argv: str, timeout_state: str | None = None) -> dict[str, object]:
    check: dict[str, object] = {"kind": "plugin", "command": list(argv)}
    if timeout_state is not None:
        check["timeout_state"] = timeout_state
    return check


@needs_plugins
@pytest.mark.parametrize(
    ("code", "state"),
    [
        (0, CheckState.OK),
        (1, CheckState.WARNING),
        (2, CheckState.CRITICAL),
        (3, CheckState.UNKNOWN),
    ],
)
async def test_check_dummy_states_and_perfdata(
    plugin: PluginExecutor, code: int, state: CheckState
) -> None:
    text = "all is well | 'free space'=12.5GB;20:;10:;0;100 load=0.5;;;0;"
    out = await plugin.run(cmd("check_dummy", str(code), text), address="127.0.0.1", timeout=10)
    assert out.state is state
    assert out.output == f"{state.name}: all is well"
    assert out.metrics == (
        Metric(label="free space", value=12.5, uom="GB", warn="20:", crit="10:", min=0, max=100),
        Metric(label="load", value=0.5, min=0),
    )
    assert 0 < out.duration < 10


@needs_plugins
async def test_check_tcp_against_a_local_listener(plugin: PluginExecutor, listen: Listen) -> None:
    server = await listen()
    argv = ("check_tcp", "-H", "127.0.0.1", "-p", str(server.port), "-t", "5")
    out = await plugin.run(cmd(*argv), address="127.0.0.1", timeout=10)
    assert out.state is CheckState.OK, out
    assert out.output.startswith("TCP OK - ")
    assert out.output.endswith(f"second response time on 127.0.0.1 port {server.port}")
    (metric,) = out.metrics
    assert (metric.label, metric.uom, metric.min, metric.max) == ("time", "s", 0.0, 5.0)
    assert 0 <= metric.value < 5


@needs_plugins
async def test_check_tcp_against_a_closed_port(plugin: PluginExecutor, free_port: int) -> None:
    argv = ("check_tcp", "-H", "127.0.0.1", "-p", str(free_port))
    out = await plugin.run(cmd(*argv), address="127.0.0.1", timeout=10)
    assert out.state is CheckState.CRITICAL
    assert out.output == f"connect to address 127.0.0.1 and port {free_port}: Connection refused"


@pytest.mark.parametrize("timeout_state", ["UNKNOWN", "CRITICAL", None])
async def test_timeout_kills_the_whole_process_group(
    plugin: PluginExecutor, timeout_state: str | None
) -> None:
    script = "echo $$; sleep 30 & echo $!; wait"
    started = time.monotonic()
    out = await plugin.run(
        cmd("/bin/sh", "-c", script, timeout_state=timeout_state), address="::1", timeout=0.5
    )
    assert time.monotonic() - started < 3
    assert out.state is CheckState[timeout_state or "CRITICAL"]  # Nagios Core's default
    assert out.output == "(Check timed out after 0.50 seconds)"
    shell, sleeper = pids_in(out.long_output)
    await gone(shell)
    await gone(sleeper)


def pids_running(argv: list[str]) -> list[int]:
    wanted = "\0".join(argv).encode() + b"\0"
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "cmdline").read_bytes() == wanted and alive(int(entry.name)):
                    found.append(int(entry.name))
    return found


async def test_sleep_under_sh_is_killed(plugin: PluginExecutor) -> None:
    """The issue's case, /bin/sh -c 'sleep 30' (the shell may exec sleep or fork it)."""
    sleep = ["sleep", f"30.{os.getpid()}"]  # unique on this machine, so the pid is ours
    task = asyncio.create_task(
        plugin.run(cmd("/bin/sh", "-c", " ".join(sleep)), address="127.0.0.1", timeout=2)
    )
    await wait_until(lambda: bool(pids_running(sleep)), what="the plugin's sleep started")
    pids = pids_running(sleep)
    assert len(pids) == 1
    out = await task
    assert out.output == "(Check timed out after 2.00 seconds)"
    await gone(pids[0])
    assert pids_running(sleep) == []


async def test_what_a_plugin_leaves_in_its_group_dies_with_it() -> None:
    plugin = PluginExecutor(fast=True) if FAST_SPAWN else None
    if plugin is None:
        pytest.skip("only the posix_spawn path kills leftovers on exit")
    started = time.monotonic()
    out = await plugin.run(
        cmd("/bin/sh", "-c", "sleep 30 & echo OK - child $!"), address="127.0.0.1", timeout=10
    )
    assert time.monotonic() - started < 3  # the sleeper held stdout; killing it ended that
    assert out.state is CheckState.OK
    (sleeper,) = pids_in(out.output)
    await gone(sleeper)


async def test_a_daemon_that_escaped_the_session_does_not_delay_the_result(
    plugin: PluginExecutor, reap_strays: list[int]
) -> None:
    script = "setsid sh -c 'echo $$; exec sleep 30' & sleep 0.1; echo OK"
    started = time.monotonic()
    out = await plugin.run(cmd("/bin/sh", "-c", script), address="127.0.0.1", timeout=5)
    elapsed = time.monotonic() - started
    reap_strays.extend(pids_in(out.output + out.long_output))
    assert out.state is CheckState.OK  # the plugin itself exited 0 at once
    if plugin._fast is not False:  # the portable path waits for the pipes (documented)
        assert elapsed < 2.5, elapsed


async def test_cancelling_a_check_kills_its_processes(
    plugin: PluginExecutor, tmp_path: Path
) -> None:
    pidfile = tmp_path / "pid"
    script = f"sleep 30 & echo $! > {pidfile}; wait"
    task = asyncio.create_task(
        plugin.run(cmd("/bin/sh", "-c", script), address="127.0.0.1", timeout=30)
    )
    await wait_until(
        lambda: pidfile.exists() and bool(pidfile.read_text().strip()), what="the pid file"
    )
    sleeper = int(pidfile.read_text())
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await gone(sleeper)


async def test_missing_and_unusable_programs_are_critical_as_in_nagios_core(
    plugin: PluginExecutor, tmp_path: Path
) -> None:
    text = tmp_path / "not-executable"
    text.write_text("#!/bin/sh\necho hi\n")
    missing = "(Return code of 127 is out of bounds. Check if plugin exists) plugin not found"
    unusable = "(Return code of 126 is out of bounds. Check if plugin is executable) plugin not"
    cases = {
        str(tmp_path / "nope"): f"{missing}: {tmp_path / 'nope'}",
        "check_nothing_like_this": f"{missing}: check_nothing_like_this",
        str(text): f"{unusable} executable: {text}",
        str(tmp_path): f"{unusable} executable: {tmp_path}",
    }
    for program, output in cases.items():
        out = await plugin.run(cmd(program), address="127.0.0.1", timeout=5)
        assert (out.state, out.output) == (CheckState.CRITICAL, output)
    chosen = {**cmd(str(tmp_path / "nope")), "out_of_bounds_state": "UNKNOWN"}
    out = await plugin.run(chosen, address="127.0.0.1", timeout=5)
    assert out.state is CheckState.UNKNOWN  # the setting, as Icinga 2 behaves


async def test_output_over_the_cap_is_dropped_without_blocking(plugin: PluginExecutor) -> None:
    script = "head -c 1000000 /dev/zero | tr '\\0' a; echo; head -c 1000000 /dev/zero >&2; exit 3"
    out = await plugin.run(cmd("/bin/sh", "-c", script), address="127.0.0.1", timeout=10)
    assert out.state is CheckState.UNKNOWN
    assert out.output == "a" * DEFAULT_MAX_OUTPUT
    assert out.long_output.endswith("(output truncated)")
    assert len(out.long_output) < 2 * DEFAULT_MAX_OUTPUT


async def test_stderr_and_exit_codes_beyond_the_api(plugin: PluginExecutor) -> None:
    script = "echo partial; echo 'oops: bad flag' >&2; exit 42"
    out = await plugin.run(cmd("/bin/sh", "-c", script), address="127.0.0.1", timeout=10)
    assert out.state is CheckState.CRITICAL
    assert out.output == "(Return code of 42 is out of bounds) partial"
    assert out.long_output == "oops: bad flag"


async def test_environment_is_minimal_and_stdin_is_empty(plugin: PluginExecutor) -> None:
    out = await plugin.run(cmd("/usr/bin/env"), address="192.0.2.7", timeout=10)
    env = dict(line.split("=", 1) for line in [out.output, *out.long_output.splitlines()])
    assert set(env) == {"PATH", "LANG", "LC_ALL", "WATCHKEEPER_ADDRESS", "NAGIOS_HOSTADDRESS"}
    assert env["WATCHKEEPER_ADDRESS"] == env["NAGIOS_HOSTADDRESS"] == "192.0.2.7"
    assert (env["LANG"], env["LC_ALL"]) == ("C", "C")
    out = await plugin.run(cmd("/bin/cat"), address="127.0.0.1", timeout=2)
    assert out.output == "(No output returned from plugin)"


@needs_plugins
async def test_many_concurrent_plugins(plugin: PluginExecutor) -> None:
    runs = [
        plugin.run(cmd("check_dummy", str(i % 4), f"n{i}|i={i}"), address="127.0.0.1", timeout=10)
        for i in range(64)
    ]
    for i, out in enumerate(await asyncio.gather(*runs)):
        assert out.state is CheckState.from_exit_code(i % 4)
        assert out.metrics == (Metric(label="i", value=i),)


# --- listeners ----------------------------------------------------------------------------


@dataclass
class Server:
    port: int
    received: list[bytes] = field(default_factory=list)
    connections: int = 0


Listen = Callable[..., Awaitable[Server]]
Reply = Callable[[bytes], bytes | None]


@pytest.fixture
async def listen() -> AsyncIterator[Listen]:
    """Start TCP listeners that send ``greeting`` on connect, then hang up (``hangup``) or
    answer each read with ``session()(data)`` (one replier per connection) or stay silent."""
    servers: list[asyncio.Server] = []
    handlers: set[asyncio.Task[None]] = set()

    async def start(
        *,
        host: str = "127.0.0.1",
        greeting: bytes = b"",
        hangup: bool = False,
        session: Callable[[], Reply] | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> Server:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            handlers.add(task)
            holder.connections += 1
            reply = session() if session is not None else None
            try:
                writer.write(greeting)
                while not hangup and (data := await reader.read(4096)):
                    holder.received.append(data)
                    answer = None if reply is None else reply(data)
                    if answer is not None:
                        writer.write(answer)
            except (ConnectionError, ssl.SSLError):
                pass
            finally:
                writer.close()
                with contextlib.suppress(ConnectionError, ssl.SSLError):
                    await writer.wait_closed()
                handlers.discard(task)

        server = await asyncio.start_server(handle, host, 0, ssl=tls)
        servers.append(server)
        holder = Server(server.sockets[0].getsockname()[1])
        return holder

    yield start
    for server in servers:
        server.close()
    for task in list(handlers):
        task.cancel()
    await asyncio.gather(*handlers, return_exceptions=True)
    for server in servers:
        await server.wait_closed()


@pytest.fixture
def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ipv6_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


needs_ipv6 = pytest.mark.skipif(not ipv6_available(), reason="no ::1 on this machine")


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path
    not_after: datetime

    def server_context(self, on_sni: list[str | None] | None = None) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        if on_sni is not None:

            def record(sock: ssl.SSLObject, name: str | None, ctx: ssl.SSLContext) -> None:
                on_sni.append(name)

            context.sni_callback = record
        return context


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for 127.0.0.1 and localhost that expires in 10 days."""
    crypto = pytest.importorskip("cryptography")
    del crypto
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "watchkeeper test")])
    now = datetime.now(UTC).replace(microsecond=0)
    not_after = now + timedelta(days=10)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(not_after)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory = tmp_path_factory.mktemp("tls")
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Certificate(cert_path, key_path, not_after)


# --- tcp ----------------------------------------------------------------------------------


def tcp(port: int, **fields: object) -> dict[str, object]:
    return {"kind": "tcp", "port": port, **fields}


async def test_tcp_connect(listen: Listen) -> None:
    server = await listen()
    out = await TcpExecutor().run(tcp(server.port), address="127.0.0.1", timeout=5)
    assert out.state is CheckState.OK
    assert out.output.startswith("TCP OK - 0.0")
    assert out.output.endswith(f" second response time on 127.0.0.1:{server.port}")
    (metric,) = out.metrics
    assert (metric.label, metric.uom, metric.min, metric.max) == ("time", "s", 0.0, 5.0)
    assert metric.value == out.duration


async def test_tcp_refused(free_port: int) -> None:
    out = await TcpExecutor().run(tcp(free_port), address="127.0.0.1", timeout=5)
    assert (out.state, out.output) == (
        CheckState.CRITICAL,
        f"TCP CRITICAL - connection refused on 127.0.0.1:{free_port}",
    )


async def test_tcp_send_and_expect(listen: Listen) -> None:
    server = await listen(session=lambda: lambda data: b"+PONG\r\n" if b"PING" in data else None)
    out = await TcpExecutor().run(
        tcp(server.port, send="PING\r\n", expect="PONG"), address="127.0.0.1", timeout=5
    )
    assert out.state is CheckState.OK, out
    assert out.output.endswith(f"on 127.0.0.1:{server.port} [+PONG]")
    assert server.received == [b"PING\r\n"]


async def test_tcp_expect_waits_for_the_reply_within_the_timeout(listen: Listen) -> None:
    complete = await listen(greeting=b"SSH-2.0-OpenSSH_9.2p1\r\n")
    partial = await listen(greeting=b"SSH-2.")
    executor = TcpExecutor()
    out = await executor.run(tcp(complete.port, expect="SSH-2.0"), address="127.0.0.1", timeout=5)
    assert out.output.endswith("[SSH-2.0-OpenSSH_9.2p1]")
    out = await executor.run(tcp(partial.port, expect="SSH-2.0"), address="127.0.0.1", timeout=0.3)
    assert (out.state, out.output) == (
        CheckState.CRITICAL,
        f"TCP CRITICAL - timed out after 0.3s waiting for a reply from 127.0.0.1:{partial.port}",
    )


async def test_tcp_unexpected_reply_is_a_warning(listen: Listen) -> None:
    server = await listen(greeting=b"220 ftp ready\r\n", hangup=True)
    out = await TcpExecutor().run(tcp(server.port, expect="SSH"), address="127.0.0.1", timeout=5)
    assert (out.state, out.output) == (
        CheckState.WARNING,
        f"TCP WARNING - unexpected response from 127.0.0.1:{server.port}: 220 ftp ready",
    )
    assert out.metrics[0].label == "time"
    silent = await listen(hangup=True)
    out = await TcpExecutor().run(tcp(silent.port, expect="SSH"), address="127.0.0.1", timeout=5)
    assert out.output.endswith(": (nothing)")


async def test_tcp_tls(listen: Listen, certificate: Certificate) -> None:
    server = await listen(tls=certificate.server_context(), session=lambda: lambda d: b"HELLO " + d)
    spec = tcp(server.port, tls=True, send="you", expect="HELLO you")
    out = await TcpExecutor(verify=False).run(spec, address="127.0.0.1", timeout=5)
    assert out.state is CheckState.OK, out
    trusted = ssl.create_default_context(cafile=str(certificate.cert))
    out = await TcpExecutor(verify=trusted).run(spec, address="127.0.0.1", timeout=5)
    assert out.state is CheckState.OK, out
    out = await TcpExecutor().run(spec, address="127.0.0.1", timeout=5)
    assert out.state is CheckState.CRITICAL
    assert out.output.startswith("TCP CRITICAL - TLS handshake failed (CERTIFICATE_VERIFY_FAILED)")


@needs_ipv6
async def test_tcp_ipv6(listen: Listen) -> None:
    server = await listen(host="::1")
    out = await TcpExecutor().run(tcp(server.port), address="::1", timeout=5)
    assert out.state is CheckState.OK
    assert out.output.endswith(f"on [::1]:{server.port}")


# --- http ---------------------------------------------------------------------------------


@dataclass
class HttpServer:
    listener: Server
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    server_names: list[str | None] = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.listener.port


StartHttp = Callable[..., Awaitable[HttpServer]]


@pytest.fixture
async def http_server(listen: Listen) -> StartHttp:
    """A keep-alive HTTP/1.1 server: ``routes`` maps a path to (status, body); /hang hangs."""

    async def start(
        routes: dict[str, tuple[int, bytes]], tls: Certificate | None = None
    ) -> HttpServer:
        requests: list[tuple[str, dict[str, str]]] = []
        names: list[str | None] = []

        def session() -> Reply:
            buffer = bytearray()

            def reply(data: bytes) -> bytes | None:
                buffer.extend(data)
                out = b""
                while b"\r\n\r\n" in buffer:
                    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
                    buffer[:] = rest
                    line, *lines = head.decode("latin-1").split("\r\n")
                    pairs = (x.partition(":") for x in lines)
                    headers = {k.strip().lower(): v.strip() for k, _, v in pairs}
                    method, target, _ = line.split(" ")
                    requests.append((f"{method} {target}", headers))
                    if target == "/hang":
                        continue
                    status, body = routes.get(target, (404, b"not found"))
                    reason = "OK" if status == 200 else "Not Found"
                    head_out = f"HTTP/1.1 {status} {reason}\r\nContent-Length: {len(body)}\r\n\r\n"
                    out += head_out.encode() + (b"" if method == "HEAD" else body)
                return out or None

            return reply

        context = tls.server_context(names) if tls else None
        listener = await listen(session=session, tls=context)
        return HttpServer(listener, requests, names)

    return start


async def test_http_ok_and_keep_alive(http_server: StartHttp) -> None:
    server = await http_server({"/health": (200, b"status: green")})
    executor = HttpExecutor()
    spec = {"kind": "http", "port": server.port, "path": "/health", "body_contains": "green"}
    try:
        for _ in range(3):
            out = await executor.run(spec, address="127.0.0.1", timeout=5)
            assert out.state is CheckState.OK, out
        assert [m.label for m in out.metrics] == ["time", "size"]
        assert out.metrics[1].value == 13
        assert len(server.requests) == 3
        assert server.listener.connections == 1  # one kept-alive connection for all three
    finally:
        await executor.aclose()


async def test_http_status_and_timeout(http_server: StartHttp) -> None:
    server = await http_server({"/": (200, b"")})
    executor = HttpExecutor()
    try:
        out = await executor.run(
            {"kind": "http", "port": server.port, "path": "/missing"},
            address="127.0.0.1",
            timeout=5,
        )
        assert out.state is CheckState.CRITICAL
        assert out.output.startswith("HTTP CRITICAL - status 404, expected 200; HTTP/1.1 404")
        out = await executor.run(
            {"kind": "http", "port": server.port, "path": "/hang"}, address="127.0.0.1", timeout=0.3
        )
        assert (out.state, out.output) == (
            CheckState.CRITICAL,
            f"HTTP CRITICAL - timed out after 0.3s on http://127.0.0.1:{server.port}/hang",
        )
    finally:
        await executor.aclose()


async def test_http_refused(free_port: int) -> None:
    executor = HttpExecutor()
    try:
        out = await executor.run(
            {"kind": "http", "port": free_port}, address="127.0.0.1", timeout=5
        )
    finally:
        await executor.aclose()
    assert (out.state, out.output) == (
        CheckState.CRITICAL,
        f"HTTP CRITICAL - connection refused on http://127.0.0.1:{free_port}/",
    )


async def test_https_certificate_days(http_server: StartHttp, certificate: Certificate) -> None:
    server = await http_server({"/": (200, b"ok")}, tls=certificate)
    spec = {"kind": "http", "port": server.port, "tls": True, "certificate_days": 30}
    insecure = HttpExecutor(verify=False)
    trusting = HttpExecutor(verify=str(certificate.cert))
    default = HttpExecutor()
    try:
        out = await insecure.run(spec, address="127.0.0.1", timeout=5)
        assert out.state is CheckState.WARNING, out
        assert out.output.startswith("HTTP WARNING - certificate expires in 9 days (")
        cert_days = out.metrics[2]
        assert (cert_days.label, cert_days.warn, cert_days.crit) == ("cert_days", "30:", "0:")
        assert 9.9 < cert_days.value <= 10

        out = await trusting.run({**spec, "certificate_days": 5}, address="127.0.0.1", timeout=5)
        assert out.state is CheckState.OK, out
        assert 9.9 < out.metrics[2].value <= 10  # read from the verified peer certificate

        out = await default.run(spec, address="127.0.0.1", timeout=5)
        assert out.state is CheckState.CRITICAL
        assert out.output.startswith("HTTP CRITICAL - TLS handshake failed (self-signed")
    finally:
        for executor in (insecure, trusting, default):
            await executor.aclose()


async def test_https_host_header_is_the_server_name(
    http_server: StartHttp, certificate: Certificate
) -> None:
    server = await http_server({"/": (200, b"ok")}, tls=certificate)
    executor = HttpExecutor(verify=False, environ={"WK_TEST_TOKEN": "t0ken"})
    spec = {
        "kind": "http",
        "port": server.port,
        "tls": True,
        "host_header": "app.example:8443",
        "bearer_token": "env:WK_TEST_TOKEN",
    }
    try:
        out = await executor.run(spec, address="127.0.0.1", timeout=5)
        await executor.run({**spec, "host_header": None}, address="127.0.0.1", timeout=5)
    finally:
        await executor.aclose()
    assert out.state is CheckState.OK, out
    assert server.server_names == ["app.example", None]
    _, headers = server.requests[0]
    assert headers["host"] == "app.example:8443"
    assert headers["authorization"] == "Bearer t0ken"


# --- ping ---------------------------------------------------------------------------------


@pytest.mark.parametrize("address", ["127.0.0.1", pytest.param("::1", marks=needs_ipv6)])
async def test_ping_loopback(address: str) -> None:
    out = await PingExecutor(interval=0.2).run(
        {"kind": "ping", "count": 2}, address=address, timeout=5
    )
    if out.state is CheckState.UNKNOWN and "not permitted" in out.output:
        pytest.skip(f"ICMP is not allowed here: {out.output}")
    assert out.state is CheckState.OK, out
    assert out.output.startswith("PING OK - Packet loss = 0%, RTA = ")
    rta, pl = out.metrics
    assert (rta.label, rta.uom, pl.label, pl.uom, pl.value) == ("rta", "ms", "pl", "%", 0.0)
    assert 0 < rta.value < 100


async def test_ping_failures_are_unknown(tmp_path: Path) -> None:
    fake = tmp_path / "ping"
    fake.write_text(
        "#!/bin/sh\necho 'ping: bogus.example: Name or service not known' >&2\nexit 2\n"
    )
    fake.chmod(0o755)
    out = await PingExecutor(program=str(fake)).run(
        {"kind": "ping"}, address="bogus.example", timeout=5
    )
    assert (out.state, out.output) == (
        CheckState.UNKNOWN,
        "PING UNKNOWN - ping: bogus.example: Name or service not known",
    )
    out = await PingExecutor().run({"kind": "ping"}, address="-f", timeout=5)
    assert (out.state, out.output) == (CheckState.UNKNOWN, "PING UNKNOWN - invalid address '-f'")
    out = await PingExecutor(program=str(tmp_path / "nope")).run(
        {"kind": "ping"}, address="127.0.0.1", timeout=5
    )
    assert out.state is CheckState.UNKNOWN
    assert out.output.startswith("PING UNKNOWN - cannot run ")


# --- all together -------------------------------------------------------------------------


@needs_plugins
async def test_executors_run_every_kind(listen: Listen) -> None:
    server = await listen(hangup=True)
    executors = Executors({"ping": lambda: PingExecutor(interval=0.2)})
    checks: list[dict[str, Any]] = [
        {"kind": "plugin", "command": ["check_dummy", "0", "fine"]},
        {"kind": "tcp", "port": server.port},
        {"kind": "http", "port": server.port, "expect_status": [200]},
        {"kind": "ping", "count": 1},
    ]
    try:
        results = await asyncio.gather(
            *(executors.run(check, address="127.0.0.1", timeout=5) for check in checks)
        )
    finally:
        await executors.aclose()
    states = [out.state for out in results]
    assert states[:2] == [CheckState.OK, CheckState.OK]
    assert states[2] is CheckState.CRITICAL  # a TCP listener is no HTTP server
    assert states[3] in (CheckState.OK, CheckState.UNKNOWN)
    assert sys.platform == "linux" or states[3] is CheckState.UNKNOWN


async def test_a_dropped_perfdata_item_is_logged_once_per_command(
    plugin: PluginExecutor, caplog: pytest.LogCaptureFixture
) -> None:
    script = "echo 'OK | good=1 bad=1;2;3;4;5;6'"
    with caplog.at_level(logging.WARNING, logger="watchkeeper.worker.executors.plugin"):
        for _ in range(3):
            out = await plugin.run(cmd("/bin/sh", "-c", script), address="127.0.0.1", timeout=5)
            assert [m.label for m in out.metrics] == ["good"]
    notes = [r for r in caplog.records if getattr(r, "action", None) == "perfdata_dropped"]
    assert len(notes) == 1
    assert "'bad=1;2;3;4;5;6'" in notes[0].getMessage() and "at most 5" in notes[0].getMessage()
