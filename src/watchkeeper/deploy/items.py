"""A deploy job's host state as plain items for the engine: pure, no SSH, no pyinfra.

The deploy worker turns a `DeployPayload` into `EngineSpec`: the connection (the key as
a file the worker wrote) and the items in the order they are converged (agent, packages,
files, commands, services: a service may need a file, a command a package). Templates
are rendered here, in a sandbox with undefined names as errors, so a bad template fails
before anything connects, naming the file.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import jinja2
import jinja2.sandbox

from watchkeeper.document.deployments import Deployment
from watchkeeper.errors import WatchkeeperError

#: Where the agent keeps its key and its settings on the host.
AGENT_ETC = "/etc/watchkeeper"
AGENT_KEY = f"{AGENT_ETC}/agent_key"
AGENT_ENV = f"{AGENT_ETC}/agent.env"
AGENT_UNIT = "watchkeeper-agent"
#: Seconds between an unenrolled agent's redials, at most: an approval takes effect soon.
AGENT_RECONNECT_MAX = 10


class DeploySpecError(WatchkeeperError):
    """The deployment cannot be turned into items (a template fails, say)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentItem:
    """The Watchkeeper agent: a venv at ``path`` with ``version``, started as a service."""

    state: str
    version: str
    path: str
    #: The settings file's content (environment for ``watchkeeper worker``).
    env: str
    #: The local tar of the wheelhouse to upload (the worker fills it in).
    wheelhouse: str = ""
    python: str = ""
    kind: str = "agent"


@dataclass(frozen=True, slots=True, kw_only=True)
class Item:
    """A package, file, service or command; ``kind`` says which."""

    kind: str
    name: str
    state: str = "present"
    content: str = ""
    mode: str = ""
    owner: str = ""
    group: str = ""
    running: bool = True
    enabled: bool = True
    creates: str | None = None
    unless: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineSpec:
    """What the engine subprocess reads on stdin (as JSON)."""

    host: str
    address: str
    port: int
    user: str
    key_file: str
    known_hosts: str
    policy: str
    connect_timeout: float
    dry: bool
    agent: AgentItem | None = None
    items: list[Item] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def agent_env(*, host: str, manager: str, fingerprint: str, concurrency: int, zone: str) -> str:
    """The agent's settings: the environment ``watchkeeper worker`` reads."""
    values = {
        "WATCHKEEPER_MANAGER": manager,
        "WATCHKEEPER_WORKER_KEY": AGENT_KEY,
        "WATCHKEEPER_MANAGER_FINGERPRINT": fingerprint,
        "WATCHKEEPER_WORKER_NAME": host,
        "WATCHKEEPER_WORKER_LABELS": f"zone={zone},agent-for={host}",
        "WATCHKEEPER_WORKER_CONCURRENCY": str(concurrency),
        "WATCHKEEPER_RECONNECT_MAX": str(AGENT_RECONNECT_MAX),
    }
    lines = [f"{name}={shlex.quote(value)}" for name, value in values.items()]
    return (
        "# written by watchkeeper deploy; changes are drift and are put back\n"
        + "\n".join(lines)
        + "\n"
    )


def items_of(
    deployment: Deployment,
    *,
    host: str,
    address: str,
    zone: str,
    labels: Mapping[str, str],
) -> list[Item]:
    """The deployment's packages, files (rendered), commands and services, in that order."""
    found = [Item(kind="package", name=p.name, state=p.state) for p in deployment.packages]
    context = {
        "host": {"name": host, "address": address, "zone": zone, "labels": dict(labels)},
        "deployment": deployment.name,
        "vars": dict(deployment.vars),
    }
    for index, spec in enumerate(deployment.files):
        content = spec.content
        if spec.template is not None:
            content = render(spec.template, context, where=f"files/{index}/template ({spec.path})")
        found.append(
            Item(
                kind="file",
                name=spec.path,
                content=content or "",
                mode=spec.mode.zfill(4),
                owner=spec.owner,
                group=spec.group,
            )
        )
    found += [
        Item(kind="command", name=c.run, creates=c.creates, unless=c.unless)
        for c in deployment.commands
    ]
    found += [
        Item(kind="service", name=s.name, running=s.running, enabled=s.enabled)
        for s in deployment.services
    ]
    return found


_ENV = jinja2.sandbox.SandboxedEnvironment(
    undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False
)


def render(template: str, context: Mapping[str, Any], *, where: str) -> str:
    """A file template rendered in Jinja2's sandbox; `DeploySpecError` names ``where``."""
    try:
        return _ENV.from_string(template).render(**context)
    except jinja2.TemplateError as exc:
        raise DeploySpecError(f"{where}: {exc}") from exc


def describe(item: Item | AgentItem, *, installed: str = "") -> str:
    """What converging ``item`` does, as a plan line without the "would" (for people)."""
    if isinstance(item, AgentItem):
        if item.state == "absent":
            return f"remove agent {installed}".rstrip()
        if installed and installed != item.version:
            return f"install agent {item.version}, replacing {installed}"
        return f"install agent {item.version}"
    if item.kind == "package":
        return f"{'remove' if item.state == 'absent' else 'install'} package {item.name}"
    if item.kind == "file":
        return f"change {item.name}"
    if item.kind == "command":
        return f"run {item.name!r}"
    verbs = ["start" if item.running else "stop", "enable" if item.enabled else "disable"]
    return f"{'/'.join(verbs)} service {item.name}"
