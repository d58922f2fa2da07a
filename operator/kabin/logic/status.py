"""A Session's status, computed from what is observed: its pods and Services,
the previous status, and the time (an argument, never read here).

The result says where the session stands (phase, conditions, endpoints), when
it must next be looked at (its expiry), and which transitions deserve an Event.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from kabin.api.environment import HTTP_INTERFACES
from kabin.api.meta import Condition
from kabin.api.names import interface_condition, readiness_gate
from kabin.api.session import (
    Endpoint,
    Phase,
    Renewal,
    Requested,
    SessionSpec,
    SessionStatus,
    TimeoutMode,
    Usage,
)
from kabin.logic.activity import Recorded
from kabin.logic.resolve import Owner, Resolved, http_path, selector

TERMINAL = frozenset({"Succeeded", "Failed", "Expired"})
PULL_ERRORS = frozenset({"ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull"})
NEVER_PULLS = frozenset({"InvalidImageName"})


@dataclass(frozen=True)
class DriveView:
    """Where the session stands with its drive."""

    name: str
    granted: bool
    reason: str = "Granted"
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
    drive: DriveView | None = None
    activity: Recorded | None = None  # what the agent recorded on the activity Lease


@dataclass(frozen=True)
class Settings:
    """The operator settings status depends on."""

    host: str
    ssh_host: str
    image_pull_grace: float
    expiring_soon: float = 300


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


def _conditions(pod: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in pod.get("status", {}).get("conditions") or []}


def _true(pod: dict[str, Any], kind: str) -> bool:
    return _conditions(pod).get(kind, {}).get("status") == "True"


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def _replica(pod: dict[str, Any]) -> int:
    return int(pod["metadata"]["name"].rsplit("-", 1)[-1])


def _unrecoverable(
    pods: list[dict[str, Any]], *, headless: bool, now: datetime, grace: float
) -> tuple[str, str] | None:
    """(reason, message) when a pod can never come up, else None."""
    for pod in sorted(pods, key=_replica):
        created = _time(pod["metadata"].get("creationTimestamp")) or now
        for cs in pod.get("status", {}).get("containerStatuses") or []:
            waiting = (cs.get("state") or {}).get("waiting") or {}
            reason = waiting.get("reason", "")
            where = (
                f"replica {_replica(pod)} (pod {pod['metadata']['name']}), container {cs['name']}"
            )
            detail = waiting.get("message") or reason
            if reason in NEVER_PULLS or (
                reason in PULL_ERRORS and (now - created).total_seconds() >= grace
            ):
                return reason, f"{where}: image {cs.get('image')} cannot be pulled: {detail}"
            if reason == "CrashLoopBackOff" and not headless:
                last = ((cs.get("lastState") or {}).get("terminated") or {}).get("exitCode")
                return reason, f"{where} keeps crashing (last exit code {last}): {detail}"
    return None


def _pull_deadline(pods: list[dict[str, Any]], *, grace: float) -> datetime | None:
    """When the earliest pod still failing to pull its image runs out of grace."""
    deadlines = [
        created + timedelta(seconds=grace)
        for pod in pods
        if (created := _time(pod["metadata"].get("creationTimestamp")))
        for cs in pod.get("status", {}).get("containerStatuses") or []
        if ((cs.get("state") or {}).get("waiting") or {}).get("reason") in PULL_ERRORS
    ]
    return min(deadlines, default=None)


def _finished(pods: list[dict[str, Any]], replicas: int) -> tuple[str, str, str] | None:
    """(phase, reason, message) when a headless run is over."""
    failed = [p for p in pods if p.get("status", {}).get("phase") == "Failed"]
    if failed:
        pod = min(failed, key=_replica)
        codes = [
            ((cs.get("state") or {}).get("terminated") or {}).get("exitCode")
            for cs in pod["status"].get("containerStatuses") or []
        ]
        code = next((c for c in codes if c not in (None, 0)), None)
        return (
            "Failed",
            "ReplicaFailed",
            f"replica {_replica(pod)} of {replicas} (pod {pod['metadata']['name']}) failed "
            f"with exit code {code}",
        )
    done = [p for p in pods if p.get("status", {}).get("phase") == "Succeeded"]
    if len(done) >= replicas:
        return "Succeeded", "Completed", f"all {replicas} replicas succeeded"
    return None


def _condition(
    kind: str,
    ok: bool | None,
    reason: str,
    message: str,
    *,
    previous: SessionStatus,
    now: datetime,
    generation: int,
) -> Condition:
    status = "Unknown" if ok is None else ("True" if ok else "False")
    before = next((c for c in previous.conditions or [] if c.type == kind), None)
    since = before.last_transition_time if before and before.status == status else now
    return Condition(
        type=kind,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=since,
        observed_generation=generation,
    )


def compute(observed: Observed, *, now: datetime, settings: Settings) -> Outcome:
    """The Session's status from what was observed."""
    spec, prev, resolved, owner = (
        observed.spec,
        observed.previous,
        observed.resolved,
        observed.owner,
    )
    headless = spec.type == "headless"
    pods = [p for p in observed.pods if _replica(p) <= spec.replicas]
    live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    running = [p for p in live if p.get("status", {}).get("phase") == "Running"]
    ready_pods = [p for p in running if _true(p, "Ready")]
    succeeded = [p for p in live if p.get("status", {}).get("phase") == "Succeeded"]
    head = next((p for p in live if _replica(p) == 1), None)

    # Renew: a new kabin.dev/renew value restarts an absolute timeout.
    renewal = prev.renewal
    if observed.renew and (renewal is None or renewal.token != observed.renew):
        renewal = Renewal(token=observed.renew, time=now)

    start = prev.start_time or (now if running else None)
    recorded = observed.activity
    last_activity, last_source = prev.last_activity_time, prev.last_activity_source
    # Several replicas' agents write the Lease; the activity never goes back.
    if (
        recorded is not None
        and recorded.time is not None
        and (last_activity is None or recorded.time > last_activity)
    ):
        last_activity, last_source = recorded.time, recorded.source
    usage = prev.usage
    if recorded is not None and recorded.usage is not None:
        with contextlib.suppress(ValueError):
            usage = Usage.model_validate(recorded.usage)
    expiry: datetime | None = None
    if resolved.timeout_mode == "absolute" and start is not None:
        expiry = max([start, *([renewal.time] if renewal else [])]) + timedelta(
            seconds=resolved.timeout
        )
    elif resolved.timeout_mode == "idle" and start is not None and recorded is not None:
        # From the latest of the start, the last renew, the last activity, and the
        # Lease's making: until the Lease exists (the operator makes it before the pods,
        # and again for pods made before kabin had agents) nothing can see activity,
        # so nothing is culled for the lack of it.
        since = [start, *([renewal.time] if renewal else []), *filter(None, [recorded.since])]
        if last_activity is not None:
            since.append(last_activity)
        expiry = max(since) + timedelta(seconds=resolved.timeout)

    phase: Phase = prev.phase or "Pending"
    reason, message = prev.reason, prev.message
    if observed.deleting:
        phase = "Terminating"
    elif phase not in TERMINAL:
        broken = _unrecoverable(live, headless=headless, now=now, grace=settings.image_pull_grace)
        finished = _finished(pods, spec.replicas) if headless else None
        if finished:
            phase, reason, message = cast(Phase, finished[0]), finished[1], finished[2]
        elif broken:
            phase, (reason, message) = "Failed", broken
        elif expiry is not None and now >= expiry and resolved.timeout_mode == "idle":
            phase, reason = "Expired", "IdleTimeout"
            message = f"idle for {resolved.timeout} seconds" + (
                f" (last activity: {last_source} at {last_activity:%Y-%m-%dT%H:%M:%SZ})"
                if last_activity is not None and last_source
                else " (no activity seen since the start)"
            )
        elif expiry is not None and now >= expiry:
            phase, reason = "Expired", "Timeout"
            message = f"the absolute timeout of {resolved.timeout} seconds ran out"
        elif len(running) + len(succeeded) >= spec.replicas:
            phase, reason, message = "Running", None, None
        else:
            phase, reason, message = "Pending", None, None

    def cond(kind: str, ok: bool | None, why: str, text: str) -> Condition:
        return _condition(
            kind, ok, why, text, previous=prev, now=now, generation=observed.generation
        )

    conditions: list[Condition] = []
    unscheduled = [
        _conditions(p).get("PodScheduled", {})
        for p in live
        if _conditions(p).get("PodScheduled", {}).get("status") == "False"
    ]
    placed = [p for p in live if p.get("spec", {}).get("nodeName")]
    if phase in TERMINAL and not live:
        conditions.append(cond("Scheduled", False, phase, f"the session is {phase}"))
    elif unscheduled:
        first = unscheduled[0]
        conditions.append(
            cond(
                "Scheduled",
                False,
                first.get("reason") or "Unschedulable",
                first.get("message") or "the scheduler cannot place a pod",
            )
        )
    elif len(placed) >= spec.replicas:
        conditions.append(
            cond("Scheduled", True, "Scheduled", f"{len(placed)}/{spec.replicas} pods placed")
        )
    else:
        conditions.append(
            cond("Scheduled", False, "Pending", f"{len(placed)}/{spec.replicas} pods placed")
        )

    warn_at = expiry - timedelta(seconds=settings.expiring_soon) if expiry else None
    if warn_at is not None and phase not in TERMINAL and phase != "Terminating":
        soon = now >= warn_at
        when = f"{expiry:%Y-%m-%dT%H:%M:%SZ}"
        conditions.append(
            cond(
                "ExpiringSoon",
                soon,
                "ExpiringSoon" if soon else "NotExpiringSoon",
                f"expires at {when}"
                + (" unless active" if resolved.timeout_mode == "idle" else " unless renewed"),
            )
        )

    drive = observed.drive
    if drive is not None:
        if drive.granted:
            conditions.append(cond("DriveReady", True, "Granted", f'holds Drive "{drive.name}"'))
        else:
            conditions.append(cond("DriveReady", False, drive.reason, drive.message))

    endpoints: list[Endpoint] = []
    ssh_host = settings.ssh_host
    interfaces_ready = True
    for iface in [] if headless else resolved.interfaces:
        ok = head is not None and phase == "Running" and _true(head, readiness_gate(iface.name))
        interfaces_ready = interfaces_ready and ok
        conditions.append(
            cond(
                interface_condition(iface.name),
                ok,
                "Answering" if ok else "NotAnswering",
                f"{iface.name} answers on port {iface.port}"
                if ok
                else f"{iface.name} does not answer yet on port {iface.port}",
            )
        )
        if iface.name in HTTP_INTERFACES:
            path = http_path(spec.type, owner, resolved.interfaces, iface)
            url = f"https://{settings.host}{path}{iface.path.lstrip('/')}"
        else:
            service = observed.services.get(f"{owner.name}-ssh", {})
            port = next(
                (
                    p.get("nodePort") or p.get("port")
                    for p in service.get("spec", {}).get("ports", [])
                    if p.get("name") == iface.name
                ),
                iface.port,
            )
            url = f"ssh -p {port} {owner.user or 'user'}@{ssh_host}"
        endpoints.append(Endpoint(name=iface.name, url=url, ready=ok))

    all_ready = (
        phase == "Running"
        and len(ready_pods) >= spec.replicas
        and interfaces_ready
        and (drive is None or drive.granted)
    )
    if all_ready:
        ready_text = f"{len(ready_pods)}/{spec.replicas} replicas ready"
        if endpoints:
            ready_text += ", every interface answers"
        conditions.append(cond("Ready", True, "Ready", ready_text))
    elif phase in TERMINAL or phase == "Terminating":
        conditions.append(cond("Ready", False, phase, message or f"the session is {phase}"))
    else:
        waiting = [e.name for e in endpoints if not e.ready]
        text = f"{len(ready_pods)}/{spec.replicas} replicas ready"
        if waiting:
            text += f"; waiting for {', '.join(waiting)}"
        conditions.append(cond("Ready", False, "NotReady", text))

    http_urls = [e.url for e in endpoints if e.name in HTTP_INTERFACES]
    connect = http_urls[0] if http_urls else (endpoints[0].url if endpoints else None)
    status = SessionStatus(
        phase=phase,
        conditions=conditions,
        observed_generation=observed.generation,
        connect_url=connect,
        endpoints=endpoints or None,
        replicas=len(live),
        ready_replicas=len(ready_pods),
        start_time=start,
        expiry_time=expiry,
        last_activity_time=last_activity,
        last_activity_source=last_source,
        timeout_mode=cast(TimeoutMode, resolved.timeout_mode),
        requested=Requested(cpu=resolved.cpu, memory=resolved.memory, gpu=resolved.gpu),
        usage=usage,
        drive=drive.name if drive else None,
        reason=reason,
        message=message,
        selector=selector(owner),
        renewal=renewal,
    )
    wake_at = None
    if phase not in TERMINAL and phase != "Terminating":
        deadlines = [
            expiry,
            warn_at if warn_at is not None and warn_at > now else None,
            _pull_deadline(live, grace=settings.image_pull_grace),
        ]
        wake_at = min((d for d in deadlines if d is not None), default=None)
    return Outcome(status=status, wake_at=wake_at)


def _flipped_true(prev: SessionStatus, new: SessionStatus, kind: str) -> Condition | None:
    old = next((c for c in prev.conditions or [] if c.type == kind), None)
    cur = next((c for c in new.conditions or [] if c.type == kind), None)
    if cur is not None and cur.status == "True" and (old is None or old.status != "True"):
        return cur
    return None


def transitions(prev: SessionStatus, new: SessionStatus) -> list[Event]:
    """The Events that going from `prev` to `new` deserves."""
    events = []
    scheduled = _flipped_true(prev, new, "Scheduled")
    if scheduled:
        events.append(Event("Normal", "Scheduled", scheduled.message))
    ready = _flipped_true(prev, new, "Ready")
    if ready:
        events.append(Event("Normal", "Ready", ready.message))
    soon = _flipped_true(prev, new, "ExpiringSoon")
    if soon:
        events.append(Event("Warning", "ExpiringSoon", soon.message))
    if new.phase != prev.phase and new.phase in TERMINAL:
        kind = "Warning" if new.phase == "Failed" else "Normal"
        # Expired says why (IdleTimeout, Timeout); the other phases are their own reason.
        why = (new.reason if new.phase == "Expired" else None) or new.phase or ""
        events.append(Event(kind, why, new.message or new.phase or ""))
    return events
