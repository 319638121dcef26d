"""A scripted `Source` for tests of anything that consumes sources (poller, manager).

Shipped in the package, like httpx's ``MockTransport``, so every test suite uses the same
fake instead of growing its own::

    source = ScriptedSource("fake", [b'{"schema": "watchkeeper/v1"}', None, SourceTimeout()])
"""

from __future__ import annotations

from collections.abc import Iterable

from watchkeeper.clock import Clock, utcnow
from watchkeeper.errors import SourceError
from watchkeeper.sources.base import Candidate

Step = bytes | SourceError | None


class ScriptedSource:
    """Each `fetch` plays the next step: bytes → a candidate, None → unchanged, an error → raised.

    Once the script runs out, the source reports "unchanged" forever.
    """

    def __init__(self, name: str, steps: Iterable[Step] = (), *, clock: Clock = utcnow) -> None:
        self._name = name
        self.steps: list[Step] = list(steps)
        self.fetches = 0
        self.closed = False
        self._clock = clock

    @property
    def name(self) -> str:
        return self._name

    def push(self, *steps: Step) -> None:
        """Append to the script, for tests that decide the next answer as they go."""
        self.steps.extend(steps)

    async def fetch(self) -> Candidate | None:
        self.fetches += 1
        if not self.steps:
            return None
        step = self.steps.pop(0)
        if isinstance(step, SourceError):
            raise step
        if step is None:
            return None
        return Candidate(body=step, source=self._name, fetched_at=self._clock())

    async def aclose(self) -> None:
        self.closed = True
