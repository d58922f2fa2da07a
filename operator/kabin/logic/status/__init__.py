"""A Session's status, computed from what is observed: its pods and Services,
the previous status, and the time (an argument, never read here).

The result says where the session stands (phase, conditions, endpoints), when
it must next be looked at (its expiry), and which transitions deserve an Event.
Each step is its own pure module: `timeouts` (start, activity, expiry), `phase`,
`endpoints`, `conditions`, and `pods` (what the pods say).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import cast

from kabin.api import names
from kabin.api.environment import ResourceAmounts
from kabin.api.meta import Condition
from kabin.api.session import SessionStatus, TimeoutMode
from kabin.logic import schedule
from kabin.logic.resolve import selector
from kabin.logic.status.conditions import Conditions
from kabin.logic.status.endpoints import connect_url, endpoints
from kabin.logic.status.model import (
    DriveView,
    Event,
    Observed,
    Outcome,
    StatusSettings,
)
from kabin.logic.status.phase import verdict
from kabin.logic.status.pods import Pods, pull_deadline
from kabin.logic.status.queue import Place, standing
from kabin.logic.status.timeouts import clock, renews, warn_at

__all__ = [
    "DriveView",
    "Event",
    "Observed",
    "Outcome",
    "Place",
    "StatusSettings",
    "compute",
    "transitions",
]


TIMED_OUT = (names.Reason.IDLE_TIMEOUT, names.Reason.TIMEOUT)


def resumed(observed: Observed) -> Observed:
    """A session that runs again, after Suspended (spec.suspend false again) or Expired (a
    new kabin.dev/renew), starts over as a new one would: a new start and deadline, its
    conditions (their history) kept."""
    prev, renew = observed.previous, observed.renew
    if observed.deleting or observed.spec.suspend:
        return observed
    acted = prev.renewal.token if prev.renewal else None
    if prev.phase == "Suspended" or (prev.phase == "Expired" and renews(renew, acted)):
        fresh = SessionStatus(conditions=prev.conditions, renewal=prev.renewal, image=prev.image)
        return replace(observed, previous=fresh)
    return observed


def compute(observed: Observed, *, now: datetime, settings: StatusSettings) -> Outcome:
    """The Session's status from what was observed."""
    observed = resumed(observed)
    spec, resolved = observed.spec, observed.resolved
    pods = Pods.of(observed.pods, spec.replicas)
    times = clock(observed, now=now, running=bool(pods.running))
    where = verdict(observed, pods, times, now=now, settings=settings)
    reachable = endpoints(observed, phase=where.phase, head=pods.head, settings=settings)
    make = Conditions(previous=observed.previous, now=now, generation=observed.generation)
    ending = where.phase in names.STOPPED_PHASES or where.phase == "Terminating"
    suspended = where.phase == "Suspended"
    prev = observed.previous

    conditions: list[Condition] = [make.scheduled(pods, phase=where.phase, replicas=spec.replicas)]
    queue = standing(
        resolved=resolved,
        replicas=spec.replicas,
        pods=pods,
        phase=where.phase,
        place=observed.place,
        previous=prev,
        now=now,
    )
    if queue is not None:
        conditions.append(make.make(names.QUEUED, queue.queued, queue.reason, queue.message))
    message = where.message
    if message is None and queue is not None and queue.queued:
        message = queue.message  # what a Pending session waits for, where people look
    warning = warn_at(times.expiry, settings.expiring_soon)
    if times.expiry is not None and warning is not None and not ending:
        conditions.append(
            make.expiring_soon(
                expiry=times.expiry, warn_at=warning, timeout_mode=resolved.timeout_mode
            )
        )
    if suspended or any(c.type == names.SUSPENDED for c in prev.conditions or []):
        conditions.append(make.suspended(where.reason if suspended else None, where.message))
    suspended_at = (prev.suspended_at or now) if suspended else None
    dormant = _dormancy(resolved.delete_suspended_after, suspended_at, settings.expiring_soon)
    if dormant is not None:
        conditions.append(make.deleting_soon(at=dormant[0], warn_at=dormant[1]))
    if observed.drive is not None:
        conditions.append(make.drive(observed.drive, phase=where.phase))
    if observed.failure is not None:
        conditions.append(make.failed(*observed.failure))
    ports: dict[str, int] = {i.name: i.port for i in resolved.interfaces}
    conditions += [make.interface(e, ports[e.name]) for e in reachable]
    conditions.append(
        make.ready(
            phase=where.phase,
            message=message,
            ready_pods=len(pods.ready),
            replicas=spec.replicas,
            endpoints=reachable,
            drive=observed.drive,
        )
    )
    status = SessionStatus(
        phase=where.phase,
        conditions=conditions,
        observed_generation=observed.generation,
        connect_url=connect_url(reachable),
        endpoints=reachable or None,
        replicas=len(pods.live),
        ready_replicas=len(pods.ready),
        start_time=times.start,
        # Suspended, the deadline stays only as the one that suspended it.
        expiry_time=times.expiry if not suspended or where.reason in TIMED_OUT else None,
        last_activity_time=times.last_activity,
        last_activity_source=times.last_source,
        timeout_mode=cast(TimeoutMode, resolved.timeout_mode),
        requested=ResourceAmounts(cpu=resolved.cpu, memory=resolved.memory, gpu=resolved.gpu),
        usage=times.usage,
        drive=observed.drive.name if observed.drive else None,
        reason=where.reason,
        message=message,
        selector=selector(observed.owner),
        renewal=times.renewal,
        suspended_at=suspended_at,
        image=resolved.image if pods.live else prev.image,
        pending_restart=True if suspended and prev.image not in (None, resolved.image) else None,
        queue=resolved.queue,
        queued_at=queue.queued_at if queue is not None else None,
        admitted_at=queue.admitted_at if queue is not None else None,
        place_in_line=queue.place if queue is not None else None,
    )
    deadlines = [
        times.expiry,
        warning if warning is not None and warning > now else None,
        pull_deadline(pods.live, grace=settings.image_pull_grace),
    ]
    if ending:
        deadlines = []
    if dormant is not None:
        deadlines += [d for d in dormant if d > now]
    if not observed.deleting and spec.schedule is not None:
        deadlines.append(schedule.upcoming(spec.schedule, now))
    wake_at = min((d for d in deadlines if d is not None), default=None)
    fire = None
    if not observed.deleting and where.phase not in names.FINAL_PHASES:
        since = observed.created or now
        fire = schedule.due(spec.schedule, now, since=since, acted=observed.schedule_fired)
    return Outcome(
        status=status,
        wake_at=wake_at,
        suspend=where.suspend,
        fire=fire,
        delete=dormant is not None and now >= dormant[0],
        preempted=where.preempted,
    )


def _dormancy(
    after: int, suspended_at: datetime | None, expiring_soon: float
) -> tuple[datetime, datetime] | None:
    """When a session suspended since `suspended_at` is deleted, and when that is warned
    of; None when its environment never deletes suspended sessions."""
    if suspended_at is None or after < 0:
        return None
    at = suspended_at + timedelta(seconds=after)
    return at, at - timedelta(seconds=expiring_soon)


def _flipped_true(prev: SessionStatus, new: SessionStatus, kind: str) -> Condition | None:
    old = next((c for c in prev.conditions or [] if c.type == kind), None)
    cur = next((c for c in new.conditions or [] if c.type == kind), None)
    if cur is not None and cur.status == "True" and (old is None or old.status != "True"):
        return cur
    return None


def transitions(prev: SessionStatus, new: SessionStatus) -> list[Event]:
    """The Events that going from `prev` to `new` deserves."""
    events = []
    for kind, severity in (
        (names.SCHEDULED, "Normal"),
        (names.READY, "Normal"),
        (names.EXPIRING_SOON, "Warning"),
        (names.DELETING_SOON, "Warning"),
        (names.QUEUED, "Normal"),
    ):
        flipped = _flipped_true(prev, new, kind)
        if flipped:
            events.append(Event(severity, kind, flipped.message))
    failed = _flipped_true(prev, new, names.FAILED)
    if failed:  # once, when the failure appears: not once per retry
        events.append(Event("Warning", failed.reason or names.FAILED, failed.message or ""))
    if new.phase == "Suspended" and prev.phase != "Suspended":
        events.append(Event("Normal", names.SUSPENDED, new.message or "suspended"))
    if prev.phase in ("Suspended", "Expired") and new.phase in ("Pending", "Running"):
        events.append(Event("Normal", names.Reason.RESUMED, "resumed: its pods start again"))
    if new.phase != prev.phase and new.phase in names.DONE_PHASES:
        severity = "Warning" if new.phase == "Failed" else "Normal"
        # Expired says why (IdleTimeout, Timeout); the other phases are their own reason.
        why = (new.reason if new.phase == "Expired" else None) or new.phase or ""
        events.append(Event(severity, why, new.message or new.phase or ""))
    return events
