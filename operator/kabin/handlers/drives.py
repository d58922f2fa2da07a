"""The Drive reconciler: its PVC, and its lock.

The lock lives in the API server: `Drive.status.holder`, written with a
resourceVersion precondition, so two workers or two operator replicas can never
both grant it (the second write fails with 409 Conflict and re-reads). Only this
reconciler grants and releases; sessions read the holder and wait for it. A session
that comes back (a resume) to the drive it still holds writes to the Drive over the
version it read, before its pods are made (`sessions._keep_drive`): with this
reconciler's precondition, a decision to pass the drive on and that resume cannot both
be written.

The Drive, its PVC, its claimants and the pods mounting it are read from the
operator's cache (`cache`). Before the drive passes from one session to another, the
pods that mount it and its holder's Session are read fresh from the API server: a pod
the cache has not seen yet must not be left writing while the next holder mounts the
drive, nor a holder that has just been resumed lose it.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from kabin import k8s
from kabin.api import names
from kabin.api.drive import DriveSpec, DriveStatus, Hold
from kabin.api.names import DRIVE_LABEL, Reason
from kabin.handlers import metrics, runtime
from kabin.handlers.cache import Cache
from kabin.k8s import errors, objects
from kabin.k8s.informer import DELETED, Body
from kabin.logic import drives, locks

log = logging.getLogger("kabin.drives")


def drive_changed(state: runtime.Runtime, event: str, body: Body) -> None:
    """A Drive was created, changed, deleted or listed: queue its reconcile."""
    key = (body["metadata"]["namespace"], body["metadata"]["name"])
    if event == DELETED:
        state.drives.forget(key)
        return
    state.drives.now(key)


def pvc_changed(state: runtime.Runtime, event: str, body: Body) -> None:
    """A Drive's PVC was bound, resized or lost."""
    drive = (body["metadata"].get("labels") or {}).get(DRIVE_LABEL)
    if drive:
        state.drives.now((body["metadata"]["namespace"], drive))


async def reconcile(state: runtime.Runtime, namespace: str, name: str) -> None:
    """Make one Drive's PVC match its spec, and decide who holds it."""
    api, cache = await k8s.shared(), state.cache
    raw = cache.drive(namespace, name)
    if raw is None:
        metrics.observe_waiters((namespace, name), 0)
        return
    if await _ensure_finalizer(api, raw):
        return  # gone; or the finalizer's event brings us back with the new version
    meta = raw["metadata"]
    spec = DriveSpec.model_validate(raw["spec"])
    previous = DriveStatus.model_validate(raw.get("status") or {})
    deleting = bool(meta.get("deletionTimestamp"))
    pvc, failure = await _pvc(api, cache, raw, spec, previous)
    holder = previous.holder
    now = datetime.now(UTC)
    pods = cache.drive_pods(namespace, name)
    claimants, decision = _decide(
        pods, cache.claimants(namespace, name), name, holder, deleting, now, spec.owner
    )
    if holder is not None and decision.holder != holder:
        # Before it passes on: its pods, and its holder (which may have just come back),
        # as the API server has them.
        fresh, sessions = await asyncio.gather(
            objects.list_owned(api, "Pod", namespace, f"{DRIVE_LABEL}={name}"),
            _fresh(api, cache.claimants(namespace, name), namespace, holder.session),
        )
        claimants, decision = _decide(fresh, sessions, name, holder, deleting, now, spec.owner)
    status = drives.status_of(
        name=name,
        pvc=pvc,
        decision=decision,
        previous=previous,
        deleting=deleting,
        generation=meta.get("generation"),
        now=now,
        failure=(failure.reason, failure.message) if failure else None,
    )
    new = status.model_dump(by_alias=True, exclude_none=True, mode="json")
    old = raw.get("status") or {}
    if new != old:
        # The precondition makes the grant safe against any other writer, and against
        # a cache that is behind.
        written = await objects.patch_custom(
            api,
            "drives",
            namespace,
            name,
            {"status": {**{k: None for k in old if k not in new}, **new}},
            status=True,
            resource_version=meta["resourceVersion"],
        )
        cache.wrote("Drive", namespace, name, meta["resourceVersion"], written)
    changed_hands = (holder.session if holder else None) != (
        decision.holder.session if decision.holder else None
    )
    if changed_hands:
        await _announce(api, raw, decision)
        if decision.holder is not None:
            granted = decision.holder.session
            waited = next((w.since for w in previous.waiting or [] if w.session == granted), None)
            metrics.DRIVE_WAIT.observe((now - waited).total_seconds() if waited else 0.0)
    metrics.observe_waiters((namespace, name), len(decision.waiting))
    if changed_hands or new.get("waiting") != old.get("waiting"):
        for claimant in claimants:
            state.sessions.now((namespace, claimant.name))
    if deleting and decision.holder is None:
        await _finish_deletion(api, raw, spec)
    if failure is not None:
        await _report(api, raw, previous, failure)


async def _fresh(
    api: Any, sessions: list[dict[str, Any]], namespace: str, session: str
) -> list[dict[str, Any]]:
    """The claimants, with `session` read from the API server instead of the cache (left
    out if it is gone)."""
    there = await objects.get_custom(api, "sessions", namespace, session)
    others = [s for s in sessions if s["metadata"]["name"] != session]
    return others if there is None else [*others, there]


def _decide(
    pods: list[dict[str, Any]],
    sessions: list[dict[str, Any]],
    name: str,
    holder: Hold | None,
    deleting: bool,
    now: datetime,
    owner: str | None,
) -> tuple[list[locks.Claimant], locks.Decision]:
    """Who wants the drive, whose pods can still write to it, and so who holds it now."""
    claimants, phases = drives.claimants(sessions, pods, drive=name, deleting=deleting, owner=owner)
    orphan = holder is not None and any(
        p not in locks.FINISHED for p in phases.get(holder.session, [])
    )
    decision = locks.decide(holder=holder, claimants=claimants, orphan_writing=orphan, now=now)
    return claimants, decision


async def _pvc(
    api: Any, cache: Cache, raw: dict[str, Any], spec: DriveSpec, previous: DriveStatus
) -> tuple[dict[str, Any] | None, errors.Failure | None]:
    """The Drive's PVC, made or changed as its spec says; a refusal (a storage quota,
    say) comes back as the failure for the status, with the PVC as it is."""
    meta = raw["metadata"]
    pvc = cache.pvc(meta["namespace"], drives.claim_name(meta["name"]))
    try:
        return await _sync_pvc(api, pvc, raw, spec, previous), None
    except Exception as e:
        failure = errors.classify(e)
        if failure is None or failure.retryable:
            raise
        return pvc, failure


async def _report(
    api: Any, raw: dict[str, Any], previous: DriveStatus, failure: errors.Failure
) -> None:
    """A permanent failure, now in the status: one warning and one Event when it appears,
    then retries with backoff (raising Reported)."""
    before = next((c for c in previous.conditions or [] if c.type == names.FAILED), None)
    if before is None or before.reason != failure.reason:
        where = f"{raw['metadata']['namespace']}/{raw['metadata']['name']}"
        log.warning("Drive %s: %s: %s", where, failure.reason, failure.message)
        await objects.post_event(api, raw, "Warning", failure.reason, failure.message)
    raise errors.Reported(failure)


async def _ensure_finalizer(api: Any, raw: dict[str, Any]) -> bool:
    """Add the drive-lock finalizer to a live Drive that lacks it; True if it did."""
    meta = raw["metadata"]
    finalizers = list(meta.get("finalizers") or [])
    if meta.get("deletionTimestamp") or names.DRIVE_FINALIZER in finalizers:
        return False
    await objects.patch_custom(
        api,
        "drives",
        meta["namespace"],
        meta["name"],
        {"metadata": {"finalizers": [*finalizers, names.DRIVE_FINALIZER]}},
        resource_version=meta["resourceVersion"],
    )
    return True


async def _sync_pvc(
    api: Any,
    pvc: dict[str, Any] | None,
    raw: dict[str, Any],
    spec: DriveSpec,
    previous: DriveStatus,
) -> dict[str, Any] | None:
    """Make the Drive's PVC (once), and grow or re-own it as the spec says."""
    meta = raw["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    claim = drives.claim_name(name)
    if meta.get("deletionTimestamp"):
        return pvc
    if pvc is None and previous.phase in (None, "Pending"):
        made = drives.build_pvc(name=name, namespace=namespace, uid=meta["uid"], spec=spec)
        return await objects.create_pvc(api, made) or made  # made already: its watch comes
    if pvc is not None:
        patch = drives.pvc_changes(pvc, name=name, uid=meta["uid"], spec=spec)
        if patch:
            await objects.patch_pvc(api, namespace, claim, patch)
    return pvc


async def _announce(api: Any, raw: dict[str, Any], decision: locks.Decision) -> None:
    """Events for a drive changing hands."""
    if decision.released:
        message = f'session "{decision.released}" released the drive'
        await objects.post_event(api, raw, "Normal", Reason.RELEASED, message)
    if decision.holder:
        message = f'granted to session "{decision.holder.session}"'
        await objects.post_event(api, raw, "Normal", Reason.GRANTED, message)


async def _finish_deletion(api: Any, raw: dict[str, Any], spec: DriveSpec) -> None:
    """A deleted Drive nobody holds: delete its data if its policy says so, then let it
    go (remove the finalizer)."""
    meta = raw["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    if spec.reclaim_policy == "Delete":
        await objects.delete_pvc(api, namespace, drives.claim_name(name))
    finalizers = [f for f in meta.get("finalizers") or [] if f != names.DRIVE_FINALIZER]
    await objects.patch_custom(
        api, "drives", namespace, name, {"metadata": {"finalizers": finalizers}}
    )
