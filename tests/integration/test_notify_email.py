"""Email delivery against a local SMTP server (aiosmtpd) on 127.0.0.1: plain, STARTTLS, login.

The server runs in the test's own event loop while the channel's smtplib conversation runs
in a thread, as it does in the manager. Its certificate is self-signed, made here, and the
notifier is told to trust it (``ssl_context``), as an operator with a private CA would.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import ssl
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from watchkeeper.notify.notification import Notification, NotificationKind
from watchkeeper.notify.notifier import Notifier, NotifierSettings
from watchkeeper.notify.repository import DeliveryAttempt

T0 = 1_764_000_000.0
USER, PASSWORD = "watchkeeper", "correct horse"


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: Message
    tls: bool
    login: str | None


@dataclass
class Inbox:
    """An aiosmtpd handler keeping what it accepted; some addresses are refused on purpose."""

    mail: list[Received] = field(default_factory=list)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if address.startswith("busy@"):
            return "450 4.2.1 mailbox busy, try later"
        if address.startswith("nobody@"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        data = session.auth_data
        login = data.login.decode() if isinstance(data, LoginPassword) else None
        self.mail.append(
            Received(
                mail_from=str(envelope.mail_from),
                rcpt_tos=list(envelope.rcpt_tos),
                message=message_from_bytes(content),
                tls=session.ssl is not None,
                login=login,
            )
        )
        return "250 2.0.0 accepted"


def _authenticate(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
        USER.encode(),
        PASSWORD.encode(),
    )
    return AuthResult(success=ok, handled=False, auth_data=data)


@dataclass
class Server:
    inbox: Inbox
    port: int


@contextlib.asynccontextmanager
async def smtp_server(tls: ssl.SSLContext | None = None) -> AsyncIterator[Server]:
    inbox = Inbox()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(
            inbox,
            hostname="mail.test",
            tls_context=tls,
            authenticator=_authenticate,
            auth_require_tls=True,
        ),
        "127.0.0.1",
        0,
    )
    try:
        yield Server(inbox, server.sockets[0].getsockname()[1])
    finally:
        server.close()


@dataclass
class Certificate:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert))


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for localhost and 127.0.0.1."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "watchkeeper smtp test")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=10))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory = tmp_path_factory.mktemp("smtp-tls")
    found = Certificate(directory / "cert.pem", directory / "key.pem")
    found.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    found.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return found


class Deliveries:
    """A notifier recording into a list, with retries that do not wait."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self.sleeps: list[float] = []
        self.notifier = Notifier(
            None,
            settings=NotifierSettings(max_attempts=3, channel_timeout=10),
            record=self._record,
            environ={"SMTP_PASSWORD": PASSWORD, "WRONG_PASSWORD": "nope"},
            ssl_context=ssl_context,
            sleep=self._sleep,
        )

    async def _record(self, attempts: Sequence[DeliveryAttempt]) -> None:
        return None

    async def _sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    async def send(self, port: int, **channel: Any) -> list[DeliveryAttempt]:
        spec = {
            "name": "mail",
            "kind": "email",
            "to": ["oncall@example.org", "lead@example.org"],
            "from": "watchkeeper@example.org",
            "smtp_host": "127.0.0.1",
            "smtp_port": port,
            **channel,
        }
        self.notifier.configure([spec])
        return await self.notifier.deliver(NOTE)


NOTE = Notification(
    kind=NotificationKind.RECOVERY,
    key="web1!http",
    host="web1",
    service="http",
    state="OK",
    output="HTTP OK: HTTP/1.1 200 OK - 512 bytes in 0.002 second response time",
    at=T0,
    channels=("mail",),
    alarm_id=9,
    details={"acknowledged_by": "alice"},
)


async def test_plain_smtp_when_starttls_is_off() -> None:
    deliveries = Deliveries()
    try:
        async with smtp_server() as server:
            [attempt] = await deliveries.send(server.port, starttls=False)
    finally:
        await deliveries.notifier.aclose()
    assert (attempt.success, attempt.status, attempt.error) == (True, "SMTP 250", None)
    [mail] = server.inbox.mail
    assert mail.mail_from == "watchkeeper@example.org"
    assert mail.rcpt_tos == ["oncall@example.org", "lead@example.org"]
    assert not mail.tls and mail.login is None
    message = mail.message
    assert message["Subject"] == "RECOVERY: web1!http is OK"
    assert message["From"] == "watchkeeper@example.org"
    assert message["To"] == "oncall@example.org, lead@example.org"
    assert message["X-Watchkeeper-Event"] == "recovery"
    assert message.get_content_type() == "text/plain"
    payload = message.get_payload(decode=True)
    assert isinstance(payload, bytes)
    body = payload.decode().replace("\r\n", "\n")
    assert body.startswith("RECOVERY: web1!http is OK\n")
    assert "Host:    web1\nService: http\nState:   OK\n" in body
    assert "When:    Mon, 24 Nov 2025 16:00:00 GMT" in body
    assert "Alarm:   9" in body
    assert NOTE.output in body
    assert "acknowledged_by: alice" in body


async def test_starttls_with_a_trusted_certificate_and_login(certificate: Certificate) -> None:
    deliveries = Deliveries(ssl_context=certificate.client_context())
    try:
        async with smtp_server(certificate.server_context()) as server:
            [attempt] = await deliveries.send(
                server.port, username=USER, password="env:SMTP_PASSWORD"
            )
    finally:
        await deliveries.notifier.aclose()
    assert attempt.success, attempt.error
    [mail] = server.inbox.mail
    assert mail.tls and mail.login == USER


async def test_an_untrusted_certificate_is_a_permanent_failure(certificate: Certificate) -> None:
    deliveries = Deliveries()  # the system's CAs: the self-signed certificate is not trusted
    try:
        async with smtp_server(certificate.server_context()) as server:
            attempts = await deliveries.send(server.port)
    finally:
        await deliveries.notifier.aclose()
    assert len(attempts) == 1 and not attempts[0].success
    assert "certificate that is not trusted" in (attempts[0].error or "")
    assert server.inbox.mail == []


async def test_a_server_without_starttls_fails_when_starttls_is_required() -> None:
    deliveries = Deliveries()
    try:
        async with smtp_server() as server:  # no TLS context: no STARTTLS on offer
            attempts = await deliveries.send(server.port)
    finally:
        await deliveries.notifier.aclose()
    assert len(attempts) == 1 and not attempts[0].success
    assert attempts[0].error == (
        f"127.0.0.1:{server.port} does not offer STARTTLS and starttls is required "
        "(set starttls: false only for a trusted local relay)"
    )
    assert server.inbox.mail == []  # nothing went out in plaintext


async def test_a_wrong_password_is_not_retried(certificate: Certificate) -> None:
    deliveries = Deliveries(ssl_context=certificate.client_context())
    try:
        async with smtp_server(certificate.server_context()) as server:
            attempts = await deliveries.send(
                server.port, username=USER, password="env:WRONG_PASSWORD"
            )
    finally:
        await deliveries.notifier.aclose()
    assert [(a.success, a.status) for a in attempts] == [(False, "SMTP 535")]
    assert server.inbox.mail == []


async def test_temporary_refusals_are_retried_and_permanent_ones_are_not() -> None:
    deliveries = Deliveries()
    try:
        async with smtp_server() as server:
            busy = await deliveries.send(server.port, starttls=False, to=["busy@example.org"])
            gone = await deliveries.send(server.port, starttls=False, to=["nobody@example.org"])
            partly = await deliveries.send(
                server.port, starttls=False, to=["oncall@example.org", "nobody@example.org"]
            )
    finally:
        await deliveries.notifier.aclose()
    assert [(a.attempt, a.success, a.status) for a in busy] == [
        (1, False, "SMTP 450"),
        (2, False, "SMTP 450"),
        (3, False, "SMTP 450"),
    ]
    assert "busy@example.org (450 4.2.1 mailbox busy, try later)" in (busy[0].error or "")
    assert [(a.success, a.status) for a in gone] == [(False, "SMTP 550")]
    # delivered to one, refused by the other: not retried, so nobody gets it twice
    assert [(a.success, a.status) for a in partly] == [(False, "SMTP 550")]
    assert "accepted the mail but refused nobody@example.org" in (partly[0].error or "")
    assert [m.rcpt_tos for m in server.inbox.mail] == [["oncall@example.org"]]


async def test_nothing_listening_is_retried() -> None:
    async with smtp_server() as server:
        port = server.port
    deliveries = Deliveries()
    try:
        attempts = await deliveries.send(port, starttls=False)
    finally:
        await deliveries.notifier.aclose()
    assert [a.attempt for a in attempts] == [1, 2, 3]
    assert (attempts[0].error or "").startswith(f"cannot reach 127.0.0.1:{port}")
