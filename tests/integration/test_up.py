"""`watchkeeper up` as an operator runs it: a real process on the bundled example."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx

DEMO_FLAG = Path("/tmp/watchkeeper-demo-fail")


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

        # demo-flag runs every 10 s (its first run within 10 s of the import): poll the
        # store the process writes, bounded, for the state the flag file implies.
        expected = "CRITICAL" if DEMO_FLAG.exists() else "OK"
        db = tmp_path / "data" / "watchkeeper.db"
        deadline = time.monotonic() + 30
        # The API check follows the port ``up`` really bound (0 here), not the file's 8470.
        wanted = {"localhost!demo-flag": expected, "localhost!watchkeeper-api": "OK"}
        while (got := {key: saved_state(db, key) for key in wanted}) != wanted:
            assert time.monotonic() < deadline, got
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "stopped" in out
    summaries = re.findall(r"6 checks: .*", "".join(seen) + out)
    assert summaries, out
    assert any(re.search(r"\b[1-6] OK\b", line) for line in summaries), summaries
