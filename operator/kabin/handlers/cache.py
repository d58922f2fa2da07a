"""The operator's view of the cluster: kopf indexes fed by the watches it holds anyway.

Reconciles read Sessions, their pods, Services, Ingresses and activity Leases, the
Drives and their PVCs, and the EnvironmentConfigs from here, not from the API server:
controller-runtime's informer cache, in kopf's own idiom. kopf fills every index from a
full list before any other handler runs, then keeps it current from the watch streams,
so a resync walks memory and an idle operator makes no request.

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

Stored objects are trimmed of `managedFields`, the bulk of most objects, which kabin
never reads. A deleted object leaves its index at once (kopf), and what `wrote` kept of
it goes with its next read or with `forget`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf

from kabin.api import names
from kabin.api.meta import GROUP
from kabin.api.session import SessionSpec
from kabin.logic import drives as logic_drives
from kabin.settings import reconciles

Body = dict[str, Any]
EXPECT_FOR = 60.0
MANAGED = {names.MANAGED_BY_LABEL: names.MANAGED_BY}


def _slim(body: Mapping[str, Any]) -> Body:
    """A plain copy of the object without managedFields (shares the event's nested
    values, which nothing mutates)."""
    meta = {k: v for k, v in body["metadata"].items() if k != "managedFields"}
    return {**{k: body[k] for k in body if k != "metadata"}, "metadata": meta}


def _watched(namespace: str | None, **_: Any) -> bool:
    return reconciles(namespace)


@kopf.index(GROUP, "sessions", when=_watched)
def kabin_sessions(
    *, body: kopf.Body, namespace: str | None, name: str, **_: Any
) -> dict[Any, Body]:
    """Each Session under its name, and under the drive it uses (the drive's claimants)."""
    slim = _slim(body)
    keys: dict[Any, Body] = {(namespace, name): slim}
    try:
        drive = logic_drives.drive_of(SessionSpec.model_validate(dict(body.get("spec") or {})))
    except ValueError:
        drive = None  # admission keeps such specs out; an old one claims nothing
    if drive:
        keys[("drive", namespace, drive)] = slim
    return keys


@kopf.index("pods", labels=MANAGED, when=_watched)
@kopf.index("services", labels=MANAGED, when=_watched)
@kopf.index("networking.k8s.io", "ingresses", labels=MANAGED, when=_watched)
@kopf.index("coordination.k8s.io", "leases", labels=MANAGED, when=_watched)
def kabin_children(
    *, body: kopf.Body, namespace: str | None, labels: kopf.Labels, **_: Any
) -> dict[Any, Body]:
    """A session's pods, Services, Ingress and activity Lease under (kind, namespace,
    session); pods also under the drive they mount."""
    slim = _slim(body)
    kind = body["kind"]
    keys: dict[Any, Body] = {}
    session = labels.get(names.SESSION_LABEL)
    if session:
        keys[(kind, namespace, session)] = slim
    drive = labels.get(names.DRIVE_LABEL)
    if kind == "Pod" and drive:
        keys[("drive", namespace, drive)] = slim
    return keys


@kopf.index(GROUP, "drives", when=_watched)
@kopf.index("persistentvolumeclaims", labels={names.DRIVE_LABEL: kopf.PRESENT}, when=_watched)
def kabin_drives(*, body: kopf.Body, namespace: str | None, name: str, **_: Any) -> dict[Any, Body]:
    """Drives, and their PVCs, under (kind, namespace, name)."""
    return {(body["kind"], namespace, name): _slim(body)}


@kopf.index(GROUP, "environmentconfigs")
def kabin_environments(*, body: kopf.Body, name: str, **_: Any) -> dict[Any, Body]:
    """EnvironmentConfigs (cluster-scoped) under their name."""
    return {name: _slim(body)}


INDEXES = ("kabin_sessions", "kabin_children", "kabin_drives", "kabin_environments")


@dataclass
class Cache:
    """Reads of the indexes, each as the API server would answer it."""

    indexes: Mapping[str, kopf.Index[Any, Body]]
    # What kabin wrote and the watch has not brought back yet:
    # key -> (the resourceVersion it was written over, the object as written).
    _written: dict[Any, tuple[str, Body]] = field(default_factory=dict)
    # Children kabin created and the watch has not shown yet: key -> name -> (until, body).
    _made: dict[Any, dict[str, tuple[float, Body]]] = field(default_factory=dict)

    @classmethod
    def of(cls, kwargs: Mapping[str, Any]) -> Cache:
        """The cache over the indexes kopf passes to a handler."""
        return cls({name: kwargs[name] for name in INDEXES})

    def _all(self, index: str, key: Any) -> Iterator[Body]:
        store = self.indexes[index].get(key)
        return iter(store) if store is not None else iter(())

    def _one(self, index: str, key: Any) -> Body | None:
        found = next(self._all(index, key), None)
        mine = self._written.get(key)
        if mine is None:
            return found
        base, written = mine
        if found is not None and found["metadata"].get("resourceVersion") == base:
            return written  # the watch has not brought our write back yet
        del self._written[key]  # it has, or something newer, or the object is gone
        return found

    def wrote(self, key: Any, base: str, body: Body) -> None:
        """kabin wrote `body` (the API server's answer) over resourceVersion `base`."""
        self._written[key] = (base, _slim(body))

    def made(self, kind: str, namespace: str, session: str, bodies: list[Body]) -> None:
        """kabin created these children of the session (the API server's answers)."""
        if bodies:
            until = time.monotonic() + EXPECT_FOR
            expected = self._made.setdefault((kind, namespace, session), {})
            expected.update({b["metadata"]["name"]: (until, _slim(b)) for b in bodies})

    def forget(self, key: tuple[str, str]) -> None:
        """The session `key` is gone: keep nothing kabin wrote of it."""
        self._written.pop(key, None)
        self._made.pop(("Pod", *key), None)

    def session(self, namespace: str, name: str) -> Body | None:
        return self._one("kabin_sessions", (namespace, name))

    def claimants(self, namespace: str, drive: str) -> list[Body]:
        """The Sessions that use the drive, with the status kabin just wrote of each: the
        drive is reconciled right after a session's status moves, before the watch
        brings the move back."""
        found = self._all("kabin_sessions", ("drive", namespace, drive))
        return [self.session(namespace, s["metadata"]["name"]) or s for s in found]

    def children(self, kind: str, namespace: str, session: str) -> list[Body]:
        """A session's Pods, Services, Ingresses or Leases, with those it was just given."""
        key = (kind, namespace, session)
        found = list(self._all("kabin_children", key))
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
        return list(self._all("kabin_children", ("drive", namespace, drive)))

    def drive(self, namespace: str, name: str) -> Body | None:
        return self._one("kabin_drives", ("Drive", namespace, name))

    def pvc(self, namespace: str, name: str) -> Body | None:
        return self._one("kabin_drives", ("PersistentVolumeClaim", namespace, name))

    def environment(self, name: str) -> Body | None:
        return self._one("kabin_environments", name)
