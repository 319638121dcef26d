"""Secret references: env:NAME and file:/path, never the secret itself."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from watchkeeper.errors import SecretError, WatchkeeperError
from watchkeeper.secrets import SECRET_REF_PATTERN, is_secret_ref, resolve_secret


@pytest.mark.parametrize(
    "ref",
    ["env:TOKEN", "env:_x", "env:A1_B2", "file:/etc/key", "file:/a b/c", "file:/x:y"],
)
def test_references(ref: str) -> None:
    assert is_secret_ref(ref)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "hunter2",
        "env:",
        "env:1TOKEN",
        "env:A-B",
        "env:A B",
        "ENV:TOKEN",
        " env:TOKEN",
        "env:TOKEN\n",  # Python's $ matches before a final newline; a reference must not
        "env:TOKEN\nliteral",
        "file:",
        "file:relative/path",
        "file:/",
        "file:/ leading-space",
        "file:/etc/key\n",
        "https://vault/secret",
    ],
)
def test_literals_are_not_references(value: str) -> None:
    assert not is_secret_ref(value)


def test_the_pattern_agrees_with_the_function() -> None:
    for value in ["env:A", "file:/x", "env:", "x", "env:A\n"]:
        assert bool(re.fullmatch(SECRET_REF_PATTERN, value)) is is_secret_ref(value)


def test_resolve_env_from_a_mapping() -> None:
    assert resolve_secret("env:TOKEN", {"TOKEN": "s3cret"}) == "s3cret"
    assert resolve_secret("env:EMPTY", {"EMPTY": ""}) == ""


def test_resolve_env_from_the_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHKEEPER_TEST_SECRET", "from-env")
    assert resolve_secret("env:WATCHKEEPER_TEST_SECRET") == "from-env"


def test_an_unset_variable() -> None:
    with pytest.raises(
        SecretError, match=r"^environment variable TOKEN is not set \(secret env:TOKEN\)$"
    ):
        resolve_secret("env:TOKEN", {})


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("s3cret\n", "s3cret"),
        ("s3cret\r\n", "s3cret"),
        ("s3cret", "s3cret"),
        ("line1\nline2\n\n", "line1\nline2"),
        ("  padded  \n", "  padded  "),
    ],
)
def test_resolve_file_strips_only_trailing_newlines(
    tmp_path: Path, content: str, expected: str
) -> None:
    path = tmp_path / "secret"
    path.write_bytes(content.encode())
    assert resolve_secret(f"file:{path}") == expected


def test_an_unreadable_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    with pytest.raises(SecretError, match=f"^cannot read secret file {re.escape(str(missing))}: "):
        resolve_secret(f"file:{missing}")
    with pytest.raises(SecretError, match="cannot read secret file"):
        resolve_secret(f"file:{tmp_path}")  # a directory


def test_a_literal_is_refused_without_being_echoed() -> None:
    with pytest.raises(SecretError) as info:
        resolve_secret("hunter2-the-password")
    assert "hunter2-the-password" not in info.value.message
    assert info.value.message == "not a secret reference (expected env:NAME or file:/path): hun…"
    assert isinstance(info.value, WatchkeeperError)
