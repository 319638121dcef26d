"""The demo source: the operator's file, watched as it is, its API check on the real port."""

from __future__ import annotations

import json
from pathlib import Path

from watchkeeper.manager.demo import API_SERVICE, DemoSource, bundled_example
from watchkeeper.sources import FileSource


def api_port(body: bytes) -> int:
    services = json.loads(body)["services"]
    return int(next(s for s in services if s["name"] == API_SERVICE)["check"]["port"])


async def test_the_api_check_follows_the_port_and_the_file_is_never_written(
    tmp_path: Path,
) -> None:
    path = tmp_path / "demo.json"
    original = bundled_example().read_bytes()
    path.write_bytes(original)
    source = DemoSource(FileSource(path), 9000)
    first = await source.fetch()
    assert first is not None and api_port(first.body) == 9000
    assert first.source == str(path) and source.name == str(path)
    assert path.read_bytes() == original  # the operator's document, untouched
    edited = json.loads(original)
    edited["services"][0]["interval"] = "45s"
    path.write_text(json.dumps(edited))
    second = await source.fetch()  # an edit to the file is a new candidate
    assert second is not None and json.loads(second.body)["services"][0]["interval"] == "45s"
    assert api_port(second.body) == 9000
    assert await source.fetch() is None
    assert sorted(tmp_path.iterdir()) == [path]  # noqa: ASYNC240


async def test_on_the_demo_port_the_bytes_pass_as_they_are(tmp_path: Path) -> None:
    path = tmp_path / "demo.json"
    path.write_bytes(bundled_example().read_bytes())
    found = await DemoSource(FileSource(path), 8470).fetch()
    assert found is not None and found.body == path.read_bytes()
    path.write_text("not json")
    broken = await DemoSource(FileSource(path), 9000).fetch()
    assert broken is not None and broken.body == b"not json"  # the intake says what is wrong
