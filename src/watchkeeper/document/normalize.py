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


def snapshot(document: models.Document) -> Snapshot:
    """Flatten a validated document into records (it must have passed validation)."""
    objects: dict[str, dict[str, ObjectRecord]] = {}
    for section in models.SECTIONS:
        records: dict[str, ObjectRecord] = {}
        for obj in getattr(document, section):
            spec = obj.model_dump(mode="json", by_alias=True, exclude_none=True)
            records[obj.name] = ObjectRecord(
                kind=section, name=obj.name, hash=spec_hash(spec), spec=spec
            )
        objects[section] = records
    return Snapshot(objects=objects, checks=_checks(document))


def _checks(document: models.Document) -> dict[str, CheckRecord]:
    templates = {t.name: t for t in document.templates}
    index = HostIndex(document.hosts)
    checks: dict[str, CheckRecord] = {}
    for host in document.hosts:
        if host.check is not None:
            settings = _resolve(host.check, templates)
            _add(checks, host, None, settings, {})
    for service in document.services:
        settings = _resolve(service, templates)
        for host_name in index.bind(service.hosts):
            _add(checks, index.hosts[host_name], service.name, settings, service.labels)
    return checks


def _add(
    checks: dict[str, CheckRecord],
    host: models.Host,
    service: str | None,
    settings: dict[str, Any],
    service_labels: Mapping[str, str],
) -> None:
    spec = {
        **settings,
        "host": host.name,
        "service": service,
        "zone": host.zone,
        "address": host.address,
        "labels": {**host.labels, **service_labels},
        "parents": host.parents,
    }
    key = check_key(host.name, service)
    checks[key] = CheckRecord(
        key=key, host=host.name, service=service, zone=host.zone, hash=spec_hash(spec), spec=spec
    )


def _resolve(
    obj: models.Service | models.HostCheck, templates: Mapping[str, models.Template]
) -> dict[str, Any]:
    """Merge a service (or host check) over its template and the defaults."""
    template = templates.get(obj.template) if obj.template else None

    def pick(name: str, default: Any) -> Any:
        value = getattr(obj, name)
        if value is None and template is not None:
            value = getattr(template, name)
        return default if value is None else value

    check = obj.check or (template.check if template else None)
    assert check is not None, "validated documents always resolve a check"
    thresholds = {**(template.thresholds or {} if template else {}), **(obj.thresholds or {})}
    return {
        "check": check.model_dump(mode="json", by_alias=True, exclude_none=True),
        "interval": pick("interval", DEFAULT_INTERVAL).total_seconds(),
        "retry_interval": pick("retry_interval", DEFAULT_RETRY_INTERVAL).total_seconds(),
        "max_attempts": pick("max_attempts", DEFAULT_MAX_ATTEMPTS),
        "timeout": pick("timeout", DEFAULT_TIMEOUT).total_seconds(),
        "thresholds": {
            m: t.model_dump(mode="json", exclude_none=True) for m, t in thresholds.items()
        },
        "notifications": list(pick("notifications", [])),
    }
