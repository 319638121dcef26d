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


def test_keys_export_then_import_gives_a_second_manager_the_same_fingerprint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second, exported = tmp_path / "m1", tmp_path / "m2", tmp_path / "host.key"
    assert main(["keys", "--data-dir", str(first)]) == 0
    pin = capsys.readouterr().out.strip()
    assert main(["keys", "--data-dir", str(first), "export", str(exported)]) == 0
    assert stat.S_IMODE(exported.stat().st_mode) == 0o600
    assert pin in capsys.readouterr().err
    assert main(["keys", "import", str(exported), "--data-dir", str(second)]) == 0
    assert capsys.readouterr().out.strip() == pin
    installed = keys.host_key_path(second)
    assert stat.S_IMODE(installed.stat().st_mode) == 0o600
    assert keys.fingerprint(keys.load_or_create_host_key(second)) == pin
    assert main(["keys", "--data-dir", str(second), "import", str(exported)]) == 0  # again: ok
    assert "already holds this key" in capsys.readouterr().err


def test_keys_export_never_overwrites_without_force_and_can_write_stdout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, target = tmp_path / "data", tmp_path / "out.key"
    target.write_text("precious")
    d = ["--data-dir", str(data)]
    assert main(["keys", *d]) == 0
    capsys.readouterr()
    assert main(["keys", *d, "export", str(target)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"watchkeeper: FILE: {target} exists; --force overwrites it"
    )
    assert target.read_text() == "precious"
    target.chmod(0o644)
    assert main(["keys", *d, "export", "--force", str(target)]) == 0
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    exported = keys.fingerprint(asyncssh.read_private_key(target))
    assert exported == keys.fingerprint(keys.load_or_create_host_key(data))
    capsys.readouterr()
    assert main(["keys", *d, "export", "-"]) == 0
    assert capsys.readouterr().out.startswith("-----BEGIN OPENSSH PRIVATE KEY-----")


def test_keys_export_of_a_data_dir_without_a_key_creates_none(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "typo"
    assert main(["keys", "--data-dir", str(data), "export", str(tmp_path / "k")]) == 2
    assert f"no host key {keys.host_key_path(data)}" in capsys.readouterr().err
    assert not data.exists() and not (tmp_path / "k").exists()


def test_keys_import_refuses_to_replace_another_key_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    assert main(["keys", "--data-dir", str(data)]) == 0
    old = capsys.readouterr().out.strip()
    other = asyncssh.generate_private_key("ssh-ed25519")
    source = tmp_path / "other.key"
    source.write_bytes(other.export_private_key())
    d = ["--data-dir", str(data)]
    assert main(["keys", *d, "import", str(source)]) == 2
    err = capsys.readouterr().err
    assert old in err and keys.fingerprint(other) in err and "--force" in err
    assert keys.fingerprint(keys.load_or_create_host_key(data)) == old
    assert main(["keys", *d, "import", "--force", str(source)]) == 0
    assert capsys.readouterr().out.strip() == keys.fingerprint(other)
    assert keys.fingerprint(keys.load_or_create_host_key(data)) == keys.fingerprint(other)
    assert stat.S_IMODE(keys.host_key_path(data).stat().st_mode) == 0o600


def test_keys_import_names_the_file_that_is_no_host_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    public = tmp_path / "k.pub"
    public.write_bytes(asyncssh.generate_private_key("ssh-ed25519").export_public_key())
    junk = tmp_path / "junk"
    junk.write_text("hello\n")
    rsa = tmp_path / "rsa"
    rsa.write_bytes(asyncssh.generate_private_key("ssh-rsa", key_size=2048).export_private_key())
    locked = tmp_path / "locked"
    locked.write_bytes(
        asyncssh.generate_private_key("ssh-ed25519").export_private_key(passphrase="pw")
    )
    expected = {
        tmp_path / "missing": "cannot read",
        public: "is a public key",
        junk: "is no private key",
        rsa: "holds an ssh-rsa key; a job server's host key must be ssh-ed25519",
        locked: "is not a usable private key",
    }
    data = tmp_path / "data"
    for path, why in expected.items():
        assert main(["keys", "--data-dir", str(data), "import", str(path)]) == 2
        err = capsys.readouterr().err
        assert f"FILE: {path}" in err or f"FILE: cannot read {path}" in err, err
        assert why in err, err
    assert not keys.host_key_path(data).exists()
