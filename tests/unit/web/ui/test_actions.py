"""Operator actions from the pages: roles, CSRF, and what each action changes."""

from __future__ import annotations

from tests.fixtures.engine import CRITICAL, OK
from tests.unit.web.ui.conftest import Env
from watchkeeper.web.security import Role

HTMX = {"HX-Request": "true"}


async def failing(env: Env) -> None:
    await env.report({"web1": (OK, "SSH OK")})
    await env.report({"db1!ssh": (CRITICAL, "connection refused")})


async def test_a_viewer_is_refused_every_action(env: Env) -> None:
    await failing(env)
    token = await env.login(Role.VIEWER)
    headers = HTMX | {"X-CSRF-Token": token}
    for path in (
        "/services/db1!ssh/acknowledge",
        "/services/db1!ssh/check-now",
        "/downtimes",
        "/downtimes/1/cancel",
        "/remediation/1/run",
    ):
        answer = await env.http.post(path, data={"comment": "x", "host": "db1"}, headers=headers)
        assert answer.status_code == 403, path
    assert not (await env.stages.alarms.list_alarms(open_only=True))[0].acknowledgement


async def test_an_action_without_the_csrf_token_is_refused(env: Env) -> None:
    await failing(env)
    token = await env.login(Role.OPERATOR)
    missing = await env.http.post("/services/db1!ssh/acknowledge", data={"comment": "x"})
    wrong = await env.http.post(
        "/services/db1!ssh/acknowledge", data={"comment": "x", "csrf_token": token[::-1]}
    )
    assert missing.status_code == wrong.status_code == 403
    assert not (await env.stages.alarms.list_alarms(open_only=True))[0].acknowledgement


async def test_acknowledging_with_htmx_flashes_and_triggers_a_refresh(env: Env) -> None:
    await failing(env)
    token = await env.login(Role.OPERATOR)
    answer = await env.http.post(
        "/services/db1!ssh/acknowledge",
        data={"comment": "on it", "sticky": "off", "expires": "4h"},
        headers=HTMX | {"X-CSRF-Token": token},
    )
    assert answer.status_code == 200, answer.text
    assert "Acknowledged db1!ssh" in answer.text and answer.headers["hx-trigger"] == "wk-changed"
    [alarm] = await env.stages.alarms.list_alarms(open_only=True)
    ack = alarm.acknowledgement
    assert ack is not None and ack.author == "operator-user" and ack.comment == "on it"
    assert not ack.sticky and ack.expires is not None
    page = await env.http.get("/services/db1!ssh")
    assert "on it" in page.text and 'data-acknowledged="true"' in page.text


async def test_a_plain_form_with_its_csrf_field_redirects_back(env: Env) -> None:
    await failing(env)
    token = await env.login(Role.OPERATOR)
    answer = await env.http.post(
        "/services/db1!ssh/acknowledge",
        data={"comment": "on it", "csrf_token": token, "next": "/services/db1!ssh"},
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/services/db1!ssh"
    away = await env.http.post(
        "/services/db1!ssh/check-now",
        data={"csrf_token": token, "next": "https://evil.example/"},
    )
    assert away.status_code == 303 and away.headers["location"] == "/"


async def test_quick_acknowledge_takes_the_comment_from_the_prompt(env: Env) -> None:
    await failing(env)
    token = await env.login(Role.OPERATOR)
    headers = HTMX | {"X-CSRF-Token": token, "HX-Prompt": "from the overview"}
    answer = await env.http.post("/services/db1!ssh/acknowledge", headers=headers)
    assert answer.status_code == 200
    [alarm] = await env.stages.alarms.list_alarms(open_only=True)
    assert alarm.acknowledgement is not None
    assert alarm.acknowledgement.comment == "from the overview"


async def test_bad_or_pointless_actions_say_why(env: Env) -> None:
    await failing(env)
    token = await env.login(Role.OPERATOR)
    headers = HTMX | {"X-CSRF-Token": token}
    no_comment = await env.http.post("/services/db1!ssh/acknowledge", headers=headers)
    assert no_comment.status_code == 422 and "comment" in no_comment.text
    no_alarm = await env.http.post(
        "/services/web1!ssh/acknowledge", data={"comment": "x"}, headers=headers
    )
    assert no_alarm.status_code == 409 and "no open alarm" in no_alarm.text
    bad_length = await env.http.post(
        "/downtimes", data={"host": "db1", "duration": "soon", "comment": "x"}, headers=headers
    )
    assert bad_length.status_code == 422 and "duration" in bad_length.text
    unknown = await env.http.post("/services/nope!x/check-now", headers=headers)
    assert unknown.status_code == 404


async def test_check_now_queues_the_check(env: Env) -> None:
    await failing(env)
    token = await env.login(Role.OPERATOR)
    before = len(env.server.jobs)
    answer = await env.http.post(
        "/services/db1!ssh/check-now", headers=HTMX | {"X-CSRF-Token": token}
    )
    assert answer.status_code == 200 and "queued" in answer.text
    await env.runner._turn()
    assert [j.describe() for j in env.server.jobs[before:]] == ["db1!ssh"]


async def test_downtimes_are_scheduled_listed_and_cancelled(env: Env) -> None:
    await failing(env)
    token = await env.login(Role.OPERATOR)
    headers = HTMX | {"X-CSRF-Token": token}
    made = await env.http.post(
        "/downtimes",
        data={"host": "db1", "service": "ssh", "duration": "90", "comment": "disk swap"},
        headers=headers,
    )
    assert made.status_code == 200, made.text
    [downtime] = await env.stages.alarms.list_downtimes()
    assert downtime.service == "ssh" and downtime.end - downtime.start == 90 * 60
    assert downtime.author == "operator-user"
    listed = await env.http.get("/downtimes")
    assert "disk swap" in listed.text and f"/downtimes/{downtime.id}/cancel" in listed.text
    cancelled = await env.http.post(f"/downtimes/{downtime.id}/cancel", headers=headers)
    assert cancelled.status_code == 200
    assert await env.stages.alarms.list_downtimes() == []
    again = await env.http.post(f"/downtimes/{downtime.id}/cancel", headers=headers)
    assert again.status_code == 404
