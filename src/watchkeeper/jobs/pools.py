"""Pools: which workers may run a job. Pure.

A pool is a zone, served by that zone's workers, or ``agent:HOST`` for a check that only
the host's own agent may run (`watchkeeper.document.normalize.CheckRecord.pool`). The
engine holds back and fails checks per pool and the job server queues per pool, so a
missing agent on one host says so on that host's agent checks instead of on its zone.
"""

from __future__ import annotations

#: Pools of agent checks are ``agent:HOST``; zone names cannot contain a colon.
AGENT_POOL_PREFIX = "agent:"


def agent_pool(host: str) -> str:
    return AGENT_POOL_PREFIX + host


def pool_agent(pool: str) -> str | None:
    """The host of an agent pool, or None for a zone."""
    return pool[len(AGENT_POOL_PREFIX) :] if pool.startswith(AGENT_POOL_PREFIX) else None


def pool_of(zone: str, agent: str | None) -> str:
    """The pool of a job of ``zone`` that ``agent`` (a host) must run, if any."""
    return zone if agent is None else agent_pool(agent)


def no_worker_reason(pool: str) -> str:
    """The UNKNOWN output of a check whose pool has nobody to run it."""
    host = pool_agent(pool)
    return f"no worker for zone {pool}" if host is None else f"no agent connected for host {host}"
