"""The Drive reconciler: its PVC, and its lock.

The lock lives in the API server: `Drive.status.holder`, written with a
resourceVersion precondition, so two workers or two operator replicas can never
both grant it (the second write fails with 409 Conflict and re-reads). Only this
reconciler grants and releases; sessions read the holder and wait for it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import kopf

from kabin import k8s
from kabin import settings as settings_module
from kabin.api import names
from kabin.api.drive import DriveSpec, DriveStatus
from kabin.api.meta import GROUP, Condition
from kabin.api.names import DRIVE_LABEL, SESSION_LABEL
from kabin.api.session import SessionSpec
from kabin.handlers.wakeups import Wakeups
from kabin.k8s import objects
from kabin.logic import drives, locks
from kabin.settings import reconciles

queue: Wakeups | None = None
sessions_queue: Wakeups | None = None  # set by the sessions module, to wake waiters


@kopf.on.startup()
async def start(**_: Any) -> None:
    """Start the drives' work queue."""
    global queue
    settings = settings_module.load()
    queue = Wakeups(
        reconcile,
        resync=settings.resync_interval,
        retry=settings.error_backoffs[0],
        what="drive",
        workers=settings.reconcile_workers,
    )
    queue.start()


@kopf.on.cleanup()
async def stop(**_: Any) -> None:
    """Stop the drives' work queue."""
    if queue is not None:
        await queue.stop()


@kopf.on.event(GROUP, "drives", when=lambda namespace, **_: reconciles(namespace))
async def drive_changed(*, type: str, name: str, namespace: str | None, **_: Any) -> None:
    """A Drive was created, changed or seen at start-up: queue a reconcile."""
    if namespace is None or queue is None:
        return
    if type == "DELETED":
        queue.forget((namespace, name))
        return
    queue.now((namespace, name))


@kopf.on.event(
    "persistentvolumeclaims",
    labels={DRIVE_LABEL: kopf.PRESENT},
    when=lambda namespace, **_: reconciles(namespace),
)
async def pvc_changed(*, labels: kopf.Labels, namespace: str | None, **_: Any) -> None:
    """A Drive's PVC was bound, resized or lost."""
    if namespace and queue is not None:
        queue.now((namespace, labels[DRIVE_LABEL]))


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def reconcile(namespace: str, name: str) -> None:
    """Make one Drive's PVC match its spec, and decide who holds it."""
    api = await k8s.shared()
    raw = await objects.get_custom(api, "drives", namespace, name)
    if raw is None:
        return
    meta = raw["metadata"]
    spec = DriveSpec.model_validate(raw["spec"])
    previous = DriveStatus.model_validate(raw.get("status") or {})
    deleting = bool(meta.get("deletionTimestamp"))
    finalizers = list(meta.get("finalizers") or [])
    if not deleting and names.DRIVE_FINALIZER not in finalizers:
        await objects.patch_custom(
            api,
            "drives",
            namespace,
            name,
            {"metadata": {"finalizers": [*finalizers, names.DRIVE_FINALIZER]}},
            resource_version=meta["resourceVersion"],
        )
        return  # the patch's event brings us back, with the new resourceVersion

    claim = drives.claim_name(name)
    pvc = await objects.get_pvc(api, namespace, claim)
    if pvc is None and not deleting and previous.phase in (None, "Pending"):
        await objects.create_pvc(
            api, drives.build_pvc(name=name, namespace=namespace, uid=meta["uid"], spec=spec)
        )
        pvc = await objects.get_pvc(api, namespace, claim)
    elif pvc is not None and not deleting:
        patch = drives.pvc_changes(pvc, name=name, uid=meta["uid"], spec=spec)
        if patch:
            await objects.patch_pvc(api, namespace, claim, patch)

    # Who wants the drive, and whose pods can still write to it.
    sessions = await objects.list_custom(api, "sessions", namespace)
    pods = await objects.list_owned(api, "Pod", namespace, f"{DRIVE_LABEL}={name}")
    phases: dict[str, list[str]] = {}
    for pod in pods:
        phases.setdefault(pod["metadata"]["labels"][SESSION_LABEL], []).append(
            pod.get("status", {}).get("phase") or "Pending"
        )
    claimants = []
    for session in sessions:
        try:
            session_spec = SessionSpec.model_validate(session["spec"])
        except ValueError:
            continue
        if drives.drive_of(session_spec) != name:
            continue
        session_name = session["metadata"]["name"]
        wants = not session["metadata"].get("deletionTimestamp") and (
            session.get("status", {}).get("phase") not in locks.DONE_PHASES
        )
        claimants.append(
            locks.Claimant(
                name=session_name,
                created=_time(session["metadata"]["creationTimestamp"]),
                wants=bool(wants) and not deleting,
                pod_phases=tuple(phases.get(session_name, [])),
            )
        )
    holder = previous.holder
    orphan = holder is not None and any(
        p not in locks.FINISHED for p in phases.get(holder.session, [])
    )
    decision = locks.decide(
        holder=holder, claimants=claimants, orphan_writing=orphan, now=datetime.now(UTC)
    )

    conditions = None
    if deleting and decision.holder is not None:
        conditions = [
            Condition(
                type="DeletionBlocked",
                status="True",
                reason="DriveInUse",
                message=f'deletion waits for session "{decision.holder.session}" '
                "to release the drive",
                last_transition_time=datetime.now(UTC),
                observed_generation=meta.get("generation"),
            )
        ]
        before = next((c for c in previous.conditions or [] if c.type == "DeletionBlocked"), None)
        if before is not None and before.message == conditions[0].message:
            conditions = [before]
    status = DriveStatus(
        phase=drives.phase(pvc=pvc, holder=decision.holder, was=previous.phase),
        claim_name=claim,
        capacity=(pvc or {}).get("status", {}).get("capacity", {}).get("storage"),
        holder=decision.holder,
        waiting=decision.waiting or None,
        conditions=conditions,
        observed_generation=meta.get("generation"),
    )
    new = status.model_dump(by_alias=True, exclude_none=True, mode="json")
    old = raw.get("status") or {}
    if new != old:
        # The precondition makes the grant safe against any other writer.
        await objects.patch_custom(
            api,
            "drives",
            namespace,
            name,
            {"status": {**{k: None for k in old if k not in new}, **new}},
            status=True,
            resource_version=meta["resourceVersion"],
        )
    changed_hands = (holder.session if holder else None) != (
        decision.holder.session if decision.holder else None
    )
    if changed_hands:
        if decision.released:
            await objects.post_event(
                api,
                raw,
                "Normal",
                "Released",
                f'session "{decision.released}" released the drive',
            )
        if decision.holder:
            await objects.post_event(
                api,
                raw,
                "Normal",
                "Granted",
                f'granted to session "{decision.holder.session}"',
            )
    if sessions_queue is not None and (changed_hands or new.get("waiting") != old.get("waiting")):
        for claimant in claimants:
            sessions_queue.now((namespace, claimant.name))

    if deleting and decision.holder is None:
        if spec.reclaim_policy == "Delete":
            await objects.delete_pvc(api, namespace, claim)
        await objects.patch_custom(
            api,
            "drives",
            namespace,
            name,
            {"metadata": {"finalizers": [f for f in finalizers if f != names.DRIVE_FINALIZER]}},
        )
