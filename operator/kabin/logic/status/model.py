"""What a Session's status is computed from, and what comes out: the observed inputs,
the settings status depends on, and the outcome. Data only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kabin.api.names import Reason
from kabin.api.session import SessionSpec, SessionStatus
from kabin.logic.activity import Recorded
from kabin.logic.resolve import Owner, Resolved
from kabin.logic.schedule import Fire
from kabin.logic.status.queue import Place


@dataclass(frozen=True)
class DriveView:
    """Where the session stands with its drive."""

    name: str
    granted: bool
    reason: str = Reason.GRANTED
    message: str = ""


@dataclass(frozen=True)
class Observed:
    """What the operator saw of one Session."""

    spec: SessionSpec
    owner: Owner
    resolved: Resolved
    generation: int
    previous: SessionStatus
    pods: list[dict[str, Any]]
    services: dict[str, dict[str, Any]]
    deleting: bool = False
    renew: str | None = None
    suspend_reason: str | None = None  # the kabin.dev/suspend-reason annotation
    created: datetime | None = None  # the Session's creationTimestamp
    schedule_fired: datetime | None = None  # the last schedule fire acted on (annotation)
    drive: DriveView | None = None
    activity: Recorded | None = None  # what the agent recorded on the activity Lease
    failure: tuple[str, str] | None = None  # (reason, message) of a permanent failure
    place: Place | None = None  # its place in its Kueue queue, as last read
    preempted: str | None = None  # the pod preemption last acted on (kabin.dev/preempted)
    evicted: tuple[str, str] | None = None  # (pod UID, why) Kueue preempted, seen in an event


@dataclass(frozen=True)
class StatusSettings:
    """The operator settings status depends on."""

    host: str
    ssh_host: str
    image_pull_grace: float
    expiring_soon: float = 300
    sessions_url: str | None = None
    """Each session's own origin under this one (logic.access.Origin); None: `host`."""
    preempted_headless: str = "Requeue"
    """What a headless session Kueue preempts does: Requeue or Fail."""


@dataclass(frozen=True)
class Event:
    """A transition worth telling the user (`kubectl describe session`)."""

    type: str
    reason: str
    message: str


@dataclass(frozen=True)
class Outcome:
    """The computed status, with when it must next be looked at."""

    status: SessionStatus
    wake_at: datetime | None = None  # the next deadline (expiry, image pull grace), if any
    suspend: str | None = None  # a timeout ran out whose action is Suspend: set spec.suspend
    fire: Fire | None = None  # the schedule's fire to act on now
    delete: bool = False  # suspended past the environment's deleteSuspendedAfter
    preempted: str | None = None  # Kueue preempted this pod: record it (and suspend or requeue)
