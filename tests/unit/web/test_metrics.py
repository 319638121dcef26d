"""``/metrics``: the Prometheus text format, parsed back by a small strict parser."""

from __future__ import annotations

import re

import httpx
from fastapi import FastAPI

from watchkeeper.document.normalize import CheckRecord
from watchkeeper.engine import CheckStatus, HostState, HostStatus, StateType
from watchkeeper.results import CheckState
from watchkeeper.telemetry.recorder import LatestMetric
from watchkeeper.web.metrics import (
    CONTENT_TYPE,
    format_value,
    metric_name,
    metrics_router,
    prometheus_text,
)
from watchkeeper.web.views import ZoneRow

T = 1_764_000_000.0

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|\Z)')
_SAMPLE = re.compile(rf"^({_NAME})(?:\{{(.*)\}})? (\S+)$")
_VALUE = re.compile(r"^(NaN|[+-]Inf|[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?)$")

Sample = tuple[str, tuple[tuple[str, str], ...], float]


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), value)


def parse(text: str) -> tuple[dict[str, tuple[str, str]], list[Sample]]:
    """HELP/TYPE per family and every sample; anything off the 0.0.4 grammar fails."""
    assert text.endswith("\n")
    families: dict[str, tuple[str, str]] = {}
    helps: dict[str, str] = {}
    samples: list[Sample] = []
    seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    for line in text[:-1].split("\n"):
        if line.startswith("# HELP "):
            name, _, help_text = line[7:].partition(" ")
            assert re.fullmatch(_NAME, name) and name not in helps
            helps[name] = help_text
        elif line.startswith("# TYPE "):
            name, kind = line[7:].split(" ")
            assert kind == "gauge" and name in helps and name not in families
            families[name] = (helps[name], kind)
        else:
            match = _SAMPLE.match(line)
            assert match, line
            name, body, value = match.groups()
            assert name in families, f"{name} has no TYPE line before it"
            labels: list[tuple[str, str]] = []
            rest = body or ""
            while rest:
                label = _LABEL.match(rest)
                assert label, rest
                labels.append((label.group(1), _unescape(label.group(2))))
                rest = rest[label.end() :]
            assert _VALUE.match(value), value
            key = (name, tuple(labels))
            assert key not in seen, f"duplicate sample {key}"
            seen.add(key)
            samples.append((name, tuple(labels), float(value.replace("Inf", "inf"))))
    return families, samples


def rec(host: str, service: str | None, zone: str = "core") -> CheckRecord:
    key = host if service is None else f"{host}!{service}"
    return CheckRecord(key=key, host=host, service=service, zone=zone, hash="h", spec={})


def status(key: str, state: CheckState, state_type: StateType, attempt: int) -> CheckStatus:
    return CheckStatus(
        key=key,
        state=state,
        state_type=state_type,
        attempt=attempt,
        pending=False,
        last_state_change=T,
        last_hard_change=T,
    )


def latest(service: str | None, metric: str, value: float, uom: str = "") -> LatestMetric:
    key = "web1" if service is None else f"web1!{service}"
    return LatestMetric(
        check_key=key,
        host="web1",
        service=service,
        zone="core",
        metric=metric,
        uom=uom,
        value=value,
        at=T,
    )


CHECKS = [
    (rec("web1", "http"), status("web1!http", CheckState.CRITICAL, StateType.SOFT, 2)),
    (rec("web1", None), status("web1", CheckState.OK, StateType.HARD, 1)),
    (
        rec("db1", 'disk "/"\\x\n', zone="dmz"),
        CheckStatus.initial('db1!disk "/"\\x\n', T).evolve(
            stale=True, not_run="no worker for zone dmz"
        ),
    ),
]
ZONES = [
    ZoneRow(name="core", hosts=1, checks=2, workers_online=2, health="online",
            no_worker_since=None, not_run=0),
    ZoneRow(name="dmz", hosts=1, checks=1, workers_online=0, health="offline",
            no_worker_since=T, not_run=1),
    ZoneRow(name="lab", hosts=0, checks=0, workers_online=0, health="waiting",
            no_worker_since=T, not_run=0),
]  # fmt: skip
HOSTS = [
    HostStatus(host="web1", state=HostState.DOWN, last_state_change=T, last_hard_change=T),
    HostStatus.initial("db1", T),
    HostStatus(host="app", state=HostState.UNREACHABLE, last_state_change=T, last_hard_change=T),
]
LATEST = [
    latest("http", "time", 0.25, "s"),
    latest("http", "size", 1024, "B"),
    latest("disk", "/var/log", 1.5e12, "B"),
    latest("disk", "/var_log", 7, "B"),  # sanitises like /var/log: kept apart by `label`
    latest(None, "rta", -3.25e-05, "ms"),
]


def by_name(samples: list[Sample], name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {labels: value for n, labels, value in samples if n == name}


def test_exposition_parses_back_with_every_family_and_escaping() -> None:
    families, samples = parse(prometheus_text(CHECKS, HOSTS, LATEST, ZONES))
    assert set(families) == {
        "watchkeeper_check_state",
        "watchkeeper_check_state_hard",
        "watchkeeper_check_attempt",
        "watchkeeper_check_pending",
        "watchkeeper_check_not_run",
        "watchkeeper_host_state",
        "watchkeeper_zone_health",
        "watchkeeper_zone_workers",
        "watchkeeper_metric",
    }
    http = (("host", "web1"), ("service", "http"), ("zone", "core"))
    ping = (("host", "web1"), ("service", ""), ("zone", "core"))
    odd = (("host", "db1"), ("service", 'disk "/"\\x\n'), ("zone", "dmz"))
    assert by_name(samples, "watchkeeper_check_state") == {http: 2, ping: 0, odd: 0}
    assert by_name(samples, "watchkeeper_check_state_hard") == {http: 0, ping: 1, odd: 1}
    assert by_name(samples, "watchkeeper_check_attempt") == {http: 2, ping: 1, odd: 1}
    assert by_name(samples, "watchkeeper_check_pending") == {http: 0, ping: 0, odd: 1}
    assert by_name(samples, "watchkeeper_check_not_run") == {http: 0, ping: 0, odd: 1}
    assert by_name(samples, "watchkeeper_zone_health") == {
        (("zone", "core"),): 0,
        (("zone", "dmz"),): 2,
        (("zone", "lab"),): 1,
    }
    assert by_name(samples, "watchkeeper_zone_workers") == {
        (("zone", "core"),): 2,
        (("zone", "dmz"),): 0,
        (("zone", "lab"),): 0,
    }
    assert by_name(samples, "watchkeeper_host_state") == {
        (("host", "app"),): 2,
        (("host", "db1"),): 0,
        (("host", "web1"),): 1,
    }
    metrics = by_name(samples, "watchkeeper_metric")
    assert metrics == {
        (
            ("host", "web1"),
            ("service", "disk"),
            ("metric", "_var_log"),
            ("label", "/var/log"),
            ("uom", "B"),
        ): 1.5e12,
        (
            ("host", "web1"),
            ("service", "disk"),
            ("metric", "_var_log"),
            ("label", "/var_log"),
            ("uom", "B"),
        ): 7,
        (
            ("host", "web1"),
            ("service", "http"),
            ("metric", "size"),
            ("label", "size"),
            ("uom", "B"),
        ): 1024,
        (
            ("host", "web1"),
            ("service", "http"),
            ("metric", "time"),
            ("label", "time"),
            ("uom", "s"),
        ): 0.25,
        (
            ("host", "web1"),
            ("service", ""),
            ("metric", "rta"),
            ("label", "rta"),
            ("uom", "ms"),
        ): -3.25e-05,
    }


def test_nothing_to_show_is_still_valid() -> None:
    families, samples = parse(prometheus_text([], [], []))
    assert len(families) == 9 and samples == []


def test_metric_names_follow_the_prometheus_rules() -> None:
    assert metric_name("time") == "time"
    assert metric_name("/") == "_"
    assert metric_name("") == "_"
    assert metric_name("1m load") == "_1m_load"
    assert metric_name("rx:bytes-µs") == "rx:bytes__s"
    for label in ("a b", "9", "é", "x.y"):
        assert re.fullmatch(_NAME, metric_name(label))


def test_values() -> None:
    assert [format_value(v) for v in (1.0, -2.0, 0.5, 1e20, float("inf"), float("nan"))] == [
        "1",
        "-2",
        "0.5",
        "1e+20",
        "+Inf",
        "NaN",
    ]
    assert format_value(float("-inf")) == "-Inf"


async def test_the_router_serves_the_text_with_its_content_type() -> None:
    app = FastAPI()
    app.include_router(metrics_router(lambda: CHECKS, lambda: HOSTS, lambda: LATEST))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == CONTENT_TYPE
    assert response.text == prometheus_text(CHECKS, HOSTS, LATEST)


def test_a_clustered_manager_says_whether_it_leads_and_its_term() -> None:
    from watchkeeper.web.metrics import prometheus_text

    text = prometheus_text([], [], [], [], ("m2", False, 7))
    assert 'watchkeeper_leader{node="m2"} 0\n' in text
    assert "watchkeeper_term 7\n" in text
    assert "watchkeeper_leader" not in prometheus_text([], [], [], [], None)
