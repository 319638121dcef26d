"""Validate and import figures for large documents, on SQLite and on PostgreSQL.

    python bench/bench_import.py                       # 1,000 and 10,000 hosts x 10 services
    python bench/bench_import.py --hosts 10000 --pg-url postgresql+psycopg://postgres@127.0.0.1/test

Each (size, database) runs in its own process so peak memory (ru_maxrss) is its own. For
each it prints: parse + validate + flatten time, import time, their total, peak RSS, and
the time for a one-service change to take effect through the manager's intake (warm
caches, as in a running manager), broken down into its steps.
Targets: 10,000 x 10 validated and imported in under 10 s; a one-service change under 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gen_document import generate
from watchkeeper import store
from watchkeeper.manager.intake import ConfigIntake, check_candidate


def now() -> datetime:
    return datetime.now(UTC)


async def measure(hosts: int, services: int, url: str) -> dict[str, Any]:
    body = orjson.dumps(generate(hosts, services, 4, "explicit"))
    db = store.Database.from_url(url)
    await db.migrate()
    try:
        t0 = time.perf_counter()
        checked = check_candidate(body)
        t1 = time.perf_counter()
        assert checked.snapshot is not None, checked.validated.problems[:3]
        await store.import_snapshot(
            db,
            snapshot=checked.snapshot,
            content_hash=checked.validated.content_hash,
            document_json=body.decode(),
            source="bench",
            warnings=[],
            now=now(),
        )
        t2 = time.perf_counter()
        cold = {"validate_s": t1 - t0, "import_s": t2 - t1, "total_s": t2 - t0}

        # A running manager: the intake has seen the current document once (warm caches).
        intake = ConfigIntake(db, clock=now)
        first = await intake.submit(body, source="bench")
        assert first.accepted and not first.created
        raw = orjson.loads(body)
        raw["services"][len(raw["services"]) // 2]["interval"] = "30s"
        changed = orjson.dumps(raw)
        t3 = time.perf_counter()
        outcome = await intake.submit(changed, source="bench")
        t4 = time.perf_counter()
        assert outcome.created and outcome.diff is not None
        assert outcome.diff.checks.changed and len(outcome.diff.checks.changed) == 1
        return {
            "hosts": hosts,
            "services_per_host": services,
            "objects": len(raw["hosts"]) + len(raw["services"]),
            "checks": len(checked.snapshot.checks),
            "document_mb": round(len(body) / 1e6, 1),
            **{k: round(v, 3) for k, v in cold.items()},
            "one_change_s": round(t4 - t3, 3),
            "one_change_check_s": round(outcome.check_seconds, 3),
            "one_change_import_s": round(outcome.import_seconds, 3),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        }
    finally:
        await db.aclose()


def pg_database(admin_url: str) -> tuple[str, str]:
    """Create a scratch database; return its URL and name."""
    import psycopg

    name = f"wk_bench_{uuid.uuid4().hex[:8]}"
    plain = admin_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = admin_url.rsplit("/", 1)[0]
    return f"{base}/{name}", name


def drop_pg_database(admin_url: str, name: str) -> None:
    import psycopg

    plain = admin_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_child(hosts: int, services: int, backend: str, pg_url: str | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        pg_name = None
        if backend == "sqlite":
            url = f"sqlite:///{tmp}/bench.db"
        else:
            assert pg_url
            url, pg_name = pg_database(pg_url)
        try:
            out = subprocess.run(
                [sys.executable, __file__, "--child", str(hosts), str(services), url],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        finally:
            if pg_name and pg_url:
                drop_pg_database(pg_url, pg_name)
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    result["database"] = backend
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--services-per-host", type=int, default=10)
    parser.add_argument(
        "--pg-url",
        default=os.environ.get(
            "WATCHKEEPER_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
        help="an existing PostgreSQL database to create scratch databases from ('' to skip)",
    )
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        hosts, services, url = args.child
        print(json.dumps(asyncio.run(measure(int(hosts), int(services), url))))
        return
    backends = ["sqlite"] + (["postgresql"] if args.pg_url else [])
    header = (
        f"{'database':<11}{'hosts':>7}{'checks':>8}{'doc MB':>8}{'validate s':>11}"
        f"{'import s':>9}{'total s':>8}{'1-change s':>11}{'(check':>7}{'import)':>8}"
        f"{'peak MB':>8}"
    )
    print(header)
    for hosts in args.hosts:
        for backend in backends:
            r = run_child(hosts, args.services_per_host, backend, args.pg_url)
            print(
                f"{r['database']:<11}{r['hosts']:>7}{r['checks']:>8}{r['document_mb']:>8}"
                f"{r['validate_s']:>11}{r['import_s']:>9}{r['total_s']:>8}"
                f"{r['one_change_s']:>11}{r['one_change_check_s']:>7}"
                f"{r['one_change_import_s']:>8}{r['peak_rss_mb']:>8}",
                flush=True,
            )


if __name__ == "__main__":
    main()
