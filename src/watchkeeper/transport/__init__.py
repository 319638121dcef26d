"""The job transport: the manager's SSH job server on port 4730 and the worker's client.

Modules: `protocol` (framed, versioned wire messages), `session` (frames over an SSH
channel), `keys` (host key, fingerprints), `registry` (which key serves which zones),
`routing` (which worker gets a job, pure), `workers` (a connected worker's state),
`sshd` (SSH auth and refusals), `server` (`JobServer`: leases, failover), `client`
(`WorkerConnection`), `sensors` (worker pressure), `errors` (the exception tree).
"""

from __future__ import annotations
