"""A zone's workers, slots and failover warning, from the workers and the zone statuses."""

from __future__ import annotations

from dataclasses import dataclass

from watchkeeper.engine import ZoneCapacity, ZoneStatus, zone_capacity
from watchkeeper.engine.zones import ZoneHealth, waiting
from watchkeeper.jobs.pools import agent_pool


@dataclass(frozen=True)
class Worker:
    zones: tuple[str, ...]
    capacity: int = 4
    in_flight: int = 0
    agent_for: str | None = None


def online(*zones: str) -> dict[str, ZoneStatus]:
    return {z: ZoneStatus(zone=z, health=ZoneHealth.ONLINE, since=0.0) for z in zones}


def test_a_zone_of_two_workers_sums_their_slots_and_has_no_warning() -> None:
    found = zone_capacity(
        [Worker(("eu",), capacity=8, in_flight=3), Worker(("eu",), capacity=2, in_flight=2)],
        online("eu"),
    )
    assert found == {"eu": ZoneCapacity(zone="eu", workers=2, capacity=10, in_use=5)}


def test_a_zone_with_checks_and_one_worker_is_warned_of_no_failover() -> None:
    found = zone_capacity([Worker(("eu",), in_flight=1)], online("eu"))
    assert found["eu"].warnings == ("zone eu has 1 worker: no failover",)
    assert (found["eu"].workers, found["eu"].capacity, found["eu"].in_use) == (1, 4, 1)


def test_no_worker_is_the_zones_health_to_report_not_a_warning() -> None:
    found = zone_capacity([], {"eu": waiting("eu", 0.0)})
    assert found == {"eu": ZoneCapacity(zone="eu", workers=0, capacity=0, in_use=0)}


def test_a_workers_zone_without_checks_is_listed_but_not_warned() -> None:
    found = zone_capacity([Worker(("spare",))], online())
    assert found == {"spare": ZoneCapacity(zone="spare", workers=1, capacity=4, in_use=0)}


def test_a_worker_of_two_zones_counts_in_each_and_agents_in_none() -> None:
    statuses = online("eu", "us") | {agent_pool("db1"): waiting(agent_pool("db1"), 0.0)}
    workers = [
        Worker(("eu", "us"), capacity=4, in_flight=1),
        Worker(("us",), capacity=2),
        Worker(("eu",), capacity=1, agent_for="db1"),
    ]
    found = zone_capacity(workers, statuses)
    assert list(found) == ["eu", "us"]  # the agent pool is not a zone
    assert found["eu"] == ZoneCapacity(
        zone="eu", workers=1, capacity=4, in_use=1,
        warnings=("zone eu has 1 worker: no failover",),
    )  # fmt: skip
    assert found["us"] == ZoneCapacity(zone="us", workers=2, capacity=6, in_use=1)
