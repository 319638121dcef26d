"""The reconciler's core: desired (the document) against observed (the platform) gives a
plan, each action with its reason. Pure: no I/O, no clock; the service carries it out.

    plan(PlanInput) -> Plan
      actions     create, destroy, start, resize, protect; each says why
                  ("+web-2: count 3, observed 2", "start web-1: stopped out of band")
      refusals    what it would do and will not, and why (protected, over a limit)
      reports     per resource: converged slots, drift, for the ``infra:NAME`` check

The guardrails live here, so a property test can show that no plan ever breaks them:

* only machines carrying our owner tag are ever acted on; lookalikes (our resource tag,
  another owner or none) are reported and left alone;
* a protected machine (the platform's guard, our tag, or protection recorded in the store
  because a document once asked for it) is never destroyed, and no plan unprotects;
* a failed observation, or one that sees nothing where the inventory knew machines, is
  UNKNOWN: no creates, no destroys;
* ``max_create`` and ``max_destroy`` cap one apply; the rest waits for the next;
* destroys (and whatever ``confirm`` names) wait for an operator;
* one update (resize, replace) per resource at a time, and nothing on a slot that has a
  job in flight; scale-down takes the highest slot first.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from watchkeeper.document.slots import slot_index
from watchkeeper.infra.desired import Desired, DesiredPlatform, DesiredResource
from watchkeeper.infra.providers.base import Machine

#: Machine states that count as present (a terminated machine fills no slot).
LIVE_STATES = frozenset({"pending", "running", "stopping", "stopped", "unknown"})


class Op(enum.Enum):
    """What an action does; the worker's infra job runs the provider call of this name."""

    CREATE = "create"
    DESTROY = "destroy"
    START = "start"
    RESIZE = "resize"
    PROTECT = "protect"
    #: Operators only (``watchkeeper infra unprotect``); never planned.
    UNPROTECT = "unprotect"


@dataclass(frozen=True, slots=True, kw_only=True)
class Action:
    """One change on the platform, for one slot."""

    op: Op
    platform: str
    resource: str
    slot: str
    reason: str
    #: The machine acted on (None for a create).
    cloud_id: str | None = None
    #: The size a resize sets.
    size: str | None = None
    #: Waits for an operator before it runs.
    confirm: bool = False

    @property
    def key(self) -> str:
        """One live job per (slot, op, machine): the idempotency key of its job."""
        return f"{self.resource}|{self.slot}|{self.op.value}|{self.cloud_id or ''}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Refusal:
    """An action the plan will not take, and why."""

    platform: str
    resource: str
    slot: str
    reason: str
    cloud_id: str | None = None


class Knowledge(enum.Enum):
    KNOWN = "known"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True, kw_only=True)
class ResourceReport:
    """How one resource stands: for the ``infra:NAME`` check and the UI."""

    resource: str
    platform: str
    desired: int
    converged: int
    #: Out-of-band changes seen (``web-1 stopped out of band``).
    drift: tuple[str, ...] = ()
    #: Why nothing could be judged (the platform's observation is UNKNOWN).
    unknown: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Observation:
    """One observation of one platform: what it holds, or why it could not say."""

    platform: str
    machines: tuple[Machine, ...] = ()
    #: Set when the observation failed (an API error, an incomplete listing).
    error: str = ""
    at: float = 0.0

    @property
    def failed(self) -> bool:
        return bool(self.error)


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanInput:
    """Everything one platform's plan depends on."""

    desired: Desired
    platform: DesiredPlatform
    observation: Observation
    #: Our owner id (the store's cluster id): the tag that makes a machine ours.
    owner: str
    #: Owned machines the inventory knew before this observation (live ones).
    known: int = 0
    #: Cloud ids whose protection is recorded in the store (sticky; operators lift it).
    protected: frozenset[str] = frozenset()
    #: Slots with a job in flight (queued, dispatched, verifying, or pending an operator).
    busy: frozenset[str] = frozenset()
    #: Plan only these resources (``infra apply --only``); None: all.
    only: frozenset[str] | None = None
    #: Cloud ids our own jobs destroyed: their terminated remains are not drift.
    destroyed: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    platform: str
    knowledge: Knowledge
    actions: tuple[Action, ...] = ()
    refusals: tuple[Refusal, ...] = ()
    reports: tuple[ResourceReport, ...] = ()
    #: Why the platform is UNKNOWN.
    reason: str = ""
    #: Machines with our resource tag that are not ours: never touched.
    lookalikes: tuple[Machine, ...] = ()

    def summary(self) -> str:
        counts: dict[str, int] = {}
        for action in self.actions:
            counts[action.op.value] = counts.get(action.op.value, 0) + 1
        parts = [f"{op} {n}" for op, n in sorted(counts.items())]
        if self.refusals:
            parts.append(f"refused {len(self.refusals)}")
        return ", ".join(parts) or "no changes"


def plan(given: PlanInput) -> Plan:
    """The plan of one platform; see the module docstring for the rules it keeps."""
    platform = given.platform
    resources = given.desired.on(platform.name)
    observation = given.observation
    ours = [m for m in observation.machines if m.owner == given.owner and m.owner]
    lookalikes = tuple(m for m in observation.machines if m.owner != given.owner or not m.owner)
    live = [m for m in ours if m.state in LIVE_STATES]
    unknown = _unknown_reason(given, observation, live)
    if unknown:
        return Plan(
            platform=platform.name,
            knowledge=Knowledge.UNKNOWN,
            reason=unknown,
            lookalikes=lookalikes,
            reports=tuple(
                ResourceReport(
                    resource=r.name,
                    platform=platform.name,
                    desired=r.count,
                    converged=0,
                    unknown=unknown,
                )
                for r in resources
            ),
        )
    builder = _Builder(given)
    builder.gone = {
        m.slot: m for m in ours if m.state == "terminated" and m.cloud_id not in given.destroyed
    }
    builder.orphaned = {m.slot: m for m in lookalikes if m.slot and m.state in LIVE_STATES}
    by_resource: dict[str, list[Machine]] = {}
    for machine in live:
        by_resource.setdefault(machine.resource, []).append(machine)
    for resource in resources:
        builder.resource(resource, by_resource.pop(resource.name, []))
    for name, machines in sorted(by_resource.items()):
        builder.orphans(name, machines)
    return Plan(
        platform=platform.name,
        knowledge=Knowledge.KNOWN,
        actions=tuple(builder.actions),
        refusals=tuple(builder.refusals),
        reports=tuple(builder.reports),
        lookalikes=lookalikes,
    )


def _unknown_reason(given: PlanInput, observation: Observation, live: list[Machine]) -> str:
    if observation.failed:
        return f"observation failed: {observation.error}"
    if not observation.machines and given.known > 0:
        return (
            f"observed 0 of {given.known} known machines: not trusted as empty (an API "
            "or a platform reset?); nothing is created or destroyed until an observation "
            "sees them or an operator accepts it (watchkeeper infra accept "
            f"{given.platform.name})"
        )
    return ""


@dataclass(slots=True)
class _Builder:
    given: PlanInput
    actions: list[Action] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)
    reports: list[ResourceReport] = field(default_factory=list)
    creates: int = 0
    destroys: int = 0
    #: Slot -> an owned machine terminated, not by us (drift, when the slot is wanted).
    gone: dict[str, Machine] = field(default_factory=dict)
    #: Slot -> a live machine carrying the slot's tag but not our owner tag.
    orphaned: dict[str, Machine] = field(default_factory=dict)
    #: Slots with an update (create, destroy, resize) planned, and the machines this
    #: plan destroys or resizes: indexes of `actions`, so a plan stays linear.
    updated: set[str] = field(default_factory=set)
    changing: set[str] = field(default_factory=set)

    def _add(self, action: Action) -> None:
        self.actions.append(action)
        if action.op in _UPDATES:
            self.updated.add(action.slot)
        if action.op in (Op.DESTROY, Op.RESIZE) and action.cloud_id:
            self.changing.add(action.cloud_id)

    # --- one resource of the document -----------------------------------------------------

    def resource(self, resource: DesiredResource, machines: list[Machine]) -> None:
        wanted = set(resource.slots)
        by_slot: dict[str, list[Machine]] = {}
        extra: list[Machine] = []
        for machine in machines:
            if machine.slot in wanted:
                by_slot.setdefault(machine.slot, []).append(machine)
            else:
                extra.append(machine)
        selected = self.given.only is None or resource.name in self.given.only
        drift: list[str] = []
        converged = 0
        updating = any(slot in self.given.busy for slot in resource.slots)
        for slot in resource.slots:
            present = by_slot.get(slot, [])
            if not present:
                stray = self.orphaned.get(slot)
                if stray is not None and stray.resource == resource.name:
                    drift.append(f"{slot}: owner tag gone from {stray.cloud_id} out of band")
                    self.refusals.append(self._refusal(
                        resource, stray, f"+{slot}: not created, {stray.cloud_id} carries its "
                        "slot tag but not our owner tag (adopt it: watchkeeper infra adopt "
                        f"{stray.cloud_id}, or remove it)",
                    ))  # fmt: skip
                    continue
                if slot in self.gone:
                    drift.append(f"{slot} terminated out of band ({self.gone[slot].cloud_id})")
                if selected and slot not in self.given.busy:
                    self._create(resource, slot, f"+{slot}: count {resource.count}, "
                                 f"observed {self._count(by_slot)}")  # fmt: skip
                continue
            keep, surplus = _keep(resource, present)
            for machine in surplus:
                if selected:
                    self._destroy(
                        resource, machine, f"-{slot} ({machine.cloud_id}): {slot} is "
                        f"already filled by {keep.cloud_id}", confirm="destroy" in resource.confirm,
                    )  # fmt: skip
            notes, matches = self._drift(resource, keep, selected, updating)
            drift.extend(notes)
            if matches and not surplus:
                converged += 1
            updating = updating or slot in self.updated
        for machine in sorted(extra, key=_by_slot_desc):
            if selected:
                self._destroy(
                    resource,
                    machine,
                    f"-{machine.slot or machine.cloud_id}: count {resource.count}",
                    confirm="destroy" in resource.confirm,
                )
        self.reports.append(
            ResourceReport(
                resource=resource.name,
                platform=self.given.platform.name,
                desired=resource.count,
                converged=converged,
                drift=tuple(drift),
            )
        )

    def _drift(
        self, resource: DesiredResource, machine: Machine, selected: bool, updating: bool
    ) -> tuple[list[str], bool]:
        """Out-of-band changes of the machine that fills a slot; whether it matches.

        An update that destroys the machine (replace) goes first: a machine on its way out
        is not started or protected as well.
        """
        notes: list[str] = []
        slot, busy = machine.slot, machine.slot in self.given.busy
        repair = selected and not busy and resource.drift == "repair"
        matches = True
        wrong_size = resource.size is not None and machine.size not in (None, resource.size)
        wrong_image = resource.image is not None and machine.image not in (None, resource.image)
        if wrong_size or wrong_image:
            matches = False
            parts = [f"size {machine.size}, want {resource.size}"] if wrong_size else []
            if wrong_image:
                parts.append(f"image {machine.image}, want {resource.image}")
            what = "; ".join(parts)
            notes.append(f"{slot}: {what}")
            if selected and not busy and not updating:
                self._update(resource, machine, what, image=wrong_image)
        # A machine already being destroyed or resized by this plan is left to that.
        leaving = machine.cloud_id in self.changing
        if machine.state in ("stopped", "stopping"):
            matches = False
            notes.append(f"{slot} {machine.state} out of band")
            if repair and machine.state == "stopped" and not leaving:
                self._act(Op.START, resource, machine, f"start {slot}: stopped out of band")
        recorded = machine.cloud_id in self.given.protected
        if recorded and not machine.protected:
            matches = False
            notes.append(f"{slot}: protection lost out of band")
            if repair and not leaving:
                self._act(
                    Op.PROTECT, resource, machine, f"protect {slot}: protection lost out of band"
                )
        elif resource.protect and not self._protected(machine):
            matches = False
            if selected and not busy and not leaving:
                self._act(
                    Op.PROTECT, resource, machine, f"protect {slot}: the document asks for it"
                )
        return notes, matches

    def _update(
        self, resource: DesiredResource, machine: Machine, what: str, *, image: bool
    ) -> None:
        slot = machine.slot
        if resource.update == "in-place":
            if image:
                self.refusals.append(self._refusal(
                    resource, machine, f"{slot}: {what}; update in-place cannot change an "
                    "image (use update replace or create-before-destroy)",
                ))  # fmt: skip
                return
            self._act(
                Op.RESIZE, resource, machine, f"resize {slot}: {what} (stop, resize, start)",
                size=resource.size, confirm="resize" in resource.confirm,
            )  # fmt: skip
        elif resource.update == "replace":
            self._destroy(
                resource, machine, f"replace {slot}: {what} (destroy, then create)",
                confirm="replace" in resource.confirm or "destroy" in resource.confirm,
            )  # fmt: skip
        else:  # create-before-destroy: a second machine for the slot; _keep picks it later
            self._create(
                resource, slot, f"replace {slot}: {what} (create before destroy)",
                confirm="replace" in resource.confirm or "create" in resource.confirm,
            )  # fmt: skip

    # --- machines of resources the document no longer has --------------------------------

    def orphans(self, resource: str, machines: list[Machine]) -> None:
        if self.given.only is not None and resource not in self.given.only:
            return
        for machine in sorted(machines, key=_by_slot_desc):
            self._destroy(
                None,
                machine,
                f"-{machine.slot or machine.cloud_id}: resource {resource or '?'} is no "
                "longer in the document",
                confirm=True,  # nothing says otherwise: the resource's settings are gone
            )

    # --- the guarded primitives -----------------------------------------------------------

    def _create(
        self, resource: DesiredResource, slot: str, reason: str, *, confirm: bool | None = None
    ) -> None:
        limit = self.given.platform.limits.max_create
        if self.creates >= limit:
            self.refusals.append(
                Refusal(
                    platform=self.given.platform.name,
                    resource=resource.name,
                    slot=slot,
                    reason=f"{reason}: waits, max_create={limit} per apply",
                )
            )
            return
        self.creates += 1
        self._add(
            Action(
                op=Op.CREATE,
                platform=self.given.platform.name,
                resource=resource.name,
                slot=slot,
                reason=reason,
                size=resource.size,
                confirm="create" in resource.confirm if confirm is None else confirm,
            )
        )

    def _destroy(
        self, resource: DesiredResource | None, machine: Machine, reason: str, *, confirm: bool
    ) -> None:
        name = resource.name if resource is not None else machine.resource
        if machine.slot in self.given.busy:
            return
        if self._protected(machine):
            self.refusals.append(
                self._refusal(
                    resource,
                    machine,
                    f"{reason}: {machine.slot or machine.cloud_id} is protected and is not "
                    f"destroyed (an operator lifts it: watchkeeper infra unprotect "
                    f"{machine.slot or machine.cloud_id})",
                )
            )
            return
        limit = self.given.platform.limits.max_destroy
        if self.destroys >= limit:
            self.refusals.append(
                self._refusal(resource, machine, f"{reason}: waits, max_destroy={limit} per apply")
            )
            return
        self.destroys += 1
        self._add(
            Action(
                op=Op.DESTROY,
                platform=self.given.platform.name,
                resource=name,
                slot=machine.slot,
                reason=reason,
                cloud_id=machine.cloud_id,
                confirm=confirm,
            )
        )

    def _act(
        self,
        op: Op,
        resource: DesiredResource,
        machine: Machine,
        reason: str,
        *,
        size: str | None = None,
        confirm: bool = False,
    ) -> None:
        self._add(
            Action(
                op=op,
                platform=self.given.platform.name,
                resource=resource.name,
                slot=machine.slot,
                reason=reason,
                cloud_id=machine.cloud_id,
                size=size,
                confirm=confirm,
            )
        )

    def _protected(self, machine: Machine) -> bool:
        return machine.protected or machine.cloud_id in self.given.protected

    def _refusal(self, resource: DesiredResource | None, machine: Machine, reason: str) -> Refusal:
        return Refusal(
            platform=self.given.platform.name,
            resource=resource.name if resource is not None else machine.resource,
            slot=machine.slot,
            reason=reason,
            cloud_id=machine.cloud_id,
        )

    @staticmethod
    def _count(by_slot: Mapping[str, Sequence[Machine]]) -> int:
        return sum(1 for machines in by_slot.values() if machines)


_UPDATES = frozenset({Op.RESIZE, Op.DESTROY, Op.CREATE})


def _keep(resource: DesiredResource, present: list[Machine]) -> tuple[Machine, list[Machine]]:
    """Of the machines filling one slot, the one to keep (the newest that matches the
    resource, else the oldest), and the surplus (a create-before-destroy's old machine)."""
    if len(present) == 1:
        return present[0], []

    def matches(m: Machine) -> bool:
        return (resource.size is None or m.size in (None, resource.size)) and (
            resource.image is None or m.image in (None, resource.image)
        )

    ordered = sorted(present, key=lambda m: (m.created_at or 0.0, m.cloud_id))
    fitting = [m for m in ordered if matches(m) and m.state != "stopped"]
    keep = fitting[-1] if fitting else ordered[0]
    return keep, [m for m in ordered if m is not keep]


def _by_slot_desc(machine: Machine) -> tuple[int, str]:
    """Highest slot first (StatefulSet order); machines without a slot last."""
    index = slot_index(machine.resource, machine.slot) if machine.slot else None
    return (-(index if index is not None else -1), machine.cloud_id)
