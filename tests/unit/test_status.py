"""Status computed from observed pods and the clock, as tables."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kabin.api.environment import EnvironmentConfigSpec, Timeouts
from kabin.api.session import Renewal, SessionSpec, SessionStatus
from kabin.logic import resolve, status
from kabin.logic.activity import Recorded

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
OWNER = resolve.Owner(name="s", namespace="ns", uid="u", user="alice")
NOTEBOOK = EnvironmentConfigSpec.model_validate(
    {
        "image": "nb:1",
        "interfaces": [{"name": "jupyterlab", "port": 8888, "path": "/lab"}],
        "timeouts": {"default": 60},
    }
)
SETTINGS = status.StatusSettings(
    host="h.example", ssh_host="ssh.example", image_pull_grace=30, expiring_soon=10
)


def pod(
    replica: int,
    phase: str = "Running",
    *,
    ready: bool = True,
    gates: dict[str, bool] | None = None,
    scheduled: tuple[str, str] | None = None,
    waiting: str | None = None,
    exit_code: int | None = None,
    age: float = 60,
) -> dict[str, Any]:
    conditions = [{"type": "Ready", "status": str(ready)}]
    for gate, ok in (gates or {}).items():
        conditions.append({"type": f"kabin.dev/{gate}-ready", "status": str(ok)})
    if scheduled:
        conditions.append(
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": scheduled[0],
                "message": scheduled[1],
            }
        )
    state: dict[str, Any] = {"running": {}}
    if waiting:
        state = {"waiting": {"reason": waiting, "message": f"{waiting} happened"}}
    if exit_code is not None:
        state = {"terminated": {"exitCode": exit_code}}
    return {
        "metadata": {
            "name": f"s-{replica}",
            "creationTimestamp": (NOW - timedelta(seconds=age)).isoformat(),
        },
        "spec": {"nodeName": None if scheduled else "cpu-1"},
        "status": {
            "phase": phase,
            "conditions": conditions,
            "containerStatuses": [
                {
                    "name": "main",
                    "image": "nb:1",
                    "state": state,
                    "lastState": {"terminated": {"exitCode": 2}},
                }
            ],
        },
    }


def compute(
    spec: dict[str, Any],
    pods: list[dict[str, Any]],
    previous: SessionStatus | None = None,
    env: EnvironmentConfigSpec | None = NOTEBOOK,
    renew: str | None = None,
    now: datetime = NOW,
    activity: Recorded | None = None,
) -> status.Outcome:
    parsed = SessionSpec.model_validate({"environment": "nb", **spec})
    observed = status.Observed(
        spec=parsed,
        owner=OWNER,
        resolved=resolve.resolve(parsed, env),
        generation=1,
        previous=previous or SessionStatus(),
        pods=pods,
        services={},
        renew=renew,
        activity=activity,
    )
    return status.compute(observed, now=now, settings=SETTINGS)


def conditions(outcome: status.Outcome) -> dict[str, str]:
    return {c.type: c.status for c in outcome.status.conditions or []}


@pytest.mark.parametrize(
    ("spec", "pods", "phase", "ready", "reason"),
    [
        ({"type": "notebook"}, [], "Pending", "False", None),
        (
            {"type": "notebook"},
            [pod(1, "Pending", ready=False, scheduled=("Unschedulable", "0/6 nodes"))],
            "Pending",
            "False",
            None,
        ),
        (
            {"type": "notebook"},
            [pod(1, ready=False, gates={"jupyterlab": False})],
            "Running",
            "False",
            None,
        ),
        ({"type": "notebook"}, [pod(1, gates={"jupyterlab": True})], "Running", "True", None),
        (
            {"type": "notebook", "replicas": 2},
            [pod(1, gates={"jupyterlab": True})],
            "Pending",
            "False",
            None,
        ),
        (
            {"type": "notebook"},
            [pod(1, "Pending", ready=False, waiting="ErrImagePull", age=10)],
            "Pending",
            "False",
            None,
        ),
        (
            {"type": "notebook"},
            [pod(1, "Pending", ready=False, waiting="ErrImagePull", age=31)],
            "Failed",
            "False",
            "ErrImagePull",
        ),
        (
            {"type": "notebook"},
            [pod(1, "Pending", ready=False, waiting="InvalidImageName", age=0)],
            "Failed",
            "False",
            "InvalidImageName",
        ),
        (
            {"type": "notebook"},
            [pod(1, ready=False, waiting="CrashLoopBackOff")],
            "Failed",
            "False",
            "CrashLoopBackOff",
        ),
        (
            {"type": "headless", "replicas": 2},
            [pod(1, "Succeeded", exit_code=0), pod(2)],
            "Running",
            "False",
            None,
        ),
        (
            {"type": "headless", "replicas": 2},
            [pod(1, "Succeeded", exit_code=0), pod(2, "Succeeded", exit_code=0)],
            "Succeeded",
            "False",
            "Completed",
        ),
        (
            {"type": "headless", "replicas": 2},
            [pod(1, "Succeeded", exit_code=0), pod(2, "Failed", exit_code=3)],
            "Failed",
            "False",
            "ReplicaFailed",
        ),
    ],
    ids=[
        "no-pods-yet",
        "unschedulable",
        "running-interface-not-answering",
        "ready",
        "missing-replica",
        "pull-error-within-grace",
        "pull-error-past-grace",
        "invalid-image",
        "crash-loop",
        "headless-half-done",
        "headless-all-succeeded",
        "headless-one-failed",
    ],
)
def test_phase_and_ready(
    spec: dict[str, Any], pods: list[dict[str, Any]], phase: str, ready: str, reason: str | None
) -> None:
    outcome = compute(spec, pods)
    assert outcome.status.phase == phase
    assert conditions(outcome)["Ready"] == ready
    assert outcome.status.reason == reason


def test_failed_replica_message_names_replica_and_exit_code() -> None:
    outcome = compute(
        {"type": "headless", "replicas": 4},
        [pod(1, "Succeeded", exit_code=0), pod(3, "Failed", exit_code=3)],
    )
    assert outcome.status.message == "replica 3 of 4 (pod s-3) failed with exit code 3"


def test_scheduled_condition_carries_the_schedulers_message() -> None:
    message = "0/6 nodes are available: 2 Insufficient nvidia.com/gpu."
    outcome = compute(
        {"type": "notebook"}, [pod(1, "Pending", ready=False, scheduled=("Unschedulable", message))]
    )
    scheduled = next(c for c in outcome.status.conditions or [] if c.type == "Scheduled")
    assert (scheduled.status, scheduled.reason, scheduled.message) == (
        "False",
        "Unschedulable",
        message,
    )


def test_endpoints_and_connect_url() -> None:
    outcome = compute({"type": "notebook"}, [pod(1, gates={"jupyterlab": True})])
    assert outcome.status.connect_url == "https://h.example/session/notebook/ns/s/lab"
    assert [(e.name, e.ready) for e in outcome.status.endpoints or []] == [("jupyterlab", True)]
    assert conditions(outcome)["JupyterlabReady"] == "True"


def test_terminal_phases_stay() -> None:
    before = SessionStatus(phase="Expired", reason="Timeout")
    outcome = compute({"type": "ssh"}, [pod(1)], previous=before)
    assert outcome.status.phase == "Expired"
    assert outcome.wake_at is None


def test_transition_time_moves_only_when_status_flips() -> None:
    first = compute({"type": "notebook", "timeout": -1}, [pod(1, gates={"jupyterlab": True})])
    later = compute(
        {"type": "notebook", "timeout": -1},
        [pod(1, gates={"jupyterlab": True})],
        previous=first.status,
        now=NOW + timedelta(minutes=5),
    )
    ready = next(c for c in later.status.conditions or [] if c.type == "Ready")
    assert ready.last_transition_time == NOW
    flipped = compute(
        {"type": "notebook", "timeout": -1},
        [pod(1, ready=False, gates={"jupyterlab": False})],
        previous=later.status,
        now=NOW + timedelta(minutes=6),
    )
    ready = next(c for c in flipped.status.conditions or [] if c.type == "Ready")
    assert ready.last_transition_time == NOW + timedelta(minutes=6)


SSH = {"type": "ssh", "timeout": 60}


@pytest.mark.parametrize(
    ("previous", "renew", "now", "phase", "expiry"),
    [
        (None, None, NOW, "Running", NOW + timedelta(seconds=60)),
        (
            SessionStatus(phase="Running", start_time=NOW - timedelta(seconds=59)),
            None,
            NOW,
            "Running",
            NOW + timedelta(seconds=1),
        ),
        (
            SessionStatus(phase="Running", start_time=NOW - timedelta(seconds=60)),
            None,
            NOW,
            "Expired",
            NOW,
        ),
        (
            SessionStatus(phase="Running", start_time=NOW - timedelta(seconds=50)),
            "r1",
            NOW,
            "Running",
            NOW + timedelta(seconds=60),
        ),
        (
            SessionStatus(
                phase="Running",
                start_time=NOW - timedelta(seconds=50),
                renewal=Renewal(token="r1", time=NOW - timedelta(seconds=30)),
            ),
            "r1",
            NOW,
            "Running",
            NOW + timedelta(seconds=30),
        ),
    ],
    ids=[
        "starts-now",
        "one-second-left",
        "expires-on-the-dot",
        "renew-restarts",
        "same-renew-is-not-new",
    ],
)
def test_absolute_timeout(
    previous: SessionStatus | None, renew: str | None, now: datetime, phase: str, expiry: datetime
) -> None:
    outcome = compute(
        {**SSH, "image": "x"}, [pod(1)], previous=previous, env=None, renew=renew, now=now
    )
    assert outcome.status.phase == phase
    assert outcome.status.expiry_time == expiry
    if phase == "Running":
        # Woken to warn 10 s before the expiry (ExpiringSoon), else at the expiry.
        warn = expiry - timedelta(seconds=10)
        assert outcome.wake_at == (warn if warn > now else expiry)


RUNNING = SessionStatus(phase="Running", start_time=NOW - timedelta(seconds=100))
NOTEBOOK_UP = [pod(1, gates={"jupyterlab": True})]


def _active(seconds_ago: float, source: str = "jupyter") -> Recorded:
    return Recorded(time=NOW - timedelta(seconds=seconds_ago), source=source, usage=None)


@pytest.mark.parametrize(
    ("recorded", "phase", "expiry", "soon"),
    [
        (Recorded(None, None, None), "Expired", NOW - timedelta(seconds=40), None),
        (
            Recorded(None, None, None, since=NOW - timedelta(seconds=10)),
            "Running",
            NOW + timedelta(seconds=50),
            "False",
        ),
        (_active(59), "Running", NOW + timedelta(seconds=1), "True"),
        (_active(30), "Running", NOW + timedelta(seconds=30), "False"),
        (_active(60), "Expired", NOW, None),
    ],
    ids=[
        "no-activity-on-the-lease",
        "lease-made-later-upgrade",
        "one-second-left",
        "active-30s-ago",
        "idle-on-the-dot",
    ],
)
def test_idle_timeout_counts_from_the_last_activity(
    recorded: Recorded | None, phase: str, expiry: datetime, soon: str | None
) -> None:
    expire = {"type": "notebook", "timeoutAction": "Expire"}  # today's behaviour, chosen
    outcome = compute(expire, NOTEBOOK_UP, previous=RUNNING, activity=recorded)
    assert outcome.status.timeout_mode == "idle"
    assert outcome.status.phase == phase
    assert outcome.status.expiry_time == expiry
    assert conditions(outcome).get("ExpiringSoon") == soon
    if phase == "Expired":
        assert outcome.status.reason == "IdleTimeout"
        assert outcome.wake_at is None
    else:
        assert outcome.status.last_activity_time == recorded.time
        assert outcome.status.last_activity_source == recorded.source
        warn = expiry - timedelta(seconds=10)
        assert outcome.wake_at == (warn if warn > NOW else expiry)


USAGE = {"cpuCores": 1.5, "memory": "2048Mi", "gpuUtilization": 85.0, "gpuMemory": "10240Mi"}
SSH_IMAGE = {**SSH, "image": "x"}


@pytest.mark.parametrize(
    ("spec", "previous", "recorded", "env", "want"),
    [
        pytest.param(
            {"type": "notebook", "timeoutAction": "Expire"},
            SessionStatus(
                phase="Running",
                start_time=NOW - timedelta(seconds=500),
                last_activity_time=NOW - timedelta(seconds=61),
                last_activity_source="ssh",
            ),
            _active(61, "ssh"),
            NOTEBOOK,
            {
                "phase": "Expired",
                "reason": "IdleTimeout",
                "message": "idle for 60 seconds (last activity: ssh at 2026-01-01T11:58:59Z)",
            },
            id="idle-message-names-the-last-signal",
        ),
        pytest.param(
            {"type": "notebook"},
            SessionStatus(phase="Running", start_time=NOW - timedelta(days=3)),
            None,
            NOTEBOOK,
            {"phase": "Running", "expiry_time": None},
            id="no-lease-no-cull",
        ),
        pytest.param(
            {"type": "notebook"},
            SessionStatus(
                phase="Running",
                start_time=NOW - timedelta(seconds=100),
                last_activity_time=NOW - timedelta(seconds=5),
                last_activity_source="gpu",
            ),
            _active(20, "ssh"),
            NOTEBOOK,
            {"last_activity_source": "gpu", "expiry_time": NOW + timedelta(seconds=55)},
            id="activity-never-goes-back",
        ),
        pytest.param(
            SSH_IMAGE,
            SessionStatus(phase="Running", start_time=NOW - timedelta(seconds=60)),
            _active(1, "ssh"),
            None,
            {"phase": "Expired", "reason": "Timeout", "last_activity_source": "ssh"},
            id="activity-does-not-extend-absolute",
        ),
        pytest.param(
            {"type": "notebook", "timeout": -1},
            SessionStatus(phase="Running", start_time=NOW - timedelta(days=30)),
            None,
            NOTEBOOK,
            {"timeout_mode": "none", "phase": "Running", "expiry_time": None},
            id="never-means-never",
        ),
        pytest.param(
            {"type": "notebook"},
            RUNNING,
            Recorded(time=NOW, source="gpu", usage=USAGE),
            NOTEBOOK,
            {"usage": USAGE, "last_activity_source": "gpu"},
            id="usage-from-the-lease",
        ),
    ],
)
def test_timeouts(
    spec: dict[str, Any],
    previous: SessionStatus,
    recorded: Recorded | None,
    env: EnvironmentConfigSpec | None,
    want: dict[str, Any],
) -> None:
    outcome = compute(spec, NOTEBOOK_UP, previous=previous, env=env, activity=recorded)
    got = outcome.status
    for field, value in want.items():
        actual = getattr(got, field)
        if field == "usage":
            actual = actual.model_dump(by_alias=True, exclude_none=True)
        assert actual == value, (field, actual)
    if got.phase == "Expired":
        events = status.transitions(previous, got)
        assert [e.reason for e in events if e.reason != "Scheduled"] == [got.reason]
    if got.expiry_time is None:
        assert outcome.wake_at is None and "ExpiringSoon" not in conditions(outcome)


def test_expiring_soon_warns_once_and_clears_on_activity() -> None:
    quiet = compute({"type": "notebook"}, NOTEBOOK_UP, previous=RUNNING, activity=_active(30))
    warned = compute(
        {"type": "notebook"},
        NOTEBOOK_UP,
        previous=quiet.status,
        activity=_active(30),
        now=NOW + timedelta(seconds=21),
    )
    assert conditions(warned)["ExpiringSoon"] == "True"
    events = status.transitions(quiet.status, warned.status)
    assert [(e.type, e.reason) for e in events] == [("Warning", "ExpiringSoon")]
    assert events[0].message == "expires at 2026-01-01T12:00:30Z unless active"
    again = compute(
        {"type": "notebook"},
        NOTEBOOK_UP,
        previous=warned.status,
        activity=_active(30),
        now=NOW + timedelta(seconds=22),
    )
    assert status.transitions(warned.status, again.status) == [], "one warning, not one a second"
    renewed = compute(
        {"type": "notebook"},
        NOTEBOOK_UP,
        previous=again.status,
        activity=_active(-22),
        now=NOW + timedelta(seconds=23),
    )
    assert conditions(renewed)["ExpiringSoon"] == "False"
    assert renewed.status.expiry_time == NOW + timedelta(seconds=82)


def test_events_for_transitions() -> None:
    before = compute({"type": "notebook"}, [pod(1, ready=False, gates={"jupyterlab": False})])
    after = compute(
        {"type": "notebook"}, [pod(1, gates={"jupyterlab": True})], previous=before.status
    )
    reasons = [e.reason for e in status.transitions(before.status, after.status)]
    assert reasons == ["Ready"]
    assert [e.reason for e in status.transitions(SessionStatus(), before.status)] == ["Scheduled"]


# -- suspend and resume ---------------------------------------------------------------------

IDLE_RUNNING = SessionStatus(
    phase="Running",
    start_time=NOW - timedelta(seconds=500),
    last_activity_time=NOW - timedelta(seconds=61),
    last_activity_source="ssh",
    image="jupyter",
)


def test_an_idle_timeout_suspends_a_notebook_by_default_and_expires_it_when_chosen() -> None:
    idle = _active(61, "ssh")
    suspend = compute({"type": "notebook"}, NOTEBOOK_UP, previous=IDLE_RUNNING, activity=idle)
    assert (suspend.status.phase, suspend.suspend) == ("Running", "IdleTimeout")
    expire = compute(
        {"type": "notebook", "timeoutAction": "Expire"},
        NOTEBOOK_UP,
        previous=IDLE_RUNNING,
        activity=idle,
    )
    assert (expire.status.phase, expire.suspend) == ("Expired", None)


def test_an_absolute_timeout_expires_by_default_and_suspends_when_the_environment_says() -> None:
    previous = SessionStatus(phase="Running", start_time=NOW - timedelta(seconds=61))
    ssh = {"type": "ssh", "timeout": 60}
    assert compute(ssh, NOTEBOOK_UP, previous=previous).status.phase == "Expired"
    env = NOTEBOOK.model_copy(
        update={"timeouts": Timeouts(default=60, mode="absolute", action="Suspend")}
    )
    outcome = compute(ssh, NOTEBOOK_UP, previous=previous, env=env)
    assert (outcome.status.phase, outcome.suspend) == ("Running", "Timeout")


@pytest.mark.parametrize(
    ("why", "reason", "message"),
    [
        (None, "User", "suspended by its user"),
        ("IdleTimeout", "IdleTimeout", "suspended after 60 seconds idle"),
    ],
)
def test_a_suspended_session_says_why_and_when_and_wants_its_pods_gone(
    why: str | None, reason: str, message: str
) -> None:
    parsed = SessionSpec.model_validate({"environment": "nb", "type": "notebook", "suspend": True})
    observed = status.Observed(
        spec=parsed,
        owner=OWNER,
        resolved=resolve.resolve(parsed, NOTEBOOK),
        generation=2,
        previous=IDLE_RUNNING,
        pods=NOTEBOOK_UP,
        services={},
        suspend_reason=why,
    )
    outcome = status.compute(observed, now=NOW, settings=SETTINGS)
    got = outcome.status
    assert (got.phase, got.reason, got.message) == ("Suspended", reason, message)
    assert got.suspended_at == NOW
    assert conditions(outcome)["Suspended"] == "True"
    assert conditions(outcome)["Ready"] == "False"
    assert outcome.wake_at is None  # no expiry while suspended
    events = status.transitions(IDLE_RUNNING, got)
    assert [(e.reason, e.message) for e in events if e.reason != "Scheduled"] == [
        ("Suspended", message)
    ]
    later = status.compute(
        replace(observed, previous=got), now=NOW + timedelta(hours=1), settings=SETTINGS
    )
    assert later.status.suspended_at == NOW  # kept, not moved


def test_a_resume_starts_over_with_a_new_deadline_and_the_new_image() -> None:
    suspended = SessionStatus(
        phase="Suspended",
        reason="IdleTimeout",
        start_time=NOW - timedelta(days=2),
        suspended_at=NOW - timedelta(days=1),
        image="jupyter:old",
    )
    held = compute({"type": "notebook", "suspend": True}, [], previous=suspended)
    assert held.status.pending_restart is True  # the environment's image is not jupyter:old
    suspended = held.status
    resumed = compute({"type": "notebook", "timeout": 600}, [], previous=suspended)
    got = resumed.status
    assert (got.phase, got.suspended_at, got.start_time, got.reason) == (
        "Pending",
        None,
        None,
        None,
    )
    assert got.pending_restart is None
    assert conditions(resumed)["Suspended"] == "False"
    assert [e.reason for e in status.transitions(suspended, got)] == ["Resumed"]


def test_an_expired_session_resumes_on_a_new_renew_and_stays_expired_without_one() -> None:
    expired = SessionStatus(
        phase="Expired", reason="IdleTimeout", start_time=NOW - timedelta(days=1)
    )
    assert compute({"type": "notebook"}, [], previous=expired).status.phase == "Expired"
    again = compute({"type": "notebook"}, [], previous=expired, renew="t1")
    assert (again.status.phase, again.status.start_time) == ("Pending", None)
    suspended = compute({"type": "notebook", "suspend": True}, [], previous=expired)
    assert suspended.status.phase == "Suspended"


def test_a_finished_run_is_not_suspended() -> None:
    done = SessionStatus(phase="Succeeded", reason="Completed")
    got = compute({"type": "headless", "image": "x", "suspend": True}, [], previous=done)
    assert got.status.phase == "Succeeded"


def test_a_session_left_suspended_is_warned_of_then_deleted() -> None:
    env = NOTEBOOK.model_copy(
        update={"timeouts": Timeouts(default=60, delete_suspended_after=3600)}
    )
    spec = {"type": "notebook", "suspend": True}

    def left(seconds: float) -> status.Outcome:
        since = NOW - timedelta(seconds=seconds)
        previous = SessionStatus(phase="Suspended", reason="User", suspended_at=since)
        return compute(spec, [], previous=previous, env=env)

    calm = left(60)
    assert conditions(calm)["DeletingSoon"] == "False" and not calm.delete
    assert calm.wake_at == NOW - timedelta(seconds=60) + timedelta(seconds=3600 - 10)
    soon = left(3595)
    assert conditions(soon)["DeletingSoon"] == "True" and not soon.delete
    assert soon.wake_at == NOW + timedelta(seconds=5)
    events = status.transitions(calm.status, soon.status)
    assert [(e.type, e.reason) for e in events] == [("Warning", "DeletingSoon")]
    assert left(3600).delete
    never = compute(spec, [], previous=SessionStatus(phase="Suspended", suspended_at=NOW))
    assert "DeletingSoon" not in conditions(never) and never.wake_at is None
