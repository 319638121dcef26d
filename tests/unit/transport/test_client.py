"""The worker's dial policy: its managers in order, the backoff only per failed round."""

from __future__ import annotations

from pathlib import Path

import pytest

from watchkeeper.transport.client import WorkerSettings, backoff_rounds


@pytest.mark.parametrize(
    ("managers", "failures", "rounds"),
    [
        (1, 1, 1),  # one manager: every failure is a round, as before there were lists
        (1, 3, 3),
        (2, 1, 0),  # the second manager is dialled at once
        (2, 2, 1),  # both failed: the first backoff
        (2, 3, 0),
        (2, 4, 2),  # the second round failed: a longer one
        (3, 2, 0),
        (3, 6, 2),
    ],
)
def test_the_backoff_grows_per_round_of_the_list_not_per_manager(
    managers: int, failures: int, rounds: int
) -> None:
    assert backoff_rounds(failures, managers) == rounds


def test_the_settings_list_every_manager_and_pin_the_first_first() -> None:
    settings = WorkerSettings(
        host="m1",
        more_managers=(("m2", 4731),),
        key_path=Path("/k"),
        manager_fingerprint="SHA256:a",
        more_fingerprints=("SHA256:b",),
    )
    assert settings.managers == (("m1", 4730), ("m2", 4731))
    assert settings.fingerprints == ("SHA256:a", "SHA256:b")
    single = WorkerSettings(host="m1", port=1, key_path=Path("/k"), manager_fingerprint="x")
    assert (single.managers, single.fingerprints) == ((("m1", 1),), ("x",))
