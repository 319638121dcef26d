"""What the alarm and remediation stages ask the notifier to deliver.

One value type between who decides to notify (`AlarmBook`, the remediation guardrails)
and who delivers (`Notifier` and its channels), so neither knows the other.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class NotificationKind(enum.Enum):
    """Why a notification is sent; channels may render each differently."""

    PROBLEM = "problem"
    RECOVERY = "recovery"
    #: The problem is still there after the re-notification interval.
    REMINDER = "reminder"
    ACKNOWLEDGEMENT = "acknowledgement"
    FLAPPING_START = "flapping_start"
    FLAPPING_STOP = "flapping_stop"
    DOWNTIME_START = "downtime_start"
    DOWNTIME_END = "downtime_end"
    #: A remediation failed, gave up, or was held by a guardrail (circuit breaker).
    REMEDIATION = "remediation"
    #: Another manager of the cluster took over as leader (`watchkeeper.cluster`).
    CLUSTER = "cluster"


@dataclass(frozen=True, slots=True, kw_only=True)
class Notification:
    """One message to the named channels about one check (``host!service`` or a host)."""

    kind: NotificationKind
    #: The check key the message is about.
    key: str
    host: str
    service: str | None
    #: ``OK``, ``CRITICAL``, ``DOWN``...: the state the message reports.
    state: str
    output: str
    #: Epoch seconds of the event.
    at: float
    #: Channel names from the document; the notifier skips names it does not know.
    channels: tuple[str, ...]
    alarm_id: int | None = None
    #: Free-form detail for the payload: who acknowledged, which rule, attempts...
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def subject(self) -> str:
        """``PROBLEM: web1!http is CRITICAL``: the one line an email subject or chat shows."""
        return f"{self.kind.value.upper()}: {self.key} is {self.state}"

    def as_dict(self) -> dict[str, Any]:
        """The JSON payload of webhook and command channels."""
        return {
            "kind": self.kind.value,
            "subject": self.subject,
            "key": self.key,
            "host": self.host,
            "service": self.service,
            "state": self.state,
            "output": self.output,
            "at": self.at,
            "alarm_id": self.alarm_id,
            "details": self.details,
        }


#: How the deciding stages hand a notification over: it queues, never blocks.
Notify = Callable[[Notification], None]
