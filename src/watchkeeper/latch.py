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

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from watchkeeper.errors import StoreError


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


async def step_forever(
    step: Callable[[], Awaitable[None]],
    wake: asyncio.Event,
    latch: FailureLatch,
    interval: float,
) -> None:
    """Call ``step`` until cancelled: again when ``wake`` is set or ``interval`` passes.

    A stage's loop (infrastructure, deployments): a store failure is logged once by
    ``latch`` and retried at the next step, never the end of the loop.
    """
    while True:
        try:
            await step()
            latch.succeeded()
        except StoreError as exc:
            latch.failed(exc.message)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), interval)
        wake.clear()
