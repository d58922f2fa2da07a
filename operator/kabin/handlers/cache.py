"""The operator's view of the cluster: one informer per kind (`kabin.k8s.informer`).

Reconciles read Sessions, their pods, Services, Ingresses and activity Leases, the
Drives and their PVCs, and the EnvironmentConfigs from here, not from the API server:
controller-runtime's informer cache. Each kind is one LIST and then one WATCH, with
kabin's label selector applied by the API server, so the operator never sees a pod that
is not kabin's; after a watch expires the informer lists again and reports what was
deleted meanwhile. A resync walks memory, and an idle operator makes no request.

kopf keeps the webhooks and the operator's lifecycle; it watches nothing (its own
watches filter labels on the client and do not report deletions after a relist).

A cache can be behind the cluster. Nothing kabin writes depends on it being current:
- creates use deterministic names, and "already exists" adopts the object;
- status patches carry the resourceVersion they were computed from, so the API server
  refuses (409) one computed from an old object, and the reconcile runs again;
- a drive changes hands only after a fresh read of the pods that mount it.

What kabin wrote is seen at once by the next reconcile, before the watch brings it back
(the ReplicaSet controller's "expectations"):
- a status (`wrote`), or else that reconcile would compute from the old status, post
  its Events again and meet a 409;
- pods it created (`made`), or else it would make each pod's ServiceAccount and Role
  again; and pods it deleted (`deleted`), or else it would delete them again.
An expectation is cleared when the watch shows the object. One the watch never confirms
(a pod deleted as soon as it was made) lapses after `EXPECT_FOR` seconds, and its
session is reconciled then.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Gauge

from kabin.api import names
from kabin.api.meta import GROUP, VERSION
from kabin.api.session import SessionSpec
from kabin.k8s.informer import DELETED, Body, Handler, Informer, Kind, Source, version_of
from kabin.logic import drives as logic_drives
from kabin.settings import OperatorSettings, reconciles

log = logging.getLogger("kabin.cache")

Key = tuple[str, str | None, str]  # (kind, namespace, name)
EXPECT_FOR = 60.0
MANAGED = f"{names.MANAGED_BY_LABEL}={names.MANAGED_BY}"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
OURS = f"{GROUP}/{VERSION}"

OBJECTS = Gauge("kabin_cache_objects", "Objects in the operator's cache, by kind.", ["kind"])
UNCONFIRMED = Gauge(
    "kabin_cache_unconfirmed",
    "Statuses and pods kabin wrote that its watches have not brought back yet.",
)

# Pod fields kabin reads; everything else of a pod (its spec above all) is dropped.
POD_META = (
    "name", "namespace", "uid", "resourceVersion", "labels", "annotations",
    "creationTimestamp", "deletionTimestamp",
)  # fmt: skip
POD_SPEC = ("nodeName", "schedulingGates")  # where it runs; whether Kueue holds it back
POD_STATUS = ("phase", "reason", "message", "conditions", "containerStatuses", "startTime")
CONTAINER_STATUS = ("name", "ready", "started", "restartCount", "state", "lastState")


def _meta(body: Mapping[str, Any], only: tuple[str, ...] | None = None) -> Body:
    meta = {
        k: v
        for k, v in body["metadata"].items()
        if k != "managedFields" and (only is None or k in only)
    }
    if LAST_APPLIED in (meta.get("annotations") or {}):
        meta["annotations"] = {k: v for k, v in meta["annotations"].items() if k != LAST_APPLIED}
    return meta


def whole(api_version: str, kind: str) -> Callable[[Body], Body]:
    """Keep all of an object but its managedFields and kubectl's last-applied copy."""

    def compact(body: Body) -> Body:
        kept = {k: v for k, v in body.items() if k != "metadata"}
        return {**kept, "apiVersion": api_version, "kind": kind, "metadata": _meta(body)}

    return compact


def pod(body: Body) -> Body:
    """A pod as kabin reads it: its metadata, node, scheduling gates and status, without
    the rest of its spec."""
    status = {k: v for k, v in (body.get("status") or {}).items() if k in POD_STATUS}
    if "containerStatuses" in status:
        status["containerStatuses"] = [
            {k: v for k, v in c.items() if k in CONTAINER_STATUS}
            for c in status["containerStatuses"]
        ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": _meta(body, POD_META),
        "spec": {k: v for k, v in (body.get("spec") or {}).items() if k in POD_SPEC},
        "status": status,
    }


def _in(namespace: str | None, name: str) -> str:
    """An index value: a name in its namespace."""
    return f"{namespace}/{name}"


def session_drives(body: Body) -> list[str]:
    """The drive a Session uses, if any."""
    try:
        drive = logic_drives.drive_of(SessionSpec.model_validate(body.get("spec") or {}))
    except ValueError:
        return []  # admission keeps such specs out; an old one claims nothing
    return [drive] if drive else []


def _session_drive(body: Body) -> list[str]:
    return [_in(body["metadata"].get("namespace"), d) for d in session_drives(body)]


def _label(name: str) -> Callable[[Body], list[str]]:
    def values(body: Body) -> list[str]:
        value = (body["metadata"].get("labels") or {}).get(name)
        return [_in(body["metadata"].get("namespace"), value)] if value else []

    return values


@dataclass(frozen=True)
class Kept:
    """One kind the cache keeps: where it is listed, what the server filters, what is
    stored of each object, and its indexes (index name -> the object's values)."""

    kind: Kind
    compact: Callable[[Body], Body]
    indexers: Mapping[str, Callable[[Body], list[str]]] = field(default_factory=dict)


def _kept(kind: str, path: str, selector: str | None, api_version: str, **indexers: Any) -> Kept:
    compact = pod if kind == "Pod" else whole(api_version, kind)
    return Kept(Kind(kind, path, selector), compact, indexers)


SESSION_INDEX, DRIVE_INDEX = "session", "drive"

# Every kind the operator keeps, in one table.
KINDS: dict[str, Kept] = {
    k.kind.name: k
    for k in (
        _kept("Session", f"/apis/{OURS}/sessions", None, OURS, drive=_session_drive),
        _kept("Drive", f"/apis/{OURS}/drives", None, OURS),
        _kept("EnvironmentConfig", f"/apis/{OURS}/environmentconfigs", None, OURS),
        _kept(
            "Pod",
            "/api/v1/pods",
            MANAGED,
            "v1",
            session=_label(names.SESSION_LABEL),
            drive=_label(names.DRIVE_LABEL),
        ),
        _kept("Service", "/api/v1/services", MANAGED, "v1", session=_label(names.SESSION_LABEL)),
        _kept(
            "Ingress",
            "/apis/networking.k8s.io/v1/ingresses",
            MANAGED,
            "networking.k8s.io/v1",
            session=_label(names.SESSION_LABEL),
        ),
        _kept(
            "Lease",
            "/apis/coordination.k8s.io/v1/leases",
            MANAGED,
            "coordination.k8s.io/v1",
            session=_label(names.SESSION_LABEL),
        ),
        _kept("PersistentVolumeClaim", "/api/v1/persistentvolumeclaims", names.DRIVE_LABEL, "v1"),
    )
}


def _ours(settings: OperatorSettings) -> Callable[[Body], bool]:
    """Whether an object is one this operator reconciles (cluster-scoped ones always)."""

    def ours(body: Body) -> bool:
        namespace = body["metadata"].get("namespace")
        return namespace is None or reconciles(namespace, settings)

    return ours


@dataclass
class _Expected:
    """A child kabin created or deleted that the watch has not shown yet."""

    until: float
    body: Body
    deleting: bool


def _confirmed(expected: _Expected, there: Body | None) -> bool:
    """Whether the watch shows what was expected: a made child there, a deleted one gone
    or being deleted. (The watch may show it before the create's answer comes back.)"""
    if not expected.deleting:
        return there is not None
    return there is None or bool(there["metadata"].get("deletionTimestamp"))


class Cache:
    """The objects the operator reconciles, each as the API server last said, with what
    kabin itself just wrote on top."""

    def __init__(
        self,
        source: Source,
        settings: OperatorSettings,
        handlers: Mapping[str, Handler] | None = None,
        *,
        lapsed: Callable[[str, str], None] | None = None,
    ) -> None:
        """`settings`: which namespaces it keeps; `handlers`: kind -> what to do on each
        of its events (after the cache has taken it in); `lapsed(namespace, session)`: an
        expectation of a session's child lapsed unconfirmed."""
        self._handlers = dict(handlers or {})
        self._lapsed = lapsed
        self.informers = {
            name: Informer(
                kept.kind,
                source,
                handler=self._observer(name),
                compact=kept.compact,
                keep=_ours(settings),
                indexers=kept.indexers,
            )
            for name, kept in KINDS.items()
        }
        # key -> (the resourceVersion it was written over, the object as written).
        self._written: dict[Key, tuple[str, Body]] = {}
        # (kind, namespace, session) -> child name -> what is expected of it.
        self._expected: dict[Key, dict[str, _Expected]] = {}
        UNCONFIRMED.set_function(
            lambda: len(self._written) + sum(map(len, self._expected.values()))
        )
        for name, informer in self.informers.items():
            OBJECTS.labels(name).set_function(informer.store.__len__)

    # -- running ------------------------------------------------------------------------

    async def start(self) -> None:
        """Start every informer; return once each has listed its kind."""
        for informer in self.informers.values():
            informer.start()
        await asyncio.gather(*(i.synced.wait() for i in self.informers.values()))
        counts = ", ".join(f"{len(i.store)} {name}" for name, i in self.informers.items())
        log.info("Cache loaded: %s", counts)

    async def stop(self) -> None:
        await asyncio.gather(*(i.stop() for i in self.informers.values()))

    def _observer(self, kind: str) -> Handler:
        def observe(event: str, body: Body) -> None:
            meta = body["metadata"]
            key = (kind, meta.get("namespace"), meta["name"])
            written = self._written.get(key)
            if event == DELETED or (written and written[0] != version_of(body)):
                self._written.pop(key, None)  # gone, or the watch brought a newer version
            if event == DELETED and kind == "Session":
                self._expected.pop(("Pod", key[1], key[2]), None)
            session = (meta.get("labels") or {}).get(names.SESSION_LABEL)
            if session:
                self._confirm(kind, key[1], session, meta["name"], body, event == DELETED)
            handler = self._handlers.get(kind)
            if handler is not None:
                handler(event, body)

        return observe

    # -- what kabin wrote ---------------------------------------------------------------

    def wrote(self, kind: str, namespace: str, name: str, base: str, body: Body) -> None:
        """kabin wrote `body` (the API server's answer) over resourceVersion `base`."""
        there = self.informers[kind].store.get((namespace, name))
        if there is not None and version_of(there) != base:
            return  # the watch brought the write (or something newer) back already
        self._written[(kind, namespace, name)] = (base, KINDS[kind].compact(body))

    def made(self, kind: str, namespace: str, session: str, bodies: list[Body]) -> None:
        """kabin created these children of the session (the API server's answers)."""
        for body in bodies:
            self._expect(kind, namespace, session, KINDS[kind].compact(body), deleting=False)

    def deleted(self, kind: str, namespace: str, session: str, bodies: list[Body]) -> None:
        """kabin asked the API server to delete these children of the session."""
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        for body in bodies:
            meta = {**body["metadata"], "deletionTimestamp": now}
            self._expect(kind, namespace, session, {**body, "metadata": meta}, deleting=True)

    def _expect(self, kind: str, namespace: str, session: str, body: Body, deleting: bool) -> None:
        until = time.monotonic() + EXPECT_FOR
        there = self.informers[kind].store.get((namespace, body["metadata"]["name"]))
        expected = _Expected(until, body, deleting)
        if _confirmed(expected, there):
            return
        group = self._expected.setdefault((kind, namespace, session), {})
        group[body["metadata"]["name"]] = expected
        asyncio.get_running_loop().call_later(
            EXPECT_FOR + 0.01, self._lapse, (kind, namespace, session)
        )

    def _confirm(
        self, kind: str, namespace: str | None, session: str, name: str, body: Body, gone: bool
    ) -> None:
        """The watch showed a child: what was expected of it is confirmed, if it was."""
        group = self._expected.get((kind, namespace, session))
        expected = group.get(name) if group else None
        if group is None or expected is None:
            return
        # Gone, it was there: whatever was expected of it (to appear, or to go) is moot.
        if gone or _confirmed(expected, body):
            del group[name]
            if not group:
                del self._expected[(kind, namespace, session)]

    def _lapse(self, key: Key) -> None:
        """Drop the expectations of `key` that lapsed; reconcile its session if any did."""
        group = self._expected.get(key)
        if not group:
            return
        now = time.monotonic()
        lapsed = [name for name, e in group.items() if e.until <= now]
        for name in lapsed:
            del group[name]
        if not group:
            del self._expected[key]
        if lapsed and self._lapsed is not None and key[1] is not None:
            self._lapsed(key[1], key[2])

    # -- reading ------------------------------------------------------------------------

    def _one(self, kind: str, namespace: str | None, name: str) -> Body | None:
        """The object, or what kabin wrote of it while the watch has not brought that
        back (the watch's event drops the record, in `_observer`)."""
        found = self.informers[kind].store.get((namespace, name))
        mine = self._written.get((kind, namespace, name))
        if mine is not None and found is not None and version_of(found) == mine[0]:
            return mine[1]
        return found

    def session(self, namespace: str, name: str) -> Body | None:
        return self._one("Session", namespace, name)

    def claimants(self, namespace: str, drive: str) -> list[Body]:
        """The Sessions that use the drive, with the status kabin just wrote of each: the
        drive is reconciled right after a session's status moves, before the watch
        brings the move back."""
        found = self.informers["Session"].store.by(DRIVE_INDEX, _in(namespace, drive))
        return [self.session(namespace, s["metadata"]["name"]) or s for s in found]

    def children(self, kind: str, namespace: str, session: str) -> list[Body]:
        """A session's Pods, Services, Ingresses or Leases, with what kabin just did to
        them."""
        found = {
            b["metadata"]["name"]: b
            for b in self.informers[kind].store.by(SESSION_INDEX, _in(namespace, session))
        }
        # Unconfirmed: the watch's events drop them (`_confirm`), and `_expect` keeps none
        # that the watch had shown already.
        for name, expected in self._expected.get((kind, namespace, session), {}).items():
            found[name] = expected.body
        return list(found.values())

    def pod(self, namespace: str, name: str) -> Body | None:
        """One of kabin's pods, by name."""
        return self.informers["Pod"].store.get((namespace, name))

    def drive_pods(self, namespace: str, drive: str) -> list[Body]:
        """The pods that mount the drive."""
        return self.informers["Pod"].store.by(DRIVE_INDEX, _in(namespace, drive))

    def drive(self, namespace: str, name: str) -> Body | None:
        return self._one("Drive", namespace, name)

    def pvc(self, namespace: str, name: str) -> Body | None:
        return self._one("PersistentVolumeClaim", namespace, name)

    def environment(self, name: str) -> Body | None:
        return self._one("EnvironmentConfig", None, name)
