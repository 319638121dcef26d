"""Takeover of a clustered manager: seconds after kill -9 and after SIGSTOP, and checks lost or
doubled across the takeovers.

Two ``watchkeeper manager --ha`` and two workers as processes on a PostgreSQL database of
their own (`tests.fixtures.ha.HaSite`: 20 counting checks every 2 s). Each round takes the
leader down, by SIGKILL or by SIGSTOP, alternately, and times until the other manager
answers ``/api/v1/cluster`` as leader and until both workers are connected to it. Then the
fallen manager comes back (restarted, or SIGCONT) and stands by, for the next round.

Over the whole run each check should have run once per interval: the counting file says how
often each did; a check ran "doubled" when two managers dispatched it in one interval and
"lost" intervals are those in which it did not run at all (the takeover gap).

    .venv/bin/python bench/bench_ha.py --rounds 10 \
        --database postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fixtures.ha import HaSite, until


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10, help="takeovers of each kind")
    parser.add_argument(
        "--database",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/test",
        help="a PostgreSQL URL the bench may create a database from",
    )
    parser.add_argument("--lease", default="4s", help="the managers' --lease (default 4s)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ha-") as tmp:
        site = HaSite(Path(tmp), args.database, lease=args.lease)
        site.prepare()
        try:
            run(site, args.rounds)
        finally:
            site.stop_all()


def one_round(site: HaSite, kind: str) -> tuple[float, float]:
    """Take the leader down; seconds until the other leads, and until both workers are back;
    then bring the fallen one back as a standby."""
    leader = site.wait_leader()
    standby = site.other(leader)
    until(lambda: site.workers_on(leader) == {"w1", "w2"}, within=30, what="workers")
    t0 = time.monotonic()
    site.signal(leader, signal.SIGKILL if kind == "kill -9" else signal.SIGSTOP)
    until(
        lambda: (site.status(standby) or {}).get("role") == "leader",
        within=60,
        what="takeover",
        poll=0.02,
    )
    leads = time.monotonic() - t0
    until(lambda: site.workers_on(standby) == {"w1", "w2"}, within=60, what="workers back")
    returns = time.monotonic() - t0
    if kind == "kill -9":
        site.start_manager(leader)
    else:
        site.signal(leader, signal.SIGCONT)
    until(
        lambda: (site.status(leader) or {}).get("role") == "standby",
        within=60,
        what="the fallen manager stands by",
    )
    return leads, returns


def run(site: HaSite, rounds: int) -> None:
    site.start()
    leader = site.wait_leader()
    until(lambda: site.workers_on(leader) == {"w1", "w2"}, within=30, what="both workers")
    started = time.monotonic()
    before = site.count_runs()
    lead: dict[str, list[float]] = {"kill -9": [], "SIGSTOP": []}
    back: dict[str, list[float]] = {"kill -9": [], "SIGSTOP": []}
    for n in range(rounds * 2):
        kind = "kill -9" if n % 2 == 0 else "SIGSTOP"
        leads, returns = one_round(site, kind)
        lead[kind].append(leads)
        back[kind].append(returns)
        print(f"round {n + 1}: {kind}: leader after {leads:.2f} s, "
              f"workers after {returns:.2f} s", flush=True)  # fmt: skip
    elapsed = time.monotonic() - started
    after = site.count_runs()
    runs = {f"c{i:02d}": after[f"c{i:02d}"] - before[f"c{i:02d}"] for i in range(site.checks)}
    intervals = elapsed / site.interval
    print()
    print("| takeover | runs | leader p50 | leader max | workers p50 | workers max |")
    print("|---|---|---|---|---|---|")
    for kind in lead:
        print(
            f"| {kind} | {len(lead[kind])} | {statistics.median(lead[kind]):.2f} s | "
            f"{max(lead[kind]):.2f} s | {statistics.median(back[kind]):.2f} s | "
            f"{max(back[kind]):.2f} s |"
        )
    total = sum(runs.values())
    expected = intervals * site.checks
    print()
    print(
        f"{site.checks} checks every {site.interval} s over {elapsed:.0f} s "
        f"({intervals:.0f} intervals, {rounds * 2} takeovers): {total} runs of "
        f"{expected:.0f} expected; per check min {min(runs.values())}, max {max(runs.values())}"
    )
    doubled = sum(max(0, n - round(intervals) - 1) for n in runs.values())
    print(f"runs beyond one per interval (+1 slack) per check, summed: {doubled}")
    print(f"intervals without a run (lost), summed: {max(0, round(expected) - total)}")


if __name__ == "__main__":
    main()
