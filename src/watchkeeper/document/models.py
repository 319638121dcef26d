"""The desired-state document, schema ``watchkeeper/v1``, as pydantic models.

These models guard the boundary: they check the *shape* of each object (types, patterns,
unknown fields). Rules that span objects (unique names, references, parent cycles) live in
`watchkeeper.document.semantics`, so every problem can be reported, not just the first.
Every model forbids unknown fields; the validator adds a did-you-mean hint.

Checks, notification channels and remediation actions are plugins: each kind's model is
its plugin's ``Config`` (`watchkeeper.plugins`), and the unions below are built from the
registries when this module is imported, so an installed kind is part of the document.
Their shared field types are in `watchkeeper.document.fields`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import ConfigDict, Discriminator, Field, Tag

from watchkeeper import plugins
from watchkeeper.document.deployments import Deployment
from watchkeeper.document.fields import (
    LABEL_KEY_PATTERN,
    MAX_STRING,
    NAME_PATTERN,
    Command,
    Duration,
    HostBinding,
    Labels,
    LabelSelector,
    Name,
    NamedPluginSpec,
    PluginSpec,
    PluginState,
    Port,
    PositiveDuration,
    RangeText,
    SecretRef,
    Strict,
    Text,
)
from watchkeeper.document.platforms import Limits, PlatformConfig

SCHEMA_ID = "watchkeeper/v1"

# --- checks -------------------------------------------------------------------------------

if TYPE_CHECKING:
    Check = PluginSpec
else:
    Check = plugins.CHECKS.union()
"""A check: one of the registered check kinds (`watchkeeper.plugins.CHECKS`)."""


class Threshold(Strict):
    """Ranges on one perfdata metric; a value outside a range gives that state."""

    warning: RangeText | None = None
    critical: RangeText | None = None
    consecutive: Annotated[int, Field(ge=1, le=1000)] = Field(
        default=1,
        description="Results in a row outside a range before it counts (insufficient value).",
    )
    no_data: PositiveDuration | None = Field(
        default=None,
        description="Open a metric alarm when the metric has had no value for this long.",
    )


class Flapping(Strict):
    """Nagios-style flap detection: percent state change over the last 21 results."""

    enabled: bool = True
    low: Annotated[float, Field(ge=0, le=100)] = Field(
        default=25.0, description="Flapping stops below this percent state change."
    )
    high: Annotated[float, Field(ge=0, le=100)] = Field(
        default=30.0, description="Flapping starts above this percent state change."
    )


Thresholds = dict[Annotated[str, Field(min_length=1)], Threshold]


class Schedule(Strict):
    """Fields shared by templates and services; unset fields fall through to the template."""

    interval: PositiveDuration | None = Field(
        default=None, description="Between checks. Default 60s."
    )
    retry_interval: PositiveDuration | None = Field(
        default=None, description="Between checks while in a soft non-OK state. Default 15s."
    )
    max_attempts: Annotated[int, Field(ge=1, le=100)] | None = Field(
        default=None, description="Results before a non-OK state becomes hard. Default 3."
    )
    timeout: PositiveDuration | None = Field(default=None, description="Per check. Default 10s.")
    thresholds: Thresholds | None = None
    threshold_mode: Literal["complement", "override"] | None = Field(
        default=None,
        description=(
            "complement (default): the worse of the plugin's state and the thresholds'; "
            "override: the thresholds alone decide when a thresholded metric is present."
        ),
    )
    notifications: list[Name] | None = Field(
        default=None, description="Notification channels for this object's problems."
    )
    renotify: PositiveDuration | None = Field(
        default=None,
        description="Repeat a problem's notification this often while it lasts. Default: once.",
    )
    flapping: Flapping | None = None


# --- objects ------------------------------------------------------------------------------


class Zone(Strict):
    """A network boundary; a zone's jobs go only to workers enrolled for it."""

    name: Name = Field(description="Unique among objects of this kind.")
    description: Text | None = None
    labels: Labels = Field(default_factory=dict)


class Template(Schedule):
    """Reusable check settings that services and hosts name with ``template``."""

    name: Name = Field(description="Unique among objects of this kind.")
    check: Check | None = None


class HostCheck(Schedule):
    """How a host's own up/down state is checked."""

    template: Name | None = None
    check: Check | None = None


class Host(Strict):
    """A machine or device to watch."""

    name: Name = Field(description="Unique among objects of this kind.")
    address: str = Field(
        min_length=1, max_length=255, pattern=r"^\S+$", description="IP address or DNS name."
    )
    zone: Name = Field(description="The zone whose workers check this host.")
    display_name: Text | None = None
    labels: Labels = Field(default_factory=dict)
    parents: list[Name] = Field(
        default_factory=list,
        description="Hosts between the checker and this host; if all are down it is UNREACHABLE.",
    )
    check: HostCheck | None = Field(default=None, description="Without one the host is UP.")


class Service(Schedule):
    """A check bound to hosts by a list of names or a label selector."""

    name: Name = Field(description="Unique among objects of this kind.")
    hosts: HostBinding
    template: Name | None = None
    check: Check | None = None
    labels: Labels = Field(default_factory=dict)


# --- notifications ------------------------------------------------------------------------


if TYPE_CHECKING:
    Channel = NamedPluginSpec
else:
    Channel = plugins.CHANNELS.union()
"""A notification channel: one of the registered kinds (`watchkeeper.plugins.CHANNELS`)."""


# --- remediation --------------------------------------------------------------------------


if TYPE_CHECKING:
    ActionSpec = PluginSpec
else:
    ActionSpec = plugins.ACTIONS.union()
"""A remediation action: one of the registered kinds (`watchkeeper.plugins.ACTIONS`)."""


class Action(Strict):
    """A named, reusable remediation action."""

    name: Name = Field(description="Unique among objects of this kind.")
    action: ActionSpec


class Trigger(Strict):
    """Which problems a remediation rule acts on; all given fields must match."""

    host: Name | None = None
    service: Name | None = None
    labels: Labels | None = None
    state: (
        list[Literal["WARNING", "CRITICAL", "UNKNOWN", "DOWN"]]
        | Literal["WARNING", "CRITICAL", "UNKNOWN", "DOWN"]
    ) = "CRITICAL"
    hard: bool = Field(default=True, description="Act only on hard states (default).")
    metric: str | None = Field(
        default=None,
        description="Act on a metric alarm of this metric (thresholds) instead of the state.",
    )


def _action_ref_tag(value: Any) -> str:
    return "name" if isinstance(value, str) else "inline"


ActionRef = Annotated[
    Annotated[Name, Tag("name")] | Annotated[ActionSpec, Tag("inline")],
    Discriminator(_action_ref_tag),
]


class Remediation(Strict):
    """A rule: when a problem matches, queue an action, within guardrails."""

    name: Name = Field(description="Unique among objects of this kind.")
    when: Trigger
    action: ActionRef = Field(description="The name of an action, or an inline action.")
    max_attempts: Annotated[int, Field(ge=1, le=100)] = 3
    window: PositiveDuration = Field(
        default="1h", validate_default=True, description="The window of max_attempts."
    )
    cooldown: Duration = Field(
        default="10m", validate_default=True, description="Quiet time after each attempt."
    )
    notifications: list[Name] = Field(default_factory=list)
    max_concurrent: Annotated[int, Field(ge=1, le=1000)] = Field(
        default=1, description="Actions of this rule running at once."
    )
    circuit_breaker: Annotated[int, Field(ge=1, le=100000)] = Field(
        default=5,
        description=(
            "When more targets than this match at once, notify instead of acting: "
            "a wide outage is not fixed by restarting everything."
        ),
    )
    confirm: bool = Field(
        default=False,
        description="Queue actions as pending until an operator runs (or skips) them.",
    )


# --- platforms and infrastructure ---------------------------------------------------------


if TYPE_CHECKING:
    Platform = PlatformConfig
else:
    Platform = plugins.PROVIDERS.union()
"""A platform: one of the registered providers' models (`watchkeeper.plugins.PROVIDERS`),
each a `PlatformConfig` with its own ``options``, told apart by ``provider``."""


class SlotHost(Strict):
    """How each slot of a resource is monitored: it becomes a host named after the slot."""

    zone: Name | None = Field(default=None, description="Default: the platform's zone.")
    address: Literal["private", "public"] = Field(
        default="private", description="Which of the machine's addresses checks use."
    )
    parents: list[Name] = Field(default_factory=list)
    check: HostCheck | None = Field(default=None, description="Without one the host is UP.")


#: What a resource's ``confirm`` may name: the actions that wait for an operator.
Confirmable = Literal["create", "destroy", "resize", "replace"]


class Resource(Strict):
    """Desired infrastructure: ``count`` machines of one shape on a platform.

    Each machine fills a *slot*, ``NAME-0`` .. ``NAME-(count-1)``; each slot is a host of
    the document (its labels plus ``watchkeeper.resource``), so label selectors bind
    services to it, and scaling down removes the highest slot first.
    """

    name: Name = Field(description="Unique among objects of this kind.")
    platform: Name
    description: Text | None = None
    count: Annotated[int, Field(ge=0, le=10000)] = 1
    size: str | None = Field(default=None, max_length=255, description="e.g. t3.small.")
    image: str | None = Field(default=None, max_length=255, description="e.g. an AMI id.")
    labels: Labels = Field(default_factory=dict)
    host: SlotHost = Field(default_factory=SlotHost)
    update: Literal["in-place", "replace", "create-before-destroy"] = Field(
        default="in-place",
        description=(
            "How a changed size or image reaches the machines, one slot at a time: "
            "in-place (stop, resize, start; an image cannot change in place), replace "
            "(destroy, then create), create-before-destroy."
        ),
    )
    drift: Literal["repair", "report"] = Field(
        default="repair",
        description=(
            "Out-of-band changes (stopped, resized, protection lost): repair them, or only "
            "report them on the resource's check. Missing slots are created either way."
        ),
    )
    protect: bool = Field(
        default=False,
        description=(
            "Set the platform's termination guard. A later document that drops this does "
            "not lift it: an operator does (watchkeeper infra unprotect SLOT)."
        ),
    )
    confirm: list[Confirmable] = Field(
        default_factory=lambda: list[Confirmable](["destroy"]),
        description="Actions that wait for an operator's confirmation. Default: destroy.",
    )
    options: dict[str, str | int | float | bool | list[str]] = Field(
        default_factory=dict, description="Provider options: subnet, private_ips, ..."
    )
    notifications: list[Name] = Field(
        default_factory=list,
        description="Channels told about the resource's own check (infra:NAME).",
    )


# --- the document -------------------------------------------------------------------------


class Defaults(Strict):
    """Settings every check takes unless it sets its own, as nagios.cfg sets them for Nagios.

    Each applies to the check kinds that have a field of that name (plugin, agent, ssh).
    """

    timeout_state: PluginState = Field(
        default="CRITICAL",
        description="State of a plugin that runs past its timeout (service_check_timeout_state).",
    )
    out_of_bounds_state: PluginState = Field(
        default="CRITICAL",
        description=(
            "State of a plugin that exits outside 0-3, dies by a signal or cannot be run "
            "(Nagios Core: CRITICAL; Icinga 2: UNKNOWN)."
        ),
    )


class Document(Strict):
    """A complete desired state. Sections may be omitted; they default to empty."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        strict=True,
        str_max_length=MAX_STRING,
        title="Watchkeeper desired-state document",
        json_schema_extra={"$id": "https://watchkeeper.dev/schema/watchkeeper-v1.json"},
    )

    schema_: Literal["watchkeeper/v1"] = Field(alias="schema")
    defaults: Defaults | None = None
    zones: list[Zone] = Field(default_factory=list)
    hosts: list[Host] = Field(default_factory=list)
    templates: list[Template] = Field(default_factory=list)
    services: list[Service] = Field(default_factory=list)
    notifications: list[Channel] = Field(default_factory=list)
    actions: list[Action] = Field(default_factory=list)
    remediations: list[Remediation] = Field(default_factory=list)
    platforms: list[Platform] = Field(default_factory=list)
    infrastructure: list[Resource] = Field(default_factory=list)
    deployments: list[Deployment] = Field(default_factory=list)


__all__ = [
    "LABEL_KEY_PATTERN",
    "NAME_PATTERN",
    "SCHEMA_ID",
    "SECTIONS",
    "Action",
    "ActionRef",
    "ActionSpec",
    "Channel",
    "Check",
    "Command",
    "Defaults",
    "Deployment",
    "Document",
    "Duration",
    "Flapping",
    "Host",
    "HostBinding",
    "HostCheck",
    "LabelSelector",
    "Labels",
    "Limits",
    "Name",
    "Platform",
    "PlatformConfig",
    "PluginState",
    "Port",
    "PositiveDuration",
    "RangeText",
    "Remediation",
    "Resource",
    "Schedule",
    "SecretRef",
    "Service",
    "SlotHost",
    "Strict",
    "Template",
    "Threshold",
    "Thresholds",
    "Trigger",
    "Zone",
]

#: Section name -> model of one item, in the order objects are validated and imported.
SECTIONS: dict[str, Any] = {
    "zones": Zone,
    "hosts": Host,
    "templates": Template,
    "services": Service,
    "notifications": Channel,
    "actions": Action,
    "remediations": Remediation,
    "platforms": Platform,
    "infrastructure": Resource,
    "deployments": Deployment,
}
