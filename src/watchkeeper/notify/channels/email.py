"""The email channel: a plain-text mail through the document's SMTP server.

The standard library's `smtplib` runs in a thread (`asyncio.to_thread`), bounded by the
context's timeout, so the channel needs no extra dependency. With ``starttls`` (the
default) the server must offer STARTTLS and present a certificate valid for
``smtp_host``; a server that does not is a failure, never a silent plaintext send. A
login (``username`` with the ``password`` secret) only ever happens after STARTTLS or
when the document turned it off explicitly.

Connection problems and SMTP 4xx replies are retried; 5xx replies (a refused recipient,
bad credentials), a missing STARTTLS and certificate problems are not.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, formatdate, make_msgid
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, Field

from watchkeeper.document.fields import Name, Port, SecretRef, Strict
from watchkeeper.notify.channels.base import (
    ChannelContext,
    DeliveryOutcome,
    PermanentFailure,
)
from watchkeeper.notify.notification import Notification
from watchkeeper.plugins import CHANNELS


def render_message(
    notification: Notification, *, sender: str, to: list[str], now: float
) -> EmailMessage:
    """The mail: `Notification.subject` as subject, the facts then the output as body."""
    message = EmailMessage()
    message["Subject"] = notification.subject
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Date"] = formatdate(now, usegmt=True)
    message["Message-ID"] = make_msgid(domain="watchkeeper")
    message["X-Watchkeeper-Event"] = notification.kind.value
    message["X-Watchkeeper-Key"] = notification.key
    message.set_content(render_text(notification))
    return message


def render_text(notification: Notification) -> str:
    """The body: what an on-call person reads first, then the check's own output."""
    at = datetime.fromtimestamp(notification.at, UTC)
    lines = [
        notification.subject,
        "",
        f"Host:    {notification.host}",
    ]
    if notification.service is not None:
        lines.append(f"Service: {notification.service}")
    lines += [
        f"State:   {notification.state}",
        f"When:    {format_datetime(at, usegmt=True)}",
    ]
    if notification.alarm_id is not None:
        lines.append(f"Alarm:   {notification.alarm_id}")
    lines += ["", notification.output or "(no output)"]
    if notification.details:
        lines += ["", "Details:"]
        lines += [f"  {name}: {value}" for name, value in sorted(notification.details.items())]
    return "\n".join(lines) + "\n"


class EmailChannel(Strict):
    """Mail through an SMTP server, with STARTTLS unless disabled."""

    name: Name = Field(description="Unique among objects of this kind.")
    kind: Literal["email"]
    to: list[Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")]] = Field(min_length=1)
    sender: str = Field(default="watchkeeper@localhost", alias="from")
    smtp_host: str = "localhost"
    smtp_port: Port = 25
    starttls: bool = True
    username: str | None = None
    password: SecretRef | None = None


@CHANNELS.register
class EmailSender:
    """Sends a plain-text mail to ``to`` for each notification (see the module docstring)."""

    kind: ClassVar[str] = "email"
    Config: ClassVar[type[BaseModel]] = EmailChannel

    def __init__(self, spec: EmailChannel, context: ChannelContext) -> None:
        self.name = spec.name
        self.spec = spec
        self._context = context

    async def deliver(self, notification: Notification) -> DeliveryOutcome:
        spec, context = self.spec, self._context
        password = None
        if spec.username is not None:
            if spec.password is None:
                raise PermanentFailure("username is set but password (a secret) is not")
            password = context.secret(spec.password, "password")
        message = render_message(notification, sender=spec.sender, to=spec.to, now=context.clock())
        tls = (context.ssl_context or ssl.create_default_context()) if spec.starttls else None
        return await asyncio.to_thread(
            send, message, spec=spec, password=password, tls=tls, timeout=context.timeout
        )


def send(
    message: EmailMessage,
    *,
    spec: EmailChannel,
    password: str | None,
    tls: ssl.SSLContext | None,
    timeout: float,
) -> DeliveryOutcome:
    """One SMTP conversation, blocking; every failure becomes an outcome."""
    server = f"{spec.smtp_host}:{spec.smtp_port}"
    try:
        with smtplib.SMTP(spec.smtp_host, spec.smtp_port, timeout=timeout) as smtp:
            smtp.ehlo()
            if tls is not None:
                if not smtp.has_extn("starttls"):
                    return DeliveryOutcome.failed(
                        f"{server} does not offer STARTTLS and starttls is required "
                        "(set starttls: false only for a trusted local relay)"
                    )
                smtp.starttls(context=tls)
                smtp.ehlo()
            if spec.username is not None and password is not None:
                smtp.login(spec.username, password)
            refused = smtp.send_message(message, from_addr=spec.sender, to_addrs=spec.to)
    except smtplib.SMTPRecipientsRefused as exc:
        return _refused(server, exc.recipients)
    except smtplib.SMTPResponseException as exc:
        return _reply(server, exc.smtp_code, exc.smtp_error)
    except ssl.SSLCertVerificationError as exc:
        return DeliveryOutcome.failed(
            f"{server} presented a certificate that is not trusted: {exc.verify_message}"
        )
    except ssl.SSLError as exc:
        return DeliveryOutcome.retry(f"TLS with {server} failed: {exc.reason or exc}")
    except smtplib.SMTPNotSupportedError as exc:
        return DeliveryOutcome.failed(f"{server}: {exc}")
    except smtplib.SMTPException as exc:  # disconnected, helo errors without a reply
        return DeliveryOutcome.retry(f"{server}: {exc or type(exc).__name__}")
    except TimeoutError:
        return DeliveryOutcome.retry(f"{server} did not answer within {timeout:g}s")
    except OSError as exc:
        return DeliveryOutcome.retry(f"cannot reach {server}: {exc.strerror or exc}")
    if refused:  # the others have it: a retry would send them a duplicate
        parts = _refusals(refused)
        return DeliveryOutcome.failed(
            f"{server} accepted the mail but refused {parts}", status=f"SMTP {_worst(refused)}"
        )
    return DeliveryOutcome.delivered("SMTP 250")


def _reply(server: str, code: int, text: bytes | str) -> DeliveryOutcome:
    """An SMTP error reply: 4xx is temporary by the protocol's own definition."""
    said = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    error = f"{server} answered {code} {said}"
    status = f"SMTP {code}"
    if 400 <= code < 500:
        return DeliveryOutcome.retry(error, status=status)
    return DeliveryOutcome.failed(error, status=status)


def _refused(server: str, recipients: dict[str, tuple[int, bytes]]) -> DeliveryOutcome:
    """Every recipient refused: retry only if every refusal was temporary."""
    error = f"{server} refused {_refusals(recipients)}"
    status = f"SMTP {_worst(recipients)}"
    if all(400 <= code < 500 for code, _ in recipients.values()):
        return DeliveryOutcome.retry(error, status=status)
    return DeliveryOutcome.failed(error, status=status)


def _refusals(recipients: dict[str, tuple[int, bytes]]) -> str:
    return ", ".join(
        f"{rcpt} ({code} {text.decode('utf-8', 'replace')})"
        for rcpt, (code, text) in sorted(recipients.items())
    )


def _worst(recipients: dict[str, tuple[int, bytes]]) -> int:
    return max(code for code, _ in recipients.values())
