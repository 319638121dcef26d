"""What a notification channel is, what one delivery attempt came to, and the channel registry.

A channel delivers one `Notification` to one destination (a webhook URL, mailboxes, a
command) and says how it went. It never retries by itself: the `Notifier` decides, from
the outcome, whether to try again later, so every channel gets the same backoff, limits
and delivery log. A channel either returns a `DeliveryOutcome` or raises one of:

    WatchkeeperError
     └── ChannelError                   a channel cannot deliver
          └── DeliveryFailed             one attempt failed (raise it, or return an outcome)
               ├── TemporaryFailure      retrying later may work (5xx, 429, connection refused)
               └── PermanentFailure      retrying cannot help (4xx, a missing secret)

Channels are the plugins of `watchkeeper.plugins.CHANNELS` (``@CHANNELS.register``; the
``watchkeeper.channels`` entry point group for third parties); an unknown kind is that
registry's `UnknownKind`.
"""

from __future__ import annotations

import enum
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, cast

import httpx
from pydantic import BaseModel

from watchkeeper.errors import SecretError, WatchkeeperError
from watchkeeper.notify.notification import Notification
from watchkeeper.plugins import CHANNELS
from watchkeeper.secrets import resolve_secret

#: Longest error or output text kept for one attempt (the delivery log is not a log store).
MAX_DETAIL = 2000


class ChannelError(WatchkeeperError):
    """The notification channel cannot deliver."""


class DeliveryFailed(ChannelError):
    """A delivery attempt failed."""

    #: Whether the notifier should try again later.
    retryable: ClassVar[bool] = True

    def __init__(self, message: str | None = None, *, status: str | None = None) -> None:
        super().__init__(message)
        self.status = status


class TemporaryFailure(DeliveryFailed):
    """A delivery attempt failed; a later attempt may succeed."""

    retryable = True


class PermanentFailure(DeliveryFailed):
    """A delivery attempt failed in a way retrying cannot fix."""

    retryable = False


class DeliveryResult(enum.Enum):
    """How one attempt ended."""

    DELIVERED = "delivered"
    #: Failed; try again after a backoff (connection refused, HTTP 503, SMTP 4xx).
    RETRY = "retry"
    #: Failed for good (HTTP 400, a missing secret, a rejected recipient).
    FAILED = "failed"


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryOutcome:
    """One attempt's result, as the delivery log records it."""

    result: DeliveryResult
    #: The destination's own word on it: ``HTTP 503``, ``SMTP 550``, ``exit 1``.
    status: str | None = None
    #: Why it failed, in one line; None when delivered.
    error: str | None = None
    #: Seconds the destination asked us to wait (HTTP ``Retry-After``).
    retry_after: float | None = None

    @classmethod
    def delivered(cls, status: str | None = None) -> DeliveryOutcome:
        return cls(result=DeliveryResult.DELIVERED, status=status)

    @classmethod
    def retry(
        cls, error: str, *, status: str | None = None, retry_after: float | None = None
    ) -> DeliveryOutcome:
        return cls(
            result=DeliveryResult.RETRY,
            status=status,
            error=clip(error),
            retry_after=retry_after,
        )

    @classmethod
    def failed(cls, error: str, *, status: str | None = None) -> DeliveryOutcome:
        return cls(result=DeliveryResult.FAILED, status=status, error=clip(error))

    @classmethod
    def from_error(cls, exc: DeliveryFailed) -> DeliveryOutcome:
        if exc.retryable:
            return cls.retry(exc.message, status=exc.status)
        return cls.failed(exc.message, status=exc.status)

    @property
    def ok(self) -> bool:
        return self.result is DeliveryResult.DELIVERED


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelContext:
    """What the notifier shares with every channel: connections, trust, time, environment.

    Nothing here comes from the document; it is how this manager delivers.
    """

    #: One pooled HTTP client for every webhook (its timeout and trust apply to all).
    http: httpx.AsyncClient
    #: Where ``env:`` secret references and a command's environment come from; None is
    #: the process environment.
    environ: Mapping[str, str] | None = None
    #: Trust for STARTTLS (None: the system's CAs, hostname checked).
    ssl_context: ssl.SSLContext | None = None
    #: Seconds for an SMTP conversation or a command before it counts as failed.
    timeout: float = 30.0
    #: Epoch seconds, for signatures and mail dates.
    clock: Callable[[], float] = time.time

    def secret(self, ref: str, field: str) -> str:
        """Resolve a secret reference now; a missing one is a permanent failure."""
        try:
            return resolve_secret(ref, self.environ)
        except SecretError as exc:
            raise PermanentFailure(f"{field}: {exc.message}") from exc


class Channel(Protocol):
    """Delivers notifications to one destination from the document's ``notifications``.

    Lifecycle: the notifier builds one instance per configured channel with
    ``cls(spec, context)`` (``spec`` validated with ``Config``) whenever the configuration
    changes, and calls `deliver` concurrently. Channels hold no resources of their own:
    shared ones (the HTTP pool) live in the `ChannelContext` the notifier closes.
    """

    #: The channel ``kind`` in the document; the registry key.
    kind: ClassVar[str]
    #: The document model of one channel of this kind.
    Config: ClassVar[type[BaseModel]]
    #: The channel's name in the document.
    name: str

    async def deliver(self, notification: Notification) -> DeliveryOutcome:
        """Make one attempt; return its outcome or raise `DeliveryFailed`. Never retry."""
        ...


def build_channel(spec: Mapping[str, Any] | BaseModel, context: ChannelContext) -> Channel:
    """Make the channel a document object describes (a model or its JSON as stored).

    Raises `UnknownKind`, or pydantic's `ValidationError` when the stored spec does not fit
    this version's model (version skew between the store and the code).
    """
    raw = spec.model_dump(mode="json", by_alias=True) if isinstance(spec, BaseModel) else spec
    cls = cast("type[Channel]", CHANNELS.get(str(raw.get("kind"))))
    config = spec if isinstance(spec, cls.Config) else cls.Config.model_validate(raw)
    factory: Callable[[BaseModel, ChannelContext], Channel] = cls
    return factory(config, context)


def clip(text: str, limit: int = MAX_DETAIL) -> str:
    """``text`` on at most ``limit`` characters, marked when cut."""
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"
