"""The lease's decisions: when a node leads, stays, or steps down; when it may act."""

from __future__ import annotations

import pytest

from watchkeeper.cluster.lease import (
    Beat,
    Lead,
    LeaseSettings,
    Role,
    Stay,
    StepDown,
    decide,
    valid,
)

LEASE = LeaseSettings(lease=10.0, heartbeat=1.0)


def test_renew_deadline_ends_before_the_server_frees_the_lock() -> None:
    assert LEASE.renew_deadline == 8.0
    assert LEASE.renew_deadline < LEASE.lease
    assert LEASE.hold_off == 2 * LEASE.heartbeat


@pytest.mark.parametrize(("lease", "heartbeat"), [(2.0, 1.0), (1.0, 0.0), (5.0, -1.0)])
def test_settings_refuse_a_lease_shorter_than_three_beats(lease: float, heartbeat: float) -> None:
    with pytest.raises(ValueError, match=r"heartbeat|lease"):
        LeaseSettings(lease=lease, heartbeat=heartbeat)


def test_a_standby_leads_only_when_its_beat_won_the_lock() -> None:
    won = Beat(ok=True, holds_lock=True, term=3, leader="m1")
    assert decide(Role.STANDBY, 0, won, since_good=0, settings=LEASE) == Lead()
    lost = Beat(ok=True, holds_lock=False, term=3, leader="m1")
    assert decide(Role.STANDBY, 0, lost, since_good=0, settings=LEASE) == Stay()
    failed = Beat(ok=False, error="down")
    assert decide(Role.STANDBY, 0, failed, since_good=100, settings=LEASE) == Stay()


def test_a_leader_keeps_the_lead_while_lock_and_term_are_its_own() -> None:
    beat = Beat(ok=True, holds_lock=True, term=4, leader="m1")
    assert decide(Role.LEADER, 4, beat, since_good=0.9, settings=LEASE) == Stay()


def test_a_leader_is_deposed_by_a_term_that_moved() -> None:
    beat = Beat(ok=True, holds_lock=True, term=5, leader="m2")
    decision = decide(Role.LEADER, 4, beat, since_good=1, settings=LEASE)
    assert isinstance(decision, StepDown)
    assert "term 5 belongs to m2, not 4" in decision.reason


def test_a_leader_that_lost_its_lock_steps_down() -> None:
    beat = Beat(ok=True, holds_lock=False, term=4, leader="m1")
    assert isinstance(decide(Role.LEADER, 4, beat, since_good=1, settings=LEASE), StepDown)


def test_a_leader_rides_out_failed_beats_until_the_renew_deadline() -> None:
    failed = Beat(ok=False, error="connection refused")
    assert decide(Role.LEADER, 4, failed, since_good=7.9, settings=LEASE) == Stay()
    decision = decide(Role.LEADER, 4, failed, since_good=8.0, settings=LEASE)
    assert isinstance(decision, StepDown)
    assert "connection refused" in decision.reason


def test_may_act_until_the_renew_deadline() -> None:
    assert valid(0.0, LEASE)
    assert valid(7.99, LEASE)
    assert not valid(8.0, LEASE)
    assert not valid(30.0, LEASE)  # a leader woken from a long pause


def test_the_election_session_reads_a_multi_host_url_as_the_pool_does() -> None:
    from watchkeeper.cluster.election import conninfo

    found = conninfo(
        "postgresql+psycopg://wk:pw@/wk?host=db1:5432&host=db2:5433&target_session_attrs=read-write"
    )
    assert "host=db1,db2" in found
    assert "port=5432,5433" in found
    assert "target_session_attrs=read-write" in found
    assert "password=pw" in found
