"""Notification channels, one module per kind, found through a registry.

    Notifier ──▶ build_channel(spec, context) ──▶ webhook | email | command
                     └─▶ channel.deliver(notification) ──▶ DeliveryOutcome
                                                   (delivered | retry | failed)

Importing this package registers the built-in channels.
"""

from __future__ import annotations

from watchkeeper.notify.channels.base import (
    CHANNELS,
    Channel,
    ChannelAlreadyRegistered,
    ChannelContext,
    ChannelError,
    DeliveryFailed,
    DeliveryOutcome,
    DeliveryResult,
    PermanentFailure,
    TemporaryFailure,
    UnknownChannelKind,
    build_channel,
    get_channel_class,
    register,
)
from watchkeeper.notify.channels.command import CommandSender
from watchkeeper.notify.channels.email import EmailSender
from watchkeeper.notify.channels.webhook import WebhookSender, sign, verify

__all__ = [
    "CHANNELS",
    "Channel",
    "ChannelAlreadyRegistered",
    "ChannelContext",
    "ChannelError",
    "CommandSender",
    "DeliveryFailed",
    "DeliveryOutcome",
    "DeliveryResult",
    "EmailSender",
    "PermanentFailure",
    "TemporaryFailure",
    "UnknownChannelKind",
    "WebhookSender",
    "build_channel",
    "get_channel_class",
    "register",
    "sign",
    "verify",
]
