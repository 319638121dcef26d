"""The field types of the document, shared by its models and by every plugin's ``Config``.

Durations (``30s``, ``5m``), Nagios threshold ranges, secret references, names, labels,
argv commands and ports, each with its validation and its JSON Schema; and `Strict`, the
base of every document model (unknown fields are errors, values are immutable). A plugin
(`watchkeeper.plugins`) builds its ``Config`` from these, so its part of the document
validates and documents itself like the rest.
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


def no_credential_headers(headers: dict[str, str]) -> dict[str, str]:
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
#: A service state a setting may choose (Nagios allows all four for its check settings).
PluginState = Literal["OK", "WARNING", "CRITICAL", "UNKNOWN"]

NoCredentialHeaders = AfterValidator(no_credential_headers)


#: The longest string any field of the document may hold, in characters: a command line, a
#: template or a URL fits many times over; a 50 MB description does not. The document's own
#: cap (`MAX_DOCUMENT_BYTES`) bounds the whole.
MAX_STRING = 65_536
#: The longest description or display name: text for people, shown in lists.
MAX_TEXT = 4_096

#: A description or display name.
Text = Annotated[str, Field(max_length=MAX_TEXT)]


class Strict(BaseModel):
    """Base of every document model: unknown fields are errors, values are immutable, and
    no string is longer than `MAX_STRING` (every plugin's model inherits the bound)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, str_max_length=MAX_STRING)


class PluginSpec(Strict):
    """The static type of a plugin's part of the document (a check, a channel, an action).

    At run time the document holds the plugin's own ``Config`` (the registries' unions in
    `watchkeeper.document.models`); type checkers see this common shape.
    """

    kind: str


class NamedPluginSpec(PluginSpec):
    """A plugin object that is itself a named object of the document (a channel)."""

    name: str


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
