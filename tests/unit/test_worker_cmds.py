"""``watchkeeper worker``'s flags: managers and pins listed or repeated; the status file."""

from __future__ import annotations

from pathlib import Path

import pytest

from watchkeeper import liveness
from watchkeeper.cli import build_parser
from watchkeeper.commands.worker_cmds import _status_writer, manager_list, worker_settings
from watchkeeper.errors import UsageError
from watchkeeper.transport.client import WorkerSettings


@pytest.fixture
def key(tmp_path: Path) -> Path:
    path = tmp_path / "worker.key"
    path.write_text("not read here")
    return path


def settings_of(key: Path, *argv: str) -> WorkerSettings:
    args = build_parser().parse_args(["worker", "--key", str(key), *argv])
    return worker_settings(args)


def test_one_manager_and_one_pin_as_before(key: Path) -> None:
    s = settings_of(key, "--manager", "m1:4730", "--manager-fingerprint", "SHA256:a")
    assert (s.managers, s.fingerprints) == ((("m1", 4730),), ("SHA256:a",))


def test_managers_and_pins_comma_separated_and_repeated(key: Path) -> None:
    s = settings_of(
        key,
        "--manager",
        "m1,m2:4731",
        "--manager",
        "[::1]:4732",
        "--manager-fingerprint",
        "SHA256:a,SHA256:b",
        "--manager-fingerprint",
        "SHA256:c",
    )
    assert s.managers == (("m1", 4730), ("m2", 4731), ("::1", 4732))
    assert s.fingerprints == ("SHA256:a", "SHA256:b", "SHA256:c")
    assert manager_list(s) == "m1:4730,m2:4731,[::1]:4732"  # what an agent's env gets


def test_the_environment_gives_lists_too_and_a_flag_replaces_it(
    key: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHKEEPER_MANAGER", "m1:4730,m2:4731")
    monkeypatch.setenv("WATCHKEEPER_MANAGER_FINGERPRINT", "SHA256:a, SHA256:b")
    s = settings_of(key)
    assert s.managers == (("m1", 4730), ("m2", 4731))
    assert s.fingerprints == ("SHA256:a", "SHA256:b")
    s = settings_of(key, "--manager", "m3", "--manager", "m4")
    assert s.managers == (("m3", 4730), ("m4", 4730))  # not m1, m2, m3, m4


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--manager", "m1:x"], "--manager: expected HOST[:PORT] such as m1:4730, got 'm1:x'"),
        (["--manager", ","], "--manager: expected HOST[:PORT][,HOST[:PORT]...], got nothing"),
        (
            ["--manager", "m1", "--manager-fingerprint", "abc"],
            "--manager-fingerprint: expected SHA256:... as `watchkeeper keys` prints it, got 'abc'",
        ),
    ],
)
def test_bad_lists_name_the_flag(key: Path, argv: list[str], message: str) -> None:
    pins = [] if "--manager-fingerprint" in argv else ["--manager-fingerprint", "SHA256:a"]
    with pytest.raises(UsageError) as caught:
        settings_of(key, *argv, *pins)
    assert caught.value.message == message


def test_the_status_file_names_the_manager_connected_else_every_one(
    key: Path, tmp_path: Path
) -> None:
    status = tmp_path / "status.json"
    args = build_parser().parse_args(
        ["worker", "--key", str(key), "--manager", "m1,m2:4731", "--manager-fingerprint",
         "SHA256:a", "--status-file", str(status)]
    )  # fmt: skip
    write = _status_writer(args, worker_settings(args))
    write(True, 5.0, "m2:4731")
    assert liveness.read(status).manager == "m2:4731"
    write(False, 5.0, "m2:4731")
    assert liveness.read(status).manager == "m1:4730 or m2:4731"
