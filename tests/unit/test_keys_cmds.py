"""``watchkeeper keys`` and ``watchkeeper worker-key add|list|revoke``."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import asyncssh
import pytest

from watchkeeper.cli import main
from watchkeeper.transport import keys


def pubkey(tmp_path: Path, name: str = "w1") -> tuple[Path, asyncssh.SSHKey]:
    key = asyncssh.generate_private_key("ssh-ed25519", comment=f"{name}@host")
    path = tmp_path / f"{name}.pub"
    path.write_bytes(key.export_public_key())
    return path, key


def test_keys_creates_the_host_key_once_and_prints_its_fingerprint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    assert main(["keys", "--data-dir", str(data)]) == 0
    first = capsys.readouterr().out.strip()
    assert first.startswith("SHA256:") and len(first) == len("SHA256:") + 43
    path = keys.host_key_path(data)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert main(["keys", "--data-dir", str(data)]) == 0
    assert capsys.readouterr().out.strip() == first
    assert keys.fingerprint(asyncssh.read_private_key(path)) == first


def test_add_list_revoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = ["--data-dir", str(tmp_path)]
    path, key = pubkey(tmp_path)
    add = ["worker-key", "add", "w1", "--zones", "dmz, core", "--public-key", str(path)]
    assert main([*add, "--labels", "role=edge,site=ams", *d]) == 0
    assert keys.fingerprint(key) in capsys.readouterr().out
    assert main(["worker-key", "list", "--format", "json", *d]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["name"] == "w1" and row["zones"] == ["dmz", "core"]
    assert row["labels"] == {"role": "edge", "site": "ams"}
    assert row["public_key"] == keys.canonical_public_key(key)  # the comment is dropped
    assert row["revoked_at"] is None
    assert main(["worker-key", "revoke", "w1", *d]) == 0
    capsys.readouterr()
    assert main(["worker-key", "list", *d]) == 0
    assert "revoked" in capsys.readouterr().out


def test_a_zone_or_host_the_running_document_lacks_is_enrolled_with_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = ["--data-dir", str(tmp_path)]
    doc = tmp_path / "doc.json"
    doc.write_text(
        json.dumps(
            {
                "schema": "watchkeeper/v1",
                "zones": [{"name": "dmz"}, {"name": "core"}],
                "hosts": [{"name": "web1", "address": "10.0.0.1", "zone": "dmz"}],
            }
        )
    )
    first, _ = pubkey(tmp_path, "early")
    assert (
        main(["worker-key", "add", "early", "--zones", "lab", "--public-key", str(first), *d]) == 0
    )
    assert capsys.readouterr().err == ""  # nothing imported yet: nothing to compare with
    assert main(["import", str(doc), *d]) == 0
    path, _ = pubkey(tmp_path)
    add = ["worker-key", "add", "w1", "--zones", "dmzz,core", "--agent-for", "web2"]
    assert main([*add, "--public-key", str(path), *d]) == 0
    out, err = capsys.readouterr()
    assert "enrolled w1" in out
    assert err.splitlines() == [
        "warning: zone 'dmzz' is not in the running configuration (did you mean 'dmz'?); "
        "the key serves it once a document has it",
        "warning: host 'web2' is not in the running configuration (did you mean 'web1'?)",
    ]


def test_a_name_or_key_already_enrolled_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = ["--data-dir", str(tmp_path)]
    path, _ = pubkey(tmp_path)
    assert main(["worker-key", "add", "w1", "--zones", "a", "--public-key", str(path), *d]) == 0
    assert main(["worker-key", "add", "w2", "--zones", "a", "--public-key", str(path), *d]) == 2
    assert "already enrolled as 'w1'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--zones", ""], "at least one zone"),
        (["--zones", " , "], "at least one zone"),
        (["--zones", "a", "--labels", "oops"], "not NAME=VALUE"),
    ],
)
def test_bad_enrolment_input_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    path, _ = pubkey(tmp_path)
    argv = ["worker-key", "add", "w1", "--public-key", str(path), *args]
    assert main([*argv, "--data-dir", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read"),
        (b"ssh-ed25519 not-base64!!", "not an OpenSSH public key"),
        (b"", "not an OpenSSH public key"),
        ("private", "is a private key"),
    ],
)
def test_a_bad_key_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes | str | None, message: str
) -> None:
    path = tmp_path / "key.pub"
    if content == "private":
        path.write_bytes(asyncssh.generate_private_key("ssh-ed25519").export_private_key())
    elif isinstance(content, bytes):
        path.write_bytes(content)
    argv = ["worker-key", "add", "w1", "--zones", "a", "--public-key", str(path)]
    assert main([*argv, "--data-dir", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err


def test_revoking_an_unknown_name_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["worker-key", "revoke", "ghost", "--data-dir", str(tmp_path)]) == 2
    assert "no worker key named 'ghost'" in capsys.readouterr().err


def test_listing_without_a_database_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["worker-key", "list", "--format", "json", "--data-dir", str(tmp_path / "x")]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert not (tmp_path / "x").exists()
