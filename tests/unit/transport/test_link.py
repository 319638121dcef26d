"""What a worker logs about its link: each change once, reminders while down, on a test clock."""

from __future__ import annotations

import logging
from pathlib import Path

import asyncssh
import pytest

from watchkeeper.logs import NOTICE
from watchkeeper.transport import protocol
from watchkeeper.transport.errors import AuthRefused, ManagerUnreachable
from watchkeeper.transport.link import LinkLog, enrol_hint

WELCOME = protocol.Welcome(name="w1", zones=["dmz"], heartbeat_interval=5)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def link(clock: Clock) -> LinkLog:
    return LinkLog("mgr:4730", lambda: "HINT", clock=clock, remind_every=300)


def said(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    found = [(r.levelno, r.getMessage()) for r in caplog.records if r.levelno >= logging.INFO]
    caplog.clear()
    return found


def test_a_lost_link_is_told_once_then_reminded_then_its_return(
    link: LinkLog, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, "watchkeeper.transport.client")
    link.up(WELCOME)
    assert said(caplog) == [(NOTICE, "connected to the manager at mgr:4730 as w1 for zones dmz")]
    link.lost("connection reset")
    unreachable = ManagerUnreachable("cannot reach the manager at mgr:4730: refused")
    for _ in range(20):  # a redial every 10 s for 200 s: one warning, no more
        clock.now += 10
        link.down(unreachable, 10)
    assert said(caplog) == [
        (
            logging.WARNING,
            "lost the manager connection at mgr:4730 (connection reset); redialling with backoff",
        ),
        (
            logging.WARNING,
            "cannot reach the manager at mgr:4730: refused; retrying with backoff "
            "(next try in 10.0 s)",
        ),
    ]
    for _ in range(11):  # remind_every past the first warning: one reminder
        clock.now += 10
        link.down(unreachable, 10)
    (reminder,) = said(caplog)
    assert reminder[0] == logging.WARNING
    assert reminder[1].startswith("still no connection to the manager at mgr:4730 after 31 tries")
    clock.now += 5
    link.up(WELCOME)
    assert said(caplog) == [
        (
            NOTICE,
            "reconnected to the manager at mgr:4730 after 315 s (31 tries) as w1 for zones dmz",
        )
    ]


def test_a_refused_key_says_how_to_enrol_it_and_a_new_kind_of_failure_is_told_again(
    link: LinkLog, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "watchkeeper.transport.client")
    refused = AuthRefused("the manager at mgr:4730 refused key /k")
    link.down(refused, 1)
    link.down(refused, 2)
    link.down(ManagerUnreachable("cannot reach the manager at mgr:4730: timeout"), 4)
    messages = [m for _, m in said(caplog)]
    assert messages == [
        "the manager at mgr:4730 refused key /k: this key is not enrolled, or was revoked; "
        "HINT (next try in 1.0 s)",
        "cannot reach the manager at mgr:4730: timeout; retrying with backoff (next try in 4.0 s)",
    ]


def test_a_relogin_the_manager_asked_for_is_news_not_a_warning(
    link: LinkLog, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "watchkeeper.transport.client")
    link.up(WELCOME)
    link.asked("this worker's key has new grants")
    link.up(WELCOME)
    assert [level for level, _ in said(caplog)] == [NOTICE, logging.INFO, logging.INFO]
    link.lost("connection reset")  # a real loss after it is told as one again
    link.up(WELCOME)
    assert [level for level, _ in said(caplog)] == [logging.WARNING, NOTICE]


def test_the_enrol_hint_carries_the_public_key_and_the_command(tmp_path: Path) -> None:
    key = asyncssh.generate_private_key("ssh-ed25519")
    path = tmp_path / "worker.key"
    path.write_bytes(key.export_private_key())
    hint = enrol_hint("w1", ("dmz", "core"), path)
    public = key.export_public_key().decode().strip()
    assert hint == (
        "to enrol it, run on the manager: watchkeeper worker-key add w1 --zones dmz,core "
        f"--public-key FILE.pub, where FILE.pub holds: {public}"
    )
    assert "the public half of" in enrol_hint("w1", (), tmp_path / "missing")


def test_a_worker_of_several_managers_names_each_and_the_one_it_dials_next(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, "watchkeeper.transport.client")
    link = LinkLog("m1:4730 or m2:4730", lambda: "HINT", clock=clock, remind_every=300)
    link.up(WELCOME, "m1:4730")
    link.lost("Server not responding to keepalive", "m1:4730", then="m2:4730")
    refused = ManagerUnreachable("cannot reach the manager at m2:4730: refused")
    link.down(refused, 0.0, then="m1:4730")  # the round goes on at once
    again = ManagerUnreachable("cannot reach the manager at m1:4730: refused")
    link.down(again, 1.0)  # the round failed: backoff; same kind, so not told again
    assert said(caplog) == [
        (NOTICE, "connected to the manager at m1:4730 as w1 for zones dmz"),
        (
            logging.WARNING,
            "lost the manager connection at m1:4730 (Server not responding to keepalive); "
            "trying the manager at m2:4730 now",
        ),
        (
            logging.WARNING,
            "cannot reach the manager at m2:4730: refused; trying the manager at m1:4730 now",
        ),
    ]
    for _ in range(40):  # reminders name every manager, and only while backing off
        clock.now += 10
        link.down(refused, 0.0, then="m1:4730")
    assert said(caplog) == []
    link.down(again, 10.0)
    (reminder,) = said(caplog)
    assert reminder[1].startswith(
        "still no connection to the manager at m1:4730 or m2:4730 after 43 tries"
    )
    clock.now += 5
    link.up(WELCOME, "m2:4730")
    assert said(caplog) == [
        (NOTICE, "reconnected to the manager at m2:4730 after 405 s (43 tries) as w1 for zones dmz")
    ]
