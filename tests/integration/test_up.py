"""`watchkeeper up` as an operator runs it: a real process on the bundled example."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx


def test_up_imports_the_demo_and_stops_cleanly(tmp_path: Path) -> None:
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
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "stopped" in out
