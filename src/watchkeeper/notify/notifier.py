"""The notifier: queues notifications, delivers them through channels, retries, logs every attempt.

    notify(n) ──▶ bounded queue ──▶ run(): one task per (notification, channel)
                  (full: dropped,          │  ≤ concurrency sends at once
                   with a warning)         ▼
                                  channel.deliver(n) ──▶ delivered | retry | failed
                                           │                          │
                                           │          backoff with jitter, up to
                                           │          max_attempts and max_age
                                           ▼
                                  delivery log (store), batched; and the log

Deciding *when* to notify is the alarm book's job; this module only delivers. Retries
live in memory: a manager restart drops the retries still waiting (the log shows their
failed attempts). Channels are looked up by name at every attempt, so a configuration
that removes a channel also stops its pending retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import BaseModel, ValidationError

from watchkeeper.backoff import backoff_delay
from watchkeeper.document.normalize import ObjectRecord
from watchkeeper.errors import StoreError
from watchkeeper.notify import repository as notifications_store
from watchkeeper.notify.channels import (
    Channel,
    ChannelContext,
    ChannelError,
    DeliveryFailed,
    DeliveryOutcome,
    DeliveryResult,
    build_channel,
)
from watchkeeper.notify.notification import Notification
from watchkeeper.notify.repository import DeliveryAttempt
from watchkeeper.plugins import PluginError
from watchkeeper.store.db import Database

logger = logging.getLogger(__name__)

#: What `Notifier.configure` takes: the store's records, the document's models, or raw specs.
ChannelSpec = ObjectRecord | BaseModel | Mapping[str, Any]
#: Writes a batch of attempts to the delivery log; `Notifier` uses the store unless given one.
Recorder = Callable[[Sequence[DeliveryAttempt]], Awaitable[None]]
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True, kw_only=True)
class NotifierSettings:
    """How hard the notifier tries. The defaults make 5 attempts over about 4-8 minutes."""

    #: Notifications waiting for delivery; beyond this `notify` drops them with a warning.
    queue_size: int = 10_000
    #: Deliveries in progress or waiting to retry; the queue waits beyond this.
    max_in_flight: int = 1_000
    #: Attempts running at the same moment, across all channels.
    concurrency: int = 16
    #: Attempts per notification and channel, the first included.
    max_attempts: int = 5
    #: Seconds after the first attempt past which no retry starts.
    max_age: float = 600.0
    #: Delay before the first retry (before jitter); it doubles for each retry after.
    backoff_base: float = 30.0
    #: Longest delay between two attempts.
    backoff_cap: float = 300.0
    #: A safety net over every attempt, on top of each channel's own timeouts.
    attempt_timeout: float = 60.0
    #: Timeout of webhook requests and of SMTP conversations and commands.
    channel_timeout: float = 30.0
    #: Attempts kept in memory while the store cannot take them.
    max_unrecorded: int = 10_000

    def __post_init__(self) -> None:
        for name in ("queue_size", "max_in_flight", "concurrency", "max_attempts"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)}")


def retry_delay(
    settings: NotifierSettings,
    *,
    attempt: int,
    elapsed: float,
    rng: random.Random,
    retry_after: float | None = None,
) -> float | None:
    """Seconds to wait before the attempt after ``attempt``, or None to give up.

    Exponential with equal jitter (`backoff_delay`): ``base * 2**(attempt-1)``, half of it
    random, capped. A destination's ``Retry-After`` lengthens the wait (never beyond the
    cap). No retry starts after ``max_attempts`` attempts or ``max_age`` seconds since the
    first (``elapsed`` is the time since then).
    """
    if attempt >= settings.max_attempts:
        return None
    delay = backoff_delay(attempt, base=settings.backoff_base, cap=settings.backoff_cap, rng=rng)
    if retry_after is not None:
        delay = min(max(delay, retry_after), settings.backoff_cap)
    if elapsed + delay > settings.max_age:
        return None
    return delay


class Notifier:
    """Delivers `Notification` values through the document's channels; see the module doc.

    ``notify`` is the `Notify` the alarm book and the remediation guardrails get. Call
    `configure` with the ``notifications`` section after every import, and run `run` for
    as long as notifications should go out; it closes the HTTP pool when it ends.
    """

    def __init__(
        self,
        db: Database | None,
        *,
        settings: NotifierSettings | None = None,
        record: Recorder | None = None,
        http: httpx.AsyncClient | None = None,
        environ: Mapping[str, str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        context: ChannelContext | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Sleep = asyncio.sleep,
        timer: Callable[[], float] = time.perf_counter,
        rng: random.Random | None = None,
    ) -> None:
        """``db`` receives the delivery log unless ``record`` does (then ``db`` may be None).

        ``environ`` is where ``env:`` secrets and commands' environment come from (None:
        the process's); ``ssl_context`` is the trust for webhooks and STARTTLS (None: the
        system's CAs). ``context`` replaces all three and ``http`` (the HTTP pool, made
        here otherwise) with a ready `ChannelContext`. ``clock`` (epoch seconds),
        ``sleep`` and ``timer`` (durations) let tests run retries without waiting.
        """
        self.settings = settings or NotifierSettings()
        if record is None:
            if db is None:
                raise ValueError("give the notifier a database or a record function")
            record = _store_recorder(db)
        self._db = db
        self._record = record
        self._clock = clock
        self._sleep = sleep
        self._timer = timer
        self._rng = rng or random.Random()
        if context is None:
            timeout = self.settings.channel_timeout
            http = http or httpx.AsyncClient(
                timeout=timeout, follow_redirects=False, verify=ssl_context or True
            )
            context = ChannelContext(
                http=http, environ=environ, ssl_context=ssl_context, timeout=timeout, clock=clock
            )
        self.context = context
        self._queue: asyncio.Queue[Notification] = asyncio.Queue(self.settings.queue_size)
        self._channels: dict[str, Channel] = {}
        #: Channels the document names but this code cannot build, and why.
        self._broken: dict[str, str] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(self.settings.concurrency)
        self._in_flight = asyncio.Semaphore(self.settings.max_in_flight)
        self._unrecorded: list[DeliveryAttempt] = []
        self._recorded = asyncio.Event()
        self._pending = 0
        self._idle = asyncio.Event()
        self._idle.set()
        #: Notifications dropped because the queue was full, since the start.
        self.dropped = 0
        self._dropping = False

    # --- the Notify side ------------------------------------------------------------------

    def notify(self, notification: Notification) -> None:
        """Queue ``notification`` for delivery; never blocks. A full queue drops it."""
        try:
            self._queue.put_nowait(notification)
        except asyncio.QueueFull:
            self.dropped += 1
            if not self._dropping:
                self._dropping = True
                logger.warning(
                    "notification queue full (%d waiting): dropping notifications, first %s",
                    self._queue.maxsize,
                    notification.subject,
                    extra={"action": "notification_dropped", "key": notification.key},
                )
            return
        self._pending += 1
        self._idle.clear()

    # --- configuration --------------------------------------------------------------------

    def configure(self, channels: Iterable[ChannelSpec]) -> None:
        """Use these channels from now on (the document's ``notifications`` section).

        A channel this code cannot build (a kind or field it does not know: a newer
        manager imported the document) is logged and its deliveries fail with the reason.
        """
        built: dict[str, Channel] = {}
        broken: dict[str, str] = {}
        for item in channels:
            spec = item.spec if isinstance(item, ObjectRecord) else item
            name = str(
                getattr(spec, "name", None) if isinstance(spec, BaseModel) else spec.get("name")
            )
            try:
                built[name] = build_channel(spec, self.context)
            except (ChannelError, PluginError, ValidationError) as exc:
                reason = _problems(exc) if isinstance(exc, ValidationError) else exc.message
                broken[name] = reason
                logger.error(
                    "notification channel %s cannot be used: %s",
                    name,
                    reason,
                    extra={"action": "channel_unusable", "channel": name},
                )
        self._channels, self._broken = built, broken

    @property
    def channels(self) -> dict[str, Channel]:
        """The channels in use, by name."""
        return dict(self._channels)

    # --- running --------------------------------------------------------------------------

    async def run(self) -> None:
        """Deliver queued notifications until cancelled; then record what was attempted."""
        recorder = asyncio.create_task(self._record_loop(), name="notifier-recorder")
        try:
            while True:
                await self._in_flight.acquire()
                try:
                    notification = await self._queue.get()
                except BaseException:
                    self._in_flight.release()
                    raise
                task = asyncio.create_task(self._settle(notification))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        finally:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            recorder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await recorder
            await self._flush()
            await self.aclose()

    async def join(self) -> None:
        """Wait until every queued notification is settled and its attempts are recorded."""
        await self._idle.wait()
        await self._flush()

    async def aclose(self) -> None:
        """Close the shared HTTP pool; `run` does this when it ends."""
        await self.context.http.aclose()

    async def deliver(self, notification: Notification) -> list[DeliveryAttempt]:
        """Deliver ``notification`` now on each of its channels, retries included.

        What `run` does for each queued notification; returns every attempt made (they
        are recorded too). For tests and for a "send a test notification" action.
        """
        names = dict.fromkeys(notification.channels)  # each channel once, in order
        results = await asyncio.gather(*(self._deliver_to(notification, n) for n in names))
        return [attempt for attempts in results for attempt in attempts]

    async def list_deliveries(
        self,
        *,
        key: str | None = None,
        channel: str | None = None,
        success: bool | None = None,
        limit: int = 100,
        before_id: int | None = None,
    ) -> list[DeliveryAttempt]:
        """The delivery log, newest first (see `notify.repository.list_deliveries`)."""
        if self._db is None:
            raise StoreError("this notifier records deliveries elsewhere: it has no database")
        async with self._db.session() as session:
            return await notifications_store.list_deliveries(
                session,
                key=key,
                channel=channel,
                success=success,
                limit=limit,
                before_id=before_id,
            )

    # --- internals ------------------------------------------------------------------------

    async def _settle(self, notification: Notification) -> None:
        try:
            await self.deliver(notification)
        except Exception:  # a bug here must not stop the notifier
            logger.exception(
                "delivering %s failed",
                notification.subject,
                extra={"action": "notification_crashed", "key": notification.key},
            )
        finally:
            self._in_flight.release()
            self._queue.task_done()
            self._pending -= 1
            if self._pending == 0:
                self._idle.set()
            if self._dropping and self._queue.qsize() < self._queue.maxsize // 2:
                self._dropping = False
                logger.warning(
                    "notification queue has room again; %d dropped so far",
                    self.dropped,
                    extra={"action": "notification_queue_recovered", "dropped": self.dropped},
                )

    async def _deliver_to(self, notification: Notification, name: str) -> list[DeliveryAttempt]:
        """Every attempt on one channel: until delivered, a permanent failure, or give-up."""
        attempts: list[DeliveryAttempt] = []
        first = self._clock()
        for number in range(1, self.settings.max_attempts + 1):
            at = self._clock()
            started = self._timer()
            outcome = await self._attempt(notification, name)
            attempt = DeliveryAttempt(
                notification_kind=notification.kind.value,
                key=notification.key,
                state=notification.state,
                alarm_id=notification.alarm_id,
                channel=name,
                attempt=number,
                at=datetime.fromtimestamp(at, UTC),
                success=outcome.ok,
                status=outcome.status,
                error=outcome.error,
                duration=max(0.0, self._timer() - started),
            )
            attempts.append(attempt)
            self._keep(attempt)
            if outcome.result is not DeliveryResult.RETRY:
                _log_end(notification, attempt)
                return attempts
            delay = retry_delay(
                self.settings,
                attempt=number,
                elapsed=self._clock() - first,
                rng=self._rng,
                retry_after=outcome.retry_after,
            )
            if delay is None:
                _log_end(notification, attempt, gave_up=True)
                return attempts
            logger.warning(
                "notification %s to %s failed (attempt %d), retrying in %.0fs: %s",
                notification.subject,
                name,
                number,
                delay,
                attempt.error,
                extra={"action": "notification_retry", **attempt.log_context(), "delay": delay},
            )
            await self._sleep(delay)
        return attempts  # not reached: the last attempt returns above

    async def _attempt(self, notification: Notification, name: str) -> DeliveryOutcome:
        channel = self._channels.get(name)
        if channel is None:
            return DeliveryOutcome.failed(self._missing(name))
        try:
            async with self._slots, asyncio.timeout(self.settings.attempt_timeout):
                return await channel.deliver(notification)
        except DeliveryFailed as exc:
            return DeliveryOutcome.from_error(exc)
        except TimeoutError:
            return DeliveryOutcome.retry(
                f"no outcome within {self.settings.attempt_timeout:g}s", status="timeout"
            )
        except OSError as exc:
            return DeliveryOutcome.retry(f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # a channel bug: retrying the same code will not help
            logger.exception(
                "notification channel %s crashed",
                name,
                extra={"action": "channel_crashed", "channel": name},
            )
            return DeliveryOutcome.failed(f"channel crashed: {exc!r}")

    def _missing(self, name: str) -> str:
        if name in self._broken:
            return f"notification channel {name!r} cannot be used: {self._broken[name]}"
        known = ", ".join(sorted(self._channels)) or "none"
        return f"no notification channel named {name!r} in the document (channels: {known})"

    # --- the delivery log -----------------------------------------------------------------

    def _keep(self, attempt: DeliveryAttempt) -> None:
        if len(self._unrecorded) >= self.settings.max_unrecorded:
            del self._unrecorded[0]  # the oldest goes; the log line above still has it
        self._unrecorded.append(attempt)
        self._recorded.set()

    async def _record_loop(self) -> None:
        while True:
            await self._recorded.wait()
            await self._flush()

    async def _flush(self) -> None:
        self._recorded.clear()
        batch, self._unrecorded = self._unrecorded, []
        if not batch:
            return
        try:
            await self._record(batch)
        except Exception as exc:  # the store is down, or a bug: keep the batch for next time
            logger.error(
                "cannot record %d notification delivery attempts, will try again: %s",
                len(batch),
                exc.message if isinstance(exc, StoreError) else repr(exc),
                extra={"action": "delivery_log_failed", "count": len(batch)},
            )
            self._unrecorded[:0] = batch[-self.settings.max_unrecorded :]
            del self._unrecorded[: max(0, len(self._unrecorded) - self.settings.max_unrecorded)]


def _store_recorder(db: Database) -> Recorder:
    async def record(attempts: Sequence[DeliveryAttempt]) -> None:
        await notifications_store.record_deliveries(db, attempts)

    return record


def _log_end(
    notification: Notification, attempt: DeliveryAttempt, *, gave_up: bool = False
) -> None:
    extra = {"action": "notification_delivered", **attempt.log_context()}
    if attempt.success:
        logger.info(
            "notification %s delivered to %s (attempt %d)",
            notification.subject,
            attempt.channel,
            attempt.attempt,
            extra=extra,
        )
        return
    extra["action"] = "notification_failed"
    logger.error(
        "notification %s to %s failed%s after %d attempt(s): %s",
        notification.subject,
        attempt.channel,
        ", giving up," if gave_up else " for good",
        attempt.attempt,
        attempt.error,
        extra=extra,
    )


def _problems(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or 'channel'}: {error['msg']}"
        for error in exc.errors()
    )
