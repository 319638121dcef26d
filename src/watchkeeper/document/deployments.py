"""Deployments: the desired software state of hosts that no platform manages.

A deployment binds hosts of the document (by name or label selector, as a service does)
and says what each must have: the Watchkeeper agent (the manager's own version), apt
packages, files, services and guarded commands. A deploy worker of the host's zone
reaches it over SSH, with the key a secret reference names and strict host-key checking,
and converges it with the deployment engine (`watchkeeper.deploy.engine`, pyinfra). Check
mode is the deployment's plan; each host's drift is the check ``deploy:HOST``.

The document may ask for an agent; it never grants one a key: the agent's public key
comes back with the deploy and waits for an admin (``watchkeeper worker-key approve``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import Field, model_validator

from watchkeeper.document.fields import (
    HostBinding,
    Labels,
    Name,
    Port,
    PositiveDuration,
    SecretRef,
    Strict,
    Text,
)

#: An absolute path on the deployed host.
HostPath = Annotated[str, Field(pattern=r"^/\S*$", max_length=4096)]
#: A file mode in octal, as chmod takes it.
FileMode = Annotated[str, Field(pattern=r"^0?[0-7]{3,4}$")]
#: A user or group name on the host.
Account = Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_.-]{0,31}$")]
#: A Debian package name, optionally ``=VERSION``.
PackageName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9+.-]*(=[A-Za-z0-9.+~:-]+)?$")]
#: A systemd unit or init script name.
UnitName = Annotated[str, Field(pattern=r"^[A-Za-z0-9@_.:-]+$", max_length=255)]


class DeploySsh(Strict):
    """How the deploy worker reaches the host: a key by reference, host keys pinned."""

    user: Account = "root"
    port: Port = 22
    key: SecretRef = Field(
        description="The private key, resolved on the deploy worker: file:/path or env:NAME."
    )
    known_hosts: SecretRef | None = Field(
        default=None,
        description=(
            "An OpenSSH known_hosts file on the deploy worker (file:/path). Default: "
            "known_hosts in the worker's data directory."
        ),
    )
    new_hosts: Literal["refuse", "accept"] = Field(
        default="refuse",
        description=(
            "A host whose key is not in known_hosts yet: refuse it (strict), or accept and "
            "record its key on first contact. A changed key refuses the deploy either way."
        ),
    )
    connect_timeout: PositiveDuration = timedelta(seconds=10)


class AgentDeploy(Strict):
    """The Watchkeeper agent on the host: installed from the deploy worker's wheelhouse."""

    state: Literal["present", "absent"] = Field(
        default="present", description="absent stops and removes an installed agent."
    )
    manager: str | None = Field(
        default=None,
        pattern=r"^\S+:\d{1,5}$",
        description=(
            "The job server the agent dials, HOST:PORT as seen from the host. Default: the "
            "one the deploy worker dials."
        ),
    )
    path: HostPath = Field(default="/opt/watchkeeper", description="Where the venv goes.")
    concurrency: Annotated[int, Field(ge=1, le=256)] = 4


class Package(Strict):
    """An apt package, present (optionally at a version) or absent."""

    name: PackageName
    state: Literal["present", "absent"] = "present"


class DeployFile(Strict):
    """A file with fixed ``content`` or a Jinja2 ``template``.

    A template sees ``host`` (name, address, zone, labels), ``deployment`` and ``vars``.
    """

    path: HostPath
    content: str | None = None
    template: str | None = None
    mode: FileMode = "0644"
    owner: Account = "root"
    group: Account = "root"

    @model_validator(mode="after")
    def _one_source(self) -> DeployFile:
        if (self.content is None) == (self.template is None):
            raise ValueError("give exactly one of content and template")
        return self


class DeployService(Strict):
    """A service (systemd unit, or init script on hosts without systemd)."""

    name: UnitName
    running: bool = True
    enabled: bool = True


class DeployCommand(Strict):
    """A shell command, run only when its guards allow, as Ansible's creates and Puppet's
    unless: skipped when ``creates`` exists or ``unless`` exits 0."""

    run: Annotated[str, Field(min_length=1)]
    creates: HostPath | None = None
    unless: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _guarded(self) -> DeployCommand:
        if self.creates is None and self.unless is None:
            raise ValueError(
                "a command needs a guard (creates or unless), or it runs on every check and "
                "always counts as drift"
            )
        return self


class Deployment(Strict):
    """Desired software state for hosts no platform manages, converged over SSH."""

    name: Name = Field(description="Unique among objects of this kind.")
    description: Text | None = None
    hosts: HostBinding = Field(description="The hosts: a list of names, or a label selector.")
    ssh: DeploySsh
    agent: AgentDeploy | None = Field(
        default=None, description="The Watchkeeper agent, pinned to the manager's version."
    )
    packages: list[Package] = Field(default_factory=list)
    files: list[DeployFile] = Field(default_factory=list)
    services: list[DeployService] = Field(default_factory=list)
    commands: list[DeployCommand] = Field(default_factory=list)
    vars: dict[Name, str] = Field(
        default_factory=dict, description="Variables the file templates see as vars.NAME."
    )
    drift: Literal["repair", "report"] = Field(
        default="repair",
        description=(
            "What a check-mode run that finds changes leads to: apply them (repair), or only "
            "report them on deploy:HOST (report; an operator applies)."
        ),
    )
    every: PositiveDuration = Field(
        default=timedelta(minutes=10), description="How often each host gets a check-mode run."
    )
    max_concurrent: Annotated[int, Field(ge=1, le=1000)] = Field(
        default=5, description="Hosts deployed at once."
    )
    max_failures: Annotated[int, Field(ge=0, le=1000)] = Field(
        default=0,
        description=(
            "Failed hosts a rollout tolerates; one more halts it (hosts not started yet wait "
            "for a new document or watchkeeper deploy apply)."
        ),
    )
    labels: Labels = Field(default_factory=dict)
    notifications: list[Name] = Field(
        default_factory=list, description="Channels told about the deploy:HOST checks."
    )

    @model_validator(mode="after")
    def _something(self) -> Deployment:
        if not (self.agent or self.packages or self.files or self.services or self.commands):
            raise ValueError(
                "a deployment needs something to deploy: agent, packages, files, services "
                "or commands"
            )
        return self
