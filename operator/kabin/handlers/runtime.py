"""What the operator's handlers share, made once at start-up and kept in kopf's memo
(kopf's idiom for operator-wide state): the settings, read once, the cache of what
the watches saw, and the work queues of sessions and of drives. Handlers receive it
as `memo.kabin`; the queues hand it to each reconcile."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import kopf

from kabin.handlers.cache import Cache
from kabin.handlers.leader import Leader
from kabin.handlers.queues import Places
from kabin.handlers.workqueue import WorkQueue
from kabin.settings import OperatorSettings


@dataclass
class Runtime:
    """The operator's shared state."""

    settings: OperatorSettings
    cache: Cache = field(init=False)
    sessions: WorkQueue = field(init=False)
    drives: WorkQueue = field(init=False)
    leader: Leader | None = None  # with leader election: this replica's part in it
    places: Places | None = None  # queued sessions' places in line (Kueue)
    # (namespace, session) -> (pod UID, Kueue's message) of a pod Kueue preempted, seen in
    # a pod event: Kueue deletes the pod at once, often before a reconcile could see it.
    evictions: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    _posting: set[asyncio.Task[None]] = field(default_factory=set)

    def announce(self, posting: Coroutine[Any, Any, None]) -> None:
        """Post an Event in the background: the user's story, which no reconcile waits
        for (`objects.post_event` is best effort already)."""
        task = asyncio.get_running_loop().create_task(posting)
        self._posting.add(task)
        task.add_done_callback(_posted)
        task.add_done_callback(self._posting.discard)


def _posted(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logging.getLogger("kabin.events").info("An Event was not recorded: %s", task.exception())


def of(memo: Any) -> Runtime | None:
    """The runtime in kopf's memo (None before start-up made it)."""
    found: Runtime | None = getattr(memo, "kabin", None)
    return found


def keep(memo: kopf.Memo, runtime: Runtime) -> None:
    memo.kabin = runtime
