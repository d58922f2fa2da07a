"""Schedules, and what the operator writes to a Session of its own: the fire to act on
(once each, after the session's creation, in its time zone, across DST), the next timer,
the admission checks, and the patches for a schedule, a timeout and a resume."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from kabin.api.session import Schedule, SessionSpec, SessionStatus
from kabin.handlers.sessions import own_change
from kabin.logic import schedule
from kabin.logic.admission import Policy, check_session, runs
from kabin.logic.schedule import Fire
from kabin.logic.status import Outcome
from kabin.settings import OperatorSettings

PARIS = ZoneInfo("Europe/Paris")
WORKDAYS = Schedule(suspend="0 19 * * 1-5", resume="0 8 * * 1-5", time_zone="Europe/Paris")
CREATED = datetime(2026, 12, 1, 9, 0, tzinfo=PARIS)  # a Tuesday


def paris(*args: int) -> datetime:
    return datetime(*args, tzinfo=PARIS)


@pytest.mark.parametrize(
    ("now", "action", "at"),
    [
        (paris(2026, 12, 1, 18, 59, 59), None, None),  # before its first fire
        (paris(2026, 12, 1, 19, 0, 0), "suspend", paris(2026, 12, 1, 19, 0)),  # on the dot
        (paris(2026, 12, 2, 7, 0), "suspend", paris(2026, 12, 1, 19, 0)),
        (paris(2026, 12, 2, 8, 0, 1), "resume", paris(2026, 12, 2, 8, 0)),
        (paris(2026, 12, 5, 12, 0), "suspend", paris(2026, 12, 4, 19, 0)),  # Saturday
    ],
)
def test_the_fire_to_act_on_is_the_latest_since_the_creation(
    now: datetime, action: str | None, at: datetime | None
) -> None:
    fire = schedule.due(WORKDAYS, now, since=CREATED, acted=None)
    assert (fire.action, fire.at) == (action, at) if fire else (action, at) == (None, None)


def test_each_fire_is_acted_on_once() -> None:
    now = paris(2026, 12, 2, 7, 0)
    first = schedule.due(WORKDAYS, now, since=CREATED, acted=None)
    assert first is not None
    assert schedule.due(WORKDAYS, now, since=CREATED, acted=first.at) is None
    # The user resumed it by hand after the 19:00 suspend: nothing more until 08:00.
    assert schedule.due(WORKDAYS, paris(2026, 12, 2, 7, 59), since=CREATED, acted=first.at) is None


def test_a_schedule_set_after_its_fire_waits_for_the_next_one() -> None:
    # Set on a running session at 20:00 on Tuesday: the 19:00 suspend is past, not due.
    raw = {"suspend": "0 19 * * 1-5", "resume": "0 8 * * 1-5", "timeZone": "Europe/Paris"}
    set_at = paris(2026, 12, 1, 20, 0)
    since = schedule.restarted(None, raw, set_at)
    assert since == "2026-12-01T19:00:00+00:00"  # 20:00 in Paris, in UTC
    acted = datetime.fromisoformat(since)
    assert schedule.due(WORKDAYS, set_at, since=CREATED, acted=acted) is None
    fire = schedule.due(WORKDAYS, paris(2026, 12, 2, 8, 0), since=CREATED, acted=acted)
    assert fire is not None and fire.action == "resume"
    # The same schedule applied again (GitOps) or removed records nothing.
    assert schedule.restarted(raw, dict(raw), set_at) is None
    assert schedule.restarted(raw, None, set_at) is None
    assert schedule.restarted(raw, {**raw, "resume": "30 8 * * 1-5"}, set_at) == since


def test_the_next_timer_is_the_next_fire_in_the_zone_across_dst() -> None:
    # 29 March 2026: Paris moves from UTC+1 to UTC+2 at 02:00.
    every_day = Schedule(suspend="0 19 * * *", time_zone="Europe/Paris")
    before = schedule.upcoming(every_day, datetime(2026, 3, 28, 20, 0, tzinfo=UTC))
    after = schedule.upcoming(every_day, datetime(2026, 3, 29, 20, 0, tzinfo=UTC))
    assert before is not None and after is not None
    assert before.astimezone(UTC) == datetime(2026, 3, 29, 17, 0, tzinfo=UTC)
    assert after.astimezone(UTC) == datetime(2026, 3, 30, 17, 0, tzinfo=UTC)
    assert schedule.upcoming(None, datetime.now(UTC)) is None


@pytest.mark.parametrize(
    ("given", "allowed", "field", "words"),
    [
        (Schedule(suspend="61 * * * *"), None, "spec.schedule.suspend", "not a cron expression"),
        (Schedule(suspend="0 19 * * *", time_zone="Mars/Base"), None, "spec.schedule.timeZone",
         "IANA"),
        (Schedule(suspend="0 8 * * *", resume="0 8 * * *"), None, "spec.schedule.resume",
         "the same"),
        (WORKDAYS, "Forbidden", "spec.schedule", "forbids schedules"),
        (WORKDAYS, "SuspendOnly", "spec.schedule.resume", "not resume them"),
        (Schedule(suspend="0 19 * * *"), "SuspendOnly", None, None),
        (Schedule(suspend="0 19 * * * *"), None, "spec.schedule.suspend", "5 fields"),
        (Schedule(resume="*/5 * * * *"), None, "spec.schedule.resume", "every 15 minutes"),
        (Schedule(suspend="0 19 * * *", time_zone="America"), None, "spec.schedule.timeZone",
         "IANA"),
        (Schedule(suspend="*/15 * * * *"), None, None, None),
        (WORKDAYS, None, None, None),
    ],
)  # fmt: skip
def test_admission_names_the_schedules_field_and_the_environments_limit(
    given: Schedule, allowed: str | None, field: str | None, words: str | None
) -> None:
    from kabin.api.environment import EnvironmentConfigSpec

    env = EnvironmentConfigSpec.model_validate({"image": "x", "schedules": allowed})
    spec = SessionSpec(type="notebook", environment="nb", schedule=given)
    problems = check_session(
        spec=spec,
        namespace="ns",
        environment=env,
        drive_exists=None,
        policy=Policy.of(OperatorSettings()),
    )
    if field is None:
        assert problems == []
    else:
        assert [p.field for p in problems] == [field]
        assert words is not None and words in problems[0].message


RUNNING = Outcome(status=SessionStatus(phase="Running"))
SUSPENDED = Outcome(status=SessionStatus(phase="Suspended"))
AT = datetime(2026, 12, 1, 18, 0, tzinfo=UTC)


def spec(suspend: bool) -> SessionSpec:
    return SessionSpec(type="notebook", image="x", suspend=suspend)


@pytest.mark.parametrize(
    ("suspend", "outcome", "annotations", "patch"),
    [
        pytest.param(
            False,
            Outcome(status=RUNNING.status, fire=Fire("suspend", AT)),
            {},
            {
                "metadata": {
                    "annotations": {
                        "kabin.dev/schedule-fired": "2026-12-01T18:00:00+00:00",
                        "kabin.dev/suspend-reason": "Schedule",
                    }
                },
                "spec": {"suspend": True},
            },
            id="schedule-suspends",
        ),
        pytest.param(
            True,
            Outcome(status=SUSPENDED.status, fire=Fire("resume", AT)),
            {"kabin.dev/suspend-reason": "Schedule"},
            {
                "metadata": {
                    "annotations": {
                        "kabin.dev/schedule-fired": "2026-12-01T18:00:00+00:00",
                        "kabin.dev/suspend-reason": None,
                    }
                },
                "spec": {"suspend": False},
            },
            id="schedule-resumes",
        ),
        pytest.param(
            True,
            Outcome(status=SUSPENDED.status, fire=Fire("suspend", AT)),
            {},
            {
                "metadata": {
                    "annotations": {"kabin.dev/schedule-fired": "2026-12-01T18:00:00+00:00"}
                }
            },
            id="already-suspended-the-fire-is-recorded",
        ),
        pytest.param(
            False,
            Outcome(status=RUNNING.status, suspend="IdleTimeout"),
            {},
            {
                "metadata": {"annotations": {"kabin.dev/suspend-reason": "IdleTimeout"}},
                "spec": {"suspend": True},
            },
            id="idle-timeout",
        ),
        pytest.param(
            False,
            Outcome(status=SessionStatus(phase="Pending")),
            {"kabin.dev/suspend-reason": "IdleTimeout"},
            {"metadata": {"annotations": {"kabin.dev/suspend-reason": None}}},
            id="resumed-the-reason-goes",
        ),
        pytest.param(True, SUSPENDED, {"kabin.dev/suspend-reason": "User"}, None, id="nothing"),
    ],
)
def test_what_the_operator_writes_to_a_session(
    suspend: bool, outcome: Outcome, annotations: dict[str, str], patch: dict[str, object] | None
) -> None:
    assert own_change(spec(suspend), annotations, outcome)[0] == patch


def test_the_schedule_in_words() -> None:
    assert schedule.explain(WORKDAYS) == (
        "suspend at 19:00 on Monday through Friday; "
        "resume at 08:00 on Monday through Friday (Europe/Paris)"
    )


@pytest.mark.parametrize(
    ("session", "counted"),
    [
        ({"spec": {"type": "notebook"}, "status": {"phase": "Running"}}, True),
        ({"spec": {"type": "headless"}, "status": {"phase": "Running"}}, False),
        ({"spec": {"type": "notebook", "suspend": True}, "status": {"phase": "Running"}}, False),
        # Resuming: spec.suspend is false before the operator writes the phase.
        ({"spec": {"type": "notebook"}, "status": {"phase": "Suspended"}}, True),
        ({"spec": {"type": "notebook"}, "status": {"phase": "Succeeded"}}, False),
        ({"spec": {"type": "notebook"}, "status": {"phase": "Expired"}}, False),
        (
            {
                "metadata": {"annotations": {"kabin.dev/renew": "t2"}},
                "spec": {"type": "notebook"},
                "status": {"phase": "Expired", "renewal": {"token": "t1", "time": "x"}},
            },
            True,  # a new renew brings it back
        ),
    ],
)
def test_what_counts_toward_the_cap(session: dict[str, Any], counted: bool) -> None:
    assert runs({"metadata": {}, **session}) is counted
