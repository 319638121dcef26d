"""The webhook channel: the notification as JSON, POSTed to the document's ``url``.

With a ``secret``, each request carries ``X-Watchkeeper-Signature: t=<ts>,v1=<hex>``, where
``<hex>`` is HMAC-SHA256 keyed with the secret over ``<ts>.<body>`` (the decimal epoch
seconds, a dot, then the raw body bytes), the scheme Stripe and Slack made familiar. The
timestamp is in the signed text, so a receiver that also rejects old timestamps (say
older than five minutes) is safe from replays. Every attempt is signed afresh.

    2xx                          delivered
    429, 5xx, connection errors  retried (``Retry-After`` is honoured)
    anything else (4xx, 3xx)     failed for good: redirects are not followed
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Annotated, ClassVar, Literal

import httpx
import orjson
from pydantic import BaseModel, Field

from watchkeeper import __version__
from watchkeeper.document.fields import Name, NoCredentialHeaders, SecretRef, Strict
from watchkeeper.notify.channels.base import ChannelContext, DeliveryOutcome, clip
from watchkeeper.notify.notification import Notification
from watchkeeper.plugins import CHANNELS

USER_AGENT = f"watchkeeper/{__version__}"
SIGNATURE_HEADER = "X-Watchkeeper-Signature"
#: The notification kind (``problem``, ``recovery``...), so receivers can route on a header.
EVENT_HEADER = "X-Watchkeeper-Event"
#: The same for every attempt of one notification: receivers can drop duplicates with it.
DELIVERY_HEADER = "X-Watchkeeper-Delivery"
#: Response body kept in the error text of a failed attempt.
MAX_RESPONSE_TEXT = 300


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Watchkeeper-Signature`` value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(
        secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256
    ).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(secret: str, header: str, body: bytes) -> int | None:
    """The signed timestamp if ``header`` signs ``body`` with ``secret``, else None.

    The receiver's side of `sign`, for tests and for Python receivers to copy; it does not
    judge the timestamp's age, which is the caller's policy.
    """
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return None
    expected = sign(secret, timestamp, body).rpartition("v1=")[2].encode()
    given = fields.get("v1", "").encode("utf-8", "replace")
    return timestamp if hmac.compare_digest(expected, given) else None


def encode(notification: Notification) -> bytes:
    """The request body: `Notification.as_dict` as compact JSON."""
    return orjson.dumps(notification.as_dict(), option=orjson.OPT_NON_STR_KEYS)


class WebhookChannel(Strict):
    """JSON POST to a URL, signed with HMAC-SHA256 when ``secret`` is set."""

    name: Name = Field(description="Unique among objects of this kind.")
    kind: Literal["webhook"]
    url: str = Field(pattern=r"^https?://\S+$")
    secret: SecretRef | None = Field(default=None, description="HMAC-SHA256 signing key.")
    bearer_token: SecretRef | None = None
    headers: Annotated[dict[str, str], NoCredentialHeaders] = Field(
        default_factory=dict,
        description="Extra headers; credentials go in secret or bearer_token, not here.",
    )


@CHANNELS.register
class WebhookSender:
    """POSTs `Notification.as_dict` to ``url`` (see the module docstring for the contract)."""

    kind: ClassVar[str] = "webhook"
    Config: ClassVar[type[BaseModel]] = WebhookChannel

    def __init__(self, spec: WebhookChannel, context: ChannelContext) -> None:
        self.name = spec.name
        self.spec = spec
        self._context = context

    async def deliver(self, notification: Notification) -> DeliveryOutcome:
        spec, context = self.spec, self._context
        try:
            body = encode(notification)
        except TypeError as exc:
            return DeliveryOutcome.failed(f"the notification is not JSON-serialisable: {exc}")
        headers = {
            **spec.headers,
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            EVENT_HEADER: notification.kind.value,
            DELIVERY_HEADER: hashlib.sha256(body).hexdigest()[:32],
        }
        if spec.secret is not None:
            secret = context.secret(spec.secret, "secret")
            headers[SIGNATURE_HEADER] = sign(secret, int(context.clock()), body)
        if spec.bearer_token is not None:
            token = context.secret(spec.bearer_token, "bearer_token")
            headers["Authorization"] = f"Bearer {token}"
        try:
            response = await context.http.post(spec.url, content=body, headers=headers)
        except httpx.TimeoutException:
            return DeliveryOutcome.retry(f"no answer from {_origin(spec.url)} in time")
        except httpx.TransportError as exc:
            return DeliveryOutcome.retry(f"cannot reach {_origin(spec.url)}: {_reason(exc)}")
        return classify(response, now=context.clock())


def classify(response: httpx.Response, *, now: float) -> DeliveryOutcome:
    """What an answer means for the notifier: delivered, retry later, or give up."""
    code = response.status_code
    status = f"HTTP {code}"
    if 200 <= code < 300:
        return DeliveryOutcome.delivered(status)
    text = clip(response.text, MAX_RESPONSE_TEXT) if response.content else ""
    error = f"{status} {response.reason_phrase}".strip() + (f": {text}" if text else "")
    if code == 429 or code >= 500:
        return DeliveryOutcome.retry(
            error,
            status=status,
            retry_after=retry_after(response.headers.get("Retry-After"), now=now),
        )
    if 300 <= code < 400:
        error += f" (redirect to {response.headers.get('Location', '?')} not followed)"
    return DeliveryOutcome.failed(error, status=status)


def retry_after(value: str | None, *, now: float) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), if usable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; a zone-less one is taken as such
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


def _origin(url: str) -> str:
    """Scheme, host and port only: paths and queries may carry tokens."""
    parsed = httpx.URL(url)
    port = f":{parsed.port}" if parsed.port else ""
    return f"{parsed.scheme}://{parsed.host}{port}"


def _reason(exc: httpx.TransportError) -> str:
    cause: BaseException = exc
    while cause.__cause__ is not None and not str(cause):
        cause = cause.__cause__
    return str(cause) or type(exc).__name__
