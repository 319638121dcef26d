"""The failure latch logs a failure once when it starts and once when it ends."""

from __future__ import annotations

import logging

import pytest

from watchkeeper.latch import FailureLatch

logger = logging.getLogger("tests.latch")


def test_logs_the_first_failure_and_the_recovery_only(caplog: pytest.LogCaptureFixture) -> None:
    latch = FailureLatch(logger, "cannot save: %s", "saving recovered", action="save")
    caplog.set_level(logging.INFO, logger="tests.latch")
    assert latch.succeeded() is False  # nothing failed: nothing to say
    assert [latch.failed("down") for _ in range(3)] == [True, False, False]
    assert latch.failing
    assert latch.succeeded() is True
    assert latch.succeeded() is False
    assert [(r.levelname, r.getMessage(), r.action) for r in caplog.records] == [  # type: ignore[attr-defined]
        ("WARNING", "cannot save: down", "save_failing"),
        ("INFO", "saving recovered", "save_recovered"),
    ]
