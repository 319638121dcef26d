"""What a job asks a worker to do: a typed union of payloads, tagged by ``kind``.

The payload travels inside the wire protocol's job message and, for queued jobs, sits in
the queue; it carries plain JSON of the document (a check object, an action object) that
the worker validates with the plugin's own ``Config``. Secrets stay references: a worker
resolves them where they live.

    check   run one check of the engine's (an executor of `watchkeeper.plugins.CHECKS`)
    action  carry out one remediation action (`watchkeeper.plugins.ACTIONS`)

A new kind of work (observing or changing infrastructure, deploying to a host) is a new
payload class here, added to `Payload`, and a branch of the worker's job runner.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

#: Seconds a check may run when its payload names none (the document's default).
DEFAULT_CHECK_TIMEOUT = 10.0
#: Seconds an action may run when its payload names none.
DEFAULT_ACTION_TIMEOUT = 60.0


class _Payload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CheckPayload(_Payload):
    """Run the check ``key`` of the engine's once against ``address``."""

    kind: Literal["check"] = "check"
    #: The check key, ``host!service`` or ``host``.
    key: str = Field(min_length=1, max_length=300)
    #: The document's check object; its ``kind`` picks the executor.
    check: dict[str, Any]
    address: str = ""
    timeout: float = Field(default=DEFAULT_CHECK_TIMEOUT, gt=0)

    def describe(self) -> str:
        return self.key


class ActionPayload(_Payload):
    """Carry out a remediation action on a target host (and its service)."""

    kind: Literal["action"] = "action"
    #: The document's action object; its ``kind`` picks the action.
    action: dict[str, Any]
    host: str = ""
    service: str | None = None
    address: str = ""
    timeout: float = Field(default=DEFAULT_ACTION_TIMEOUT, gt=0)
    #: The document's platform object, for platform actions (credentials as a reference).
    platform: dict[str, Any] | None = None

    def describe(self) -> str:
        target = self.host if self.service is None else f"{self.host}!{self.service}"
        return f"{self.action.get('kind')} action on {target}"


Payload = Annotated[CheckPayload | ActionPayload, Field(discriminator="kind")]
