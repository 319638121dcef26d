"""Web and API latency with 10,000 services: p50 / p95 under concurrent clients.

    python bench/bench_web.py [--services 10000] [--clients 12] [--requests 300]

How the load is made (so the figures can be judged):

* a document of ``--services`` services (``--services / 10`` hosts x 10 services, tcp
  checks to a local listener, interval 1 h) is imported into a fresh SQLite store with the
  same intake the manager uses; then a status is saved for every check as the engine saves
  them (3 % CRITICAL, 2 % WARNING, 1 % UNKNOWN, the rest OK, all HARD, with outputs and
  state-change times spread over a day), so the manager restores them at start instead of
  waiting an hour for every check to run once; the checks that fall due during the run do
  run (on the embedded worker) and move to OK;
* 30 days of one-a-minute points of ``host0!svc0``'s ``time`` metric are written into the
  telemetry tiers as retention leaves them (raw 48 h, 5-minute buckets, hours), the way
  bench/bench_telemetry.py does, plus 100 other series with the same history;
* the manager is ``watchkeeper up`` in its own process (manager and embedded worker), on
  127.0.0.1; this process runs ``--clients`` concurrent httpx clients against it, each
  logged in (session cookie) as the first admin, and times each request end to end.

For each URL: a few warm-up requests, then ``--requests`` requests spread over the clients;
p50 and p95 in milliseconds against the target (p95 < 200 ms). Pages that are not mounted
(404) are reported as such. The first row, ``GET /api/v1/session`` (who am I), is the floor:
HTTP, the session lookup in the store and JSON, with no read model behind it. The manager
serves on one event loop, so under N busy clients a request waits for about N others: p50
is roughly N times the cost of one request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_telemetry import load_history, set_marks
from watchkeeper import store
from watchkeeper.clock import utcnow
from watchkeeper.engine import CheckStatus, StateType
from watchkeeper.manager.intake import ConfigIntake
from watchkeeper.results import CheckState

TARGET_P95_MS = 200.0
DAY = 86_400.0


def document(services: int, port: int) -> dict[str, Any]:
    hosts = services // 10
    return {
        "schema": "watchkeeper/v1",
        "zones": [{"name": "core"}, {"name": "dmz"}],
        "hosts": [
            {
                "name": f"host{i}",
                "address": "127.0.0.1",  # the checks that fall due reach the listener
                "zone": "dmz" if i % 5 == 0 else "core",
                "labels": {"rack": f"r{i % 40}"},
            }
            for i in range(hosts)
        ],
        "services": [
            {
                "name": f"svc{s}",
                "hosts": {"labels": {}},
                "interval": "1h",
                "max_attempts": 1,
                "check": {"kind": "tcp", "port": port},
            }
            for s in range(10)
        ],
    }


def status_for(key: str, rng: random.Random, now: float) -> CheckStatus:
    roll = rng.random()
    state = (
        CheckState.CRITICAL
        if roll < 0.03
        else CheckState.WARNING
        if roll < 0.05
        else CheckState.UNKNOWN
        if roll < 0.06
        else CheckState.OK
    )
    changed = now - rng.uniform(60, DAY)
    words = {
        CheckState.OK: "TCP OK - 0.001 second response time",
        CheckState.WARNING: "TCP WARNING - 1.2 second response time",
        CheckState.CRITICAL: "connection refused",
        CheckState.UNKNOWN: "no route to host",
    }
    return CheckStatus(
        key=key,
        state=state,
        state_type=StateType.HARD,
        attempt=1,
        output=words[state],
        pending=False,
        last_check=now - rng.uniform(0, 3600),
        last_state_change=changed,
        last_hard_state=state,
        last_hard_change=changed,
    )


async def prepare(data_dir: Path, source: Path, body: bytes) -> str:
    """Import the document, save a status per check, write 30 days of telemetry."""
    db = store.Database.for_data_dir(data_dir)
    await db.migrate()
    try:
        outcome = await ConfigIntake(db, clock=utcnow).submit(body, source=str(source))
        assert outcome.accepted, outcome.errors
        async with db.session() as session:
            keys = [record.key for record in await store.list_checks(session)]
        now = time.time()
        rng = random.Random(5)
        await store.save_check_states(db, [status_for(k, rng, now) for k in keys])
        now_ms = int(now * 1000)
        for i in range(100):
            await load_history(db, (f"host{i + 1}!svc1", "time", "s"), now_ms, seed=i + 2)
        target = "host0!svc0"
        await load_history(db, (target, "time", "s"), now_ms, seed=1)
        await set_marks(db, now_ms)
        print(f"loaded {len(keys):,} checks with saved statuses; 30 days of {target} time")
        return target
    finally:
        await db.aclose()


async def listener() -> asyncio.Server:
    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    return await asyncio.start_server(accept, "127.0.0.1", 0)


def start_manager(source: Path, data_dir: Path) -> tuple[subprocess.Popen[str], str, str]:
    """``watchkeeper up`` in its own process; its URL and the first admin's password."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "watchkeeper", "up", str(source), "--data-dir", str(data_dir),
         "--http", "127.0.0.1:0", "--jobs", "127.0.0.1:0", "--poll-interval", "3600"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    url = password = ""
    assert proc.stdout is not None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (url and password):
        line = proc.stdout.readline()
        if not line:
            raise SystemExit("the manager exited before it was ready")
        if found := re.search(r"log in at (\S+)/login as admin, password (\S+)", line):
            url, password = found.group(1), found.group(2)
    if not url:
        proc.kill()
        raise SystemExit("the manager did not print its URL and admin password in time")
    return proc, url, password


async def timed(
    clients: list[httpx.AsyncClient], path: str, requests: int
) -> tuple[list[float], int]:
    """Latencies in ms of ``requests`` GETs of ``path`` over the clients, and the status."""
    for client in clients[:3]:
        await client.get(path)  # warm-up
    latencies: list[float] = []
    codes: set[int] = set()
    queue: asyncio.Queue[None] = asyncio.Queue()
    for _ in range(requests):
        queue.put_nowait(None)

    async def run(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            queue.get_nowait()
            t0 = time.perf_counter()
            response = await client.get(path)
            latencies.append((time.perf_counter() - t0) * 1000)
            codes.add(response.status_code)

    await asyncio.gather(*(run(c) for c in clients))
    code = 200 if codes == {200} else max(codes)
    return latencies, code


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


async def measure(url: str, password: str, target: str, args: argparse.Namespace) -> None:
    start = time.time() - 30 * DAY
    cases = [
        ("floor: GET /api/v1/session", "/api/v1/session"),
        ("overview page", "/"),
        ("overview API", "/api/v1/overview"),
        ("service list page", "/services"),
        ("service list API, first page", "/api/v1/checks?limit=100"),
        ("service list page, filtered", "/services?q=svc1&state=CRITICAL"),
        ("service list API, filtered", "/api/v1/checks?q=svc1&state=CRITICAL&limit=100"),
        ("30-day graph", f"/api/v1/checks/{target}/metrics/time?start={start:.0f}"),
    ]
    clients = [httpx.AsyncClient(base_url=url, timeout=30) for _ in range(args.clients)]
    try:
        for client in clients:
            login = await client.post(
                "/api/v1/session", json={"name": "admin", "password": password}
            )
            login.raise_for_status()
        overview = (await clients[0].get("/api/v1/overview")).json()
        print(f"services by state: {overview['services']}; hosts: {overview['hosts']}")
        graph = (await clients[0].get(cases[-1][1])).json()
        print(f"30-day graph: tier {graph.get('tier')}, {len(graph.get('points', []))} points")
        print(
            f"{args.clients} concurrent clients, {args.requests} requests each URL; "
            f"target p95 < {TARGET_P95_MS:.0f} ms"
        )
        print(f"{'':32} {'p50 ms':>8} {'p95 ms':>8}  verdict")
        for label, path in cases:
            latencies, code = await timed(clients, path, args.requests)
            if code != 200:
                print(f"{label:32} {'-':>8} {'-':>8}  HTTP {code}: not measured ({path})")
                continue
            p50, p95 = statistics.median(latencies), percentile(latencies, 0.95)
            verdict = "ok" if p95 < TARGET_P95_MS else "OVER TARGET"
            print(f"{label:32} {p50:8.1f} {p95:8.1f}  {verdict}")
    finally:
        for client in clients:
            await client.aclose()


async def main(args: argparse.Namespace) -> None:
    server = await listener()
    port = int(server.sockets[0].getsockname()[1])
    with tempfile.TemporaryDirectory() as tmp:
        source, data_dir = Path(tmp) / "doc.json", Path(tmp) / "data"
        body = json.dumps(document(args.services, port)).encode()
        source.write_bytes(body)
        target = await prepare(data_dir, source, body)
        proc, url, password = await asyncio.to_thread(start_manager, source, data_dir)
        try:
            await measure(url, password, target, args)
        finally:
            proc.terminate()
            await asyncio.to_thread(proc.wait, 30)
    server.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=300)
    asyncio.run(main(parser.parse_args()))
