"""kill -9 of the manager at each step of a remediation job's life: the action runs once.

Real processes: ``watchkeeper manager`` on SQLite and one ``watchkeeper worker``. The target
check is CRITICAL while a flag file exists; the rule's action appends a line to a runs file
and removes the flag, so a second run would be one too many. The manager is killed with
SIGKILL when the job is

* **queued**: another rule's long action holds the only remediation slot
  (``--remediation-concurrency 1``), so the job cannot be dispatched;
* **dispatched**: handed to a worker, whose action has not acted yet (it sleeps first);
* **running**: the action is in its sleep, on the worker;
* **result in flight**: the action has run and the manager may not have its result yet;

then restarted on the same data directory, the worker redialling. However far the job got,
the runs file must end with exactly one line and the target OK.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest

from tests.fixtures.listener import free_port
from tests.waiting import wait_until

WK = [sys.executable, "-m", "watchkeeper"]
CHECK = "if [ -e {flag} ]; then echo 'CRITICAL - flag'; exit 2; fi; echo 'OK - no flag'"
ACTION = "sleep {before}; echo run >> {runs}; sleep {sleep}; rm -f {flag}"


@dataclass
class Site:
    tmp: Path
    sleep: float
    #: Another rule's long action holding the one remediation slot.
    busy: bool = False
    #: Seconds the action waits before it acts.
    before: float = 0
    jobs_port: int = field(default_factory=free_port)
    manager: subprocess.Popen[bytes] | None = None
    worker: subprocess.Popen[bytes] | None = None
    logs: list[IO[bytes]] = field(default_factory=list)

    def log(self, name: str) -> IO[bytes]:
        handle = (self.tmp / f"{name}.log").open("ab")
        self.logs.append(handle)
        return handle

    @property
    def data(self) -> Path:
        return self.tmp / "data"

    @property
    def flag(self) -> Path:
        return self.tmp / "flag"

    @property
    def runs(self) -> Path:
        return self.tmp / "runs"

    def write_document(self) -> None:
        fast = {"interval": "1s", "retry_interval": "1s", "max_attempts": 1, "timeout": "10s"}
        doc = {
            "schema": "watchkeeper/v1",
            "zones": [{"name": "local"}],
            "hosts": [{"name": "h", "address": "127.0.0.1", "zone": "local"}],
            "services": [
                {"name": "flag", "hosts": ["h"], **fast,
                 "check": {"kind": "plugin",
                           "command": ["/bin/sh", "-c", CHECK.format(flag=self.flag)]}},
            ],
            "actions": [
                {"name": "fix", "action": {"kind": "command", "command": [
                    "/bin/sh", "-c",
                    ACTION.format(before=self.before, runs=self.runs, sleep=self.sleep,
                                  flag=self.flag)]}},
            ],
            "remediations": [
                {"name": "fix-flag", "when": {"service": "flag", "state": "CRITICAL"},
                 "action": "fix", "max_attempts": 3, "window": "1h", "cooldown": "2s"},
            ],
        }  # fmt: skip
        if self.busy:
            doc["services"].append(
                {
                    "name": "busy",
                    "hosts": ["h"],
                    **fast,
                    "check": {
                        "kind": "plugin",
                        "command": ["/bin/sh", "-c", "echo 'CRITICAL - busy'; exit 2"],
                    },
                }
            )
            doc["remediations"].append(
                {
                    "name": "hold-the-slot",
                    "when": {"service": "busy", "state": "CRITICAL"},
                    "action": {"kind": "command", "command": ["sleep", "20"]},
                    "max_attempts": 1,
                    "window": "1h",
                    "cooldown": "1h",
                }
            )
        (self.tmp / "doc.json").write_text(json.dumps(doc))

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [*WK, *args, "--data-dir", str(self.data)],
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        return done.stdout

    def enrol(self) -> None:
        key = self.tmp / "worker"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        self.cli("worker-key", "add", "w", "--zones", "local", "--public-key", f"{key}.pub")

    def start_manager(self, concurrency: int = 1) -> None:
        self.manager = subprocess.Popen(
            [*WK, "manager", "--source", str(self.tmp / "doc.json"), "--data-dir",
             str(self.data), "--http", "127.0.0.1:0", "--jobs", f"127.0.0.1:{self.jobs_port}",
             "--poll-interval", "1", "--remediation-concurrency", str(concurrency)],
            stdout=subprocess.DEVNULL, stderr=self.log("manager"),
        )  # fmt: skip

    def start_worker(self) -> None:
        fingerprint = self.cli("keys").strip()
        self.worker = subprocess.Popen(
            [*WK, "worker", "--manager", f"127.0.0.1:{self.jobs_port}", "--key",
             str(self.tmp / "worker"), "--manager-fingerprint", fingerprint, "--name", "w",
             "--concurrency", "4"],
            stdout=subprocess.DEVNULL, stderr=self.log("worker"),
        )  # fmt: skip

    def query(self, sql: str) -> list[tuple[object, ...]]:
        db = self.data / "watchkeeper.db"
        if not db.exists():
            return []
        try:
            with sqlite3.connect(db, timeout=5) as conn:
                return list(conn.execute(sql))
        except sqlite3.OperationalError:  # not migrated yet
            return []

    def job_states(self, rule: str = "fix-flag") -> list[str]:
        rows = self.query(
            f"SELECT state FROM jobs WHERE queue = 'remediation' AND owner = '{rule}' ORDER BY id"
        )
        return [str(state) for (state,) in rows]

    def target_state(self) -> str | None:
        rows = self.query("SELECT state FROM check_states WHERE check_key = 'h!flag'")
        return str(rows[0][0]) if rows else None

    def run_count(self) -> int:
        return len(self.runs.read_text().splitlines()) if self.runs.exists() else 0

    def audit(self) -> list[str]:
        rows = self.query(
            "SELECT event FROM job_audit WHERE queue = 'remediation' AND owner = 'fix-flag' "
            "ORDER BY id"
        )
        return [str(event) for (event,) in rows]

    def kill_manager(self) -> None:
        assert self.manager is not None
        self.manager.send_signal(signal.SIGKILL)
        self.manager.wait(timeout=10)

    def stop_all(self) -> None:
        for proc in (self.manager, self.worker):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        for handle in self.logs:
            handle.close()


#: step: the action's sleep, the site's options, and when the manager is killed.
STEPS: dict[str, tuple[float, dict[str, Any], Callable[[Site], bool]]] = {
    "queued": (0, {"busy": True}, lambda s: s.job_states() == ["queued"]),
    "dispatched": (
        0,
        {"before": 2},
        lambda s: s.job_states() == ["dispatched"] and s.run_count() == 0,
    ),
    "running": (3, {}, lambda s: s.run_count() == 1 and s.job_states() == ["dispatched"]),
    "result in flight": (0.2, {}, lambda s: s.run_count() == 1),
}


@pytest.fixture
def site(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Site]:
    sleep, options, _ = STEPS[request.param]
    made = Site(tmp_path, sleep=sleep, **options)
    made.write_document()
    made.enrol()
    try:
        yield made
    finally:
        made.stop_all()


@pytest.mark.parametrize("site", list(STEPS), indirect=True)
async def test_a_kill_at_any_step_of_a_job_runs_its_action_exactly_once(
    site: Site, request: pytest.FixtureRequest
) -> None:
    step = request.node.callspec.params["site"]
    reached = STEPS[step][2]
    site.start_manager()
    site.start_worker()
    await wait_until(lambda: site.target_state() == "OK", what="the target checked OK", within=60)
    if site.busy:
        await wait_until(
            lambda: site.job_states("hold-the-slot") == ["dispatched"],
            what="the slot taken",
            within=60,
        )
    site.flag.touch()
    await wait_until(lambda: reached(site), what=f"the job {step}", within=60)
    at_kill = site.job_states()
    site.kill_manager()
    # The restored hold of the slot stays in flight until its deadline (65 s): a second
    # slot lets the queued job go now rather than after it.
    site.start_manager(concurrency=2 if site.busy else 1)
    await wait_until(
        lambda: site.target_state() == "OK" and not site.flag.exists()
        and bool(site.job_states())
        and site.job_states()[-1] in ("succeeded", "interrupted", "skipped"),
        what="the restarted manager settled the job and the target",
        within=150,  # a restored job's action may run until its deadline (65 s)
    )  # fmt: skip
    runs, states, audit = site.run_count(), site.job_states(), site.audit()
    print(f"| {step} | {at_kill} | {runs} | {states} | {' > '.join(audit)} |")
    assert runs == 1, (step, states, audit)
