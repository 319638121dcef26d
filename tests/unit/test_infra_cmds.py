"""``watchkeeper infra ...`` against the API in process (a fake `Infra` port behind the real
routes), and the infrastructure part of ``watchkeeper plan DOC`` against a SQLite store."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.infra_web import MANAGER, InfraEnv, build
from watchkeeper import store
from watchkeeper.cli import build_parser, main
from watchkeeper.infra import repository
from watchkeeper.infra.desired import Desired
from watchkeeper.infra.providers.base import Machine
from watchkeeper.web.auth import TOKEN_FILE


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[InfraEnv]:
    async for made in build(tmp_path / "manager"):
        yield made


async def infra(
    env: InfraEnv, capsys: pytest.CaptureFixture[str], *argv: str, token: str = MANAGER
) -> tuple[int, str, str]:
    """Run ``watchkeeper infra ARGV`` against the env's app; (exit code, stdout, stderr)."""
    args = build_parser().parse_args(["infra", *argv, "--token", token])
    args.transport = httpx.ASGITransport(app=env.app)
    code: int = await args.func(args)
    out, err = capsys.readouterr()
    return code, out, err


async def test_plan_prints_each_platforms_changes_and_reasons(
    env: InfraEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = await infra(env, capsys, "plan")
    assert code == 0
    assert out.splitlines() == [
        "platform eu-cloud (KNOWN): create 1, start 1, refused 1",
        "  infrastructure: web +1 (web-2) start 1 (web-0)",
        "    +web-2: count 3, observed 2",
        "    start web-0: stopped out of band",
        "  refused: -web-3: web-3 is protected",
        "  lookalike i-0look: resource web, slot web-1, owner none (left alone)",
    ]
    env.infra.held = {"reason": "it would remove 3 slots", "version": 4, "resources": {"web": 0}}
    code, out, _ = await infra(env, capsys, "plan")
    assert out.splitlines()[-2:] == [
        "held: configuration 4: it would remove 3 slots",
        "  it asks for web x0",
    ]
    code, out, _ = await infra(env, capsys, "plan", "--format", "json")
    assert code == 0 and json.loads(out)["hold"]["version"] == 4


async def test_every_ask_says_what_it_did(
    env: InfraEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    env.infra.held = {"reason": "r", "version": 4, "resources": {}}
    expected = {
        ("apply", "--only", "web"): "observing and planning now: eu-cloud",
        ("confirm", "7"): "change 7: destroy web-3 (i-0dead) on eu-cloud: queued",
        ("skip", "7"): "change 7: destroy web-3 (i-0dead) on eu-cloud: skipped",
        ("unprotect", "web-1"): "protection of web-1 lifted; change 8: unprotect web-1",
        ("adopt", "i-0look"): "adopting i-0look; change 9: adopt web-1 (i-0look)",
        ("accept", "eu-cloud"): "platform eu-cloud: the empty observation is accepted",
        ("confirm-hold",): "the held infrastructure is in force now",
    }
    for argv, line in expected.items():
        code, out, err = await infra(env, capsys, *argv)
        assert (code, err) == (0, ""), argv
        assert out.startswith(line), (argv, out)
    asked = [c for c in env.infra.calls if c[0] != "operations"]
    assert {c[-1] for c in asked} == {"manager-token"}
    assert asked[0] == ("apply", ["web"], "manager-token")


async def test_operations_lists_the_journal_with_who_decided(
    env: InfraEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = await infra(env, capsys, "operations", "--state", "succeeded", "pending")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:6] == ["7", "pending", "destroy", "eu-cloud", "web-3", "i-0dead"]
    assert "by ann" in lines[1]
    code, out, _ = await infra(env, capsys, "operations", "--format", "json")
    assert json.loads(out)["total"] == 2


async def test_a_refusal_prints_the_apis_message_and_exits_2(
    env: InfraEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv, message in (
        (("confirm", "99"), "no infrastructure job 99 (HTTP 404)"),
        (("skip", "6"), "infrastructure job 6 is succeeded, not pending (HTTP 409)"),
        (("apply", "--only", "db"), "no resource 'db' in the infrastructure in force (HTTP 404)"),
        (("unprotect", "x" * 300), "target: String should have at most 255 characters"),
        (("confirm-hold",), "no infrastructure is held (HTTP 404)"),
    ):
        code, out, err = await infra(env, capsys, *argv)
        assert (code, out) == (2, ""), argv
        assert message in err, (argv, err)
    code, _, err = await infra(env, capsys, "plan", token="wrong")
    assert code == 2 and "(HTTP 401)" in err


async def test_the_token_comes_from_the_environment_or_the_data_dir(
    env: InfraEnv,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def plan_with(*argv: str) -> int:
        args = build_parser().parse_args(["infra", "plan", *argv])
        args.transport = httpx.ASGITransport(app=env.app)
        code: int = await args.func(args)
        capsys.readouterr()
        return code

    data = tmp_path / "data"
    data.mkdir()
    assert await plan_with("--data-dir", str(data)) == 2  # no token anywhere: 401
    (data / TOKEN_FILE).write_text(MANAGER + "\n")
    assert await plan_with("--data-dir", str(data)) == 0
    monkeypatch.setenv("WATCHKEEPER_TOKEN", "wrong")
    assert await plan_with("--data-dir", str(data)) == 2  # the environment comes first
    monkeypatch.setenv("WATCHKEEPER_TOKEN", MANAGER)
    assert await plan_with("--data-dir", str(tmp_path / "none")) == 0


def test_an_unreachable_manager_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["infra", "plan", "--url", "http://127.0.0.1:9", "--token", "t"])
    _, err = capsys.readouterr()
    assert code == 1
    assert err.startswith("watchkeeper: cannot reach the manager at http://127.0.0.1:9: ")


# --- watchkeeper plan DOC, offline ----------------------------------------------------------


def candidate(*, web: int = 2, more: bool = True) -> dict[str, Any]:
    platforms = [{"name": "eu-cloud", "provider": "ec2", "zone": "eu",
                  "options": {"region": "eu-west-1"}}]  # fmt: skip
    resources = [{"name": "web", "platform": "eu-cloud", "count": web, "size": "t3.small"}]
    if more:
        platforms.append(
            {"name": "us-cloud", "provider": "ec2", "zone": "eu", "options": {"region": "us-1"}}
        )
        resources.append({"name": "api", "platform": "us-cloud", "count": 2})
    return {
        "schema": "watchkeeper/v1",
        "zones": [{"name": "eu"}],
        "platforms": platforms,
        "infrastructure": resources,
    }


def owned(owner: str, slot: str, **fields: Any) -> Machine:
    return Machine(
        cloud_id=f"i-{slot}", resource=slot.rsplit("-", 1)[0], slot=slot, owner=owner,
        state="running", size="t3.small", **fields,
    )  # fmt: skip


async def seed(data: Path, *, old: int = 0) -> None:
    """A store whose manager ran ``web`` x3 (plus ``old`` x``old``) on eu-cloud."""
    db = store.Database.for_data_dir(data)
    try:
        await db.migrate()
        owner = await repository.cluster_id(db, now=1.0)
        resources = [{"name": "web", "platform": "eu-cloud", "count": 3}]
        if old:
            resources.append({"name": "old", "platform": "eu-cloud", "count": old})
        platforms = [{"name": "eu-cloud", "provider": "ec2", "zone": "eu"}]
        await repository.put_desired(
            db, repository.ACCEPTED, Desired.from_specs(platforms, resources), now=1.0
        )
        machines = [owned(owner, f"web-{i}") for i in range(3)]
        machines += [owned(owner, f"old-{i}") for i in range(old)]
        machines.append(Machine(cloud_id="i-stray", resource="web", slot="web-9", owner="other"))
        await repository.save_inventory(
            db, repository.Inventory(platform="eu-cloud", machines=tuple(machines), observed_at=1.0)
        )
        if old:
            await repository.protect(db, "eu-cloud", machines[3], now=1.0)  # old-0
    finally:
        await db.aclose()


def plan_doc(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], document: dict[str, Any], *more: str
) -> tuple[int, list[str]]:
    path = tmp_path / "doc.json"
    path.write_text(json.dumps(document))
    code = main(["plan", str(path), "--data-dir", str(tmp_path / "data"), *more])
    out, _ = capsys.readouterr()
    return code, out.splitlines()


def infra_part(lines: list[str]) -> list[str]:
    start = lines.index("Infrastructure, against what the store last saw of each platform:")
    return lines[start + 1 :]


def test_plan_without_a_store_creates_every_slot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines = plan_doc(tmp_path, capsys, candidate(web=3, more=False))
    assert code == 0
    assert infra_part(lines) == [
        "  platform eu-cloud: not observed yet: creates all 3",
        "    infrastructure: web +3 (web-0, web-1, web-2)",
        "      +web-0: count 3, observed 0",
        "      +web-1: count 3, observed 0",
        "      +web-2: count 3, observed 0",
    ]
    assert not (tmp_path / "data").exists()  # plan never creates a store


def test_plan_against_the_stores_inventory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(seed(tmp_path / "data"))
    code, lines = plan_doc(tmp_path, capsys, candidate(web=2))
    assert code == 0
    assert infra_part(lines) == [
        "  platform eu-cloud (KNOWN): destroy 1",
        "    infrastructure: web -1 (web-2)",
        "      -web-2: count 2 [waits for an operator]",
        "    lookalike i-stray: resource web, slot web-9, owner other (left alone)",
        "  platform us-cloud: not observed yet: creates all 2",
        "    infrastructure: api +2 (api-0, api-1)",
        "      +api-0: count 2, observed 0",
        "      +api-1: count 2, observed 0",
    ]
    code, lines = plan_doc(tmp_path, capsys, candidate(web=2), "--format", "json")
    found = json.loads("\n".join(lines))["infrastructure"]
    assert [p["platform"] for p in found["plans"]] == ["eu-cloud", "us-cloud"]
    assert [p["observed"] for p in found["plans"]] == [True, False]
    assert found["plans"][0]["actions"][0]["slot"] == "web-2"
    assert found["held"] == "" and found["left"] == []


def test_plan_shows_protection_and_a_shrink_that_would_be_held(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(seed(tmp_path / "data", old=3))
    code, lines = plan_doc(tmp_path, capsys, candidate(web=3, more=False))
    part = infra_part(lines)
    assert code == 0
    assert part[0] == "  platform eu-cloud (KNOWN): destroy 2, refused 1"
    assert part[1] == "    infrastructure: old -2 (old-2, old-1)"
    assert any("refused: -old-0: resource old is no longer in the document: old-0 is "
               "protected" in line for line in part)  # fmt: skip
    assert part[-1].startswith("  held for an operator: it would remove 3 slots from platform")
