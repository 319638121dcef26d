"""The status file and how a worker's health is judged from it."""

from __future__ import annotations

from pathlib import Path

import pytest

from watchkeeper import liveness
from watchkeeper.commands.health_cmds import local_url

NOW = 1_800_000_000.0


def worker(connected: bool, at: float, heartbeat: float = 10.0) -> liveness.Status:
    return liveness.Status(
        role="worker", pid=1, at=at, connected=connected, heartbeat=heartbeat, manager="m:4730"
    )


@pytest.mark.parametrize(
    ("status", "healthy", "message"),
    [
        (worker(True, NOW - 5), True, "worker connected to m:4730 (heartbeat 5 s ago)"),
        (worker(True, NOW - 30), True, "worker connected to m:4730 (heartbeat 30 s ago)"),
        (
            worker(True, NOW - 31),
            False,
            "worker's last heartbeat to m:4730 was 31 s ago (more than 3 x 10 s)",
        ),
        (worker(False, NOW - 2), False, "worker not connected to m:4730 (for 2 s)"),
    ],
)
def test_a_worker_is_healthy_within_three_heartbeats(
    status: liveness.Status, healthy: bool, message: str
) -> None:
    assert liveness.judge_worker(status, NOW) == liveness.Verdict(healthy, message)


def test_the_status_file_round_trips_and_is_replaced_whole(tmp_path: Path) -> None:
    path = tmp_path / "d" / liveness.STATUS_FILE
    first = liveness.Status(role="manager", pid=7, at=NOW, url="http://127.0.0.1:8470")
    liveness.write(path, first)
    assert liveness.read(path) == first
    second = worker(True, NOW)
    liveness.write(path, second)
    assert liveness.read(path) == second
    assert [p.name for p in path.parent.iterdir()] == [liveness.STATUS_FILE]  # no temp left


def test_a_missing_or_foreign_status_file_is_unreadable(tmp_path: Path) -> None:
    with pytest.raises(liveness.StatusUnreadable, match="no status file"):
        liveness.read(tmp_path / "status.json")
    (tmp_path / "status.json").write_text('{"role": "manager"}')
    with pytest.raises(liveness.StatusUnreadable, match="cannot read the status file"):
        liveness.read(tmp_path / "status.json")


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("http://0.0.0.0:8470", "http://127.0.0.1:8470"),
        ("https://[::]:8443", "https://[::1]:8443"),
        ("http://10.0.0.5:8470", "http://10.0.0.5:8470"),
    ],
)
def test_health_dials_loopback_for_a_wildcard_listen_address(url: str, local: str) -> None:
    assert local_url(url) == local
