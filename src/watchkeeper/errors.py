"""The one error hierarchy of Watchkeeper.

Each class's docstring is its default message, so ``raise SourceTimeout`` explains itself.

    WatchkeeperError
     ├── DocumentError            a candidate document cannot be accepted
     │    └── DocumentUnreadable  not JSON, not an object, or too large to consider
     ├── RequestError             what an operator asked of the running system cannot be done
     │    ├── NotFound            no such thing (the API answers 404)
     │    ├── Conflict            it is not in a state that allows this (409)
     │    ├── InvalidArgument     an argument has a value that cannot be used (422)
     │    └── Forbidden           the caller's role does not allow it (403)
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


class RequestError(WatchkeeperError):
    """The request cannot be done."""


class NotFound(RequestError, LookupError):
    """No such thing."""


class Conflict(RequestError):
    """It is not in a state that allows this."""


class InvalidArgument(RequestError, ValueError):
    """An argument has a value that cannot be used.

    ``argument`` names it (a field, a query parameter, a form field); the message starts
    with it, so one line tells an operator what to fix.
    """

    def __init__(self, argument: str | None, message: str) -> None:
        super().__init__(message if argument is None else f"{argument}: {message}")
        self.argument = argument


class Forbidden(RequestError):
    """The caller's role does not allow this."""


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
