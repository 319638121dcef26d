"""Infrastructure: plan time, apply throughput against moto, drift detection latency.

    python bench/bench_infra.py            # all three, about a minute and a half
    python bench/bench_infra.py --quick    # smaller sizes, fewer drift trials

* **plan time**: the pure planner on 1,000 resources x 10 slots on one platform, three
  cases: converged (10,000 owned machines running: nothing to do), scale-up from an empty
  platform (10,000 creates, ``max_create`` raised so none is refused), and drift (every
  tenth machine stopped: 1,000 starts). Best of 5 runs.
* **apply throughput**: the worker's infra runner, with the ``ec2`` provider, creating
  and then destroying N instances on a moto_server on loopback, 8 at a time (the
  provider's rate limit raised out of the way): instances per second each way.
* **drift detection latency**: the manager of ``watchkeeper up`` (embedded worker) with
  a platform polled every 10 s and 2 instances; an instance is stopped out of band at a
  random moment, and the time until the ``infra:web`` check is WARNING is measured.
  Expected: between 0 and one poll plus the observation's latency (the check is run at
  once when the report changes).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from watchkeeper.infra.desired import Desired
from watchkeeper.infra.planner import Observation, PlanInput, plan
from watchkeeper.infra.providers.base import Machine

OWNER = "wkbench000000000"
MOTO = Path(sys.executable).with_name("moto_server")


def plan_time(resources: int, slots: int) -> dict[str, float]:
    platform = {"name": "cloud", "provider": "ec2", "zone": "eu",
                "limits": {"max_create": resources * slots, "max_destroy": 10}}  # fmt: skip
    specs = [
        {"name": f"r{i}", "platform": "cloud", "count": slots, "size": "t3.small",
         "image": "ami-1", "confirm": []}
        for i in range(resources)
    ]  # fmt: skip
    desired = Desired.from_specs([platform], specs)
    running = tuple(
        Machine(cloud_id=f"i-{i}-{j}", resource=f"r{i}", slot=f"r{i}-{j}", owner=OWNER,
                state="running", size="t3.small", image="ami-1")
        for i in range(resources) for j in range(slots)
    )  # fmt: skip
    stopped = tuple(
        Machine(**{**m.to_json(), "state": "stopped"}) if k % 10 == 0 else m
        for k, m in enumerate(running)
    )
    cases = {"converged": running, "scale-up": (), "drift": stopped}
    out = {}
    for name, machines in cases.items():
        given = PlanInput(
            desired=desired,
            platform=desired.platforms["cloud"],
            observation=Observation(platform="cloud", machines=machines),
            owner=OWNER,
        )
        best = float("inf")
        for _ in range(5):
            started = time.perf_counter()
            result = plan(given)
            best = min(best, time.perf_counter() - started)
        out[name] = best * 1000
        print(f"plan {resources} resources x {slots} slots, {name}: {best * 1000:.0f} ms "
              f"({result.summary()})")  # fmt: skip
    return out


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [str(MOTO), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=1)
            return process, url
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("moto_server did not answer within 30 s")


async def apply_throughput(url: str, count: int) -> dict[str, float]:
    from watchkeeper.jobs.payloads import InfraPayload
    from watchkeeper.worker.infra import InfraRunner

    os.environ["WK_BENCH_AWS"] = "bench:bench"
    platform = {"name": "cloud", "provider": "ec2", "zone": "eu",
                "credentials": "env:WK_BENCH_AWS",
                "limits": {"calls_per_second": 1000},
                "options": {"region": "eu-west-1", "endpoint": url}}  # fmt: skip
    runner = InfraRunner()
    gate = asyncio.Semaphore(8)

    async def one(**fields: Any) -> Any:
        async with gate:
            outcome = await runner.run(InfraPayload(platform=platform, owner=OWNER, **fields))
            assert outcome.state.name == "OK", outcome.output
            return outcome

    started = time.perf_counter()
    made = await asyncio.gather(*(
        one(op="create", resource="web", slot=f"web-{i}", index=i, op_id=f"bench-{i}",
            size="t3.small", image="ami-12345678")
        for i in range(count)
    ))  # fmt: skip
    created = time.perf_counter() - started
    ids = [o.data["machine"]["cloud_id"] for o in made]
    started = time.perf_counter()
    await asyncio.gather(*(
        one(op="destroy", resource="web", slot=f"web-{i}", cloud_id=iid)
        for i, iid in enumerate(ids)
    ))  # fmt: skip
    destroyed = time.perf_counter() - started
    await runner.aclose()
    print(f"apply against moto: {count} creates in {created:.2f} s ({count / created:.1f}/s), "
          f"{count} destroys in {destroyed:.2f} s ({count / destroyed:.1f}/s); each destroy "
          "looks its machine up afresh by id first (the worker's ownership guard)")  # fmt: skip
    return {"creates_per_s": count / created, "destroys_per_s": count / destroyed}


async def drift_latency(url: str, trials: int, poll: float) -> list[float]:
    import boto3  # type: ignore[import-untyped]

    from watchkeeper.runtime import Manager, ManagerSettings

    os.environ["WK_BENCH_AWS"] = "bench:bench"
    ec2 = boto3.client("ec2", endpoint_url=url, region_name="eu-west-1",
                       aws_access_key_id="bench", aws_secret_access_key="bench")  # fmt: skip
    reset = urllib.request.Request(f"{url}/moto-api/reset", method="POST")
    await asyncio.to_thread(urllib.request.urlopen, reset)
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "doc.json"
        source.write_text(json.dumps({
            "schema": "watchkeeper/v1", "zones": [{"name": "eu"}],
            "platforms": [{"name": "cloud", "provider": "ec2", "zone": "eu",
                           "credentials": "env:WK_BENCH_AWS", "poll": f"{poll:g}s",
                           "options": {"region": "eu-west-1", "endpoint": url}}],
            "infrastructure": [{"name": "web", "platform": "cloud", "count": 2,
                                "size": "t3.small", "image": "ami-12345678",
                                "drift": "report", "confirm": []}],
        }))  # fmt: skip
        settings = ManagerSettings(source=str(source), data_dir=Path(tmp) / "data",
                                   http_port=0, jobs_port=0, embedded_worker=True)  # fmt: skip
        manager = Manager(settings, on_event=lambda line: None)
        task = asyncio.create_task(manager.run())

        def state() -> str:
            runner = manager.runner
            status = runner.engine.statuses.get("infra:web") if runner else None
            return "" if status is None or status.pending else status.state.name

        async def until(condition: Any, within: float) -> None:
            deadline = time.monotonic() + within
            while not condition():
                if time.monotonic() > deadline:
                    raise SystemExit(f"drift bench: not reached within {within:g}s")
                await asyncio.sleep(0.02)

        await until(lambda: state() == "OK", 60)
        ids = [i["InstanceId"] for r in ec2.describe_instances()["Reservations"]
               for i in r["Instances"]]  # fmt: skip
        latencies = []
        for trial in range(trials):
            await asyncio.sleep(random.uniform(0, poll))
            iid = ids[trial % len(ids)]
            stopped_at = time.monotonic()
            ec2.stop_instances(InstanceIds=[iid])
            await until(lambda: state() == "WARNING", 3 * poll)
            latencies.append(time.monotonic() - stopped_at)
            ec2.start_instances(InstanceIds=[iid])
            await until(lambda: state() == "OK", 3 * poll)
        manager.stop()
        await asyncio.wait_for(task, 30)
    print(f"drift detection at a {poll:g} s poll, {trials} trials: median "
          f"{statistics.median(latencies):.2f} s, max {max(latencies):.2f} s "
          f"({', '.join(f'{x:.1f}' for x in latencies)})")  # fmt: skip
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    plan_time(100 if args.quick else 1000, 10)
    process, url = start_moto()
    try:
        asyncio.run(apply_throughput(url, 20 if args.quick else 100))
        asyncio.run(drift_latency(url, 2 if args.quick else 5, 10.0))
    finally:
        process.terminate()
        process.wait(10)


if __name__ == "__main__":
    main()
