"""What the dashboard shows, decided from kabin's objects with no I/O.

A session row (status with its reason, resources, drive, time left, last activity,
one access button per interface that answers), the start form's choices and the
fields an admission refusal points at, drive rows. The pages in
`kabin.gateway.dashboard.pages` render these; tests check them by tables.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kabin.api import names
from kabin.api.environment import SESSION_TYPES
from kabin.api.meta import parse_quantity
from kabin.api.names import NAME_ANNOTATION
from kabin.api.session import Schedule
from kabin.client.records import ACTIVE
from kabin.logic import schedule
from kabin.logic.resolve import timeout_action, timeout_mode

LABELS = {
    "jupyterlab": "JupyterLab",
    "vscode": "VS Code",
    "desktop": "Desktop",
    "ssh": "SSH",
    "http": "Web app",
}
"""Access buttons are named after the interface, as Shakudo's are."""
PAGE_SIZE = 50
TIMEOUT_CHOICES = [
    (3600, "1 hour"),
    (7200, "2 hours"),
    (14400, "4 hours"),
    (28800, "8 hours"),
    (86400, "1 day"),
    (604800, "1 week"),
    (-1, "never"),
]


@dataclass(frozen=True)
class Access:
    """One way into a session: a link (http interfaces) or a command to copy (ssh)."""

    label: str
    url: str
    copy: bool = False


@dataclass(frozen=True)
class Row:
    """A session as the sessions page shows it."""

    id: str
    name: str
    type: str
    phase: str
    ready: bool
    reason: str
    resources: str
    drive: str
    expiry: str | None
    timeout_mode: str
    last_activity: str | None
    activity_source: str | None
    access: list[Access] = field(default_factory=list)
    active: bool = False
    resumable: bool = False  # Suspended or Expired: a Resume button
    schedule: dict[str, str] = field(default_factory=dict)  # suspend, resume, zone
    schedule_words: str | None = None
    suspended_at: str | None = None
    pending_restart: bool = False  # a resume runs the environment's new image


def reason_of(obj: Mapping[str, Any]) -> str:
    """Why a session is where it is, in one line: the drive it waits for (and who holds
    it), its place in its queue, the scheduler's message, an interface not answering
    yet, or how it ended."""
    status = obj.get("status") or {}
    phase = status.get("phase") or "Pending"
    if obj["metadata"].get("deletionTimestamp"):
        return "being deleted"
    if phase not in ACTIVE:
        return str(status.get("message") or status.get("reason") or phase)
    conditions = names.conditions_by_type(status)
    failed = conditions.get(names.FAILED, {})
    if failed.get("status") == "True":
        return f"{failed.get('reason')}: {failed.get('message')}"
    for kind in (names.DRIVE_READY, names.QUEUED, names.SCHEDULED, names.READY):
        condition = conditions.get(kind)
        waits = "True" if kind == names.QUEUED else "False"
        if condition is not None and condition.get("status") == waits:
            return str(condition.get("message") or condition.get("reason") or "")
    if names.READY not in conditions:
        return "waiting for the operator"
    return ""


def _amount(value: Any, unit: str) -> str:
    if value is None:
        return ""
    number = parse_quantity(value)
    if unit == "GiB":
        number = number / 2**30
    return f"{float(round(number, 2)):g} {unit}"


def resources_of(obj: Mapping[str, Any]) -> str:
    """CPU, memory and GPUs the session's pods request: "2 CPU · 4 GiB · 1 GPU"."""
    status = obj.get("status") or {}
    asked = status.get("requested") or obj["spec"].get("resources") or {}
    parts = [_amount(asked.get("cpu"), "CPU"), _amount(asked.get("memory"), "GiB")]
    if asked.get("gpu"):
        parts.append(f"{asked['gpu']} GPU")
    return " · ".join(p for p in parts if p) or "environment defaults"


def access_of(obj: Mapping[str, Any]) -> list[Access]:
    """One access per interface whose endpoint answers, and none before it does."""
    found = []
    for endpoint in (obj.get("status") or {}).get("endpoints") or []:
        if not endpoint.get("ready"):
            continue
        name = str(endpoint.get("name"))
        label = LABELS.get(name, name.capitalize())
        found.append(Access(label=label, url=str(endpoint.get("url")), copy=name == "ssh"))
    return found


def row(obj: Mapping[str, Any]) -> Row:
    """A session's row on the sessions page."""
    meta, spec = obj["metadata"], obj["spec"]
    status = obj.get("status") or {}
    phase = "Terminating" if meta.get("deletionTimestamp") else status.get("phase") or "Pending"
    ready = names.is_true(status, names.READY)
    return Row(
        id=str(meta["name"]),
        name=str((meta.get("annotations") or {}).get(NAME_ANNOTATION) or meta["name"]),
        type=str(spec["type"]),
        phase=str(phase),
        ready=ready,
        reason=reason_of(obj),
        resources=resources_of(obj),
        drive=str(status.get("drive") or spec.get("drive") or "none"),
        expiry=status.get("expiryTime"),
        timeout_mode=str(status.get("timeoutMode") or ""),
        last_activity=status.get("lastActivityTime"),
        activity_source=status.get("lastActivitySource"),
        access=access_of(obj) if phase in ACTIVE else [],
        active=phase in ACTIVE,
        resumable=phase in ("Suspended", "Expired"),
        schedule=_schedule_fields(spec.get("schedule")),
        schedule_words=_schedule_words(spec.get("schedule")),
        suspended_at=status.get("suspendedAt"),
        pending_restart=bool(status.get("pendingRestart")),
    )


def _schedule_fields(given: Mapping[str, Any] | None) -> dict[str, str]:
    given = given or {}
    keys = {"suspend": "suspend", "resume": "resume", "zone": "timeZone"}
    return {k: str(given.get(v) or "") for k, v in keys.items()}


def _schedule_words(given: Mapping[str, Any] | None) -> str | None:
    """A session's schedule in words; None without one (or one kabin cannot read)."""
    if not given:
        return None
    try:
        return schedule.explain(Schedule.model_validate(given))
    except ValueError:  # not a schedule at all (an edit by hand): say nothing
        return None


def page(
    objs: Sequence[Mapping[str, Any]], number: int, size: int = PAGE_SIZE
) -> tuple[list[Row], int]:
    """One page of the user's sessions, newest first, and how many pages there are."""
    ordered = sorted(
        objs,
        key=lambda o: (o["metadata"].get("creationTimestamp") or "", o["metadata"]["name"]),
        reverse=True,
    )
    pages = max(1, -(-len(ordered) // size))
    number = min(max(number, 1), pages)
    return [row(o) for o in ordered[(number - 1) * size : number * size]], pages


# -- the start form ----------------------------------------------------------------------


@dataclass(frozen=True)
class Choice:
    """A session type to start, in an environment: the form's radio buttons."""

    value: str
    label: str
    environment: str
    type: str
    default: dict[str, Any]
    most: dict[str, Any]
    timeout_default: int | None
    timeout_max: int | None
    timeout_mode: str
    timeout_action: str = "Expire"
    schedules: str = "Allowed"  # or SuspendOnly, Forbidden: the schedule fields shown


def choices(environments: Sequence[Mapping[str, Any]]) -> list[Choice]:
    """One choice per environment and type it serves, labelled with its displayName
    (and the type, where an environment serves several)."""
    found = []
    for env in sorted(environments, key=lambda e: str(e["metadata"]["name"])):
        spec = env["spec"]
        name = str(env["metadata"]["name"])
        types = list(spec.get("sessionTypes") or SESSION_TYPES)
        resources = spec.get("resources") or {}
        timeouts = spec.get("timeouts") or {}
        for kind in types:
            mode = timeout_mode(kind, timeouts.get("mode"))
            label = str(spec.get("displayName") or name)
            found.append(
                Choice(
                    value=f"{name}/{kind}",
                    label=label if len(types) == 1 else f"{label}: {kind}",
                    environment=name,
                    type=kind,
                    default=dict(resources.get("default") or {}),
                    most=dict(resources.get("max") or {}),
                    timeout_default=timeouts.get("default"),
                    timeout_max=timeouts.get("max"),
                    timeout_mode=str(mode),
                    timeout_action=timeout_action(str(mode), timeouts.get("action"), None),
                    schedules=str(spec.get("schedules") or "Allowed"),
                )
            )
    return found


def gib(value: Any) -> str:
    """A memory quantity in GiB, for the form's memory field."""
    if value is None:
        return ""
    return f"{float(round(parse_quantity(value) / 2**30, 2)):g}"


def timeout_line(choice: Choice) -> str:
    """The one line the form says about this type's timeout."""
    ends = "is suspended (resume it on its drive)" if choice.timeout_action == "Suspend" else "ends"
    if choice.timeout_mode == "idle":
        return f"Idle timeout: the session {ends} after this long with nobody using it."
    return f"Absolute timeout: the session {ends} this long after it starts (renew to extend)."


SCHEDULE_FIELDS = (
    ("suspend", "Suspend at", "0 19 * * 1-5"),
    ("resume", "Resume at", "0 8 * * 1-5"),
    ("zone", "Time zone", "Europe/Paris"),
)
"""The schedule's form fields: key, label, example (cron: minute hour day month weekday)."""


def schedule_of(values: Mapping[str, str]) -> dict[str, str | None] | None:
    """spec.schedule from a form's schedule-* fields; None when it sets no time."""
    given = {k: (values.get(f"schedule-{k}") or "").strip() or None for k, _, _ in SCHEDULE_FIELDS}
    if not (given["suspend"] or given["resume"]):
        return None
    return {"suspend": given["suspend"], "resume": given["resume"], "timeZone": given["zone"]}


FIELDS = (
    "name", "choice", "cpu", "memory", "gpu", "drive", "timeout", "image",
    "schedule-suspend", "schedule-resume", "schedule-zone",
)  # fmt: skip
# The form field of each field an error names: the API's paths, and the client's own
# parameter names.
_FORM_FIELD = {
    "spec.resources.cpu": "cpu", "cores": "cpu", "cpu": "cpu",
    "spec.resources.memory": "memory", "ram": "memory", "memory": "memory",
    "spec.resources.gpu": "gpu", "gpu": "gpu",
    "spec.timeout": "timeout", "timeout": "timeout",
    "spec.schedule.suspend": "schedule-suspend", "spec.schedule": "schedule-suspend",
    "spec.schedule.resume": "schedule-resume", "spec.schedule.timeZone": "schedule-zone",
    "spec.drive": "drive", "drive": "drive",
    "spec.image": "image", "image": "image",
    "spec.environment": "choice", "spec.type": "choice", "kind": "choice", "choice": "choice",
    "metadata.name": "name", "name": "name",
    "spec.size": "size", "size": "size", "spec.access": "access", "access": "access",
}  # fmt: skip


def form_field(field: str | None) -> str:
    """The form field an error names (`KabinError.field`), else the form as a whole."""
    while field:
        if field in _FORM_FIELD:
            return _FORM_FIELD[field]
        field = field.rpartition(".")[0]  # spec.resources.cpu.limit -> spec.resources.cpu
    return "form"


# -- drives ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DriveRow:
    """A drive as the drives page and the form's drive menu show it."""

    name: str
    size: str
    access: str
    owner: str
    holder: str | None
    waiting: list[str]
    phase: str

    @property
    def in_use(self) -> bool:
        return self.holder is not None


def drive_row(obj: Mapping[str, Any]) -> DriveRow:
    spec, status = obj["spec"], obj.get("status") or {}
    holder = (status.get("holder") or {}).get("session")
    return DriveRow(
        name=str(obj["metadata"]["name"]),
        size=str(spec.get("size") or ""),
        access=str(spec.get("access") or "shared"),
        owner=str(spec.get("owner") or ""),
        holder=str(holder) if holder else None,
        waiting=[str(w.get("session")) for w in status.get("waiting") or []],
        phase=str(status.get("phase") or "Pending"),
    )


def drive_rows(drives: Sequence[Mapping[str, Any]]) -> list[DriveRow]:
    """The drives' rows, by name (`users.usable_drives` says which the user may pick)."""
    return sorted((drive_row(d) for d in drives), key=lambda d: d.name)
