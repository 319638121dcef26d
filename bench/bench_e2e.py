"""The job engine end to end: checks per second, scheduling lag and memory, with targets.

    python bench/bench_e2e.py                 # the full run, about 4-5 minutes
    python bench/bench_e2e.py --quick         # a smoke run of about a minute (1 worker)
    python bench/bench_e2e.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test

Every figure goes through the whole path: the manager's engine schedules a check, the
runner hands it to the SSH job server (loopback, a random port), a worker process (the
real ``watchkeeper worker`` command: an enrolled key, the manager's fingerprint pinned)
runs it and answers, the engine records the result and the runner saves the state in its
batched flushes. The manager is the real `Manager` in its own process
(``bench/e2e_manager.py``, which only counts, at public seams). The tcp checks connect to a
listener in a third process; the plugin checks run ``check_dummy``.

Three measurements, each over a window after a warm-up:

* **capacity**, closed loop: one check per worker slot (workers x concurrency checks), each
  due again 10 ms after its result, so every slot stays busy and no job is ever refused:
  what the whole machinery can carry. Compared with the raw ceilings (``/raw``).
* **sustained**, open loop: the target rate of checks on a 1 s interval, phases spread as
  the scheduler spreads them, so work arrives as it does in production. The job server has
  no queue: a job no worker slot can take is recorded UNKNOWN at once ("refused"), so this
  says whether the target rate actually comes back OK.
* **scheduling lag and memory** at 10,000 tcp checks on a 60 s interval: lag is the time
  the runner hands a job to the job server minus the time its check was planned for; RSS
  is read from ``/proc/PID/status`` at the end of the window.

After each run the ``check_states`` rows are read back, to confirm the states were saved.
The raw ceilings are ``bench_executors.py``'s (bare asyncio connects; bare asyncio
fork+exec of check_dummy, and posix_spawn), in as many processes at once as the run has
workers, each at one worker's concurrency.

Targets: tcp checks >= 3,000/s end to end; plugin checks >= 80% of the raw fork+exec
ceiling; p99 scheduling lag < 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from array import array
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import asyncssh
import orjson
import sqlalchemy as sa

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_executors  # noqa: E402
from bench_import import drop_pg_database, pg_database  # noqa: E402
from watchkeeper import store  # noqa: E402
from watchkeeper.store import tables  # noqa: E402
from watchkeeper.transport import keys  # noqa: E402
from watchkeeper.worker.executors import install_child_watcher  # noqa: E402

ZONE = "bench"
#: Seconds between a check's result and its next run in the closed-loop runs.
LOOP_INTERVAL = "10ms"
TARGET_TCP = 3000.0
TARGET_PLUGIN_RATIO = 0.80
TARGET_P99 = 1.0
#: A rate is sustained when this share of it comes back OK over the window (its edges cut
#: a run or two of some checks) and at most this share is refused.
SUSTAINED_OK = 0.97
REFUSED_OK = 0.01
CLOCK_TICK = os.sysconf("SC_CLK_TCK")
CPUS = os.cpu_count() or 1


# --- the document ---------------------------------------------------------------------------


def check_of(kind: str, port: int) -> dict[str, Any]:
    if kind == "tcp":
        return {"kind": "tcp", "port": port}
    return {"kind": "plugin", "command": list(bench_executors.ARGV)}


def document(kind: str, checks: int, interval: str, port: int) -> tuple[dict[str, Any], int]:
    """``checks`` checks of one kind, all on 127.0.0.1, as hosts x services.

    Services bind hosts by a label selector, so the document stays small at 10,000 checks.
    Returns the document and the exact number of checks (``checks`` rounded up to a multiple
    of the services per host when it has no divisor in 10..100).
    """
    per_host = next((n for n in range(min(checks, 100), 9, -1) if checks % n == 0), 100)
    per_host = min(per_host, checks)
    hosts = math.ceil(checks / per_host)
    timing = {"interval": interval, "retry_interval": interval, "timeout": "5s"}
    return {
        "schema": "watchkeeper/v1",
        "zones": [{"name": ZONE}],
        "hosts": [
            {"name": f"h{i:05d}", "address": "127.0.0.1", "zone": ZONE, "labels": {"b": "1"}}
            for i in range(hosts)
        ],
        "services": [
            {"name": f"s{s:03d}", "hosts": {"labels": {"b": "1"}}, "check": check_of(kind, port)}
            | timing
            for s in range(per_host)
        ],
    }, hosts * per_host


# --- processes ------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its reaped children (the checks it ran)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(v) for v in fields[11:15]) / CLOCK_TICK


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from ``/proc/stat``."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return (sum(values) - idle) / CLOCK_TICK, sum(values) / CLOCK_TICK


def memory(pid: int) -> tuple[int, int]:
    """VmRSS and VmHWM of a process, in MiB."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            found[name] = int(value.split()[0]) // 1024
    return found["VmRSS"], found["VmHWM"]


@contextlib.contextmanager
def listener() -> Iterator[tuple[int, int]]:
    """The tcp checks' target in its own process (bench_executors' listener); (port, pid)."""
    process = subprocess.Popen(
        [sys.executable, "-c", bench_executors.LISTENER], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        yield int(process.stdout.readline()), process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)


@contextlib.contextmanager
def database_url(admin_url: str | None, data_dir: Path) -> Iterator[str]:
    """SQLite in ``data_dir``, or a scratch PostgreSQL database dropped afterwards."""
    if not admin_url:
        yield f"sqlite:///{data_dir / 'watchkeeper.db'}"
        return
    url, name = pg_database(admin_url)
    try:
        yield url
    finally:
        drop_pg_database(admin_url, name)


async def enrol(url: str, data_dir: Path, workers: int) -> tuple[list[Path], str]:
    """Keys for ``workers`` workers enrolled for the zone (as ``worker-key add`` does) and
    the manager's host key fingerprint, which the workers pin."""
    db = store.Database.from_url(url)
    paths = []
    try:
        await db.migrate()
        for i in range(workers):
            key = asyncssh.generate_private_key("ssh-ed25519")
            path = data_dir / f"worker-{i}.key"
            path.write_bytes(key.export_private_key())
            path.chmod(0o600)
            await store.add_worker_key(
                db,
                name=f"bench-{i}",
                public_key=keys.canonical_public_key(key),
                fingerprint=keys.fingerprint(key),
                zones=[ZONE],
                labels={},
                now=datetime.now(UTC),
            )
            paths.append(path)
    finally:
        await db.aclose()
    return paths, keys.fingerprint(keys.load_or_create_host_key(data_dir))


async def saved_states(url: str, since: float) -> dict[str, int]:
    """The ``check_states`` rows: all, OK, and checked at or after ``since``."""
    db = store.Database.from_url(url)
    s = tables.check_states.c
    try:
        async with db.session() as session:
            row = (
                await session.execute(
                    sa.select(
                        sa.func.count(),
                        sa.func.count().filter(s.state == "OK"),
                        sa.func.count().filter(s.last_check >= datetime.fromtimestamp(since, UTC)),
                    )
                )
            ).one()
    finally:
        await db.aclose()
    return {"rows": row[0], "ok": row[1], "fresh": row[2]}


@dataclass
class Manager:
    """The manager child: its stats lines as they come."""

    process: asyncio.subprocess.Process
    lags_path: Path
    stats: list[dict[str, Any]] = field(default_factory=list)
    final: dict[str, Any] | None = None
    ready: dict[str, Any] | None = None
    #: Set by the measurement: `saved` counts the rows checked at or after this.
    fresh_since: float = 0.0
    saved: dict[str, int] = field(default_factory=dict)
    #: (time handed to the job server, lag) pairs, flat; filled once the manager stopped.
    lags: array[float] = field(default_factory=lambda: array("d"))
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def read(self) -> None:
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            event = json.loads(line)
            kind = event.pop("event")
            if kind == "ready":
                self.ready = event
            elif kind == "stats":
                self.stats.append(event)
            else:
                self.final = event
            self.changed.set()

    async def until(self, what: str, condition: Any, within: float) -> None:
        async with asyncio.timeout(within):
            while not condition():
                if self.process.returncode is not None:
                    raise RuntimeError(f"the manager exited ({self.process.returncode}): {what}")
                self.changed.clear()
                await self.changed.wait()

    def read_lags(self) -> None:
        """Keep the lags the manager wrote as it stopped (its data dir is removed next)."""
        if self.lags_path.exists():
            self.lags.frombytes(self.lags_path.read_bytes())


@contextlib.asynccontextmanager
async def system(
    kind: str,
    checks: int,
    interval: str,
    *,
    workers: int,
    concurrency: int,
    port: int,
    base: Path,
    admin_url: str | None,
    profile: Path | None = None,
    tick: float | None = None,
    prepared: tuple[dict[str, Any], int] | None = None,
) -> AsyncIterator[tuple[Manager, list[asyncio.subprocess.Process], int]]:
    """A manager and its workers running ``checks`` checks; yields once all are connected.

    ``prepared`` (a document and its number of checks) replaces the generated one.
    """
    data_dir = Path(tempfile.mkdtemp(prefix=f"{kind}-{workers}w-", dir=base))
    body, exact = prepared or document(kind, checks, interval, port)
    source = data_dir / "document.json"
    source.write_bytes(orjson.dumps(body))
    with database_url(admin_url, data_dir) as url:
        key_paths, fingerprint = await enrol(url, data_dir, workers)
        logs = data_dir / "manager.log"
        command = [sys.executable, str(HERE / "e2e_manager.py"), "--source", str(source)]
        command += ["--data-dir", str(data_dir), "--database", url]
        command += ["--lags", str(data_dir / "lags.bin")]
        if profile is not None:
            named = profile.parent / f"{profile.stem}-{kind}-{workers}w-{exact}{profile.suffix}"
            command += ["--profile", str(named)]
        if tick is not None:
            command += ["--tick", str(tick)]
        with logs.open("wb") as log:
            process = await asyncio.create_subprocess_exec(
                *command, stdout=subprocess.PIPE, stderr=log
            )
        manager = Manager(process, data_dir / "lags.bin")
        reader = asyncio.create_task(manager.read())
        running: list[asyncio.subprocess.Process] = []
        try:
            await manager.until("ready", lambda: manager.ready is not None, 60)
            assert manager.ready is not None
            for i, key in enumerate(key_paths):
                command = [sys.executable, "-m", "watchkeeper", "worker"]
                command += ["--manager", f"127.0.0.1:{manager.ready['jobs_port']}"]
                command += ["--key", str(key), "--manager-fingerprint", fingerprint]
                command += ["--concurrency", str(concurrency), "--name", f"bench-{i}"]
                # The machine is the bottleneck on purpose: do not let load refuse jobs.
                command += ["--max-load", "1000", "--min-memory", "0"]
                with (data_dir / f"worker-{i}.log").open("wb") as log:
                    running.append(
                        await asyncio.create_subprocess_exec(
                            *command, stdout=log, stderr=subprocess.STDOUT
                        )
                    )

            def connected() -> bool:
                last = manager.stats[-1] if manager.stats else {}
                return last.get("workers") == workers and last.get("checks") == exact

            await manager.until("workers connected, checks loaded", connected, 120)
            yield manager, running, exact
        except BaseException:
            show_logs(data_dir)
            raise
        finally:
            # The manager first: stopped workers would turn the jobs they hold into UNKNOWN
            # results ("no worker for zone") in the manager's last flush.
            await stop(process, signal.SIGTERM)
            await reader
            manager.read_lags()
            await asyncio.gather(*(stop(worker, signal.SIGINT) for worker in running))
        manager.saved = await saved_states(url, manager.fresh_since)
    shutil.rmtree(data_dir, ignore_errors=True)


async def stop(process: asyncio.subprocess.Process, how: signal.Signals) -> None:
    """Signal a child to stop; kill it if it has not within 30 s."""
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(how)
    try:
        await asyncio.wait_for(process.wait(), 30)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


def show_logs(data_dir: Path, lines: int = 15) -> None:
    """The end of each process's log, on standard error, when a run fails."""
    for path in sorted(data_dir.glob("*.log")):
        tail = path.read_text(errors="replace").splitlines()[-lines:]
        print(f"--- {path.name}, last lines:", *tail, sep="\n  ", file=sys.stderr)


def at(stats: list[dict[str, Any]], when: float) -> dict[str, Any]:
    """The first stats line at or after ``when`` (else the last)."""
    return next((s for s in stats if s["t"] >= when), stats[-1])


# --- the measurements -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """One run: the checks the manager is given, its workers, and the window watched."""

    kind: str
    workers: int
    concurrency: int
    checks: int
    interval: str
    warmup: float
    window: float


async def measure(
    plan: Plan, args: argparse.Namespace, port: int, listener_pid: int, base: Path
) -> dict[str, Any]:
    """Run ``plan``: results, refusals, saves, CPU, lag and memory over its window."""
    async with system(
        plan.kind,
        plan.checks,
        plan.interval,
        workers=plan.workers,
        concurrency=plan.concurrency,
        port=port,
        base=base,
        admin_url=args.database_url,
        profile=args.profile,
        tick=args.runner_tick,
    ) as (manager, running, exact):
        await manager.until("a first result", lambda: manager.stats[-1]["ok"] > 0, 60)
        await asyncio.sleep(plan.warmup)
        pids = {"manager": manager.process.pid, "listener": listener_pid}
        pids |= {f"worker-{i}": w.pid for i, w in enumerate(running)}
        cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
        machine0, t0 = machine_busy(), time.time()
        await asyncio.sleep(plan.window)
        cpu1 = {name: cpu_seconds(pid) for name, pid in pids.items()}
        machine1, t1 = machine_busy(), time.time()
        rss = {name: memory(pid) for name, pid in pids.items() if name != "listener"}
        manager.fresh_since = t0
        await manager.until("the window's stats", lambda: manager.stats[-1]["t"] >= t1, 10)
    first, last = at(manager.stats, t0), at(manager.stats, t1)
    seconds = last["t"] - first["t"]
    per_second = [
        b["ok"] - a["ok"]
        for a, b in zip(manager.stats, manager.stats[1:], strict=False)
        if a["t"] >= t0 and b["t"] <= t1 + 0.5
    ]
    pairs = manager.lags
    lags = sorted(pairs[i + 1] for i in range(0, len(pairs), 2) if t0 <= pairs[i] <= t1)
    wall = t1 - t0
    return {
        "plan": plan,
        "checks": exact,
        "window": wall,
        "rate": (last["ok"] - first["ok"]) / seconds,
        "min_s": min(per_second, default=0),
        "max_s": max(per_second, default=0),
        "other": (last["other"] - first["other"]) / seconds,
        "refused": (last["refused"] - first["refused"]) / seconds,
        "saved_rate": (last["saved_rows"] - first["saved_rows"]) / seconds,
        "flush_share": (last["flush_seconds"] - first["flush_seconds"]) / seconds,
        "dispatches": len(lags),
        "p50": quantile(lags, 0.50),
        "p90": quantile(lags, 0.90),
        "p99": quantile(lags, 0.99),
        "max": lags[-1] if lags else math.nan,
        "manager_cpu": (cpu1["manager"] - cpu0["manager"]) / wall,
        "worker_cpu": sum(cpu1[n] - cpu0[n] for n in cpu1 if n.startswith("worker")) / wall,
        "listener_cpu": (cpu1["listener"] - cpu0["listener"]) / wall,
        "machine_cpu": (machine1[0] - machine0[0]) / (machine1[1] - machine0[1]) * CPUS,
        "rss": rss,
        "saved": manager.saved,
    }


def quantile(ordered: list[float], q: float) -> float:
    """Nearest-rank quantile of sorted values."""
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def concurrency_of(kind: str, args: argparse.Namespace) -> int:
    return int(args.tcp_concurrency if kind == "tcp" else args.plugin_concurrency)


def target_rate(kind: str, workers: int, raw: Ceilings) -> float:
    """The rate a run must sustain: 3,000/s for tcp, 80% of the fork+exec ceiling for plugin."""
    if kind == "tcp":
        return TARGET_TCP
    return TARGET_PLUGIN_RATIO * raw["subprocess"][workers]


RAW_KINDS = {"tcp": ("connect",), "plugin": ("subprocess", "spawn")}
Ceilings = dict[str, dict[int, float]]


async def raw_rate(what: str, concurrency: int, seconds: float, port: int, start: float) -> float:
    """One process's bench_executors figure, started at wall time ``start``."""
    install_child_watcher()
    loop = asyncio.get_running_loop()

    async def bare_connect() -> None:  # bench_executors' own is local to its main()
        transport, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
        transport.close()

    one = {
        "connect": bare_connect,
        "subprocess": bench_executors.bare_subprocess,
        "spawn": bench_executors.bare_posix_spawn,
    }[what]
    await asyncio.sleep(max(0.0, start - time.time()))
    return await bench_executors.rate(one, concurrency, seconds)


async def ceilings(args: argparse.Namespace, port: int) -> Ceilings:
    """The raw figures in as many processes at once as a run has workers, at one worker's
    concurrency each; best of ``--rounds``, interleaved (noise only ever slows a run)."""
    found: Ceilings = {}
    for _ in range(args.rounds):
        for kind in args.kinds:
            concurrency = args.tcp_concurrency if kind == "tcp" else args.plugin_concurrency
            for what in RAW_KINDS[kind]:
                for processes in args.workers:
                    start = time.time() + 1.0  # past every child's start-up
                    command = [sys.executable, __file__, "--raw", what, str(concurrency)]
                    command += [str(args.raw_seconds), str(port), str(start)]
                    children = [
                        await asyncio.create_subprocess_exec(*command, stdout=subprocess.PIPE)
                        for _ in range(processes)
                    ]
                    outputs = await asyncio.gather(*(c.communicate() for c in children))
                    total = sum(float(out) for out, _ in outputs)
                    best = found.setdefault(what, {})
                    best[processes] = max(best.get(processes, 0.0), total)
    return found


# --- the report -----------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def print_ceilings(raw: Ceilings, args: argparse.Namespace, out: TextIO) -> None:
    print(
        f"\nraw ceilings (bench_executors), per second, best of {args.rounds} x "
        f"{args.raw_seconds:g} s, in 1 or more processes at once:",
        file=out,
    )
    names = {
        "connect": f"bare asyncio connects, {args.tcp_concurrency} at once per process",
        "subprocess": f"bare asyncio fork+exec of check_dummy, {args.plugin_concurrency} at once",
        "spawn": f"bare posix_spawn + pidfd of check_dummy, {args.plugin_concurrency} at once",
    }
    print(f"  {'':<60}" + "".join(f"{f'{n} proc.':>10}" for n in args.workers), file=out)
    for what, by_processes in raw.items():
        figures = "".join(f"{by_processes[n]:>10.0f}" for n in args.workers)
        print(f"  {names[what]:<60}{figures}", file=out)


def ceiling_of(run: dict[str, Any], raw: Ceilings) -> float:
    plan = run["plan"]
    return raw["connect" if plan.kind == "tcp" else "subprocess"][plan.workers]


def print_capacity(
    runs: list[dict[str, Any]], raw: Ceilings, args: argparse.Namespace, out: TextIO
) -> None:
    print(
        f"\ncapacity, closed loop: one check per worker slot, each due again {LOOP_INTERVAL} "
        f"after its result;\nwarm-up {args.warmup:g} s, window {args.window:g} s; database "
        f"{'PostgreSQL' if args.database_url else 'SQLite'}",
        file=out,
    )
    print(
        f"{'kind':<7}{'wk':>3}{'conc':>5}{'checks':>7}{'OK/s':>7}{'(1s min':>8}{'max)':>6}"
        f"{'/raw':>6}{'refused/s':>10}{'saved/s':>8}{'flush':>6}{'CPU mgr':>8}{'wkrs':>6}"
        f"{'lsnr':>6}{'machine':>8}{'DB OK':>7}{'fresh':>6}",
        file=out,
    )
    for r in runs:
        plan = r["plan"]
        print(
            f"{plan.kind:<7}{plan.workers:>3}{plan.concurrency:>5}{r['checks']:>7}"
            f"{r['rate']:>7.0f}{r['min_s']:>8}{r['max_s']:>6}{r['rate'] / ceiling_of(r, raw):>6.2f}"
            f"{r['refused']:>10.0f}{r['saved_rate']:>8.0f}{100 * r['flush_share']:>5.0f}%"
            f"{r['manager_cpu']:>8.2f}{r['worker_cpu']:>6.2f}{r['listener_cpu']:>6.2f}"
            f"{r['machine_cpu']:>8.2f}{r['saved']['ok']:>7}{r['saved']['fresh']:>6}",
            file=out,
        )


def print_sustained(
    runs: list[dict[str, Any]], raw: Ceilings, args: argparse.Namespace, out: TextIO
) -> None:
    print(
        "\nsustained at the target rate, open loop: target-rate checks on a 1 s interval, "
        f"first runs spread\nover it by phase; warm-up {args.warmup:g} s, window "
        f"{args.window:g} s",
        file=out,
    )
    print(
        f"{'kind':<7}{'wk':>3}{'conc':>5}{'offered':>8}{'OK/s':>7}{'(1s min':>8}{'max)':>6}"
        f"{'refused/s':>10}{'lag p50':>8}{'p99 ms':>7}{'CPU mgr':>8}{'wkrs':>6}{'lsnr':>6}"
        f"{'machine':>8}{'DB OK':>7}{'fresh':>6}",
        file=out,
    )
    for r in runs:
        plan = r["plan"]
        print(
            f"{plan.kind:<7}{plan.workers:>3}{plan.concurrency:>5}{r['checks']:>8}"
            f"{r['rate']:>7.0f}{r['min_s']:>8}{r['max_s']:>6}{r['refused']:>10.0f}"
            f"{1000 * r['p50']:>8.1f}{1000 * r['p99']:>7.1f}{r['manager_cpu']:>8.2f}"
            f"{r['worker_cpu']:>6.2f}{r['listener_cpu']:>6.2f}{r['machine_cpu']:>8.2f}"
            f"{r['saved']['ok']:>7}{r['saved']['fresh']:>6}",
            file=out,
        )


LEGEND = """\
  OK/s: OK results the engine recorded per second in the window; refused/s: jobs the job
  server could not place (every worker slot taken), which the runner records UNKNOWN at once;
  saved/s: status rows the runner's flushes wrote (one per changed check per flush); flush:
  share of the window a flush was running; CPU in cores (workers include their check
  processes); machine: all CPUs busy, other sessions' processes too; DB OK: check_states rows
  OK after the run; fresh: of those, checked in the window. lag: job handed to the job server
  minus the time its check was planned for."""


def print_latency(lat: dict[str, Any], out: TextIO) -> None:
    plan = lat["plan"]
    print(
        f"\nscheduling lag at {lat['checks']:,} tcp checks every 60 s, {plan.workers} "
        f"worker(s) x {plan.concurrency}, window {lat['window']:.0f} s after a "
        f"{plan.warmup:g} s warm-up:",
        file=out,
    )
    print(
        f"  dispatches {lat['dispatches']}, p50 {1000 * lat['p50']:.1f} ms, p90 "
        f"{1000 * lat['p90']:.1f} ms, p99 {1000 * lat['p99']:.1f} ms, max "
        f"{1000 * lat['max']:.1f} ms",
        file=out,
    )
    print(
        f"  manager CPU {lat['manager_cpu']:.2f} cores; refused {lat['refused']:.0f}/s; "
        f"check_states rows OK {lat['saved']['ok']}, checked in the window "
        f"{lat['saved']['fresh']}",
        file=out,
    )
    for name, (rss, hwm) in lat["rss"].items():
        print(f"  {name:<9} VmRSS {rss:>5} MiB  VmHWM {hwm:>5} MiB", file=out)


def print_targets(
    capacity: list[dict[str, Any]],
    sustained: list[dict[str, Any]],
    lat: dict[str, Any] | None,
    raw: Ceilings,
    out: TextIO,
) -> None:
    print("\ntargets (spread over the runs of each):", file=out)
    for kind in sorted({r["plan"].kind for r in capacity + sustained}, reverse=True):
        goal = (
            f">= {TARGET_TCP:,.0f}/s"
            if kind == "tcp"
            else f">= {TARGET_PLUGIN_RATIO:.0%} of bare fork+exec"
        )
        for workers in sorted({r["plan"].workers for r in capacity + sustained}):
            line = f"  {kind:<6} {workers} worker(s), target {goal}:"
            caps = [r for r in capacity if r["plan"].kind == kind and r["plan"].workers == workers]
            if caps:
                rates = [r["rate"] for r in caps]
                share = max(rates) / ceiling_of(caps[0], raw)
                goal_met = max(rates) >= target_rate(kind, workers, raw)
                line += f" capacity {spread(rates)}/s ({share:.2f} of raw) {verdict(goal_met)};"
            held = [r for r in sustained if r["plan"].kind == kind and r["plan"].workers == workers]
            if held:
                offered = held[0]["checks"]
                rates = [r["rate"] for r in held]
                best = max(held, key=lambda r: r["rate"])
                ok = (
                    best["rate"] >= SUSTAINED_OK * offered
                    and best["refused"] <= REFUSED_OK * offered
                )
                line += f" offered {offered}/s gives {spread(rates)} OK/s {verdict(ok)}"
            print(line, file=out)
    if lat is not None:
        print(
            f"  p99 scheduling lag < {TARGET_P99:g} s: {1000 * lat['p99']:.1f} ms "
            f"{verdict(lat['p99'] < TARGET_P99)}",
            file=out,
        )


def spread(values: list[float]) -> str:
    low, high = min(values), max(values)
    return f"{low:.0f}" if round(low) == round(high) else f"{low:.0f}-{high:.0f}"


async def main(args: argparse.Namespace) -> None:
    out = sys.stdout
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load "
        f"{os.getloadavg()[0]:.2f}; per worker: tcp concurrency {args.tcp_concurrency}, plugin "
        f"concurrency {args.plugin_concurrency}",
        file=out,
        flush=True,
    )
    base = Path(tempfile.mkdtemp(prefix="wk-bench-e2e-"))
    capacity: list[dict[str, Any]] = []
    sustained: list[dict[str, Any]] = []
    lat: dict[str, Any] | None = None

    def progress(name: str, run: dict[str, Any]) -> None:
        plan = run["plan"]
        print(
            f"  {name}: {plan.kind}, {plan.workers} worker(s), {run['checks']} checks: "
            f"{run['rate']:.0f} OK/s, {run['refused']:.0f} refused/s",
            file=sys.stderr,
            flush=True,
        )

    try:
        with listener() as (port, listener_pid):
            raw = await ceilings(args, port)
            print_ceilings(raw, args, out)
            for _ in range(args.repeat):
                for kind in args.kinds:
                    for workers in args.workers:
                        concurrency = concurrency_of(kind, args)
                        if not args.skip_capacity:
                            plan = Plan(
                                kind=kind,
                                workers=workers,
                                concurrency=concurrency,
                                checks=workers * concurrency,
                                interval=LOOP_INTERVAL,
                                warmup=args.warmup,
                                window=args.window,
                            )
                            capacity.append(await measure(plan, args, port, listener_pid, base))
                            progress("capacity", capacity[-1])
                        if not args.skip_sustained:
                            plan = Plan(
                                kind=kind,
                                workers=workers,
                                concurrency=concurrency,
                                checks=round(target_rate(kind, workers, raw)),
                                interval="1s",
                                warmup=args.warmup,
                                window=args.window,
                            )
                            sustained.append(await measure(plan, args, port, listener_pid, base))
                            progress("sustained", sustained[-1])
            if capacity:
                print_capacity(capacity, raw, args, out)
            if sustained:
                print_sustained(sustained, raw, args, out)
            if capacity or sustained:
                print(LEGEND, file=out)
            if not args.skip_latency:
                plan = Plan(
                    kind="tcp",
                    workers=args.latency_workers,
                    concurrency=args.tcp_concurrency,
                    checks=args.latency_checks,
                    interval="60s",
                    warmup=args.latency_warmup,
                    window=args.latency_seconds,
                )
                lat = await measure(plan, args, port, listener_pid, base)
                print_latency(lat, out)
            print_targets(capacity, sustained, lat, raw, out)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of about a minute")
    parser.add_argument("--kinds", nargs="+", choices=("tcp", "plugin"), default=["tcp", "plugin"])
    parser.add_argument(
        "--workers", type=int, nargs="+", help="worker processes per run (default 1 4; quick 1)"
    )
    parser.add_argument("--tcp-concurrency", type=int, default=256, help="per worker")
    parser.add_argument("--plugin-concurrency", type=int, default=32, help="per worker")
    parser.add_argument("--warmup", type=float, default=4.0, help="seconds before a window")
    parser.add_argument("--window", type=float, default=8.0, help="seconds measured")
    parser.add_argument("--repeat", type=int, default=1, help="capacity and sustained runs")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the raw ceilings")
    parser.add_argument("--raw-seconds", type=float, default=2.0)
    parser.add_argument("--skip-capacity", action="store_true")
    parser.add_argument("--skip-sustained", action="store_true")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--latency-checks", type=int, default=10_000)
    parser.add_argument("--latency-workers", type=int, default=1)
    parser.add_argument("--latency-warmup", type=float, default=10.0)
    parser.add_argument(
        "--latency-seconds", type=float, default=60.0, help="the latency window (one interval)"
    )
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL URL to create scratch databases from (default: SQLite in a temp dir)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="cProfile the manager of each run to FILE-KIND-Nw-CHECKS.SUFFIX",
    )
    parser.add_argument(
        "--runner-tick",
        type=float,
        help="diagnostic: the manager's EngineRunner ticks this often (default its own, 0.2 s)",
    )
    parser.add_argument("--raw", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.warmup, args.window, args.rounds, args.raw_seconds = 2.0, 3.0, 1, 1.0
        args.latency_warmup, args.latency_seconds = 3.0, 10.0
    if args.workers is None:
        args.workers = [1] if args.quick else [1, 4]
    return args


if __name__ == "__main__":
    arguments = parse()
    if arguments.raw:
        what, concurrency, seconds, port, start = arguments.raw
        figure = raw_rate(what, int(concurrency), float(seconds), int(port), float(start))
        print(asyncio.run(figure))
    else:
        asyncio.run(main(arguments))
