"""Places in line: where each queued session stands in its Kueue LocalQueue, read from
Kueue's visibility API (`pendingworkloads`), which a reconcile puts in the session's
Queued condition ("3rd in line for 2 GPUs in queue team-a").

Kueue has no watch of positions, so the leader polls, and only the LocalQueues where a
session waits, one read each; a session whose place moved is reconciled. The more
sessions wait, the less often it polls (about 20 places a second at most), so a
long queue that moves costs a bounded number of status writes.

At start (and until Kueue is there), it makes the default WorkloadPriorityClasses, by
which interactive sessions come before headless ones.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from kabin import k8s
from kabin.api import names
from kabin.k8s import errors
from kabin.k8s import kueue as k8s_kueue
from kabin.logic.status import Place

if TYPE_CHECKING:
    from kabin.handlers.runtime import Runtime

log = logging.getLogger("kabin.queues")

Key = tuple[str, str]  # (namespace, session)
RECHECK = 60.0
"""Seconds between looks for Kueue while it is not installed."""
PLACES_PER_SECOND = 20.0

PRIORITIES = (
    ("priority_interactive", 1000, "kabin: interactive sessions (people waiting at a screen)"),
    ("priority_headless", 100, "kabin: headless runs (after interactive sessions)"),
)


class Places:
    """The places in line of queued sessions, as Kueue last said."""

    def __init__(self, state: Runtime) -> None:
        self._state = state
        self._known: dict[Key, Place] = {}
        # (namespace, LocalQueue) -> its ClusterQueue (Kueue keeps spec.clusterQueue fixed).
        self._cluster_queues: dict[tuple[str, str], str | None] = {}
        self._installed = False
        self._checked = 0.0
        self._task: asyncio.Task[None] | None = None

    def of(self, namespace: str, name: str) -> Place | None:
        return self._known.get((namespace, name))

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.run(), name="queue places")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def run(self) -> None:
        interval = self._state.settings.queue_poll_interval
        while True:
            waiting = 0
            try:
                waiting = await self.step()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # Kueue down, the API server away: try again later
                failure = errors.classify(e)
                log.info("Places in line not read: %s", failure.message if failure else e)
            await asyncio.sleep(max(interval, waiting / PLACES_PER_SECOND))

    def _leading(self) -> bool:
        leader = self._state.leader
        return leader is None or leader.leading

    async def _kueue(self) -> bool:
        """Whether Kueue is installed (looked for again every minute while it is not);
        once it is, the default WorkloadPriorityClasses exist."""
        if self._installed or time.monotonic() - self._checked < RECHECK:
            return self._installed
        self._checked = time.monotonic()
        api = await k8s.shared()
        if not await k8s_kueue.installed(api):
            return False
        ours = self._state.settings
        for setting, value, description in PRIORITIES:
            name = getattr(ours, setting)
            if await k8s_kueue.create_priority_class(api, name, value, description):
                log.info("Made WorkloadPriorityClass %s (value %d)", name, value)
        self._installed = True
        return True

    def _waiting(self) -> dict[tuple[str, str], list[str]]:
        """(namespace, LocalQueue) -> the sessions waiting in it, from the cache."""
        queues: dict[tuple[str, str], list[str]] = {}
        for body in self._state.cache.informers["Session"].store.objects.values():
            status = body.get("status") or {}
            queue = status.get("queue")
            if queue and names.is_true(status, names.QUEUED):
                meta = body["metadata"]
                queues.setdefault((meta["namespace"], queue), []).append(meta["name"])
        return queues

    async def step(self) -> int:
        """Read the places of every waiting session once; reconcile those that moved.
        Returns how many sessions wait."""
        if not self._leading() or not await self._kueue():
            return 0
        api = await k8s.shared()
        cache = self._state.cache
        places: dict[Key, Place] = {}
        queues = self._waiting()
        for (namespace, queue), sessions in queues.items():
            items = await k8s_kueue.pending(api, namespace, queue)
            if items is None:
                problem = f'no LocalQueue "{queue}" in namespace {namespace}'
                places.update({(namespace, s): Place(problem=problem) for s in sessions})
                self._cluster_queues.pop((namespace, queue), None)
                continue
            if (namespace, queue) not in self._cluster_queues:
                local = await k8s_kueue.local_queue(api, namespace, queue)
                spec = (local or {}).get("spec") or {}
                self._cluster_queues[(namespace, queue)] = spec.get("clusterQueue")
            cluster_queue = self._cluster_queues[(namespace, queue)]
            for item in items:
                for ref in item["metadata"].get("ownerReferences") or []:
                    pod = cache.pod(namespace, ref["name"]) if ref.get("kind") == "Pod" else None
                    session = ((pod or {}).get("metadata", {}).get("labels") or {}).get(
                        names.SESSION_LABEL
                    )
                    if session:
                        places[(namespace, session)] = Place(
                            local=int(item.get("positionInLocalQueue", 0)) + 1,
                            cluster=int(item.get("positionInClusterQueue", 0)) + 1,
                            cluster_queue=cluster_queue,
                        )
                        break
        for gone in self._cluster_queues.keys() - queues.keys():
            del self._cluster_queues[gone]  # no one waits there now
        known = self._known
        moved = [k for k in places.keys() | known.keys() if places.get(k) != known.get(k)]
        self._known = places
        for key in moved:
            self._state.sessions.now(key)
        return sum(map(len, queues.values()))
