"""``watchkeeper user add|list|passwd|remove`` and ``user token add|list|revoke``."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import pytest

from watchkeeper import store
from watchkeeper.cli import main
from watchkeeper.store import users as users_store
from watchkeeper.web.security import tokens
from watchkeeper.web.security.passwords import Passwords


def _verify(data: Path, name: str, password: str) -> bool:
    async def run() -> bool:
        db = store.Database.for_data_dir(data)
        try:
            async with db.session() as session:
                creds = await users_store.get_credentials(session, name)
        finally:
            await db.aclose()
        return creds is not None and Passwords().verify(creds.password_hash, password)

    return asyncio.run(run())


def _stdin(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(text))


def test_add_prints_a_generated_password_once_and_list_shows_no_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = ["--data-dir", str(tmp_path)]
    assert main(["user", "add", "root", "--role", "admin", *d]) == 0
    out, err = capsys.readouterr()
    password = out.strip()
    assert len(password) >= 20 and "added user root (admin)" in err
    assert _verify(tmp_path, "root", password)

    assert main(["user", "list", *d]) == 0
    listed = capsys.readouterr().out
    assert listed.startswith("root  admin  enabled  last login never")
    assert password not in listed
    assert main(["user", "list", "--format", "json", *d]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["name"] == "root" and row["role"] == "admin" and "password_hash" not in row


def test_add_and_passwd_from_stdin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    d = ["--data-dir", str(tmp_path)]
    _stdin(monkeypatch, "first long password\n")
    assert main(["user", "add", "ann", "--role", "viewer", "--password-stdin", *d]) == 0
    assert capsys.readouterr().out == ""  # nothing to show: the caller chose it
    assert _verify(tmp_path, "ann", "first long password")

    _stdin(monkeypatch, "second long password\r\n")
    assert main(["user", "passwd", "ann", "--password-stdin", *d]) == 0
    assert _verify(tmp_path, "ann", "second long password")
    assert not _verify(tmp_path, "ann", "first long password")

    assert main(["user", "passwd", "ann", *d]) == 0
    generated = capsys.readouterr().out.strip()
    assert _verify(tmp_path, "ann", generated)


@pytest.mark.parametrize(
    ("argv", "stdin", "message"),
    [
        (["user", "add", "a b", "--role", "viewer"], "", "NAME: 'a b' is not a user name"),
        (["user", "add", "ann", "--role", "viewer", "--password-stdin"], "short\n", "at least"),
        (["user", "add", "ann", "--role", "viewer", "--password-stdin"], "", "holds no password"),
        (["user", "passwd", "ghost"], "", "NAME: no user named 'ghost'"),
        (["user", "remove", "ghost"], "", "NAME: no user named 'ghost'"),
        (["user", "token", "add", "ghost", "--token-name", "x"], "", "NAME: no user named"),
        (["user", "token", "revoke", "99"], "", "ID: no API token 99"),
    ],
)
def test_errors_name_the_argument_and_exit_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    stdin: str,
    message: str,
) -> None:
    _stdin(monkeypatch, stdin)
    assert main([*argv, "--data-dir", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err


def test_bad_role_is_refused_by_argparse(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["user", "add", "ann", "--role", "root", "--data-dir", str(tmp_path)])
    assert exited.value.code == 2
    assert "--role: invalid choice: 'root'" in capsys.readouterr().err


def test_duplicate_and_last_admin(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = ["--data-dir", str(tmp_path)]
    assert main(["user", "add", "root", "--role", "admin", *d]) == 0
    assert main(["user", "add", "root", "--role", "viewer", *d]) == 2
    assert "NAME: a user named 'root' already exists" in capsys.readouterr().err
    assert main(["user", "remove", "root", *d]) == 2
    assert "last enabled admin" in capsys.readouterr().err
    assert main(["user", "add", "ann", "--role", "viewer", *d]) == 0
    assert main(["user", "remove", "ann", *d]) == 0
    assert "removed user ann" in capsys.readouterr().out


def test_tokens_add_list_revoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = ["--data-dir", str(tmp_path)]
    assert main(["user", "add", "otto", "--role", "operator", *d]) == 0
    capsys.readouterr()
    add = ["user", "token", "add", "otto", "--token-name", "grafana"]
    assert main([*add, "--role", "admin", *d]) == 2
    assert "--role: a token of 'otto' can have at most the operator role" in (
        capsys.readouterr().err
    )
    assert main([*add, "--expires", "soon", *d]) == 2
    assert "--expires: expiry 'soon' is not a duration" in capsys.readouterr().err
    assert main([*add, "--token-name", "bad name", *d]) == 2
    assert "--token-name: 'bad name' is not a token name" in capsys.readouterr().err

    assert main([*add, "--role", "viewer", "--expires", "30d", *d]) == 0
    out, err = capsys.readouterr()
    secret = out.strip()
    assert tokens.looks_like_user_token(secret) and "Shown this once" in err
    assert "role viewer, until" in err

    assert main(["user", "token", "list", *d]) == 0
    listed = capsys.readouterr().out
    assert f"1  {secret[:9]}...  grafana  owner=otto  role=viewer  until" in listed
    assert secret not in listed
    assert main(["user", "token", "list", "nobody", "--format", "json", *d]) == 0
    assert json.loads(capsys.readouterr().out) == []

    assert main(["user", "token", "revoke", "1", *d]) == 0
    assert "revoked API token 1 (grafana) of otto" in capsys.readouterr().out
    assert main(["user", "token", "list", "otto", *d]) == 0
    assert "revoked" in capsys.readouterr().out


def test_token_add_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = ["--data-dir", str(tmp_path)]
    assert main(["user", "add", "otto", "--role", "operator", *d]) == 0
    capsys.readouterr()
    argv = ["user", "token", "add", "otto", "--token-name", "ci", "--format", "json", *d]
    assert main(argv) == 0
    made = json.loads(capsys.readouterr().out)
    assert made["role"] == "operator" and made["expires_at"] is None
    assert tokens.looks_like_user_token(made["token"])


def test_list_without_a_database_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["user", "list", "--data-dir", str(tmp_path / "none")]) == 0
    assert "no users" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()
