"""Schedules: a session suspended and resumed at times given as cron expressions, in an
IANA time zone ("suspend weekdays at 19:00 Europe/Paris, resume at 08:00"). Pure: the
time is an argument; cronsim (healthchecks.io's cron engine) does the calendar, DST
included.

The operator asks only two things: which fire is the latest at or before now (to act on
it once: the annotation `kabin.dev/schedule-fired` records the fires acted on), and when
the next one is (its exact timer; no poll). A schedule set or changed on a session acts
from its next fire, not on one already past (`restarted`), as Coder's autostart does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from kabin.api.session import Schedule

ACTIONS = ("suspend", "resume")
SHORTEST = timedelta(minutes=15)
"""The shortest time between two fires of one expression: each stops or starts pods."""


@dataclass(frozen=True)
class Fire:
    """One moment a schedule acts."""

    action: str  # suspend or resume
    at: datetime


def zone(schedule: Schedule) -> ZoneInfo:
    return ZoneInfo(schedule.time_zone or "UTC")


def _exprs(schedule: Schedule) -> list[tuple[str, str]]:
    return [(a, e) for a, e in (("suspend", schedule.suspend), ("resume", schedule.resume)) if e]


def problems(schedule: Schedule | None) -> list[tuple[str, str]]:
    """What is wrong with a schedule, as (field, problem): a cron expression cronsim
    refuses, an unknown time zone, or the same expression to suspend and to resume."""
    if schedule is None:
        return []
    found = []
    try:
        tz = zone(schedule)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a folder ("America")
        return [
            (
                "spec.schedule.timeZone",
                f'"{schedule.time_zone}" is not an IANA time zone name (for example '
                '"Europe/Paris")',
            )
        ]
    now = datetime.now(tz)
    for action, expr in _exprs(schedule):
        field = f"spec.schedule.{action}"
        if len(expr.split()) != 5:
            found.append((field, f'"{expr}" must have 5 fields: minute hour day month weekday'))
            continue
        try:
            fires = CronSim(expr, now)
            gap = -(next(fires) - next(fires))
        except CronSimError as e:
            found.append(
                (field, f'"{expr}" is not a cron expression ({e}); for example "0 19 * * 1-5"')
            )
            continue
        if gap < SHORTEST:
            found.append((field, f'"{expr}" fires every {gap}; at most every 15 minutes'))
    if not found and schedule.suspend and schedule.suspend == schedule.resume:
        found.append(("spec.schedule.resume", "is the same as spec.schedule.suspend"))
    return found


def latest(schedule: Schedule | None, now: datetime) -> Fire | None:
    """The schedule's last fire at or before `now` (the suspend one if both fire then)."""
    if schedule is None:
        return None
    local = now.astimezone(zone(schedule))
    # cronsim's reverse walk starts strictly before a whole second: 1 µs on includes now.
    start = local + timedelta(microseconds=1) if local.microsecond == 0 else local
    fires = [
        Fire(action, next(CronSim(expr, start, reverse=True))) for action, expr in _exprs(schedule)
    ]
    return max(fires, key=lambda f: (f.at, f.action == "suspend"), default=None)


def upcoming(schedule: Schedule | None, now: datetime) -> datetime | None:
    """The schedule's next fire after `now`."""
    if schedule is None:
        return None
    local = now.astimezone(zone(schedule))
    return min((next(CronSim(expr, local)) for _, expr in _exprs(schedule)), default=None)


def due(
    schedule: Schedule | None, now: datetime, *, since: datetime, acted: datetime | None
) -> Fire | None:
    """The fire to act on now: the latest one, if it came after `since` (the session's
    creation) and after the last fire acted on."""
    fire = latest(schedule, now)
    if fire is None or fire.at <= since or (acted is not None and fire.at <= acted):
        return None
    return fire


def restarted(
    old: Mapping[str, object] | None, new: Mapping[str, object] | None, now: datetime
) -> str | None:
    """The kabin.dev/schedule-fired time that an update of spec.schedule from `old` to
    `new` (raw, as admission sees them) records: now, so that a fire already past (a
    suspend at 19:00, set at 20:00) is not acted on at once; None when the schedule is
    unchanged or removed."""
    if not new or new == old:
        return None
    return now.astimezone(UTC).isoformat()


def explain(schedule: Schedule) -> str | None:
    """The schedule in words ("suspend at 19:00 on Monday through Friday; resume at 08:00
    on Monday through Friday (Europe/Paris)"); None for one that admission would refuse."""
    if problems(schedule):
        return None
    now = datetime.now(zone(schedule))
    parts = []
    for action, expr in _exprs(schedule):
        words = CronSim(expr, now).explain()
        parts.append(f"{action} {words[:1].lower()}{words[1:]}")
    return "; ".join(parts) + f" ({schedule.time_zone or 'UTC'})" if parts else None
