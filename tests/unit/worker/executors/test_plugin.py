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
from watchkeeper.worker.executors.plugin import (
    DEFAULT_ENV,
    Outcomes,
    PluginCheck,
    plugin_outcome,
    resolve_program,
)


def result(
    stdout: bytes = b"",
    returncode: int | None = 0,
    stderr: bytes = b"",
    **kw: bool,
) -> ProcessResult:
    return ProcessResult(returncode=returncode, stdout=stdout, stderr=stderr, duration=0.5, **kw)


def read(res: ProcessResult, states: Outcomes | None = None) -> tuple[CheckState, str, str]:
    out = plugin_outcome(res, timeout=10, states=states)
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
    out = plugin_outcome(result(b"TEXT | a=1s;2;3\nlong\n", code), timeout=10)
    assert (out.state, out.output, out.long_output) == (state, "TEXT", "long")
    assert out.metrics == (Metric(label="a", value=1, uom="s", warn="2", crit="3"),)
    assert out.duration == 0.5


def test_exit_codes_outside_the_api_are_critical_as_in_nagios_core() -> None:
    assert read(result(b"hi\n", 7)) == (
        CheckState.CRITICAL,
        "(Return code of 7 is out of bounds) hi",
        "",
    )
    assert read(result(b"", 127))[:2] == (
        CheckState.CRITICAL,
        "(Return code of 127 is out of bounds. Check if plugin exists)",
    )
    assert read(result(b"", 126))[:2] == (
        CheckState.CRITICAL,
        "(Return code of 126 is out of bounds. Check if plugin is executable)",
    )
    assert read(result(b"", -signal.SIGSEGV))[:2] == (
        CheckState.CRITICAL,
        "(Check did not exit properly: killed by SIGSEGV)",
    )
    assert read(result(b"", None))[:2] == (
        CheckState.CRITICAL,
        "(Check did not exit properly: its status was lost)",
    )


@pytest.mark.parametrize("state", list(CheckState))
def test_the_out_of_bounds_state_is_a_setting(state: CheckState) -> None:
    chosen = Outcomes(out_of_bounds=state)
    assert read(result(b"x\n", 42), chosen)[0] is state
    assert read(result(b"x\n", 2), chosen)[0] is CheckState.CRITICAL  # in bounds: the code


def test_no_output_is_said_so() -> None:
    assert read(result(b"\n", 0))[:2] == (CheckState.OK, "(No output returned from plugin)")


def test_stderr_only_reads_as_in_nagios_core() -> None:
    assert read(result(b"", 2, b"boom\nwhere it went\n")) == (
        CheckState.CRITICAL,
        "(No output on stdout) stderr: boom",
        "where it went",
    )
    assert read(result(b"\n", 0, b"only this\n"))[:2] == (
        CheckState.OK,
        "(No output on stdout) stderr: only this",
    )


def test_stderr_joins_long_output_when_the_plugin_is_unknown_or_broke() -> None:
    assert read(result(b"UNKNOWN - bad\nmore\n", 3, b"usage: ...\n")) == (
        CheckState.UNKNOWN,
        "UNKNOWN - bad",
        "more\nusage: ...",
    )
    assert read(result(b"partial\n", 42, b"oops\n"))[2] == "oops"
    assert read(result(b"CRITICAL - x\n", 2, b"noise\n")) == (
        CheckState.CRITICAL,
        "CRITICAL - x",
        "",
    )


def test_a_timeout_is_critical_unless_set_otherwise() -> None:
    res = result(b"partial line\nmore", None, timed_out=True)
    out = plugin_outcome(res, timeout=2.5)
    assert out.state is CheckState.CRITICAL
    assert out.output == "(Check timed out after 2.50 seconds)"
    assert out.long_output == "partial line\nmore"
    assert out.metrics == ()


@pytest.mark.parametrize("state", list(CheckState))
def test_timeout_gives_the_configured_state(state: CheckState) -> None:
    res = result(b"", None, timed_out=True)
    assert plugin_outcome(res, timeout=1, states=Outcomes(timeout=state)).state is state


def test_outcomes_come_from_the_check() -> None:
    spec = PluginCheck(kind="plugin", command=["x"], timeout_state="UNKNOWN")
    assert Outcomes.of(spec) == Outcomes(timeout=CheckState.UNKNOWN)
    assert Outcomes.of(PluginCheck(kind="plugin", command=["x"])) == Outcomes()


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
