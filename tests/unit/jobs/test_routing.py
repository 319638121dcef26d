"""Which worker gets a job: zones and labels from enrolment, then least loaded."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from watchkeeper.jobs.routing import choose


@dataclass
class W:
    name: str
    zones: frozenset[str]
    labels: Mapping[str, str] = field(default_factory=dict)
    agent_for: str | None = None
    ready: bool = True
    leased: int = 0
    concurrency: int = 4
    capacity: int = 4
    load: float = 0.0
    last_assigned: int = 0


def test_only_enrolled_zones_and_matching_labels_are_eligible() -> None:
    a = W("a", frozenset({"core"}))
    b = W("b", frozenset({"dmz"}), labels={"role": "web"})
    assert choose([a, b], zone="dmz", requires={}) is b
    assert choose([a, b], zone="dmz", requires={"role": "web"}) is b
    assert choose([a, b], zone="dmz", requires={"role": "db"}) is None
    assert choose([a, b], zone="lab", requires={}) is None


def test_busy_draining_and_full_workers_are_skipped() -> None:
    full = W("full", frozenset({"z"}), leased=4)
    refusing = W("refusing", frozenset({"z"}), ready=False)
    assert choose([full, refusing], zone="z", requires={}) is None


def test_least_loaded_then_least_recently_assigned() -> None:
    busy = W("busy", frozenset({"z"}), leased=2)
    idle_recent = W("idle_recent", frozenset({"z"}), last_assigned=9)
    idle_old = W("idle_old", frozenset({"z"}), last_assigned=3)
    assert choose([busy, idle_recent, idle_old], zone="z", requires={}) is idle_old
    hot = W("hot", frozenset({"z"}), load=1.7)
    assert choose([hot, idle_recent], zone="z", requires={}) is idle_recent


def test_a_worker_under_pressure_takes_only_what_it_offers_and_comes_last() -> None:
    pressured = W("pressured", frozenset({"z"}), capacity=1)
    calm = W("calm", frozenset({"z"}), leased=2)
    assert choose([pressured, calm], zone="z", requires={}) is calm
    calm.leased = 4
    assert choose([pressured, calm], zone="z", requires={}) is pressured
    pressured.leased = 1
    assert choose([pressured, calm], zone="z", requires={}) is None


def test_agent_jobs_go_only_to_that_hosts_agent_and_agents_get_nothing_else() -> None:
    worker = W("worker", frozenset({"dmz"}))
    web1 = W("web1-agent", frozenset({"dmz"}), agent_for="web1")
    web2 = W("web2-agent", frozenset({"dmz"}), agent_for="web2")
    everyone = [worker, web1, web2]
    assert choose(everyone, zone="dmz", requires={}, agent="web1") is web1
    assert choose(everyone, zone="dmz", requires={}, agent="web2") is web2
    assert choose(everyone, zone="dmz", requires={}) is worker
    assert choose([web1, web2], zone="dmz", requires={}) is None
    assert choose([worker, web2], zone="dmz", requires={}, agent="web1") is None


def test_an_agent_serves_its_host_only_in_its_enrolled_zones() -> None:
    web1 = W("web1-agent", frozenset({"dmz"}), agent_for="web1")
    assert choose([web1], zone="core", requires={}, agent="web1") is None
