"""The desired-state document, schema ``watchkeeper/v1``, as pydantic models.

These models guard the boundary: they check the *shape* of each object (types, patterns,
unknown fields). Rules that span objects (unique names, references, parent cycles) live in
`watchkeeper.document.semantics`, so every problem can be reported, not just the first.
Every model forbids unknown fields; the validator adds a did-you-mean hint.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainSerializer,
    Tag,
    WithJsonSchema,
)

from watchkeeper.document.durations import DURATION_PATTERN, format_duration, parse_duration
from watchkeeper.document.ranges import parse_range
from watchkeeper.secrets import SECRET_REF_PATTERN, is_secret_ref

SCHEMA_ID = "watchkeeper/v1"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$"
LABEL_KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-/]{0,62}$"


def _duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    return parse_duration(value)


def _range_text(value: Any) -> str:
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise ValueError('a threshold range is a string such as "10", "10:" or "@10:20"')
    text = str(value)
    parse_range(text)
    return text


def _secret(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("a secret field takes a reference string: env:NAME or file:/path")
    if not is_secret_ref(value):
        raise ValueError(
            "secret fields take a reference, never a literal value: "
            "use env:NAME (an environment variable) or file:/path (a file on the worker)"
        )
    return value


_CREDENTIAL_HEADER = re.compile(r"authorization|cookie|token|secret|api-?key|password", re.I)


def _no_credential_headers(headers: dict[str, str]) -> dict[str, str]:
    for name in headers:
        if _CREDENTIAL_HEADER.search(name):
            raise ValueError(
                f"header {name!r} carries a credential; literal secrets are not allowed in "
                "the document: use bearer_token (a secret reference) instead"
            )
    return headers


Duration = Annotated[
    timedelta,
    BeforeValidator(_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN, "examples": ["30s", "5m"]}),
]


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be longer than 0s")
    return value


PositiveDuration = Annotated[Duration, AfterValidator(_positive)]
RangeText = Annotated[
    str,
    BeforeValidator(_range_text),
    WithJsonSchema(
        {
            "type": ["string", "number"],
            "description": "Nagios range: 10, 10:, ~:10, 10:20, @10:20 (a bare number is 0..N)",
        }
    ),
]
SecretRef = Annotated[
    str,
    BeforeValidator(_secret),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": SECRET_REF_PATTERN,
            "description": "A reference to a secret: env:NAME or file:/path. Never the value.",
        }
    ),
]
Name = Annotated[str, Field(pattern=NAME_PATTERN)]
Labels = Annotated[
    dict[Annotated[str, Field(pattern=LABEL_KEY_PATTERN)], Annotated[str, Field(max_length=256)]],
    WithJsonSchema(
        {
            "type": "object",
            "propertyNames": {"pattern": LABEL_KEY_PATTERN},
            "additionalProperties": {"type": "string", "maxLength": 256},
        }
    ),
    Field(description="Free-form key/value labels, matched by label selectors."),
]
Command = Annotated[
    list[Annotated[str, Field(min_length=1)]],
    Field(min_length=1, description="argv: the program then its arguments; no shell."),
]
Port = Annotated[int, Field(ge=1, le=65535)]


class Strict(BaseModel):
    """Base of every document model: unknown fields are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


# --- checks -------------------------------------------------------------------------------


class PluginCheck(Strict):
    """Run a Nagios-compatible plugin on the worker (exit code 0-3, output, perfdata)."""

    kind: Literal["plugin"]
    command: Command
    timeout_state: Literal["UNKNOWN", "CRITICAL"] = Field(
        default="UNKNOWN", description="State given when the plugin exceeds its timeout."
    )


class TcpCheck(Strict):
    """Connect to a TCP port of the host; optionally send a string and expect a reply."""

    kind: Literal["tcp"]
    port: Port
    send: str | None = None
    expect: str | None = None
    tls: bool = False


class HttpCheck(Strict):
    """Request a URL on the host; check status, body, latency and certificate lifetime."""

    kind: Literal["http"]
    port: Port | None = Field(default=None, description="Default 80, or 443 with tls.")
    path: str = Field(default="/", pattern=r"^/")
    tls: bool = False
    method: Literal["GET", "HEAD", "POST"] = "GET"
    host_header: str | None = None
    expect_status: list[Annotated[int, Field(ge=100, le=599)]] = Field(
        default_factory=lambda: [200]
    )
    body_contains: str | None = None
    certificate_days: Annotated[int, Field(ge=0)] | None = Field(
        default=None, description="With tls: WARNING when the certificate expires sooner."
    )
    bearer_token: SecretRef | None = None


class PingCheck(Strict):
    """ICMP echo to the host; perfdata rta and pl."""

    kind: Literal["ping"]
    count: Annotated[int, Field(ge=1, le=100)] = 3


class SshCheck(Strict):
    """Run a command or plugin on the host over SSH, like check_by_ssh."""

    kind: Literal["ssh"]
    command: Command
    user: str = "watchkeeper"
    port: Port = 22
    key: SecretRef = Field(description="Private key the worker uses, as a secret reference.")
    known_hosts: Literal["strict", "accept-new"] = Field(
        default="strict", description="strict: the host key must be known; accept-new: TOFU."
    )


class AgentCheck(Strict):
    """Run a local check through the Watchkeeper agent installed on the host itself."""

    kind: Literal["agent"]
    command: Command


Check = Annotated[
    PluginCheck | TcpCheck | HttpCheck | PingCheck | SshCheck | AgentCheck,
    Field(discriminator="kind"),
]
CHECK_KINDS = ("plugin", "tcp", "http", "ping", "ssh", "agent")


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
    description: str | None = None
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
    display_name: str | None = None
    labels: Labels = Field(default_factory=dict)
    parents: list[Name] = Field(
        default_factory=list,
        description="Hosts between the checker and this host; if all are down it is UNREACHABLE.",
    )
    check: HostCheck | None = Field(default=None, description="Without one the host is UP.")


class LabelSelector(Strict):
    """Selects hosts whose labels contain all of ``labels`` (and are in ``zone`` if given)."""

    labels: Labels = Field(default_factory=dict)
    zone: Name | None = None


def _host_binding_tag(value: Any) -> str:
    return "names" if isinstance(value, list) else "selector"


HostBinding = Annotated[
    Annotated[list[Name], Tag("names")] | Annotated[LabelSelector, Tag("selector")],
    Discriminator(_host_binding_tag),
]


class Service(Schedule):
    """A check bound to hosts by a list of names or a label selector."""

    name: Name = Field(description="Unique among objects of this kind.")
    hosts: HostBinding
    template: Name | None = None
    check: Check | None = None
    labels: Labels = Field(default_factory=dict)


# --- notifications ------------------------------------------------------------------------


class WebhookChannel(Strict):
    """JSON POST to a URL, signed with HMAC-SHA256 when ``secret`` is set."""

    name: Name = Field(description="Unique among objects of this kind.")
    kind: Literal["webhook"]
    url: str = Field(pattern=r"^https?://\S+$")
    secret: SecretRef | None = Field(default=None, description="HMAC-SHA256 signing key.")
    bearer_token: SecretRef | None = None
    headers: Annotated[dict[str, str], AfterValidator(_no_credential_headers)] = Field(
        default_factory=dict,
        description="Extra headers; credentials go in secret or bearer_token, not here.",
    )


class EmailChannel(Strict):
    """Mail through an SMTP server, with STARTTLS unless disabled."""

    name: Name = Field(description="Unique among objects of this kind.")
    kind: Literal["email"]
    to: list[Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")]] = Field(min_length=1)
    sender: str = Field(default="watchkeeper@localhost", alias="from")
    smtp_host: str = "localhost"
    smtp_port: Port = 25
    starttls: bool = True
    username: str | None = None
    password: SecretRef | None = None


class CommandChannel(Strict):
    """Run a command with the notification as JSON on standard input."""

    name: Name = Field(description="Unique among objects of this kind.")
    kind: Literal["command"]
    command: Command


Channel = Annotated[WebhookChannel | EmailChannel | CommandChannel, Field(discriminator="kind")]


# --- remediation --------------------------------------------------------------------------


class SshAction(Strict):
    """Run a command on the target host over SSH."""

    kind: Literal["ssh"]
    command: Command
    user: str = "watchkeeper"
    port: Port = 22
    key: SecretRef


class WorkerCommandAction(Strict):
    """Run a command on the worker that serves the target's zone."""

    kind: Literal["command"]
    command: Command


class HttpAction(Strict):
    """Call an HTTP endpoint (a deploy hook, an orchestrator API)."""

    kind: Literal["http"]
    url: str = Field(pattern=r"^https?://\S+$")
    method: Literal["GET", "POST", "PUT", "DELETE"] = "POST"
    body: dict[str, Any] | None = None
    bearer_token: SecretRef | None = None


class PlatformAction(Strict):
    """Ask the target's platform to act on it (reboot, replace)."""

    kind: Literal["platform"]
    platform: Name
    operation: Literal["reboot", "start", "stop", "replace"]


ActionSpec = Annotated[
    SshAction | WorkerCommandAction | HttpAction | PlatformAction, Field(discriminator="kind")
]


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


class Platform(Strict):
    """A cloud or on-prem management API, used by the workers of its zone."""

    name: Name = Field(description="Unique among objects of this kind.")
    provider: str = Field(pattern=r"^[a-z][a-z0-9_\-]*$", description="e.g. ec2, dummy, lxc.")
    zone: Name
    credentials: SecretRef | None = None
    options: dict[str, str | int | float | bool] = Field(default_factory=dict)


class Resource(Strict):
    """Desired infrastructure: ``count`` machines of one shape on a platform."""

    name: Name = Field(description="Unique among objects of this kind.")
    platform: Name
    count: Annotated[int, Field(ge=0, le=10000)] = 1
    size: str | None = None
    image: str | None = None
    labels: Labels = Field(default_factory=dict)
    options: dict[str, str | int | float | bool] = Field(default_factory=dict)


# --- the document -------------------------------------------------------------------------


class Document(Strict):
    """A complete desired state. Sections may be omitted; they default to empty."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        strict=True,
        title="Watchkeeper desired-state document",
        json_schema_extra={"$id": "https://watchkeeper.dev/schema/watchkeeper-v1.json"},
    )

    schema_: Literal["watchkeeper/v1"] = Field(alias="schema")
    zones: list[Zone] = Field(default_factory=list)
    hosts: list[Host] = Field(default_factory=list)
    templates: list[Template] = Field(default_factory=list)
    services: list[Service] = Field(default_factory=list)
    notifications: list[Channel] = Field(default_factory=list)
    actions: list[Action] = Field(default_factory=list)
    remediations: list[Remediation] = Field(default_factory=list)
    platforms: list[Platform] = Field(default_factory=list)
    infrastructure: list[Resource] = Field(default_factory=list)


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
}
