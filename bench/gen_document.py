"""Generate a large synthetic watchkeeper/v1 document for benchmarks.

    python bench/gen_document.py --hosts 10000 --services-per-host 10 > big.json

Every address is in 127.0.0.0/8, so a benchmark that runs the checks only touches loopback.
``--style explicit`` (default) writes one service object per host and service (the heaviest
document: hosts x services objects); ``--style selector`` writes services bound by label
selectors (hosts x services checks from few service objects).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson

CHECKS: list[dict[str, Any]] = [
    {"kind": "tcp", "port": 22},
    {"kind": "http", "port": 80, "path": "/health"},
    {"kind": "ping"},
    {"kind": "plugin", "command": ["/usr/lib/nagios/plugins/check_dummy", "0", "ok"]},
    {"kind": "tcp", "port": 443, "tls": True},
    {"kind": "plugin", "command": ["/usr/lib/nagios/plugins/check_disk", "-w", "10%", "-p", "/"]},
    {"kind": "http", "port": 8080, "path": "/metrics", "expect_status": [200, 204]},
    {"kind": "tcp", "port": 5432},
    {"kind": "plugin", "command": ["/usr/lib/nagios/plugins/check_load", "-w", "4,3,2"]},
    {"kind": "tcp", "port": 6379, "send": "PING\r\n", "expect": "+PONG"},
]
GROUPS = 20
SWITCH_EVERY = 50


def address(i: int) -> str:
    """A distinct loopback address per host (127.0.0.1 upwards)."""
    n = i + 1
    return f"127.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


def host_name(i: int) -> str:
    return f"sw-{i:06d}" if i % SWITCH_EVERY == 0 else f"host-{i:06d}"


def generate(hosts: int, services_per_host: int, zones: int, style: str) -> dict[str, Any]:
    zone_names = [f"zone-{z:02d}" for z in range(zones)]
    host_objs: list[dict[str, Any]] = []
    for i in range(hosts):
        switch = (i // SWITCH_EVERY) * SWITCH_EVERY
        host: dict[str, Any] = {
            "name": host_name(i),
            "address": address(i),
            "zone": zone_names[(i // SWITCH_EVERY) % zones],
            "labels": {"group": f"g{i % GROUPS}", "role": "switch" if i == switch else "server"},
            "check": {"template": "host-alive"},
        }
        if i != switch:
            host["parents"] = [host_name(switch)]
        host_objs.append(host)
    services: list[dict[str, Any]] = []
    if style == "explicit":
        for i in range(hosts):
            for s in range(services_per_host):
                services.append(
                    {
                        "name": f"{host_name(i)}-svc{s:02d}",
                        "hosts": [host_name(i)],
                        "check": CHECKS[s % len(CHECKS)],
                        "interval": "60s",
                        "thresholds": {"time": {"warning": "1", "critical": "5"}},
                    }
                )
    else:
        for g in range(GROUPS):
            for s in range(services_per_host):
                services.append(
                    {
                        "name": f"g{g}-svc{s:02d}",
                        "hosts": {"labels": {"group": f"g{g}"}},
                        "check": CHECKS[s % len(CHECKS)],
                        "interval": "60s",
                    }
                )
    return {
        "schema": "watchkeeper/v1",
        "zones": [{"name": z} for z in zone_names],
        "templates": [
            {"name": "host-alive", "interval": "60s", "check": {"kind": "ping", "count": 1}}
        ],
        "hosts": host_objs,
        "services": services,
        "notifications": [
            {"name": "ops", "kind": "webhook", "url": "http://127.0.0.1:9/hook", "secret": "env:WK"}
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--services-per-host", type=int, default=10)
    parser.add_argument("--zones", type=int, default=4)
    parser.add_argument("--style", choices=("explicit", "selector"), default="explicit")
    parser.add_argument("-o", "--output", help="file to write (default standard output)")
    args = parser.parse_args()
    body = orjson.dumps(generate(args.hosts, args.services_per_host, args.zones, args.style))
    if args.output:
        with open(args.output, "wb") as handle:
            handle.write(body)
    else:
        sys.stdout.buffer.write(body)


if __name__ == "__main__":
    main()
