"""``watchkeeper cluster status``: who leads, every manager's last heartbeat, the terms.

It asks a running manager (leader or standby: both answer) through ``/api/v1/cluster``,
with the same ``--url``, ``--token`` and ``--data-dir`` discovery as ``watchkeeper infra``.
Exit codes: 0 a leader is known and alive; 1 the manager cannot be reached, or no alive
leader (an election runs, or every manager is down but this one); 2 the manager refused.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from watchkeeper.commands import manager_client
from watchkeeper.commands.exits import EXIT_INVALID, EXIT_OK


def render(answer: Mapping[str, Any]) -> list[str]:
    """The status as lines: this manager, then the nodes, then the recent terms."""
    if not answer.get("ha"):
        return [f"{answer['node']}: a single manager (not clustered), leader"]
    lines = [
        f"{answer['node']}: {answer['role']}, term {answer['term']}, leader "
        f"{answer['leader'] or '(election running)'}"
        f"{' at ' + answer['leader_url'] if answer.get('leader_url') else ''}",
        f"lease {answer['lease_s']:g} s, heartbeat {answer['heartbeat_s']:g} s",
        "",
        "NODE  ROLE  TERM  WEB  JOBS  HEARTBEAT",
    ]
    for node in answer.get("nodes", []):
        alive = "" if node["alive"] else "  (silent: down?)"
        lines.append(
            f"{node['node']}  {node['role']}  {node['term']}  {node['url']}  {node['jobs']}  "
            f"{node['heartbeat_at']}{alive}"
        )
    terms = answer.get("terms", [])
    if terms:
        lines += ["", "TERM  LEADER  SINCE  ENDED  WHY"]
        for term in terms:
            lines.append(
                f"{term['term']}  {term['node']}  {term['since']}  {term['ended_at'] or '-'}  "
                f"{term['reason']}"
            )
    return lines


def leader_alive(answer: Mapping[str, Any]) -> bool:
    if not answer.get("ha"):
        return True
    leader = answer.get("leader")
    return any(n["node"] == leader and n["alive"] for n in answer.get("nodes", []))


async def status(args: argparse.Namespace) -> int:
    def show(answer: Mapping[str, Any]) -> None:
        print("\n".join(render(answer)))

    def exit_of(answer: Mapping[str, Any]) -> int:
        return EXIT_OK if leader_alive(answer) else EXIT_INVALID

    return await manager_client.call(args, "GET", "/api/v1/cluster", show, exit_of=exit_of)
