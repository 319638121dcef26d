"""``watchkeeper worker-key pending|approve|reject`` on a SQLite data dir, ``watchkeeper
deploy status|check|apply`` against the API in process (a real `DeployView` behind the
real routes), and the deployments part of ``watchkeeper plan DOC``."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.deploy_web import (
    HALT,
    MANAGER,
    REFUSED,
    DeployEnv,
    agent_key,
    build,
    deployments,
    document,
)
from watchkeeper import __version__, store
from watchkeeper.cli import build_parser, main
from watchkeeper.deploy import repository
from watchkeeper.deploy.desired import desired
from watchkeeper.deploy.rollout import Status
from watchkeeper.transport import keys

# --- worker-key pending, approve, reject ----------------------------------------------------


def offer(data: Path, host: str, public_key: str) -> None:
    """A deploy of ``host`` brought its agent's key back (as the stage records it)."""

    async def run() -> None:
        db = store.Database.for_data_dir(data)
        try:
            await db.migrate()
            offered = await repository.offer_key(
                db, host=host, deployment="base", zone="dc1", public_key=public_key,
                now=time.time(),
            )  # fmt: skip
            assert offered is not None
        finally:
            await db.aclose()

    asyncio.run(run())


def test_pending_approve_and_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = ["--data-dir", str(tmp_path)]
    assert main(["worker-key", "pending", *d]) == 0
    assert capsys.readouterr().err == "no agent key waits for approval\n"
    public, fingerprint = agent_key()
    offer(tmp_path, "legacy1", public)

    assert main(["worker-key", "pending", *d]) == 0
    [line] = capsys.readouterr().out.splitlines()
    assert line.startswith(f"legacy1  {fingerprint}  zone=dc1  deployment=base  seen 20")
    assert main(["worker-key", "pending", "--format", "json", *d]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert (row["host"], row["public_key"], row["fingerprint"]) == ("legacy1", public, fingerprint)

    assert main(["worker-key", "approve", "legacy1", *d]) == 0
    assert capsys.readouterr().out == (
        f"approved legacy1: enrolled agent-legacy1 ({fingerprint}) for zone dc1 as the agent "
        "of host legacy1\n"
    )
    assert main(["worker-key", "list", "--format", "json", *d]) == 0
    [enrolled] = json.loads(capsys.readouterr().out)
    assert (enrolled["name"], enrolled["agent_for"], enrolled["zones"]) == (
        "agent-legacy1", "legacy1", ["dc1"]
    )  # fmt: skip
    assert enrolled["public_key"] == public and enrolled["revoked_at"] is None
    assert main(["worker-key", "pending", "--format", "json", *d]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_approving_twice_or_an_unknown_host_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = ["--data-dir", str(tmp_path)]
    offer(tmp_path, "legacy1", agent_key()[0])
    assert main(["worker-key", "approve", "legacy1", *d]) == 0
    capsys.readouterr()
    assert main(["worker-key", "approve", "legacy1", *d]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        "watchkeeper: no agent key of host 'legacy1' waits for approval (pending: none); "
        "the agent of legacy1 is enrolled as agent-legacy1\n"
    )
    assert main(["worker-key", "reject", "legacy9", *d]) == 2
    assert capsys.readouterr().err == (
        "watchkeeper: no agent key of host 'legacy9' waits for approval\n"
    )


def test_a_new_key_of_a_rekeyed_host_replaces_its_agent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = ["--data-dir", str(tmp_path)]
    first, first_fp = agent_key()
    offer(tmp_path, "legacy1", first)
    assert main(["worker-key", "approve", "legacy1", *d]) == 0
    capsys.readouterr()
    second, second_fp = agent_key()
    offer(tmp_path, "legacy1", second)
    assert main(["worker-key", "approve", "legacy1", "--format", "json", *d]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert (answer["name"], answer["fingerprint"]) == ("agent-legacy1-2", second_fp)
    assert answer["notes"] == [f"revoked agent-legacy1 ({first_fp}), the host's previous agent key"]


def test_reject_keeps_the_key_revoked_and_it_is_not_offered_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = ["--data-dir", str(tmp_path)]
    public, fingerprint = agent_key()
    offer(tmp_path, "legacy2", public)
    assert main(["worker-key", "reject", "legacy2", *d]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"rejected legacy2: {fingerprint} is kept as the revoked key rejected-legacy2"
    assert "does not offer it again" in out[1]
    assert main(["worker-key", "list", *d]) == 0
    assert "rejected-legacy2" in capsys.readouterr().out

    async def offered_again() -> object:
        db = store.Database.for_data_dir(tmp_path)
        try:
            return await repository.offer_key(
                db, host="legacy2", deployment="base", zone="dc1", public_key=public, now=1.0
            )
        finally:
            await db.aclose()

    assert asyncio.run(offered_again()) is None
    assert main(["worker-key", "pending", "--format", "json", *d]) == 0
    assert json.loads(capsys.readouterr().out) == []


# --- deploy status, check, apply ----------------------------------------------------------


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[DeployEnv]:
    async for made in build(tmp_path / "manager"):
        yield made


async def deploy(
    env: DeployEnv, capsys: pytest.CaptureFixture[str], *argv: str, token: str = MANAGER
) -> tuple[int, str, str]:
    """Run ``watchkeeper deploy ARGV`` against the env's app; (exit code, stdout, stderr)."""
    args = build_parser().parse_args(["deploy", *argv, "--token", token])
    args.transport = httpx.ASGITransport(app=env.app)
    code: int = await args.func(args)
    out, err = capsys.readouterr()
    return code, out, err


async def test_status_prints_each_deployment_and_host(
    env: DeployEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = await deploy(env, capsys, "status")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == (
        "deploy base: 2 hosts (drift repair, every 10 min, max_concurrent 5, max_failures 1)"
    )
    assert lines[1].startswith(
        "  legacy1  WARNING   drift: would install agent 0.1.0; would change /etc/motd "
        "(repairing)  [check "
    )
    assert lines[2].startswith(
        f"  legacy2  WARNING   agent installed; its key {env.pending['legacy2']}"
    )
    assert lines[2].endswith(", agent 0.1.0]")
    assert lines[3] == (
        "deploy motd: 2 hosts (drift report, every 5 min, max_concurrent 5, max_failures 0)"
    )
    assert lines[4] == f"  rollout halted: {HALT}; resume: watchkeeper deploy apply motd"
    assert lines[5].startswith(f"  legacy3  CRITICAL  deploy check failed: {REFUSED}  [check ")
    assert lines[6].startswith("  legacy4  PENDING   waiting for a deploy worker of zone dc1")
    assert lines[6].endswith("[never run]")
    assert len(lines) == 7

    code, out, _ = await deploy(env, capsys, "status", "motd")
    assert code == 0 and out.splitlines() == lines[3:]
    code, out, _ = await deploy(env, capsys, "status", "--format", "json")
    assert code == 0 and [d["name"] for d in json.loads(out)["items"]] == ["base", "motd"]


async def test_check_and_apply_say_what_they_asked(
    env: DeployEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = await deploy(env, capsys, "check", "base")
    assert (code, err, out) == (0, "", "deploy base: checking legacy1, legacy2 now\n")
    code, out, _ = await deploy(env, capsys, "apply", "motd", "--host", "legacy3")
    assert code == 0
    assert out == "deploy motd: applying legacy3 now (a check first, then what it finds)\n"
    await env.service.step()
    assert env.service.rollouts["motd"].apply_requested == {"legacy3"}
    assert "motd" not in env.service.halts  # resumed


async def test_refusals_print_the_apis_message_and_exit_2(
    env: DeployEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv, message in (
        (("status", "nope"), "no deployment 'nope' (deployments: base, motd) (HTTP 404)"),
        (("check", "nope"), "no deployment 'nope' (deployments: base, motd) (HTTP 404)"),
        (
            ("apply", "base", "--host", "legacy3"),
            "deployment 'base' has no host 'legacy3' (hosts: legacy1, legacy2) (HTTP 404)",
        ),
        (("check", "base", "--host", "h" * 300), "host: String should have at most 255"),
    ):
        code, out, err = await deploy(env, capsys, *argv)
        assert (code, out) == (2, ""), argv
        assert message in err, (argv, err)
    code, _, err = await deploy(env, capsys, "status", token="wrong")
    assert code == 2 and "(HTTP 401)" in err


async def test_an_unreachable_manager_exits_1(
    env: DeployEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    args = build_parser().parse_args(
        ["deploy", "status", "--url", "http://127.0.0.1:9", "--token", MANAGER]
    )
    assert await args.func(args) == 1
    assert "cannot reach the manager at http://127.0.0.1:9" in capsys.readouterr().err


# --- watchkeeper plan DOC -------------------------------------------------------------------


def plan_document() -> dict[str, Any]:
    return document() | {"deployments": deployments()}


def test_plan_holds_the_deployments_against_the_saved_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    d = ["--data-dir", str(data)]
    source = tmp_path / "doc.json"
    source.write_text(json.dumps(plan_document()))
    assert main(["import", str(source), *d]) == 0
    capsys.readouterr()
    assert main(["keys", *d]) == 0  # the manager's host key: part of every digest
    fingerprint = capsys.readouterr().out.strip()
    found = desired(
        deployments(), document()["hosts"], version=__version__, fingerprint=fingerprint
    )
    digest = {(n, t.host): t.digest for n, dep in found.items() for t in dep.targets}
    now = time.time()

    async def save() -> None:
        db = store.Database.for_data_dir(data)
        try:
            for key, status in {
                ("base", "legacy1"): Status(
                    digest=digest["base", "legacy1"], mode="check", at=now - 180, ok=True,
                    changes=("install agent 0.1.0", "change /etc/motd"),
                ),
                ("base", "legacy2"): Status(
                    digest=digest["base", "legacy2"], mode="check", at=now - 120, ok=True
                ),
                ("motd", "legacy3"): Status(
                    digest=digest["motd", "legacy3"], mode="check", at=now - 30, ok=False,
                    error=REFUSED,
                ),
                ("motd", "legacy4"): Status(digest="before", mode="check", at=now, ok=True),
            }.items():  # fmt: skip
                await repository.save_status(db, key[0], key[1], status, now=now)
            await repository.save_halt(db, "motd", HALT, now=now)
        finally:
            await db.aclose()

    asyncio.run(save())
    assert main(["plan", str(source), *d]) == 0
    out = capsys.readouterr().out.splitlines()
    start = out.index("Deployments, against the last run the store keeps of each host:")
    assert out[start + 1 :] == [
        "  deploy base: 2 hosts (drift repair, max_concurrent 5, max_failures 1)",
        "    legacy1: would install agent 0.1.0; would change /etc/motd (checked 3 min ago)",
        "    legacy2: in sync (checked 2 min ago)",
        "  deploy motd: 2 hosts (drift report, max_concurrent 5, max_failures 0)",
        f"    rollout halted: {HALT}; it applies nothing until the deployment changes or: "
        "watchkeeper deploy apply motd",
        f"    legacy3: last run failed: {REFUSED}",
        "    legacy4: the deployment changes for this host: the next check-mode run makes its plan",
    ]
    assert main(["plan", str(source), "--format", "json", *d]) == 0
    planned = json.loads(capsys.readouterr().out)["deployments"]
    assert [h["verdict"] for d in planned["deployments"] for h in d["hosts"]] == [
        "drift", "in_sync", "failed", "changed"
    ]  # fmt: skip

    # Without the host key the digests differ: every saved run is of another plan.
    keys.host_key_path(data).unlink()
    assert main(["plan", str(source), *d]) == 0
    out = capsys.readouterr().out
    assert out.count("the deployment changes for this host") == 4
    assert not keys.host_key_path(data).exists()  # plan never creates one


def test_plan_without_a_store_has_every_host_unchecked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "doc.json"
    source.write_text(json.dumps(plan_document()))
    assert main(["plan", str(source), "--data-dir", str(tmp_path / "none")]) == 0
    out = capsys.readouterr().out
    assert out.count("not checked yet: the first check-mode run makes its plan") == 4
    assert not (tmp_path / "none").exists()
