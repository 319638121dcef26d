"""The http action: call an endpoint (a deploy hook, an orchestrator API); 2xx is success.

``body`` goes as JSON; ``bearer_token`` is a secret reference resolved on the worker at
call time. Redirects are not followed and proxies from the environment are ignored, as
for the http check. The output is the status line; the response body (up to
`MAX_BODY` characters) is the long output.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import httpx
from pydantic import BaseModel, Field

from watchkeeper.document.fields import SecretRef, Strict
from watchkeeper.errors import SecretError
from watchkeeper.plugins import ACTIONS
from watchkeeper.results import CheckOutcome
from watchkeeper.secrets import resolve_secret
from watchkeeper.worker.actions.base import ActionTarget, failed, succeeded
from watchkeeper.worker.executors import Executors

MAX_BODY = 4096
USER_AGENT = "watchkeeper-remediation"


class HttpAction(Strict):
    """Call an HTTP endpoint (a deploy hook, an orchestrator API)."""

    kind: Literal["http"]
    url: str = Field(pattern=r"^https?://\S+$")
    method: Literal["GET", "POST", "PUT", "DELETE"] = "POST"
    body: dict[str, Any] | None = None
    bearer_token: SecretRef | None = None


@ACTIONS.register
class HttpActionRunner:
    """Calls ``url``; ``environ`` is where ``env:`` secrets are looked up."""

    kind: ClassVar[str] = "http"
    Config: ClassVar[type[BaseModel]] = HttpAction

    def __init__(
        self,
        executors: Executors | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        verify: bool = True,
    ) -> None:
        self._environ = environ
        self._client = httpx.AsyncClient(
            transport=transport,
            verify=verify,
            follow_redirects=False,
            trust_env=False,
            headers={"User-Agent": USER_AGENT},
        )

    async def run(self, spec: HttpAction, target: ActionTarget) -> CheckOutcome:
        started = time.perf_counter()
        headers = {}
        if spec.bearer_token is not None:
            try:
                token = resolve_secret(spec.bearer_token, self._environ)
            except SecretError as exc:
                return failed(f"HTTP ACTION FAILED - {exc.message}")
            headers["Authorization"] = f"Bearer {token}"
        try:
            response = await self._client.request(
                spec.method, spec.url, json=spec.body, headers=headers, timeout=target.timeout
            )
        except httpx.TimeoutException:
            return failed(
                f"HTTP ACTION FAILED - {spec.method} {spec.url} timed out after "
                f"{target.timeout:g}s",
                duration=time.perf_counter() - started,
            )
        except httpx.HTTPError as exc:
            return failed(
                f"HTTP ACTION FAILED - {spec.method} {spec.url}: {exc!s} ({type(exc).__name__})",
                duration=time.perf_counter() - started,
            )
        duration = time.perf_counter() - started
        line = f"{spec.method} {spec.url} answered {response.status_code} {response.reason_phrase}"
        body = response.text[:MAX_BODY]
        if response.is_success:
            return succeeded(f"HTTP ACTION OK - {line}", long_output=body, duration=duration)
        return failed(f"HTTP ACTION FAILED - {line}", long_output=body, duration=duration)

    async def aclose(self) -> None:
        await self._client.aclose()
