"""The common shape of a platform object; each provider's ``Config`` extends it.

A platform names a cloud or on-prem management API, the zone whose workers talk to it
(where its credentials are), how often they observe it, and the limits every apply
against it keeps. What is specific to one provider (a region, an endpoint, a driver) is
its ``options``, typed by the provider's own model (`watchkeeper.infra.providers`).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from watchkeeper.document.fields import Name, PositiveDuration, SecretRef, Strict, Text


class Limits(Strict):
    """What one apply may do on a platform, and how hard its API may be driven."""

    max_create: Annotated[int, Field(ge=0, le=10000)] = Field(
        default=20, description="Machines created per apply; the rest wait for the next one."
    )
    max_destroy: Annotated[int, Field(ge=0, le=10000)] = Field(
        default=2,
        description=(
            "Machines destroyed per apply. A candidate document that would remove more "
            "than this from the platform holds its infrastructure part until an operator "
            "confirms it."
        ),
    )
    calls_per_second: Annotated[float, Field(gt=0, le=1000)] = Field(
        default=5.0, description="API calls per second from one worker (a token bucket)."
    )
    failures: Annotated[int, Field(ge=1, le=1000)] = Field(
        default=3,
        description=(
            "Failed applies in a row that open the platform's circuit breaker: no more "
            "applies until a backoff passes or an operator applies by hand."
        ),
    )


class PlatformConfig(Strict):
    """A cloud or on-prem management API, used by the workers of its zone."""

    name: Name = Field(description="Unique among objects of this kind.")
    provider: str = Field(description="The provider plugin: ec2, libcloud, lxc, ...")
    zone: Name = Field(description="The zone whose workers make this platform's API calls.")
    description: Text | None = None
    credentials: SecretRef | None = Field(
        default=None,
        description="Where the zone's workers find the credentials: env:NAME or file:/path.",
    )
    poll: PositiveDuration = Field(
        default="60s",
        validate_default=True,
        description="How often the zone's workers observe what the platform holds.",
    )
    limits: Limits = Field(default_factory=Limits)
