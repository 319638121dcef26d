"""Watchkeeper next to Nagios 4 and Icinga 2 on the same checks, interleaved, as ratios.

    sudo .venv/bin/python bench/bench_anchors.py --interval 5 --reps 2
    sudo .venv/bin/python bench/bench_anchors.py --engines nagios4:tcp up:tcp --interval 5

Runs the scripts of ``../shared/bench-anchors/`` (``--anchors``) one after the other, every
engine once per rep, so a slow drift of the machine's background load hits them all alike:
``nagios4``, ``icinga2``, ``up`` (`watchkeeper up`, the embedded worker) and ``workers``
(a manager and ``--workers`` `watchkeeper worker` processes). ``ENGINE:tcp`` runs the
built-in ``tcp`` check (Nagios: ``check_tcp``) instead of ``check_dummy 0 ok``. Each run is
the anchors' own window (``--warmup``, ``--duration``) and its last line of figures; the
lines are kept in ``--out``. Then, per figure, the mean over the reps and the ratios the
speed targets are stated in:

* throughput: exec'd plugins (or accepted connections) per second, over Nagios and Icinga;
* engine-only CPU per 1,000 checks/s (``cpu_self_pct`` over the rate), over Nagios;
* peak RSS of the long-lived processes, over Icinga's.

Watchkeeper runs from this checkout's venv (``--watchkeeper``), through a wrapper that
joins a manager's log (stderr) to its stdout, where the script looks for "manager ready".
Needs root (the anchors install their packages and count execs with ftrace) and a quiet
machine: a run whose ``other_cpu_pct`` is over ``--max-other`` is reported and left out of
the means.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ANCHORS = HERE.parent.parent / "shared" / "bench-anchors"
SCRIPTS = {"nagios4": "nagios4.sh", "icinga2": "icinga2.sh", "up": "watchkeeper.sh",
           "workers": "watchkeeper.sh"}  # fmt: skip


def run(spec: str, args: argparse.Namespace, rep: int) -> dict[str, str] | None:
    engine, _, check = spec.partition(":")
    env = {
        **os.environ,
        "INTERVAL": str(args.interval),
        "DURATION": str(args.duration),
        "HOSTS": str(args.hosts),
        "SERVICES_PER_HOST": str(args.services_per_host),
        "RESULTS_DIR": str(args.out),
        "TAG": f"rep{rep}",
        "WATCHKEEPER": str(args.cli),
    }
    if args.warmup is not None:
        env["WARMUP"] = str(args.warmup)
    if check:
        env["CHECK"] = check
    if engine == "up":
        env["MODE"] = "up"
    elif engine == "workers":
        env.update(MODE="workers", WORKERS=str(args.workers))
    started = time.monotonic()
    done = subprocess.run(
        ["bash", str(args.anchors / SCRIPTS[engine])], env=env, capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    line = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    took = time.monotonic() - started
    if done.returncode != 0 or "=" not in line:
        print(f"  {spec} rep {rep}: FAILED (exit {done.returncode}, {took:.0f} s)", flush=True)
        print("    " + "\n    ".join(done.stderr.strip().splitlines()[-8:]), flush=True)
        return None
    with (args.out / "lines.txt").open("a") as kept:
        kept.write(f"spec={spec} rep={rep} {line}\n")
    figures = dict(item.split("=", 1) for item in line.split() if "=" in item)
    print(f"  {spec} rep {rep}: {rate(figures):.0f}/s, cpu {figures.get('cpu_pct')}%, "
          f"rss {figures.get('rss_mb')} MB, other {figures.get('other_cpu_pct')}% "
          f"({took:.0f} s)", flush=True)  # fmt: skip
    return figures


def wrapped(watchkeeper: Path, into: Path) -> Path:
    """The CLI as the anchors' script calls it. It waits for "manager ready" on stdout, where
    `up` says it; a `manager` logs to stderr, as a daemon does, so for it the two are joined.
    The script runs its API poll with the ``python`` beside the CLI: linked here too."""
    into.mkdir(parents=True, exist_ok=True)
    script = into / "watchkeeper"
    script.write_text(
        f'#!/bin/sh\nif [ "$1" = manager ]; then exec {watchkeeper} "$@" 2>&1; fi\n'
        f'exec {watchkeeper} "$@"\n'
    )
    script.chmod(0o755)
    python = into / "python"
    python.unlink(missing_ok=True)
    python.symlink_to(watchkeeper.parent / "python")
    return script


def rate(figures: dict[str, str]) -> float:
    """The engine-independent rate: plugin execs, or connections to the tcp listener."""
    for key in ("plugin_execs_per_s", "tcp_connects_per_s", "checks_per_s"):
        try:
            value = float(figures[key])
        except (KeyError, ValueError):
            continue
        if value == value:  # not nan
            return value
    return float("nan")


def mean(runs: list[dict[str, str]], key: str) -> float:
    values = []
    for figures in runs:
        with contextlib.suppress(KeyError, ValueError):
            values.append(rate(figures) if key == "rate" else float(figures[key]))
    return statistics.fmean(values) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", nargs="+", default=["nagios4", "icinga2", "up", "workers"])
    parser.add_argument("--interval", type=int, default=5)
    parser.add_argument("--duration", type=int, default=60, help="window, a multiple of 60")
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--services-per-host", type=int, default=10)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--max-other", type=float, default=15.0)
    parser.add_argument("--anchors", type=Path, default=ANCHORS)
    parser.add_argument(
        "--watchkeeper", type=Path, default=Path(sys.executable).parent / "watchkeeper"
    )
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench-anchors-results"))
    args = parser.parse_args()
    for spec in args.engines:
        if spec.partition(":")[0] not in SCRIPTS:
            parser.error(f"--engines: {spec!r} is not one of {', '.join(SCRIPTS)} (:tcp)")
    args.out.mkdir(parents=True, exist_ok=True)
    args.cli = wrapped(args.watchkeeper, args.out / "bin")
    print(f"{args.hosts * args.services_per_host} services every {args.interval} s, "
          f"{args.reps} rep(s), lines in {args.out / 'lines.txt'}", flush=True)  # fmt: skip
    runs: dict[str, list[dict[str, str]]] = {spec: [] for spec in args.engines}
    for rep in range(1, args.reps + 1):
        for spec in args.engines:
            figures = run(spec, args, rep)
            if figures is None:
                continue
            if float(figures.get("other_cpu_pct", 0) or 0) > args.max_other:
                print(f"    left out: other_cpu_pct {figures['other_cpu_pct']} > {args.max_other}")
                continue
            runs[spec].append(figures)
    print()
    print(f"{'engine':16} {'runs':>4} {'checks/s':>9} {'cpu %':>6} {'self %':>6} "
          f"{'self/1k':>8} {'rss MB':>7} {'lat avg s':>9}")  # fmt: skip
    table: dict[str, dict[str, float]] = {}
    for spec, got in runs.items():
        row = {key: mean(got, key) for key in ("rate", "cpu_pct", "cpu_self_pct", "rss_mb",
                                               "latency_avg_s")}  # fmt: skip
        row["self_per_1k"] = row["cpu_self_pct"] / row["rate"] * 1000 if row["rate"] else 0.0
        table[spec] = row
        print(f"{spec:16} {len(got):>4} {row['rate']:>9.0f} {row['cpu_pct']:>6.0f} "
              f"{row['cpu_self_pct']:>6.0f} {row['self_per_1k']:>8.1f} {row['rss_mb']:>7.0f} "
              f"{row['latency_avg_s']:>9.3f}")  # fmt: skip
    print()
    for spec, row in table.items():
        engine, _, check = spec.partition(":")
        if engine not in ("up", "workers"):
            continue
        suffix = f":{check}" if check else ""
        nagios, icinga = table.get("nagios4" + suffix), table.get("icinga2" + suffix)
        parts = []
        if nagios:
            parts.append(f"throughput {row['rate'] / nagios['rate']:.2f}x Nagios")
            parts.append(
                f"engine CPU per 1k/s {row['self_per_1k'] / nagios['self_per_1k']:.2f}x Nagios"
            )
        if icinga:
            parts.append(f"throughput {row['rate'] / icinga['rate']:.2f}x Icinga")
            parts.append(f"RSS {row['rss_mb'] / icinga['rss_mb']:.2f}x Icinga")
        print(f"{spec:16} " + ", ".join(parts))


if __name__ == "__main__":
    main()
