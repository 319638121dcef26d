"""The agent's wheelhouse: found only with this version's wheel and pip's; one tar, cached."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from watchkeeper.deploy import wheelhouse


def wheels(directory: Path, *names: str) -> Path:
    directory.mkdir(exist_ok=True)
    for name in names:
        (directory / name).write_bytes(b"PK" + name.encode())
    return directory


OURS = "watchkeeper-0.3.0-py3-none-any.whl"
PIP = "pip-26.0-py3-none-any.whl"


def test_a_wheelhouse_needs_this_version_and_pip(tmp_path: Path) -> None:
    where = wheels(tmp_path / "wh", "watchkeeper-0.2.0-py3-none-any.whl", PIP)
    with pytest.raises(wheelhouse.WheelhouseError, match=r"no wheelhouse of watchkeeper 0\.3\.0"):
        wheelhouse.find("0.3.0", where)
    wheels(where, OURS)
    (where / PIP).unlink()
    with pytest.raises(wheelhouse.WheelhouseError, match="pip's wheel is missing"):
        wheelhouse.find("0.3.0", where)
    with pytest.raises(wheelhouse.WheelhouseError, match=str(tmp_path / "none")):
        wheelhouse.find("0.3.0", tmp_path / "none")


def test_its_python_is_that_of_its_version_specific_wheels(tmp_path: Path) -> None:
    where = wheels(
        tmp_path / "wh", OURS, PIP,
        "argon2_cffi_bindings-25.1.0-cp39-abi3-manylinux_2_17_x86_64.whl",
        "pydantic_core-2.3.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    )  # fmt: skip
    assert wheelhouse.find("0.3.0", where).python == "3.11"
    pure = wheels(tmp_path / "pure", OURS, PIP)
    assert wheelhouse.find("0.3.0", pure).python == ""


def test_the_tar_is_made_once_per_content(tmp_path: Path) -> None:
    where = wheels(tmp_path / "wh", OURS, PIP)
    found = wheelhouse.find("0.3.0", where)
    first = found.tarball(tmp_path / "cache")
    assert (tmp_path / "cache").stat().st_mode & 0o077 == 0  # the worker's own
    assert found.tarball(tmp_path / "cache") == first
    with tarfile.open(first) as tar:
        assert sorted(tar.getnames()) == sorted([OURS, PIP])
    wheels(where, "six-1.17.0-py2.py3-none-any.whl")
    assert wheelhouse.find("0.3.0", where).tarball(tmp_path / "cache") != first


def test_the_environment_names_another_wheelhouse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(wheelhouse.ENV, str(wheels(tmp_path / "wh", OURS, PIP)))
    assert wheelhouse.find("0.3.0").path == tmp_path / "wh"
