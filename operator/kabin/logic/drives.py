"""Drives as pure rules: which drive a session uses (its own or its user's default
drive), a Drive's PVC and its status, built from its spec and what is observed."""

from __future__ import annotations

import re
from typing import Any

from kabin.api.drive import DrivePhase, DriveSpec, Hold
from kabin.api.meta import API_VERSION, parse_quantity
from kabin.api.names import DRIVE_LABEL, MANAGED_BY, MANAGED_BY_LABEL
from kabin.api.session import SessionSpec


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
