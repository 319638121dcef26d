"""The web interface in a real browser: Playwright driving Debian's chromium.

A real `Manager` with its embedded worker runs a document with one failing service that
reports perfdata and a few healthy ones. An operator logs in, sees the failure on the
overview, opens it, sees its graph drawn by uPlot, acknowledges it on the service page,
and watches it leave the unacknowledged problems of the overview, which stays open in
another tab and is never reloaded. Screenshots of the main pages go to
``artifacts/screenshots/`` (``WATCHKEEPER_ARTIFACTS`` overrides ``artifacts/``).

Skipped without Playwright or chromium, except with ``CI=true``, where it must run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.manager import api_client, running_manager
from tests.waiting import wait_until
from watchkeeper.runtime import Manager

CHROMIUM = os.environ.get("WATCHKEEPER_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ROOT = Path(__file__).resolve().parents[2]
FAILING = "h1!failing"
PASSWORD = "operator-secret-pw-1"

try:
    from playwright.async_api import Browser, Page, async_playwright
except ImportError:  # pragma: no cover - the test extras install it
    async_playwright = None  # type: ignore[assignment]

_missing = (
    "playwright is not installed"
    if async_playwright is None
    else None
    if Path(CHROMIUM).exists() or shutil.which(CHROMIUM)
    else f"no chromium at {CHROMIUM}"
)
if _missing and os.environ.get("CI") == "true":
    raise RuntimeError(f"the browser test must run with CI=true: {_missing}")
pytestmark = pytest.mark.skipif(_missing is not None, reason=_missing or "")


def screenshots() -> Path:
    base = Path(os.environ.get("WATCHKEEPER_ARTIFACTS", ROOT / "artifacts"))
    folder = base / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def plugin(path: Path, state: int, output: str) -> list[str]:
    """A tiny plugin script that prints ``output`` and exits with ``state``."""
    path.write_text(f"#!/bin/sh\nprintf '%s\\n' {json.dumps(output)}\nexit {state}\n")
    path.chmod(0o755)
    return [str(path)]


def document(folder: Path) -> dict[str, Any]:
    fast = {"interval": "1s", "retry_interval": "1s", "max_attempts": 1, "timeout": "5s"}
    failing = plugin(folder / "failing.sh", 2, "CRITICAL - down | time=0.5s;1;2;0")
    healthy = [
        {"name": f"healthy{n}", "hosts": ["h1", "h2"], **fast,
         "check": {"kind": "plugin",
                   "command": plugin(folder / f"ok{n}.sh", 0, f"OK - fine {n} | time=0.0{n}s")}}
        for n in range(1, 4)
    ]  # fmt: skip
    return {
        "schema": "watchkeeper/v1",
        "zones": [{"name": "core"}],
        "hosts": [
            {"name": "h1", "address": "127.0.0.1", "zone": "core", "labels": {"role": "web"}},
            {"name": "h2", "address": "127.0.0.1", "zone": "core"},
        ],
        "services": [
            {"name": "failing", "hosts": ["h1"], **fast,
             "check": {"kind": "plugin", "command": failing}},
            *healthy,
        ],
    }  # fmt: skip


@dataclass
class Running:
    manager: Manager
    api: httpx.AsyncClient


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    source = tmp_path / "doc.json"
    source.write_text(json.dumps(document(tmp_path)))
    async with running_manager(source, tmp_path / "data") as manager, api_client(manager) as api:
        yield Running(manager, api)


async def has_points(api: httpx.AsyncClient) -> bool:
    answer = await api.get(f"/api/v1/checks/{FAILING}/metrics/time")
    return answer.status_code == 200 and bool(answer.json()["points"])


async def has_open_alarm(api: httpx.AsyncClient) -> bool:
    answer = await api.get("/api/v1/alarms", params={"key": FAILING})
    return answer.status_code == 200 and bool(answer.json())


async def log_in(page: Page, base: str) -> None:
    await page.goto(f"{base}/")
    assert "/login" in page.url  # anonymous: sent to the login form
    await page.fill("#name", "olga")
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{base}/")


async def test_an_operator_sees_graphs_and_acknowledges_a_problem_live(running: Running) -> None:
    api, base = running.api, running.manager.url
    made = await api.post(
        "/api/v1/users", json={"name": "olga", "role": "operator", "password": PASSWORD}
    )
    assert made.status_code == 201, made.text
    await wait_until(lambda: has_open_alarm(api), within=30, what="the failing service's alarm")
    await wait_until(lambda: has_points(api), within=30, what="points of its time metric")
    shots = screenshots()
    problems: list[str] = []

    assert async_playwright is not None
    async with async_playwright() as p:
        browser: Browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(
                viewport={"width": 1400, "height": 900}, timezone_id="America/New_York"
            )
            overview = await context.new_page()
            overview.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            overview.on("pageerror", lambda e: problems.append(str(e)))
            context.on(
                "response",
                lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None,
            )
            await log_in(overview, base)

            # The failing service is an unhandled problem on the overview.
            row = overview.locator(f'#unhandled tr[data-key="{FAILING}"]')
            await row.wait_for(state="visible", timeout=15_000)
            assert await row.locator(".badge").inner_text() == "CRITICAL"
            assert "olga" in await overview.locator("nav .who").inner_text()
            await overview.screenshot(path=str(shots / "overview.png"), full_page=True)
            await overview.evaluate("window.wkNotReloaded = true")

            # Open it in a second tab: the graph is drawn with points.
            service = await context.new_page()
            service.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            service.on("pageerror", lambda e: problems.append(str(e)))
            await service.goto(f"{base}/")
            async with service.expect_navigation():
                await service.locator(f'#unhandled tr[data-key="{FAILING}"] a.svc').click()
            assert service.url.endswith(f"/services/{FAILING}")
            graph = service.locator('figure.graph[data-metric="time"]')
            await service.locator('figure.graph[data-state="drawn"]').wait_for(timeout=15_000)
            assert int(await graph.get_attribute("data-points") or "0") > 0
            assert await graph.locator("canvas").count() == 1
            assert await service.locator("#state-block [data-state=CRITICAL]").count() == 1
            # Its times are UTC as everywhere else, though the browser is in New York:
            # hovering the right edge shows the latest point, a moment ago.
            box = await graph.locator(".u-over").bounding_box()
            assert box is not None
            await service.mouse.move(box["x"] + box["width"] - 2, box["y"] + box["height"] / 2)
            legend = graph.locator(".u-legend .u-series").first.locator(".u-value")
            # uPlot redraws the legend on its next frame after the move: wait for it.
            await service.wait_for_function(
                "el => /^\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\dZ$/.test(el.textContent)",
                arg=await legend.element_handle(),
                timeout=10_000,
            )
            shown = await legend.inner_text()
            hovered = datetime.strptime(shown, "%Y-%m-%d %H:%M:%SZ").replace(tzinfo=UTC)
            assert abs((datetime.now(UTC) - hovered).total_seconds()) < 600, shown
            await service.screenshot(path=str(shots / "service.png"), full_page=True)
            # A page longer than the window: scrolled to its end, the sidebar still fills
            # the window's height.
            await service.set_viewport_size({"width": 1400, "height": 360})
            await service.evaluate("window.scrollTo(0, document.body.scrollHeight)")
            assert await service.evaluate("window.scrollY") > 0  # the page is longer
            side = await service.evaluate(
                "(() => { const r = document.querySelector('nav.side').getBoundingClientRect();"
                " return [r.top, r.bottom]; })()"
            )
            assert abs(side[0]) < 1 and abs(side[1] - 360) < 1, side  # subpixel scrolling
            await service.set_viewport_size({"width": 1400, "height": 900})

            # A longer range is another tier, drawn without reloading the page.
            await service.click('.ranges a[data-range="30d"]')
            await service.locator('figure.graph[data-tier="1h"][data-state="drawn"]').wait_for(
                timeout=15_000
            )
            assert int(await graph.get_attribute("data-points") or "0") > 0

            # Acknowledge it on the service page.
            await service.click("#ack-box summary")
            await service.fill('#ack-form input[name="comment"]', "looking into it")
            await service.click('#ack-form button[type="submit"]')
            await service.locator("#flash .flash").wait_for(timeout=10_000)
            assert "Acknowledged" in await service.locator("#flash").inner_text()
            await service.locator('#state-block [data-acknowledged="true"]').wait_for(
                timeout=10_000
            )

            # The overview tab, never reloaded, moves it out of the unhandled problems.
            await row.wait_for(state="detached", timeout=20_000)
            await overview.locator(f'#handled tr[data-key="{FAILING}"]').wait_for(timeout=5_000)
            assert await overview.evaluate("window.wkNotReloaded") is True
            await overview.screenshot(path=str(shots / "overview-acknowledged.png"), full_page=True)

            for name, path in (
                ("services", "/services"),
                ("hosts", "/hosts"),
                ("host", "/hosts/h1"),
                ("alarms", "/alarms"),
                ("workers", "/workers"),
                ("config", "/config"),
                ("remediation", "/remediation"),
                ("downtimes", "/downtimes"),
                ("infrastructure", "/infrastructure"),
            ):
                answer = await service.goto(f"{base}{path}")
                assert answer is not None and answer.status == 200, path
                await service.screenshot(path=str(shots / f"{name}.png"), full_page=True)
                if name == "workers":  # the embedded worker is connected
                    assert await service.locator("#workers tbody tr").count() >= 1
                if name == "infrastructure":  # the deployment stage's part, none in force
                    assert await service.locator("#deployments").is_visible()
        finally:
            await browser.close()
    assert problems == []  # no script error, no CSP violation


#: Text that must never reach a page: template syntax, undefined values, Python reprs.
LEFTOVERS = re.compile(
    r"\{\{|\{%|%\}|\}\}|Undefined|object at 0x|<watchkeeper\.|\b[A-Z][A-Za-z]+\((?:id|key|name)="
)


def rich_document(folder: Path) -> dict[str, Any]:
    """Records of every kind: a failing service remediated (a job with its audit), one
    waiting for an operator (a pending job), healthy ones with perfdata, a host check."""
    doc = document(folder)
    fast = {"interval": "1s", "retry_interval": "1s", "max_attempts": 1, "timeout": "5s"}
    doc["hosts"][1]["check"] = {"check": {"kind": "plugin", "command": ["true"]}, **fast}
    doc["services"].append(
        {"name": "confirmed", "hosts": ["h2"], **fast,
         "check": {"kind": "plugin", "command": plugin(folder / "c.sh", 2, "CRITICAL - needs ok")}}
    )  # fmt: skip
    doc["remediations"] = [
        {"name": "retry-failing", "when": {"service": "failing"}, "cooldown": "1h",
         "action": {"kind": "command", "command": ["true"]}},
        {"name": "ask-first", "when": {"service": "confirmed"}, "confirm": True,
         "action": {"kind": "command", "command": ["true"]}},
    ]  # fmt: skip
    return doc


async def test_every_page_renders_with_records_of_every_kind(tmp_path: Path) -> None:
    source = tmp_path / "doc.json"
    doc = rich_document(tmp_path)
    source.write_text(json.dumps(doc))
    async with (
        running_manager(source, tmp_path / "data") as manager,
        api_client(manager) as api,
    ):
        base = manager.url
        made = await api.post(
            "/api/v1/users", json={"name": "olga", "role": "operator", "password": PASSWORD}
        )
        assert made.status_code == 201, made.text

        async def jobs_in(*states: str) -> bool:
            found = (await api.get("/api/v1/remediation/jobs")).json()["items"]
            return {j["state"] for j in found} >= set(states)

        await wait_until(lambda: jobs_in("pending"), within=30, what="a pending job")
        await wait_until(lambda: has_open_alarm(api), within=30, what="an open alarm")
        await wait_until(
            lambda: jobs_in("pending", "failed"), within=60, what="a job that ran and failed"
        )
        now = time.time()
        downtime = {"host": "h2", "start": now, "end": now + 3600, "comment": "maintenance"}
        assert (await api.post("/api/v1/downtimes", json=downtime)).status_code == 201
        ack = await api.post(f"/api/v1/checks/{FAILING}/acknowledge", json={"comment": "seen"})
        assert ack.status_code == 200, ack.text
        second = {**doc, "zones": [*doc["zones"], {"name": "spare"}]}
        assert (await api.post("/api/v1/config/candidates", json=second)).status_code == 201
        rejected = await api.post("/api/v1/config/candidates", json={**doc, "hosts": 3})
        assert rejected.status_code == 422
        versions = (await api.get("/api/v1/config/versions")).json()["items"]
        jobs = (await api.get("/api/v1/remediation/jobs")).json()["items"]
        assert len(versions) >= 2 and jobs

        start = [
            "/", "/services", "/services?state=CRITICAL&sort=severity", "/hosts", "/hosts/h1",
            "/hosts/h2", f"/services/{FAILING}", "/services/h2", "/alarms", "/downtimes",
            "/downtimes?past=true", "/remediation", f"/remediation?job={jobs[0]['id']}",
            "/workers", "/config", "/config/diff",
            *(f"/config/versions/{v['id']}" for v in versions),
        ]  # fmt: skip
        problems: list[str] = []
        assert async_playwright is not None
        async with async_playwright() as p:
            browser: Browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                context = await browser.new_context(viewport={"width": 1400, "height": 900})
                page = await context.new_page()
                page.on(
                    "console",
                    lambda m: problems.append(f"console: {m.text}") if m.type == "error" else None,
                )
                page.on("pageerror", lambda e: problems.append(f"script: {e}"))
                context.on(
                    "response",
                    lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None,
                )
                await log_in(page, base)
                queue, seen = list(start), set()
                while queue:
                    path = queue.pop(0)
                    if path in seen:
                        continue
                    seen.add(path)
                    answer = await page.goto(f"{base}{path}")
                    assert answer is not None and answer.status == 200, path
                    text = await page.locator("body").inner_text()
                    html = await page.content()
                    leftover = LEFTOVERS.search(text) or LEFTOVERS.search(
                        re.sub(r"<script.*?</script>", "", html, flags=re.S)
                    )
                    assert leftover is None, f"{path}: {leftover.group(0) if leftover else ''}"
                    for href in await page.eval_on_selector_all(
                        "a[href^='/']", "els => els.map(e => e.getAttribute('href'))"
                    ):
                        link = href.split("#")[0]
                        if link and not link.startswith(("/static", "/api/", "/logout")):
                            queue.append(link)
                assert len(seen) > len(start)  # it followed the pages' own links too
            finally:
                await browser.close()
        assert problems == []
