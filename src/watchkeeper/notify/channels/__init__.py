"""Notification channels, one module per kind, found through a registry.

    Notifier ──▶ build_channel(spec, context) ──▶ webhook | email | command
                     └─▶ channel.deliver(notification) ──▶ DeliveryOutcome
                                                   (delivered | retry | failed)

Each module holds one channel and the document model of its kind (``Config``).
"""

from __future__ import annotations

from watchkeeper.notify.channels.base import (
    Channel,
    ChannelContext,
    ChannelError,
    DeliveryFailed,
    DeliveryOutcome,
    DeliveryResult,
    PermanentFailure,
    TemporaryFailure,
    build_channel,
)
from watchkeeper.notify.channels.command import CommandChannel, CommandSender
from watchkeeper.notify.channels.email import EmailChannel, EmailSender
from watchkeeper.notify.channels.webhook import WebhookChannel, WebhookSender, sign, verify

__all__ = [
    "Channel",
    "ChannelContext",
    "ChannelError",
    "CommandChannel",
    "CommandSender",
    "DeliveryFailed",
    "DeliveryOutcome",
    "DeliveryResult",
    "EmailChannel",
    "EmailSender",
    "PermanentFailure",
    "TemporaryFailure",
    "WebhookChannel",
    "WebhookSender",
    "build_channel",
    "sign",
    "verify",
]
