"""When a session ends: its start, renewals, last activity, and the expiry that follows
from them (absolute: start or last renew + timeout; idle: the latest of start, renew,
activity and the activity Lease's making + timeout). Pure; `now` is an argument."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from kabin.api.session import Renewal, SessionStatus, Usage
from kabin.logic.status.model import Observed


@dataclass(frozen=True)
class Clock:
    """A session's times, as of one reconcile."""

    renewal: Renewal | None
    start: datetime | None
    last_activity: datetime | None
    last_source: str | None
    usage: Usage | None
    expiry: datetime | None


def renews(renew: str | None, acted: str | None) -> bool:
    """Whether the kabin.dev/renew value `renew` is a request not yet acted on (`acted`:
    the token of the last one that was, status.renewal.token)."""
    return bool(renew) and renew != acted


def _renewal(previous: SessionStatus, renew: str | None, now: datetime) -> Renewal | None:
    """A new kabin.dev/renew value restarts the timeout, from now."""
    if renew and renews(renew, previous.renewal.token if previous.renewal else None):
        return Renewal(token=renew, time=now)
    return previous.renewal


def clock(observed: Observed, *, now: datetime, running: bool) -> Clock:
    """The session's start, renewal, last activity, usage and expiry."""
    prev, resolved, recorded = observed.previous, observed.resolved, observed.activity
    renewal = _renewal(prev, observed.renew, now)
    start = prev.start_time or (now if running else None)
    last_activity, last_source = prev.last_activity_time, prev.last_activity_source
    # Several replicas' agents write the Lease; the activity never goes back.
    if (
        recorded is not None
        and recorded.time is not None
        and (last_activity is None or recorded.time > last_activity)
    ):
        last_activity, last_source = recorded.time, recorded.source
    usage = prev.usage
    if recorded is not None and recorded.usage is not None:
        with contextlib.suppress(ValueError):
            usage = Usage.model_validate(recorded.usage)
    renewed = [renewal.time] if renewal else []
    expiry: datetime | None = None
    if resolved.timeout_mode == "absolute" and start is not None:
        expiry = max([start, *renewed]) + timedelta(seconds=resolved.timeout)
    elif resolved.timeout_mode == "idle" and start is not None and recorded is not None:
        # From the latest of the start, the last renew, the last activity, and the
        # Lease's making: until the Lease exists (the operator makes it before the pods,
        # and again for pods made before kabin had agents) nothing can see activity,
        # so nothing is culled for the lack of it.
        since = [start, *renewed, *filter(None, [recorded.since, last_activity])]
        expiry = max(since) + timedelta(seconds=resolved.timeout)
    return Clock(renewal, start, last_activity, last_source, usage, expiry)


def warn_at(expiry: datetime | None, expiring_soon: float) -> datetime | None:
    """When the ExpiringSoon warning is due."""
    return expiry - timedelta(seconds=expiring_soon) if expiry else None
