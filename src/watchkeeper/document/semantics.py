"""Rules across objects: unique names, references that resolve, no parent cycles.

Works on the objects that passed shape validation, keyed by their index in the document so
each problem points at the field that causes it. A reference to an object that exists but
failed shape validation is not reported again: that object already has its own problem.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

from watchkeeper.document import models, normalize
from watchkeeper.document.fields import NAME_PATTERN
from watchkeeper.document.problems import Problem, Severity, did_you_mean, pointer
from watchkeeper.document.selectors import HostIndex
from watchkeeper.document.slots import RESOURCE_LABEL

Sections = dict[str, list[tuple[int, Any]]]


def check(
    sections: Sections,
    broken: dict[str, set[str]],
    slot_hosts: Sequence[tuple[int, models.Host]] = (),
) -> list[Problem]:
    """Every problem across objects; ``slot_hosts`` are the hosts the resources' slots
    become (`watchkeeper.document.slots`), each with its resource's index."""
    names = {s: {obj.name for _, obj in objs} for s, objs in sections.items()}
    problems = list(_unique_names(sections))
    problems.extend(_slot_names(sections, slot_hosts, names["hosts"]))
    names["hosts"] |= {host.name for _, host in slot_hosts}
    known = {s: names[s] | broken.get(s, set()) for s in sections}
    problems.extend(_references(sections, names, known))
    problems.extend(_parent_cycles(sections["hosts"]))
    problems.extend(_schedules(sections))
    problems.extend(_empty_selectors(sections, slot_hosts))
    problems.extend(_flapping(sections))
    problems.extend(_deployment_hosts(sections, slot_hosts))
    return problems


def _unique_names(sections: Sections) -> Iterator[Problem]:
    for section, objs in sections.items():
        first: dict[str, int] = {}
        for index, obj in objs:
            if obj.name in first:
                yield Problem(
                    pointer=pointer(section, index, "name"),
                    message=f"duplicate name {obj.name!r}, first used at "
                    f"{pointer(section, first[obj.name])}",
                )
            else:
                first[obj.name] = index


def _references(
    sections: Sections, names: dict[str, set[str]], known: dict[str, set[str]]
) -> Iterator[Problem]:
    def ref(section: str, value: str | None, *where: str | int, what: str) -> Iterator[Problem]:
        if value is not None and value not in known[section]:
            hint = did_you_mean(value, sorted(names[section]))
            yield Problem(pointer=pointer(*where), message=f"unknown {what} {value!r}{hint}")

    templates = {obj.name: obj for _, obj in sections["templates"]}

    zones, hosts, channels = known["zones"], known["hosts"], known["notifications"]
    for i, host in sections["hosts"]:
        if (  # fast path: a large document is mostly fine; skip the generators below
            host.zone in zones
            and host.check is None
            and all(p in hosts and p != host.name for p in host.parents)
        ):
            continue
        yield from ref("zones", host.zone, "hosts", i, "zone", what="zone")
        for j, parent in enumerate(host.parents):
            if parent == host.name:
                yield Problem(
                    pointer=pointer("hosts", i, "parents", j),
                    message="a host cannot be its own parent",
                )
            else:
                yield from ref("hosts", parent, "hosts", i, "parents", j, what="host")
        if host.check is not None:
            base: tuple[str | int, ...] = ("hosts", i, "check")
            yield from ref("templates", host.check.template, *base, "template", what="template")
            yield from _channel_refs(ref, host.check.notifications, *base)
            yield from _needs_check(host.check, templates, *base)
            yield from _plugin_refs(ref, host.check.check, *base, "check")
    for i, template in sections["templates"]:
        yield from _channel_refs(ref, template.notifications, "templates", i)
        yield from _plugin_refs(ref, template.check, "templates", i, "check")
    for i, service in sections["services"]:
        bound = service.hosts
        if (  # fast path, as for hosts
            service.check is not None
            and not _references_of(service.check)
            and (service.template is None or service.template in known["templates"])
            and all(c in channels for c in service.notifications or ())
            and (
                all(h in hosts for h in bound)
                if isinstance(bound, list)
                else bound.zone is None or bound.zone in zones
            )
        ):
            continue
        base = ("services", i)
        if isinstance(service.hosts, list):
            for j, host_name in enumerate(service.hosts):
                yield from ref("hosts", host_name, *base, "hosts", j, what="host")
        else:
            yield from ref("zones", service.hosts.zone, *base, "hosts", "zone", what="zone")
        yield from ref("templates", service.template, *base, "template", what="template")
        yield from _channel_refs(ref, service.notifications, *base)
        yield from _needs_check(service, templates, *base)
        yield from _plugin_refs(ref, service.check, *base, "check")
    for i, action in sections["actions"]:
        yield from _plugin_refs(ref, action.action, "actions", i, "action")
    for i, rule in sections["remediations"]:
        base = ("remediations", i)
        yield from ref("hosts", rule.when.host, *base, "when", "host", what="host")
        yield from ref("services", rule.when.service, *base, "when", "service", what="service")
        states = [rule.when.state] if isinstance(rule.when.state, str) else rule.when.state
        if rule.when.service is not None and "DOWN" in states:
            yield Problem(
                pointer=pointer(*base, "when", "state"),
                message="DOWN is a host state; a rule on a service matches WARNING, "
                "CRITICAL or UNKNOWN",
            )
        if isinstance(rule.action, str):
            yield from ref("actions", rule.action, *base, "action", what="action")
        else:
            yield from _plugin_refs(ref, rule.action, *base, "action")
        yield from _channel_refs(ref, rule.notifications, *base)
    for i, platform in sections["platforms"]:
        yield from ref("zones", platform.zone, "platforms", i, "zone", what="zone")
    for i, resource in sections["infrastructure"]:
        base = ("infrastructure", i)
        yield from ref("platforms", resource.platform, *base, "platform", what="platform")
        yield from _channel_refs(ref, resource.notifications, *base)
        host = resource.host
        yield from ref("zones", host.zone, *base, "host", "zone", what="zone")
        for j, parent in enumerate(host.parents):
            yield from ref("hosts", parent, *base, "host", "parents", j, what="host")
        if host.check is not None:
            where = (*base, "host", "check")
            yield from ref("templates", host.check.template, *where, "template", what="template")
            yield from _channel_refs(ref, host.check.notifications, *where)
            yield from _needs_check(host.check, templates, *where)
            yield from _plugin_refs(ref, host.check.check, *where, "check")
    for i, deployment in sections["deployments"]:
        base = ("deployments", i)
        if isinstance(deployment.hosts, list):
            for j, host_name in enumerate(deployment.hosts):
                yield from ref("hosts", host_name, *base, "hosts", j, what="host")
        else:
            yield from ref("zones", deployment.hosts.zone, *base, "hosts", "zone", what="zone")
        yield from _channel_refs(ref, deployment.notifications, *base)


#: How a problem names an object of each section.
_WHAT = {
    "notifications": "notification channel",
    "infrastructure": "resource",
    "remediations": "remediation",
    "deployments": "deployment",
}


def _references_of(spec: Any) -> dict[str, str]:
    """A plugin config's ``references``: its fields that name another object, by section."""
    found = getattr(type(spec), "references", None)
    return found if isinstance(found, dict) else {}


def _plugin_refs(ref: Any, spec: Any, *base: str | int) -> Iterator[Problem]:
    """References a check, action or channel declares (``references`` on its Config)."""
    for field, section in _references_of(spec).items():
        what = _WHAT.get(section, section.removesuffix("s"))
        yield from ref(section, getattr(spec, field, None), *base, field, what=what)


def _channel_refs(ref: Any, channels: Sequence[str] | None, *base: str | int) -> Iterator[Problem]:
    for j, channel in enumerate(channels or ()):
        yield from ref(
            "notifications", channel, *base, "notifications", j, what="notification channel"
        )


def _needs_check(
    obj: models.Service | models.HostCheck,
    templates: dict[str, models.Template],
    *base: str | int,
) -> Iterator[Problem]:
    if obj.check is not None:
        return
    if obj.template is None:
        yield Problem(
            pointer=pointer(*base), message="needs a check, directly or through a template"
        )
    elif obj.template in templates and templates[obj.template].check is None:
        yield Problem(
            pointer=pointer(*base),
            message=f"needs a check: neither it nor template {obj.template!r} has one",
        )


def _slot_names(
    sections: Sections, slot_hosts: Sequence[tuple[int, models.Host]], hosts: set[str]
) -> Iterator[Problem]:
    """A slot may not take a declared host's name, nor be longer than a name may be."""
    reported: set[int] = set()
    for index, host in slot_hosts:
        if index in reported:
            continue
        if host.name in hosts:
            reported.add(index)
            yield Problem(
                pointer=pointer("infrastructure", index, "name"),
                message=f"slot {host.name!r} of this resource is also the name of a host; "
                "slots become hosts named NAME-0, NAME-1, ...: rename one of them",
            )
        elif not re.fullmatch(NAME_PATTERN, host.name):
            reported.add(index)
            yield Problem(
                pointer=pointer("infrastructure", index, "count"),
                message=f"slot {host.name!r} is longer than a host name may be (128)",
            )


def _parent_cycles(hosts: list[tuple[int, Any]]) -> Iterator[Problem]:
    parents = {h.name: [p for p in h.parents if p != h.name] for _, h in hosts}
    index = {h.name: i for i, h in hosts}
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    reported: set[frozenset[str]] = set()
    for start in parents:
        if state.get(start):
            continue
        stack: list[tuple[str, Iterator[str]]] = [(start, iter(parents[start]))]
        path = [start]
        state[start] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                path.pop()
                state[node] = 2
            elif child not in parents:
                continue  # unknown parent: reported by the reference rule
            elif state.get(child) == 1:
                cycle = path[path.index(child) :]
                if frozenset(cycle) not in reported:
                    reported.add(frozenset(cycle))
                    yield Problem(
                        pointer=pointer("hosts", index[cycle[0]], "parents"),
                        message="parent cycle: " + " -> ".join([*cycle, child]),
                    )
            elif not state.get(child):
                state[child] = 1
                path.append(child)
                stack.append((child, iter(parents[child])))


def _schedules(sections: Sections) -> Iterator[Problem]:
    templates = {t.name: t for _, t in sections["templates"]}
    for i, service in sections["services"]:
        template = templates.get(service.template) if service.template else None
        # Effective values, as normalize resolves them: the service, its template, the default.
        interval = _effective(service, template, "interval", normalize.DEFAULT_INTERVAL)
        timeout = _effective(service, template, "timeout", normalize.DEFAULT_TIMEOUT)
        if timeout > interval:
            yield Problem(
                pointer=pointer("services", i, "timeout"),
                message="timeout is longer than the interval: checks may overlap",
                severity=Severity.WARNING,
            )


def _flapping(sections: Sections) -> Iterator[Problem]:
    for section in ("templates", "services"):
        for i, obj in sections[section]:
            flapping = obj.flapping
            if flapping is not None and flapping.low > flapping.high:
                yield Problem(
                    pointer=pointer(section, i, "flapping", "low"),
                    message=f"low ({flapping.low:g}) is above high ({flapping.high:g})",
                )
    for i, host in sections["hosts"]:
        flapping = host.check.flapping if host.check is not None else None
        if flapping is not None and flapping.low > flapping.high:
            yield Problem(
                pointer=pointer("hosts", i, "check", "flapping", "low"),
                message=f"low ({flapping.low:g}) is above high ({flapping.high:g})",
            )


def _effective(obj: Any, template: Any, name: str, default: Any) -> Any:
    value = getattr(obj, name)
    if value is None and template is not None:
        value = getattr(template, name)
    return default if value is None else value


def _empty_selectors(
    sections: Sections, slot_hosts: Sequence[tuple[int, models.Host]]
) -> Iterator[Problem]:
    index = HostIndex([*(h for _, h in sections["hosts"]), *(h for _, h in slot_hosts)])
    for i, service in sections["services"]:
        if isinstance(service.hosts, models.LabelSelector) and not index.select(service.hosts):
            yield Problem(
                pointer=pointer("services", i, "hosts"),
                message="the label selector matches no host; the service runs nowhere",
                severity=Severity.WARNING,
            )


def _deployment_hosts(
    sections: Sections, slot_hosts: Sequence[tuple[int, models.Host]]
) -> Iterator[Problem]:
    """A deployment's hosts: none a platform manages, none in two deployments, at least one.

    A slot's machine is the platform's to shape (its image); and ``deploy:HOST`` is one
    check per host, so two deployments of one host would fight over it.
    """
    slots = {host.name: host.labels.get(RESOURCE_LABEL, "") for _, host in slot_hosts}
    index = HostIndex([*(h for _, h in sections["hosts"]), *(h for _, h in slot_hosts)])
    claimed: dict[str, str] = {}  # host -> the deployment that has it
    for i, deployment in sections["deployments"]:
        base = ("deployments", i, "hosts")
        bound = deployment.hosts
        names = list(bound) if isinstance(bound, list) else index.select(bound)
        if isinstance(bound, models.LabelSelector) and not names:
            yield Problem(
                pointer=pointer(*base),
                message="the label selector matches no host; the deployment deploys nowhere",
                severity=Severity.WARNING,
            )
        for j, name in enumerate(names):
            where = pointer(*base, j) if isinstance(bound, list) else pointer(*base)
            if name in slots:
                yield Problem(
                    pointer=where,
                    message=f"host {name!r} is a slot of resource {slots[name]!r}: a platform "
                    "manages it, so its image and the resource shape it, not a deployment",
                )
            elif claimed.setdefault(name, deployment.name) != deployment.name:
                yield Problem(
                    pointer=where,
                    message=f"host {name!r} is already deployed by {claimed[name]!r}; a host "
                    "takes one deployment (merge them)",
                )
