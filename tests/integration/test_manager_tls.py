"""The manager serving HTTPS with ``--tls-cert`` / ``--tls-key``: a self-signed pair made here."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import ssl
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from watchkeeper.cli import main
from watchkeeper.errors import UsageError
from watchkeeper.runtime import Manager, ManagerSettings

DOC = {
    "schema": "watchkeeper/v1",
    "zones": [{"name": "core"}],
    "hosts": [{"name": "h1", "address": "127.0.0.1", "zone": "core"}],
}


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, with its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "watchkeeper test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def settings(tmp_path: Path, cert: Path | None, key: Path | None) -> ManagerSettings:
    source = tmp_path / "doc.json"
    source.write_text(json.dumps(DOC))
    return ManagerSettings(
        source=str(source),
        data_dir=tmp_path / "data",
        http_port=0,
        jobs_port=0,
        poll_interval=0.2,
        tls_cert=cert,
        tls_key=key,
    )


async def test_serves_https_and_sets_secure_session_cookies(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    manager = Manager(settings(tmp_path, cert, key))
    ready = asyncio.Event()

    async def started() -> None:
        ready.set()

    task = asyncio.create_task(manager.run(started))
    try:
        async with asyncio.timeout(20):
            await ready.wait()
        assert manager.url.startswith("https://127.0.0.1:")
        trust = ssl.create_default_context(cafile=str(cert))
        async with httpx.AsyncClient(base_url=manager.url, verify=trust, timeout=10) as client:
            assert manager.first_admin_password is not None
            login = await client.post(
                "/api/v1/session",
                json={"name": "admin", "password": manager.first_admin_password},
            )
            assert login.status_code == 200, login.text
            cookie = login.headers["set-cookie"].lower()
            assert "secure" in cookie and "httponly" in cookie
            assert (await client.get("/api/v1/overview")).status_code == 200
        plain = manager.url.replace("https://", "http://")
        async with httpx.AsyncClient(timeout=5) as client:
            with pytest.raises(httpx.HTTPError):
                await client.get(f"{plain}/api/v1/overview")
        async with httpx.AsyncClient(timeout=5) as client:  # not trusted without the cert
            with pytest.raises(httpx.ConnectError):
                await client.get(f"{manager.url}/api/v1/overview")
    finally:
        manager.stop()
        await asyncio.wait_for(task, 20)


@pytest.mark.parametrize(
    ("which", "flag"),
    [("cert", "--tls-cert"), ("key", "--tls-key")],
)
async def test_a_missing_file_is_an_error_naming_its_flag_before_anything_starts(
    tmp_path: Path, which: str, flag: str
) -> None:
    cert, key = self_signed(tmp_path)
    missing = tmp_path / "nowhere.pem"
    chosen = settings(
        tmp_path, missing if which == "cert" else cert, missing if which == "key" else key
    )
    with pytest.raises(UsageError) as error:
        await Manager(chosen).run()
    assert str(error.value).startswith(f"{flag}: cannot read {missing}")
    assert not list(chosen.data_dir.glob("*"))  # nothing migrated, no token, no port


async def test_a_file_that_is_no_certificate_or_half_a_pair_is_refused(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(UsageError, match=r"--tls-cert/--tls-key: .* not a PEM certificate"):
        await Manager(settings(tmp_path, junk, key)).run()
    with pytest.raises(UsageError, match=r"^--tls-key: required with --tls-cert"):
        await Manager(settings(tmp_path, cert, None)).run()


def test_the_cli_names_the_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing.pem"
    code = main(
        ["manager", "--source", str(tmp_path / "doc.json"), "--data-dir", str(tmp_path / "d"),
         "--http", "127.0.0.1:0", "--jobs", "127.0.0.1:0",
         "--tls-cert", str(missing), "--tls-key", str(missing)]
    )  # fmt: skip
    assert code != 0
    assert f"--tls-cert: cannot read {missing}" in capsys.readouterr().err
