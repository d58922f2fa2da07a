"""One task that wakes sessions at their deadlines, instead of a poller per session.

Reconciles post the session's next deadline (its expiry); this task sleeps
until the earliest one and reconciles that session then. A later reconcile
replaces a session's deadline, so activity or a renew simply moves it. Every
`resync_interval` it also re-reconciles every session it knows of, the
level-triggered safety net behind the watch events.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime

Key = tuple[str, str]  # (namespace, name)


class Wakeups:
    """Deadlines of sessions, served by one sleeping task."""

    def __init__(
        self, wake: Callable[[Key], Coroutine[None, None, None]], *, resync: float
    ) -> None:
        self._wake = wake
        self._resync = resync
        self._due: dict[Key, float] = {}  # monotonic deadline per session
        self._heap: list[tuple[float, Key]] = []
        self._known: set[Key] = set()
        self._changed = asyncio.Event()

    def at(self, key: Key, when: datetime | None) -> None:
        """Wake `key` at `when` (wall clock), or never when None."""
        self._known.add(key)
        if when is None:
            self._due.pop(key, None)
            return
        delay = (when - datetime.now(UTC)).total_seconds()
        deadline = time.monotonic() + max(delay, 0.0)
        self._due[key] = deadline
        heapq.heappush(self._heap, (deadline, key))
        self._changed.set()

    def forget(self, key: Key) -> None:
        """The session is gone."""
        self._due.pop(key, None)
        self._known.discard(key)

    async def run(self) -> None:
        """Sleep until the next deadline or resync; wake whoever is due. Runs forever."""
        next_resync = time.monotonic() + self._resync
        while True:
            now = time.monotonic()
            while self._heap and self._heap[0][0] <= now:
                deadline, key = heapq.heappop(self._heap)
                if self._due.get(key) == deadline:  # not superseded by a later reconcile
                    del self._due[key]
                    asyncio.create_task(self._wake(key))  # noqa: RUF006 (reconcile logs its errors)
            if now >= next_resync:
                next_resync = now + self._resync
                for key in list(self._known):
                    asyncio.create_task(self._wake(key))  # noqa: RUF006
            until = min([next_resync, *(d for d, _ in self._heap[:1])])
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), max(until - time.monotonic(), 0))
