"""What a job asks a worker to do: a typed union of payloads, tagged by ``kind``.

The payload travels inside the wire protocol's job message and, for queued jobs, sits in
the queue; it carries plain JSON of the document (a check object, an action object) that
the worker validates with the plugin's own ``Config``. Secrets stay references: a worker
resolves them where they live.

    check   run one check of the engine's (an executor of `watchkeeper.plugins.CHECKS`)
    action  carry out one remediation action (`watchkeeper.plugins.ACTIONS`)
    infra   observe or change a platform (`watchkeeper.plugins.PROVIDERS`)
    deploy  converge one host of a deployment over SSH, or only say what would change

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
    #: The manager's owner id, for platform actions: only machines tagged with it are ours.
    owner: str = Field(default="", max_length=64)

    def describe(self) -> str:
        target = self.host if self.service is None else f"{self.host}!{self.service}"
        return f"{self.action.get('kind')} action on {target}"


#: Seconds an infrastructure call may take (a resize stops, modifies and starts).
DEFAULT_INFRA_TIMEOUT = 300.0

#: What an infra job does: the provider call of that name (``observe`` lists, the others
#: change one machine).
InfraOp = Literal[
    "observe", "create", "destroy", "start", "stop", "reboot", "resize", "protect", "unprotect",
    "adopt",
]  # fmt: skip


class InfraPayload(_Payload):
    """Observe a platform, or change one machine on it, with the platform's provider.

    The platform object travels with its credentials as a *reference*; the worker of the
    platform's zone resolves it. ``owner`` is the manager's cluster id: what carries it
    as a tag is ours, and a worker refuses to change a machine that does not.
    """

    kind: Literal["infra"] = "infra"
    op: InfraOp
    platform: dict[str, Any]
    owner: str = Field(min_length=1, max_length=64)
    resource: str = ""
    slot: str = ""
    index: int = Field(default=0, ge=0)
    #: The machine changed (all but observe and create).
    cloud_id: str | None = None
    #: The operation id, tagged on what a create makes.
    op_id: str = ""
    size: str | None = None
    image: str | None = None
    protect: bool = False
    labels: dict[str, str] = Field(default_factory=dict)
    options: dict[str, Any] = Field(default_factory=dict)
    timeout: float = Field(default=DEFAULT_INFRA_TIMEOUT, gt=0)

    def describe(self) -> str:
        target = self.slot or self.cloud_id
        what = f"infra {self.op} {target}" if target else f"infra {self.op}"
        return f"{what} on {self.platform.get('name')}"


#: The enrolled label a worker needs to receive deploy jobs (an admin grants it).
DEPLOY_REQUIRES = {"deploy": "true"}

#: Seconds a deploy may take: an agent's first install uploads and installs its wheels.
DEFAULT_DEPLOY_TIMEOUT = 600.0

#: ``check`` says what would change (the plan); ``apply`` changes it.
DeployMode = Literal["check", "apply"]


class DeployPayload(_Payload):
    """Converge one host to its deployment's state over SSH (``apply``), or only report
    what that would change (``check``, the deployment's plan and its drift check).

    The deployment object travels with its SSH key as a *reference*, resolved by the deploy
    worker of the host's zone. ``agent_version`` and ``manager_fingerprint`` come from the
    manager, never from the document: the agent installed is the manager's own version and
    pins the manager's own host key.
    """

    kind: Literal["deploy"] = "deploy"
    mode: DeployMode
    deployment: dict[str, Any]
    host: str = Field(min_length=1, max_length=128)
    address: str = Field(min_length=1, max_length=255)
    zone: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    agent_version: str = ""
    manager_fingerprint: str = ""
    timeout: float = Field(default=DEFAULT_DEPLOY_TIMEOUT, gt=0)

    def describe(self) -> str:
        return f"deploy {self.mode} {self.deployment.get('name')} on {self.host}"


Payload = Annotated[
    CheckPayload | ActionPayload | InfraPayload | DeployPayload, Field(discriminator="kind")
]
