"""A session's phase, with the reason and message when it ended: Terminating while
deleted, Suspended while spec.suspend says so (a timeout whose action is Suspend asks for
spec.suspend instead of expiring), Succeeded or Failed when a headless run is over,
Failed when a pod can never come up, Expired at its deadline, else Running once every
replica runs. Terminal phases stay, but for a resume of an Expired session. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import cast

from kabin.api.names import DONE_PHASES, FINAL_PHASES, Reason
from kabin.api.session import Phase
from kabin.logic.status.model import Observed, StatusSettings
from kabin.logic.status.pods import Pods, finished, unrecoverable
from kabin.logic.status.queue import evicted, eviction
from kabin.logic.status.timeouts import Clock


@dataclass(frozen=True)
class Verdict:
    phase: Phase
    reason: str | None = None
    message: str | None = None
    suspend: str | None = None  # set spec.suspend, for this reason (a timeout ran out)
    preempted: str | None = None  # the pod (UID) or pod group Kueue preempted, to record


def suspended_message(reason: str, resolved_timeout: int) -> str:
    """What a Suspended session says of why."""
    return {
        Reason.USER: "suspended by its user",
        Reason.IDLE_TIMEOUT: f"suspended after {resolved_timeout} seconds idle",
        Reason.TIMEOUT: f"suspended when its timeout of {resolved_timeout} seconds ran out",
        Reason.SCHEDULE: "suspended by its schedule",
        Reason.PREEMPTED: "suspended by Kueue to make room for another session",
    }.get(reason, f"suspended ({reason})")


def _idle_message(timeout: int, clock: Clock) -> str:
    last, source = clock.last_activity, clock.last_source
    return f"idle for {timeout} seconds" + (
        f" (last activity: {source} at {last:%Y-%m-%dT%H:%M:%SZ})"
        if last is not None and source
        else " (no activity seen since the start)"
    )


def verdict(
    observed: Observed, pods: Pods, clock: Clock, *, now: datetime, settings: StatusSettings
) -> Verdict:
    """Where the session stands now."""
    prev, spec, resolved = observed.previous, observed.spec, observed.resolved
    if observed.deleting:
        return Verdict("Terminating", prev.reason, prev.message)
    if spec.suspend and prev.phase not in FINAL_PHASES:
        if prev.phase == "Suspended" and prev.reason:
            return Verdict("Suspended", prev.reason, prev.message)
        why = observed.suspend_reason or Reason.USER
        return Verdict("Suspended", why, suspended_message(why, resolved.timeout))
    if (prev.phase or "Pending") in DONE_PHASES:
        return Verdict(cast(Phase, prev.phase), prev.reason, prev.message)
    headless = spec.type == "headless"
    hit = (evicted(pods.wanted) or observed.evicted) if resolved.queue else None
    if hit is not None and hit[0] != observed.preempted:
        # Kueue took its place for another (Kueue deletes the pods, never makes them again):
        # an interactive session is suspended, to resume by hand; a headless one is failed
        # or made again in line, as the operator is set.
        what, why = hit
        if not headless:
            return Verdict("Pending", suspend=Reason.PREEMPTED, preempted=what)
        if settings.preempted_headless == "Fail":
            text = f"preempted by Kueue: {why}"
            return Verdict("Failed", Reason.PREEMPTED, text, preempted=what)
        return Verdict("Pending", Reason.REQUEUED, f"requeued: {why}", preempted=what)
    # A pod Kueue preempted ends (Failed, exit 143, on a real node) as it goes: that is
    # not how the run ended.
    kept = [p for p in pods.wanted if eviction(p) is None]
    done = finished(kept, spec.replicas) if headless else None
    if done:
        return Verdict(cast(Phase, done[0]), done[1], done[2])
    broken = unrecoverable(pods.live, headless=headless, now=now, grace=settings.image_pull_grace)
    if broken:
        return Verdict("Failed", *broken)
    expired = clock.expiry is not None and now >= clock.expiry
    if expired and resolved.timeout_action == "Suspend":
        why = Reason.IDLE_TIMEOUT if resolved.timeout_mode == "idle" else Reason.TIMEOUT
        running = len(pods.running) + len(pods.succeeded) >= spec.replicas
        return Verdict("Running" if running else "Pending", suspend=why)
    if expired and resolved.timeout_mode == "idle":
        return Verdict("Expired", Reason.IDLE_TIMEOUT, _idle_message(resolved.timeout, clock))
    if expired:
        text = f"the absolute timeout of {resolved.timeout} seconds ran out"
        return Verdict("Expired", Reason.TIMEOUT, text)
    if len(pods.running) + len(pods.succeeded) >= spec.replicas:
        return Verdict("Running")
    return Verdict("Pending")
