"""The transition table of queued jobs, and what each move writes."""

from __future__ import annotations

import pytest

from watchkeeper.jobs.queue import IllegalMove, change_for
from watchkeeper.jobs.states import LIVE, TRANSITIONS, JobState, allowed, sources


@pytest.mark.parametrize("state", list(JobState))
def test_final_states_go_nowhere_and_live_ones_somewhere(state: JobState) -> None:
    live = {JobState.PENDING, JobState.QUEUED, JobState.DISPATCHED, JobState.VERIFYING}
    assert state.final is (state not in live) and live == LIVE
    assert bool(TRANSITIONS[state]) is not state.final


def test_what_may_have_run_is_never_sent_again() -> None:
    # Nothing that was handed to a worker goes back to pending, and only "nobody took
    # it" (dispatched -> queued) returns a job to the queue.
    for state in JobState:
        if state.ran:
            assert not allowed(state, JobState.PENDING)
    assert sources(JobState.QUEUED) == [JobState.PENDING, JobState.DISPATCHED]
    assert sources(JobState.DISPATCHED) == [JobState.QUEUED]


def test_a_move_writes_what_follows_from_it() -> None:
    sent = change_for([JobState.QUEUED], JobState.DISPATCHED, now=10.0, lease_until=70.0)
    assert sent.values == {"dispatched_at": 10.0, "lease_until": 70.0} and sent.count_attempt
    back = change_for([JobState.DISPATCHED], JobState.QUEUED, now=11.0)
    assert back.values == {"lease_until": None, "dispatched_at": None}
    ended = change_for([JobState.DISPATCHED], JobState.VERIFYING, now=12.0, worker="w1")
    assert ended.values == {"worker": "w1", "lease_until": None}
    done = change_for([JobState.VERIFYING], JobState.SUCCEEDED, now=13.0, output="ok")
    assert done.values == {"output": "ok", "finished_at": 13.0} and not done.count_attempt
    with pytest.raises(IllegalMove, match="from pending, succeeded to verifying"):
        change_for([JobState.PENDING, JobState.SUCCEEDED], JobState.VERIFYING, now=0)
    with pytest.raises(IllegalMove, match="from nowhere"):
        change_for([], JobState.SKIPPED, now=0)
