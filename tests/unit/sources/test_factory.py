"""open_source: picks the source for a spec and refuses bad arguments by flag name."""

from __future__ import annotations

from pathlib import Path

import pytest

from watchkeeper.errors import UsageError
from watchkeeper.sources import FileSource, HttpSource, open_source


def test_a_path_is_a_file_source(tmp_path: Path) -> None:
    source = open_source(str(tmp_path / "doc.json"), max_bytes=10)
    assert isinstance(source, FileSource)
    assert source.name == str(tmp_path / "doc.json")
    assert source.max_bytes == 10


def test_a_file_url_is_a_file_source() -> None:
    source = open_source("file:///etc/watch%20keeper/doc.json")
    assert isinstance(source, FileSource)
    assert source.name == "/etc/watch keeper/doc.json"


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000/doc", "HTTPS://config.example/doc"])
async def test_http_urls_are_http_sources(url: str) -> None:
    source = open_source(url, timeout=3.0, bearer_token="env:SOME_TOKEN")
    try:
        assert isinstance(source, HttpSource)
        assert source.timeout == 3.0
    finally:
        await source.aclose()


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"spec": ""}, r"^source: empty"),
        ({"spec": "  "}, r"^source: empty"),
        ({"spec": "ftp://user:pw@host/doc"}, r"^source: unsupported scheme ftp://"),
        ({"spec": "http://"}, r"^source: no host"),
        ({"spec": "http://host:port/doc"}, r"^source: not a valid URL"),
        ({"spec": "file://elsewhere/doc"}, r"^source: file URL on another host"),
        ({"spec": "doc.json", "timeout": 0}, r"^--timeout: "),
        ({"spec": "doc.json", "max_bytes": 0}, r"^--max-bytes: "),
        ({"spec": "doc.json", "bearer_token": "env:TOKEN"}, r"^--bearer-token: only an http"),
        (
            {"spec": "https://u:pw@host/doc", "bearer_token": "env:TOKEN"},
            r"^--bearer-token: the URL carries credentials",
        ),
    ],
)
def test_bad_arguments_name_the_flag(kwargs: dict[str, object], pattern: str) -> None:
    with pytest.raises(UsageError, match=pattern) as info:
        open_source(**kwargs)  # type: ignore[arg-type]
    assert "pw" not in info.value.message


def test_a_literal_bearer_token_is_refused_without_echoing_it() -> None:
    with pytest.raises(UsageError, match=r"^--bearer-token: expected a secret reference") as info:
        open_source("https://config.example/doc", bearer_token="hunter2-literal")
    assert "hunter2" not in info.value.message
