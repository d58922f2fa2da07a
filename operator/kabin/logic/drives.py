"""Drives as pure rules: which drive a session uses (its own or its user's default
drive), a Drive's PVC and its status, built from its spec and what is observed."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from kabin.api.drive import DrivePhase, DriveSpec, DriveStatus, Hold
from kabin.api.meta import API_VERSION, Condition, parse_quantity, parse_time
from kabin.api.names import (
    DELETION_BLOCKED,
    DISPLAY_NAME_ANNOTATION,
    DONE_PHASES,
    DRIVE_LABEL,
    FAILED,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    RENEW_ANNOTATION,
    SESSION_LABEL,
    Reason,
)
from kabin.api.session import SessionSpec
from kabin.logic import locks
from kabin.logic.admission import check_default_drive
from kabin.logic.locks import Decision
from kabin.logic.status.model import DriveView
from kabin.logic.status.timeouts import renews


def drive_of(spec: SessionSpec) -> str | None:
    """The drive a session uses: the one it names, else (but for headless runs) its
    user's default drive."""
    if spec.drive:
        return spec.drive
    if spec.type == "headless" or not spec.user:
        return None
    return default_drive_name(spec.user)


def default_drive_name(user: str) -> str:
    """The name of a user's default drive: the user name made DNS-safe.

    `alice` -> `alice-home`; `system:serviceaccount:ns:x` -> `system-serviceaccount-ns-x-home`;
    `Alice.Smith@Example.org` -> `alice.smith-example.org-home`.
    """
    slug = re.sub(r"[^a-z0-9.-]+", "-", user.lower()).strip("-.")
    slug = re.sub(r"-{2,}", "-", slug)[:240].strip("-.") or "user"
    return f"{slug}-home"


def claim_name(drive: str) -> str:
    """The PVC of a Drive."""
    return f"drive-{drive}"


def build_pvc(*, name: str, namespace: str, uid: str, spec: DriveSpec) -> dict[str, Any]:
    """The PVC of a Drive. Only a Delete drive owns its PVC (so the garbage collector
    removes it with the Drive); a Retain drive's PVC outlives it, with the data."""
    metadata: dict[str, Any] = {
        "name": claim_name(name),
        "namespace": namespace,
        "labels": {MANAGED_BY_LABEL: MANAGED_BY, DRIVE_LABEL: name},
    }
    if spec.reclaim_policy == "Delete":
        metadata["ownerReferences"] = [owner_reference(name, uid)]
    pvc_spec: dict[str, Any] = {
        "accessModes": [spec.access_mode],
        "resources": {"requests": {"storage": spec.size}},
    }
    if spec.storage_class_name:
        pvc_spec["storageClassName"] = spec.storage_class_name
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": metadata,
        "spec": pvc_spec,
    }


def owner_reference(name: str, uid: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Drive",
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def pvc_changes(pvc: dict[str, Any], *, name: str, uid: str, spec: DriveSpec) -> dict[str, Any]:
    """The merge patch that brings an existing PVC to the Drive's spec ({} if none):
    a larger size, and an owner reference exactly when the data goes with the Drive."""
    patch: dict[str, Any] = {}
    asked = pvc["spec"]["resources"]["requests"]["storage"]
    if parse_quantity(spec.size) > parse_quantity(asked):
        patch["spec"] = {"resources": {"requests": {"storage": spec.size}}}
    owned = bool(pvc["metadata"].get("ownerReferences"))
    if owned != (spec.reclaim_policy == "Delete"):
        refs = [owner_reference(name, uid)] if spec.reclaim_policy == "Delete" else None
        patch["metadata"] = {"ownerReferences": refs}
    return patch


def phase(*, pvc: dict[str, Any] | None, holder: Hold | None, was: str | None) -> DrivePhase:
    """Pending until the PVC is bound, Available when bound and free, InUse when held,
    Lost when the PVC of a drive that had one is gone."""
    if pvc is None:
        return "Lost" if was in ("Available", "InUse", "Lost") else "Pending"
    if pvc.get("status", {}).get("phase") != "Bound":
        return "Pending"
    return "InUse" if holder is not None else "Available"


def status_of(
    *,
    name: str,
    pvc: dict[str, Any] | None,
    decision: Decision,
    previous: DriveStatus,
    deleting: bool,
    generation: int | None,
    now: datetime,
    failure: tuple[str, str] | None = None,
) -> DriveStatus:
    """A Drive's status: phase, claim, capacity, holder, queue, DeletionBlocked while a
    session still holds a deleted drive, and Failed with the API server's message when
    its PVC is refused (a storage quota, say)."""
    conditions: list[Condition] | None = None
    if deleting and decision.holder is not None:
        message = f'deletion waits for session "{decision.holder.session}" to release the drive'
        before = next((c for c in previous.conditions or [] if c.type == DELETION_BLOCKED), None)
        conditions = [
            before
            if before is not None and before.message == message
            else Condition(
                type=DELETION_BLOCKED,
                status="True",
                reason=Reason.DRIVE_IN_USE,
                message=message,
                last_transition_time=now,
                observed_generation=generation,
            )
        ]
    if failure is not None:
        before = next((c for c in previous.conditions or [] if c.type == FAILED), None)
        kept = before is not None and before.reason == failure[0] and before.status == "True"
        failed = Condition(
            type=FAILED,
            status="True",
            reason=failure[0],
            message=failure[1],
            last_transition_time=before.last_transition_time if kept and before else now,
            observed_generation=generation,
        )
        conditions = [*(conditions or []), failed]
    return DriveStatus(
        phase=phase(pvc=pvc, holder=decision.holder, was=previous.phase),
        claim_name=claim_name(name),
        capacity=(pvc or {}).get("status", {}).get("capacity", {}).get("storage"),
        holder=decision.holder,
        waiting=decision.waiting or None,
        conditions=conditions,
        observed_generation=generation,
    )


def claimants(
    sessions: list[dict[str, Any]],
    pods: list[dict[str, Any]],
    *,
    drive: str,
    deleting: bool,
    owner: str | None = None,
) -> tuple[list[locks.Claimant], dict[str, list[str]]]:
    """The sessions that use `drive` (wanting it unless they are done or suspended, or the
    drive is being deleted), and the phases of the pods mounting it, by session. A session that
    would use it only as its user's default drive, and is not its `owner`'s, never
    wants it."""
    phases: dict[str, list[str]] = {}
    for pod in pods:
        phases.setdefault(pod["metadata"]["labels"][SESSION_LABEL], []).append(
            pod.get("status", {}).get("phase") or "Pending"
        )
    found = []
    for session in sessions:
        try:
            spec = SessionSpec.model_validate(session["spec"])
        except ValueError:
            continue
        if drive_of(spec) != drive:
            continue
        meta = session["metadata"]
        wants = (
            not meta.get("deletionTimestamp")
            and not done(session)
            and not spec.suspend
            and (spec.drive is not None or spec.user == owner)
        )
        found.append(
            locks.Claimant(
                name=meta["name"],
                created=parse_time(meta["creationTimestamp"]),
                wants=bool(wants) and not deleting,
                pod_phases=tuple(phases.get(meta["name"], [])),
            )
        )
    return found, phases


def done(session: dict[str, Any]) -> bool:
    """Whether a session is done with its drive: finished or expired, but for an Expired
    one whose renew the operator has not acted on yet (it comes back)."""
    status = session.get("status") or {}
    if status.get("phase") == "Expired":
        renew = (session["metadata"].get("annotations") or {}).get(RENEW_ANNOTATION)
        return not renews(renew, (status.get("renewal") or {}).get("token"))
    return status.get("phase") in DONE_PHASES


def default_drive(*, namespace: str, user: str, size: str) -> dict[str, Any]:
    """The Drive made for a user the first time a session of theirs needs one."""
    return {
        "apiVersion": API_VERSION,
        "kind": "Drive",
        "metadata": {
            "name": default_drive_name(user),
            "namespace": namespace,
            "annotations": {DISPLAY_NAME_ANNOTATION: f"{user}'s default drive"},
        },
        "spec": {"size": size, "access": "private", "owner": user},
    }


def view(
    name: str, *, session: str, drive: dict[str, Any] | None, default_for: str | None = None
) -> DriveView:
    """Where a session stands with its drive: holding it, waiting behind its holder,
    waiting to be granted it, or naming one that does not exist. `default_for` is the
    user when the drive is their default one, which is used only if it is theirs."""
    if drive is None:
        return DriveView(name, False, Reason.DRIVE_NOT_FOUND, f'Drive "{name}" does not exist')
    if default_for is not None:
        # The rule admission applies too: so a session admitted before someone made the
        # drive under its user's default name still never gets it.
        owner = (drive.get("spec") or {}).get("owner")
        refused = check_default_drive(drive=name, owner=owner, user=default_for)
        if refused is not None:
            return DriveView(name, False, Reason.DRIVE_NOT_OWNED, refused.message)
    held = DriveStatus.model_validate(drive.get("status") or {})
    if held.holder is not None and held.holder.session == session:
        return DriveView(name, True)
    if held.holder is not None:
        message = f'Drive "{name}" is held by session "{held.holder.session}"'
        return DriveView(name, False, Reason.DRIVE_IN_USE, message)
    return DriveView(name, False, Reason.WAITING, f'waiting to be granted Drive "{name}"')
