"""A Poller on a real file: edits, a save by rename, a deleted file and its return."""

from __future__ import annotations

import os
import random
from contextlib import aclosing
from datetime import UTC, datetime
from pathlib import Path

from watchkeeper.sources import Candidate, Poller, open_source

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


async def test_poller_follows_a_file_through_edits_and_an_outage(tmp_path: Path) -> None:
    path = tmp_path / "doc.json"
    path.write_bytes(b'{"v": 1}')
    taken: list[bytes] = []

    async def intake(candidate: Candidate) -> None:
        taken.append(candidate.body)

    async with aclosing(open_source(str(path), clock=lambda: NOW)) as source:
        poller = Poller(source, intake, interval=1.0, clock=lambda: NOW, rng=random.Random(1))
        assert (await poller.poll_once()).ok
        assert (await poller.poll_once()).ok  # unchanged: nothing delivered

        staged = tmp_path / ".doc.json.tmp"
        staged.write_bytes(b'{"v": 2}')
        os.replace(staged, path)  # how editors and config management save
        await poller.poll_once()

        path.unlink()
        gone = await poller.poll_once()
        assert (gone.ok, gone.consecutive_failures) == (False, 1)
        assert gone.last_error == f"cannot read {path}: No such file or directory"

        path.write_bytes(b'{"v": 3}')
        back = await poller.poll_once()
        assert (back.ok, back.consecutive_failures, back.last_error) == (True, 0, None)

    assert taken == [b'{"v": 1}', b'{"v": 2}', b'{"v": 3}']
