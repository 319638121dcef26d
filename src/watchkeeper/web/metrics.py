"""``GET /metrics``: check and host states and the latest metric values, for Prometheus.

Text exposition format 0.0.4, built by a pure function from what the manager holds in
memory (the engine's statuses, the telemetry recorder's latest values), so a scrape never
touches the database. Families:

* ``watchkeeper_check_state{host,service,zone}``: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN;
  ``watchkeeper_check_state_hard`` (1 hard, 0 soft), ``watchkeeper_check_attempt`` and
  ``watchkeeper_check_pending`` (1 until the first result; the state is then an assumed OK),
  ``watchkeeper_check_not_run`` (1 while its runs do not happen for want of a worker; the
  state is then its last real result's); ``service`` is empty for a host's own check;
* ``watchkeeper_host_state{host}``: 0 UP, 1 DOWN, 2 UNREACHABLE;
* ``watchkeeper_zone_health{zone}``: 0 ONLINE, 1 WAITING (no worker, within the grace), 2
  OFFLINE (no worker past it: the zone's checks are not run); ``watchkeeper_zone_workers``
  the workers connected for it. Alert on ``watchkeeper_zone_health == 2``;
* ``watchkeeper_metric{host,service,metric,label,uom}``: the last value of each perfdata
  metric. ``metric`` is the label made a valid Prometheus name (so relabelling can turn it
  into a metric name); ``label`` is the perfdata label as the plugin wrote it, which keeps
  two labels that sanitise alike apart.

Authentication is the mounting app's business (the API token, as for every route).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from fastapi import APIRouter
from fastapi.responses import Response

from watchkeeper.document.normalize import CheckRecord
from watchkeeper.engine import CheckStatus, HostStatus, StateType
from watchkeeper.telemetry.recorder import LatestMetric
from watchkeeper.web.views import ZoneRow

#: What Prometheus expects for the text format.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: A check as the endpoint shows it: its record (host, service, zone) and its status.
CheckSample = tuple[CheckRecord, CheckStatus]

_INVALID_NAME_CHARS = re.compile(r"[^a-zA-Z0-9_:]")


def metric_name(label: str) -> str:
    """A valid Prometheus metric name for a perfdata label: ``[a-zA-Z_:][a-zA-Z0-9_:]*``.

    Every other character becomes ``_``; a leading digit gets a ``_`` before it.
    """
    name = _INVALID_NAME_CHARS.sub("_", label)
    if not name or name[0].isdigit():
        name = "_" + name
    return name


def escape_label_value(value: str) -> str:
    """Backslash, double quote and newline escaped, as the format requires."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float) -> str:
    """A sample value as Prometheus writes it (``NaN``, ``+Inf``, ``-Inf`` included)."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


class _Family:
    def __init__(self, name: str, help_text: str) -> None:
        self.name = name
        self.help = help_text
        self.samples: list[str] = []

    def add(self, labels: dict[str, str], value: float) -> None:
        pairs = ",".join(f'{k}="{escape_label_value(v)}"' for k, v in labels.items())
        selector = f"{{{pairs}}}" if pairs else ""
        self.samples.append(f"{self.name}{selector} {format_value(value)}")

    def render(self) -> str:
        head = f"# HELP {self.name} {_escape_help(self.help)}\n# TYPE {self.name} gauge\n"
        return head + "".join(line + "\n" for line in self.samples)


#: `watchkeeper_zone_health` values.
ZONE_HEALTH = {"online": 0, "waiting": 1, "offline": 2}


def prometheus_text(
    checks: Iterable[CheckSample],
    hosts: Iterable[HostStatus],
    latest: Iterable[LatestMetric],
    zones: Iterable[ZoneRow] = (),
    cluster: ClusterSample | None = None,
) -> str:
    """The exposition text for the given checks, hosts and latest metric values, and this
    manager's place in its cluster."""
    state = _Family(
        "watchkeeper_check_state", "Check state: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN."
    )
    hard = _Family("watchkeeper_check_state_hard", "1 when the check state is hard, 0 when soft.")
    attempt = _Family("watchkeeper_check_attempt", "Current check attempt (1 while OK).")
    pending = _Family(
        "watchkeeper_check_pending", "1 while the check has no result yet (its state is OK)."
    )
    not_run = _Family(
        "watchkeeper_check_not_run",
        "1 while no worker could run the check (its state is its last real result's).",
    )
    for record, status in sorted(checks, key=lambda c: c[0].key):
        labels = {"host": record.host, "service": record.service or "", "zone": record.zone}
        state.add(labels, status.state.value)
        hard.add(labels, 1 if status.state_type is StateType.HARD else 0)
        attempt.add(labels, status.attempt)
        pending.add(labels, 1 if status.pending else 0)
        not_run.add(labels, 1 if status.not_run else 0)
    host_state = _Family("watchkeeper_host_state", "Host state: 0 UP, 1 DOWN, 2 UNREACHABLE.")
    for host in sorted(hosts, key=lambda h: h.host):
        host_state.add({"host": host.host}, host.state.value)
    zone_health = _Family(
        "watchkeeper_zone_health",
        "Zone health: 0 ONLINE, 1 WAITING (no worker, in the grace), 2 OFFLINE (checks not run).",
    )
    zone_workers = _Family("watchkeeper_zone_workers", "Workers connected for the zone.")
    for zone in sorted(zones, key=lambda z: z.name):
        zone_health.add({"zone": zone.name}, ZONE_HEALTH[zone.health])
        zone_workers.add({"zone": zone.name}, zone.workers_online)
    metric = _Family(
        "watchkeeper_metric", "Latest perfdata value of a check's metric, in its unit (uom)."
    )
    for value in sorted(latest, key=lambda m: (m.check_key, m.metric)):
        metric.add(
            {
                "host": value.host,
                "service": value.service or "",
                "metric": metric_name(value.metric),
                "label": value.metric,
                "uom": value.uom,
            },
            value.value,
        )
    families = (state, hard, attempt, pending, not_run, host_state, zone_health, zone_workers)
    return "".join(f.render() for f in (*families, metric, *_cluster_families(cluster)))


#: This manager's node name, whether it leads, and the term it knows.
ClusterSample = tuple[str, bool, int]


def _cluster_families(cluster: ClusterSample | None) -> tuple[_Family, ...]:
    if cluster is None:
        return ()
    node, leads, term = cluster
    leader = _Family(
        "watchkeeper_leader", "1 while this manager leads its cluster, 0 on a standby."
    )
    leader.add({"node": node}, 1 if leads else 0)
    current = _Family("watchkeeper_term", "The cluster's leader term as this manager knows it.")
    current.add({}, term)
    return leader, current


def metrics_router(
    get_statuses: Callable[[], Iterable[CheckSample]],
    get_hosts: Callable[[], Iterable[HostStatus]],
    get_latest: Callable[[], Iterable[LatestMetric]],
    get_zones: Callable[[], Iterable[ZoneRow]] = tuple,
    get_cluster: Callable[[], ClusterSample | None] = lambda: None,
) -> APIRouter:
    """A router serving ``GET /metrics`` from the getters (each called once per scrape)."""
    router = APIRouter()

    @router.get("/metrics", response_class=Response, include_in_schema=True)
    async def metrics() -> Response:
        body = prometheus_text(
            get_statuses(), get_hosts(), get_latest(), get_zones(), get_cluster()
        )
        return Response(content=body, media_type=CONTENT_TYPE)

    return router
