"""The one error hierarchy of Watchkeeper.

Each class's docstring is its default message, so ``raise SourceTimeout`` explains itself.

    WatchkeeperError
     ├── DocumentError            a candidate document cannot be accepted
     │    └── DocumentUnreadable  not JSON, not an object, or too large to consider
     ├── SecretError              a secret reference cannot be resolved on this machine
     ├── SourceError              a source could not deliver a candidate (retried with backoff)
     │    ├── SourceUnavailable   connection refused, DNS, 5xx, missing file
     │    ├── SourceTimeout       no complete answer in time
     │    ├── SourceTooLarge      the body is over the size cap
     │    └── SourceRejected      4xx: retrying will not help until someone fixes it
     ├── StoreError               the database refused or failed an operation
     │    └── ImportFailed        an import was rolled back; the running configuration is unchanged
     └── UsageError               the command line is wrong (exit code 2)
"""

from __future__ import annotations


class WatchkeeperError(Exception):
    """Watchkeeper failed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())

    @property
    def message(self) -> str:
        return str(self.args[0])


class DocumentError(WatchkeeperError):
    """The candidate document is not acceptable."""


class DocumentUnreadable(DocumentError):
    """The candidate document cannot be read as a JSON object."""


class SecretError(WatchkeeperError):
    """A secret reference cannot be resolved."""


class SourceError(WatchkeeperError):
    """The source could not deliver a candidate document."""


class SourceUnavailable(SourceError):
    """The source is unavailable."""


class SourceTimeout(SourceError):
    """The source did not answer in time."""


class SourceTooLarge(SourceError):
    """The source's document is larger than the size cap."""


class SourceRejected(SourceError):
    """The source refused the request."""


class StoreError(WatchkeeperError):
    """The store failed."""


class ImportFailed(StoreError):
    """The import was rolled back; the running configuration is unchanged."""


class UsageError(WatchkeeperError):
    """The command line is not valid."""
