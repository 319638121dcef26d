"""Active/standby managers on PostgreSQL, as processes: one leader, takeover, fencing.

Two ``watchkeeper manager --ha`` on one database of their own, sharing a host key; two
workers dialling both; 20 counting checks every 2 s and a remediation rule
(`tests.fixtures.ha`). The lease is 4 s and the heartbeat 0.5 s so a freeze is over in
seconds. What is counted: how often each check ran (its plugin appends to a file), how
often the action ran (another file), and the rows of the cluster's tables.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.ha import HaSite, until

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory, pg_admin_url: str) -> Iterator[HaSite]:
    """Keys, enrolments and a migrated database, made once; each test runs on a copy."""
    ha = HaSite(tmp_path_factory.mktemp("ha-template"), pg_admin_url)
    ha.prepare()
    try:
        yield ha
    finally:
        ha.drop()


@pytest.fixture
def site(tmp_path: Path, prepared: HaSite) -> Iterator[HaSite]:
    ha = prepared.clone(tmp_path)
    try:
        yield ha
    finally:
        ha.stop_all()


def runs_over(site: HaSite, seconds: float) -> dict[str, int]:
    """How often each counting check ran in a window of ``seconds``."""
    before = site.count_runs()
    start = time.monotonic()
    until(lambda: time.monotonic() - start >= seconds, within=seconds + 5, what="the window")
    after = site.count_runs()
    return {f"c{i:02d}": after[f"c{i:02d}"] - before[f"c{i:02d}"] for i in range(site.checks)}


def assert_once_per_interval(site: HaSite, runs: dict[str, int], seconds: float) -> None:
    expected = seconds / site.interval
    doubled = {key: n for key, n in runs.items() if n > expected + 1}
    missing = {key: n for key, n in runs.items() if n < expected - 2}
    assert not doubled, f"checks ran more than once per interval: {doubled}"
    assert not missing, f"checks did not run every interval: {missing}"


def test_one_leader_and_each_check_once_per_interval(site: HaSite) -> None:
    site.start()
    leader = site.wait_leader()
    standby = site.other(leader)
    until(lambda: site.workers_on(leader) == {"w1", "w2"}, within=20, what="both workers")
    assert site.status(standby)["role"] == "standby"  # type: ignore[index]
    assert site.status(standby)["leader"] == leader.name  # type: ignore[index]
    # The standby does not listen on the job port at all.
    assert site.workers_on(standby) == set()
    runs = runs_over(site, 8)
    assert_once_per_interval(site, runs, 8)
    # The standby refuses what only the leader does, and names it.
    import httpx

    answer = httpx.post(
        f"{standby.url}/api/v1/checks/h%21c00/check-now",
        headers={"Authorization": f"Bearer {standby.token()}"},
    )
    assert answer.status_code == 503
    assert answer.headers["X-Watchkeeper-Leader"] == leader.url
    assert leader.name in answer.json()["detail"]
    ok = httpx.post(
        f"{leader.url}/api/v1/checks/h%21c00/check-now",
        headers={"Authorization": f"Bearer {leader.token()}"},
    )
    assert ok.status_code == 202
    # An anonymous caller learns nothing of the leader.
    anonymous = httpx.post(f"{standby.url}/api/v1/checks/h%21c00/check-now")
    assert anonymous.status_code == 401
    assert "X-Watchkeeper-Leader" not in anonymous.headers
    metrics = httpx.get(
        f"{standby.url}/metrics", headers={"Authorization": f"Bearer {standby.token()}"}
    ).text
    assert f'watchkeeper_leader{{node="{standby.name}"}} 0' in metrics
    assert f"watchkeeper_term {site.term()}" in metrics
    # A document pushed to the standby goes through the one intake; the leader runs it.
    site.checks += 1
    site.write_document()
    pushed = httpx.post(
        f"{standby.url}/api/v1/config/candidates",
        headers={"Authorization": f"Bearer {standby.token()}"},
        content=(site.tmp / "doc.json").read_bytes(),
    )
    assert pushed.status_code == 201, pushed.text
    for node in (leader, standby):
        until(
            lambda node=node: (
                site.api(node, "/api/v1/checks?limit=500")["total"] == site.checks + 1
            ),
            within=15,
            what=f"{node.name} runs the pushed version",
        )
    shown = site.cli("cluster", "status", "--url", standby.url, "--data-dir", str(standby.data))
    assert shown.splitlines()[0] == (
        f"{standby.name}: standby, term {site.term()}, leader {leader.name} at {leader.url}"
    )


def test_started_in_the_same_second_one_leader_has_every_check(site: HaSite) -> None:
    site.start(together=True)
    leader = site.wait_leader()
    until(
        lambda: site.api(leader, "/api/v1/checks?limit=500")["total"] == site.checks + 1,
        within=20,
        what="the leader runs every check",
    )
    standby = site.other(leader)
    until(
        lambda: site.api(standby, "/api/v1/checks?limit=500")["total"] == site.checks + 1,
        within=20,
        what="the standby's view shows every check",
    )
    runs = runs_over(site, 8)
    assert_once_per_interval(site, runs, 8)


def test_kill_of_the_leader_standby_takes_over_remediation_runs_once(site: HaSite) -> None:
    site.start()
    leader = site.wait_leader()
    standby = site.other(leader)
    until(lambda: site.workers_on(leader) == {"w1", "w2"}, within=20, what="both workers")
    term = site.term()
    site.flag.touch()  # the flag check goes CRITICAL; its remediation is queued
    until(lambda: bool(site.job_states()), within=20, what="a remediation job")
    time.sleep(0.1)  # the "queued 100 ms before the kill"
    site.signal(leader, signal.SIGKILL)
    killed = time.monotonic()
    site.wait_leader(within=10)
    took_over = time.monotonic() - killed
    assert site.leaders() == [standby]
    assert took_over <= 5, f"the standby led {took_over:.1f} s after the kill"
    assert site.term() == term + 1
    until(lambda: site.workers_on(standby) == {"w1", "w2"}, within=10, what="workers are back")
    until(lambda: not site.flag.exists(), within=30, what="the action fixed the flag")
    until(
        lambda: site.job_states() and site.job_states()[-1] == "succeeded",
        within=30,
        what="the job is verified",
    )
    assert site.run_count() == 1
    runs = runs_over(site, 8)
    assert_once_per_interval(site, runs, 8)
    terms = site.query("SELECT node, previous, reason FROM leader_terms ORDER BY term")
    assert terms[-1][:2] == (standby.name, leader.name)


def test_frozen_leader_is_fenced_and_stands_by_after_it_wakes(site: HaSite) -> None:
    site.start()
    leader = site.wait_leader()
    standby = site.other(leader)
    until(lambda: site.workers_on(leader) == {"w1", "w2"}, within=20, what="both workers")
    old_term = site.term()
    site.signal(leader, signal.SIGSTOP)
    frozen = time.monotonic()
    until(
        lambda: (site.status(standby) or {}).get("role") == "leader",
        within=4 + 5 + 2,
        what="the standby leads",
    )
    took_over = time.monotonic() - frozen
    assert took_over <= 4 + 5, f"took over {took_over:.1f} s after the freeze"
    until(lambda: site.workers_on(standby) == {"w1", "w2"}, within=20, what="workers moved")
    takeover_at = site.query("SELECT since FROM cluster_leader WHERE id = 1")[0][0]
    site.signal(leader, signal.SIGCONT)
    until(
        lambda: (site.status(leader) or {}).get("role") == "standby",
        within=10,
        what="the old leader stands by",
    )
    runs = runs_over(site, 8)
    assert_once_per_interval(site, runs, 8)
    stale = site.query(
        "SELECT count(*) FROM check_states WHERE term = %s AND last_check > %s",
        old_term,
        takeover_at,
    )
    assert stale == [(0,)], "the old leader wrote check states after the takeover"
    assert site.leaders() == [standby]
    log = (site.tmp / f"{leader.name}.log").read_text()
    assert "stepping down as leader" in log
    # Its job server is closed: no worker can be handed a job by the old term.
    assert site.workers_on(leader) == set()


def test_a_term_bumped_by_hand_deposes_the_leader(site: HaSite) -> None:
    site.start()
    leader = site.wait_leader()
    term = site.term()
    site.query("UPDATE cluster_leader SET term = term + 1, node = 'someone-else' WHERE id = 1")
    until(
        lambda: (site.status(leader) or {}).get("role") == "standby",
        within=2,
        what="the leader steps down within a heartbeat or so",
    )
    new = site.wait_leader(within=20)
    assert site.term() == term + 2
    assert site.status(new)["term"] == term + 2  # type: ignore[index]
