"""The deployments part of ``watchkeeper plan``: each host's verdict from its saved status
under the candidate's digests, and the lines printed."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from watchkeeper.deploy.desired import desired
from watchkeeper.deploy.plan import HostPlan, Preview, ago, host_line, host_plan, lines, preview
from watchkeeper.deploy.rollout import Status, Target

NOW = 1_764_000_000.0
HOSTS = [
    {"name": "legacy1", "address": "10.0.0.5", "zone": "dc1"},
    {"name": "legacy2", "address": "10.0.0.6", "zone": "dc1"},
    {"name": "legacy3", "address": "10.0.0.7", "zone": "dc1"},
    {"name": "legacy4", "address": "10.0.0.8", "zone": "dc1"},
    {"name": "legacy5", "address": "10.0.0.9", "zone": "dc1"},
]


def spec(**changes: Any) -> dict[str, Any]:
    return {
        "name": "base",
        "hosts": ["legacy1", "legacy2", "legacy3", "legacy4", "legacy5"],
        "ssh": {"key": "file:/k"},
        "agent": {"path": "/opt/watchkeeper"},
        "files": [{"path": "/etc/motd", "content": "hi\n"}],
    } | changes


def target(host: str = "legacy1", digest: str = "d1") -> Target:
    return Target(deployment="base", host=host, address="10.0.0.5", zone="dc1", digest=digest)


def test_each_verdict_from_the_saved_status() -> None:
    checked = Status(digest="d1", mode="check", at=NOW - 60, ok=True)
    assert host_plan(target(), None).verdict == "unchecked"
    assert host_plan(target(), Status()).verdict == "unchecked"  # running, never ended
    assert host_plan(target(), replace(checked, digest="d0")).verdict == "changed"
    assert host_plan(target(), replace(checked, ok=False, error="x")).verdict == "failed"
    assert host_plan(target(), checked).verdict == "in_sync"
    assert host_plan(target(), replace(checked, changes=("change /etc/motd",))).verdict == "drift"
    applied = replace(checked, mode="apply", changes=("change /etc/motd",))
    assert host_plan(target(), applied).verdict == "in_sync"  # what it changed, done
    # Another digest wins over a failure: the failure was of another plan.
    assert host_plan(target(), replace(checked, digest="d0", ok=False)).verdict == "changed"


def test_the_lines_of_each_host() -> None:
    found = desired([spec(max_failures=1)], HOSTS, version="0.1.0", fingerprint="SHA256:x")
    digests = {t.host: t.digest for t in found["base"].targets}
    statuses = {
        ("base", "legacy1"): Status(
            digest=digests["legacy1"], mode="check", at=NOW - 180, ok=True,
            changes=("install agent 0.1.0", "change /etc/motd"),
        ),
        ("base", "legacy2"): Status(digest=digests["legacy2"], mode="check", at=NOW - 7200,
                                    ok=True),
        ("base", "legacy3"): Status(digest="old", mode="check", at=NOW - 60, ok=True),
        ("base", "legacy4"): Status(digest=digests["legacy4"], mode="apply", at=NOW - 5,
                                    ok=False, error="apt-get: exit 100"),
        ("gone", "legacy1"): Status(digest="x", mode="check", at=NOW - 60, ok=True),
    }  # fmt: skip
    result = preview(found, statuses, halts={"base": "2 hosts failed"})
    assert lines(result, now=NOW) == [
        "Deployments, against the last run the store keeps of each host:",
        "  deploy base: 5 hosts (drift repair, max_concurrent 5, max_failures 1)",
        "    rollout halted: 2 hosts failed; it applies nothing until the deployment changes "
        "or: watchkeeper deploy apply base",
        "    legacy1: would install agent 0.1.0; would change /etc/motd (checked 3 min ago)",
        "    legacy2: in sync (checked 2 h ago)",
        "    legacy3: the deployment changes for this host: the next check-mode run makes its plan",
        "    legacy4: last run failed: apt-get: exit 100",
        "    legacy5: not checked yet: the first check-mode run makes its plan",
        "  deploy gone leaves the document: its hosts keep what it deployed (nothing is removed)",
    ]
    as_json = result.as_dict()
    assert as_json["left"] == ["gone"] and as_json["note"] == ""
    [base] = as_json["deployments"]
    assert base["halted"] == "2 hosts failed" and base["drift"] == "repair"
    assert [h["verdict"] for h in base["hosts"]] == [
        "drift", "in_sync", "changed", "failed", "unchecked"
    ]  # fmt: skip
    assert base["hosts"][0]["at"] == "2025-11-24T15:57:00+00:00"
    assert base["hosts"][4]["at"] is None


def test_the_candidate_digest_decides_whether_a_plan_holds() -> None:
    """The same spec under another manager version or host key is another plan."""
    before = desired([spec()], HOSTS, version="0.1.0", fingerprint="SHA256:a")
    digest = before["base"].targets[0].digest
    saved = {("base", "legacy1"): Status(digest=digest, mode="check", at=NOW, ok=True)}
    for version, fingerprint, verdict in (
        ("0.1.0", "SHA256:a", "in_sync"),
        ("0.2.0", "SHA256:a", "changed"),
        ("0.1.0", "", "changed"),
    ):
        found = desired([spec()], HOSTS, version=version, fingerprint=fingerprint)
        [first, *_] = preview(found, saved).deployments[0].hosts
        assert first.verdict == verdict, (version, fingerprint)
    edited = desired(
        [spec(files=[{"path": "/etc/motd", "content": "bye\n"}])],
        HOSTS,
        version="0.1.0",
        fingerprint="SHA256:a",
    )
    assert preview(edited, saved).deployments[0].hosts[0].verdict == "changed"


def test_a_selector_a_report_policy_and_one_host() -> None:
    labelled = [HOSTS[0] | {"labels": {"os": "old"}}, *HOSTS[1:]]
    found = desired(
        [spec(hosts={"labels": {"os": "old"}}, drift="report", max_concurrent=2)],
        labelled,
        version="0.1.0",
        fingerprint="",
    )
    assert lines(preview(found, {}), now=NOW)[1:] == [
        "  deploy base: 1 host (drift report, max_concurrent 2, max_failures 0)",
        "    legacy1: not checked yet: the first check-mode run makes its plan",
    ]


def test_nothing_to_say_without_deployments_and_a_note_when_the_store_cannot_tell() -> None:
    assert lines(Preview(), now=NOW) == []
    assert lines(preview({}, {}), now=NOW) == []
    found = desired([spec(hosts=["legacy1"])], HOSTS, version="0.1.0", fingerprint="")
    noted = lines(preview(found, {}, note="the store keeps no deployment runs yet"), now=NOW)
    assert noted[1] == "  the store keeps no deployment runs yet"


def test_many_changes_are_cut_short() -> None:
    many = tuple(f"change /etc/f{i}" for i in range(13))
    found = HostPlan(host="h", verdict="drift", mode="check", at=NOW - 30, changes=many)
    line = host_line(found, now=NOW)
    assert line.startswith("h: would change /etc/f0; would change /etc/f1;")
    assert line.endswith("would change /etc/f9 (+3 more) (checked 30 s ago)")


def test_ages_are_rough() -> None:
    assert [ago(s) for s in (-3, 0.2, 45, 60, 179, 7200, 86_400 * 3 + 5)] == [
        "just now", "just now", "45 s ago", "1 min ago", "2 min ago", "2 h ago", "3 d ago"
    ]  # fmt: skip
