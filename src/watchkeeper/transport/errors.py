"""What can go wrong between a worker and the job server, as `WatchkeeperError` subclasses.

asyncssh's own exceptions never leave `watchkeeper.transport`: they are mapped here, at the
edge, with ``raise X from exc``.

    WatchkeeperError
     └── TransportError            the job transport failed (retried with backoff by workers)
          ├── ProtocolError        a frame or message broke the protocol; that connection closes
          ├── ManagerUnreachable   connect, SSH negotiation or the subsystem failed
          ├── AuthRefused          the manager does not accept this worker's key
          ├── HostKeyMismatch      the manager's host key is not the pinned one (never retried)
          └── EnrolmentMismatch    the key is enrolled for another role than --agent-for says
                                   (never retried)
"""

from __future__ import annotations

from watchkeeper.errors import WatchkeeperError


class TransportError(WatchkeeperError):
    """The job transport failed."""


class ProtocolError(TransportError):
    """The peer broke the job protocol."""


class ManagerUnreachable(TransportError):
    """The manager's job server cannot be reached."""


class AuthRefused(TransportError):
    """The manager refused this worker's key (not enrolled, or revoked)."""


class HostKeyMismatch(TransportError):
    """The manager's host key is not the one this worker pins; refusing to connect."""


class EnrolmentMismatch(TransportError):
    """The manager enrolled this worker's key otherwise than the worker was started to serve
    (``--agent-for HOST``); an operator's mistake, not a transient failure."""
