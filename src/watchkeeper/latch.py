"""Log a repeating failure twice: once when it starts, once when it ends.

A loop that writes to a store every second must not log a warning every second while the
store is down, nor stay silent when it comes back. `FailureLatch` remembers which side it
is on and logs only on the transition (Home Assistant's coordinator does the same):

    latch = FailureLatch(logger, "cannot save alarms, will retry: %s",
                         "saving alarms recovered", action="alarms")
    try:
        await save()
    except StoreError as exc:
        latch.failed(exc.message)      # a warning the first time only
    else:
        latch.succeeded()              # an info line if it was failing

The ``action`` names the structured log events ``<action>_failing`` and
``<action>_recovered``.
"""

from __future__ import annotations

import logging


class FailureLatch:
    """Whether an operation is failing now, logging each change of that once."""

    def __init__(
        self,
        logger: logging.Logger,
        failing: str,
        recovered: str,
        *,
        action: str,
    ) -> None:
        self._logger = logger
        #: A %-format with one argument: the error message.
        self._failing_text = failing
        self._recovered_text = recovered
        self._action = action
        self.failing = False

    def failed(self, message: str) -> bool:
        """Record a failure; True (and a warning logged) when it is the first in a row."""
        first = not self.failing
        if first:
            self._logger.warning(
                self._failing_text, message, extra={"action": f"{self._action}_failing"}
            )
        self.failing = True
        return first

    def succeeded(self) -> bool:
        """Record a success; True (and an info line logged) when it ends a failure."""
        ended = self.failing
        if ended:
            self._logger.info(self._recovered_text, extra={"action": f"{self._action}_recovered"})
        self.failing = False
        return ended
