"""A real `Manager`, counted from the outside: the manager process of ``bench_e2e.py``.

    python bench/e2e_manager.py --source doc.json --data-dir DIR [--database URL] --lags F

Runs the same `Manager` as ``watchkeeper manager`` (intake, source poller, engine runner,
SSH job server, HTTP API), logging at INFO like it, and wraps three public seams of the
running objects, changing nothing in ``src/``:

* ``Engine.tick``: remembers each `DispatchDecision`'s planned time by token;
* ``JobServer.submit``: when the runner hands a job over, records ``now - planned`` (the
  scheduling lag) and whether a worker took it;
* ``Engine.record_result``: counts the results the engine accepted, OK and otherwise;
* ``store.save_check_states``: counts the status rows saved and the time the saves took.

Prints one JSON line on standard output per event: ``ready`` (with the job server's port),
``stats`` every ``--every`` seconds (cumulative counters), and ``final`` after the last
flush once SIGTERM stopped it. The lags, as (wall time, lag) pairs of doubles, go to
``--lags`` at the end.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import cProfile
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from watchkeeper import store
from watchkeeper.engine import CheckStatus, Engine, Step
from watchkeeper.engine.reachability import HostStateChange
from watchkeeper.engine.statemachine import StateChange
from watchkeeper.manager.runner import EngineRunner
from watchkeeper.results import CheckOutcome, CheckState
from watchkeeper.runtime import Manager, ManagerSettings
from watchkeeper.transport.protocol import Job


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, "t": time.time(), **fields}), flush=True)


class Probe:
    """Counters and lags of one manager; `attach` wraps the runner's engine and server."""

    def __init__(self) -> None:
        self.runner: EngineRunner | None = None
        self.planned: dict[int, float] = {}
        #: (time handed to the job server, lag) pairs, flat.
        self.lags = array.array("d")
        self.sent = 0
        self.refused = 0
        self.ok = 0
        self.other = 0
        self.saved_rows = 0
        self.flushes = 0
        self.flush_seconds = 0.0
        self.longest_flush = 0.0

    def attach(self, runner: EngineRunner, tick_interval: float | None = None) -> None:
        self.runner = runner
        if tick_interval is not None:  # a diagnostic: how much of a run is the runner's wait
            setattr(runner, "_tick_interval", tick_interval)  # noqa: B010
        engine: Engine = runner.engine
        tick = engine.tick
        record = engine.record_result
        submit = runner.server.submit

        def timed_tick(now: float, *, limit: int | None = None) -> Step:
            step = tick(now, limit=limit)
            for decision in step.dispatch:
                self.planned[decision.token] = decision.planned_at
            return step

        async def timed_submit(job: Job) -> bool:
            taken = await submit(job)
            planned = self.planned.pop(job.token, None)
            if planned is not None:
                now = time.time()
                self.lags.append(now)
                self.lags.append(now - planned)
            if taken:
                self.sent += 1
            else:
                self.refused += 1
            return taken

        def counted(key: str, token: int, outcome: CheckOutcome, now: float) -> Step:
            step = record(key, token, outcome, now)
            if step:
                if outcome.state is CheckState.OK:
                    self.ok += 1
                else:
                    self.other += 1
            return step

        # Instance attributes shadow the methods: the runner looks them up on every call.
        setattr(engine, "tick", timed_tick)  # noqa: B010
        setattr(engine, "record_result", counted)  # noqa: B010
        setattr(runner.server, "submit", timed_submit)  # noqa: B010

    def wrap_store(self) -> None:
        """Count what the runner's batched saves write (it calls ``store.save_check_states``)."""
        save = store.save_check_states

        async def counted_save(
            db: store.Database,
            statuses: Sequence[CheckStatus],
            changes: Sequence[StateChange | HostStateChange] = (),
        ) -> int:
            started = time.perf_counter()
            rows = await save(db, statuses, changes)
            took = time.perf_counter() - started
            self.saved_rows += rows
            self.flushes += 1
            self.flush_seconds += took
            self.longest_flush = max(self.longest_flush, took)
            return rows

        setattr(store, "save_check_states", counted_save)  # noqa: B010

    def counters(self) -> dict[str, Any]:
        runner = self.runner
        workers = len(runner.server.workers()) if runner is not None else 0
        return {
            "workers": workers,
            "checks": len(runner.engine.scheduler) if runner is not None else 0,
            "sent": self.sent,
            "refused": self.refused,
            "ok": self.ok,
            "other": self.other,
            "saved_rows": self.saved_rows,
            "flushes": self.flushes,
            "flush_seconds": round(self.flush_seconds, 4),
            "longest_flush": round(self.longest_flush, 4),
            "cpu": round(time.process_time(), 3),
        }


async def report(probe: Probe, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        emit("stats", **probe.counters())


async def main(args: argparse.Namespace) -> Probe:
    settings = ManagerSettings(
        source=args.source,
        data_dir=Path(args.data_dir),
        database=args.database,
        http_port=0,
        jobs_port=0,
        poll_interval=3600.0,
    )
    manager = Manager(settings)
    probe = Probe()
    probe.wrap_store()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, manager.stop)
    reporter: asyncio.Task[None] | None = None

    async def started() -> None:
        nonlocal reporter
        assert manager.runner is not None
        probe.attach(manager.runner, args.tick)
        emit("ready", jobs_port=manager.jobs_port, pid=os.getpid())
        reporter = asyncio.create_task(report(probe, args.every))

    profile = cProfile.Profile() if args.profile else None
    if profile is not None:
        profile.enable()
    try:
        await manager.run(started)
    finally:
        if profile is not None:
            profile.disable()
            profile.dump_stats(args.profile)
        if reporter is not None:
            reporter.cancel()
    return probe


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--database", default=None)
    parser.add_argument("--lags", required=True, help="file for the (time, lag) pairs")
    parser.add_argument("--every", type=float, default=1.0, help="seconds between stats lines")
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--tick", type=float, help="diagnostic: the runner's tick interval")
    parser.add_argument("--profile", help="write cProfile statistics of the run to this file")
    arguments = parser.parse_args()
    logging.basicConfig(
        level=getattr(logging, arguments.log_level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("asyncssh").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    done = asyncio.run(main(arguments))
    Path(arguments.lags).write_bytes(done.lags.tobytes())
    emit("final", **done.counters())
