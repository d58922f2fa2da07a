"""Drive locks as pure decisions: who holds a drive, who waits, what is stale.

A drive is held by at most one session. The hold starts when the session is
granted the drive, before its pods exist, and ends only when none of its pods
can still write: each has finished (Succeeded or Failed) or is gone. A
Terminating pod still holds the drive. Waiters are served first come, first
served, by creation time (then name, since timestamps have whole seconds).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from kabin.api.drive import Hold

FINISHED = frozenset({"Succeeded", "Failed"})


@dataclass(frozen=True)
class Claimant:
    """A session that names the drive (or would use it as its default drive)."""

    name: str
    created: datetime
    wants: bool  # False once it is finished, expired or being deleted
    pod_phases: tuple[str, ...] = ()  # phases of its pods that still exist (Terminating too)

    @property
    def writing(self) -> bool:
        """Whether any of its pods can still write to the drive."""
        return any(phase not in FINISHED for phase in self.pod_phases)


@dataclass(frozen=True)
class Decision:
    """Who holds the drive and who waits, after this decision."""

    holder: Hold | None
    waiting: list[Hold]
    released: str | None = None  # the session whose hold just ended, if any


def _order(c: Claimant) -> tuple[datetime, str]:
    return (c.created, c.name)


def decide(
    *, holder: Hold | None, claimants: list[Claimant], orphan_writing: bool, now: datetime
) -> Decision:
    """Who holds the drive now.

    `claimants` are the sessions that exist and name the drive. `orphan_writing`
    says whether pods of the current holder still run although its Session is
    gone (the garbage collector is still deleting them).
    """
    by_name = {c.name: c for c in claimants}
    released = None
    if holder is not None:
        current = by_name.get(holder.session)
        still_holds = orphan_writing if current is None else current.wants or current.writing
        if not still_holds:
            released, holder = holder.session, None
    waiters = sorted(
        (c for c in claimants if c.wants and (holder is None or c.name != holder.session)),
        key=_order,
    )
    if holder is None and waiters:
        first = waiters.pop(0)
        holder = Hold(session=first.name, since=now)
    return Decision(
        holder=holder,
        waiting=[Hold(session=c.name, since=c.created) for c in waiters],
        released=released,
    )
