"""schemathesis against the API's own OpenAPI document, through ASGI, as the manager's token.

A real manager (embedded worker, a document with a failing and a passing check) runs on its
own event loop in a thread; schemathesis reaches its app in-process through `OnLoop`, an
ASGI adapter that runs each request on the manager's loop (the app's database connections,
engine and stages belong to that loop, and schemathesis' ASGI client runs its own). Every
operation gets a few generated requests (bounded so the module runs well under a minute);
each answer must not be a 5xx and must conform to the document (status code documented or
an error, content type and body schema).

Left out, because generated calls would wreck the fixture the others run against:
``POST /api/v1/config/candidates`` (a generated document replaces the running configuration)
and ``PATCH``/``DELETE /api/v1/users/{name}`` (they could disable or delete the accounts);
they are covered by tests/integration/test_api_routes.py.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
)

from watchkeeper.runtime import Manager, ManagerSettings

CHECK_DUMMY = "/usr/lib/nagios/plugins/check_dummy"
pytestmark = pytest.mark.skipif(
    not Path(CHECK_DUMMY).exists(), reason="monitoring-plugins not installed"
)
CHECKS = [not_a_server_error, content_type_conformance, response_schema_conformance]
EXCLUDED = {
    ("POST", "/api/v1/config/candidates"),
    ("PATCH", "/api/v1/users/{name}"),
    ("DELETE", "/api/v1/users/{name}"),
}

Scope = dict[str, Any]


class OnLoop:
    """An ASGI app that runs another app's requests on ``loop`` (lifespan answered here)."""

    def __init__(self, app: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.app, self.loop = app, loop

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        caller = asyncio.get_running_loop()
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return

        async def bridged_receive() -> Any:
            return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(receive(), caller))

        async def bridged_send(message: Any) -> None:
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(send(message), caller))

        done = asyncio.run_coroutine_threadsafe(
            self.app(scope, bridged_receive, bridged_send), self.loop
        )
        await asyncio.wrap_future(done)


class Background:
    """A manager on its own loop in a thread, until `stop`."""

    def __init__(self, manager: Manager) -> None:
        self.manager = manager
        self.ready = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="manager", daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            self.loop = asyncio.get_running_loop()

            async def started() -> None:
                self.ready.set()

            await self.manager.run(started)

        try:
            asyncio.run(main())
        except BaseException as exc:  # shown by the fixture
            self.error = exc
            self.ready.set()

    def stop(self) -> None:
        assert self.loop is not None
        self.loop.call_soon_threadsafe(self.manager.stop)
        self.thread.join(30)


def document() -> dict[str, Any]:
    fast = {"interval": "1s", "retry_interval": "1s", "max_attempts": 1, "timeout": "2s"}
    return {
        "schema": "watchkeeper/v1",
        "zones": [{"name": "core"}],
        "hosts": [{"name": "h1", "address": "127.0.0.1", "zone": "core"}],
        "services": [
            {"name": "flag", "hosts": ["h1"], **fast,
             "check": {"kind": "plugin", "command": [CHECK_DUMMY, "2", "flag is up|v=1"]}},
            {"name": "calm", "hosts": ["h1"], **fast,
             "check": {"kind": "plugin", "command": [CHECK_DUMMY, "0", "all calm"]}},
        ],
    }  # fmt: skip


@pytest.fixture(scope="module")
def background(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Background]:
    tmp = tmp_path_factory.mktemp("schemathesis")
    (tmp / "doc.json").write_text(json.dumps(document()))
    manager = Manager(
        ManagerSettings(
            source=str(tmp / "doc.json"),
            data_dir=tmp / "data",
            http_port=0,
            jobs_port=0,
            poll_interval=0.5,
            embedded_worker=True,
        )
    )
    running = Background(manager)
    running.thread.start()
    assert running.ready.wait(30), "the manager did not start"
    if running.error is not None:
        raise running.error
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def auth(background: Background) -> dict[str, str]:
    return {"Authorization": f"Bearer {background.manager.token}"}


@pytest.fixture(scope="module")
def api_schema(background: Background, auth: dict[str, str]) -> Any:
    server = background.manager.server
    assert server is not None and background.loop is not None
    app = OnLoop(server.config.app, background.loop)
    loaded = schemathesis.openapi.from_asgi("/api/v1/openapi.json", app, headers=auth)
    return loaded.exclude(
        func=lambda ctx: (ctx.operation.method.upper(), ctx.operation.path) in EXCLUDED
    )


def failures_of(
    operations: list[Any],
    auth: dict[str, str],
    checks: list[Any],
    *,
    mode: GenerationMode = GenerationMode.POSITIVE,
    examples: int = 15,
) -> dict[str, str]:
    """Each operation's generated requests, checked; the failures by operation."""
    failures: dict[str, str] = {}
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=examples,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def exercise(case: Any) -> None:
            response = case.call(headers=auth)
            case.validate_response(response, checks=checks, headers=auth)

        try:
            exercise()
        except (Exception, BaseExceptionGroup) as exc:  # per operation, reported together
            failures[operation.label] = str(exc)[:2000]
    return failures


def test_no_server_error_and_answers_conform(api_schema: Any, auth: dict[str, str]) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) > 30
    failures = failures_of(operations, auth, CHECKS)
    assert sorted(failures) == [], "\n\n".join(f"{k}: {v}" for k, v in failures.items())


def integer_path_operations(openapi: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(method, path, parameter) of every operation with an integer path parameter."""
    found = []
    for path, item in openapi["paths"].items():
        for method, operation in item.items():
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path" and parameter["schema"].get("type") == "integer":
                    found.append((method.upper(), path, parameter["name"]))
    return found


def test_integer_ids_beyond_64_bits_are_4xx_on_every_route(
    background: Background, auth: dict[str, str]
) -> None:
    """``/config/versions/99999999999999999999999999`` answered 500 with a traceback."""
    base = f"http://127.0.0.1:{background.manager.port}"
    with httpx.Client(base_url=base, headers=auth, timeout=30) as client:
        operations = integer_path_operations(client.get("/api/v1/openapi.json").json())
        assert len(operations) >= 5, operations
        answers = {}
        for method, path, name in operations:
            for huge in (10**26, 2**63, -(2**63) - 1):
                url = "/api/v1" + path.replace("{" + name + "}", str(huge))
                response = client.request(method, url, json={})
                answers[(method, url)] = response.status_code
    wrong = {call: code for call, code in answers.items() if code not in (404, 422)}
    assert wrong == {}, wrong


def test_generated_out_of_schema_values_never_answer_5xx(
    api_schema: Any, auth: dict[str, str]
) -> None:
    """schemathesis' negative mode: ids past their bounds, wrong types, missing fields."""
    operations = [
        result.ok() for result in api_schema.get_all_operations() if "{" in result.ok().path
    ]
    assert operations
    failures = failures_of(
        operations, auth, [not_a_server_error], mode=GenerationMode.NEGATIVE, examples=10
    )
    assert sorted(failures) == [], "\n\n".join(f"{k}: {v}" for k, v in failures.items())
