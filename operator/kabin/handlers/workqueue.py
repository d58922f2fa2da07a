"""The work queue of reconciles (of sessions, and apart of drives), with deadlines,
served by one task.

Watch events ask for a reconcile now; reconciles post the session's next
deadline (its expiry). One task sleeps until the earliest deadline, instead of
a poller per session. Like a controller work queue, a session is reconciled by
at most one task at a time; requests that arrive before it starts are folded
into it, those that arrive while it runs into one more run after it. At most
`workers` reconciles run at once (controller-runtime's MaxConcurrentReconciles),
so that a burst of work leaves the event loop free to answer admission webhooks.
Every `resync` seconds every known session is reconciled again, the
level-triggered safety net behind the watch events.

Changes that decide nothing on their own (a pod bound to a node, a Lease renewed) ask
for a reconcile `later`, within a batch period, as Kubernetes' Job controller batches
its pod events (`syncJobBatchPeriod`): in a burst, a pod's ADDED, bound and started
events then make one status write instead of one each.

A reconcile that fails is retried after a per-key exponential backoff with jitter
(controller-runtime's 5 ms doubling to 1000 s), reset by a success. The first failure
of a streak, or one with a new reason, is one warning line; its retries and traceback
are logged at debug, so a failing object does not flood the log. A failure the
reconciler already wrote to the object's status (`Reported`) is logged at debug only.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import random
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime

from prometheus_client import Counter, Gauge

from kabin.api.names import Reason
from kabin.k8s import errors

Key = tuple[str, str]  # (namespace, name)

OBJECTS = Gauge("kabin_workqueue_objects", "Objects the queue keeps track of.", ["queue"])
DEPTH = Gauge("kabin_workqueue_depth", "Reconciles waiting for a worker.", ["queue"])
BUSY = Gauge("kabin_workqueue_busy", "Reconciles running now.", ["queue"])
OLDEST = Gauge(
    "kabin_workqueue_oldest_seconds", "How long the oldest waiting reconcile has waited.", ["queue"]
)
RETRIES = Counter(
    "kabin_workqueue_retries_total", "Reconciles that failed and wait to retry.", ["queue"]
)


class WorkQueue:
    """Deadlines and pending reconciles of one kind of object (sessions or drives)."""

    def __init__(
        self,
        reconcile: Callable[[str, str], Coroutine[None, None, None]],
        *,
        resync: float,
        what: str,
        backoff: tuple[float, float] = (0.005, 1000.0),
        workers: int = 8,
        active: bool = True,
    ) -> None:
        self.active = active  # False in a replica that does not lead: it only keeps track
        self._reconcile = reconcile
        self._workers = asyncio.Semaphore(workers)
        self._started: set[Key] = set()
        self._resync = resync
        self._backoff = backoff
        self._failures: dict[Key, tuple[int, str]] = {}  # failed runs in a row, last reason
        self._log = logging.getLogger(f"kabin.{what}s")
        self._what = what
        self._task: asyncio.Task[None] | None = None
        self._due: dict[Key, float] = {}  # monotonic deadline per session
        self._batched: dict[Key, float] = {}  # monotonic time a batched request is due
        self._heap: list[tuple[float, Key]] = []
        self._known: set[Key] = set()
        self._running: dict[Key, asyncio.Task[None]] = {}
        self._again: set[Key] = set()
        self._changed = asyncio.Event()
        self._waiting: dict[Key, float] = {}  # monotonic time each waiting reconcile was asked
        OBJECTS.labels(what).set_function(lambda: len(self._known))
        DEPTH.labels(what).set_function(lambda: len(self._waiting))
        BUSY.labels(what).set_function(lambda: len(self._started))
        OLDEST.labels(what).set_function(self._oldest)
        self._retries = RETRIES.labels(what)

    def _oldest(self) -> float:
        return time.monotonic() - min(self._waiting.values(), default=time.monotonic())

    def now(self, key: Key) -> None:
        """Reconcile `key` as soon as possible (once, however often asked meanwhile)."""
        self._known.add(key)
        if not self.active:
            return  # the leader does it; this replica reconciles all once it leads
        if key in self._running:
            if key in self._started:  # it may have read the world before this change
                self._again.add(key)
            return
        task = asyncio.get_running_loop().create_task(self._run(key), name=f"reconcile {key}")
        self._running[key] = task
        self._waiting[key] = time.monotonic()

    def later(self, key: Key, within: float) -> None:
        """Reconcile `key` within `within` seconds: requests until then, `now` ones
        included, fold into that one run."""
        self._known.add(key)
        if not self.active or key in self._batched:
            return
        if key in self._running and key not in self._started:
            return  # a run about to start reads the world after this change
        deadline = time.monotonic() + within
        self._batched[key] = deadline
        heapq.heappush(self._heap, (deadline, key))
        self._changed.set()

    async def _run(self, key: Key) -> None:
        try:
            async with self._workers:
                self._batched.pop(key, None)  # this run reads what they asked it to
                self._waiting.pop(key, None)
                self._started.add(key)
                await self._reconcile(*key)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            delay = self._failed(key, e)
            if delay is not None:
                self.at(key, datetime.fromtimestamp(time.time() + delay, UTC))
        else:
            self._failures.pop(key, None)
        finally:
            del self._running[key]
            self._waiting.pop(key, None)
            self._started.discard(key)
            if key in self._again:
                self._again.discard(key)
                self.now(key)

    def _failed(self, key: Key, error: Exception) -> float | None:
        """Log a failed reconcile (once per streak and reason) and return the backoff; None:
        no retry, because the object's namespace is being deleted (nothing can be made in
        it, and the object goes with it)."""
        failure = errors.classify(error)
        reason = failure.reason if failure else type(error).__name__
        if reason == Reason.NAMESPACE_TERMINATING:
            self._log.debug(
                "Not retrying %s %s/%s: its namespace is being deleted", self._what, *key
            )
            return None
        count, before = self._failures.get(key, (0, ""))
        self._failures[key] = (count + 1, reason)
        self._retries.inc()
        base, cap = self._backoff
        delay = min(cap, base * 2.0**count) * random.uniform(1.0, 1.2)  # with jitter
        # Conflicts and NotFound mean the cache is behind: a write over an old version,
        # or to an object (or namespace) that is gone. The watch event that follows
        # brings the reconcile back, or the deletion forgets it.
        quiet = isinstance(error, errors.Reported) or reason in (Reason.CONFLICT, Reason.NOT_FOUND)
        if quiet or (count and reason == before):
            self._log.debug(
                "Reconciling %s %s/%s failed again (%s); retrying in %.3g s",
                self._what, *key, error, delay, exc_info=True,
            )  # fmt: skip
        elif failure is None:  # not the API's answer: a bug, with its traceback
            self._log.error(
                "Reconciling %s %s/%s failed unexpectedly; retrying with backoff",
                self._what, *key, exc_info=True,
            )  # fmt: skip
        else:
            self._log.warning(
                "Reconciling %s %s/%s failed: %s: %s; retrying with backoff",
                self._what, *key, reason, failure.message,
            )  # fmt: skip
            self._log.debug("The failure of %s %s/%s", self._what, *key, exc_info=True)
        return delay

    def at(self, key: Key, when: datetime | None) -> None:
        """Reconcile `key` at `when` (wall clock); None: no deadline."""
        self._known.add(key)
        if when is None:
            self._due.pop(key, None)
            return
        delay = (when - datetime.now(UTC)).total_seconds()
        deadline = time.monotonic() + max(delay, 0.0)
        self._due[key] = deadline
        heapq.heappush(self._heap, (deadline, key))
        self._changed.set()

    def activate(self) -> None:
        """This replica now leads: reconcile everything it knows of."""
        self.active = True
        for key in list(self._known):
            self.now(key)

    async def deactivate(self) -> None:
        """This replica no longer leads: stop every reconcile, and start none."""
        self.active = False
        running = list(self._running.values())
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)

    def forget(self, key: Key) -> None:
        """The object is gone: keep nothing of it."""
        self._due.pop(key, None)
        self._batched.pop(key, None)
        self._known.discard(key)
        self._failures.pop(key, None)

    def start(self) -> None:
        """Start serving, in the running event loop."""
        self._task = asyncio.get_running_loop().create_task(self.run(), name=f"{self._what}s")

    async def stop(self) -> None:
        """Stop serving, and any reconcile in flight (a restart converges anyway)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def run(self) -> None:
        """Sleep until the next deadline or resync; wake whoever is due. Runs until cancelled."""
        next_resync = time.monotonic() + self._resync
        try:
            while True:
                now = time.monotonic()
                while self._heap and self._heap[0][0] <= now:
                    deadline, key = heapq.heappop(self._heap)
                    if self._due.get(key) == deadline:  # not superseded by a later one
                        del self._due[key]
                        self.now(key)
                    elif self._batched.get(key) == deadline:  # not served by a run since
                        del self._batched[key]
                        self.now(key)
                if now >= next_resync:
                    next_resync = now + self._resync
                    for key in list(self._known):
                        self.now(key)
                until = min([next_resync, *(d for d, _ in self._heap[:1])])
                self._changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), max(until - time.monotonic(), 0))
        finally:
            for task in list(self._running.values()):
                task.cancel()
            await asyncio.gather(*self._running.values(), return_exceptions=True)
