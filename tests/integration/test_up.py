"""`watchkeeper up` as an operator runs it: a real process on the bundled example."""

from __future__ import annotations

import os
import pwd
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

DEMO_FLAG = Path(f"/tmp/watchkeeper-demo-fail-{pwd.getpwuid(os.getuid()).pw_name}")


def saved_state(db: Path, key: str) -> str | None:
    """The state the running ``up`` saved for ``key``, read as another process would."""
    if not db.exists():
        return None
    with sqlite3.connect(db, timeout=5) as conn:
        try:
            row = conn.execute("SELECT state FROM check_states WHERE check_key = ?", (key,))
        except sqlite3.OperationalError:  # not migrated yet
            return None
        found = row.fetchone()
    return None if found is None else str(found[0])


def test_up_imports_the_demo_runs_its_checks_and_stops_cleanly(tmp_path: Path) -> None:
    env = {**os.environ, "WATCHKEEPER_LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "watchkeeper",
            "up",
            "--data-dir",
            str(tmp_path / "data"),
            "--http",
            "127.0.0.1:0",
            "--jobs",
            "127.0.0.1:0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        assert proc.stdout is not None
        url = None
        seen: list[str] = []
        for line in proc.stdout:  # bounded by the process: it prints these lines at start
            seen.append(line)
            match = re.search(r"API: (http://127\.0\.0\.1:\d+)/api/v1", line)
            if match:
                url = match.group(1)
            if "imported configuration version 1" in line and url:
                break
        assert url is not None, "".join(seen)
        token = (tmp_path / "data" / "api-token").read_text().strip()
        current = httpx.get(
            f"{url}/api/v1/config/current", headers={"Authorization": f"Bearer {token}"}
        )
        assert current.status_code == 200
        assert current.json()["summary"]["checks"]["added"] == 6
        assert httpx.get(f"{url}/api/v1/config/current").status_code == 401

        # demo-flag runs every 10 s, watchkeeper-api every 30 s, each first at its phase on
        # the wall clock, so anywhere in its first interval: poll the store the process
        # writes, bounded by the longer interval and a margin, for the states expected.
        expected = "CRITICAL" if DEMO_FLAG.exists() else "OK"
        db = tmp_path / "data" / "watchkeeper.db"
        deadline = time.monotonic() + 30 + 20
        # The API check follows the port ``up`` really bound (0 here), not the file's 8470.
        wanted = {"localhost!demo-flag": expected, "localhost!watchkeeper-api": "OK"}
        while (got := {key: saved_state(db, key) for key in wanted}) != wanted:
            assert time.monotonic() < deadline, got
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.2)
        # A HEALTHCHECK beside it: the status file names the web address; the API answers.
        health = _health(tmp_path / "data")
        assert (health.returncode, health.stdout) == (0, f"healthy: manager at {url} healthy\n")
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "stopped" in out
    health = _health(tmp_path / "data")
    assert health.returncode == 1
    assert health.stdout.startswith(f"unhealthy: manager at {url} does not answer"), health.stdout
    # One format for every line, the manager's, uvicorn's and the libraries' alike.
    console = ("".join(seen) + out).splitlines()
    odd = [line for line in console if not re.match(r"\d\d:\d\d:\d\d \S", line)]
    assert not odd and err == "", (odd, err)
    summaries = re.findall(r"6 checks: .*", "".join(seen) + out)
    assert summaries, out
    assert any(re.search(r"\b[1-6] OK\b", line) for line in summaries), summaries


def _health(data: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "watchkeeper", "health", "--data-dir", str(data)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip


def _up(data: Path, cwd: Path, http: str, jobs: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "watchkeeper", "up", "--data-dir", str(data), "--http", http,
         "--jobs", jobs],
        capture_output=True, text=True, cwd=cwd, timeout=60,
        env={**os.environ, "WATCHKEEPER_LOG_LEVEL": "WARNING"},
    )  # fmt: skip


def test_a_busy_port_costs_the_first_admin_nothing(tmp_path: Path) -> None:
    """Both ports are taken before the admin exists: its password is not lost."""
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        for http, jobs in (
            (f"127.0.0.1:{port}", "127.0.0.1:0"),
            ("127.0.0.1:0", f"127.0.0.1:{port}"),
        ):
            done = _up(tmp_path / "data", tmp_path, http, jobs)
            assert done.returncode == 2, done.stderr
            assert "cannot listen" in done.stderr
            assert "password" not in done.stdout
    db = tmp_path / "data" / "watchkeeper.db"
    with sqlite3.connect(db) as conn:
        try:
            users = conn.execute("SELECT count(*) FROM users").fetchone()[0]
        except sqlite3.OperationalError:
            users = 0  # not even migrated
    assert users == 0


def _serving(data: Path, cwd: Path, while_up: Callable[[], object]) -> tuple[str, str, object]:
    """Run ``up`` on ``data`` until it prints its login line, call ``while_up``, stop it:
    what it printed on stdout and stderr, and what ``while_up`` returned."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "watchkeeper", "up", "--data-dir", str(data), "--http",
         "127.0.0.1:0", "--jobs", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd,
        env={**os.environ, "WATCHKEEPER_LOG_LEVEL": "WARNING"},
    )  # fmt: skip
    told = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            told.append(line)
            if "log in at" in line:
                break
        seen = while_up()
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    return "".join(told) + out, err, seen


def test_the_data_directory_and_its_files_are_private(tmp_path: Path) -> None:
    data = tmp_path / "data"

    def modes() -> dict[str, str]:
        return {p.name: oct(p.stat().st_mode & 0o777) for p in [data, *data.iterdir()]}

    _, _, seen = _serving(data, tmp_path, modes)
    assert isinstance(seen, dict)
    assert seen.pop("data") == "0o700"
    assert {"watchkeeper.db", "watchkeeper.db-wal", "watchkeeper.db-shm"} <= seen.keys()
    assert set(seen.values()) == {"0o600"}, seen
    # An existing directory others can read is kept as it is, and said so at start.
    data.chmod(0o755)
    (data / "watchkeeper.db").chmod(0o644)
    console, err, _ = _serving(data, tmp_path, lambda: None)  # `up` logs to stdout
    assert "readable by other users" in console and "(mode 0755)" in console
    assert "(mode 0644)" in console and err == ""
