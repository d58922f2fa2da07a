"""Informers: a watch cache of one kind, as client-go's reflector, DeltaFIFO and indexer.

An informer LISTs its kind once (with a label selector, on the server), stores what it
found, then WATCHes from the list's resourceVersion, with bookmarks, applying each event
to its store and telling its handler. When the watch's history is gone (410 Expired) it
LISTs again and **replaces** the store: what the new list lacks is reported deleted,
what changed is reported modified, as DeltaFIFO's Replace does. An object deleted while
the watch was down (an API-server restart, a broken network) therefore leaves the store
when the watch comes back, instead of staying until the process restarts.

A broken stream, or an API server that cannot be reached, is watched again from the
last resourceVersion seen (an event's or a bookmark's), after a backoff; if that version
is too old by then, the 410 brings the relist.

Events older than what the store holds (an object's resourceVersion is etcd's revision
of its last write, so a number) are dropped, so a stale event cannot undo a newer one.

Stored objects are compact: the informer keeps what its `compact` function returns
(only the fields the operator reads), and interns the short strings in it (names,
label keys and values, condition types), so that 10,000 pods share one copy of each.

Indexers name secondary keys of an object (a pod's session, a session's drive); the
store keeps an index per indexer, so that "the pods of this session" is one lookup.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import sys
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
from kubernetes_asyncio import client
from prometheus_client import Counter

from kabin.k8s.objects import list_page

log = logging.getLogger("kabin.informer")

Body = dict[str, Any]
Key = tuple[str | None, str]  # (namespace, name)
Handler = Callable[[str, Body], None]  # (ADDED | MODIFIED | DELETED, the object)
Indexer = Callable[[Body], Iterable[str]]

ADDED, MODIFIED, DELETED = "ADDED", "MODIFIED", "DELETED"
INTERN_UP_TO = 64  # strings longer than this (messages, JSON annotations) are not interned
WATCH_SECONDS = (300, 600)  # each watch asks the server to end it after this long (client-go)
BACKOFF = (0.2, 30.0)  # after a failed LIST or WATCH: first delay, cap

RELISTS = Counter(
    "kabin_informer_relists_total", "LISTs after the first (a watch expired), by kind.", ["kind"]
)


@dataclass(frozen=True)
class Kind:
    """A kind an informer watches: its collection's path (all namespaces) and the label
    selector the API server applies."""

    name: str
    path: str
    selector: str | None = None


class Expired(Exception):
    """The watch's resourceVersion is no longer in the API server's history (410)."""


class WatchError(Exception):
    """The watch stream reported an error other than 410."""


class Source(Protocol):
    """Where an informer reads from: the API server, or a test's synthetic stream."""

    async def list(self, kind: Kind, each: Callable[[Body], Body | None]) -> tuple[list[Body], str]:
        """Every object of the kind as `each` keeps it (None: not kept), and the
        resourceVersion of that list."""
        ...

    def watch(self, kind: Kind, version: str) -> AsyncIterator[Body]:
        """The watch events after `version` (raw: {"type": ..., "object": ...})."""
        ...


def intern(value: Any) -> Any:
    """`value` with every dict key and every short string interned."""
    if isinstance(value, dict):
        return {sys.intern(k): intern(v) for k, v in value.items()}
    if isinstance(value, list):
        return [intern(v) for v in value]
    if isinstance(value, str) and len(value) <= INTERN_UP_TO:
        return sys.intern(value)
    return value


def key_of(body: Mapping[str, Any]) -> Key:
    meta = body["metadata"]
    return (meta.get("namespace"), meta["name"])


def version_of(body: Mapping[str, Any]) -> str:
    return str(body["metadata"].get("resourceVersion") or "")


def older(version: str, than: str) -> bool:
    """Whether resourceVersion `version` is older than `than`. They are opaque to clients
    in general and etcd's revisions (integers) in fact; anything else is never older."""
    try:
        return int(version) < int(than)
    except ValueError:
        return False


@dataclass
class Store:
    """Objects by (namespace, name), with an index per indexer: index -> value -> key ->
    object."""

    indexers: Mapping[str, Indexer] = field(default_factory=dict)
    objects: dict[Key, Body] = field(default_factory=dict)
    _indexes: dict[str, dict[str, dict[Key, Body]]] = field(default_factory=dict)
    _values: dict[Key, list[tuple[str, str]]] = field(default_factory=dict)

    def get(self, key: Key) -> Body | None:
        return self.objects.get(key)

    def by(self, index: str, value: str) -> list[Body]:
        return list(self._indexes.get(index, {}).get(value, {}).values())

    def put(self, body: Body) -> Body | None:
        """Store `body`; the object it replaced."""
        key = key_of(body)
        old = self.remove(key)
        self.objects[key] = body
        values = [(index, v) for index, of in self.indexers.items() for v in of(body)]
        if values:
            self._values[key] = values
        for index, value in values:
            self._indexes.setdefault(index, {}).setdefault(value, {})[key] = body
        return old

    def remove(self, key: Key) -> Body | None:
        """Forget the object; what was stored."""
        old = self.objects.pop(key, None)
        for index, value in self._values.pop(key, []):
            group = self._indexes[index][value]
            group.pop(key, None)
            if not group:
                del self._indexes[index][value]
        return old

    def __len__(self) -> int:
        return len(self.objects)


class Informer:
    """Keeps a Store of one kind current, and tells `handler` of every change."""

    def __init__(
        self,
        kind: Kind,
        source: Source,
        *,
        handler: Handler | None = None,
        compact: Callable[[Body], Body] = lambda body: body,
        keep: Callable[[Body], bool] = lambda body: True,
        indexers: Mapping[str, Indexer] | None = None,
    ) -> None:
        self.kind, self.source = kind, source
        self.store = Store(indexers or {})
        self.handler = handler
        self.version: str | None = None  # where the next watch starts; None: list first
        self.synced = asyncio.Event()  # set once the first LIST is stored
        self.relists = 0  # LISTs after the first, for the metrics and tests
        self._compact, self._keep = compact, keep
        self._task: asyncio.Task[None] | None = None

    # -- applying what the API server says -------------------------------------------

    def replace(self, items: Iterable[Body], version: str, *, kept: bool = False) -> None:
        """A LIST's answer: the store becomes exactly `items` (already as stored, `kept`);
        report what that changed, deletions included (DeltaFIFO's Replace)."""
        fresh: dict[Key, Body] = {}
        for item in items:
            body = item if kept else self._kept(item)
            if body is not None:
                fresh[key_of(body)] = body
        for key in [k for k in self.store.objects if k not in fresh]:
            gone = self.store.remove(key)
            if gone is not None:
                self._tell(DELETED, gone)
        for body in fresh.values():
            old = self.store.put(body)
            if old is None:
                self._tell(ADDED, body)
            elif version_of(old) != version_of(body):
                self._tell(MODIFIED, body)
        self.version = version
        if self.synced.is_set():
            self.relists += 1
            RELISTS.labels(self.kind.name).inc()
        self.synced.set()

    def apply(self, event: Body) -> None:
        """One watch event. Raises Expired on a 410, WatchError on any other error."""
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            code = obj.get("code")
            if code == 410:
                raise Expired(obj.get("message") or "resourceVersion expired")
            raise WatchError(f"{code}: {obj.get('message')}")
        version = version_of(obj) if obj.get("metadata") else ""
        if kind == "BOOKMARK":
            if version:
                self.version = version
            return
        if kind not in (ADDED, MODIFIED, DELETED):
            return
        key = key_of(obj)
        stored = self.store.get(key)
        if stored is not None and older(version, version_of(stored)):
            log.debug("%s %s/%s: dropped an older event (%s)", self.kind.name, *key, version)
            return
        if version and (self.version is None or not older(version, self.version)):
            self.version = version
        body = self._kept(obj) if kind != DELETED else None
        if body is None:  # deleted, or no longer one of ours
            gone = self.store.remove(key)
            if gone is not None:  # one it never held (another namespace's) is no news
                self._tell(DELETED, gone)
            return
        old = self.store.put(body)
        self._tell(ADDED if old is None else MODIFIED, body)

    def _kept(self, obj: Body) -> Body | None:
        if not self._keep(obj):
            return None
        body: Body = intern(self._compact(obj))
        return body

    def _tell(self, kind: str, body: Body) -> None:
        if self.handler is not None:
            try:
                self.handler(kind, body)
            except Exception:  # a handler's bug must not stop the watch
                log.exception("The %s handler failed on %s", self.kind.name, key_of(body))

    # -- running -----------------------------------------------------------------------

    async def _relist(self) -> None:
        """LIST and replace, in a frame of its own: the watch loop that follows must not
        keep the list alive."""
        items, version = await self.source.list(self.kind, self._kept)
        self.replace(items, version, kept=True)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(
            self.run(), name=f"informer {self.kind.name}"
        )

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def run(self) -> None:
        """LIST, then WATCH; relist on 410; rewatch after a backoff on any other failure.
        Runs until cancelled."""
        failures = 0
        while True:
            try:
                if self.version is None:
                    await self._relist()
                assert self.version is not None
                async for event in self.source.watch(self.kind, self.version):
                    self.apply(event)
                    failures = 0
                failures = 0  # the server ended the watch on time: watch again
            except asyncio.CancelledError:
                raise
            except Expired:
                log.info("%s: the watch expired; listing again", self.kind.name)
                self.version = None
            except Exception as e:
                failures += 1
                first, cap = BACKOFF
                delay = min(cap, first * 2 ** (failures - 1)) * random.uniform(1.0, 1.2)
                level = logging.INFO if failures == 1 else logging.DEBUG
                log.log(level, "%s: watch failed (%s); again in %.2g s", self.kind.name, e, delay)
                await asyncio.sleep(delay)


class ApiSource:
    """The API server, through one API client: paged LISTs, and WATCHes with bookmarks
    and a server-side timeout."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api

    async def list(self, kind: Kind, each: Callable[[Body], Body | None]) -> tuple[list[Body], str]:
        items: list[Body] = []
        token = None
        version = ""
        while True:
            # Each page is kept as stored before the next is read: the whole objects of
            # 10,000 pods never live at once.
            page = await list_page(self.api, kind.path, kind.selector, token)
            items += [kept for item in page.get("items") or [] if (kept := each(item))]
            version = version or (page.get("metadata") or {}).get("resourceVersion") or ""
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return items, version

    async def watch(self, kind: Kind, version: str) -> AsyncIterator[Body]:
        seconds = random.randint(*WATCH_SECONDS)
        query: list[tuple[str, Any]] = [
            ("watch", "true"),
            ("allowWatchBookmarks", "true"),
            ("resourceVersion", version),
            ("timeoutSeconds", seconds),
        ]
        if kind.selector:
            query.append(("labelSelector", kind.selector))
        response = await self.api.call_api(
            kind.path,
            "GET",
            query_params=query,
            auth_settings=["BearerToken"],
            _preload_content=False,
            # A stream silent past the server's own end (bookmarks come every minute) is
            # a dead connection.
            _request_timeout=aiohttp.ClientTimeout(sock_connect=30, sock_read=seconds + 90),
        )
        with contextlib.closing(response):
            if response.status == 410:
                raise Expired("resourceVersion expired")
            if response.status >= 400:
                raise WatchError(f"{response.status}: {(await response.read())[:200]!r}")
            while line := await response.content.readline():
                if line.strip():
                    yield json.loads(line)
