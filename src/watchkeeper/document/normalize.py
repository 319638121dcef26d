"""Turn a validated document into the flat records the store keeps and the engine schedules.

Two kinds of record:

* an *object* per named thing of each section (``kind``, ``name``, ``spec``), and
* a *check* per (host, service) pair and per host with a host check, with every setting
  resolved (template, defaults, host address and zone), so the scheduler needs nothing else.

Each record carries a hash of its spec; the diff compares hashes only, so an import knows what
changed without loading the running configuration's specs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import orjson

from watchkeeper.document import models
from watchkeeper.document.selectors import HostIndex
from watchkeeper.document.slots import RESOURCE_LABEL
from watchkeeper.jobs.pools import pool_of

DEFAULT_INTERVAL = timedelta(seconds=60)
DEFAULT_RETRY_INTERVAL = timedelta(seconds=15)
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_TIMEOUT = timedelta(seconds=10)


@dataclass(frozen=True, slots=True, kw_only=True)
class ObjectRecord:
    """One named object of one section, as imported."""

    kind: str
    name: str
    hash: str
    spec: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckRecord:
    """One schedulable check: a service on a host, or a host's own check (``service`` None)."""

    key: str
    host: str
    service: str | None
    zone: str
    hash: str
    spec: dict[str, Any]

    @property
    def agent(self) -> str | None:
        """The host whose own agent must run this check (``agent`` checks), else None."""
        check = self.spec.get("check")
        if isinstance(check, dict) and check.get("kind") == "agent":
            return self.host
        return None

    @property
    def pool(self) -> str:
        """Which workers can run it: its zone's, or for an agent check the host's agent.

        The engine holds back and fails checks per pool, so a missing agent on one host
        says so on that host's agent checks instead of on its whole zone.
        """
        return pool_of(self.zone, self.agent)


@dataclass(frozen=True, slots=True, kw_only=True)
class Hashes:
    """What a diff needs of a configuration: the hash of every object and check."""

    objects: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    checks: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    """A whole configuration as records, ready to diff and import."""

    objects: dict[str, dict[str, ObjectRecord]]
    checks: dict[str, CheckRecord]

    def hashes(self) -> Hashes:
        return Hashes(
            objects={k: {n: r.hash for n, r in objs.items()} for k, objs in self.objects.items()},
            checks={k: r.hash for k, r in self.checks.items()},
        )


def check_key(host: str, service: str | None) -> str:
    """``host!service`` for a service check, ``host`` for a host check (names hold no ``!``)."""
    return host if service is None else f"{host}!{service}"


def spec_hash(spec: Any) -> str:
    return hashlib.blake2b(
        orjson.dumps(spec, option=orjson.OPT_SORT_KEYS), digest_size=16
    ).hexdigest()


@dataclass(slots=True)
class SnapshotCache:
    """Records of the last snapshot, keyed by the identity of the models they came from.

    Validated models are immutable and `ValidationCache` hands back the same instances for
    unchanged objects, so identity is a sound key: a one-service change rebuilds only that
    service's records. Each entry keeps its models alive, so an id is never reused.
    """

    objects: dict[int, tuple[Any, ObjectRecord]] = field(default_factory=dict)
    settings: dict[tuple[int, int], tuple[Any, Any, dict[str, Any]]] = field(default_factory=dict)
    checks: dict[tuple[int, int, int], tuple[Any, Any, Any, CheckRecord]] = field(
        default_factory=dict
    )
    #: The hosts and templates of the last snapshot, and per service the check entries it
    #: expanded to: while hosts and templates are the same objects, an unchanged service
    #: expands to the same checks without binding it again.
    hosts: list[Any] | None = None
    templates: list[Any] | None = None
    services: dict[int, tuple[Any, list[tuple[tuple[int, int, int], Any]]]] = field(
        default_factory=dict
    )
    #: The document-wide defaults the check records were resolved with.
    defaults: Any = None


def snapshot(
    document: models.Document,
    cache: SnapshotCache | None = None,
    origins: Mapping[int, tuple[Any, bytes]] | None = None,
) -> Snapshot:
    """Flatten a validated document into records (it must have passed validation).

    With ``origins`` (from `Validated.origins`) an object's record is its raw JSON as the
    operator wrote it, hashed with the digest validation already made; without,
    the record is the model's dump. Pass the same kind on both sides of a comparison.
    """
    origins = origins or {}
    old = cache or SnapshotCache()
    if cache is not None and cache.defaults != document.defaults:
        old = SnapshotCache(objects=cache.objects)  # every check resolves anew
    new = SnapshotCache(defaults=document.defaults)
    objects: dict[str, dict[str, ObjectRecord]] = {}
    for section in models.SECTIONS:
        records: dict[str, ObjectRecord] = {}
        for obj in getattr(document, section):
            hit = old.objects.get(id(obj))
            if hit is None or hit[0] is not obj:
                hit = (obj, _object_record(section, obj, origins.get(id(obj))))
            new.objects[id(obj)] = hit
            records[obj.name] = hit[1]
        objects[section] = records
    checks = _Checks(document, old, new).build()
    if cache is not None:
        cache.objects, cache.settings, cache.checks = new.objects, new.settings, new.checks
        cache.hosts, cache.templates, cache.services = new.hosts, new.templates, new.services
        cache.defaults = new.defaults
    return Snapshot(objects=objects, checks=checks)


def _object_record(section: str, obj: Any, origin: tuple[Any, bytes] | None) -> ObjectRecord:
    if origin is not None:
        raw, digest = origin
        return ObjectRecord(kind=section, name=obj.name, hash=digest.hex(), spec=raw)
    spec = obj.model_dump(mode="json", by_alias=True, exclude_none=True)
    return ObjectRecord(kind=section, name=obj.name, hash=spec_hash(spec), spec=spec)


class _Checks:
    """Expands services over hosts, reusing the records of unchanged (service, host) pairs."""

    def __init__(self, document: models.Document, old: SnapshotCache, new: SnapshotCache):
        self.document, self.old, self.new = document, old, new
        self.templates = {t.name: t for t in document.templates}
        self.checks: dict[str, CheckRecord] = {}

    def build(self) -> dict[str, CheckRecord]:
        doc, old, new = self.document, self.old, self.new
        new.hosts, new.templates = list(doc.hosts), list(doc.templates)
        same_hosts = _same(old.hosts, new.hosts) and _same(old.templates, new.templates)
        for host in doc.hosts:
            if host.check is not None:
                self._add(host.check, host, None, host)
        index: HostIndex | None = None
        for service in doc.services:
            previous = old.services.get(id(service)) if same_hosts else None
            if previous is not None and previous[0] is service:
                for key, hit in previous[1]:
                    new.checks[key] = hit
                    self.checks[hit[3].key] = hit[3]
                new.services[id(service)] = previous
                continue
            index = index or HostIndex(doc.hosts)
            entries = [
                self._add(service, index.hosts[name], service.name, service)
                for name in index.bind(service.hosts)
            ]
            new.services[id(service)] = (service, entries)
        platforms = {p.name: p for p in doc.platforms}
        for resource in doc.infrastructure:
            record = infra_check(resource, platforms.get(resource.platform))
            self.checks[record.key] = record
        if doc.deployments:
            index = index or HostIndex(doc.hosts)
            for deployment in doc.deployments:
                for name in index.bind(deployment.hosts):
                    record = deploy_check(deployment, index.hosts[name])
                    self.checks[record.key] = record
        return self.checks

    def _add(
        self,
        obj: models.Service | models.HostCheck,
        host: models.Host,
        service: str | None,
        owner: Any,
    ) -> tuple[tuple[int, int, int], Any]:
        template = self.templates.get(obj.template) if obj.template else None
        key = (id(owner), id(template), id(host))
        hit = self.old.checks.get(key)
        if hit is None or hit[0] is not owner or hit[1] is not template or hit[2] is not host:
            record = _record(host, service, self._settings(obj, template))
            hit = (owner, template, host, record)
        self.new.checks[key] = hit
        self.checks[hit[3].key] = hit[3]
        return key, hit

    def _settings(
        self, obj: models.Service | models.HostCheck, template: models.Template | None
    ) -> dict[str, Any]:
        key = (id(obj), id(template))
        hit = self.old.settings.get(key) or self.new.settings.get(key)
        if hit is None or hit[0] is not obj or hit[1] is not template:
            hit = (obj, template, _resolve(obj, template, self.document.defaults))
        self.new.settings[key] = hit
        return hit[2]


#: The service name of a resource's own check, ``infra:NAME`` on host ``infra:NAME``.
INFRA_SERVICE = "converged"


def infra_key(resource: str) -> str:
    """The key of a resource's check: ``infra:web`` (a colon: no host can be named so)."""
    return f"infra:{resource}"


def infra_check(resource: models.Resource, platform: Any) -> CheckRecord:
    """The check of one resource: OK converged, WARNING drift, CRITICAL failed applies.

    The manager evaluates it itself (check kind ``infra``) from the reconciler's last
    report, every ``poll`` of the platform and at once when the report changes, so
    alarms, notifications and remediation rules work on it like on any check.
    """
    poll = platform.poll.total_seconds() if platform is not None else 60.0
    zone = platform.zone if platform is not None else ""
    key = infra_key(resource.name)
    spec = {
        "check": {"kind": "infra", "resource": resource.name, "platform": resource.platform},
        "interval": poll,
        "retry_interval": poll,
        "max_attempts": 1,
        "timeout": DEFAULT_TIMEOUT.total_seconds(),
        "thresholds": {},
        "threshold_mode": "complement",
        "notifications": list(resource.notifications),
        "renotify": None,
        "flapping": models.Flapping(enabled=False).model_dump(mode="json"),
        "host": key,
        "service": INFRA_SERVICE,
        "zone": zone,
        "address": "",
        "labels": {**resource.labels, RESOURCE_LABEL: resource.name},
        "parents": [],
    }
    return CheckRecord(
        key=key, host=key, service=INFRA_SERVICE, zone=zone, hash=spec_hash(spec), spec=spec
    )


#: The label naming the deployment a ``deploy:HOST`` check belongs to.
DEPLOYMENT_LABEL = "watchkeeper.deployment"


def deploy_key(host: str) -> str:
    """The key of a deployed host's check: ``deploy:legacy1``."""
    return f"deploy:{host}"


def deploy_check(deployment: models.Deployment, host: models.Host) -> CheckRecord:
    """The check of one deployed host: OK converged, WARNING drift, CRITICAL failed.

    The manager evaluates it itself (check kind ``deploy``) from the deployment stage's
    last run on the host, every ``every`` and at once when a run ends, so alarms,
    notifications and remediation rules work on it like on any check.
    """
    every = deployment.every.total_seconds()
    key = deploy_key(host.name)
    spec = {
        "check": {"kind": "deploy", "deployment": deployment.name, "host": host.name},
        "interval": every,
        "retry_interval": every,
        "max_attempts": 1,
        "timeout": DEFAULT_TIMEOUT.total_seconds(),
        "thresholds": {},
        "threshold_mode": "complement",
        "notifications": list(deployment.notifications),
        "renotify": None,
        "flapping": models.Flapping(enabled=False).model_dump(mode="json"),
        "host": key,
        "service": INFRA_SERVICE,
        "zone": host.zone,
        "address": "",
        "labels": {**host.labels, **deployment.labels, DEPLOYMENT_LABEL: deployment.name},
        "parents": [],
    }
    return CheckRecord(
        key=key, host=key, service=INFRA_SERVICE, zone=host.zone, hash=spec_hash(spec), spec=spec
    )


def _same(old: list[Any] | None, new: list[Any]) -> bool:
    """The same objects (by identity) in the same order."""
    if old is None or len(old) != len(new):
        return False
    return all(a is b for a, b in zip(old, new, strict=True))


def _record(host: models.Host, service: str | None, settings: dict[str, Any]) -> CheckRecord:
    spec = {k: v for k, v in settings.items() if k != "service_labels"}
    spec.update(
        host=host.name,
        service=service,
        zone=host.zone,
        address=host.address,
        labels={**host.labels, **settings["service_labels"]},
        parents=host.parents,
    )
    key = check_key(host.name, service)
    return CheckRecord(
        key=key, host=host.name, service=service, zone=host.zone, hash=spec_hash(spec), spec=spec
    )


def _resolve(
    obj: models.Service | models.HostCheck,
    template: models.Template | None,
    defaults: models.Defaults | None = None,
) -> dict[str, Any]:
    """Merge a service (or host check) over its template, the document's defaults and ours."""

    def pick(name: str, default: Any) -> Any:
        value = getattr(obj, name)
        if value is None and template is not None:
            value = getattr(template, name)
        return default if value is None else value

    check = obj.check or (template.check if template else None)
    assert check is not None, "validated documents always resolve a check"
    thresholds = {**(template.thresholds or {} if template else {}), **(obj.thresholds or {})}
    return {
        "check": _check_spec(check, defaults),
        "interval": pick("interval", DEFAULT_INTERVAL).total_seconds(),
        "retry_interval": pick("retry_interval", DEFAULT_RETRY_INTERVAL).total_seconds(),
        "max_attempts": pick("max_attempts", DEFAULT_MAX_ATTEMPTS),
        "timeout": pick("timeout", DEFAULT_TIMEOUT).total_seconds(),
        "thresholds": {metric: _threshold(t) for metric, t in thresholds.items()},
        "threshold_mode": pick("threshold_mode", "complement"),
        "notifications": list(pick("notifications", [])),
        "renotify": None
        if (renotify := pick("renotify", None)) is None
        else renotify.total_seconds(),
        "flapping": pick("flapping", models.Flapping()).model_dump(mode="json"),
        "service_labels": dict(getattr(obj, "labels", {})),
    }


def _check_spec(check: Any, defaults: models.Defaults | None) -> dict[str, Any]:
    """A check as JSON, with the document's defaults for the fields its kind has and left unset."""
    spec: dict[str, Any] = check.model_dump(mode="json", by_alias=True, exclude_none=True)
    if defaults is not None:
        fields = type(check).model_fields
        for name in type(defaults).model_fields:
            if name in fields and spec.get(name) is None:
                spec[name] = getattr(defaults, name)
    return spec


def _threshold(threshold: models.Threshold) -> dict[str, Any]:
    """A threshold with only what is set, durations in seconds."""
    out: dict[str, Any] = {
        level: value
        for level, value in (("warning", threshold.warning), ("critical", threshold.critical))
        if value is not None
    }
    if threshold.consecutive != 1:
        out["consecutive"] = threshold.consecutive
    if threshold.no_data is not None:
        out["no_data"] = threshold.no_data.total_seconds()
    return out
