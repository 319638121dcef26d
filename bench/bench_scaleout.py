"""Scale-out: checks per second of one manager with 1, 2 and 4 worker processes of a zone.

    python bench/bench_scaleout.py                          # 1 2 4 workers, 30 s windows
    python bench/bench_scaleout.py --workers 1 2 --window 10
    python bench/bench_scaleout.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test

The load is plugin-bound on purpose, so a worker's slots are the limit and adding workers
should add throughput: ``--checks`` checks (default 2,000) on a 1 s interval, of which a
share (``--dummy-share``) runs ``check_dummy 0 ok`` and the rest ``/bin/sleep --sleep``
(50 ms). Each worker runs at most ``--concurrency`` (8) at once, so one worker tops out
near 8 / 50 ms = 160 checks/s and the rest of the checks wait at the job server, well
within their 60 s timeout. The offered load (2,000/s) is above what 4 workers carry.

The system is `bench_e2e.system`'s: the manager is the real `Manager` that ``watchkeeper
manager`` runs, in its own process (``bench/e2e_manager.py``, counted at public seams,
since the manager has no results counter of its own), on SQLite or a scratch PostgreSQL
database; the workers are ``watchkeeper worker`` processes with keys enrolled as
``watchkeeper worker-key add`` does, the manager's fingerprint pinned. Per run, after a
warm-up, over ``--window`` seconds: OK results per second as the manager's engine
accepted them, refusals (jobs no worker could take), and CPU in cores of the manager, of
all workers together (with the plugins they ran) and of the whole machine.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_e2e import ZONE, at, cpu_seconds, machine_busy, system  # noqa: E402
from bench_executors import CHECK_DUMMY  # noqa: E402

SERVICES_PER_HOST = 20


@dataclass(frozen=True, slots=True, kw_only=True)
class Load:
    checks: int
    dummy_share: float
    sleep: float
    interval: str
    timeout: str


def document(load: Load) -> tuple[dict[str, Any], int]:
    """``load.checks`` checks as hosts x 20 services; the first services run check_dummy."""
    hosts = math.ceil(load.checks / SERVICES_PER_HOST)
    dummies = round(SERVICES_PER_HOST * load.dummy_share)
    timing = {"interval": load.interval, "retry_interval": load.interval,
              "timeout": load.timeout, "max_attempts": 1}  # fmt: skip

    def command(service: int) -> list[str]:
        if service < dummies:
            return [CHECK_DUMMY, "0", "ok"]
        return ["/bin/sleep", f"{load.sleep:g}"]

    return {
        "schema": "watchkeeper/v1",
        "zones": [{"name": ZONE}],
        "hosts": [
            {"name": f"h{i:05d}", "address": "127.0.0.1", "zone": ZONE, "labels": {"b": "1"}}
            for i in range(hosts)
        ],
        "services": [
            {"name": f"s{s:03d}", "hosts": {"labels": {"b": "1"}},
             "check": {"kind": "plugin", "command": command(s)}} | timing
            for s in range(SERVICES_PER_HOST)
        ],
    }, hosts * SERVICES_PER_HOST  # fmt: skip


async def measure(workers: int, load: Load, args: argparse.Namespace, base: Path) -> dict[str, Any]:
    """One run: ``workers`` worker processes; rates and CPU over the window."""
    async with system(
        "scaleout", load.checks, load.interval, workers=workers, concurrency=args.concurrency,
        port=0, base=base, admin_url=args.database_url, prepared=document(load),
    ) as (manager, running, exact):  # fmt: skip
        await manager.until("a first result", lambda: manager.stats[-1]["ok"] > 0, 60)
        await asyncio.sleep(args.warmup)
        pids = {"manager": manager.process.pid} | {f"w{i}": w.pid for i, w in enumerate(running)}
        cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
        machine0, t0 = machine_busy(), time.time()
        await asyncio.sleep(args.window)
        cpu1 = {name: cpu_seconds(pid) for name, pid in pids.items()}
        machine1, t1 = machine_busy(), time.time()
        await manager.until("the window's stats", lambda: manager.stats[-1]["t"] >= t1, 10)
    first, last = at(manager.stats, t0), at(manager.stats, t1)
    seconds = last["t"] - first["t"]
    wall = t1 - t0
    return {
        "workers": workers,
        "checks": exact,
        "rate": (last["ok"] - first["ok"]) / seconds,
        "other": (last["other"] - first["other"]) / seconds,
        "refused": (last["refused"] - first["refused"]) / seconds,
        "manager_cpu": (cpu1["manager"] - cpu0["manager"]) / wall,
        "worker_cpu": sum(cpu1[n] - cpu0[n] for n in cpu1 if n != "manager") / wall,
        "machine_cpu": (machine1[0] - machine0[0]) / (machine1[1] - machine0[1]) * CPUS,
    }


CPUS = os.cpu_count() or 1


def table(runs: list[dict[str, Any]], args: argparse.Namespace) -> str:
    # Were check_dummy and everything else free: the slots over the sleeps alone.
    ceiling = args.concurrency / ((1 - args.dummy_share) * args.sleep)
    base = runs[0]["rate"] if runs and runs[0]["workers"] == 1 else None
    lines = [
        "workers  checks/s  x1-worker  slot-ceiling  refused/s  not-OK/s  "
        "CPU manager  CPU workers  CPU machine",
    ]
    for run in runs:
        scale = f"{run['rate'] / base:9.2f}" if base else f"{'-':>9}"
        lines.append(
            f"{run['workers']:7d}  {run['rate']:8.0f}  {scale}  "
            f"{ceiling * run['workers']:12.0f}  {run['refused']:9.1f}  {run['other']:8.1f}  "
            f"{run['manager_cpu']:11.2f}  {run['worker_cpu']:11.2f}  "
            f"{run['machine_cpu']:5.2f} of {CPUS}"
        )
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> None:
    load = Load(
        checks=args.checks, dummy_share=args.dummy_share, sleep=args.sleep,
        interval=args.interval, timeout=args.timeout,
    )  # fmt: skip
    print(
        f"python {sys.version.split()[0]}, {CPUS} CPUs, load {os.getloadavg()[0]:.2f}; "
        f"{load.checks} plugin checks every {load.interval} ({load.dummy_share:.0%} "
        f"check_dummy, the rest sleep {load.sleep:g}s); per worker --concurrency "
        f"{args.concurrency}; {'PostgreSQL' if args.database_url else 'SQLite'}; "
        f"warm-up {args.warmup:g}s, window {args.window:g}s",
        flush=True,
    )
    base = Path(tempfile.mkdtemp(prefix="wk-bench-scaleout-"))
    runs = []
    try:
        for workers in args.workers:
            runs.append(await measure(workers, load, args, base))
            print(f"  {workers} worker(s): {runs[-1]['rate']:.0f} OK/s", file=sys.stderr)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(table(runs, args))
    print(
        "slot-ceiling: workers x concurrency / (sleeping share x sleep), what the slots "
        "would carry if nothing but the sleeps took time; x1-worker: checks/s over the "
        "1-worker run's; CPU in cores over the window (workers: all of them, with the "
        "plugins they ran; machine: everything on it, other users' work included)."
    )


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--checks", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8, help="per worker")
    parser.add_argument("--sleep", type=float, default=0.05, help="seconds a slow check sleeps")
    parser.add_argument("--dummy-share", type=float, default=0.25,
                        help="share of the checks that run check_dummy instead")  # fmt: skip
    parser.add_argument("--interval", default="1s")
    parser.add_argument("--timeout", default="60s", help="a check's timeout (its wait too)")
    parser.add_argument("--warmup", type=float, default=8.0, help="seconds before a window")
    parser.add_argument("--window", type=float, default=30.0, help="seconds measured")
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL URL to create a scratch database from (default: SQLite)",
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse()))
