"""How a finished plugin is read (pure), PATH lookup, and the child watcher helper.

Real processes (check_dummy, timeouts, process groups) are in
tests/integration/test_executors.py.
"""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from watchkeeper.results import CheckState, Metric
from watchkeeper.worker.executors import PluginExecutor, ProcessResult, install_child_watcher
from watchkeeper.worker.executors.plugin import DEFAULT_ENV, plugin_outcome, resolve_program


def result(
    stdout: bytes = b"",
    returncode: int | None = 0,
    stderr: bytes = b"",
    **kw: bool,
) -> ProcessResult:
    return ProcessResult(returncode=returncode, stdout=stdout, stderr=stderr, duration=0.5, **kw)


def read(res: ProcessResult, timeout_state: str = "UNKNOWN") -> tuple[CheckState, str, str]:
    out = plugin_outcome(res, timeout=10, timeout_state=timeout_state)
    return out.state, out.output, out.long_output


@pytest.mark.parametrize(
    ("code", "state"),
    [
        (0, CheckState.OK),
        (1, CheckState.WARNING),
        (2, CheckState.CRITICAL),
        (3, CheckState.UNKNOWN),
    ],
)
def test_exit_code_is_the_state(code: int, state: CheckState) -> None:
    out = plugin_outcome(
        result(b"TEXT | a=1s;2;3\nlong\n", code), timeout=10, timeout_state="UNKNOWN"
    )
    assert (out.state, out.output, out.long_output) == (state, "TEXT", "long")
    assert out.metrics == (Metric(label="a", value=1, uom="s", warn="2", crit="3"),)
    assert out.duration == 0.5


def test_exit_codes_outside_the_api_are_unknown_and_said_so() -> None:
    assert read(result(b"hi\n", 7)) == (
        CheckState.UNKNOWN,
        "(Return code of 7 is out of bounds) hi",
        "",
    )
    assert read(result(b"", 127, b"sh: 1: check_x: not found\n"))[:2] == (
        CheckState.UNKNOWN,
        "(Return code of 127 is out of bounds - plugin may be missing)",
    )
    assert read(result(b"", -signal.SIGSEGV))[:2] == (
        CheckState.UNKNOWN,
        "(Plugin killed by SIGSEGV)",
    )
    assert read(result(b"", None))[:2] == (CheckState.UNKNOWN, "(Exit status lost)")


def test_no_output_is_said_so() -> None:
    assert read(result(b"\n", 0))[:2] == (CheckState.OK, "(No output returned from plugin)")


def test_stderr_joins_long_output_on_unknown_or_empty_stdout() -> None:
    assert read(result(b"UNKNOWN - bad\nmore\n", 3, b"usage: ...\n")) == (
        CheckState.UNKNOWN,
        "UNKNOWN - bad",
        "more\nusage: ...",
    )
    assert read(result(b"", 2, b"boom\n")) == (
        CheckState.CRITICAL,
        "(No output returned from plugin)",
        "boom",
    )
    assert read(result(b"CRITICAL - x\n", 2, b"noise\n")) == (
        CheckState.CRITICAL,
        "CRITICAL - x",
        "",
    )


@pytest.mark.parametrize("state", ["UNKNOWN", "CRITICAL"])
def test_timeout_gives_the_configured_state(state: str) -> None:
    res = result(b"partial line\nmore", None, timed_out=True)
    out = plugin_outcome(res, timeout=2.5, timeout_state=state)
    assert out.state is CheckState[state]
    assert out.output == "(Check timed out after 2.5s)"
    assert out.long_output == "partial line\nmore"
    assert out.metrics == ()


def test_truncation_is_noted() -> None:
    assert read(result(b"OK\n", 0, truncated=True))[2] == "\n(output truncated)"


def test_resolve_program_searches_the_childs_path(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    (first / "plug").write_text("not executable")
    (second / "plug").write_text("#!/bin/sh\n")
    (second / "plug").chmod(stat.S_IRWXU)
    path = f"{first}:{second}"
    assert resolve_program("plug", path) == str(second / "plug")
    assert resolve_program("/abs/plug", path) == "/abs/plug"
    assert resolve_program("./plug", path) == "./plug"
    (second / "plug").unlink()
    assert resolve_program("plug", path) == str(first / "plug")  # so the spawn says EACCES
    with pytest.raises(FileNotFoundError):
        resolve_program("nothing-here", path)


def test_default_environment_is_minimal() -> None:
    assert set(DEFAULT_ENV) == {"PATH", "LANG", "LC_ALL"}
    assert DEFAULT_ENV["PATH"].startswith("/usr/lib/nagios/plugins:")


async def test_invalid_spec_is_unknown() -> None:
    out = await PluginExecutor().run({"kind": "plugin", "command": []}, address="x", timeout=1)
    assert out.state is CheckState.UNKNOWN
    assert out.output.startswith("PLUGIN UNKNOWN - invalid check: command")


@pytest.fixture
def restore_child_watcher() -> Iterator[None]:
    if sys.version_info >= (3, 12):
        pytest.skip("Python 3.12+ picks its own child watcher")
    previous = asyncio.get_child_watcher()
    yield
    asyncio.set_child_watcher(previous)


@pytest.mark.skipif(sys.platform != "linux", reason="pidfd is Linux-only")
async def test_install_child_watcher_uses_pidfd(restore_child_watcher: None) -> None:
    assert install_child_watcher() == "PidfdChildWatcher"
    assert install_child_watcher() == "PidfdChildWatcher"  # idempotent
    process = await asyncio.create_subprocess_exec(
        "/bin/sh", "-c", "exit 3", stdin=subprocess.DEVNULL, env={"PATH": os.defpath}
    )
    assert await process.wait() == 3
