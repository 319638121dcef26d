"""Waiting for a condition another process, thread or the kernel brings about.

The one way tests wait: poll the condition, bounded by a deadline generous enough for a
loaded 2-core machine, and fail naming what did not happen. Never a fixed sleep.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable

POLL = 0.01


async def wait_until(
    condition: Callable[[], bool | Awaitable[bool]], *, within: float = 10.0, what: str = ""
) -> None:
    """Return once ``condition()`` is true; raise AssertionError after ``within`` seconds."""
    try:
        async with asyncio.timeout(within):
            while True:
                result = condition()
                if await result if inspect.isawaitable(result) else result:
                    return
                await asyncio.sleep(POLL)
    except TimeoutError:
        raise AssertionError(f"not reached within {within}s: {what or condition!r}") from None
