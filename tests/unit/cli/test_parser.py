"""The CLI's contract: exit codes, `POINTER: message` lines, JSON output, plan and import."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from watchkeeper.cli import build_parser, main
from watchkeeper.commands.run_cmds import _settings, stage_settings
from watchkeeper.document.jsonschema import json_schema_text
from watchkeeper.manager.embedded import EMBEDDED_CONCURRENCY

REPO = Path(__file__).resolve().parents[3]


def doc(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "schema": "watchkeeper/v1",
        "zones": [{"name": "core"}],
        "hosts": [
            {"name": "web1", "address": "127.0.0.1", "zone": "core", "labels": {"role": "web"}},
            {"name": "web2", "address": "127.0.0.2", "zone": "core", "labels": {"role": "web"}},
        ],
        "services": [
            {
                "name": "http",
                "hosts": {"labels": {"role": "web"}},
                "check": {"kind": "http", "port": 80},
            },
            {"name": "ssh", "hosts": ["web1"], "check": {"kind": "tcp", "port": 22}},
        ],
    }
    base.update(overrides)
    return base


def write(tmp_path: Path, data: dict[str, Any], name: str = "doc.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["--log-level", "ERROR", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_validate_accepts_the_bundled_example(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "validate", str(REPO / "examples" / "demo.json"))
    assert code == 0, out
    assert "valid" in err and "6 checks" in err


def test_validate_prints_every_problem_with_its_pointer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = doc()
    bad["hosts"][0]["zone"] = "cor"
    bad["services"][1]["intervall"] = "1m"
    bad["services"][0]["check"]["port"] = 0
    code, out, _ = run(capsys, "validate", write(tmp_path, bad))
    assert code == 1
    lines = out.splitlines()
    assert "/hosts/0/zone: unknown zone 'cor' (did you mean 'core'?)" in lines
    assert "/services/1/intervall: unknown field 'intervall' (did you mean 'interval'?)" in lines
    assert any(line.startswith("/services/0/check/port: ") for line in lines)
    assert len(lines) == 3


def test_validate_json_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = doc()
    bad["services"][0]["hosts"] = {"labels": {"role": "db"}}  # matches nothing: a warning
    code, out, _ = run(capsys, "validate", "--format", "json", write(tmp_path, bad))
    result = json.loads(out)
    assert code == 0
    assert result["valid"] is True
    assert result["errors"] == []
    assert result["warnings"] == [
        {
            "pointer": "/services/0/hosts",
            "message": "the label selector matches no host; the service runs nowhere",
            "severity": "warning",
        }
    ]
    assert result["counts"]["checks"] == 1


def test_validate_reads_standard_input(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b'{"schema": "watchkeeper/v2"}')))
    code, out, _ = run(capsys, "validate", "-")
    assert code == 1
    assert out.startswith("/schema: unsupported schema 'watchkeeper/v2'")


def test_validate_not_json_is_invalid_not_unreadable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"schema": ')
    code, out, _ = run(capsys, "validate", str(path))
    assert code == 1
    assert out.startswith("/: not valid JSON")


def test_a_binary_file_is_said_to_be_no_utf8_json_document(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "image.json"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    code, out, _ = run(capsys, "validate", str(path))
    assert code == 1
    assert out.startswith("/: not a UTF-8 JSON document: byte 0x89 at offset 0 is not UTF-8")


def test_unreadable_source_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "validate", str(tmp_path / "missing.json"))
    assert code == 2
    assert "missing.json" in err


def test_unsupported_source_scheme_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "validate", "ftp://example.invalid/doc.json")
    assert code == 2
    assert "ftp://" in err


def test_wrong_arguments_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["validate"])
    assert exc.value.code == 2
    assert "source" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["validate", "--bogus"], "--bogus"),
        (["validate", "--bogus=1", "doc.json"], "--bogus=1"),
        (["worker-key", "add", "w1", "--zonez", "dmz"], "--zonez"),
    ],
)
def test_an_unknown_option_is_named_before_a_missing_argument(
    capsys: pytest.CaptureFixture[str], argv: list[str], named: str
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert f"error: unrecognized arguments: {named}" in err
    assert err.startswith(f"usage: watchkeeper {argv[0]}")  # the command's usage, not the top


def test_abbreviated_and_negative_looking_arguments_still_parse(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, "validate", "--form", "json", str(REPO / "examples" / "demo.json"))
    assert code == 0 and json.loads(out)["valid"] is True


def test_schema_prints_the_committed_schema(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "schema")
    assert code == 0
    assert out == json_schema_text()
    assert json.loads(out)["$schema"].endswith("2020-12/schema")


def test_plan_without_a_database_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "data"
    code, out, _ = run(capsys, "plan", write(tmp_path, doc()), "--data-dir", str(data_dir))
    assert code == 0
    assert "against an empty configuration" in out
    assert "  checks: +3 ~0 -0" in out
    assert "    + web1!http" in out
    assert not data_dir.exists()


def test_import_plan_and_versions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    first = write(tmp_path, doc())
    code, out, _ = run(capsys, "import", first, *data)
    assert code == 0
    assert "imported as version 1: " in out

    code, out, _ = run(capsys, "import", first, *data)
    assert code == 0 and "identical to version 1" in out

    changed = doc()
    changed["services"][1]["check"]["port"] = 2222
    second = write(tmp_path, changed, "changed.json")
    code, out, _ = run(capsys, "plan", second, "--format", "json", *data)
    plan = json.loads(out)
    assert code == 0
    assert plan["current_version"]["id"] == 1
    assert plan["objects"] == {"services": {"added": [], "changed": ["ssh"], "removed": []}}
    assert plan["checks"] == {"added": [], "changed": ["web1!ssh"], "removed": []}

    code, out, _ = run(capsys, "versions", "--format", "json", *data)
    assert [v["id"] for v in json.loads(out)] == [1]  # plan imported nothing

    code, out, _ = run(capsys, "import", second, "--format", "json", *data)
    result = json.loads(out)
    assert (code, result["version"], result["created"]) == (0, 2, True)
    assert result["summary"] == {
        "services": {"added": 0, "changed": 1, "removed": 0},
        "checks": {"added": 0, "changed": 1, "removed": 0},
    }


def test_rejected_import_is_recorded_and_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    assert run(capsys, "import", write(tmp_path, doc()), *data)[0] == 0
    bad = doc()
    bad["hosts"][1]["parents"] = ["web1"]
    bad["hosts"][0]["parents"] = ["web2"]
    code, out, err = run(capsys, "import", write(tmp_path, bad, "bad.json"), *data)
    assert code == 1
    assert "/hosts/0/parents: parent cycle: web1 -> web2 -> web1" in out
    assert "nothing changed" in err

    code, out, _ = run(capsys, "rejections", "--format", "json", *data)
    rejected = json.loads(out)
    assert len(rejected) == 1
    assert rejected[0]["problems"][0]["pointer"] == "/hosts/0/parents"
    code, out, _ = run(capsys, "versions", "--format", "json", *data)
    assert [v["id"] for v in json.loads(out)] == [1]


def test_env_variables_set_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WATCHKEEPER_DATA_DIR", str(tmp_path / "from-env"))
    assert run(capsys, "import", write(tmp_path, doc()))[0] == 0
    assert (tmp_path / "from-env" / "watchkeeper.db").exists()


def test_retention_and_remediation_flags_reach_the_stage_settings() -> None:
    args = build_parser().parse_args(
        ["up", "--retention-raw", "6h", "--retention-5m", "7d", "--remediation-concurrency", "3"]
    )
    settings = stage_settings(args)
    assert settings.telemetry.retention.raw == 6 * 3600
    assert settings.telemetry.retention.five_minute == 7 * 86400
    assert settings.telemetry.retention.hourly == 400 * 86400  # the default
    assert settings.remediation.global_concurrency == 3


def test_up_concurrency_reaches_the_embedded_worker(tmp_path: Path) -> None:
    default = _settings(build_parser().parse_args(["up", "--data-dir", str(tmp_path)]), "d")
    assert default.embedded_concurrency == EMBEDDED_CONCURRENCY == 64
    args = build_parser().parse_args(["up", "--concurrency", "5", "--data-dir", str(tmp_path)])
    assert _settings(args, "d", embedded_worker=True).embedded_concurrency == 5


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--retention-raw", "forever"], "--retention-raw: 'forever' is not a duration"),
        (["--retention-5m", "0s"], "--retention-5m: must be longer than zero"),
        (["--retention-raw", "40d"], "each must be at least the one before it, got 40d, 30d"),
        (["--remediation-concurrency", "0"], "--remediation-concurrency: must be at least 1"),
        (["--concurrency", "0"], "--concurrency: must be at least 1"),
    ],
)
def test_bad_stage_flags_exit_2_naming_the_flag(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["up", "--data-dir", str(tmp_path), *argv])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "watchkeeper.db").exists()  # nothing started, nothing written
