"""What must hold after any fault: every admitted Session converges, no pod is
duplicated or orphaned, no drive has two holders or a leaked lock, and drive waiters
are served in order. Checked from the API server, as a user would see it."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from typing import Any

from kubernetes_asyncio import client

GROUP, VERSION = "kabin.dev", "v1alpha1"
FULL = os.environ.get("KABIN_CHAOS") == "full"
"""`make chaos` runs the scenarios at the issue's sizes; CI and `make test` smaller."""


def scale(small: int, full: int) -> int:
    return full if FULL else small


@dataclass
class World:
    sessions: list[dict[str, Any]]
    pods: list[Any]
    drives: list[dict[str, Any]]


async def look(api: client.ApiClient, namespace: str) -> World:
    custom = client.CustomObjectsApi(api)
    sessions = await custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "sessions")
    drives = await custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "drives")
    pods = await client.CoreV1Api(api).list_namespaced_pod(namespace)
    return World(sessions["items"], pods.items, drives["items"])


def _live(pod: Any) -> bool:
    return pod.metadata.deletion_timestamp is None and pod.status.phase not in (
        "Succeeded",
        "Failed",
    )


def check(world: World, *, converged: bool = True) -> dict[str, int]:
    """Assert the invariants; return what was counted (for the reliability table)."""
    uids = {s["metadata"]["uid"]: s for s in world.sessions}
    orphans = [
        p.metadata.name
        for p in world.pods
        if not p.metadata.owner_references or p.metadata.owner_references[0].uid not in uids
    ]
    assert not orphans, f"orphaned pods: {orphans[:5]}"
    per_replica = Counter(
        (p.metadata.owner_references[0].uid, (p.metadata.labels or {}).get("kabin.dev/replica"))
        for p in world.pods
        if p.metadata.deletion_timestamp is None
    )
    duplicates = [key for key, n in per_replica.items() if n > 1]
    assert not duplicates, f"duplicate pods: {duplicates[:5]}"
    holders: dict[str, set[str]] = {}
    for pod in world.pods:
        drive = (pod.metadata.labels or {}).get("kabin.dev/drive")
        if drive and _live(pod):
            holders.setdefault(drive, set()).add(pod.metadata.labels["kabin.dev/session"])
    doubled = {d: h for d, h in holders.items() if len(h) > 1}
    assert not doubled, f"drives mounted by two sessions: {doubled}"
    names = {s["metadata"]["name"]: s for s in world.sessions}
    for drive in world.drives:
        holder = ((drive.get("status") or {}).get("holder") or {}).get("session")
        if holder is None:
            continue
        held_by = names.get(holder)
        done = held_by is None or (held_by.get("status") or {}).get("phase") in (
            "Succeeded",
            "Failed",
            "Expired",
        )
        live_pods = holders.get(drive["metadata"]["name"], set())
        assert not (done and converged and not live_pods), (
            f"leaked lock: {drive['metadata']['name']} held by {holder}, which is done"
        )
    if converged:
        for session in world.sessions:
            status = session.get("status") or {}
            phase = status.get("phase")
            waiting = any(
                c["type"] == "DriveReady" and c["status"] == "False"
                for c in status.get("conditions") or []
            )
            assert phase in ("Running", "Succeeded") or (phase == "Pending" and waiting), (
                session["metadata"]["name"],
                status,
            )
            if phase == "Running":
                replicas = session["spec"].get("replicas", 1)
                mine = [
                    p
                    for p in world.pods
                    if p.metadata.owner_references[0].uid == session["metadata"]["uid"]
                    and p.metadata.deletion_timestamp is None
                ]
                assert len(mine) == replicas, (session["metadata"]["name"], len(mine))
    return {
        "sessions": len(world.sessions),
        "pods": len(world.pods),
        "orphans": len(orphans),
        "duplicates": len(duplicates),
        "double holders": len(doubled),
    }
