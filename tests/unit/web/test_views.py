"""The read models over a runner fed with results by hand, on a clock the test moves."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fixtures.engine import (
    CRITICAL,
    OK,
    UNKNOWN,
    WARNING,
    FakeServer,
    Fed,
    fed_runner,
    worker_info,
)
from watchkeeper import store
from watchkeeper.web import views

DOC = {
    "schema": "watchkeeper/v1",
    "zones": [{"name": "core"}, {"name": "dmz"}],
    "hosts": [
        {"name": "web1", "address": "10.0.0.1", "zone": "core", "labels": {"role": "web"},
         "check": {"check": {"kind": "tcp", "port": 22}, "interval": "1d", "max_attempts": 1}},
        {"name": "web2", "address": "10.0.0.2", "zone": "core", "labels": {"role": "web"}},
        {"name": "db1", "address": "10.0.1.1", "zone": "core"},
        {"name": "edge1", "address": "192.168.9.1", "zone": "dmz"},
    ],
    "services": [
        {"name": "ssh", "hosts": ["web1", "web2", "db1", "edge1"], "interval": "1d",
         "max_attempts": 1, "check": {"kind": "tcp", "port": 22}},
        {"name": "http", "hosts": ["web1", "web2"], "interval": "1d", "max_attempts": 3,
         "check": {"kind": "tcp", "port": 80}},
    ],
}  # fmt: skip


class Setup(Fed):
    def rows(self, **filters: object) -> views.Page[views.ServiceRow]:
        return views.service_rows(self.ports, now=self.clock.now, **filters)  # type: ignore[arg-type]


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    db = store.Database.for_data_dir(tmp_path)
    await db.migrate()
    server = FakeServer([worker_info("w1", ("core",)), worker_info("w2", ("core", "dmz"))])
    fed = await fed_runner(db, DOC, server)
    yield Setup(db, fed.runner, fed.stages, fed.server, fed.clock)
    await db.aclose()


async def problems_reported(s: Setup) -> None:
    """db1!ssh CRITICAL first (oldest), then web1!ssh CRITICAL, edge1!ssh UNKNOWN,
    web2!ssh WARNING, web1!http a SOFT CRITICAL; the rest OK (web2!http stays PENDING)."""
    await s.report({"web1": (OK, "ssh up"), "web2!ssh": (OK, "fine"), "edge1!ssh": (OK, "ok")})
    await s.report({"db1!ssh": (CRITICAL, "connection refused")})
    await s.report({"web1!ssh": (CRITICAL, "connection refused")})
    await s.report({"edge1!ssh": (UNKNOWN, "no route")})
    await s.report({"web2!ssh": (WARNING, "slow answer")})
    await s.report({"web1!http": (CRITICAL, "timed out")})


async def test_rows_carry_state_and_record_fields(setup: Setup) -> None:
    await problems_reported(setup)
    row = views.service_detail(setup.ports, "web1!http", now=setup.clock.now)
    assert row is not None
    assert (row.host, row.service, row.zone) == ("web1", "http", "core")
    assert (row.state, row.state_type, row.attempt, row.max_attempts) == ("CRITICAL", "SOFT", 1, 3)
    assert row.output == "timed out" and row.last_check == setup.clock.now
    assert row.severity == 3 and not row.acknowledged and row.alarm_id is None
    pending = views.service_detail(setup.ports, "web2!http", now=setup.clock.now)
    assert pending is not None and pending.state == "PENDING" and pending.severity == 0
    hard = views.service_detail(setup.ports, "db1!ssh", now=setup.clock.now)
    assert hard is not None and hard.alarm_id is not None and hard.state_type == "HARD"
    assert views.service_detail(setup.ports, "nope!x", now=setup.clock.now) is None


async def test_filters_search_and_pagination(setup: Setup) -> None:
    await problems_reported(setup)
    everything = setup.rows(limit=100)
    assert everything.total == 7  # 4 ssh, 2 http and web1's host check
    assert [r.key for r in everything.items][:3] == ["db1!ssh", "edge1!ssh", "web1"]
    page = setup.rows(offset=2, limit=3)
    assert (page.total, page.offset, page.limit) == (7, 2, 3)
    assert [r.key for r in page.items] == ["web1", "web1!http", "web1!ssh"]
    assert setup.rows(offset=50).items == [] and setup.rows(offset=50).total == 7

    assert {r.key for r in setup.rows(q="REFUSED").items} == {"db1!ssh", "web1!ssh"}
    assert {r.key for r in setup.rows(q="web2").items} == {"web2!ssh", "web2!http"}
    assert {r.key for r in setup.rows(host="web1").items} == {"web1", "web1!ssh", "web1!http"}
    assert {r.key for r in setup.rows(zone="dmz").items} == {"edge1!ssh"}
    assert {r.key for r in setup.rows(states=["critical"]).items} == {
        "db1!ssh", "web1!ssh", "web1!http"
    }  # fmt: skip
    assert [r.key for r in setup.rows(states=["PENDING"]).items] == ["web2!http"]
    assert {r.key for r in setup.rows(problems=True).items} == {
        "db1!ssh", "web1!ssh", "edge1!ssh", "web2!ssh", "web1!http"
    }  # fmt: skip
    both = setup.rows(q="ssh", states=["CRITICAL", "WARNING"], zone="core")
    assert {r.key for r in both.items} == {"db1!ssh", "web1!ssh", "web2!ssh"}


async def test_unhandled_leaves_out_soft_acknowledged_and_downtimed_problems(
    setup: Setup,
) -> None:
    await problems_reported(setup)
    assert {r.key for r in setup.rows(unhandled=True).items} == {
        "db1!ssh", "web1!ssh", "edge1!ssh", "web2!ssh"
    }  # fmt: skip
    await setup.stages.alarms.acknowledge("db1!ssh", "ann", "on it")
    await setup.stages.alarms.schedule_downtime(
        "web2", None, setup.clock.now - 1, setup.clock.now + 3600, "ann", "maintenance"
    )
    now = setup.clock.now
    assert {r.key for r in setup.rows(unhandled=True).items} == {"web1!ssh", "edge1!ssh"}
    acked = views.service_detail(setup.ports, "db1!ssh", now=now)
    assert acked is not None and acked.acknowledged and acked.silenced == "acknowledged by ann"
    down = views.service_detail(setup.ports, "web2!ssh", now=now)
    assert down is not None and down.in_downtime and down.silenced is not None
    hosts = views.host_rows(setup.ports, now=now, q="web2")
    assert [h.in_downtime for h in hosts.items] == [True]


async def test_problems_put_hard_unhandled_worst_and_oldest_first(setup: Setup) -> None:
    await problems_reported(setup)
    await setup.stages.alarms.acknowledge("db1!ssh", "ann", "on it")
    found = views.problems(setup.ports, now=setup.clock.now)
    assert [r.key for r in found] == [
        "web1!ssh",  # HARD, unacknowledged, CRITICAL
        "edge1!ssh",  # HARD, unacknowledged, UNKNOWN
        "web2!ssh",  # HARD, unacknowledged, WARNING
        "db1!ssh",  # HARD CRITICAL and the oldest, but acknowledged
        "web1!http",  # SOFT
    ]
    assert [r.key for r in views.problems(setup.ports, now=0, limit=2)] == [
        "web1!ssh",
        "edge1!ssh",
    ]
    summary = views.overview(setup.ports, now=setup.clock.now, limit=3)
    assert summary.problems == found[:3]
    assert summary.services == views.state_counts(setup.ports)
    assert summary.hosts == views.host_counts(setup.ports)
    assert summary.unhandled == setup.rows(unhandled=True).total == 3


async def test_sorts_by_severity_then_age_and_by_age(setup: Setup) -> None:
    await problems_reported(setup)
    worst = [r.key for r in setup.rows(problems=True, sort="severity").items]
    assert worst == ["db1!ssh", "web1!ssh", "web1!http", "edge1!ssh", "web2!ssh"]
    oldest = [r.key for r in setup.rows(problems=True, sort="age").items]
    assert oldest == ["db1!ssh", "web1!ssh", "edge1!ssh", "web2!ssh", "web1!http"]
    newest = [r.key for r in setup.rows(problems=True, sort="recent").items]
    assert newest == list(reversed(oldest))


async def test_bad_arguments_name_themselves(setup: Setup) -> None:
    with pytest.raises(views.ViewArgumentError) as bad_sort:
        setup.rows(sort="colour")
    assert bad_sort.value.argument == "sort"
    with pytest.raises(views.ViewArgumentError) as bad_state:
        setup.rows(states=["SIDEWAYS"])
    assert bad_state.value.argument == "state" and "SIDEWAYS" in str(bad_state.value)
    with pytest.raises(views.ViewArgumentError):
        views.host_rows(setup.ports, now=0, states=["OK"])


async def test_counts_of_services_and_hosts(setup: Setup) -> None:
    assert views.state_counts(setup.ports) == {
        "OK": 0,
        "WARNING": 0,
        "CRITICAL": 0,
        "UNKNOWN": 0,
        "PENDING": 6,
    }  # fmt: skip  (web1's host check counts as the host, not as a service)
    # web1 has a host check, still pending; the others have none and are UP.
    assert views.host_counts(setup.ports) == {"UP": 3, "DOWN": 0, "UNREACHABLE": 0, "PENDING": 1}
    await problems_reported(setup)
    assert views.state_counts(setup.ports) == {
        "OK": 0, "WARNING": 1, "CRITICAL": 3, "UNKNOWN": 1, "PENDING": 1
    }  # fmt: skip
    assert views.host_counts(setup.ports)["UP"] == 4
    await setup.report({"web1": (CRITICAL, "no answer")})
    assert views.host_counts(setup.ports) == {"UP": 3, "DOWN": 1, "UNREACHABLE": 0, "PENDING": 0}
    web1_ssh = views.service_detail(setup.ports, "web1!ssh", now=setup.clock.now)
    assert web1_ssh is not None and web1_ssh.host_problem
    assert "web1!ssh" not in {r.key for r in setup.rows(unhandled=True).items}


async def test_host_rows_and_detail(setup: Setup) -> None:
    await problems_reported(setup)
    now = setup.clock.now
    page = views.host_rows(setup.ports, now=now)
    assert [h.name for h in page.items] == ["db1", "edge1", "web1", "web2"] and page.total == 4
    web1 = page.items[2]
    assert (web1.address, web1.zone, web1.labels, web1.state) == (
        "10.0.0.1", "core", {"role": "web"}, "UP"
    )  # fmt: skip
    assert web1.has_check and web1.output == "ssh up"
    assert web1.services == {"OK": 0, "WARNING": 0, "CRITICAL": 2, "UNKNOWN": 0, "PENDING": 0}
    by_address = views.host_rows(setup.ports, now=now, q="192.168")
    assert [h.name for h in by_address.items] == ["edge1"]
    assert views.host_rows(setup.ports, now=now, zone="core", limit=2).total == 3
    paged = views.host_rows(setup.ports, now=now, offset=1, limit=2)
    assert [h.name for h in paged.items] == ["edge1", "web1"] and paged.total == 4
    assert views.host_rows(setup.ports, now=now, states=["down"]).total == 0

    detail = views.host_detail(setup.ports, "web1", now=now)
    assert detail is not None
    host, checks = detail
    assert host == web1
    assert [c.key for c in checks] == ["web1", "web1!http", "web1!ssh"]
    assert views.host_detail(setup.ports, "nope", now=now) is None


async def test_zones_and_workers(setup: Setup) -> None:
    setup.server.connected.append(worker_info("agent-web1", (), agent_for="web1"))
    assert views.zone_rows(setup.ports) == [
        views.ZoneRow(
            name="core",
            hosts=3,
            checks=6,
            workers_online=2,
            health="online",
            no_worker_since=None,
            not_run=0,
            capacity=8,
            in_use=0,
        ),
        views.ZoneRow(
            name="dmz",
            hosts=1,
            checks=1,
            workers_online=1,
            health="online",
            no_worker_since=None,
            not_run=0,
            capacity=4,
            in_use=0,
            warnings=("zone dmz has 1 worker: no failover",),
        ),
    ]
    assert [w.name for w in views.worker_rows(setup.ports)] == ["w1", "w2", "agent-web1"]
