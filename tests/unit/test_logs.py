"""One log format per reader, NOTICE between INFO and WARNING, the console always heard."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator

import pytest

from watchkeeper import logs


@pytest.fixture(autouse=True)
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    quiet = {name: logging.getLogger(name).level for name in logs.QUIET_LIBRARIES}
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    for name, old in quiet.items():
        logging.getLogger(name).setLevel(old)


def test_the_console_style_is_a_time_and_the_message_with_the_level_from_warning_up() -> None:
    out = io.StringIO()
    logs.configure(logs.NOTICE, "console", stream=out)
    logging.getLogger("watchkeeper.x").info("not shown at NOTICE")
    logging.getLogger("watchkeeper.x").log(logs.NOTICE, "zone dmz has a worker again")
    logging.getLogger("uvicorn.error").warning("port busy")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert re.fullmatch(r"\d\d:\d\d:\d\d zone dmz has a worker again", lines[0])
    assert re.fullmatch(r"\d\d:\d\d:\d\d WARNING port busy", lines[1])


def test_the_daemon_style_names_date_level_and_logger_for_every_library() -> None:
    out = io.StringIO()
    logs.configure(logging.INFO, "daemon", stream=out)
    logging.getLogger("watchkeeper.transport.server").info("listening")
    logging.getLogger("asyncssh").info("per-connection chatter")  # quieted to WARNING
    logging.getLogger("uvicorn.error").error("boom")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"
    assert re.fullmatch(stamp + r" INFO watchkeeper.transport.server: listening", lines[0])
    assert re.fullmatch(stamp + r" ERROR uvicorn.error: boom", lines[1])


def test_what_the_operator_is_told_is_shown_at_any_level_and_configure_does_not_double() -> None:
    out = io.StringIO()
    logs.configure(logging.ERROR, "console", stream=out)
    logs.configure(logging.ERROR, "console", stream=out)
    logs.say("log in at http://127.0.0.1:8080/")
    logging.getLogger("watchkeeper.x").warning("hidden at ERROR")
    (line,) = out.getvalue().splitlines()
    assert line.endswith(" log in at http://127.0.0.1:8080/")


def test_levels_parse_by_name_notice_included() -> None:
    assert logs.parse_level("notice") == logs.NOTICE == 25
    assert logs.parse_level("DEBUG") == logging.DEBUG
    assert logging.getLevelName(logs.NOTICE) == "NOTICE"
    with pytest.raises(ValueError, match="not a log level: 'loud'"):
        logs.parse_level("loud")
