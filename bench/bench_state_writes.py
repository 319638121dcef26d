"""The engine's state flush: `store.save_check_states` at 100 and 10,000 checks.

    python bench/bench_state_writes.py                       # SQLite, and PostgreSQL if set
    python bench/bench_state_writes.py --database-url postgresql+psycopg://postgres@127.0.0.1/test

The runner writes the statuses a batch of results changed, one transaction per flush. At
saturation every result changes its check's status (its last-check time), so a flush is as
many rows as results arrived since the last one. For each database and each check count
this times ``--flushes`` flushes of ``--batch`` statuses each (capped at the check count)
and prints the cost per status written (wall time, and this process's CPU: on PostgreSQL
the rest is the server's); the cost must not grow with the number of checks.
The PostgreSQL URL defaults to WATCHKEEPER_TEST_PG_URL; a scratch database is made there
and dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_import import drop_pg_database, pg_database
from gen_document import generate
from watchkeeper import store
from watchkeeper.document.normalize import snapshot
from watchkeeper.document.validate import validate
from watchkeeper.engine import CheckStatus, StateType
from watchkeeper.results import CheckState


async def measure(url: str, checks: int, batch: int, flushes: int) -> dict[str, float]:
    db = store.Database(url)
    await db.migrate()
    try:
        hosts = max(1, checks // 10)
        raw = generate(hosts, 9, 1, "labels")
        validated = validate(raw)
        assert validated.document is not None
        await store.import_snapshot(
            db, snapshot=snapshot(validated.document), content_hash=validated.content_hash,
            document_json="{}", source="bench", warnings=validated.warnings,
            now=datetime.now(UTC),
        )  # fmt: skip
        async with db.session() as session:
            keys = [c.key for c in await store.list_checks(session)]
        size = min(batch, len(keys))
        costs: list[float] = []
        cpu: list[float] = []
        now = time.time()
        for flush in range(flushes):
            start = flush * size % len(keys)
            part = (keys[start:] + keys[:start])[:size]
            statuses = [
                CheckStatus(
                    key=key,
                    state=CheckState.OK,
                    state_type=StateType.HARD,
                    attempt=1,
                    output=f"OK - run {flush}",
                    pending=False,
                    last_check=now + flush,
                    last_state_change=now,
                    last_hard_state=CheckState.OK,
                    last_hard_change=now,
                )
                for key in part
            ]
            t0, c0 = time.perf_counter(), time.process_time()
            written = await store.save_check_states(db, statuses)
            costs.append((time.perf_counter() - t0) / written)
            cpu.append((time.process_time() - c0) / written)
        return {
            "checks": len(keys),
            "batch": size,
            "us_per_status_p50": statistics.median(costs) * 1e6,
            "us_per_status_first": costs[0] * 1e6,
            "cpu_us_per_status_p50": statistics.median(cpu) * 1e6,
        }
    finally:
        await db.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get("WATCHKEEPER_TEST_PG_URL"))
    parser.add_argument("--checks", type=int, nargs="+", default=[100, 10_000])
    parser.add_argument("--batch", type=int, default=1000, help="statuses per flush")
    parser.add_argument("--flushes", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        targets = [("sqlite", None)]
        if args.database_url:
            targets.append(("postgresql", args.database_url))
        for backend, admin in targets:
            for checks in args.checks:
                name = None
                if admin is None:
                    url = f"sqlite:///{tmp}/states-{checks}.db"
                else:
                    url, name = pg_database(admin)
                try:
                    got = asyncio.run(measure(url, checks, args.batch, args.flushes))
                finally:
                    if name is not None and admin is not None:
                        drop_pg_database(admin, name)
                print(
                    f"{backend:10} checks={got['checks']:>6} batch={got['batch']:>5} "
                    f"per status: {got['us_per_status_p50']:7.1f} us, of it our CPU "
                    f"{got['cpu_us_per_status_p50']:5.1f} us (p50 of {args.flushes} flushes; "
                    f"first {got['us_per_status_first']:.1f} us)",
                    flush=True,
                )


if __name__ == "__main__":
    main()
