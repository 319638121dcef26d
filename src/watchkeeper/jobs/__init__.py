"""Jobs: what the manager asks workers to do, who may do it, and the queue that keeps them.

    payloads  the typed union of work (check, action; provisioning and deploys next)
    pools     which workers may run a job: a zone, or a host's own agent
    routing   which connected worker gets a job (pure; the job server asks it)
    states    a queued job's states and the one table of allowed moves
    queue     the persisted, at-most-once queue: leased, idempotent by key, audited,
              over a narrow connector (the store's SQL one, or `testing.InMemoryConnector`)

Pure but for the connector: nothing here opens a socket or a database.
"""

from __future__ import annotations
