"""From a hard failure to its alarm and to its remediation dispatch, with 10,000 services.

    python bench/bench_alarms.py                  # 10,000 services, 10 failures, ~2.5 min
    python bench/bench_alarms.py --services 2000 --rounds 3 --warmup 15    # a quick look

A real `Manager` (the one ``watchkeeper up`` runs: engine, job server, embedded worker over
SSH, telemetry, alarms, notifier, remediation) runs ``--services`` tcp checks on a 60 s
interval against a local listener, plus one *victim* tcp check every second on a listener
process that the bench kills, round after round. The victim has ``max_attempts: 1`` (its
first failure is hard) and a remediation rule whose worker command action starts the
listener again, as a real restart would. For each round the bench reads from the store:

* **hard**: the state history's time of the victim's hard CRITICAL change;
* **alarm**: the alarm's ``opened_at`` (the book opens it in the engine turn that made the
  state hard, so this is 0 unless alarms lag; it is saved within a second);
* **dispatch**: the wall time the remediation service handed the action job to the job
  server (``EngineRunner.submit_action``, timed by the bench; the job row was written
  before that);

and prints alarm - hard and dispatch - hard, p50 and max over the rounds, and the time
until the alarm resolved (the action ran, the re-check was OK). Target: remediation
dispatched within 1 s of the hard state.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the repository: the tests' listener process

from tests.fixtures.listener import Service  # noqa: E402
from tests.fixtures.manager import running_manager  # noqa: E402

from watchkeeper import store  # noqa: E402
from watchkeeper.remediation import records as remediation_records  # noqa: E402
from watchkeeper.runtime import Manager  # noqa: E402
from watchkeeper.worker.executors import install_child_watcher  # noqa: E402

TARGET_DISPATCH = 1.0
#: Wall times at which action jobs for the victim reached `EngineRunner.submit_action`.
SENT: list[float] = []
VICTIM = "victim!port"


def document(services: int, port: int, victim: Service) -> dict[str, Any]:
    per_host = 100
    hosts = max(1, services // per_host)
    timing = {"interval": "60s", "retry_interval": "60s", "timeout": "5s"}
    return {
        "schema": "watchkeeper/v1",
        "zones": [{"name": "local"}],
        "hosts": [
            {"name": f"h{i:04d}", "address": "127.0.0.1", "zone": "local", "labels": {"b": "1"}}
            for i in range(hosts)
        ]
        + [{"name": "victim", "address": "127.0.0.1", "zone": "local"}],
        "services": [
            {"name": f"s{s:03d}", "hosts": {"labels": {"b": "1"}},
             "check": {"kind": "tcp", "port": port}} | timing
            for s in range(min(per_host, services))
        ]
        + [{"name": "port", "hosts": ["victim"], "interval": "1s", "retry_interval": "1s",
            "max_attempts": 1, "timeout": "2s", "check": {"kind": "tcp", "port": victim.port},
            # Failing on purpose every few seconds is flapping, which (rightly) holds
            # remediation; the bench measures the path, so it turns detection off here.
            "flapping": {"enabled": False}}],
        "remediations": [
            {"name": "restart-victim", "when": {"host": "victim", "service": "port"},
             "action": {"kind": "command", "command": victim.launch}, "cooldown": "0s",
             "max_attempts": 100, "window": "1h"},
        ],
    }  # fmt: skip


async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.close()


async def listen(port: int = 0) -> asyncio.Server:
    return await asyncio.start_server(accept, "127.0.0.1", port, reuse_address=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def until(condition: Any, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not await condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: {what} did not happen within {within:g}s")
        await asyncio.sleep(0.05)


async def victim_state(manager: Manager) -> str | None:
    runner = manager.runner
    status = runner.engine.statuses.get(VICTIM) if runner is not None else None
    return None if status is None or status.pending else status.state.name


async def open_alarm(manager: Manager) -> Any:
    found = await manager.stages.alarms.list_alarms(open_only=True, key=VICTIM)
    return found[0] if found else None


async def round_figures(manager: Manager, since: float) -> tuple[float, float, float] | None:
    """(hard, alarm, dispatch) epoch seconds of the episode that started after ``since``."""
    async with manager.db.session() as session:
        history = await store.list_state_history(session, check_key=VICTIM, limit=20)
    queue = manager.stages.remediation.queue
    jobs = await remediation_records.list_jobs(queue, target=VICTIM, limit=5)
    hard = [
        h.at.timestamp()
        for h in history
        if h.state == "CRITICAL" and h.hard_change and h.at.timestamp() >= since
    ]
    dispatched = [t for t in SENT if t >= since] if jobs else []
    alarm = await manager.stages.alarms.list_alarms(open_only=False, key=VICTIM, limit=1)
    if not hard or not dispatched or not alarm or alarm[0].opened_at < since:
        return None
    return min(hard), alarm[0].opened_at, min(dispatched)


async def main(args: argparse.Namespace) -> None:
    # The failed re-checks of the victim escalate by design; their warnings are not news here.
    logging.basicConfig(level=logging.ERROR)
    install_child_watcher()
    base = Path(tempfile.mkdtemp(prefix="wk-bench-alarms-"))
    farm = await listen()
    port = farm.sockets[0].getsockname()[1]
    victim = Service(base)
    victim.start()
    source = base / "doc.json"
    source.write_text(json.dumps(document(args.services, port, victim)))
    rows: list[tuple[float, float, float]] = []
    try:
        async with running_manager(
            source, base / "data", ready_within=60, database=args.database_url,
            poll_interval=3600,
        ) as manager:  # fmt: skip
            runner = manager.runner
            assert runner is not None
            submit = runner.submit_action

            async def timed(job: Any, done: Any) -> bool:
                SENT.append(time.time())
                return await submit(job, done)

            runner.submit_action = timed  # type: ignore[method-assign]
            checks = args.services + 1
            print(
                f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; {checks} checks "
                f"({args.services} tcp on 60 s, 1 victim on 1 s); warm-up {args.warmup:g} s",
                flush=True,
            )
            await until(lambda: _is(manager, "OK"), 120, "the victim's first OK")
            await asyncio.sleep(args.warmup)  # every service has run once: the load is steady
            for n in range(args.rounds):
                since = time.time()
                victim.stop()
                try:
                    await until(
                        lambda since=since: _dispatched(manager, since),
                        30,
                        f"round {n + 1} dispatch",
                    )
                except SystemExit:
                    if args.explain:
                        await explain(manager, since)
                    raise
                figures = await round_figures(manager, since)
                assert figures is not None
                hard, alarm, dispatch = figures
                await until(lambda: _resolved(manager), 60, f"round {n + 1} recovery")
                resolved = time.time()
                rows.append((alarm - hard, dispatch - hard, resolved - hard))
                print(
                    f"  round {n + 1}: alarm {1000 * (alarm - hard):7.1f} ms, "
                    f"dispatch {1000 * (dispatch - hard):7.1f} ms after the hard state; "
                    f"resolved after {resolved - hard:5.2f} s",
                    flush=True,
                )
                if args.explain and dispatch - hard > TARGET_DISPATCH:
                    await explain(manager, since)
            running = len(runner.engine.statuses)
            ran = sum(1 for s in runner.engine.statuses.values() if not s.pending)
    finally:
        farm.close()
        victim.stop()
        shutil.rmtree(base, ignore_errors=True)
    alarm_ms = sorted(1000 * a for a, _, _ in rows)
    dispatch_ms = sorted(1000 * d for _, d, _ in rows)
    resolved_s = sorted(r for _, _, r in rows)
    print(f"\n{running} checks loaded, {ran} with a result; {len(rows)} failures:")
    print(
        f"  hard state -> alarm opened:          p50 {statistics.median(alarm_ms):7.1f} ms, "
        f"max {alarm_ms[-1]:7.1f} ms"
    )
    print(
        f"  hard state -> remediation dispatched: p50 {statistics.median(dispatch_ms):7.1f} ms, "
        f"max {dispatch_ms[-1]:7.1f} ms"
    )
    print(
        f"  hard state -> alarm resolved:         p50 {statistics.median(resolved_s):7.2f} s,  "
        f"max {resolved_s[-1]:7.2f} s"
    )
    met = dispatch_ms[-1] / 1000 < TARGET_DISPATCH
    print(f"target: dispatched within {TARGET_DISPATCH:g} s: {'met' if met else 'MISSED'}")


async def explain(manager: Manager, since: float) -> None:
    """Print the remediation audit since ``since``: why a dispatch waited."""
    entries = await manager.stages.remediation.queue.list_audit(subject=VICTIM, limit=50)
    for entry in reversed(entries):
        if entry.at >= since - 5:
            print(f"    {entry.at - since:+8.3f}s {entry.event}: {entry.output[:100]}")


async def _is(manager: Manager, state: str) -> bool:
    return await victim_state(manager) == state


async def _dispatched(manager: Manager, since: float) -> bool:
    return await round_figures(manager, since) is not None


async def _resolved(manager: Manager) -> bool:
    return await victim_state(manager) == "OK" and await open_alarm(manager) is None


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument(
        "--warmup", type=float, default=65.0, help="seconds before the first failure"
    )
    parser.add_argument(
        "--explain", action="store_true", help="print the audit of a round that missed"
    )
    parser.add_argument("--database-url", help="PostgreSQL URL (default: SQLite in a temp dir)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse()))
