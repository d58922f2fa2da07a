"""What the operator's handlers share, made once at start-up and kept in kopf's memo
(kopf's idiom for operator-wide state): the settings, read once, the cache of what
the watches saw, and the work queues of sessions and of drives. Handlers receive it
as `memo.kabin`; the queues hand it to each reconcile."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import kopf

from kabin.handlers.cache import Cache
from kabin.handlers.workqueue import WorkQueue
from kabin.settings import OperatorSettings


@dataclass
class Runtime:
    """The operator's shared state."""

    settings: OperatorSettings
    cache: Cache
    sessions: WorkQueue = field(init=False)
    drives: WorkQueue = field(init=False)


def of(memo: Any) -> Runtime | None:
    """The runtime in kopf's memo (None before start-up made it)."""
    found: Runtime | None = getattr(memo, "kabin", None)
    return found


def keep(memo: kopf.Memo, runtime: Runtime) -> None:
    memo.kabin = runtime
