"""Builders for the alarm tests: records, engine values and a notification inbox."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from watchkeeper.document.normalize import CheckRecord, check_key, spec_hash
from watchkeeper.engine import (
    CheckStatus,
    HostState,
    HostStateChange,
    HostStatus,
    StateChange,
    StateType,
)
from watchkeeper.notify.notification import Notification, NotificationKind
from watchkeeper.results import CheckState

T0 = 1_700_000_000.0
OK, WARN, CRIT, UNKNOWN = (
    CheckState.OK,
    CheckState.WARNING,
    CheckState.CRITICAL,
    CheckState.UNKNOWN,
)
HARD, SOFT = StateType.HARD, StateType.SOFT


class Inbox:
    """A `Notify` that keeps what it is given."""

    def __init__(self) -> None:
        self.sent: list[Notification] = []

    def __call__(self, notification: Notification) -> None:
        self.sent.append(notification)

    def kinds(self, key: str | None = None) -> list[NotificationKind]:
        return [n.kind for n in self.sent if key is None or n.key == key]

    def take(self) -> list[NotificationKind]:
        kinds = self.kinds()
        self.sent.clear()
        return kinds


def rec(
    host: str,
    service: str | None = "http",
    *,
    channels: Sequence[str] = ("ops",),
    renotify: float | None = None,
    flapping: dict[str, Any] | None = None,
    thresholds: dict[str, Any] | None = None,
    zone: str = "z",
    agent: bool = False,
) -> CheckRecord:
    spec: dict[str, Any] = {
        "check": {"kind": "agent" if agent else "tcp"},
        "host": host,
        "service": service,
        "notifications": list(channels),
        "renotify": renotify,
        "flapping": flapping or {"enabled": True, "low": 25.0, "high": 30.0},
        "thresholds": thresholds or {},
        "threshold_mode": "complement",
    }
    return CheckRecord(
        key=check_key(host, service),
        host=host,
        service=service,
        zone=zone,
        hash=spec_hash(spec),
        spec=spec,
    )


def checks(*records: CheckRecord) -> dict[str, CheckRecord]:
    return {r.key: r for r in records}


def change(
    key: str,
    to: CheckState,
    at: float,
    *,
    frm: CheckState | None = OK,
    hard: bool = True,
    to_type: StateType = HARD,
    output: str = "",
) -> StateChange:
    return StateChange(
        key=key,
        at=at,
        from_state=frm,
        from_type=HARD,
        to_state=to,
        to_type=to_type,
        attempt=3,
        hard=hard,
        output=output or to.name,
    )


def status(key: str, state: CheckState, at: float, *, state_type: StateType = HARD) -> CheckStatus:
    return CheckStatus(
        key=key,
        state=state,
        state_type=state_type,
        attempt=1,
        output=state.name,
        pending=False,
        last_check=at,
        last_state_change=at,
        last_hard_state=state if state_type is HARD else OK,
        last_hard_change=at,
    )


def host_change(
    host: str, to: HostState, at: float, *, frm: HostState = HostState.UP, hard: bool = True
) -> HostStateChange:
    return HostStateChange(
        host=host,
        at=at,
        from_state=frm,
        from_type=HARD,
        to_state=to,
        to_type=HARD if hard else SOFT,
        hard=hard,
        output=f"{host} is {to.name}",
    )


def host_status(host: str, state: HostState, at: float) -> HostStatus:
    return HostStatus(host=host, state=state, last_state_change=at, last_hard_change=at)
