"""Where a queued session stands in Kueue: waiting in line (its pods carry Kueue's
scheduling gate), admitted (the gate is gone), or preempted (Kueue marked its pods
TerminationTarget before deleting them); and what people read of it: "3rd in line for
1 CPU, 2Gi memory in queue team-a". Pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kabin.api import names
from kabin.api.meta import parse_time
from kabin.api.names import Reason
from kabin.api.session import SessionStatus
from kabin.logic.resolve import Resolved
from kabin.logic.status.pods import Pods, conditions_of

EVICTED_REASON = "WorkloadEvicted"


@dataclass(frozen=True)
class Place:
    """A session's place in line, 1-based, as Kueue's visibility API last said: in its
    LocalQueue and in the ClusterQueue behind it; or why it cannot say."""

    local: int | None = None
    cluster: int | None = None
    cluster_queue: str | None = None
    problem: str | None = None


@dataclass(frozen=True)
class Standing:
    """The Queued condition and the queue times of a queued session."""

    queued: bool | None  # None: Unknown (its pods are not there yet)
    reason: str
    message: str
    queued_at: datetime | None
    admitted_at: datetime | None
    place: int | None = None  # while waiting: its place in its LocalQueue, 1-based


def gated(pod: dict[str, Any]) -> bool:
    """Whether Kueue holds the pod back (its scheduling gate is still on)."""
    gates = (pod.get("spec") or {}).get("schedulingGates") or []
    return any(g.get("name") == names.KUEUE_GATE for g in gates)


def eviction(pod: dict[str, Any]) -> str | None:
    """Kueue's message if it preempted (evicted) this pod, else None."""
    mark = conditions_of(pod).get(names.KUEUE_EVICTED) or {}
    # WorkloadEvicted, or WorkloadEvictedDueTo<why> (Preempted, PodsReadyTimeout...).
    if mark.get("status") == "True" and str(mark.get("reason")).startswith(EVICTED_REASON):
        return str(mark.get("message") or "evicted by Kueue")
    return None


def evicted(pods: list[dict[str, Any]]) -> tuple[str, str] | None:
    """(what was preempted, Kueue's message) of a pod Kueue preempted, if any: its pod
    group, which Kueue preempts whole (one preemption, however many pods), else the
    pod's UID."""
    for pod in pods:
        why = eviction(pod)
        if why is not None:
            group = (pod["metadata"].get("labels") or {}).get(names.POD_GROUP_LABEL)
            return str(group or pod["metadata"]["uid"]), why
    return None


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th ... 11th, 12th, 13th, 21st."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def asks(resolved: Resolved, replicas: int) -> str:
    """What the session waits for, in words: "2 GPUs", "1 CPU, 2Gi memory", x replicas."""
    parts = []
    if resolved.gpu:
        parts.append(f"{resolved.gpu} GPU{'s' if resolved.gpu != 1 else ''}")
    if resolved.cpu is not None:
        parts.append(f"{resolved.cpu} CPU")
    if resolved.memory is not None:
        parts.append(f"{resolved.memory} memory")
    what = ", ".join(parts) or "room"
    return f"{replicas} pods of {what}" if replicas > 1 else what


def waiting(queue: str, place: Place | None, resolved: Resolved, replicas: int) -> str:
    """The message of a session waiting in line."""
    what = asks(resolved, replicas)
    if place is None or place.local is None:
        problem = f" ({place.problem})" if place is not None and place.problem else ""
        return f"waiting in queue {queue} for {what}{problem}"
    text = f"{ordinal(place.local)} in line for {what} in queue {queue}"
    if place.cluster is not None and place.cluster_queue:
        text += f" ({ordinal(place.cluster)} in ClusterQueue {place.cluster_queue})"
    return text


def _first_created(pods: list[dict[str, Any]], now: datetime) -> datetime:
    """When the first of these pods was made (and entered its queue)."""
    made = [
        parse_time(p["metadata"]["creationTimestamp"])
        for p in pods
        if p["metadata"].get("creationTimestamp")
    ]
    return min(made, default=now)


def standing(
    *,
    resolved: Resolved,
    replicas: int,
    pods: Pods,
    phase: str,
    place: Place | None,
    previous: SessionStatus,
    now: datetime,
) -> Standing | None:
    """The session's Queued condition and queue times; None when it has no queue (or never
    had a Queued condition and is not running)."""
    queue = resolved.queue
    had = any(c.type == names.QUEUED for c in previous.conditions or [])
    if queue is None:
        return None
    before_q, before_a = previous.queued_at, previous.admitted_at
    if phase in names.STOPPED_PHASES or phase == "Terminating":
        if not had:
            return None
        return Standing(False, phase, f"the session is {phase}", before_q, before_a)
    live = pods.live
    if not live:
        return Standing(None, Reason.PENDING, f"its pods are not in queue {queue} yet", None, None)
    if any(gated(p) for p in live):
        since = before_q if before_q is not None and before_a is None else _first_created(live, now)
        text = waiting(queue, place, resolved, replicas)
        return Standing(True, Reason.QUEUED, text, since, None, place.local if place else None)
    labels = [p["metadata"].get("labels") or {} for p in live]
    if not any(x.get(names.KUEUE_MANAGED_LABEL) == "true" for x in labels):
        text = f"Kueue does not manage its pods: no queue {queue} admits them (is Kueue running?)"
        return Standing(False, "NotManaged", text, before_q, before_a)
    admitted_by = [x[names.CLUSTER_QUEUE_LABEL] for x in labels if names.CLUSTER_QUEUE_LABEL in x]
    cluster = next(iter(admitted_by), None)
    text = f"admitted by queue {queue}" + (f" (ClusterQueue {cluster})" if cluster else "")
    admitted = before_a or now
    queued = before_q if before_q and before_q <= admitted else _first_created(live, now)
    return Standing(False, Reason.ADMITTED, text, queued, admitted)
