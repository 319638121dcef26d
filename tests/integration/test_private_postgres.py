"""The private PostgreSQL cluster `scripts/test` starts on a machine where none answers."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import psycopg

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "private-postgres"


def test_a_private_cluster_serves_the_test_database_and_stops_by_its_pid() -> None:
    started = subprocess.run(
        [str(SCRIPT), "start"], capture_output=True, text=True, timeout=120, check=False
    )
    assert started.returncode == 0, started.stderr
    url, pid, directory = started.stdout.split()
    try:
        assert url.startswith("postgresql+psycopg://postgres@127.0.0.1:") and url.endswith("/test")
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        assert port != 5432  # never the machine's own server
        with psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="test") as conn:
            row = conn.execute("SELECT current_database(), pg_backend_pid() > 0").fetchone()
            assert row == ("test", True)
            listen = conn.execute("SHOW listen_addresses").fetchone()
            assert listen == ("127.0.0.1",)
        os.kill(int(pid), 0)  # the PID it printed is the server's
    finally:
        stopped = subprocess.run(
            [str(SCRIPT), "stop", directory], capture_output=True, text=True, timeout=60
        )
    assert stopped.returncode == 0, stopped.stderr
    assert not Path(directory).exists()
    assert not Path(f"/proc/{pid}").exists()
