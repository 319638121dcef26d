"""The ``ec2`` provider: Amazon EC2, or anything that speaks its API (moto_server), on boto3.

boto3 is synchronous, so every call runs on a small thread pool of the provider's own
(a hung endpoint then ties up these threads, not the event loop's default pool), after a
token from a client-side bucket of ``limits.calls_per_second``. botocore retries
throttling, 5xx and connection failures itself (``retry mode standard``,
``total_max_attempts`` = ``options.max_attempts`` counts calls, not retries); what still
fails becomes a `ProviderError` with the AWS error code, ``retryable`` for throttling,
5xx and timeouts.

Credentials: the platform's ``credentials`` reference resolves, on the worker, to JSON
``{"aws_access_key_id", "aws_secret_access_key", "aws_session_token"?}`` or to
``KEYID:SECRET``; without a reference boto3's default chain applies (environment,
profile, instance role). The values are kept out of every message.

What moto does differently (moto 5.2, measured): ``ClientToken`` is ignored (the caller
finds a create's result by its op tag instead), ``DisableApiTermination`` given to
``run_instances`` is ignored (so `create` sets it again with
``modify_instance_attribute``, harmless on AWS), and the type of a running instance can be
modified (AWS refuses; the caller stops it first).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, Field, ValidationError

from watchkeeper.document.fields import Strict
from watchkeeper.document.platforms import PlatformConfig
from watchkeeper.errors import SecretError
from watchkeeper.infra.providers.base import (
    CAPABILITIES,
    TAG_OP,
    TAG_OWNER,
    TAG_PROTECT,
    TAG_RESOURCE,
    TAG_SLOT,
    Machine,
    MachineSpec,
    ProviderError,
)
from watchkeeper.plugins import PROVIDERS
from watchkeeper.results import Metric
from watchkeeper.secrets import resolve_secret

logger = logging.getLogger(__name__)

#: EC2's instance states -> `watchkeeper.infra.providers.base.STATES`. ``shutting-down``
#: only ever ends in ``terminated``, so it is reported as that.
EC2_STATES = {
    "pending": "pending",
    "running": "running",
    "stopping": "stopping",
    "stopped": "stopped",
    "shutting-down": "terminated",
    "terminated": "terminated",
}
#: Error codes that mean "the same call may succeed later" (botocore's throttling and
#: transient lists, the EC2 ones first).
RETRYABLE_CODES = frozenset(
    {
        "RequestLimitExceeded",
        "EC2ThrottledException",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "SlowDown",
        "PriorRequestNotComplete",
        "RequestTimeout",
        "RequestTimeoutException",
        "InternalError",
        "InternalFailure",
        "ServiceUnavailable",
        "Unavailable",
    }
)
#: What describe_instances answers for an instance id that names nothing (any more).
GONE_CODES = frozenset({"InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"})
#: CloudWatch units -> perfdata units; the others are unitless here.
UNITS = {
    "Percent": "%",
    "Seconds": "s",
    "Milliseconds": "ms",
    "Microseconds": "us",
    "Bytes": "B",
    "Kilobytes": "KB",
    "Megabytes": "MB",
    "Gigabytes": "GB",
    "Terabytes": "TB",
}
#: How far back `Ec2Provider.metrics` looks, and the period it averages over.
METRICS_WINDOW = timedelta(minutes=10)
METRICS_PERIOD = 300
#: Threads per provider: calls beyond these wait their turn (the bucket paces them anyway).
POOL_SIZE = 4
#: AWS caps ``ClientToken`` at 64 ASCII characters.
MAX_CLIENT_TOKEN = 64


class Ec2Options(Strict):
    """Where the EC2 API is and how patiently to talk to it."""

    region: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")] = Field(
        description="The AWS region, e.g. eu-west-1."
    )
    endpoint: Annotated[str, Field(pattern=r"^https?://[^\s/@]+(/\S*)?$")] | None = Field(
        default=None,
        description="Another endpoint than AWS's (moto_server in tests); no credentials in it.",
    )
    connect_timeout: Annotated[float, Field(gt=0, le=300)] = Field(
        default=5.0, description="Seconds to connect, per attempt."
    )
    read_timeout: Annotated[float, Field(gt=0, le=300)] = Field(
        default=30.0, description="Seconds to wait for an answer, per attempt."
    )
    max_attempts: Annotated[int, Field(ge=1, le=20)] = Field(
        default=3,
        description="Calls per API request, the first included (botocore total_max_attempts).",
    )


class Ec2Platform(PlatformConfig):
    """A platform object served by the ``ec2`` provider."""

    provider: Literal["ec2"]
    options: Ec2Options


class Ec2MachineOptions(Strict):
    """A resource's ``options`` for EC2: the network and boot settings of its machines."""

    subnet: str | None = Field(default=None, description="SubnetId.")
    security_groups: list[str] = Field(default_factory=list, description="SecurityGroupIds.")
    key_name: str | None = Field(default=None, description="The key pair's name.")
    private_ips: list[str] = Field(
        default_factory=list,
        description="PrivateIpAddress per slot, indexed by the slot's ordinal (web-0 is [0]).",
    )
    user_data: str | None = Field(default=None, description="UserData (boto3 encodes it).")


class TokenBucket:
    """At most ``rate`` calls a second on average, in bursts of at most ``burst``."""

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.rate = rate
        self.capacity = max(1.0, burst if burst is not None else rate)
        self._tokens = self.capacity
        self._clock = clock
        self._sleep = sleep
        self._stamp = clock()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        """Take one token, waiting until there is one (callers queue in order)."""
        async with self._lock:
            while True:
                now = self._clock()
                elapsed, self._stamp = now - self._stamp, now
                self._tokens = min(self.capacity, self._tokens + elapsed * self.rate)
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                await self._sleep((1 - self._tokens) / self.rate)


@PROVIDERS.register
class Ec2Provider:
    """Machines on one EC2 region (or endpoint), found by their ``watchkeeper:*`` tags."""

    kind: ClassVar[str] = "ec2"
    Config: ClassVar[type[BaseModel]] = Ec2Platform
    capabilities: ClassVar[frozenset[str]] = CAPABILITIES
    #: The model of a resource's ``options`` (`create` validates with it).
    MachineOptions: ClassVar[type[BaseModel]] = Ec2MachineOptions

    def __init__(self, platform: Mapping[str, Any]) -> None:
        try:
            self.config = Ec2Platform.model_validate(dict(platform))
        except ValidationError as exc:
            raise ProviderError(
                f"platform {platform.get('name')!r} is not a valid ec2 platform: {_problems(exc)}",
                code="InvalidConfiguration",
            ) from None
        self.name = self.config.name
        #: MaxResults of each describe_instances page (AWS allows 5 to 1000).
        self.page_size = 1000
        self._bucket = TokenBucket(self.config.limits.calls_per_second)
        self._pool = ThreadPoolExecutor(POOL_SIZE, thread_name_prefix=f"ec2-{self.name}")
        self._lock = threading.Lock()
        self._clients: dict[str, Any] = {}
        self._secrets: tuple[str, ...] = ()

    # --- the lifecycle ------------------------------------------------------------------

    async def observe(self, owner: str) -> Sequence[Machine]:
        """Every instance with our resource tag, whoever owns it (``owner`` is not a
        filter: a lookalike without our owner tag is reported with owner "")."""
        machines: list[Machine] = []
        seen: set[str] = set()
        token: str | None = None
        while True:
            params: dict[str, Any] = {
                "Filters": [{"Name": "tag-key", "Values": [TAG_RESOURCE]}],
                "MaxResults": self.page_size,
            }
            if token:
                params["NextToken"] = token
            page = await self._call("ec2", "describe_instances", **params)
            for reservation in page.get("Reservations") or ():
                machines.extend(_machine(i) for i in reservation.get("Instances") or ())
            token = page.get("NextToken")
            if not token:
                return machines
            if token in seen:
                raise ProviderError(
                    "ec2 describe_instances repeated a page; the listing is incomplete",
                    code="IncompletePagination",
                    retryable=True,
                )
            seen.add(token)

    async def find(self, cloud_id: str) -> Machine | None:
        """One instance by id (a call that does not grow with the fleet)."""
        try:
            page = await self._call("ec2", "describe_instances", InstanceIds=[cloud_id])
        except ProviderError as exc:
            if exc.code == "InvalidInstanceID.NotFound":
                return None
            raise
        for reservation in page.get("Reservations") or ():
            for instance in reservation.get("Instances") or ():
                return _machine(instance)
        return None

    async def create(self, spec: MachineSpec) -> Machine:
        options = self._machine_options(spec)
        if not spec.image:
            raise ProviderError(
                f"{spec.slot}: an ec2 machine needs an image (an AMI id)",
                code="InvalidConfiguration",
            )
        tags = {**spec.tags(), "Name": spec.slot}
        params: dict[str, Any] = {
            "ImageId": spec.image,
            "MinCount": 1,
            "MaxCount": 1,
            "ClientToken": client_token(spec.op),
            "DisableApiTermination": spec.protect,
            "TagSpecifications": [
                {
                    "ResourceType": "instance",
                    "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
                }
            ],
        }
        if spec.size:
            params["InstanceType"] = spec.size
        if options.subnet:
            params["SubnetId"] = options.subnet
        if options.security_groups:
            params["SecurityGroupIds"] = list(options.security_groups)
        if options.key_name:
            params["KeyName"] = options.key_name
        if options.private_ips:
            params["PrivateIpAddress"] = options.private_ips[spec.index]
        if options.user_data is not None:
            params["UserData"] = options.user_data
        reply = await self._call("ec2", "run_instances", **params)
        instances = reply.get("Instances") or []
        if len(instances) != 1:
            raise ProviderError(
                f"{spec.slot}: run_instances returned {len(instances)} instances, not 1",
                code="UnexpectedResponse",
            )
        instance = instances[0]
        if spec.protect:  # moto ignores run_instances' DisableApiTermination
            # If this fails, the machine exists (tagged with the op) and the error says
            # so; the caller finds it by its op tag, as after any uncertain create.
            await self._guard(instance["InstanceId"], True)
        # AWS may answer without the tags; they are the ones we sent.
        return _machine(instance, tags)

    async def destroy(self, machine: Machine) -> None:
        """Terminate; a guarded instance is refused with code ``OperationNotPermitted``."""
        await self._call("ec2", "terminate_instances", InstanceIds=[machine.cloud_id])

    async def start(self, machine: Machine) -> None:
        await self._call("ec2", "start_instances", InstanceIds=[machine.cloud_id])

    async def stop(self, machine: Machine) -> None:
        await self._call("ec2", "stop_instances", InstanceIds=[machine.cloud_id])

    async def reboot(self, machine: Machine) -> None:
        await self._call("ec2", "reboot_instances", InstanceIds=[machine.cloud_id])

    async def resize(self, machine: Machine, size: str) -> None:
        """Change the type; AWS wants the instance stopped (the caller's plan does that)."""
        await self._call(
            "ec2",
            "modify_instance_attribute",
            InstanceId=machine.cloud_id,
            InstanceType={"Value": size},
        )

    async def protect(self, machine: Machine, on: bool) -> None:
        """Set or clear EC2's termination guard, then our tag. The guard goes first, so a
        failure half way leaves the machine guarded or tagged: protected either way."""
        await self._guard(machine.cloud_id, on)
        if on:
            tags = [{"Key": TAG_PROTECT, "Value": "true"}]
            await self._call("ec2", "create_tags", Resources=[machine.cloud_id], Tags=tags)
        else:
            tags = [{"Key": TAG_PROTECT}]
            await self._call("ec2", "delete_tags", Resources=[machine.cloud_id], Tags=tags)

    async def adopt(self, machine: Machine, tags: Mapping[str, str]) -> None:
        """Our tags on an instance that carries no owner tag (looked up afresh)."""
        found = await self._call("ec2", "describe_instances", InstanceIds=[machine.cloud_id])
        for reservation in found.get("Reservations", []):
            for instance in reservation.get("Instances", []):
                owner = next(
                    (t["Value"] for t in instance.get("Tags", []) if t["Key"] == TAG_OWNER), ""
                )
                if owner:
                    raise ProviderError(
                        f"{machine.cloud_id} already has an owner tag: not adopted",
                        code="OperationNotPermitted",
                    )
        pairs = [{"Key": k, "Value": v} for k, v in tags.items()]
        await self._call("ec2", "create_tags", Resources=[machine.cloud_id], Tags=pairs)

    async def metrics(self, machine: Machine, names: Sequence[str]) -> Sequence[Metric]:
        """``state`` (1 running, 0 otherwise, 0 for an instance that is gone) from
        describe_instances, then the latest CloudWatch average of each named metric
        (``CPUUtilization``...) that has data; a metric CloudWatch cannot give is left out."""
        try:
            reply = await self._call("ec2", "describe_instances", InstanceIds=[machine.cloud_id])
        except ProviderError as exc:
            if exc.code not in GONE_CODES:
                raise
            reply = {}
        states = [
            EC2_STATES.get(str((i.get("State") or {}).get("Name")), "unknown")
            for r in reply.get("Reservations") or ()
            for i in r.get("Instances") or ()
        ]
        running = 1.0 if states == ["running"] else 0.0
        found = [Metric(label="state", value=running, min=0.0, max=1.0)]
        for name in dict.fromkeys(names):
            if name != "state" and (metric := await self._statistic(machine, name)):
                found.append(metric)
        return found

    async def aclose(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()
        self._pool.shutdown(wait=False)

    # --- helpers ------------------------------------------------------------------------

    async def _guard(self, instance_id: str, on: bool) -> None:
        await self._call(
            "ec2",
            "modify_instance_attribute",
            InstanceId=instance_id,
            DisableApiTermination={"Value": on},
        )

    async def _statistic(self, machine: Machine, name: str) -> Metric | None:
        end = datetime.now(UTC)
        try:
            reply = await self._call(
                "cloudwatch",
                "get_metric_statistics",
                Namespace="AWS/EC2",
                MetricName=name,
                Dimensions=[{"Name": "InstanceId", "Value": machine.cloud_id}],
                StartTime=end - METRICS_WINDOW,
                EndTime=end,
                Period=METRICS_PERIOD,
                Statistics=["Average"],
            )
        except ProviderError as exc:
            logger.debug(
                "%s: no %s for %s: %s",
                self.name,
                name,
                machine.cloud_id,
                exc,
                extra={"action": "ec2_metric_failed", "code": exc.code},
            )
            return None
        points = [p for p in reply.get("Datapoints") or () if "Average" in p]
        if not points:
            return None
        latest = max(points, key=lambda p: p.get("Timestamp") or datetime.min.replace(tzinfo=UTC))
        unit = UNITS.get(str(latest.get("Unit", "")), "")
        return Metric(label=name, value=float(latest["Average"]), uom=unit)

    def _machine_options(self, spec: MachineSpec) -> Ec2MachineOptions:
        try:
            options = Ec2MachineOptions.model_validate(dict(spec.options))
        except ValidationError as exc:
            raise ProviderError(
                f"{spec.resource}: invalid ec2 options: {_problems(exc)}",
                code="InvalidConfiguration",
            ) from None
        if options.private_ips and not 0 <= spec.index < len(options.private_ips):
            raise ProviderError(
                f"{spec.slot}: private_ips has {len(options.private_ips)} addresses, none "
                f"for slot index {spec.index}",
                code="InvalidConfiguration",
            )
        return options

    async def _call(self, service: str, operation: str, **params: Any) -> dict[str, Any]:
        """One API request, paced by the bucket, on the pool; failures as `ProviderError`."""
        await self._bucket.acquire()
        loop = asyncio.get_running_loop()
        call = functools.partial(self._invoke, service, operation, params)
        return await loop.run_in_executor(self._pool, call)

    def _invoke(self, service: str, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        """Runs on the pool: the call itself, and the translation of what it raised."""
        try:
            reply: dict[str, Any] = getattr(self._client(service), operation)(**params)
        except Exception as exc:
            raise self._error(service, operation, exc) from exc
        return reply

    def _client(self, service: str) -> Any:
        """The boto3 client of ``service``, made on first use (on the pool: it reads files)."""
        with self._lock:
            client = self._clients.get(service)
            if client is None:
                client = self._clients[service] = self._make_client(service)
            return client

    def _make_client(self, service: str) -> Any:
        import boto3  # type: ignore[import-untyped]  # here: importing boto3 costs ~0.2 s
        from botocore.config import Config as BotoConfig  # type: ignore[import-untyped]

        options = self.config.options
        session = boto3.session.Session(region_name=options.region, **self._credentials())
        config = BotoConfig(
            connect_timeout=options.connect_timeout,
            read_timeout=options.read_timeout,
            retries={"mode": "standard", "total_max_attempts": options.max_attempts},
            user_agent_extra="watchkeeper",
        )
        return session.client(service, endpoint_url=options.endpoint, config=config)

    def _credentials(self) -> dict[str, str]:
        """boto3 session arguments from the credentials reference (none: default chain)."""
        ref = self.config.credentials
        if ref is None:
            return {}
        try:
            value = resolve_secret(ref).strip()
        except SecretError as exc:
            raise ProviderError(exc.message, code="SecretError") from None
        found = parse_credentials(value)
        if found is None:
            raise ProviderError(
                f"the credentials of {ref} are neither JSON with "
                "aws_access_key_id and aws_secret_access_key nor KEYID:SECRET",
                code="InvalidCredentials",
            )
        self._secrets = tuple(v for v in found.values() if v)
        return found

    def _error(self, service: str, operation: str, exc: Exception) -> ProviderError:
        """A botocore failure as a `ProviderError`, its message scrubbed of credentials."""
        from botocore import exceptions as boto  # type: ignore[import-untyped]

        if isinstance(exc, ProviderError):
            return exc
        where = f"{service} {operation}"
        if isinstance(exc, boto.ClientError):
            error = exc.response.get("Error") or {}
            code = str(error.get("Code") or "Unknown")
            status = int((exc.response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0)
            retryable = code in RETRYABLE_CODES or status >= 500
            message = f"{where} failed: {code}: {error.get('Message') or exc}"
        elif isinstance(exc, boto.ConnectTimeoutError | boto.ReadTimeoutError):
            code, retryable = type(exc).__name__, True
            message = f"{where} timed out: {exc}"
        elif isinstance(exc, boto.EndpointConnectionError | boto.ConnectionClosedError):
            code, retryable = type(exc).__name__, True
            message = f"{where}: cannot reach the endpoint: {exc}"
        elif isinstance(exc, boto.NoCredentialsError | boto.PartialCredentialsError):
            code, retryable = "NoCredentials", False
            message = f"{where}: no usable AWS credentials on this worker ({exc})"
        else:
            code, retryable = type(exc).__name__, False
            message = f"{where} failed: {exc}"
        return ProviderError(self._scrub(message), code=code, retryable=retryable)

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


def parse_credentials(value: str) -> dict[str, str] | None:
    """boto3 session arguments from JSON or ``KEYID:SECRET``; None when it is neither."""
    if value.startswith("{"):
        try:
            data = json.loads(value)
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        key, secret = data.get("aws_access_key_id"), data.get("aws_secret_access_key")
        token = data.get("aws_session_token")
        if not (isinstance(key, str) and key and isinstance(secret, str) and secret):
            return None
        found = {"aws_access_key_id": key, "aws_secret_access_key": secret}
        if isinstance(token, str) and token:
            found["aws_session_token"] = token
        return found
    key, colon, secret = value.partition(":")
    if not (key and colon and secret):
        return None
    return {"aws_access_key_id": key, "aws_secret_access_key": secret}


def client_token(op: str) -> str:
    """``op`` as an EC2 ``ClientToken``: itself when it fits, else a digest of it."""
    if len(op) <= MAX_CLIENT_TOKEN and op.isascii():
        return op
    return hashlib.sha256(op.encode()).hexdigest()


def _machine(instance: Mapping[str, Any], sent: Mapping[str, str] | None = None) -> Machine:
    tags = dict(sent or {})
    tags.update({str(t["Key"]): str(t.get("Value", "")) for t in instance.get("Tags") or ()})
    launched = instance.get("LaunchTime")
    return Machine(
        cloud_id=str(instance["InstanceId"]),
        resource=tags.get(TAG_RESOURCE, ""),
        slot=tags.get(TAG_SLOT, ""),
        owner=tags.get(TAG_OWNER, ""),
        op=tags.get(TAG_OP, ""),
        state=EC2_STATES.get(str((instance.get("State") or {}).get("Name")), "unknown"),
        size=instance.get("InstanceType"),
        image=instance.get("ImageId"),
        address=instance.get("PrivateIpAddress"),
        public_address=instance.get("PublicIpAddress"),
        protected=tags.get(TAG_PROTECT) == "true",
        tags=tags,
        created_at=launched.timestamp() if isinstance(launched, datetime) else None,
    )


def _problems(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or 'platform'}: {error['msg']}"
        for error in exc.errors()
    )


__all__ = [
    "Ec2MachineOptions",
    "Ec2Options",
    "Ec2Platform",
    "Ec2Provider",
    "TokenBucket",
    "client_token",
    "parse_credentials",
]
