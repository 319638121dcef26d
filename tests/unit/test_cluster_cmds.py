"""``watchkeeper cluster status``: what it prints and when it exits non-zero."""

from __future__ import annotations

from typing import Any

from watchkeeper.commands.cluster_cmds import leader_alive, render


def _answer(*, alive: bool = True) -> dict[str, Any]:
    node = {"node": "m1", "role": "leader", "term": 3, "url": "http://m1:8470",
            "jobs": "m1:4730", "pid": 1, "version": "0.1.0", "started_at": "t0",
            "heartbeat_at": "t1", "alive": alive}  # fmt: skip
    return {
        "ha": True, "node": "m2", "role": "standby", "term": 3, "leader": "m1",
        "leader_url": "http://m1:8470", "lease_s": 10.0, "heartbeat_s": 1.0,
        "nodes": [node],
        "terms": [{"term": 3, "node": "m1", "previous": "m2", "since": "t0",
                   "ended_at": None, "reason": "took over from m2"}],
    }  # fmt: skip


def test_a_standby_names_the_leader_the_nodes_and_the_terms() -> None:
    lines = render(_answer())
    assert lines[0] == "m2: standby, term 3, leader m1 at http://m1:8470"
    assert any(line.startswith("m1  leader  3  http://m1:8470  m1:4730") for line in lines)
    assert lines[-1] == "3  m1  t0  -  took over from m2"
    assert leader_alive(_answer())


def test_a_silent_leader_is_flagged_and_fails_the_command() -> None:
    answer = _answer(alive=False)
    assert any("(silent: down?)" in line for line in render(answer))
    assert not leader_alive(answer)


def test_a_single_manager_is_its_own_leader() -> None:
    answer = {"ha": False, "node": "host:8470"}
    assert render(answer) == ["host:8470: a single manager (not clustered), leader"]
    assert leader_alive(answer)
