"""What a session's pods say: which are live, running, ready or finished, and which
can never come up (an image that cannot be pulled, a crash loop). Pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from kabin.api import names
from kabin.api.meta import parse_time
from kabin.api.names import Reason
from kabin.logic.resolve import replica_of

PULL_ERRORS = frozenset({"ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull"})
NEVER_PULLS = frozenset({"InvalidImageName"})


def conditions_of(pod: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in pod.get("status", {}).get("conditions") or []}


def true(pod: dict[str, Any], kind: str) -> bool:
    """Whether a pod's condition (or readiness gate) `kind` is True."""
    return conditions_of(pod).get(kind, {}).get("status") == "True"


def _phase(pod: dict[str, Any]) -> str | None:
    phase: str | None = pod.get("status", {}).get("phase")
    return phase


@dataclass(frozen=True)
class Pods:
    """A session's pods, sorted by what they are doing."""

    wanted: list[dict[str, Any]]  # replicas 1..N (scaled-down extras left out)
    live: list[dict[str, Any]]  # not being deleted
    running: list[dict[str, Any]]
    ready: list[dict[str, Any]]
    succeeded: list[dict[str, Any]]
    head: dict[str, Any] | None  # replica 1, which serves the interfaces
    placed: int  # bound to a node

    @classmethod
    def of(cls, pods: list[dict[str, Any]], replicas: int) -> Pods:
        wanted = [p for p in pods if replica_of(p) <= replicas]
        live = [p for p in wanted if not p["metadata"].get("deletionTimestamp")]
        running = [p for p in live if _phase(p) == "Running"]
        return cls(
            wanted=wanted,
            live=live,
            running=running,
            ready=[p for p in running if true(p, names.POD_READY)],
            succeeded=[p for p in live if _phase(p) == "Succeeded"],
            head=next((p for p in live if replica_of(p) == 1), None),
            placed=len([p for p in live if p.get("spec", {}).get("nodeName")]),
        )

    def unscheduled(self) -> dict[str, Any] | None:
        """The scheduler's PodScheduled=False condition of the first pod it cannot place."""
        refused = [
            conditions_of(p)[names.POD_SCHEDULED]
            for p in self.live
            if conditions_of(p).get(names.POD_SCHEDULED, {}).get("status") == "False"
        ]
        return refused[0] if refused else None


def _created(pod: dict[str, Any]) -> datetime | None:
    text = pod["metadata"].get("creationTimestamp")
    return parse_time(text) if text else None


def unrecoverable(
    pods: list[dict[str, Any]], *, headless: bool, now: datetime, grace: float
) -> tuple[str, str] | None:
    """(reason, message) when a pod can never come up, else None."""
    for pod in sorted(pods, key=replica_of):
        created = _created(pod) or now
        for cs in pod.get("status", {}).get("containerStatuses") or []:
            waiting = (cs.get("state") or {}).get("waiting") or {}
            reason = waiting.get("reason", "")
            where = (
                f"replica {replica_of(pod)} (pod {pod['metadata']['name']}), container {cs['name']}"
            )
            detail = waiting.get("message") or reason
            if reason in NEVER_PULLS or (
                reason in PULL_ERRORS and (now - created).total_seconds() >= grace
            ):
                return reason, f"{where}: image {cs.get('image')} cannot be pulled: {detail}"
            if reason == Reason.CRASH_LOOP and not headless:
                last = ((cs.get("lastState") or {}).get("terminated") or {}).get("exitCode")
                return reason, f"{where} keeps crashing (last exit code {last}): {detail}"
    return None


def pull_deadline(pods: list[dict[str, Any]], *, grace: float) -> datetime | None:
    """When the earliest pod still failing to pull its image runs out of grace."""
    deadlines = [
        created + timedelta(seconds=grace)
        for pod in pods
        if (created := _created(pod))
        for cs in pod.get("status", {}).get("containerStatuses") or []
        if ((cs.get("state") or {}).get("waiting") or {}).get("reason") in PULL_ERRORS
    ]
    return min(deadlines, default=None)


def finished(pods: list[dict[str, Any]], replicas: int) -> tuple[str, str, str] | None:
    """(phase, reason, message) when a headless run is over."""
    failed = [p for p in pods if _phase(p) == "Failed"]
    if failed:
        pod = min(failed, key=replica_of)
        codes = [
            ((cs.get("state") or {}).get("terminated") or {}).get("exitCode")
            for cs in pod["status"].get("containerStatuses") or []
        ]
        code = next((c for c in codes if c not in (None, 0)), None)
        return (
            "Failed",
            Reason.REPLICA_FAILED,
            f"replica {replica_of(pod)} of {replicas} (pod {pod['metadata']['name']}) failed "
            f"with exit code {code}",
        )
    done = [p for p in pods if _phase(p) == "Succeeded"]
    if len(done) >= replicas:
        return "Succeeded", Reason.COMPLETED, f"all {replicas} replicas succeeded"
    return None
