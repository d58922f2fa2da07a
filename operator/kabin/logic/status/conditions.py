"""A session's conditions: Scheduled (with the scheduler's own message), ExpiringSoon,
DriveReady, one per interface, and Ready, the summary. `lastTransitionTime` moves only
when a condition's status flips. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from kabin.api import names
from kabin.api.meta import Condition
from kabin.api.names import STOPPED_PHASES, Reason
from kabin.api.session import Endpoint, SessionStatus
from kabin.logic.status.model import DriveView
from kabin.logic.status.pods import Pods


@dataclass(frozen=True)
class Conditions:
    """Makes conditions that keep their transition time while their status stays."""

    previous: SessionStatus
    now: datetime
    generation: int

    def make(self, kind: str, ok: bool | None, reason: str, message: str) -> Condition:
        status = "Unknown" if ok is None else ("True" if ok else "False")
        before = next((c for c in self.previous.conditions or [] if c.type == kind), None)
        since = before.last_transition_time if before and before.status == status else self.now
        return Condition(
            type=kind,
            status=status,
            reason=reason,
            message=message,
            last_transition_time=since,
            observed_generation=self.generation,
        )

    def scheduled(self, pods: Pods, *, phase: str, replicas: int) -> Condition:
        """Scheduled: every pod placed, or why not (the scheduler's words)."""
        refused = pods.unscheduled()
        placed = f"{pods.placed}/{replicas} pods placed"
        if phase in STOPPED_PHASES and not pods.live:
            return self.make(names.SCHEDULED, False, phase, f"the session is {phase}")
        if refused is not None:
            reason = refused.get("reason") or Reason.UNSCHEDULABLE
            message = refused.get("message") or "the scheduler cannot place a pod"
            return self.make(names.SCHEDULED, False, reason, message)
        if pods.placed >= replicas:
            return self.make(names.SCHEDULED, True, Reason.SCHEDULED, placed)
        return self.make(names.SCHEDULED, False, Reason.PENDING, placed)

    def expiring_soon(self, *, expiry: datetime, warn_at: datetime, timeout_mode: str) -> Condition:
        """ExpiringSoon: True from `warn_at` until the expiry moves away again."""
        soon = self.now >= warn_at
        unless = " unless active" if timeout_mode == "idle" else " unless renewed"
        return self.make(
            names.EXPIRING_SOON,
            soon,
            Reason.EXPIRING_SOON if soon else Reason.NOT_EXPIRING_SOON,
            f"expires at {expiry:%Y-%m-%dT%H:%M:%SZ}{unless}",
        )

    def drive(self, drive: DriveView, *, phase: str | None = None) -> Condition:
        """DriveReady: the session holds its drive, or why it waits (or, suspended, that
        it gave it up)."""
        if phase == "Suspended" and not drive.granted:
            text = f'released Drive "{drive.name}" while suspended'
            return self.make(names.DRIVE_READY, False, names.SUSPENDED, text)
        if drive.granted:
            return self.make(names.DRIVE_READY, True, Reason.GRANTED, f'holds Drive "{drive.name}"')
        return self.make(names.DRIVE_READY, False, drive.reason, drive.message)

    def suspended(self, reason: str | None, message: str | None) -> Condition:
        """Suspended: True with why (User, IdleTimeout, Schedule, Preempted) while it is;
        False once resumed."""
        if reason is None:
            return self.make(names.SUSPENDED, False, Reason.RESUMED, "resumed")
        return self.make(names.SUSPENDED, True, reason, message or "suspended")

    def deleting_soon(self, *, at: datetime, warn_at: datetime) -> Condition:
        """DeletingSoon: True from `warn_at` until the session left suspended is deleted
        at `at` (its environment's deleteSuspendedAfter), unless it is resumed."""
        soon = self.now >= warn_at
        return self.make(
            names.DELETING_SOON,
            soon,
            Reason.DELETING_SOON if soon else Reason.NOT_DELETING_SOON,
            f"deleted at {at:%Y-%m-%dT%H:%M:%SZ} unless resumed (its drive stays)",
        )

    def failed(self, reason: str, message: str) -> Condition:
        """Failed: a permanent failure making the session's children (a quota, RBAC, an
        invalid pod override, a missing environment), with the API server's message."""
        return self.make(names.FAILED, True, reason, message)

    def interface(self, endpoint: Endpoint, port: int) -> Condition:
        """<Interface>Ready: whether the interface answers."""
        ok, name = endpoint.ready, endpoint.name
        return self.make(
            names.interface_condition(name),
            ok,
            Reason.ANSWERING if ok else Reason.NOT_ANSWERING,
            f"{name} answers on port {port}"
            if ok
            else f"{name} does not answer yet on port {port}",
        )

    def ready(
        self,
        *,
        phase: str,
        message: str | None,
        ready_pods: int,
        replicas: int,
        endpoints: list[Endpoint],
        drive: DriveView | None,
    ) -> Condition:
        """Ready, the summary: every replica ready, every interface answering, the drive
        held."""
        counted = f"{ready_pods}/{replicas} replicas ready"
        waiting = [e.name for e in endpoints if not e.ready]
        if (
            phase == "Running"
            and ready_pods >= replicas
            and not waiting
            and (drive is None or drive.granted)
        ):
            text = counted + (", every interface answers" if endpoints else "")
            return self.make(names.READY, True, Reason.READY, text)
        if phase in STOPPED_PHASES or phase == "Terminating":
            return self.make(names.READY, False, phase, message or f"the session is {phase}")
        text = counted + (f"; waiting for {', '.join(waiting)}" if waiting else "")
        return self.make(names.READY, False, Reason.NOT_READY, text)
