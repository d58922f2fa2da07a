"""The operator's view of the cluster, kept current by the watches it holds anyway.

Reconciles read Sessions, their pods, Services, Ingresses and activity Leases, the
Drives and their PVCs, and the EnvironmentConfigs from here, not from the API server:
controller-runtime's informer cache, in kopf terms. It is loaded by one LIST of each
kind at start-up, before any reconcile runs, and then kept current by every watch event
kopf delivers (`observe`, from the event handlers). A resync walks memory, and an idle
operator makes no request.

Why not kopf's own indexes: while they fill at start-up, kopf holds back every handler
of every object until all are indexed, through one condition that each object's worker
waits on and each indexed object wakes: quadratic in the number of objects. An operator
restarted among 7,000 objects had not started reconciling after 15 minutes.

An object deleted between the start-up LIST and kopf's own first LIST would stay: one
more LIST of each kind, `SWEEP_AFTER` seconds after start-up, drops every object that
the watches never delivered and the API server no longer has.

A cache can be behind the cluster. Nothing kabin writes depends on it being current:
- creates use deterministic names, and "already exists" adopts the object;
- status patches carry the resourceVersion they were computed from, so the API server
  refuses (409) one computed from an old object, and the reconcile runs again;
- a drive changes hands only after a fresh read of the pods that mount it.

What kabin wrote is seen at once by the next reconcile, before the watch brings it back:
a status (`wrote`), or else that reconcile would compute from the old status, post its
Events again and meet a 409; and pods it created (`made`, the ReplicaSet controller's
"expectations"), or else it would make each pod's ServiceAccount and Role again. An
expected pod that the watch never shows (deleted at once) stops being expected after
`EXPECT_FOR` seconds.

Stored objects are trimmed of what kabin never reads and most of the memory is:
`managedFields`, kubectl's last-applied copy, and of a pod's spec all but its node.
A deleted object leaves at once, with everything kabin kept of it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes_asyncio import client
from prometheus_client import Gauge

from kabin.api import names
from kabin.api.meta import GROUP, VERSION
from kabin.api.session import SessionSpec
from kabin.k8s import objects
from kabin.logic import drives as logic_drives
from kabin.settings import reconciles

log = logging.getLogger("kabin.cache")

Body = dict[str, Any]
Key = tuple[str, str | None, str]  # (kind, namespace, name)
EXPECT_FOR = 60.0
SWEEP_AFTER = 30.0
MANAGED = f"{names.MANAGED_BY_LABEL}={names.MANAGED_BY}"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"

# What the cache holds: kind -> (the list path, a label selector).
KINDS: dict[str, tuple[str, str | None]] = {
    "Session": (f"/apis/{GROUP}/{VERSION}/sessions", None),
    "Drive": (f"/apis/{GROUP}/{VERSION}/drives", None),
    "EnvironmentConfig": (f"/apis/{GROUP}/{VERSION}/environmentconfigs", None),
    "Pod": ("/api/v1/pods", MANAGED),
    "Service": ("/api/v1/services", MANAGED),
    "Ingress": ("/apis/networking.k8s.io/v1/ingresses", MANAGED),
    "Lease": ("/apis/coordination.k8s.io/v1/leases", MANAGED),
    "PersistentVolumeClaim": ("/api/v1/persistentvolumeclaims", names.DRIVE_LABEL),
}

OBJECTS = Gauge("kabin_cache_objects", "Objects in the operator's cache, by kind.", ["kind"])
UNCONFIRMED = Gauge(
    "kabin_cache_unconfirmed",
    "Statuses and pods kabin wrote that its watches have not brought back yet.",
)


def slim(body: Mapping[str, Any]) -> Body:
    """A plain copy of the object without what kabin never reads (shares the event's
    nested values, which nothing mutates)."""
    meta = {k: v for k, v in body["metadata"].items() if k != "managedFields"}
    if LAST_APPLIED in (meta.get("annotations") or {}):
        meta["annotations"] = {k: v for k, v in meta["annotations"].items() if k != LAST_APPLIED}
    kept = {**{k: body[k] for k in body if k != "metadata"}, "metadata": meta}
    if body.get("kind") == "Pod":
        kept["spec"] = {"nodeName": (body.get("spec") or {}).get("nodeName")}
    return kept


def _drive_of(session: Body) -> str | None:
    try:
        return logic_drives.drive_of(SessionSpec.model_validate(session.get("spec") or {}))
    except ValueError:
        return None  # admission keeps such specs out; an old one claims nothing


@dataclass
class Cache:
    """The objects the operator reconciles, each as the API server last said."""

    _objects: dict[Key, Body] = field(default_factory=dict)
    # Secondary indexes, by (kind or "drive", namespace, session or drive) -> name -> body:
    # a session's children, a drive's pods and the sessions that use a drive.
    _by: dict[Key, dict[str, Body]] = field(default_factory=dict)
    _in: dict[Key, list[Key]] = field(default_factory=dict)  # object -> its secondary keys
    _loaded: set[Key] = field(default_factory=set)  # listed at start-up, not yet watched
    # What kabin wrote and the watch has not brought back yet:
    # key -> (the resourceVersion it was written over, the object as written).
    _written: dict[Any, tuple[str, Body]] = field(default_factory=dict)
    # Children kabin created and the watch has not shown yet: key -> name -> (until, body).
    _made: dict[Any, dict[str, tuple[float, Body]]] = field(default_factory=dict)
    _sweeper: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        UNCONFIRMED.set_function(lambda: len(self._written) + sum(map(len, self._made.values())))
        for kind in KINDS:
            OBJECTS.labels(kind).set_function(self._counter(kind))

    def _counter(self, kind: str) -> Callable[[], int]:
        return lambda: sum(1 for k in self._objects if k[0] == kind)

    # -- filling ------------------------------------------------------------------------

    async def load(self, api: client.ApiClient) -> None:
        """Fill the cache with one LIST of each kind; later, sweep what kopf never saw."""
        for kind in KINDS:
            for body in await self._list(api, kind):
                self._put(kind, body)
                self._loaded.add(self._key(kind, body))
        log.info("Cache loaded: %d objects", len(self._objects))
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep(), name="cache sweep")

    async def _list(self, api: client.ApiClient, kind: str) -> list[Body]:
        path, selector = KINDS[kind]
        items = await objects.list_raw(api, path, selector)
        return [
            {**item, "kind": kind}
            for item in items
            if _namespace(item) is None or reconciles(_namespace(item))
        ]

    async def _sweep(self) -> None:
        """Drop what was listed at start-up, never delivered by a watch, and is gone."""
        await asyncio.sleep(SWEEP_AFTER)
        from kabin import k8s

        api = await k8s.shared()
        for kind in KINDS:
            there = {self._key(kind, body) for body in await self._list(api, kind)}
            for key in [k for k in self._loaded if k[0] == kind and k not in there]:
                gone = self._objects.get(key)
                if gone is not None:
                    self._drop(kind, gone)
        self._loaded.clear()

    def observe(self, kind: str, body: Mapping[str, Any], *, deleted: bool = False) -> None:
        """A watch event of `kind` (from kopf's event handlers)."""
        kept = slim({**body, "kind": kind})
        key = self._key(kind, kept)
        self._loaded.discard(key)
        if deleted:
            self._drop(kind, kept)
        else:
            self._put(kind, kept)

    @staticmethod
    def _key(kind: str, body: Body) -> Key:
        return (kind, _namespace(body), body["metadata"]["name"])

    def _secondary(self, kind: str, body: Body) -> list[Key]:
        namespace, labels = _namespace(body), body["metadata"].get("labels") or {}
        keys: list[Key] = []
        if kind == "Session":
            drive = _drive_of(body)
            if drive:
                keys.append(("drive-session", namespace, drive))
        elif kind in ("Pod", "Service", "Ingress", "Lease"):
            if labels.get(names.SESSION_LABEL):
                keys.append((kind, namespace, labels[names.SESSION_LABEL]))
            if kind == "Pod" and labels.get(names.DRIVE_LABEL):
                keys.append(("drive-pod", namespace, labels[names.DRIVE_LABEL]))
        return keys

    def _put(self, kind: str, body: Body) -> None:
        key = self._key(kind, body)
        self._unindex(key)
        self._objects[key] = body
        self._in[key] = self._secondary(kind, body)
        for index in self._in[key]:
            self._by.setdefault(index, {})[body["metadata"]["name"]] = body

    def _drop(self, kind: str, body: Body) -> None:
        key = self._key(kind, body)
        self._objects.pop(key, None)
        self._unindex(key)
        self._written.pop(key, None)
        if kind == "Session":
            self._made.pop(("Pod", key[1], key[2]), None)

    def _unindex(self, key: Key) -> None:
        """Take the object out of the secondary indexes it was put in."""
        for index in self._in.pop(key, []):
            group = self._by.get(index)
            if group is not None:
                group.pop(key[2], None)
                if not group:
                    del self._by[index]

    # -- what kabin wrote ---------------------------------------------------------------

    def wrote(self, kind: str, namespace: str, name: str, base: str, body: Body) -> None:
        """kabin wrote `body` (the API server's answer) over resourceVersion `base`."""
        self._written[(kind, namespace, name)] = (base, slim({**body, "kind": kind}))

    def made(self, kind: str, namespace: str, session: str, bodies: list[Body]) -> None:
        """kabin created these children of the session (the API server's answers)."""
        if bodies:
            until = time.monotonic() + EXPECT_FOR
            expected = self._made.setdefault((kind, namespace, session), {})
            expected.update({b["metadata"]["name"]: (until, slim(b)) for b in bodies})

    # -- reading ------------------------------------------------------------------------

    def _one(self, key: Key) -> Body | None:
        found = self._objects.get(key)
        mine = self._written.get(key)
        if mine is None:
            return found
        base, written = mine
        if found is not None and found["metadata"].get("resourceVersion") == base:
            return written  # the watch has not brought our write back yet
        del self._written[key]  # it has, or something newer, or the object is gone
        return found

    def session(self, namespace: str, name: str) -> Body | None:
        return self._one(("Session", namespace, name))

    def claimants(self, namespace: str, drive: str) -> list[Body]:
        """The Sessions that use the drive, with the status kabin just wrote of each: the
        drive is reconciled right after a session's status moves, before the watch
        brings the move back."""
        found = self._by.get(("drive-session", namespace, drive), {})
        return [self.session(namespace, name) or s for name, s in list(found.items())]

    def children(self, kind: str, namespace: str, session: str) -> list[Body]:
        """A session's Pods, Services, Ingresses or Leases, with those it was just given."""
        key = (kind, namespace, session)
        found = list(self._by.get(key, {}).values())
        expected = self._made.get(key)
        if expected:
            now, seen = time.monotonic(), {b["metadata"]["name"] for b in found}
            for name, (until, _) in list(expected.items()):
                if name in seen or until < now:
                    del expected[name]
            found += [body for _, body in expected.values()]
            if not expected:
                del self._made[key]
        return found

    def drive_pods(self, namespace: str, drive: str) -> list[Body]:
        """The pods that mount the drive."""
        return list(self._by.get(("drive-pod", namespace, drive), {}).values())

    def drive(self, namespace: str, name: str) -> Body | None:
        return self._one(("Drive", namespace, name))

    def pvc(self, namespace: str, name: str) -> Body | None:
        return self._one(("PersistentVolumeClaim", namespace, name))

    def environment(self, name: str) -> Body | None:
        return self._one(("EnvironmentConfig", None, name))

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)


def _namespace(body: Mapping[str, Any]) -> str | None:
    namespace: str | None = body["metadata"].get("namespace")
    return namespace
